"""SMPP 3.4 PDU codec, pure-Python twin (reference and fallback for ``ext/_smpp.pyx``).

Owns: ``encode``, ``encode_many``, ``decode``, ``Decoder`` (stream framing), ``resp_for``
and the PDU classes (re-exported from ``smpp_pdus``/``smpp_pdus2``). Hot paths
(submit_sm/deliver_sm, *_sm_resp, header-only PDUs) are hand-written with
struct.unpack_from and str.index over a latin-1 view of the frame; everything else goes
through the layout-driven ``smpp_body``.

Error handling: ``decode`` raises ``PduError`` (ESME_RINVCMDID unknown command_id,
ESME_RINVCMDLEN body cut short or command_length != frame length, ESME_RINVMSGLEN
sm_length past the end, ESME_RINVOPTPARSTREAM broken TLVs); ``Decoder.feed`` returns
such errors as items instead and raises only ``FramingError`` (command_length < 16 or >
max_length), after which the decoder stays broken. ``encode`` raises ValueError for
values that do not fit the wire format. Vendor command_status and unknown data_coding
are plain ints and never an error.
"""

from __future__ import annotations

import struct

from gateway.codec.smpp_body import decode_body, decode_tlvs, encode_body, encode_tlvs
from gateway.codec.smpp_consts import (
    RESP_BIT,
    RESP_OF,
    CommandId,
    FramingError,
    MessageState,
    PduError,
    Status,
    Tlv,
)
from gateway.codec.smpp_pdus import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSmResp,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSmResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    _Empty,
    _MsgIdResp,
    _Sm,
)
from gateway.codec.smpp_pdus2 import (
    AlertNotification,
    CancelSm,
    ReplaceSm,
    SubmitMulti,
    SubmitMultiResp,
)

__all__ = [
    "CommandId", "Status", "Tlv", "MessageState", "PduError", "FramingError", "Pdu",
    "encode", "encode_many", "decode", "Decoder", "resp_for", "CLASSES",
    "GenericNack", "BindReceiver", "BindReceiverResp", "BindTransmitter",
    "BindTransmitterResp", "BindTransceiver", "BindTransceiverResp", "Outbind", "Unbind",
    "UnbindResp", "EnquireLink", "EnquireLinkResp", "SubmitSm", "SubmitSmResp",
    "DeliverSm", "DeliverSmResp", "DataSm", "DataSmResp", "QuerySm", "QuerySmResp",
    "CancelSm", "CancelSmResp", "ReplaceSm", "ReplaceSmResp", "SubmitMulti",
    "SubmitMultiResp", "AlertNotification",
]

_HDR = struct.Struct(">IIII")
_unpack_hdr = _HDR.unpack_from
_pack_hdr = _HDR.pack

CLASSES: dict[int, type] = {c.command_id: c for c in (
    GenericNack, BindReceiver, BindReceiverResp, BindTransmitter, BindTransmitterResp,
    BindTransceiver, BindTransceiverResp, Outbind, Unbind, UnbindResp, EnquireLink,
    EnquireLinkResp, SubmitSm, SubmitSmResp, DeliverSm, DeliverSmResp, DataSm, DataSmResp,
    QuerySm, QuerySmResp, CancelSm, CancelSmResp, ReplaceSm, ReplaceSmResp, SubmitMulti,
    SubmitMultiResp, AlertNotification)}
_new = object.__new__


def _dec_sm(cls, d, status, seq):
    o = _new(cls)
    o.sequence_number = seq
    o.command_status = status
    s = d.decode("latin-1")
    index = s.index
    i = index("\0", 16)
    o.service_type = s[16:i]
    o.source_addr_ton = d[i + 1]
    o.source_addr_npi = d[i + 2]
    j = index("\0", i + 3)
    o.source_addr = s[i + 3:j]
    o.dest_addr_ton = d[j + 1]
    o.dest_addr_npi = d[j + 2]
    i = index("\0", j + 3)
    o.destination_addr = s[j + 3:i]
    o.esm_class, o.protocol_id, o.priority_flag = d[i + 1:i + 4]
    j = index("\0", i + 4)
    o.schedule_delivery_time = s[i + 4:j]
    i = index("\0", j + 1)
    o.validity_period = s[j + 1:i]
    (o.registered_delivery, o.replace_if_present_flag, o.data_coding,
     o.sm_default_msg_id, n) = d[i + 1:i + 6]
    p = i + 6
    q = p + n
    if q > len(d):
        raise PduError("sm_length runs past the PDU", Status.ESME_RINVMSGLEN)
    o.short_message = d[p:q]
    o.tlvs = decode_tlvs(d, q) if q < len(d) else None
    return o


def _dec_msgid(cls, d, status, seq):
    o = _new(cls)
    o.sequence_number = seq
    o.command_status = status
    if len(d) == 16:
        o.message_id = ""
        o.tlvs = None
        return o
    i = d.index(0, 16)
    o.message_id = d[16:i].decode("latin-1")
    o.tlvs = decode_tlvs(d, i + 1) if i + 1 < len(d) else None
    return o


def _dec_empty(cls, d, status, seq):
    o = _new(cls)
    o.sequence_number = seq
    o.command_status = status
    o.tlvs = decode_tlvs(d, 16) if len(d) > 16 else None
    return o


def _dec_generic(cls, d, status, seq):
    o = _new(cls)
    o.sequence_number = seq
    o.command_status = status
    cid = cls.command_id
    if len(d) == 16 and cid & RESP_BIT:
        # body-less response (usually with an error status): every field at its default
        return cls(seq, status)
    decode_body(o, cid, d)
    return o


