# Encoders of the Cython SMPP twin (included by _smpp.pyx): each hot PDU is written into
# one preallocated bytes object; the rest go through smpp_body.encode_body.

cdef inline Py_ssize_t _tlen(str s) except -1:
    if s is None:
        raise ValueError("text field is None")
    if PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND:
        raise ValueError("text is not latin-1")
    return PyUnicode_GET_LENGTH(s)


cdef inline unsigned char* _put_s(unsigned char* w, str s, Py_ssize_t n) noexcept:
    memcpy(w, PyUnicode_DATA(s), n)
    w[n] = 0
    return w + n + 1


cdef inline unsigned char* _put32(unsigned char* w, uint32_t v) noexcept:
    w[0] = v >> 24
    w[1] = (v >> 16) & 0xFF
    w[2] = (v >> 8) & 0xFF
    w[3] = v & 0xFF
    return w + 4


cdef inline unsigned char _u8(int v) except? 0:
    if v < 0 or v > 255:
        raise ValueError(f"{v} does not fit in one octet")
    return <unsigned char>v


cdef Py_ssize_t _tlv_vlen(object tag, object v) except -1:
    cdef int kind
    cdef unsigned long long iv
    if not 0 <= tag <= 0xFFFF:
        raise ValueError(f"TLV tag {tag!r} out of range")
    if type(v) is bytes:
        n = PyBytes_GET_SIZE(v)
    elif type(v) is str:
        n = _tlen(v) + 1
    elif isinstance(v, int):
        kind = _tlv_kind(tag)
        if kind not in (1, 2, 4):
            raise ValueError(f"TLV 0x{tag:04X} takes bytes or str, not int")
        if v < 0 or v > (0xFF if kind == 1 else 0xFFFF if kind == 2 else 0xFFFFFFFF):
            raise ValueError(f"TLV 0x{tag:04X} value {v} does not fit {kind} octets")
        n = kind
    else:
        return -2
    if n > 0xFFFF:
        raise ValueError(f"TLV 0x{tag:04X} longer than 65535 octets")
    return n


cdef bytes _enc_tlvs(dict tlvs):
    cdef Py_ssize_t total = 0, n
    cdef unsigned char* w
    cdef uint32_t iv
    cdef int kind
    for tag, v in tlvs.items():
        n = _tlv_vlen(tag, v)
        if n == -2:
            return _py_enc_tlvs(tlvs)
        total += 4 + n
    out = PyBytes_FromStringAndSize(NULL, total)
    w = <unsigned char*>PyBytes_AS_STRING(out)
    for tag, v in tlvs.items():
        w[0] = (<unsigned int>tag) >> 8
        w[1] = (<unsigned int>tag) & 0xFF
        if type(v) is bytes:
            n = PyBytes_GET_SIZE(v)
            memcpy(w + 4, PyBytes_AS_STRING(v), n)
        elif type(v) is str:
            n = PyUnicode_GET_LENGTH(v)
            _put_s(w + 4, v, n)
            n += 1
        else:
            kind = _tlv_kind(tag)
            iv = v
            n = kind
            if kind == 1:
                w[4] = iv
            elif kind == 2:
                w[4] = iv >> 8
                w[5] = iv & 0xFF
            else:
                _put32(w + 4, iv)
        w[2] = n >> 8
        w[3] = n & 0xFF
        w += 4 + n
    return out


