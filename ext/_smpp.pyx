# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""SMPP 3.4 PDU codec, Cython twin of ``gateway/codec/smpp_py.py`` (built into
``gateway.codec._smpp``).

Owns: the same API and PDU classes as the pure twin (cdef classes with public
attributes, see ``_smpp_pdus*.pxi``): ``encode``, ``encode_many``, ``decode``,
``Decoder`` (framing and decoding of the whole receive buffer in one pass), ``resp_for``,
``CLASSES``. submit_sm/deliver_sm, *_sm_resp and header-only PDUs are decoded and encoded
in C (encoders write into one preallocated bytes object); the rarely used operations go
through the shared layout-driven ``smpp_body`` module.

Error handling: identical to the pure twin - ``decode`` raises ``PduError`` with the ESME
status to answer, ``Decoder.feed`` returns PduError instances as items and raises only
``FramingError``, ``encode`` raises ValueError for values that do not fit.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeLatin1
from libc.stdint cimport uint32_t
from libc.string cimport memchr, memcpy

import struct

from gateway.codec.smpp_body import decode_body, encode_body, encode_tlvs as _py_enc_tlvs
from gateway.codec.smpp_consts import (
    RESP_BIT, RESP_OF, CommandId, FramingError, MessageState, PduError, Status, Tlv,
)

cdef extern from "Python.h":
    int PyUnicode_KIND(object)
    void* PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    int PyUnicode_1BYTE_KIND

include "_smpp_pdus.pxi"
include "_smpp_pdus2.pxi"

CLASSES = {c.command_id: c for c in (
    GenericNack, BindReceiver, BindReceiverResp, BindTransmitter, BindTransmitterResp,
    BindTransceiver, BindTransceiverResp, Outbind, Unbind, UnbindResp, EnquireLink,
    EnquireLinkResp, SubmitSm, SubmitSmResp, DeliverSm, DeliverSmResp, DataSm, DataSmResp,
    QuerySm, QuerySmResp, CancelSm, CancelSmResp, ReplaceSm, ReplaceSmResp, SubmitMulti,
    SubmitMultiResp, AlertNotification)}
cdef dict _CLASSES = CLASSES

# ---------------------------------------------------------------- decoding helpers

cdef inline uint32_t _rd32(const unsigned char* p) noexcept:
    return ((<uint32_t>p[0]) << 24) | ((<uint32_t>p[1]) << 16) | ((<uint32_t>p[2]) << 8) | p[3]


cdef int _short() except -1:
    raise PduError("PDU body shorter than its fields", 0x02)


cdef inline Py_ssize_t _nul(const unsigned char* b, Py_ssize_t p, Py_ssize_t end) except -1:
    cdef const void* q
    if p >= end:
        _short()
    q = memchr(b + p, 0, <size_t>(end - p))
    if q == NULL:
        _short()
    return <const unsigned char*>q - b


cdef inline str _latin1(const unsigned char* b, Py_ssize_t p, Py_ssize_t q):
    return PyUnicode_DecodeLatin1(<const char*>b + p, q - p, NULL)


cdef inline int _tlv_kind(unsigned int tag) noexcept:
    """1/2/4 int size, 0 C-octet string, -1 octet string, -2 unknown (mirrors TLV_KINDS)."""
    if tag in (0x0005, 0x0006, 0x0007, 0x000D, 0x000E, 0x000F, 0x0019, 0x0030, 0x0201,
               0x0205, 0x020D, 0x020E, 0x020F, 0x0210, 0x0302, 0x0304, 0x0420, 0x0421,
               0x0422, 0x0425, 0x0426, 0x0427, 0x0501, 0x1201, 0x1204, 0x1380):
        return 1
    if tag in (0x0008, 0x0010, 0x0204, 0x020A, 0x020B, 0x020C, 0x1203):
        return 2
    if tag == 0x0017:
        return 4
    if tag == 0x001D or tag == 0x001E:
        return 0
    if tag in (0x0202, 0x0203, 0x0303, 0x0381, 0x0423, 0x0424, 0x130C, 0x1383):
        return -1
    return -2


