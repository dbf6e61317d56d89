"""``<Enqueue>`` / ``<Dial><Queue>`` end to end with two of our phones: A waits in the
queue hearing the waitUrl audio, B dials the queue, the ``<Queue url>`` runs on A, A and
B hear each other; the ``<Enqueue action>`` gets ``QueueResult=bridged``. Queue-full,
``<Leave>``, and the Queues/Members REST API through the twilio library (a member sent
to another URL, a non-empty queue that cannot be deleted)."""

from __future__ import annotations

import struct

import pytest
import trio
from twilio.base.exceptions import TwilioRestException

from gateway.codec import g711
from gateway.voice import audio

from ..e2e.harness import ACCOUNT
from ..e2e.voice_harness import NUMBER, voice_env
from .phone import phone, tone_power, tone_ulaw


async def _until(pred, timeout: float = 10.0):
    with trio.fail_after(timeout):
        while not (got := pred()):
            await trio.sleep(0.01)
        return got


async def _thread(fn):
    return await trio.to_thread.run_sync(fn)


def _queue(env, name: str):
    return next((q for q in env.gw.voice.queues.queues.values()
                 if q.account_sid == ACCOUNT and q.friendly_name == name), None)


def _wav(seconds: float, freq: float) -> bytes:
    pcm = g711.ulaw_decode(tone_ulaw(seconds, freq))
    assert len(pcm) == struct.calcsize(f"<{int(8000 * seconds)}h")
    return audio.wav_bytes(pcm)


async def test_enqueue_then_dial_queue_bridges_both_callers(tmp_path):
    with trio.fail_after(60):
        async with voice_env(tmp_path, []) as env:
            sink = env.sink
            sink.replies["/voice"] = (200, "text/xml", (
                b'<Response><Enqueue waitUrl="/wait" action="/queued">support</Enqueue>'
                b"</Response>"))
            sink.replies["/wait"] = (200, "audio/wav", _wav(1.0, 400))
            sink.replies["/queued"] = (200, "text/xml", b"<Response><Hangup/></Response>")
            sink.replies["/whisper"] = (200, "text/xml", b"<Response><Pause length=\"0\"/>"
                                        b"</Response>")
            sink.replies["/dialed"] = (200, "text/xml", b"<Response><Hangup/></Response>")
            async with phone(env.sip_port, NUMBER) as a:
                q = await _until(lambda: (q := _queue(env, "support")) and q.members and q)
                n0 = a.rtp.stats["packets_in"]
                await _until(lambda: a.rtp.stats["packets_in"] >= n0 + 50)
                assert tone_power(a.rtp.stop_recording(), 400) > 1e5     # the wait audio
                wait = sink.at("/wait")[0].form
                assert (wait["QueueSid"], wait["QueuePosition"], wait["CurrentQueueSize"]) \
                    == (q.sid, "1", "1")
                a_sid = sink.at("/voice")[0].form["CallSid"]
                await _until(lambda: q.members[a_sid].waited() >= 1)    # QueueTime >= 1
                sink.replies["/voice"] = (200, "text/xml", (
                    b'<Response><Dial action="/dialed"><Queue url="/whisper">support</Queue>'
                    b"</Dial></Response>"))
                async with phone(env.sip_port, NUMBER) as b:
                    await _until(lambda: sink.at("/whisper"))
                    assert not q.members                          # dequeued
                    legs = [act.leg for act in env.gw.voice.active.values() if act.leg]
                    await _until(lambda: len(legs) == 2 and all(   # the bridge is up
                        leg.rtp.on_audio is not None for leg in legs))
                    for p in (a, b):
                        p.rtp.start_recording()
                    async with trio.open_nursery() as n:
                        n.start_soon(a.rtp.play, tone_ulaw(1.0, 600))
                        n.start_soon(b.rtp.play, tone_ulaw(1.0, 1500))
                    await trio.sleep(0.2)     # the last relayed frames are in flight
                    heard_a, heard_b = a.rtp.stop_recording(), b.rtp.stop_recording()
                    b_sid = sink.at("/voice")[1].form["CallSid"]
                    await b.hangup()
                    with trio.fail_after(10):
                        await a.call.ended.wait()       # /queued -> <Hangup/>
            assert tone_power(heard_b, 600) > 1e5 and tone_power(heard_a, 1500) > 1e5
            assert tone_power(heard_a, 400) < tone_power(heard_a, 1500) / 50  # music stopped
            whisper = sink.at("/whisper")[0].form
            assert whisper["CallSid"] == a_sid and whisper["DequeingCallSid"] == b_sid
            assert whisper["QueueSid"] == q.sid
            queued = (await sink.wait_for(lambda: sink.at("/queued")))[0].form
            assert queued["CallSid"] == a_sid
            assert (queued["QueueResult"], queued["QueueSid"]) == ("bridged", q.sid)
            assert int(queued["QueueTime"]) >= 1
            dialed = (await sink.wait_for(lambda: sink.at("/dialed")))[0].form
            assert (dialed["DialCallStatus"], dialed["DialCallSid"], dialed["QueueSid"]) == \
                ("completed", a_sid, q.sid)


