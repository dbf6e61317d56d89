"""Message text <-> SMPP short_message: encoding choice, segmentation and MO part decoding.

Owns:
- ``encode_for_smpp``: GSM 03.38 (data_coding 0, unpacked septets) when every character
  fits the basic or extension table, else UCS-2 (data_coding 8, UTF-16BE, emoji as
  surrogate pairs). With ``smart=True`` Unicode look-alikes (smart quotes, dashes,
  ellipsis, unusual spaces, ...; table ``SMART``) are replaced first, as Twilio's
  SmartEncoded does; if the text still needs UCS-2 the *original* text is sent (the
  replacements would only make the UCS-2 message longer and less faithful).
- ``split`` / ``count_segments``: segments cut on septet (GSM) or UTF-16 code-unit
  (UCS-2) boundaries, never between an ESC and its extension septet nor inside a
  surrogate pair:

  | mode      | carried in                         | GSM single / per part | UCS-2 single / per part |
  |-----------|------------------------------------|-----------------------|-------------------------|
  | "udh8"    | UDH IEI 0x00, 8-bit ref            | 160 / 153             | 70 / 67                 |
  | "udh16"   | UDH IEI 0x08, 16-bit ref           | 160 / 152             | 70 / 66                 |
  | "sar"     | TLVs 0x020C ref, 0x020E, 0x020F    | 160 / 153             | 70 / 67                 |
  | "payload" | one message_payload TLV (0x0424)   | whole text, 1 PDU     | whole text, 1 PDU       |

  ``count_segments`` counts what the handset shows (udh8 sizes), and equals
  ``len(split(body, ref, "udh8"))``. UDH segments have esm_class 0x40; a text that fits
  one message is sent plain in every mode. More than 255 parts raises ``ValueError``
  (the API caps Body at 1600 characters, far below that).
- ``decode_short_message``: a received short_message (or message_payload) to a ``Part``,
  from a UDH (IEI 0x00/0x08; other IEs skipped) or SAR TLVs, or plain (total 1).
  Decoding never raises: unknown data_coding values are read as Latin-1, bad UCS-2 bytes
  become U+FFFD. Parts of a multipart UCS-2 message keep lone surrogates (a carrier may
  cut a pair), so the reassembler can join them; it cleans up what stays unpaired.
"""

from __future__ import annotations

from gateway.codec import gsm, udh

DC_GSM = 0
DC_IA5 = 1
DC_LATIN1 = 3
DC_UCS2 = 8

# mode -> (GSM septets per part, UCS-2 code units per part)
_PART_SIZES = {"udh8": (153, 67), "udh16": (152, 66), "sar": (153, 67), "payload": (153, 67)}
_SINGLE_GSM = 160
_SINGLE_UCS2 = 70
MAX_PARTS = 255

# SmartEncoded: Unicode look-alike -> GSM 03.38 replacement ("" removes the character).
SMART_MAP: dict[str, str] = {
    # single quotes, primes, modifier apostrophes, acute accent, backtick
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u2035": "'", "\u02b9": "'", "\u02bb": "'", "\u02bc": "'", "\u02bd": "'",
    "\u00b4": "'", "`": "'",
    # double quotes, double primes, guillemets
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2036": '"', "\u02ba": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2039": "<", "\u203a": ">",
    # hyphens, dashes, minus signs, bullets
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-", "\u2043": "-", "\ufe58": "-", "\ufe63": "-",
    "\uff0d": "-", "\u2022": "-",
    "\u2026": "...",
    # unusual spaces and tab
    "\u00a0": " ", "\u2000": " ", "\u2001": " ", "\u2002": " ", "\u2003": " ",
    "\u2004": " ", "\u2005": " ", "\u2006": " ", "\u2007": " ", "\u2008": " ",
    "\u2009": " ", "\u200a": " ", "\u202f": " ", "\u205f": " ", "\u3000": " ",
    "\t": " ",
    # invisible characters are dropped
    "\u200b": "", "\u2060": "", "\ufeff": "", "\u00ad": "",
    # others
    "\u02c6": "^", "\u02dc": "~", "\u2044": "/", "\u2215": "/", "\u00b7": ".",
    "\u00e7": "\u00c7",
}
SMART = str.maketrans(SMART_MAP)


