"""The conference mixer (sans-I/O): each participant hears the others' sum, never
themself; muting, clipping, A-law legs, odd frame sizes, injected beeps, bounded queues."""

from __future__ import annotations

import struct

from gateway.codec import g711
from gateway.voice.mixer import FRAME, Mixer

from .phone import tone_power, tone_ulaw


def _pcm(frame: bytes, alaw: bool = False) -> bytes:
    return g711.alaw_decode(frame) if alaw else g711.ulaw_decode(frame)


def _peak(pcm: bytes) -> int:
    return max(abs(v) for v in struct.unpack(f"<{len(pcm) // 2}h", pcm))


def test_each_hears_the_others_not_themself():
    m = Mixer()
    for k in "abc":
        m.add(k)
    a, b = tone_ulaw(0.02, 500), tone_ulaw(0.02, 1500)
    m.push("a", a, False)
    m.push("b", b, False)
    out = m.tick()
    assert set(out) == {"a", "b", "c"} and all(len(v) == FRAME for v in out.values())
    ha, hb, hc = (_pcm(out[k]) for k in "abc")
    assert tone_power(ha, 1500) > 50 * tone_power(ha, 500)      # a hears b only
    assert tone_power(hb, 500) > 50 * tone_power(hb, 1500)      # b hears a only
    assert tone_power(hc, 500) > 1e5 and tone_power(hc, 1500) > 1e5   # c hears both
    assert _pcm(m.tick()["c"]) == bytes(2 * FRAME)             # nothing queued: silence


def test_muted_is_not_heard_but_hears():
    m = Mixer()
    m.add("a", muted=True)
    m.add("b")
    m.push("a", tone_ulaw(0.02, 800), False)
    m.push("b", tone_ulaw(0.02, 1200), False)
    out = m.tick()
    assert _pcm(out["b"]) == bytes(2 * FRAME)
    assert tone_power(_pcm(out["a"]), 1200) > 1e5
    m.set_muted("a", False)
    m.push("a", tone_ulaw(0.02, 800), False)
    assert tone_power(_pcm(m.tick()["b"]), 800) > 1e5


def test_sum_is_clipped_and_alaw_legs_get_alaw():
    m = Mixer()
    m.add("a")
    m.add("b")
    m.add("x", alaw=True)
    loud = g711.ulaw_encode(struct.pack(f"<{FRAME}h", *([30000] * FRAME)))
    m.push("a", loud, False)
    m.push("b", g711.ulaw_to_alaw(loud), True)
    got = _pcm(m.tick()["x"], alaw=True)
    assert _peak(got) >= 30000 and _peak(got) <= 32767            # 60000 clipped


def test_odd_frame_sizes_are_reframed_and_queue_is_bounded():
    m = Mixer(max_frames=3)
    m.add("a")
    m.add("b")
    tone = tone_ulaw(0.2, 1000)                                    # 10 frames
    m.push("a", tone[:100], False)
    assert _pcm(m.tick()["b"]) == bytes(2 * FRAME)                 # not a whole frame yet
    m.push("a", tone[100:240], False)                              # 240 = 1.5 frames
    assert tone_power(_pcm(m.tick()["b"]), 1000) > 1e5
    m.push("a", tone[240:], False)                                 # 8.5 frames more
    assert m.dropped == 6                                          # 9 whole frames, 3 kept
    heard = [m.tick()["b"] for _ in range(4)]
    assert heard[3] == g711.silence(FRAME)
    m.push("zz", tone, False)                                      # unknown key: ignored
    m.remove("a")
    assert set(m.tick()) == {"b"}


def test_injected_tone_reaches_everyone_then_stops():
    m = Mixer()
    m.add("a")
    m.add("b", alaw=True)
    m.inject(_pcm(tone_ulaw(0.05, 1000)))                          # 2.5 frames -> 3
    outs = [m.tick() for _ in range(4)]
    for i in range(3):
        assert tone_power(_pcm(outs[i]["a"]), 1000) > 1e5
        assert tone_power(_pcm(outs[i]["b"], alaw=True), 1000) > 1e4 or i == 2
    assert outs[3]["a"] == g711.silence(FRAME)


def _member(sid: str, **opts):
    from types import SimpleNamespace

    from gateway.codec import twiml_voice as tv
    from gateway.voice.conference import Participant
    leg = SimpleNamespace(call=SimpleNamespace(sid=sid), rtp=SimpleNamespace(alaw=False))
    return Participant(leg, tv.Conference("r", **opts), None)


def test_room_waits_for_a_starter_and_ends_on_exit():
    from gateway.voice.conference import Room
    room = Room("AC1", "r")
    a = _member("CA1", start_conference_on_enter=False)
    room.add(a)
    assert not room.started
    room.on_audio(a, tone_ulaw(0.02, 700), False)               # not started: not mixed
    room.add(b := _member("CA2", end_conference_on_exit=True, beep="false"))
    assert room.started
    assert tone_power(_pcm(room.mixer.tick()["CA2"]), 700) < 1e3
    room.on_audio(a, tone_ulaw(0.02, 700), False)
    assert tone_power(_pcm(room.mixer.tick()["CA2"]), 700) > 1e5
    room.remove(b)                                               # endConferenceOnExit
    assert room.ended and a.kicked.is_set()
    room.remove(a)
    assert not room.parts


def test_room_record_status_reasons_and_live_mute():
    from gateway.voice.conference import Room
    changes = []
    room = Room("AC1", "r", wall=lambda: 1_700_000_000.0, on_change=changes.append)
    a = _member("CA1", start_conference_on_enter=False, beep="false")
    room.add(a)
    assert room.record()["status"] == "init" and changes
    room.add(b := _member("CA2", beep="false"))
    assert room.record()["status"] == "in-progress"
    assert room.update("CA1", muted=True) is a and a.muted
    room.on_audio(a, tone_ulaw(0.02, 700), False)                # muted: nobody hears it
    assert tone_power(_pcm(room.mixer.tick()["CA2"]), 700) < 1e3
    room.update("CA1", muted=False)
    room.on_audio(a, tone_ulaw(0.02, 700), False)
    assert tone_power(_pcm(room.mixer.tick()["CA2"]), 700) > 1e5
    assert room.update("CA9", muted=True) is None and not room.kick("CA9")
    assert room.kick("CA2") and b.kicked.is_set() and not room.ended
    room.remove(b)
    room.remove(a)                                               # the last one left
    rec = room.record()
    assert (rec["status"], rec["reason_conference_ended"], rec["call_sid_ending_conference"]) \
        == ("completed", "last-participant-left", "CA1")
    api = Room("AC1", "s")
    api.add(c := _member("CA3"))
    api.end()
    assert c.kicked.is_set() and api.record()["reason_conference_ended"] == \
        "conference-ended-via-api"
