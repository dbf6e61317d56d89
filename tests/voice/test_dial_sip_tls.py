"""``<Dial><Sip>`` to ``sips:`` URIs, and ``DialSipHeader_*`` action parameters.

A phone calls the gateway, whose TwiML dials ``sips:alice@localhost:<port>``: the
callee is our own SipUA serving TLS with a certificate made at test time
(``tests/io/tls_certs``); the gateway trusts that CA through ``[sip] tls_ca`` and must
send SNI "localhost". The callee answers, hears the caller's tone through the bridge,
takes the gateway's BYE over TLS, and the action gets ``DialCallStatus=completed``. A
callee whose certificate is from another CA is never reached (``failed``).
SIPp callees (UDP) add ``X-`` headers to their final response (486, then 200): the
action gets them as ``DialSipHeader_X-…`` (other headers are not passed), and the 200's
also reach the ``<Sip url>`` screening document as ``SipHeader_X-…`` (Twilio's rules)."""

from __future__ import annotations

import re

import pytest
import trio

from gateway.codec import sdp as sdpc
from gateway.io.rtp import RtpSession
from gateway.io.sip_endpoint import SipUA
from gateway.io.sip_tls import SipTls, server_context
from gateway.testing import sipp as scenarios
from gateway.voice.sip_dial import header_params, parse_target
from tests.e2e import voice_harness as vh
from tests.io.tls_certs import make_certs

from .phone import loud_span, phone, tone_power, tone_ulaw

needs_sipp = pytest.mark.skipif(vh.SIPP is None, reason="SIPp (sip-tester) not installed")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("dial-tls"))


def test_parse_target_tls():
    t = parse_target("sips:alice@example.com?X-A=1")
    assert (t.request_uri, t.host, t.port, t.transport) == (
        "sips:alice@example.com", "example.com", 5061, "tls")
    t = parse_target("sip:bob@example.com;transport=TLS")
    assert (t.request_uri, t.port, t.transport) == (
        "sip:bob@example.com;transport=TLS", 5061, "tls")
    assert parse_target("sips:c@h:5071;transport=tcp").transport == "tls"   # RFC 3261 26.2.2
    assert parse_target("sip:c@h;transport=tcp").port == 5060
    for bad in ("sips:a@h;transport=udp", "sip:a@h;transport=sctp", "sips:", "sipx:a@h"):
        with pytest.raises(ValueError):
            parse_target(bad)


def test_header_params_only_x_headers_name_as_received():
    got = header_params([("Via", "SIP/2.0/UDP h"), ("X-Trace", "t1"), ("x-low", "v"),
                         ("Contact", "<sip:h>"), ("User-To-User", "00")])
    assert got == [("DialSipHeader_X-Trace", "t1"), ("DialSipHeader_x-low", "v")]


def _config(monkeypatch, certs) -> None:
    orig = vh.config

    def config(*a, **kw):
        return orig(*a, **kw).replace(
            "[sip]\n", f'[sip]\nallow_sip_dial = true\ntls_ca = "{certs.ca}"\n', 1)

    monkeypatch.setattr(vh, "config", config)


async def _tls_callee(nursery, cert: str, key: str):
    """Our SipUA on a TLS listener: answers every INVITE, records what it hears; ``sni``
    lists the server names the gateway's handshakes asked for."""
    ctx = server_context(cert, key)
    sni: list[str | None] = []
    ctx.sni_callback = lambda _sock, name, _ctx: sni.append(name)
    ua = SipUA("127.0.0.1", 0, tcp=False, tls=SipTls(listen=("127.0.0.1", 0), server=ctx))
    await nursery.start(ua.serve)
    ua.got, ua.sni = [], sni
    ua.rtp = RtpSession("127.0.0.1")
    await ua.rtp.open(nursery)

    async def answer(call):
        ua.got.append(call)
        offer = sdpc.parse(call.remote_sdp)
        local, pt = sdpc.answer(offer, "127.0.0.1", ua.rtp.port)
        ua.rtp.set_remote((offer.connection_host or "127.0.0.1", offer.audio_port), pt,
                          offer.telephone_event_pt)
        ua.rtp.start_recording()
        await call.answer(local)
        await call.ended.wait()

    ua.on_incoming = answer
    return ua


async def _until(pred, timeout: float = 15.0):
    with trio.fail_after(timeout):
        while not (got := pred()):
            await trio.sleep(0.01)
        return got


def _dial_twiml(uri: str) -> bytes:
    return (f'<Response><Dial action="/dialed"><Sip>{uri}</Sip></Dial></Response>').encode()


