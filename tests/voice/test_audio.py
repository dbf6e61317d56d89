"""WAV parsing/writing, resampling to 8 kHz μ-law, beep, and audio.fetch against a real
loopback HttpServer with ETag revalidation (304 -> cached copy)."""

from __future__ import annotations

import math
import struct

import pytest
import trio

from gateway.codec import g711
from gateway.io.http_client import ClientLimits, HttpClient
from gateway.io.http_server import HttpServer, Response
from gateway.voice import audio


def sine_pcm(seconds: float, rate: int, freq: float = 440.0, amp: int = 10000,
             channels: int = 1) -> bytes:
    n = int(rate * seconds)
    vals = [int(amp * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)]
    inter = [v for v in vals for _ in range(channels)]
    return struct.pack(f"<{len(inter)}h", *inter)


def wav(raw: bytes, rate: int, channels: int = 1, bits: int = 16, tag: int = 1) -> bytes:
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    body += b"LIST" + struct.pack("<I", 5) + b"x" * 5 + b"\x00"   # odd chunk, padded
    body += b"data" + struct.pack("<I", len(raw)) + raw
    return b"RIFF" + struct.pack("<I", len(body)) + body


def dominant_period(pcm: bytes) -> float:
    """Mean samples between rising zero crossings."""
    s = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    ups = [i for i in range(1, len(s)) if s[i - 1] < 0 <= s[i]]
    return (ups[-1] - ups[0]) / (len(ups) - 1)


def test_wav_bytes_round_trip():
    pcm = sine_pcm(0.1, 8000)
    data = audio.wav_bytes(pcm, 8000)
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt "
    assert len(data) == 44 + len(pcm)
    assert audio.parse_wav(data) == (pcm, 8000)


def test_stereo_44k1_is_downmixed_and_resampled():
    raw = sine_pcm(1.0, 44100, freq=500, channels=2)
    ulaw = audio.decode_audio(wav(raw, 44100, channels=2), "audio/wav")
    assert abs(len(ulaw) - 8000) <= 2
    pcm8 = g711.ulaw_decode(ulaw)
    assert dominant_period(pcm8) == pytest.approx(16.0, rel=0.01)     # 500 Hz at 8 kHz
    assert g711.pcm16_rms(pcm8) == pytest.approx(10000 / math.sqrt(2), rel=0.05)


def test_22k05_espeak_rate_resamples_to_8k():
    ulaw = audio.to_ulaw_8k(sine_pcm(0.5, 22050, freq=1000), 22050)
    assert abs(len(ulaw) - 4000) <= 2
    assert dominant_period(g711.ulaw_decode(ulaw)) == pytest.approx(8.0, rel=0.01)


def test_ulaw_alaw_and_8bit_wavs():
    pcm = sine_pcm(0.05, 8000)
    u = g711.ulaw_encode(pcm)
    assert audio.parse_wav(wav(u, 8000, bits=8, tag=7))[0] == g711.ulaw_decode(u)
    a = g711.alaw_encode(pcm)
    assert audio.parse_wav(wav(a, 8000, bits=8, tag=6))[0] == g711.alaw_decode(a)
    assert audio.decode_audio(wav(u, 8000, bits=8, tag=7)) == u
    eight = bytes([128, 255, 0])
    assert audio.parse_wav(wav(eight, 8000, bits=8))[0] == struct.pack("<3h", 0, 32512,
                                                                        -32768)


def test_streamed_wav_with_bogus_size_and_errors():
    pcm = sine_pcm(0.05, 8000)
    data = bytearray(audio.wav_bytes(pcm))
    data[40:44] = b"\xff\xff\xff\x7f"                       # as espeak-ng --stdout writes
    assert audio.parse_wav(bytes(data)) == (pcm, 8000)
    for bad in (b"", b"RIFF0000WAVX", wav(pcm, 8000, bits=12)):
        with pytest.raises(audio.AudioError):
            audio.parse_wav(bad)
    with pytest.raises(audio.AudioError):
        audio.decode_audio(b"ID3\x03mp3data", "audio/mpeg")
    assert audio.decode_audio(b"\x01\x02", "audio/basic") == b"\x01\x02"


def test_beep_is_quarter_second_1khz():
    b = audio.beep()
    assert len(b) == 2000
    pcm = g711.ulaw_decode(b)
    assert dominant_period(pcm) == pytest.approx(8.0, rel=0.01)
    assert g711.pcm16_rms(pcm) > 5000


class AudioSite:
    """Serves /a.wav with an ETag and answers If-None-Match with 304."""

    def __init__(self) -> None:
        self.body = wav(sine_pcm(0.5, 16000), 16000)
        self.etag = '"v1"'
        self.seen: list[tuple[str, str | None]] = []

    async def handle(self, req):
        inm = req.headers.get("if-none-match")
        self.seen.append((req.path, inm))
        if req.path == "/raw.ulaw":
            return Response(200, [("Content-Type", "audio/basic")], b"\x00" * 800)
        if req.path != "/a.wav":
            return Response(404, [], b"no")
        if inm == self.etag:
            return Response(304, [("ETag", self.etag)], b"")
        return Response(200, [("Content-Type", "audio/wav"), ("ETag", self.etag)], self.body)


async def test_fetch_uses_etag_and_304():
    site = AudioSite()
    server = HttpServer(site.handle, "127.0.0.1", 0)
    client = HttpClient(ClientLimits(max_body=1024))          # audio needs a larger cap
    cache = audio.AudioCache()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            url = f"http://127.0.0.1:{server.port}/a.wav"
            first = await audio.fetch(url, client, cache=cache)
            assert abs(len(first) - 4000) <= 2
            second = await audio.fetch(url, client, cache=cache)
            assert second is first                               # reused, not re-decoded
            assert site.seen == [("/a.wav", None), ("/a.wav", '"v1"')]
            site.etag, site.body = '"v2"', wav(sine_pcm(0.25, 8000), 8000)
            third = await audio.fetch(url, client, cache=cache)
            assert len(third) == 2000 and cache.get(url)[0] == '"v2"'
            raw = f"http://127.0.0.1:{server.port}/raw.ulaw"
            assert await audio.fetch(raw, client, cache=cache) == b"\x00" * 800
            with pytest.raises(audio.AudioError):
                await audio.fetch(f"http://127.0.0.1:{server.port}/missing", client,
                                  cache=cache)
            await client.aclose()
            nursery.cancel_scope.cancel()


def test_cache_is_bounded():
    c = audio.AudioCache(max_bytes=10)
    c.put("a", "1", None, b"x" * 6)
    c.put("b", "1", None, b"y" * 6)
    assert c.get("a") is None and c.get("b")[2] == b"y" * 6 and c.size == 6
    c.put("big", "1", None, b"z" * 11)
    assert c.get("big") is None
