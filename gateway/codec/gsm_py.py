"""GSM 03.38 default alphabet, pure-Python twin (reference and fallback for ``ext/_gsm.pyx``).

Owns the 7-bit default alphabet and its extension table (reached through ESC 0x1B:
``^ { } \\ [ ~ ] | €`` and form feed), in the two forms SMPP meets them:

- *unpacked* septets, one per octet, as ``short_message`` usually carries them;
- *packed* septets (8 septets in 7 octets, LSB first), as the air interface and a few
  SMSCs use them.

Rules:
- ``encode`` is strict: a character outside both tables raises ``ValueError`` (the caller
  then picks UCS-2). Extension characters become an ESC pair (2 septets).
- ``decode`` never raises: it reads what carriers send. ESC followed by a code missing
  from the extension table shows the basic-table character for that code (03.38 §6.2.1.1);
  a trailing lone ESC is dropped; octets 0x80-0xFF (not septets) become U+FFFD.
- ``pack`` raises ``ValueError`` on an octet > 0x7F; ``unpack`` raises ``ValueError`` when
  the data holds fewer than ``n_septets`` septets.
- The Cython twin has the same names, results and errors; tests run against both.
"""

from __future__ import annotations

# 03.38 basic table, index = septet value. 0x1B (ESC) maps to itself here only as a
# placeholder: it is never produced by decode.
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
assert len(BASIC) == 128

# Extension table: septet after ESC -> character.
EXTENSION = {
    0x0A: "\x0c",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

ESC = 0x1B

# char -> encoded septets (1 or 2 chars, as str of code points < 0x80)
_ENCODE: dict[int, str] = {}
for _code, _ch in enumerate(BASIC):
    if _code != ESC:
        _ENCODE[ord(_ch)] = chr(_code)
for _code, _ch in EXTENSION.items():
    _ENCODE[ord(_ch)] = "\x1b" + chr(_code)
# Every other code point below 0x100 maps to a non-ASCII marker, so that after
# ``translate`` the result is pure ASCII exactly when every character was GSM.
_BAD = "\uffff"
for _cp in range(0x100):
    _ENCODE.setdefault(_cp, _BAD)

# octet -> decoded char for octets without ESC handling
_DECODE: dict[int, str] = {i: BASIC[i] for i in range(128) if i != ESC}
for _cp in range(0x80, 0x100):
    _DECODE[_cp] = "\ufffd"

# septet after ESC -> char (extension or, failing that, the basic char)
_DECODE_ESC: list[str] = [EXTENSION.get(i, BASIC[i]) for i in range(128)]
_DECODE_ESC[ESC] = ""  # ESC ESC: the first ESC is dropped, the second escapes the next


def encode(text: str) -> bytes:
    """Return ``text`` as unpacked septets; ``ValueError`` if a character is not GSM."""
    out = text.translate(_ENCODE)
    if out.isascii():
        return out.encode("ascii")
    for pos, ch in enumerate(text):
        if _ENCODE.get(ord(ch), _BAD) == _BAD:
            raise ValueError(f"character {ch!r} at position {pos} is not in GSM 03.38")
    raise ValueError("text is not GSM 03.38")  # pragma: no cover - unreachable


def decode(data: bytes) -> str:
    """Return the text of unpacked septets ``data`` (lenient, never raises)."""
    if type(data) is not bytes:
        data = bytes(data)
    if b"\x1b" not in data:
        return data.decode("latin-1").translate(_DECODE)
    out = []
    i = 0
    n = len(data)
    while i < n:
        j = data.find(b"\x1b", i)
        if j < 0:
            out.append(data[i:].decode("latin-1").translate(_DECODE))
            break
        if j > i:
            out.append(data[i:j].decode("latin-1").translate(_DECODE))
        while j + 1 < n and data[j + 1] == ESC:
            j += 1
        if j + 1 < n:
            c = data[j + 1]
            out.append(_DECODE_ESC[c] if c < 0x80 else "\ufffd")
        i = j + 2
    return "".join(out)


def is_gsm(text: str) -> bool:
    """True when every character of ``text`` is in the basic or extension table."""
    return text.translate(_ENCODE).isascii()


def septets(text: str) -> int:
    """Number of septets ``text`` takes (extension chars count 2); ``ValueError`` if not GSM."""
    return len(encode(text))


def pack(septets: bytes) -> bytes:
    """Pack unpacked septets 8-into-7 octets (LSB first); ``ValueError`` on an octet > 0x7F."""
    n = len(septets)
    if n == 0:
        return b""
    if max(septets) > 0x7F:
        raise ValueError("septet value over 0x7F")
    value = 0
    for k, s in enumerate(septets):
        value |= s << (7 * k)
    return value.to_bytes((n * 7 + 7) // 8, "little")


def unpack(data: bytes, n_septets: int) -> bytes:
    """Unpack ``n_septets`` septets from packed ``data``; ``ValueError`` if too short."""
    if n_septets < 0 or n_septets * 7 > len(data) * 8:
        raise ValueError(f"{len(data)} octets hold fewer than {n_septets} septets")
    value = int.from_bytes(data, "little")
    return bytes((value >> (7 * k)) & 0x7F for k in range(n_septets))
