"""The gateway's SIP over TLS end to end (certificates made at test time by openssl):
a phone calls in over TLS (TwiML <Say>, the gateway's BYE), the Calls API calls out to a
TLS trunk that our phone serves, a trunk whose certificate does not verify is refused
(logged) and the call goes over the good trunk; check-config reports bad cert/key files."""

from __future__ import annotations

import logging
import re

import pytest
import trio

from gateway import settings as settings_mod
from gateway.codec import sdp as sdpc
from gateway.io.rtp import RtpSession
from gateway.io.sip_endpoint import SipUA
from gateway.io.sip_tls import SipTls, client_context, server_context
from tests.e2e import voice_harness as vh
from tests.io.tls_certs import make_certs

from .phone import loud_span, phone

SAY = b"<Response><Say>Hello over TLS</Say><Hangup/></Response>"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("gw-tls"))


def _tls_config(monkeypatch, certs, trunks: dict[str, dict] | None = None) -> None:
    """voice_env's config + [sip] tls_* + per-trunk TLS keys ({name: {key: value}})."""
    orig = vh.config

    def config(*a, **kw):
        text = orig(*a, **kw).replace(
            "[sip]\n", f'[sip]\ntls_listen = "127.0.0.1:0"\ntls_cert = "{certs.cert}"\n'
                       f'tls_key = "{certs.key}"\n', 1)
        for name, keys in (trunks or {}).items():
            extra = "".join(f"  {k} = {v!r}\n".replace("'", '"') for k, v in keys.items())
            text = re.sub(rf'(name = "{name}"\n(?:.*\n)*?  options_interval = 3600\n)',
                          lambda m, extra=extra: m.group(1) + extra, text, count=1)
        return text

    monkeypatch.setattr(vh, "config", config)


async def test_inbound_call_over_tls_say_then_gateway_bye(tmp_path, certs, monkeypatch):
    _tls_config(monkeypatch, certs)
    with trio.fail_after(40):
        async with vh.voice_env(tmp_path, []) as env:
            env.sink.replies["/voice"] = (200, "text/xml", SAY)
            tls_port = env.gw.voice.ua.tls_port
            assert tls_port and tls_port != env.sip_port
            tls = SipTls(client=client_context(certs.ca))
            async with phone(tls_port, vh.NUMBER, transport="tls", tls=tls, host="localhost",
                             scheme="sips") as ph:
                with trio.fail_after(20):
                    await ph.call.ended.wait()            # the gateway's BYE, over TLS
                heard = ph.rtp.stop_recording()
                assert ph.call.end_reason == "bye"
                assert len(ph.ua.streams.conns) == 1      # one connection, both ways
            assert len(loud_span(heard)) > 1600           # > 0.1 s of speech
            assert env.sink.at("/voice")


async def _tls_trunk(nursery, certs, *, bad=False):
    """A phone serving as a TLS trunk: answers every INVITE, records them."""
    cert, key = (certs.bad_cert, certs.bad_key) if bad else (certs.cert, certs.key)
    ua = SipUA("127.0.0.1", 0, tcp=False, tls=SipTls(listen=("127.0.0.1", 0),
                                                      server=server_context(cert, key)))
    await nursery.start(ua.serve)
    ua.got = []
    rtp = RtpSession("127.0.0.1")
    await rtp.open(nursery)

    async def answer(call):
        ua.got.append(call)
        await call.ringing()
        await call.answer(sdpc.answer(sdpc.parse(call.remote_sdp), "127.0.0.1", rtp.port)[0])
        await call.ended.wait()

    ua.on_incoming = answer
    return ua


async def test_outbound_calls_api_to_tls_trunk_bad_cert_refused(tmp_path, certs, monkeypatch,
                                                                 caplog):
    caplog.set_level(logging.WARNING, logger="gateway.sip")
    with trio.fail_after(40):
        async with trio.open_nursery() as n:
            bad = await _tls_trunk(n, certs, bad=True)
            good = await _tls_trunk(n, certs)
            tls = {"transport": "tls", "tls_ca": certs.ca}
            _tls_config(monkeypatch, certs, {"bad": tls,
                                             "good": tls})
            trunks = [("bad", bad.tls_port), ("good", good.tls_port)]
            async with vh.voice_env(tmp_path, trunks) as env:
                made = await trio.to_thread.run_sync(lambda: env.client().calls.create(
                    to="+15005550001", from_=vh.NUMBER, twiml=SAY.decode()))
                with trio.fail_after(25):
                    while not good.got or not good.got[0].ended.is_set():
                        await trio.sleep(0.02)
                inbound = good.got[0]
                assert inbound.request.top_via.transport == "TLS"
                assert "transport=tls" in inbound.request.get("Contact")
                assert inbound.end_reason == "bye"           # TwiML done: gateway hung up
                call = await env.gw.voice.get_call(made.sid)
                assert call.carrier == "good"
                assert not bad.got                           # never got past the handshake
                assert "certificate verify failed" in caplog.text
            n.cancel_scope.cancel()


def _write(tmp_path, sip: str, trunk: str = "") -> str:
    path = tmp_path / "gw.toml"
    path.write_text(vh.config(tmp_path, 1, []).replace("[sip]\n", "[sip]\n" + sip, 1) + trunk)
    return str(path)


def test_check_config_reports_tls_files(tmp_path, certs, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    ok = _write(tmp_path, f'tls_listen = "127.0.0.1:5061"\ntls_cert = "{certs.cert}"\n'
                          f'tls_key = "{certs.key}"\n')
    assert settings_mod.check(ok) == []
    missing = settings_mod.check(_write(tmp_path, 'tls_listen = "127.0.0.1:5061"\n'
                                                  'tls_cert = "nope.pem"\n'))
    assert any("sip.tls_cert" in p and "cannot read" in p for p in missing)
    assert any("sip.tls_key" in p and "required" in p for p in missing)
    mismatched = settings_mod.check(_write(
        tmp_path, f'tls_listen = "127.0.0.1:5061"\ntls_cert = "{certs.cert}"\n'
                  f'tls_key = "{certs.bad_key}"\n'))
    assert any("sip.tls_key" in p and "does not load" in p for p in mismatched)
    # the key may come from $CREDENTIALS_DIRECTORY (systemd LoadCredential=)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path.parent / "nowhere"))
    cred = settings_mod.check(_write(tmp_path, f'tls_listen = "127.0.0.1:5061"\n'
                                               f'tls_cert = "{certs.cert}"\ntls_key = "k.pem"\n'))
    assert any("sip.tls_key" in p and "nowhere" in p for p in cred)
    trunk = ('[[carriers]]\nname = "t"\n[carriers.sip]\nhost = "h"\ntransport = "tls"\n'
             'tls_ca = "missing-ca.pem"\n')
    bad_ca = settings_mod.check(_write(tmp_path, "", trunk))
    assert any("carriers[0].sip.tls_ca" in p for p in bad_ca)
