"""``<Dial><Sip>``: a phone calls the gateway, whose TwiML dials a SIP URI directly.
SIPp is the callee: it checks the custom ``X-`` header from the URI's ``?`` part,
challenges with 401 digest auth, answers and echoes RTP (the caller hears itself
through the bridge), and takes our BYE; a 486 callee gives ``DialCallStatus=busy``.
Without ``[sip] allow_sip_dial`` nothing is sent and the dial fails. SIPp tests are
skipped without SIPp; the URI parsing is tested on its own."""

from __future__ import annotations

import pytest
import trio

from gateway.testing import sipp as scenarios
from gateway.voice.sip_dial import parse_target

from ..e2e.voice_harness import NUMBER, SIPP, free_udp_port, sipp, voice_env
from .phone import phone, tone_power, tone_ulaw

needs_sipp = pytest.mark.skipif(SIPP is None, reason="SIPp (sip-tester) not installed")


def _callee(tmp_path, port: int, xml: str) -> list[str]:
    path = tmp_path / "callee.xml"
    path.write_text(xml)
    return ["-sf", str(path), "-i", "127.0.0.1", "-p", str(port), "-m", "1",
            "-mi", "127.0.0.1", "-mp", str(free_udp_port()), "-rtp_echo"]


def test_parse_target():
    t = parse_target("sip:alice@example.com:5070;transport=tcp?X-Foo=b%20ar&Subject=x&X-N=1")
    assert (t.request_uri, t.user, t.host, t.port, t.transport) == (
        "sip:alice@example.com:5070;transport=tcp", "alice", "example.com", 5070, "tcp")
    assert t.headers == (("X-Foo", "b ar"), ("X-N", "1"))          # Subject dropped
    assert parse_target("sip:bob@10.0.0.1").port == 5060
    for bad in ("tel:+1555", "sips:a@h;transport=udp", "sip:a@h:99999", "sip:a@",
                "sip:a@h?X-A=1%0d%0aVia:x"):
        with pytest.raises(ValueError):
            parse_target(bad)


@needs_sipp
async def test_dial_sip_with_header_and_digest_auth_bridges_and_byes(tmp_path):
    port = free_udp_port()
    with trio.fail_after(60):
        async with voice_env(tmp_path, []) as env:
            env.gw.voice.allow_sip_dial = True
            sink = env.sink
            sink.replies["/voice"] = (200, "text/xml", (
                f'<Response><Dial action="/dialed"><Sip username="alice" password="secret">'
                f"sip:alice@127.0.0.1:{port}?X-Foo=bar&amp;X-Trace=42</Sip></Dial>"
                f"</Response>").encode())
            xml = scenarios.uas_answer(header="X-Foo: bar", auth=("alice", "secret"))
            async with sipp(_callee(tmp_path, port, xml), tmp_path) as callee:
                async with phone(env.sip_port, NUMBER) as a:
                    child = await _until_child(env)
                    await _until(lambda: child.status == "in-progress" and all(
                        act.leg is not None and act.leg.rtp.on_audio is not None
                        for act in env.gw.voice.active.values()))   # the bridge is up
                    a.rtp.stop_recording()
                    a.rtp.start_recording()
                    await a.rtp.play(tone_ulaw(1.0, 700))
                    await trio.sleep(0.2)              # the echo of the last frames
                    heard = a.rtp.stop_recording()
                    await a.hangup()
                rc = await callee.wait()
                assert rc == 0, callee.out.decode(errors="replace")[-2000:]
            assert tone_power(heard, 700) > 1e5           # SIPp echoed it through the bridge
            dialed = (await sink.wait_for(lambda: sink.at("/dialed")))[0].form
            assert dialed["DialCallStatus"] == "completed"
            assert dialed["DialSipResponseCode"] == "200"
            assert dialed["DialSipCallId"] == child.sip_call_id and child.sip_call_id
            assert dialed["DialCallSid"] == child.sid
            assert child.to == f"sip:alice@127.0.0.1:{port}"


@needs_sipp
async def test_dial_sip_busy_and_refused_without_allow(tmp_path):
    port = free_udp_port()
    with trio.fail_after(60):
        async with voice_env(tmp_path, []) as env:
            sink = env.sink
            sink.replies["/voice"] = (200, "text/xml", (
                f'<Response><Dial action="/dialed"><Sip>sip:bob@127.0.0.1:{port}</Sip></Dial>'
                f"</Response>").encode())
            sink.replies["/dialed"] = (200, "text/xml", b"<Response><Hangup/></Response>")
            async with phone(env.sip_port, NUMBER) as a:     # allow_sip_dial is off
                with trio.fail_after(10):
                    await a.call.ended.wait()
            first = sink.at("/dialed")[0].form
            assert (first["DialCallStatus"], first["DialSipResponseCode"]) == ("failed", "0")
            env.gw.voice.allow_sip_dial = True
            async with sipp(_callee(tmp_path, port, scenarios.uas_reject()), tmp_path) as callee:
                async with phone(env.sip_port, NUMBER) as a:
                    with trio.fail_after(15):
                        await a.call.ended.wait()
                assert await callee.wait() == 0, callee.out.decode(errors="replace")[-2000:]
            second = (await sink.wait_for(lambda: len(sink.at("/dialed")) == 2
                                          and sink.at("/dialed")))[1].form
            assert (second["DialCallStatus"], second["DialSipResponseCode"]) == ("busy", "486")


async def _until(pred, timeout: float = 15.0):
    with trio.fail_after(timeout):
        while not (got := pred()):
            await trio.sleep(0.01)
        return got


async def _until_child(env):
    return await _until(lambda: next(
        (a.call for a in env.gw.voice.active.values() if a.call.parent_call_sid), None))
