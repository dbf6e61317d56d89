"""``<Conference waitUrl>`` end to end: a participant waiting for the room to start hears
the waitUrl's TwiML ``<Play>`` looped, or its audio looped, until a start-on-enter
participant joins (then the mix takes over); a waitUrl that fails means silence."""

from __future__ import annotations

import trio

from gateway.codec import g711
from gateway.voice import audio

from ..e2e.voice_harness import NUMBER, voice_env
from .phone import phone, tone_power, tone_ulaw
from .test_conference import _room, _until


def _wav(freq: float, seconds: float) -> bytes:
    return audio.wav_bytes(g711.ulaw_decode(tone_ulaw(seconds, freq)))


def _conf(attrs: str) -> tuple[int, str, bytes]:
    return (200, "text/xml", f'<Response><Dial><Conference beep="false" {attrs}>r'
                             f"</Conference></Dial></Response>".encode())


async def _listen(p, packets: int) -> bytes:
    """What ``p`` hears over the next ``packets`` RTP packets."""
    p.rtp.stop_recording()
    p.rtp.start_recording()
    n0 = p.rtp.stats["packets_in"]
    await _until(lambda: p.rtp.stats["packets_in"] >= n0 + packets)
    return p.rtp.stop_recording()


async def test_twiml_wait_loops_until_the_room_starts(tmp_path):
    with trio.fail_after(60):
        async with voice_env(tmp_path, []) as env:
            sink = env.sink
            sink.replies["/voice"] = _conf('startConferenceOnEnter="false" waitUrl="/hold"')
            sink.replies["/hold"] = (200, "text/xml",
                                     b"<Response><Play>/tone.wav</Play></Response>")
            sink.replies["/tone.wav"] = (200, "audio/x-wav", _wav(500, 0.4))
            async with phone(env.sip_port, NUMBER) as a:
                await _until(lambda: _room(env, "r"))
                await _until(lambda: len(sink.at("/tone.wav")) >= 2)     # looped
                heard = await _listen(a, 40)
                assert tone_power(heard, 500) > 1e5
                hold = sink.at("/hold")[0]
                assert hold.method == "POST" and hold.form["CallSid"].startswith("CA")
                sink.replies["/voice"] = _conf("")           # B starts the room
                async with phone(env.sip_port, NUMBER) as b:
                    room = await _until(lambda: (r := _room(env, "r")) and r.started and r)
                    assert room.status == "in-progress"
                    await _listen(a, 10)                     # frames already in flight
                    n_tone = len(sink.at("/tone.wav"))
                    async with trio.open_nursery() as n:
                        n.start_soon(b.rtp.play, tone_ulaw(1.0, 1500))
                        heard = await _listen(a, 40)
                    assert tone_power(heard, 500) < 1e4       # the wait music stopped
                    assert tone_power(heard, 1500) > 1e5      # the mix took over
                    assert len(sink.at("/tone.wav")) <= n_tone + 1


async def test_audio_wait_loops_and_a_failing_wait_url_is_silence(tmp_path):
    with trio.fail_after(60):
        async with voice_env(tmp_path, []) as env:
            sink = env.sink
            sink.replies["/voice"] = _conf('startConferenceOnEnter="false" '
                                           'waitUrl="/hold.wav" waitMethod="GET"')
            sink.replies["/hold.wav"] = (200, "audio/x-wav", _wav(1000, 0.3))
            async with phone(env.sip_port, NUMBER) as a:
                await _until(lambda: _room(env, "r"))
                await _listen(a, 20)
                heard = await _listen(a, 40)             # > 0.3 s: the audio loops
                assert tone_power(heard, 1000) > 1e5
                assert [h.method for h in sink.at("/hold.wav")] == ["GET"]   # fetched once
            await _until(lambda: _room(env, "r") is None)
            sink.replies["/voice"] = _conf('startConferenceOnEnter="false" waitUrl="/gone"')
            sink.replies["/gone"] = (404, "text/plain", b"no")
            async with phone(env.sip_port, NUMBER) as a:
                await _until(lambda: sink.at("/gone"))
                await _listen(a, 10)
                heard = await _listen(a, 30)             # the room's silent mix flows
                assert tone_power(heard, 1000) < 1e3 and max(
                    abs(int.from_bytes(heard[i:i + 2], "little", signed=True))
                    for i in range(0, len(heard), 2)) < 200
