"""Audio for calls: WAV read/write, MP3 decoding, resampling to 8 kHz, μ-law conversion,
<Play> fetch.

Owns: ``parse_wav`` (RIFF/WAVE: PCM 8/16/24/32-bit, float32, μ-law, A-law, any rate, any
channel count -> downmixed), ``parse_mp3`` (MPEG-1/2/2.5 layer III through miniaudio's
dr_mp3, no ffmpeg; any rate, downmixed), ``resample`` (soxr, the maintained libsoxr binding; a linear
fallback only when soxr is missing), ``to_ulaw_8k``, ``wav_bytes`` (for <Record>),
``beep`` and ``fetch`` (HTTP GET through the project's HttpClient with an ETag /
Last-Modified cache per URL).

Rules: everything here but ``fetch`` is pure; audio handed to RtpSession is 8 kHz μ-law.
``fetch`` decodes bodies over ``THREAD_DECODE_BYTES`` in a worker thread (an MP3 of
minutes must not stall every call's 20 ms pacing). MP3 is recognised by its ID3 tag or
frame sync, or an ``audio/mpeg`` type; a decoded MP3 is capped at ``MAX_MP3_SECONDS``.
Error handling: ``AudioError`` for unsupported/malformed media and non-2xx answers; the
HTTP client's own errors propagate (the interpreter decides what a failed <Play> does).
No retries here.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections import OrderedDict

import trio

from gateway.codec import g711

try:                                          # soxr (and numpy, which it needs)
    import numpy as _np
    import soxr as _soxr
except ImportError:                           # pragma: no cover - exercised without soxr
    _np = _soxr = None

try:                                          # MP3 <Play> (dr_mp3 via cffi, manylinux wheels)
    import miniaudio as _miniaudio
except ImportError:                           # pragma: no cover - exercised without it
    _miniaudio = None

MAX_AUDIO_BYTES = 10 * 1024 * 1024
MAX_MP3_SECONDS = 3600
THREAD_DECODE_BYTES = 64 * 1024
_MP3_TYPES = frozenset({"audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mpeg-3",
                        "audio/x-mp3", "audio/mpa"})
_FMT_PCM, _FMT_FLOAT, _FMT_ALAW, _FMT_ULAW, _FMT_EXT = 1, 3, 6, 7, 0xFFFE


class AudioError(ValueError):
    """Unsupported or malformed audio, or the audio URL did not answer 2xx."""


def parse_wav(data: bytes) -> tuple[bytes, int]:
    """RIFF/WAVE -> (PCM16 LE mono, sample rate)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError("not a RIFF/WAVE file")
    off, fmt = 12, None
    while off + 8 <= len(data):
        cid, size = data[off:off + 4], struct.unpack_from("<I", data, off + 4)[0]
        body = off + 8
        if cid == b"fmt ":
            if size < 16:
                raise AudioError("short fmt chunk")
            tag, channels, rate, _, align, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == _FMT_EXT and size >= 26:
                tag = struct.unpack_from("<H", data, body + 24)[0]
            fmt = (tag, channels, rate, align, bits)
        elif cid == b"data":
            if fmt is None:
                raise AudioError("data chunk before fmt chunk")
            end = min(len(data), body + size)      # streamed WAVs carry a bogus size
            return _to_pcm16_mono(data[body:end], *fmt), fmt[2]
        off = body + size + (size & 1)
    raise AudioError("no data chunk")


