"""Layout-driven SMPP body and TLV codec, used by the pure-Python twin for every PDU
without a hand-written fast path, and by the Cython twin for the rarely used ones.

Owns: ``decode_body(obj, cid, frame)`` (fills the mandatory fields named in
``smpp_consts.LAYOUTS`` and ``tlvs``), ``encode_body(obj, cid)``, ``decode_tlvs`` and
``encode_tlvs``. Works on any object with the layout's attributes (``__slots__`` or
cdef public), so both twins share it.

Error handling: decoding raises ``PduError`` with the ESME status to answer
(ESME_RINVMSGLEN when sm_length runs past the PDU, ESME_RINVOPTPARSTREAM for a broken
TLV stream, ESME_RINVDESTFLAG for a bad submit_multi dest_flag); IndexError/ValueError
from a body cut short propagate and the caller maps them to ESME_RINVCMDLEN. Encoding
raises ValueError for values that do not fit (ints out of range, non latin-1 text).
"""

from __future__ import annotations

import struct

from gateway.codec.smpp_consts import LAYOUTS, TLV_KINDS, PduError, Status

_HH = struct.Struct(">HH")
_unpack_hh = _HH.unpack_from
_pack_hh = _HH.pack
_I = struct.Struct(">I")


def decode_tlvs(d: bytes, p: int) -> dict | None:
    """TLVs from ``d[p:]`` (a whole frame) as {tag: value} in wire order; None if none."""
    end = len(d)
    if p >= end:
        return None
    tlvs = {}
    get_kind = TLV_KINDS.get
    while p < end:
        if p + 4 > end:
            raise PduError("truncated TLV header", Status.ESME_RINVOPTPARSTREAM)
        tag, ln = _unpack_hh(d, p)
        p += 4
        q = p + ln
        if q > end:
            raise PduError(f"TLV 0x{tag:04X} runs past the PDU", Status.ESME_RINVOPTPARSTREAM)
        raw = d[p:q]
        kind = get_kind(tag)
        if kind is None or kind < 0:
            tlvs[tag] = raw
        elif kind == 0:
            tlvs[tag] = raw[:-1].decode("latin-1") if ln and raw[-1] == 0 else raw
        elif ln == kind:
            tlvs[tag] = int.from_bytes(raw, "big")
        else:
            tlvs[tag] = raw
        p = q
    return tlvs


def encode_tlvs(tlvs: dict) -> bytes:
    """bytes -> raw value; str -> C-octet string; int -> the tag's integer size."""
    out = []
    for tag, v in tlvs.items():
        if isinstance(v, (bytes, bytearray, memoryview)):
            raw = bytes(v)
        elif isinstance(v, str):
            raw = v.encode("latin-1") + b"\0"
        elif isinstance(v, int):
            kind = TLV_KINDS.get(tag)
            if kind is None or kind <= 0:
                raise ValueError(f"TLV 0x{tag:04X} takes bytes or str, not int")
            raw = v.to_bytes(kind, "big")
        else:
            raise ValueError(f"TLV 0x{tag:04X}: unsupported value type {type(v).__name__}")
        if len(raw) > 0xFFFF:
            raise ValueError(f"TLV 0x{tag:04X} longer than 65535 octets")
        out.append(_pack_hh(tag, len(raw)))
        out.append(raw)
    return b"".join(out)


def _cstr(d: bytes, p: int) -> tuple[str, int]:
    i = d.index(0, p)
    return d[p:i].decode("latin-1"), i + 1


def decode_body(obj, cid: int, d: bytes) -> None:
    """Fill ``obj``'s mandatory fields and tlvs from the whole frame ``d``."""
    p = 16
    for name, kind in LAYOUTS[cid]:
        if kind == "c":
            v, p = _cstr(d, p)
        elif kind == "B":
            v = d[p]
            p += 1
        elif kind == "sm":
            n = d[p]
            q = p + 1 + n
            if q > len(d):
                raise PduError("sm_length runs past the PDU", Status.ESME_RINVMSGLEN)
            v = d[p + 1:q]
            p = q
        elif kind == "dests":
            v = []
            for _ in range(d[p]):
                flag = d[p + 1]
                if flag == 1:
                    ton, npi = d[p + 2], d[p + 3]
                    addr, p = _cstr(d, p + 4)
                    v.append((1, ton, npi, addr))
                    p -= 1
                elif flag == 2:
                    name_, p = _cstr(d, p + 2)
                    v.append((2, 0, 0, name_))
                    p -= 1
                else:
                    raise PduError(f"bad dest_flag {flag}", Status.ESME_RINVDESTFLAG)
            p += 1
        else:  # "unsucc"
            v = []
            count = d[p]
            p += 1
            for _ in range(count):
                ton, npi = d[p], d[p + 1]
                addr, p = _cstr(d, p + 2)
                v.append((ton, npi, addr, _I.unpack_from(d, p)[0]))
                p += 4
        setattr(obj, name, v)
    obj.tlvs = decode_tlvs(d, p)


def _u8(v: int) -> bytes:
    if not 0 <= v <= 255:
        raise ValueError(f"{v} does not fit in one octet")
    return bytes((v,))


def encode_body(obj, cid: int) -> bytes:
    """The body (after the 16-byte header) of ``obj`` per its layout, TLVs included."""
    out = []
    add = out.append
    for name, kind in LAYOUTS[cid]:
        v = getattr(obj, name)
        if kind == "c":
            add(v.encode("latin-1") + b"\0")
        elif kind == "B":
            add(_u8(v))
        elif kind == "sm":
            add(_u8(len(v)))
            add(bytes(v))
        elif kind == "dests":
            add(_u8(len(v)))
            for flag, ton, npi, addr in v:
                if flag == 1:
                    add(bytes((1, ton, npi)) + addr.encode("latin-1") + b"\0")
                elif flag == 2:
                    add(b"\x02" + addr.encode("latin-1") + b"\0")
                else:
                    raise ValueError(f"bad dest_flag {flag}")
        else:  # "unsucc"
            add(_u8(len(v)))
            for ton, npi, addr, err in v:
                add(bytes((ton, npi)) + addr.encode("latin-1") + b"\0" + _I.pack(err))
    if obj.tlvs:
        add(encode_tlvs(obj.tlvs))
    return b"".join(out)
