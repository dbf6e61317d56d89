"""TTS through the real espeak-ng: plausible μ-law output, voice mapping, memory and disk
caches (hits run no subprocess), single-flight, and failure reporting."""

from __future__ import annotations

import shutil

import pytest
import trio

from gateway.codec import g711
from gateway.voice import tts

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (Debian package espeak-ng)")


def test_voice_mapping():
    assert tts.espeak_voice("man", "en-US") == "en-us+m3"
    assert tts.espeak_voice("woman", "en-GB") == "en-gb+f3"
    assert tts.espeak_voice("alice", "es-MX") == "es-419+f3"
    assert tts.espeak_voice("Polly.Joanna", "fr-FR") == "fr+f3"
    assert tts.espeak_voice("Polly.Matthew", "en-US") == "en-us+m3"
    assert tts.espeak_voice("man", "xx-YY") == "xx+m3"
    assert tts.espeak_voice("", "") == "en-us+m3"


@needs_espeak
async def test_hello_is_plausible_speech_and_cached():
    engine = tts.Tts()
    with trio.fail_after(20):
        ulaw = await engine.synthesize("hello")
        again = await engine.synthesize("hello")
    assert 0.3 <= len(ulaw) / 8000 <= 3.0
    assert g711.rms(ulaw) > 300                      # not silence
    assert again == ulaw and engine.runs == 1 and engine.hits == 1
    with trio.fail_after(20):
        other = await engine.synthesize("hello", voice="woman")
    assert engine.runs == 2 and other != ulaw
    assert await engine.synthesize("   ") == b"" and engine.runs == 2


@needs_espeak
async def test_concurrent_requests_run_once():
    engine = tts.Tts()
    results = []

    async def one():
        results.append(await engine.synthesize("one moment please"))

    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            for _ in range(4):
                n.start_soon(one)
    assert engine.runs == 1 and len(results) == 4 and len(set(results)) == 1


@needs_espeak
async def test_disk_cache_survives_a_new_engine(tmp_path):
    first = tts.Tts(cache_dir=str(tmp_path))
    with trio.fail_after(20):
        ulaw = await first.synthesize("goodbye", "alice", "en-US")
    second = tts.Tts(cache_dir=str(tmp_path))
    assert await second.synthesize("goodbye", "alice", "en-US") == ulaw
    assert second.runs == 0 and list(tmp_path.rglob("*.ulaw"))


async def test_memory_cache_is_bounded():
    engine = tts.Tts(cache_bytes=10)
    engine._put(("a", "v", "1"), b"x" * 6)
    engine._put(("b", "v", "1"), b"y" * 6)
    assert engine._get(("a", "v", "1")) is None and engine._get(("b", "v", "1"))


async def test_missing_or_failing_engine_raises(tmp_path):
    with pytest.raises(tts.TtsError, match="not installed"):
        await tts.Tts(executable=str(tmp_path / "nope")).synthesize("hi")
    with trio.fail_after(10):
        with pytest.raises(tts.TtsError, match="exited"):
            await tts.Tts(executable=shutil.which("false") or "/bin/false").synthesize("hi")