async def test_dial_sips_callee_verified_answers_and_bridges(tmp_path, certs, monkeypatch):
    _config(monkeypatch, certs)
    with trio.fail_after(60):
        async with trio.open_nursery() as n:
            good = await _tls_callee(n, certs.cert, certs.key)
            bad = await _tls_callee(n, certs.bad_cert, certs.bad_key)
            async with vh.voice_env(tmp_path, []) as env:
                sink = env.sink
                sink.replies["/dialed"] = (200, "text/xml", b"<Response><Hangup/></Response>")
                # 1. a certificate from another CA: never reached, the dial fails
                sink.replies["/voice"] = (200, "text/xml", _dial_twiml(
                    f"sips:alice@localhost:{bad.tls_port}"))
                async with phone(env.sip_port, vh.NUMBER) as a:
                    with trio.fail_after(20):
                        await a.call.ended.wait()
                first = (await sink.wait_for(lambda: sink.at("/dialed")))[0].form
                assert first["DialCallStatus"] == "failed"
                assert not bad.got and bad.sni and set(bad.sni) == {"localhost"}
                # 2. the good callee: answered over TLS, audio bridged, BYE over TLS
                sink.replies["/voice"] = (200, "text/xml", _dial_twiml(
                    f"sips:alice@localhost:{good.tls_port}?X-Ticket=77"))
                async with phone(env.sip_port, vh.NUMBER) as a:
                    await _until(lambda: good.got and all(
                        act.leg is not None and act.leg.rtp.on_audio is not None
                        for act in env.gw.voice.active.values())
                        and len(env.gw.voice.active) == 2)          # the bridge is up
                    await a.rtp.play(tone_ulaw(1.0, 700))
                    await a.hangup()
                inbound = good.got[0]
                with trio.fail_after(15):
                    await inbound.ended.wait()
                heard = loud_span(good.rtp.stop_recording())
                assert len(heard) > 8000 and tone_power(heard, 700) > 1e6   # > 0.5 s of it
                assert inbound.end_reason == "bye"
                assert inbound.request.uri == f"sips:alice@localhost:{good.tls_port}"
                assert inbound.request.top_via.transport == "TLS"
                assert inbound.request.get("X-Ticket") == "77"
                assert good.sni and set(good.sni) == {"localhost"}      # SNI = URI host
                dialed = (await sink.wait_for(lambda: len(sink.at("/dialed")) == 2
                                              and sink.at("/dialed")))[1].form
                assert dialed["DialCallStatus"] == "completed"
                assert dialed["DialSipResponseCode"] == "200"
                assert dialed["DialSipCallId"] == inbound.call_id
            n.cancel_scope.cancel()


def _callee(tmp_path, port: int, xml: str) -> list[str]:
    path = tmp_path / "callee.xml"
    path.write_text(xml)
    return ["-sf", str(path), "-i", "127.0.0.1", "-p", str(port), "-m", "1",
            "-mi", "127.0.0.1", "-mp", str(vh.free_udp_port()), "-rtp_echo"]


@needs_sipp
async def test_dial_sip_header_params_from_final_response(tmp_path):
    port = vh.free_udp_port()
    with trio.fail_after(60):
        async with vh.voice_env(tmp_path, []) as env:
            env.gw.voice.allow_sip_dial = True
            sink = env.sink
            sink.replies["/voice"] = (200, "text/xml", _dial_twiml(f"sip:bob@127.0.0.1:{port}"))
            sink.replies["/dialed"] = (200, "text/xml", b"<Response><Hangup/></Response>")
            busy = scenarios.uas_reject(reply_headers=("X-Busy-Reason: in a meeting",))
            async with vh.sipp(_callee(tmp_path, port, busy), tmp_path) as callee:
                async with phone(env.sip_port, vh.NUMBER) as a:
                    with trio.fail_after(15):
                        await a.call.ended.wait()
                assert await callee.wait() == 0, callee.out.decode(errors="replace")[-2000:]
            first = (await sink.wait_for(lambda: sink.at("/dialed")))[0].form
            assert (first["DialCallStatus"], first["DialSipResponseCode"]) == ("busy", "486")
            assert first["DialSipHeader_X-Busy-Reason"] == "in a meeting"

            sink.replies["/voice"] = (200, "text/xml", (
                f'<Response><Dial action="/dialed"><Sip url="/screen">sip:bob@127.0.0.1:{port}'
                f"</Sip></Dial></Response>").encode())
            sink.replies["/screen"] = (200, "text/xml", b"<Response/>")   # connect
            ok = scenarios.uas_answer(reply_headers=("X-Trace: abc-42", "X-Agent-Id: 7"))
            async with vh.sipp(_callee(tmp_path, port, ok), tmp_path) as callee:
                async with phone(env.sip_port, vh.NUMBER) as a:
                    await _until(lambda: any(
                        act.call.parent_call_sid and act.call.status == "in-progress"
                        for act in env.gw.voice.active.values()))
                    await a.hangup()
                assert await callee.wait() == 0, callee.out.decode(errors="replace")[-2000:]
            dialed = (await sink.wait_for(lambda: len(sink.at("/dialed")) == 2
                                          and sink.at("/dialed")))[1].form
            assert dialed["DialCallStatus"] == "completed"
            assert dialed["DialSipHeader_X-Trace"] == "abc-42"
            assert dialed["DialSipHeader_X-Agent-Id"] == "7"
            assert not [k for k in dialed if k.startswith("DialSipHeader_")
                        and not re.match(r"DialSipHeader_X-", k)]
            screen = sink.at("/screen")[0].form        # the <Sip url> gets the 2xx's X-s
            assert (screen["SipHeader_X-Trace"], screen["SipHeader_X-Agent-Id"]) == ("abc-42",
                                                                                     "7")


def test_check_config_reports_unreadable_sip_tls_ca(tmp_path, certs):
    from gateway import settings as settings_mod

    def check(ca: str) -> list[str]:
        path = tmp_path / "gw.toml"
        path.write_text(vh.config(tmp_path, 1, []).replace(
            "[sip]\n", f'[sip]\ntls_ca = "{ca}"\n', 1))
        return settings_mod.check(str(path))

    assert check(certs.ca) == []
    problems = check("no-such-ca.pem")         # relative: against the config's directory
    assert any("sip.tls_ca" in p and "cannot read" in p and str(tmp_path / "no-such-ca.pem")
               in p for p in problems)