def _to_pcm16_mono(raw: bytes, tag: int, channels: int, rate: int, align: int,
                   bits: int) -> bytes:
    if channels < 1 or rate < 1000:
        raise AudioError(f"bad WAV format: {channels} channels at {rate} Hz")
    width = max(1, bits // 8)
    raw = raw[: len(raw) - len(raw) % (width * channels)]
    if tag in (_FMT_ULAW, _FMT_ALAW) and bits == 8:
        pcm = g711.ulaw_decode(raw) if tag == _FMT_ULAW else g711.alaw_decode(raw)
    elif tag == _FMT_PCM and bits == 16:
        pcm = raw
    elif tag == _FMT_PCM and bits == 8:           # unsigned 8-bit
        pcm = array("h", ((b - 128) << 8 for b in raw)).tobytes()
    elif tag == _FMT_PCM and bits in (24, 32):
        pcm = b"".join(raw[i + width - 2:i + width] for i in range(0, len(raw), width))
    elif tag == _FMT_FLOAT and bits == 32:
        fl = array("f")
        fl.frombytes(raw)
        pcm = array("h", (max(-32768, min(32767, int(x * 32767))) for x in fl)).tobytes()
    else:
        raise AudioError(f"unsupported WAV encoding (format {tag}, {bits} bits)")
    return _downmix(pcm, channels) if channels > 1 else pcm


def _downmix(pcm: bytes, channels: int) -> bytes:
    if _np is not None:
        a = _np.frombuffer(pcm, dtype="<i2").reshape(-1, channels).astype(_np.int32)
        return a.mean(axis=1).astype("<i2").tobytes()
    s = array("h")
    s.frombytes(pcm)
    if sys.byteorder == "big":
        s.byteswap()
    cols = [s[c::channels] for c in range(channels)]
    out = array("h", (sum(v) // channels for v in zip(*cols, strict=False)))
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def is_mp3(body: bytes, content_type: str = "") -> bool:
    """ID3v2 tag, an MPEG audio frame sync (11 set bits, layer III), or an MP3 type."""
    if body[:3] == b"ID3":
        return True
    if len(body) >= 2 and body[0] == 0xFF and body[1] & 0xE6 == 0xE2:
        return True
    return content_type.split(";")[0].strip().lower() in _MP3_TYPES


def parse_mp3(data: bytes) -> tuple[bytes, int]:
    """MP3 -> (PCM16 LE mono, sample rate)."""
    if _miniaudio is None:
        raise AudioError("MP3 needs the miniaudio package (pip install miniaudio)")
    try:
        info = _miniaudio.mp3_get_info(data)
        if info.duration > MAX_MP3_SECONDS:
            raise AudioError(f"MP3 longer than {MAX_MP3_SECONDS} s")
        snd = _miniaudio.mp3_read_s16(data)
    except _miniaudio.DecodeError as exc:
        raise AudioError(f"undecodable MP3 ({exc})") from None
    if not snd.samples or snd.nchannels < 1:
        raise AudioError("MP3 without audio frames")
    samples = snd.samples
    if sys.byteorder == "big":                    # pragma: no cover
        samples.byteswap()
    pcm = samples.tobytes()
    return (_downmix(pcm, snd.nchannels) if snd.nchannels > 1 else pcm), snd.sample_rate


def resample(pcm16: bytes, rate_in: int, rate_out: int = 8000) -> bytes:
    """PCM16 LE mono from ``rate_in`` to ``rate_out`` (soxr high quality)."""
    if rate_in == rate_out or not pcm16:
        return pcm16
    if _soxr is not None:
        x = _np.frombuffer(pcm16[: len(pcm16) & ~1], dtype="<i2")
        return _soxr.resample(x, rate_in, rate_out, quality="HQ").astype("<i2").tobytes()
    return _resample_linear(pcm16, rate_in, rate_out)


def _resample_linear(pcm16: bytes, rate_in: int, rate_out: int) -> bytes:
    """Fallback without soxr: box-filter to the output rate, then linear interpolation."""
    s = array("h")
    s.frombytes(pcm16[: len(pcm16) & ~1])
    if sys.byteorder == "big":
        s.byteswap()
    k = max(1, int(rate_in / rate_out))
    if k > 1:                                         # crude anti-alias average
        s = array("h", (sum(s[i:i + k]) // len(s[i:i + k]) for i in range(len(s))))
    n_out = int(len(s) * rate_out / rate_in)
    step = rate_in / rate_out
    out = array("h")
    last = len(s) - 1
    for j in range(n_out):
        x = j * step
        i = int(x)
        f = x - i
        out.append(int(s[i] * (1 - f) + s[min(i + 1, last)] * f))
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def to_ulaw_8k(pcm16: bytes, rate: int) -> bytes:
    return g711.ulaw_encode(resample(pcm16, rate, 8000))


def decode_audio(body: bytes, content_type: str = "") -> bytes:
    """A fetched body -> 8 kHz μ-law. WAV by magic; raw μ-law for audio/basic or x-mulaw,
    raw A-law for audio/x-alaw (their bytes can look like an MP3 frame sync, so the type
    decides first); MP3 by magic or type."""
    ctype = content_type.split(";")[0].strip().lower()
    if body[:4] == b"RIFF":
        pcm, rate = parse_wav(body)
        return to_ulaw_8k(pcm, rate)
    if ctype in ("audio/basic", "audio/x-mulaw", "audio/pcmu", "audio/ulaw"):
        if body[:4] == b".snd":                       # Sun .au header
            off, _, enc, rate, ch = struct.unpack_from(">IIIII", body, 4)
            if enc != 1 or ch != 1:
                raise AudioError("only mono μ-law .au is supported")
            data = body[off:]
            return data if rate == 8000 else to_ulaw_8k(g711.ulaw_decode(data), rate)
        return body
    if ctype in ("audio/x-alaw", "audio/pcma", "audio/alaw"):
        return g711.alaw_to_ulaw(body)
    if is_mp3(body, ctype):
        pcm, rate = parse_mp3(body)
        return to_ulaw_8k(pcm, rate)
    raise AudioError(f"unsupported audio type {ctype or 'unknown'!r} "
                     f"(WAV, MP3, audio/basic μ-law or A-law only)")


def wav_bytes(pcm16: bytes, rate: int = 8000) -> bytes:
    """A 16-bit mono PCM WAV file around ``pcm16``."""
    pcm16 = pcm16[: len(pcm16) & ~1]
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm16)) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", len(pcm16)) + pcm16)


_BEEP: bytes | None = None


def beep(seconds: float = 0.25, freq: float = 1000.0, amplitude: int = 12000) -> bytes:
    """A 1 kHz tone (Record's beep) as 8 kHz μ-law."""
    global _BEEP
    if _BEEP is not None and (seconds, freq, amplitude) == (0.25, 1000.0, 12000):
        return _BEEP
    n = int(8000 * seconds)
    pcm = array("h", (int(amplitude * math.sin(2 * math.pi * freq * i / 8000))
                      for i in range(n)))
    if sys.byteorder == "big":
        pcm.byteswap()
    out = g711.ulaw_encode(pcm.tobytes())
    if (seconds, freq, amplitude) == (0.25, 1000.0, 12000):
        _BEEP = out
    return out


class AudioCache:
    """Per-URL decoded audio with its validators; LRU bounded by total bytes."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[str, tuple[str | None, str | None, bytes]] = OrderedDict()

    def get(self, url: str):
        item = self._items.get(url)
        if item is not None:
            self._items.move_to_end(url)
        return item

    def put(self, url: str, etag: str | None, last_modified: str | None,
            ulaw: bytes) -> None:
        old = self._items.pop(url, None)
        if old is not None:
            self.size -= len(old[2])
        if len(ulaw) > self.max_bytes:
            return
        self._items[url] = (etag, last_modified, ulaw)
        self.size += len(ulaw)
        while self.size > self.max_bytes:
            _, (_, _, dropped) = self._items.popitem(last=False)
            self.size -= len(dropped)


DEFAULT_CACHE = AudioCache()


async def fetch(url: str, http_client, *, cache: AudioCache | None = None,
                max_body: int = MAX_AUDIO_BYTES, timeout: float = 15.0) -> bytes:
    """GET ``url`` -> 8 kHz μ-law. Revalidates a cached copy with If-None-Match /
    If-Modified-Since; a 304 reuses it without decoding again."""
    cache = DEFAULT_CACHE if cache is None else cache
    cached = cache.get(url)
    headers = [("Accept", "audio/*"), ("User-Agent", "gateway-voice/1")]
    if cached is not None:
        if cached[0]:
            headers.append(("If-None-Match", cached[0]))
        if cached[1]:
            headers.append(("If-Modified-Since", cached[1]))
    resp = await http_client.request("GET", url, headers=headers, max_body=max_body,
                                     total_timeout=timeout)
    if resp.status == 304 and cached is not None:
        return cached[2]
    if not 200 <= resp.status < 300:
        raise AudioError(f"GET {url} answered {resp.status}")
    ctype = resp.headers.get("content-type", "")
    if len(resp.body) > THREAD_DECODE_BYTES:
        ulaw = await trio.to_thread.run_sync(decode_audio, resp.body, ctype)
    else:
        ulaw = decode_audio(resp.body, ctype)
    etag, lm = resp.headers.get("etag"), resp.headers.get("last-modified")
    if etag or lm:
        cache.put(url, etag, lm, ulaw)
    return ulaw
