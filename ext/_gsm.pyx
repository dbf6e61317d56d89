# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""GSM 03.38 default alphabet, Cython twin of ``gateway/codec/gsm_py.py``.

Same names, results and errors as the pure twin (its docstring has the rules): strict
``encode`` (``ValueError`` on a non-GSM character), lenient ``decode`` (never raises),
``pack``/``unpack`` of 8 septets into 7 octets. The loops work on the str's own storage
(1-, 2- or 4-byte kind) and write straight into the result object.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_DATA, PyUnicode_KIND, PyUnicode_READ
from libc.string cimport memcpy
from libc.stdint cimport int16_t, uint8_t, uint16_t, uint32_t

cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)

cdef enum:
    STACK_BUF = 1024

BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENSION = {
    0x0A: "\x0c", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\",
    0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€",
}
ESC = 0x1B
cdef enum:
    C_ESC = 0x1B

# code point < 0x100 -> septet (0..0x7F), 0x100 | septet for an ESC pair, -1 not GSM
cdef int16_t ENC_LATIN[256]
# septet -> code point (basic), and after ESC
cdef uint16_t DEC_BASIC[256]
cdef uint16_t DEC_ESC[128]
# 1 when the basic decode of an octet is below 0x100 (one-byte result possible)
cdef bint DEC_NARROW[256]


cdef void _init_tables():
    cdef int i
    for i in range(256):
        ENC_LATIN[i] = -1
        DEC_BASIC[i] = 0xFFFD
    for i in range(128):
        DEC_BASIC[i] = ord(BASIC[i])
        if i != ESC and DEC_BASIC[i] < 0x100:
            ENC_LATIN[DEC_BASIC[i]] = i
        DEC_ESC[i] = DEC_BASIC[i]
    for i, ch in EXTENSION.items():
        DEC_ESC[i] = ord(ch)
        if ord(ch) < 0x100:
            ENC_LATIN[ord(ch)] = 0x100 | i
    for i in range(256):
        DEC_NARROW[i] = DEC_BASIC[i] < 0x100


_init_tables()


cdef inline int _enc_wide(Py_UCS4 c) noexcept nogil:
    """Septet code for a code point >= 0x100 (Greek capitals, euro), or -1."""
    if c == 0x20AC:
        return 0x100 | 0x65
    if c == 0x0394: return 0x10
    if c == 0x03A6: return 0x12
    if c == 0x0393: return 0x13
    if c == 0x039B: return 0x14
    if c == 0x03A9: return 0x15
    if c == 0x03A0: return 0x16
    if c == 0x03A8: return 0x17
    if c == 0x03A3: return 0x18
    if c == 0x0398: return 0x19
    if c == 0x039E: return 0x1A
    return -1


cdef object _not_gsm(str text, Py_ssize_t pos):
    return ValueError(f"character {text[pos]!r} at position {pos} is not in GSM 03.38")


cdef Py_ssize_t _count(str text) except -2:
    """Septets ``text`` needs, or -(pos + 3) for the first non-GSM char at ``pos``."""
    cdef Py_ssize_t n = len(text), i, total = 0
    cdef int kind = PyUnicode_KIND(text)
    cdef void *data = PyUnicode_DATA(text)
    cdef const uint8_t *d1
    cdef Py_UCS4 c
    cdef int code
    if kind == 1:
        d1 = <const uint8_t *>data
        for i in range(n):
            code = ENC_LATIN[d1[i]]
            if code < 0:
                return -(i + 3)
            total += 1 + (code >> 8)
        return total
    for i in range(n):
        c = PyUnicode_READ(kind, data, i)
        code = ENC_LATIN[c] if c < 0x100 else _enc_wide(c)
        if code < 0:
            return -(i + 3)
        total += 1 + (code >> 8)
    return total


def encode(str text):
    """Return ``text`` as unpacked septets; ``ValueError`` if a character is not GSM."""
    cdef Py_ssize_t n = len(text), o
    cdef int kind = PyUnicode_KIND(text)
    cdef void *data = PyUnicode_DATA(text)
    cdef uint8_t stack[STACK_BUF]
    cdef uint8_t *w = stack
    if 2 * n > STACK_BUF:
        w = <uint8_t *>PyMem_Malloc(2 * n)
        if w == NULL:
            raise MemoryError()
    try:
        o = _encode_into(text, n, kind, data, w)
        return PyBytes_FromStringAndSize(<char *>w, o)
    finally:
        if w != stack:
            PyMem_Free(w)