cdef bytes _enc_sm(_Sm o):
    cdef Py_ssize_t l1 = _tlen(o.service_type), l2 = _tlen(o.source_addr)
    cdef Py_ssize_t l3 = _tlen(o.destination_addr), l4 = _tlen(o.schedule_delivery_time)
    cdef Py_ssize_t l5 = _tlen(o.validity_period), nsm, ntl = 0, total
    cdef bytes sm = o.short_message, tl = None
    cdef unsigned char* w
    if sm is None:
        raise ValueError("short_message is None")
    nsm = PyBytes_GET_SIZE(sm)
    if nsm > 255:
        raise ValueError("short_message longer than 255 octets; use message_payload")
    if o.tlvs:
        tl = _enc_tlvs(o.tlvs)
        ntl = PyBytes_GET_SIZE(tl)
    total = 16 + l1 + l2 + l3 + l4 + l5 + 17 + nsm + ntl
    out = PyBytes_FromStringAndSize(NULL, total)
    w = <unsigned char*>PyBytes_AS_STRING(out)
    w = _put32(w, <uint32_t>total)
    w = _put32(w, 5 if type(o) is DeliverSm else 4)
    w = _put32(w, o.command_status)
    w = _put32(w, o.sequence_number)
    w = _put_s(w, o.service_type, l1)
    w[0] = _u8(o.source_addr_ton)
    w[1] = _u8(o.source_addr_npi)
    w = _put_s(w + 2, o.source_addr, l2)
    w[0] = _u8(o.dest_addr_ton)
    w[1] = _u8(o.dest_addr_npi)
    w = _put_s(w + 2, o.destination_addr, l3)
    w[0] = _u8(o.esm_class)
    w[1] = _u8(o.protocol_id)
    w[2] = _u8(o.priority_flag)
    w = _put_s(w + 3, o.schedule_delivery_time, l4)
    w = _put_s(w, o.validity_period, l5)
    w[0] = _u8(o.registered_delivery)
    w[1] = _u8(o.replace_if_present_flag)
    w[2] = _u8(o.data_coding)
    w[3] = _u8(o.sm_default_msg_id)
    w[4] = <unsigned char>nsm
    memcpy(w + 5, PyBytes_AS_STRING(sm), nsm)
    if ntl:
        memcpy(w + 5 + nsm, PyBytes_AS_STRING(tl), ntl)
    return out


cdef bytes _enc_head(Pdu o, uint32_t cid, str text, bint has_text):
    """Header + optional one C-octet string + TLVs (msg-id responses, empty bodies)."""
    cdef Py_ssize_t lt = 0, ntl = 0, total
    cdef bytes tl = None
    cdef unsigned char* w
    if has_text:
        lt = _tlen(text) + 1
    if o.tlvs:
        tl = _enc_tlvs(o.tlvs)
        ntl = PyBytes_GET_SIZE(tl)
    total = 16 + lt + ntl
    out = PyBytes_FromStringAndSize(NULL, total)
    w = <unsigned char*>PyBytes_AS_STRING(out)
    w = _put32(w, <uint32_t>total)
    w = _put32(w, cid)
    w = _put32(w, o.command_status)
    w = _put32(w, o.sequence_number)
    if has_text:
        w = _put_s(w, text, lt - 1)
    if ntl:
        memcpy(w, PyBytes_AS_STRING(tl), ntl)
    return out


cdef bytes _encode(object pdu):
    if isinstance(pdu, _Sm):
        return _enc_sm(<_Sm>pdu)
    if isinstance(pdu, _MsgIdResp):
        return _enc_head(<Pdu>pdu, pdu.command_id, (<_MsgIdResp>pdu).message_id, True)
    if isinstance(pdu, _Empty):
        return _enc_head(<Pdu>pdu, pdu.command_id, None, False)
    body = encode_body(pdu, pdu.command_id)
    return struct.pack(">IIII", 16 + len(body), pdu.command_id, pdu.command_status,
                       pdu.sequence_number) + body


def encode(pdu):
    """PDU object -> wire bytes (header included). ValueError if a value does not fit."""
    try:
        return _encode(pdu)
    except (struct.error, OverflowError, UnicodeEncodeError, TypeError) as e:
        raise ValueError(f"cannot encode {type(pdu).__name__}: {e}") from None


def encode_many(pdus):
    """Several PDUs in one buffer (one send_all)."""
    return b"".join([encode(p) for p in pdus])


def resp_for(pdu, command_status=0):
    """The response answering ``pdu`` (a request, or a PduError from Decoder.feed): the
    matching *_resp, or generic_nack when the command has none or is unknown. For a
    PduError the error's command_status is used unless one is given."""
    if isinstance(pdu, PduError):
        status = command_status or pdu.command_status
    else:
        status = command_status
    resp = RESP_OF.get(pdu.command_id)
    cls = _CLASSES[resp] if resp is not None else GenericNack
    return cls(pdu.sequence_number, status)
