"""User Data Header (3GPP TS 23.040 §9.2.3.24) and SMPP SAR TLVs for concatenated SMS.

Owns: building the concatenation header of one segment (IEI 0x00 with an 8-bit
reference, IEI 0x08 with a 16-bit reference), walking a received UDH (unknown IEs are
skipped, a malformed header is reported, not guessed at) and the SAR TLV tags.

Rules: pure functions over bytes; no text decoding here (``text.py`` does that).
"""

from __future__ import annotations

IEI_CONCAT8 = 0x00
IEI_CONCAT16 = 0x08

ESM_UDHI = 0x40  # esm_class bit: short_message starts with a UDH

TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
TLV_MESSAGE_PAYLOAD = 0x0424

UDH8_LEN = 6  # 05 00 03 ref total index
UDH16_LEN = 7  # 06 08 04 ref_hi ref_lo total index


class UdhError(ValueError):
    """The UDH length or an IE length runs past the data."""


def concat8(ref: int, total: int, index: int) -> bytes:
    """UDH of one segment with an 8-bit reference (IEI 0x00)."""
    return bytes((5, IEI_CONCAT8, 3, ref & 0xFF, total, index))


def concat16(ref: int, total: int, index: int) -> bytes:
    """UDH of one segment with a 16-bit reference (IEI 0x08)."""
    return bytes((6, IEI_CONCAT16, 4, (ref >> 8) & 0xFF, ref & 0xFF, total, index))


def split_udh(short_message: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Return ([(iei, data), ...], body) of a short_message that starts with a UDH."""
    if not short_message:
        raise UdhError("empty short_message with UDHI set")
    udhl = short_message[0]
    end = 1 + udhl
    if end > len(short_message):
        raise UdhError(f"UDH length {udhl} exceeds short_message ({len(short_message)} octets)")
    ies: list[tuple[int, bytes]] = []
    i = 1
    while i < end:
        if i + 2 > end:
            raise UdhError("truncated information element")
        iei, iel = short_message[i], short_message[i + 1]
        if i + 2 + iel > end:
            raise UdhError(f"IE 0x{iei:02x} length {iel} runs past the UDH")
        ies.append((iei, bytes(short_message[i + 2 : i + 2 + iel])))
        i += 2 + iel
    return ies, bytes(short_message[end:])


def concat_info(ies: list[tuple[int, bytes]]) -> tuple[int, int, int] | None:
    """(ref, total, index) from the first concatenation IE, or None when there is none."""
    for iei, data in ies:
        if iei == IEI_CONCAT8 and len(data) == 3:
            return data[0], data[1], data[2]
        if iei == IEI_CONCAT16 and len(data) == 4:
            return (data[0] << 8) | data[1], data[2], data[3]
    return None
