"""Voice end to end with SIPp as the carrier: inbound Gather with RFC 4733 digits,
CANCEL before answer, unknown number, outbound Calls API with status callbacks, and
failover from a dead trunk. Skipped when SIPp is not installed."""

from __future__ import annotations

import socket

import pytest
import trio
from twilio.request_validator import RequestValidator

from gateway.core import call as C

from .harness import TOKEN
from .voice_harness import (
    NUMBER,
    SIPP,
    free_udp_port,
    scenario_cancel,
    scenario_dtmf,
    scenario_rejected,
    sipp,
    uac_args,
    uas_args,
    voice_env,
)

pytestmark = pytest.mark.skipif(SIPP is None, reason="SIPp (sip-tester) not installed")


def _valid(hit) -> bool:
    return RequestValidator(TOKEN).validate(hit.url, hit.form, hit.headers["x-twilio-signature"])


async def _calls(env):
    return await env.gw.voice.list_calls("AC0123456789abcdef0123456789abcdef")


async def test_inbound_gather_dtmf_then_say_and_bye(tmp_path):
    with trio.fail_after(40):
        async with voice_env(tmp_path, []) as env:
            sink = env.sink
            sink.replies["/voice"] = (200, "text/xml", (
                b'<Response><Gather numDigits="2" action="/gather" timeout="5">'
                b"<Say>Enter two digits</Say></Gather><Say>nothing</Say></Response>"))
            sink.replies["/gather"] = (200, "text/xml",
                                       b"<Response><Say>Thank you</Say><Hangup/></Response>")
            scen = tmp_path / "dtmf.xml"
            scen.write_text(scenario_dtmf(["1", "pound"]))
            async with sipp(uac_args(env.sip_port, scen, NUMBER.lstrip("+")), tmp_path) as p:
                rc = await p.wait(30)
            assert rc == 0, p.out.decode(errors="replace")[-3000:]
            (first,) = sink.at("/voice")
            assert first.form["To"] == NUMBER and first.form["CallStatus"] == "ringing"
            assert first.form["Direction"] == "inbound" and _valid(first)
            (gather,) = sink.at("/gather")
            assert gather.form["Digits"] == "1" and gather.form.get("FinishedOnKey") == "#"
            assert gather.form["CallStatus"] == "in-progress" and _valid(gather)
            (call,) = await wait_until_calls(env, lambda cs: cs and cs[0].final and cs)
            assert call.status == C.COMPLETED and call.direction == C.INBOUND
            assert call.sid == first.form["CallSid"]
            # the number's StatusCallback: one "completed" callback, signed, with duration
            (done,) = await sink.wait_for(lambda: sink.at("/call-status"), timeout=10)
            assert done.form["CallStatus"] == "completed" and done.form["CallSid"] == call.sid
            assert done.form["CallDuration"] == str(call.duration) and _valid(done)


async def wait_until_calls(env, pred, timeout=10.0):
    with trio.fail_after(timeout):
        while True:
            got = pred(await _calls(env))
            if got:
                return got
            await trio.sleep(0.02)


async def test_cancel_before_answer_gets_487(tmp_path):
    with trio.fail_after(40):
        async with voice_env(tmp_path, []) as env:
            env.sink.held["/voice"] = gate = trio.Event()      # the app is slow to answer
            scen = tmp_path / "cancel.xml"
            scen.write_text(scenario_cancel())
            async with sipp(uac_args(env.sip_port, scen, NUMBER.lstrip("+")), tmp_path) as p:
                rc = await p.wait(20)
            assert rc == 0, p.out.decode(errors="replace")[-3000:]
            gate.set()
            (call,) = await wait_until_calls(env, lambda cs: cs and cs[0].final and cs)
            assert call.status == C.CANCELED and call.duration == 0


async def test_unknown_number_gets_404(tmp_path):
    with trio.fail_after(40):
        async with voice_env(tmp_path, []) as env:
            scen = tmp_path / "404.xml"
            scen.write_text(scenario_rejected(404))
            async with sipp(uac_args(env.sip_port, scen, "15559990000"), tmp_path) as p:
                rc = await p.wait(20)
            assert rc == 0, p.out.decode(errors="replace")[-3000:]
            assert env.sink.at("/voice") == [] and await _calls(env) == []


async def test_reject_busy_gets_486(tmp_path):
    with trio.fail_after(40):
        async with voice_env(tmp_path, []) as env:
            env.sink.replies["/voice"] = (200, "text/xml", b'<Response><Reject reason="busy"/></Response>')
            scen = tmp_path / "486.xml"
            scen.write_text(scenario_rejected(486))
            async with sipp(uac_args(env.sip_port, scen, NUMBER.lstrip("+")), tmp_path) as p:
                rc = await p.wait(20)
            assert rc == 0, p.out.decode(errors="replace")[-3000:]
            (call,) = await wait_until_calls(env, lambda cs: cs and cs[0].final and cs)
            assert call.status == C.BUSY