cdef Py_ssize_t _encode_into(str text, Py_ssize_t n, int kind, void *data,
                             uint8_t *w) except -1:
    cdef Py_ssize_t i, o = 0
    cdef const uint8_t *d1
    cdef const uint16_t *d2
    cdef Py_UCS4 c
    cdef int code
    if kind == 1:
        d1 = <const uint8_t *>data
        for i in range(n):
            code = ENC_LATIN[d1[i]]
            if code < 0x80:
                if code < 0:
                    raise _not_gsm(text, i)
                w[o] = <uint8_t>code
                o += 1
            else:
                w[o] = C_ESC
                w[o + 1] = <uint8_t>(code & 0x7F)
                o += 2
    elif kind == 2:
        d2 = <const uint16_t *>data
        for i in range(n):
            c = d2[i]
            code = ENC_LATIN[c] if c < 0x100 else _enc_wide(c)
            if code < 0x80:
                if code < 0:
                    raise _not_gsm(text, i)
                w[o] = <uint8_t>code
                o += 1
            else:
                w[o] = C_ESC
                w[o + 1] = <uint8_t>(code & 0x7F)
                o += 2
    else:
        for i in range(n):
            c = PyUnicode_READ(kind, data, i)
            code = ENC_LATIN[c] if c < 0x100 else _enc_wide(c)
            if code < 0x80:
                if code < 0:
                    raise _not_gsm(text, i)
                w[o] = <uint8_t>code
                o += 1
            else:
                w[o] = C_ESC
                w[o + 1] = <uint8_t>(code & 0x7F)
                o += 2
    return o


def decode(data):
    """Return the text of unpacked septets ``data`` (lenient, never raises)."""
    if type(data) is not bytes:
        data = bytes(data)
    return _decode(<bytes>data)


cdef str _decode(bytes buf):
    cdef const uint8_t *data = <const uint8_t *>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(buf)
    cdef uint16_t stack[STACK_BUF]
    cdef uint16_t *tmp = stack
    if n > STACK_BUF:
        tmp = <uint16_t *>PyMem_Malloc(n * sizeof(uint16_t))
        if tmp == NULL:
            raise MemoryError()
    try:
        return _decode_via(data, n, tmp)
    finally:
        if tmp != stack:
            PyMem_Free(tmp)


cdef str _decode_via(const uint8_t *data, Py_ssize_t n, uint16_t *tmp):
    """Decode into ``tmp`` (every GSM char fits 16 bits), then copy into a str."""
    cdef Py_ssize_t i, o = 0
    cdef uint16_t c, maxchar = 0
    cdef uint8_t b
    cdef bint esc = False
    for i in range(n):
        b = data[i]
        if b == C_ESC:
            esc = True
            continue
        if esc:
            c = DEC_ESC[b] if b < 0x80 else 0xFFFD
            esc = False
        else:
            c = DEC_BASIC[b]
        maxchar |= c
        tmp[o] = c
        o += 1
    # canonical form: ASCII, Latin-1 or 2-byte storage, as the widest char needs
    cdef str out = PyUnicode_New(o, 0x7F if maxchar < 0x80 else (
        0xFF if maxchar < 0x100 else 0xFFFF))
    cdef uint8_t *w1
    if maxchar < 0x100:
        w1 = <uint8_t *>PyUnicode_DATA(out)
        for i in range(o):
            w1[i] = <uint8_t>tmp[i]
    else:
        memcpy(PyUnicode_DATA(out), tmp, o * sizeof(uint16_t))
    return out


def is_gsm(str text):
    """True when every character of ``text`` is in the basic or extension table."""
    return _count(text) >= 0


def septets(str text):
    """Number of septets ``text`` takes (extension chars count 2); ``ValueError`` if not GSM."""
    cdef Py_ssize_t r = _count(text)
    if r < 0:
        raise _not_gsm(text, -r - 3)
    return r


def pack(const uint8_t[::1] septets not None):
    """Pack unpacked septets 8-into-7 octets (LSB first); ``ValueError`` on an octet > 0x7F."""
    cdef Py_ssize_t n = septets.shape[0], i, o = 0
    cdef Py_ssize_t size = (n * 7 + 7) // 8
    cdef uint32_t acc = 0
    cdef int bits = 0
    cdef uint8_t s
    for i in range(n):
        if septets[i] > 0x7F:
            raise ValueError("septet value over 0x7F")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, size)
    cdef uint8_t *w = <uint8_t *>PyBytes_AS_STRING(out)
    for i in range(n):
        acc |= (<uint32_t>septets[i]) << bits
        bits += 7
        if bits >= 8:
            w[o] = <uint8_t>(acc & 0xFF)
            o += 1
            acc >>= 8
            bits -= 8
    if bits > 0:
        w[o] = <uint8_t>(acc & 0xFF)
    return out


def unpack(const uint8_t[::1] data not None, Py_ssize_t n_septets):
    """Unpack ``n_septets`` septets from packed ``data``; ``ValueError`` if too short."""
    cdef Py_ssize_t n = data.shape[0], i, o = 0
    if n_septets < 0 or n_septets * 7 > n * 8:
        raise ValueError(f"{n} octets hold fewer than {n_septets} septets")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n_septets)
    cdef uint8_t *w = <uint8_t *>PyBytes_AS_STRING(out)
    cdef uint32_t acc = 0
    cdef int bits = 0
    i = 0
    while o < n_septets:
        if bits < 7:
            acc |= (<uint32_t>data[i]) << bits
            i += 1
            bits += 8
        w[o] = <uint8_t>(acc & 0x7F)
        o += 1
        acc >>= 7
        bits -= 7
    return out
