"""``<Dial><Conference>`` end to end: two phones (the project's SipUA + RtpSession) call
the gateway's number and land in one room; each hears the other's tone and not its own;
a join beeps; ``endConferenceOnExit`` ends the room for the other participant, whose
TwiML goes on with the ``<Dial action>``; signed conference status callbacks."""

from __future__ import annotations

import trio
from twilio.request_validator import RequestValidator

from ..e2e.harness import ACCOUNT, TOKEN
from ..e2e.voice_harness import NUMBER, voice_env
from .phone import phone, tone_power, tone_ulaw


async def _until(pred, timeout: float = 10.0):
    with trio.fail_after(timeout):
        while not (got := pred()):
            await trio.sleep(0.01)
        return got


def _room(env, name: str):
    return env.gw.voice.conferences.room(ACCOUNT, name)


async def test_two_callers_hear_each_other_not_themselves(tmp_path):
    with trio.fail_after(40):
        async with voice_env(tmp_path, []) as env:
            env.sink.replies["/voice"] = (200, "text/xml", (
                b'<Response><Dial><Conference beep="false">room1</Conference></Dial>'
                b"</Response>"))
            async with phone(env.sip_port, NUMBER) as a, phone(env.sip_port, NUMBER) as b:
                await _until(lambda: (r := _room(env, "room1")) and len(r.parts) == 2)
                for p in (a, b):                       # what came before: silence
                    p.rtp.stop_recording()
                    p.rtp.start_recording()
                async with trio.open_nursery() as n:
                    n.start_soon(a.rtp.play, tone_ulaw(1.0, 600))
                    n.start_soon(b.rtp.play, tone_ulaw(1.0, 1500))
                await _until(lambda: b.rtp.stats["packets_in"] > 60)
                await trio.sleep(0.2)           # the mix of the last frames is in flight
                heard_a, heard_b = a.rtp.stop_recording(), b.rtp.stop_recording()
            assert tone_power(heard_b, 600) > 1e5             # B hears A...
            assert tone_power(heard_b, 600) > 50 * tone_power(heard_b, 1500)  # ...not B
            assert tone_power(heard_a, 1500) > 1e5
            assert tone_power(heard_a, 1500) > 50 * tone_power(heard_a, 600)
            await _until(lambda: _room(env, "room1") is None)  # last one out: room gone


async def test_beep_end_on_exit_action_and_status_callbacks(tmp_path):
    with trio.fail_after(40):
        async with voice_env(tmp_path, []) as env:
            sink = env.sink
            sink.replies["/voice"] = (200, "text/xml", (
                b'<Response><Dial action="/after"><Conference endConferenceOnExit="true" '
                b'statusCallback="/conf" statusCallbackEvent="start end join leave">'
                b"room2</Conference></Dial></Response>"))
            sink.replies["/after"] = (200, "text/xml", b"<Response><Hangup/></Response>")
            async with phone(env.sip_port, NUMBER) as a:
                await _until(lambda: _room(env, "room2"))
                a.rtp.stop_recording()
                a.rtp.start_recording()
                async with phone(env.sip_port, NUMBER) as b:
                    await _until(lambda: len(_room(env, "room2").parts) == 2)
                    n0 = a.rtp.stats["packets_in"]
                    await _until(lambda: a.rtp.stats["packets_in"] >= n0 + 25)
                    assert tone_power(a.rtp.stop_recording(), 880) > 1e5   # the join beep
                    await a.hangup()              # endConferenceOnExit: B is let go
                    with trio.fail_after(10):
                        await b.call.ended.wait()  # /after -> <Hangup/> -> our BYE
            # both legs request the action (A's after its hangup, as Twilio does)
            afters = await sink.wait_for(lambda: len(sink.at("/after")) == 2 and sink.at("/after"))
            assert {h.form["DialCallStatus"] for h in afters} == {"completed"}
            hits = await sink.wait_for(lambda: len(sink.at("/conf")) >= 6 and sink.at("/conf"))
            hits.sort(key=lambda h: int(h.form["SequenceNumber"]))
            events = [h.form["StatusCallbackEvent"] for h in hits]
            assert events == ["conference-start", "participant-join", "participant-join",
                              "participant-leave", "conference-end", "participant-leave"]
            assert {h.form["FriendlyName"] for h in hits} == {"room2"}
            assert len({h.form["ConferenceSid"] for h in hits}) == 1
            assert hits[0].form["ConferenceSid"].startswith("CF")
            assert hits[1].form["CallSid"] != hits[2].form["CallSid"]
            assert hits[3].form["CallSid"] == hits[1].form["CallSid"]   # A left first
            assert all(RequestValidator(TOKEN).validate(
                h.url, h.form, h.headers["x-twilio-signature"]) for h in hits)
            assert _room(env, "room2") is None
