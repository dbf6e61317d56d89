"""G.711 μ-law (PCMU) and A-law (PCMA) codecs on byte strings, table driven.

Owns: PCM16 (signed 16-bit little-endian mono) <-> μ-law / A-law, μ-law <-> A-law
transcoding, silence bytes and a per-frame energy measure.

Rules: pure functions, no I/O, no numpy, no audioop (gone in Python 3.13). Encoders index
a 65,536-entry table by the unsigned 16-bit sample (built once at import with the same
algorithm as CPython's audioop: 14-bit μ-law with bias 0x21 and clip 8159, 13-bit A-law);
decoders use two 256-entry ``bytes.translate`` tables (low byte, high byte) interleaved by
slice assignment, so decoding runs at C speed. Odd trailing bytes of PCM input are ignored.
"""

from __future__ import annotations

import sys
from array import array

ULAW_SILENCE = 0xFF          # μ-law code of 0
ALAW_SILENCE = 0xD5          # A-law code of 0

_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for i, end in enumerate(ends):
        if value <= end:
            return i
    return 8


def _lin2ulaw(sample: int) -> int:
    pcm = sample >> 2                       # 14-bit
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, 8159) + 0x21
    seg = _segment(pcm, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask


def _ulaw2lin(code: int) -> int:
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return (0x84 - t) if u & 0x80 else (t - 0x84)


def _lin2alaw(sample: int) -> int:
    pcm = sample >> 3                       # 13-bit
    if pcm >= 0:
        mask = 0xD5
    else:
        mask, pcm = 0x55, -pcm - 1
    seg = _segment(pcm, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= ((pcm >> 1) if seg < 2 else (pcm >> seg)) & 0x0F
    return aval ^ mask


def _alaw2lin(code: int) -> int:
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def _signed(u: int) -> int:
    return u - 65536 if u >= 32768 else u


# Encoders: index = unsigned 16-bit sample.
_ENC_ULAW = bytes(_lin2ulaw(_signed(u)) for u in range(65536))
_ENC_ALAW = bytes(_lin2alaw(_signed(u)) for u in range(65536))

ULAW_TO_LINEAR = tuple(_ulaw2lin(c) for c in range(256))
ALAW_TO_LINEAR = tuple(_alaw2lin(c) for c in range(256))

# Decoders: per-byte tables for the low and high byte of the little-endian sample.
_DEC_ULAW_LO = bytes(v & 0xFF for v in ULAW_TO_LINEAR)
_DEC_ULAW_HI = bytes((v >> 8) & 0xFF for v in ULAW_TO_LINEAR)
_DEC_ALAW_LO = bytes(v & 0xFF for v in ALAW_TO_LINEAR)
_DEC_ALAW_HI = bytes((v >> 8) & 0xFF for v in ALAW_TO_LINEAR)

ULAW_TO_ALAW = bytes(_ENC_ALAW[v & 0xFFFF] for v in ULAW_TO_LINEAR)
ALAW_TO_ULAW = bytes(_ENC_ULAW[v & 0xFFFF] for v in ALAW_TO_LINEAR)

# Squared amplitude per code, for energy (RMS) without decoding.
_ULAW_SQ = tuple(v * v for v in ULAW_TO_LINEAR)
_ALAW_SQ = tuple(v * v for v in ALAW_TO_LINEAR)

_BIG = sys.byteorder == "big"


def _samples(pcm16: bytes) -> array:
    a = array("H")
    a.frombytes(memoryview(pcm16)[: len(pcm16) & ~1])
    if _BIG:
        a.byteswap()
    return a


def _decode(data: bytes, lo_table: bytes, hi_table: bytes) -> bytes:
    data = bytes(data)
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(lo_table)
    out[1::2] = data.translate(hi_table)
    return bytes(out)


def ulaw_encode(pcm16: bytes) -> bytes:
    """PCM16 LE -> μ-law, one byte per sample."""
    return bytes(map(_ENC_ULAW.__getitem__, _samples(pcm16)))


def alaw_encode(pcm16: bytes) -> bytes:
    """PCM16 LE -> A-law, one byte per sample."""
    return bytes(map(_ENC_ALAW.__getitem__, _samples(pcm16)))


def ulaw_decode(data: bytes) -> bytes:
    """μ-law -> PCM16 LE."""
    return _decode(data, _DEC_ULAW_LO, _DEC_ULAW_HI)


def alaw_decode(data: bytes) -> bytes:
    """A-law -> PCM16 LE."""
    return _decode(data, _DEC_ALAW_LO, _DEC_ALAW_HI)


def ulaw_to_alaw(data: bytes) -> bytes:
    return bytes(data).translate(ULAW_TO_ALAW)


def alaw_to_ulaw(data: bytes) -> bytes:
    return bytes(data).translate(ALAW_TO_ULAW)


def silence(n_samples: int, alaw: bool = False) -> bytes:
    """``n_samples`` of digital silence in μ-law (or A-law)."""
    return bytes((ALAW_SILENCE if alaw else ULAW_SILENCE,)) * n_samples


def rms(data: bytes, alaw: bool = False) -> float:
    """Root-mean-square amplitude (0..32768) of G.711 bytes, computed from the codes."""
    if not data:
        return 0.0
    sq = _ALAW_SQ if alaw else _ULAW_SQ
    return (sum(map(sq.__getitem__, data)) / len(data)) ** 0.5


def pcm16_rms(pcm16: bytes) -> float:
    """Root-mean-square amplitude of PCM16 LE samples."""
    a = array("h")
    a.frombytes(memoryview(pcm16)[: len(pcm16) & ~1])
    if _BIG:
        a.byteswap()
    if not a:
        return 0.0
    return (sum(x * x for x in a) / len(a)) ** 0.5
