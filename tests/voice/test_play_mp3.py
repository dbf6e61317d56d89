"""``<Play>`` of MP3 files: decoding (miniaudio) to 8 kHz μ-law, sniffing, errors, and end
to end: a call whose TwiML plays an MP3 served over HTTP, where the phone (our SipUA +
RtpSession) hears the decoded tone; an undecodable MP3 is skipped (logged) and the call
goes on with the next verb. The fixture ``tests/fixtures/tone700.mp3`` is 1 s of a 700 Hz
sine, 22.05 kHz mono 32 kb/s (made once with LAME; not needed at run time)."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest
import trio

from gateway.codec import g711
from gateway.io.http_client import HttpClient
from gateway.io.http_server import HttpServer, Response
from gateway.voice import audio

from ..e2e.voice_harness import NUMBER, voice_env
from .phone import loud_span, phone, tone_power

pytest.importorskip("miniaudio")
MP3 = (Path(__file__).parent.parent / "fixtures" / "tone700.mp3").read_bytes()


def _dominant(pcm: bytes, freqs=(300, 440, 700, 1000, 1400, 2100)) -> float:
    return max(freqs, key=lambda f: tone_power(pcm, f))


def test_mp3_decodes_to_8k_ulaw_tone():
    assert audio.is_mp3(MP3) and audio.is_mp3(b"ID3\x04rest")
    ulaw = audio.decode_audio(MP3, "audio/mpeg")
    pcm = g711.ulaw_decode(ulaw)
    assert 0.95 <= len(ulaw) / 8000 <= 1.15          # 1 s (+ encoder padding)
    body = loud_span(pcm)
    assert 0.9 <= len(body) / 16000 <= 1.1
    assert _dominant(body) == 700
    assert tone_power(body, 700) > 100 * tone_power(body, 1400)
    # also recognised without a useful Content-Type (frame sync), and with one only
    assert audio.decode_audio(MP3, "application/octet-stream") == ulaw


def test_undecodable_mp3_and_raw_ulaw_not_mistaken_for_mp3():
    with pytest.raises(audio.AudioError, match="MP3"):
        audio.decode_audio(b"ID3" + bytes(300), "audio/mpeg")
    with pytest.raises(audio.AudioError):
        audio.decode_audio(b"not audio at all", "audio/mpeg")
    raw = bytes([0xFF, 0xF3]) * 400                   # μ-law that looks like a frame sync
    assert audio.decode_audio(raw, "audio/basic") == raw


async def test_call_plays_mp3_and_skips_an_undecodable_one(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "gateway.voice")
    with trio.fail_after(30):
        async with voice_env(tmp_path, []) as env:
            sink = env.sink
            sink.replies["/voice"] = (200, "text/xml", (
                b"<Response><Play>/broken.mp3</Play><Play>/tone.mp3</Play>"
                b"<Hangup/></Response>"))
            sink.replies["/broken.mp3"] = (200, "audio/mpeg", b"ID3" + b"\x00garbage" * 64)
            sink.replies["/tone.mp3"] = (200, "audio/mpeg", MP3)
            async with phone(env.sip_port, NUMBER) as ph:
                with trio.fail_after(15):
                    await ph.call.ended.wait()              # the gateway's BYE
                heard = ph.rtp.stop_recording()
            assert [h.path for h in sink.hits if h.path.endswith(".mp3")] == [
                "/broken.mp3", "/tone.mp3"]
            assert any("<Play>" in r.getMessage() and "broken.mp3" in r.getMessage()
                       for r in caplog.records)
            body = loud_span(heard)
            assert 0.85 <= len(body) / 16000 <= 1.2, len(body) / 16000
            assert _dominant(body) == 700
            assert tone_power(body, 700) > 100 * tone_power(body, 1000)
            # the phone heard what the decoder produced: same energy within G.711 error
            ref = loud_span(g711.ulaw_decode(audio.decode_audio(MP3, "audio/mpeg")))
            e = [sum(v * v for v in struct.unpack(f"<{len(x) // 2}h", x)) / len(x)
                 for x in (body, ref)]
            assert 0.8 < e[0] / e[1] < 1.25


async def test_fetch_long_mp3_decodes_in_a_thread_and_revalidates_with_etag(monkeypatch):
    """A body over THREAD_DECODE_BYTES decodes off the event loop; a 304 reuses it."""
    long_mp3 = MP3 * 17                      # MP3 frames concatenate: ~17 s, > 64 KB
    assert len(long_mp3) > audio.THREAD_DECODE_BYTES
    seen: list[str | None] = []
    threads: list[object] = []
    real = trio.to_thread.run_sync

    async def spy(fn, *args, **kw):
        threads.append(fn)
        return await real(fn, *args, **kw)

    monkeypatch.setattr(trio.to_thread, "run_sync", spy)

    async def handle(req):
        seen.append(req.headers.get("if-none-match"))
        if req.headers.get("if-none-match") == '"m1"':
            return Response(304, [("ETag", '"m1"')], b"")
        return Response(200, [("Content-Type", "audio/mpeg"), ("ETag", '"m1"')], long_mp3)

    server = HttpServer(handle, "127.0.0.1", 0)
    client = HttpClient()
    cache = audio.AudioCache()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            url = f"http://127.0.0.1:{server.port}/long.mp3"
            first = await audio.fetch(url, client, cache=cache)
            assert 16.5 <= len(first) / 8000 <= 19.5
            assert threads.count(audio.decode_audio) == 1
            assert await audio.fetch(url, client, cache=cache) is first
            assert seen == [None, '"m1"'] and threads.count(audio.decode_audio) == 1
            await client.aclose()
            nursery.cancel_scope.cancel()