async def _outbound(env, p):
    client = env.client()
    events = ["initiated", "ringing", "answered", "completed"]
    made = await trio.to_thread.run_sync(lambda: client.calls.create(
        to="+15005550001", from_=NUMBER, status_callback=env.sink.url("/status"),
        status_callback_event=events,
        twiml="<Response><Say>Hello from the gateway</Say><Hangup/></Response>"))
    assert made.status == "queued"
    # SIPp's uas keeps its auto-answered OPTIONS "call" open, so it is not awaited: the
    # gateway's callbacks say when the call is over, and SIPp is stopped by PID.
    hits = await env.sink.wait_for(
        lambda: len(env.sink.at("/status")) >= 4 and env.sink.at("/status"), timeout=25)
    # callbacks are delivered by a worker pool, so arrival order may differ; as with
    # Twilio, SequenceNumber gives the order
    hits = sorted(hits, key=lambda h: int(h.form["SequenceNumber"]))
    return made, hits


async def test_outbound_call_status_callbacks_in_order(tmp_path):
    port = free_udp_port()
    with trio.fail_after(40):
        async with sipp(uas_args(port), tmp_path) as p:
            async with voice_env(tmp_path, [("a", port)]) as env:
                made, hits = await _outbound(env, p)
                assert [h.form["CallStatus"] for h in hits] == [
                    "initiated", "ringing", "in-progress", "completed"]
                assert [h.form["SequenceNumber"] for h in hits] == ["0", "1", "2", "3"]
                assert all(h.form["CallSid"] == made.sid and _valid(h) for h in hits)
                assert hits[-1].form["Direction"] == "outbound-api"
                fetched = await trio.to_thread.run_sync(lambda: env.client().calls(made.sid).fetch())
                assert fetched.status == "completed" and fetched.start_time is not None
                call = await env.gw.voice.get_call(made.sid)
                assert call.carrier == "a"
                health = await env.gw.health()
                assert health.body["carriers"]["a"]["sip"] == "up"


async def test_dead_trunk_fails_over_before_ringing(tmp_path):
    port = free_udp_port()
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)      # black hole: never answers
    dead.bind(("127.0.0.1", 0))
    try:
        with trio.fail_after(40):
            async with sipp(uas_args(port), tmp_path) as p:
                async with voice_env(tmp_path, [("a", dead.getsockname()[1]), ("b", port)]) as env:
                    made, hits = await _outbound(env, p)
                    assert [h.form["CallStatus"] for h in hits] == [
                        "initiated", "ringing", "in-progress", "completed"]
                    call = await env.gw.voice.get_call(made.sid)
                    assert call.carrier == "b" and call.status == "completed"
                    assert env.gw.carriers.reroutes.get(("a", "b")) == 1
                    health = await env.gw.health()
                    assert health.body["carriers"]["a"]["sip"] == "down"
    finally:
        dead.close()


async def test_dial_bridges_inbound_call_to_a_trunk(tmp_path):
    port = free_udp_port()
    with trio.fail_after(40):
        async with sipp(uas_args(port), tmp_path):
            async with voice_env(tmp_path, [("a", port)]) as env:
                env.sink.replies["/voice"] = (200, "text/xml", (
                    b'<Response><Dial action="/dialed" timeLimit="1" callerId="+15005550006">'
                    b"+15005550001</Dial></Response>"))
                env.sink.replies["/dialed"] = (200, "text/xml", b"<Response><Hangup/></Response>")
                scen = tmp_path / "in.xml"
                scen.write_text(scenario_dtmf([]))
                async with sipp(uac_args(env.sip_port, scen, NUMBER.lstrip("+")), tmp_path) as p:
                    rc = await p.wait(30)
                assert rc == 0, p.out.decode(errors="replace")[-3000:]
                (dialed,) = env.sink.at("/dialed")
                assert dialed.form["DialCallStatus"] == "completed" and _valid(dialed)
                assert dialed.form["DialCallDuration"] in ("0", "1", "2")
                calls = await wait_until_calls(
                    env, lambda cs: len(cs) == 2 and all(c.final for c in cs) and cs)
                child = next(c for c in calls if c.direction == C.OUTBOUND_DIAL)
                parent = next(c for c in calls if c.direction == C.INBOUND)
                assert child.sid == dialed.form["DialCallSid"]
                assert child.parent_call_sid == parent.sid and child.carrier == "a"
                assert child.from_ == "+15005550006" and child.status == C.COMPLETED