cdef object _dec_tlvs(const unsigned char* b, Py_ssize_t p, Py_ssize_t end):
    cdef dict d
    cdef unsigned int tag
    cdef Py_ssize_t ln
    cdef int kind
    if p >= end:
        return None
    d = {}
    while p < end:
        if end - p < 4:
            raise PduError("truncated TLV header", 0xC0)
        tag = (b[p] << 8) | b[p + 1]
        ln = (b[p + 2] << 8) | b[p + 3]
        p += 4
        if ln > end - p:
            raise PduError(f"TLV 0x{tag:04X} runs past the PDU", 0xC0)
        kind = _tlv_kind(tag)
        if kind == 1 and ln == 1:
            v = b[p]
        elif kind == 2 and ln == 2:
            v = (b[p] << 8) | b[p + 1]
        elif kind == 4 and ln == 4:
            v = _rd32(b + p)
        elif kind == 0 and ln > 0 and b[p + ln - 1] == 0:
            v = _latin1(b, p, p + ln - 1)
        else:
            v = PyBytes_FromStringAndSize(<const char*>b + p, ln)
        d[tag] = v
        p += ln
    return d


cdef object _dec_sm(_Sm o, const unsigned char* b, Py_ssize_t p, Py_ssize_t end):
    cdef Py_ssize_t q, n
    q = _nul(b, p, end)
    o.service_type = _latin1(b, p, q)
    p = q + 3
    if p > end:
        _short()
    o.source_addr_ton = b[q + 1]
    o.source_addr_npi = b[q + 2]
    q = _nul(b, p, end)
    o.source_addr = _latin1(b, p, q)
    p = q + 3
    if p > end:
        _short()
    o.dest_addr_ton = b[q + 1]
    o.dest_addr_npi = b[q + 2]
    q = _nul(b, p, end)
    o.destination_addr = _latin1(b, p, q)
    p = q + 4
    if p > end:
        _short()
    o.esm_class = b[q + 1]
    o.protocol_id = b[q + 2]
    o.priority_flag = b[q + 3]
    q = _nul(b, p, end)
    o.schedule_delivery_time = _latin1(b, p, q)
    p = q + 1
    q = _nul(b, p, end)
    o.validity_period = _latin1(b, p, q)
    p = q + 6
    if p > end:
        _short()
    o.registered_delivery = b[q + 1]
    o.replace_if_present_flag = b[q + 2]
    o.data_coding = b[q + 3]
    o.sm_default_msg_id = b[q + 4]
    n = b[q + 5]
    if n > end - p:
        raise PduError("sm_length runs past the PDU", 0x01)
    o.short_message = PyBytes_FromStringAndSize(<const char*>b + p, n)
    o.tlvs = _dec_tlvs(b, p + n, end)
    return o


cdef object _dec_msgid(_MsgIdResp o, const unsigned char* b, Py_ssize_t p, Py_ssize_t end):
    cdef Py_ssize_t q
    if p == end:
        o.message_id = ""
        o.tlvs = None
        return o
    q = _nul(b, p, end)
    o.message_id = _latin1(b, p, q)
    o.tlvs = _dec_tlvs(b, q + 1, end)
    return o


cdef object _dec_generic(object buf, Py_ssize_t start, Py_ssize_t end, uint32_t cid,
                         uint32_t status, uint32_t seq):
    cls = _CLASSES.get(cid)
    if cls is None:
        raise PduError(f"unknown command_id 0x{cid:08X}", 0x03)
    if end - start == 16 and cid & 0x80000000:
        return cls(seq, status)
    o = cls.__new__(cls)
    o.sequence_number = seq
    o.command_status = status
    try:
        decode_body(o, cid, buf[start:end])
    except (IndexError, ValueError, struct.error):
        _short()
    return o