_DECODERS = {}
for _cid, _cls in CLASSES.items():
    _DECODERS[_cid] = (_cls, _dec_sm if issubclass(_cls, _Sm) else
                       _dec_msgid if issubclass(_cls, _MsgIdResp) else
                       _dec_empty if issubclass(_cls, _Empty) else _dec_generic)
del _cid, _cls
_get_decoder = _DECODERS.get


def _decode_frame(d: bytes, cid: int, status: int, seq: int):
    """Decode one whole frame whose header is already unpacked; raise PduError."""
    entry = _get_decoder(cid)
    if entry is None:
        raise PduError(f"unknown command_id 0x{cid:08X}", Status.ESME_RINVCMDID, cid, seq)
    try:
        return entry[1](entry[0], d, status, seq)
    except PduError as e:
        e.command_id, e.sequence_number = cid, seq
        raise
    except (IndexError, ValueError, struct.error):
        raise PduError("PDU body shorter than its fields", Status.ESME_RINVCMDLEN,
                       cid, seq) from None


def decode(frame: bytes):
    """One complete PDU (header included) -> PDU object; raises PduError."""
    if not isinstance(frame, bytes):
        frame = bytes(frame)
    if len(frame) < 16:
        raise PduError("PDU shorter than its 16-byte header", Status.ESME_RINVCMDLEN)
    length, cid, status, seq = _unpack_hdr(frame, 0)
    if length != len(frame):
        raise PduError(f"command_length {length} != frame length {len(frame)}",
                       Status.ESME_RINVCMDLEN, cid, seq)
    return _decode_frame(frame, cid, status, seq)


class Decoder:
    """Splits a byte stream into PDUs. ``feed`` returns every complete PDU (or PduError
    instance for an undecodable body) and keeps the partial tail for the next call."""

    __slots__ = ("max_length", "_buf", "_broken")

    def __init__(self, max_length: int = 65536):
        self.max_length = max_length
        self._buf = b""
        self._broken: FramingError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data) -> list:
        if self._broken is not None:
            raise FramingError(self._broken.message, self._broken.command_id,
                               self._broken.sequence_number)
        buf = self._buf + data if self._buf else bytes(data)
        out = []
        pos = 0
        n = len(buf)
        maxlen = self.max_length
        while n - pos >= 16:
            length, cid, status, seq = _unpack_hdr(buf, pos)
            if length < 16 or length > maxlen:
                self._buf = b""
                self._broken = FramingError(
                    f"command_length {length} outside [16, {maxlen}]", cid, seq, out)
                raise self._broken
            end = pos + length
            if end > n:
                break
            try:
                out.append(_decode_frame(buf[pos:end], cid, status, seq))
            except PduError as e:
                out.append(e)
            pos = end
        self._buf = buf[pos:] if pos < n else b""
        return out


def _enc_sm(o) -> bytes:
    sm = o.short_message
    if len(sm) > 255:
        raise ValueError("short_message longer than 255 octets; use message_payload")
    body = ("%s\0%c%c%s\0%c%c%s\0%c%c%c%s\0%s\0%c%c%c%c%c" % (  # noqa: UP031 - one %-format is the fastest pure-Python encoder
        o.service_type, o.source_addr_ton, o.source_addr_npi, o.source_addr,
        o.dest_addr_ton, o.dest_addr_npi, o.destination_addr, o.esm_class, o.protocol_id,
        o.priority_flag, o.schedule_delivery_time, o.validity_period,
        o.registered_delivery, o.replace_if_present_flag, o.data_coding,
        o.sm_default_msg_id, len(sm))).encode("latin-1") + sm
    if o.tlvs:
        body += encode_tlvs(o.tlvs)
    return _pack_hdr(16 + len(body), o.command_id, o.command_status,
                     o.sequence_number) + body


def _enc_msgid(o) -> bytes:
    body = o.message_id.encode("latin-1") + b"\0"
    if o.tlvs:
        body += encode_tlvs(o.tlvs)
    return _pack_hdr(16 + len(body), o.command_id, o.command_status,
                     o.sequence_number) + body


def _enc_generic(o) -> bytes:
    body = encode_body(o, o.command_id)
    return _pack_hdr(16 + len(body), o.command_id, o.command_status,
                     o.sequence_number) + body


_ENCODERS = {c: (_enc_sm if issubclass(k, _Sm) else _enc_msgid if issubclass(k, _MsgIdResp)
                 else _enc_generic) for c, k in CLASSES.items()}


def encode(pdu) -> bytes:
    """PDU object -> wire bytes (header included). ValueError if a value does not fit."""
    try:
        return _ENCODERS[pdu.command_id](pdu)
    except (struct.error, OverflowError, UnicodeEncodeError, TypeError) as e:
        raise ValueError(f"cannot encode {type(pdu).__name__}: {e}") from None


def encode_many(pdus) -> bytes:
    """Several PDUs in one buffer (one send_all)."""
    return b"".join([encode(p) for p in pdus])


def resp_for(pdu, command_status: int = 0):
    """The response answering ``pdu`` (a request, or a PduError from Decoder.feed): the
    matching *_resp, or generic_nack when the command has none or is unknown. For a
    PduError the error's command_status is used unless one is given."""
    if isinstance(pdu, PduError):
        status = command_status or pdu.command_status
        cid = pdu.command_id
    else:
        status = command_status
        cid = pdu.command_id
    resp = RESP_OF.get(cid)
    cls = CLASSES[resp] if resp is not None else GenericNack
    return cls(pdu.sequence_number, status)