async def test_queue_rest_api_full_queue_member_redirect_and_delete(tmp_path):
    with trio.fail_after(60):
        async with voice_env(tmp_path, []) as env:
            sink, client = env.sink, env.client()
            created = await _thread(lambda: client.queues.create(friendly_name="small",
                                                                 max_size=1))
            assert created.sid.startswith("QU") and created.max_size == 1
            assert created.current_size == 0
            with pytest.raises(TwilioRestException) as exc:
                await _thread(lambda: client.queues.create(friendly_name="x", max_size=5001))
            assert exc.value.status == 400
            sink.replies["/voice"] = (200, "text/xml", (
                b'<Response><Enqueue action="/full">small</Enqueue></Response>'))
            sink.replies["/full"] = (200, "text/xml", b"<Response><Hangup/></Response>")
            sink.replies["/out"] = (200, "text/xml", b"<Response><Hangup/></Response>")
            async with phone(env.sip_port, NUMBER) as a:
                await _until(lambda: _queue(env, "small").members)
                a_sid = sink.at("/voice")[0].form["CallSid"]
                fetched = await _thread(lambda: client.queues(created.sid).fetch())
                assert fetched.current_size == 1 and fetched.friendly_name == "small"
                listed = await _thread(lambda: client.queues.list())
                assert [x.sid for x in listed] == [created.sid]
                members = await _thread(lambda: client.queues(created.sid).members.list())
                assert [(m.call_sid, m.position) for m in members] == [(a_sid, 1)]
                front = await _thread(lambda: client.queues(created.sid).members("Front")
                                      .fetch())
                assert front.call_sid == a_sid and front.queue_sid == created.sid
                with pytest.raises(TwilioRestException) as exc:
                    await _thread(lambda: client.queues(created.sid).delete())
                assert exc.value.status == 400                      # not empty
                async with phone(env.sip_port, NUMBER) as c:      # the queue is full
                    with trio.fail_after(10):
                        await c.call.ended.wait()
                full = sink.at("/full")[0].form
                assert (full["QueueResult"], full["QueueSid"]) == ("queue-full", created.sid)
                await _thread(lambda: client.queues(created.sid).members("Front").update(
                    url=f"http://127.0.0.1:{sink.port}/out"))
                with trio.fail_after(10):
                    await a.call.ended.wait()                      # /out -> <Hangup/>
            assert sink.at("/out")[0].form["CallSid"] == a_sid
            assert len(sink.at("/full")) == 1          # redirected: no action request
            updated = await _thread(lambda: client.queues(created.sid).update(max_size=7))
            assert updated.max_size == 7 and updated.current_size == 0
            assert await _thread(lambda: client.queues(created.sid).delete()) is True
            with pytest.raises(TwilioRestException) as exc:
                await _thread(lambda: client.queues(created.sid).fetch())
            assert exc.value.status == 404


async def test_leave_in_wait_url_and_dial_of_unknown_or_empty_queue(tmp_path):
    with trio.fail_after(60):
        async with voice_env(tmp_path, []) as env:
            sink = env.sink
            sink.replies["/voice"] = (200, "text/xml", (
                b'<Response><Enqueue waitUrl="/wait" action="/left">q1</Enqueue>'
                b'<Say>never</Say></Response>'))
            sink.replies["/wait"] = (200, "text/xml", b"<Response><Leave/></Response>")
            sink.replies["/left"] = (200, "text/xml", (
                b'<Response><Dial action="/d1" timeout="1"><Queue>nope</Queue></Dial>'
                b'</Response>'))
            sink.replies["/d1"] = (200, "text/xml", (
                b'<Response><Dial action="/d2" timeout="1"><Queue>q1</Queue></Dial>'
                b'</Response>'))
            sink.replies["/d2"] = (200, "text/xml", b"<Response><Hangup/></Response>")
            async with phone(env.sip_port, NUMBER) as a:
                with trio.fail_after(15):
                    await a.call.ended.wait()
            left = sink.at("/left")[0].form
            assert left["QueueResult"] == "leave" and left["QueueSid"].startswith("QU")
            assert sink.at("/d1")[0].form["DialCallStatus"] == "failed"    # no such queue
            d2 = sink.at("/d2")[0].form
            assert (d2["DialCallStatus"], d2["QueueSid"]) == ("no-answer", left["QueueSid"])