cdef object _dispatch(object buf, const unsigned char* b, Py_ssize_t start, Py_ssize_t end,
                      uint32_t cid, uint32_t status, uint32_t seq):
    cdef Pdu o
    if cid == 0x00000004:
        o = SubmitSm.__new__(SubmitSm)
    elif cid == 0x00000005:
        o = DeliverSm.__new__(DeliverSm)
    elif cid == 0x80000004:
        o = SubmitSmResp.__new__(SubmitSmResp)
    elif cid == 0x80000005:
        o = DeliverSmResp.__new__(DeliverSmResp)
    elif cid == 0x80000103:
        o = DataSmResp.__new__(DataSmResp)
    elif cid == 0x00000015:
        o = EnquireLink.__new__(EnquireLink)
    elif cid == 0x80000015:
        o = EnquireLinkResp.__new__(EnquireLinkResp)
    elif cid in (0x80000000, 0x00000006, 0x80000006, 0x80000008, 0x80000007):
        o = _CLASSES[cid].__new__(_CLASSES[cid])
    else:
        return _dec_generic(buf, start, end, cid, status, seq)
    o.sequence_number = seq
    o.command_status = status
    if isinstance(o, _Sm):
        return _dec_sm(<_Sm>o, b, start + 16, end)
    if isinstance(o, _MsgIdResp):
        return _dec_msgid(<_MsgIdResp>o, b, start + 16, end)
    o.tlvs = _dec_tlvs(b, start + 16, end)
    return o


cdef object _decode_at(object buf, const unsigned char* b, Py_ssize_t start, Py_ssize_t end):
    cdef uint32_t cid = _rd32(b + start + 4)
    cdef uint32_t status = _rd32(b + start + 8)
    cdef uint32_t seq = _rd32(b + start + 12)
    try:
        return _dispatch(buf, b, start, end, cid, status, seq)
    except PduError as e:
        e.command_id = cid
        e.sequence_number = seq
        raise


def decode(frame):
    """One complete PDU (header included) -> PDU object; raises PduError."""
    cdef bytes buf = frame if type(frame) is bytes else bytes(frame)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(buf)
    cdef const unsigned char* b = <const unsigned char*>PyBytes_AS_STRING(buf)
    if n < 16:
        raise PduError("PDU shorter than its 16-byte header", 0x02)
    if _rd32(b) != <uint32_t>n:
        raise PduError(f"command_length {_rd32(b)} != frame length {n}", 0x02,
                       _rd32(b + 4), _rd32(b + 12))
    return _decode_at(buf, b, 0, n)


cdef class Decoder:
    """Splits a byte stream into PDUs. ``feed`` returns every complete PDU (or PduError
    instance for an undecodable body) and keeps the partial tail for the next call."""
    cdef public Py_ssize_t max_length
    cdef bytes _buf
    cdef object _broken

    def __init__(self, Py_ssize_t max_length=65536):
        self.max_length = max_length
        self._buf = b""
        self._broken = None

    @property
    def buffered(self):
        return PyBytes_GET_SIZE(self._buf)

    def feed(self, data):
        cdef bytes buf
        cdef Py_ssize_t pos = 0, n, length
        cdef const unsigned char* b
        cdef list out = []
        if self._broken is not None:
            raise FramingError(self._broken.message, self._broken.command_id,
                               self._broken.sequence_number)
        if PyBytes_GET_SIZE(self._buf):
            buf = self._buf + bytes(data)
        else:
            buf = data if type(data) is bytes else bytes(data)
        n = PyBytes_GET_SIZE(buf)
        b = <const unsigned char*>PyBytes_AS_STRING(buf)
        while n - pos >= 16:
            length = _rd32(b + pos)
            if length < 16 or length > self.max_length:
                self._buf = b""
                self._broken = FramingError(
                    f"command_length {length} outside [16, {self.max_length}]",
                    _rd32(b + pos + 4), _rd32(b + pos + 12), out)
                raise self._broken
            if length > n - pos:
                break
            try:
                out.append(_decode_at(buf, b, pos, pos + length))
            except PduError as e:
                out.append(e)
            pos += length
        self._buf = buf[pos:] if pos < n else b""
        return out

include "_smpp_enc.pxi"