class Segment:
    """One submit_sm's worth of a message: fields to put into the PDU."""

    __slots__ = ("data_coding", "esm_class", "short_message", "tlvs", "index", "total")

    def __init__(self, data_coding: int, esm_class: int, short_message: bytes,
                 tlvs: dict | None, index: int, total: int) -> None:
        self.data_coding = data_coding
        self.esm_class = esm_class
        self.short_message = short_message
        self.tlvs = tlvs
        self.index = index
        self.total = total

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Segment):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return (f"Segment(dc={self.data_coding}, esm=0x{self.esm_class:02x}, "
                f"{self.index}/{self.total}, {self.short_message!r}, tlvs={self.tlvs!r})")


class Part:
    """One received short_message, decoded: its text and where it sits in its message."""

    __slots__ = ("text", "ref", "total", "index")

    def __init__(self, text: str, ref: int | None = None, total: int = 1, index: int = 1) -> None:
        self.text = text
        self.ref = ref
        self.total = total
        self.index = index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Part):
            return NotImplemented
        return (self.text, self.ref, self.total, self.index) == (
            other.text, other.ref, other.total, other.index)

    def __repr__(self) -> str:
        return f"Part({self.text!r}, ref={self.ref}, total={self.total}, index={self.index})"


# ---------------------------------------------------------------------------- outbound


def encode_for_smpp(body: str, smart: bool = False) -> tuple[int, bytes, str]:
    """(data_coding, payload, text actually encoded) for ``body``: GSM-7 if it fits, else UCS-2."""
    if smart:
        replaced = body.translate(SMART)
        if replaced != body and gsm.is_gsm(replaced):
            body = replaced
    try:
        return DC_GSM, gsm.encode(body), body
    except ValueError:
        return DC_UCS2, body.encode("utf-16-be", "surrogatepass"), body


def _cuts(payload: bytes, dc: int, per_part: int) -> list[tuple[int, int]]:
    """[(start, end)] byte ranges of the parts; never ends a part on an ESC or high surrogate."""
    n = len(payload)
    if dc == DC_GSM:
        if n <= _SINGLE_GSM:
            return [(0, n)]
        size = per_part
    else:
        if n <= 2 * _SINGLE_UCS2:
            return [(0, n)]
        size = 2 * per_part
    cuts = []
    pos = 0
    while n - pos > size:
        end = pos + size
        if dc == DC_GSM:
            if payload[end - 1] == gsm.ESC:  # ESC would be parted from its septet
                end -= 1
        elif 0xD8 <= payload[end - 2] <= 0xDB:  # last code unit is a high surrogate
            end -= 2
        cuts.append((pos, end))
        pos = end
    cuts.append((pos, n))
    return cuts


def count_segments(body: str, smart: bool = False, mode: str = "udh8") -> int:
    """How many segments ``split(body, ref, mode, smart)`` makes."""
    dc, payload, _ = encode_for_smpp(body, smart)
    if mode == "payload":
        return 1
    gsm_size, ucs2_size = _PART_SIZES[mode]
    return len(_cuts(payload, dc, gsm_size if dc == DC_GSM else ucs2_size))


def split(body: str, ref: int, mode: str = "udh8", smart: bool = False) -> list[Segment]:
    """The segments carrying ``body``; ``ref`` is the concatenation reference (masked to 8
    bits for udh8, 16 bits otherwise)."""
    if mode not in _PART_SIZES:
        raise ValueError(f"unknown segmentation mode {mode!r}")
    dc, payload, _ = encode_for_smpp(body, smart)
    gsm_size, ucs2_size = _PART_SIZES[mode]
    cuts = _cuts(payload, dc, gsm_size if dc == DC_GSM else ucs2_size)
    total = len(cuts)
    if total == 1:
        return [Segment(dc, 0, payload, None, 1, 1)]
    if mode == "payload":
        return [Segment(dc, 0, b"", {udh.TLV_MESSAGE_PAYLOAD: payload}, 1, 1)]
    if total > MAX_PARTS:
        raise ValueError(f"text needs {total} segments, more than {MAX_PARTS}")
    segments = []
    for index, (start, end) in enumerate(cuts, 1):
        chunk = payload[start:end]
        if mode == "udh8":
            seg = Segment(dc, udh.ESM_UDHI, udh.concat8(ref, total, index) + chunk, None,
                          index, total)
        elif mode == "udh16":
            seg = Segment(dc, udh.ESM_UDHI, udh.concat16(ref, total, index) + chunk, None,
                          index, total)
        else:  # sar
            tlvs = {
                udh.TLV_SAR_MSG_REF_NUM: ref & 0xFFFF,
                udh.TLV_SAR_TOTAL_SEGMENTS: total,
                udh.TLV_SAR_SEGMENT_SEQNUM: index,
            }
            seg = Segment(dc, 0, chunk, tlvs, index, total)
        segments.append(seg)
    return segments


# ----------------------------------------------------------------------------- inbound

# SMPP data_coding 0x00-0x0F values with a Python codec (others below 0x10 read as Latin-1)
_SMPP_CODECS = {1: "ascii", 3: "latin-1", 6: "iso8859-5", 7: "iso8859-8", 10: "iso2022_jp",
                14: "euc_kr"}


def _alphabet(dc: int) -> str:
    """"gsm" | "ucs2" | Python codec name for a data_coding value (SMPP 3.4 §5.2.19, 23.038)."""
    if dc == 0:
        return "gsm"
    if dc == 8:
        return "ucs2"
    if dc < 0x10:
        return _SMPP_CODECS.get(dc, "latin-1")
    if dc < 0x80:  # general data coding / automatic deletion groups
        if dc & 0x20:  # compressed: nothing sensible to do
            return "latin-1"
        return ("gsm", "latin-1", "ucs2", "latin-1")[(dc >> 2) & 3]
    if 0xC0 <= dc <= 0xDF:  # message waiting indication, GSM alphabet
        return "gsm"
    if 0xE0 <= dc <= 0xEF:  # message waiting indication, UCS-2
        return "ucs2"
    if dc >= 0xF0:
        return "latin-1" if dc & 0x04 else "gsm"
    return "latin-1"


def decode_text(data: bytes, data_coding: int, keep_surrogates: bool = False) -> str:
    """Text of ``data`` in ``data_coding``; never raises (unknown codings read as Latin-1)."""
    alphabet = _alphabet(data_coding)
    if alphabet == "gsm":
        return gsm.decode(data)
    if alphabet == "ucs2":
        if keep_surrogates:
            try:
                return bytes(data).decode("utf-16-be", "surrogatepass")
            except UnicodeDecodeError:
                pass
        return bytes(data).decode("utf-16-be", "replace")
    return bytes(data).decode(alphabet, "replace")


def _tlv_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return int.from_bytes(value, "big") if len(value) else None
    return None


def decode_short_message(short_message: bytes, data_coding: int, esm_class: int,
                         tlvs: dict | None) -> Part:
    """Decode one received deliver_sm/data_sm body into a ``Part`` (never raises)."""
    body = short_message
    if not body and tlvs and tlvs.get(udh.TLV_MESSAGE_PAYLOAD):
        body = tlvs[udh.TLV_MESSAGE_PAYLOAD]
    ref = None
    total = index = 1
    if esm_class & udh.ESM_UDHI:
        try:
            ies, body = udh.split_udh(body)
        except udh.UdhError:
            ies = []
        info = udh.concat_info(ies)
        if info is not None:
            ref, total, index = info
    elif tlvs and udh.TLV_SAR_MSG_REF_NUM in tlvs:
        ref = _tlv_int(tlvs.get(udh.TLV_SAR_MSG_REF_NUM))
        total = _tlv_int(tlvs.get(udh.TLV_SAR_TOTAL_SEGMENTS)) or 1
        index = _tlv_int(tlvs.get(udh.TLV_SAR_SEGMENT_SEQNUM)) or 1
    if total <= 1 or ref is None or not 1 <= index <= total:
        ref, total, index = None, 1, 1
    return Part(decode_text(body, data_coding, keep_surrogates=total > 1), ref, total, index)
