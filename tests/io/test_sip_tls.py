"""SipUA over TLS on 127.0.0.1: calls both ways over one connection, sips: URIs, OPTIONS,
a peer whose certificate does not verify (fast 503 + a clear log), handshake garbage."""

import logging

import pytest
import trio

from gateway.io.sip_endpoint import CallFailed, SipUA
from gateway.io.sip_tls import SipTls, client_context, server_context
from tests.io.tls_certs import make_certs

SDP_A = b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
SDP_B = SDP_A.replace(b"4000", b"5000").replace(b"o=a", b"o=b")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("sip-tls"))


def _tls(certs, *, listen=True, ca=True, bad=False):
    cert, key = (certs.bad_cert, certs.bad_key) if bad else (certs.cert, certs.key)
    return SipTls(listen=("127.0.0.1", 0) if listen else None,
                  server=server_context(cert, key) if listen else None,
                  client=client_context(certs.ca if ca else ""))


async def _ua(nursery, tls):
    ua = SipUA("127.0.0.1", 0, tcp=False, tls=tls)
    await nursery.start(ua.serve)
    return ua


def _answering(got):
    async def handler(call):
        got.append(call)
        await call.ringing()
        await call.answer(SDP_B)
        await call.ended.wait()
    return handler


@pytest.mark.parametrize("scheme,who_hangs_up", [("sip", "caller"), ("sips", "callee")])
async def test_call_over_tls_one_connection(certs, scheme, who_hangs_up):
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            a, b = await _ua(n, _tls(certs, listen=False)), await _ua(n, _tls(certs))
            got = []
            b.on_incoming = _answering(got)
            out = await a.invite(f"{scheme}:+15551230000@localhost:{b.tls_port}",
                                 ("localhost", b.tls_port), from_user="+15550001111",
                                 sdp_offer=SDP_A, timeout=5, transport="tls")
            assert await out.wait_answer() == SDP_B
            inbound = got[0]
            assert inbound.to_user == "+15551230000"
            assert inbound.request.top_via.transport == "TLS"
            assert inbound.request.uri.startswith(f"{scheme}:")
            assert "transport=tls" in inbound.request.get("Contact")
            core_call = b.core.calls[inbound.call_id]
            while core_call.state != "confirmed":   # the ACK came over TLS too
                await trio.sleep(0.01)
            contact = core_call.dialog.local_contact
            assert contact.startswith(f"<{scheme}:") and f":{b.tls_port};transport=tls" in contact
            if who_hangs_up == "caller":
                await out.hangup()
                await inbound.ended.wait()
            else:   # A has no TLS listener: B's BYE must reuse A's connection
                await inbound.hangup()
                await out.ended.wait()
                assert out.end_reason == "bye"
            assert len(a.streams.conns) == 1 and len(b.streams.conns) == 1
            n.cancel_scope.cancel()


async def test_options_over_tls(certs):
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            a, b = await _ua(n, _tls(certs, listen=False)), await _ua(n, _tls(certs))
            status, _ = await a.options(("127.0.0.1", b.tls_port), timeout=5, transport="tls")
            assert status == 200
            n.cancel_scope.cancel()


@pytest.mark.parametrize("case", ["other-ca", "system-cas", "wrong-name"])
async def test_unverified_peer_refused_fast(certs, case, caplog):
    caplog.set_level(logging.WARNING, logger="gateway.sip")
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            tls_a = _tls(certs, listen=False, ca=case != "system-cas")
            a = await _ua(n, tls_a)
            b = await _ua(n, _tls(certs, bad=case == "other-ca"))
            got = []
            b.on_incoming = _answering(got)
            host = "127.0.0.1" if case == "wrong-name" else "localhost"
            if case == "wrong-name":   # certificate is for localhost/127.0.0.1, not this
                a.streams.names[("127.0.0.1", b.tls_port)] = "sip.example.net"
                tls_a.trunks[("sip.example.net", b.tls_port)] = client_context(certs.ca)
            out = await a.invite(f"sip:1@{host}:{b.tls_port}", (host, b.tls_port),
                                 from_user="gw", sdp_offer=SDP_A, timeout=8, transport="tls")
            with pytest.raises(CallFailed) as exc:
                await out.wait_answer()
            assert exc.value.status == 503 and not out.timed_out   # not the 8 s timeout
            assert not got
            assert "certificate verify failed" in caplog.text
            # the same peer, no check (lab trunk): works
            tls_a.trunks[(a.streams.names.get(("127.0.0.1", b.tls_port), host),
                          b.tls_port)] = client_context(verify=False)
            status, _ = await a.options((host, b.tls_port), timeout=5, transport="tls")
            assert status == 200
            n.cancel_scope.cancel()


async def test_handshake_garbage_never_kills_the_listener(certs):
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            b = await _ua(n, _tls(certs))
            b.tls.handshake_timeout = 0.5
            junk = [b"\x16\x03\x01\x00\x05hello", b"OPTIONS sip:x SIP/2.0\r\n\r\n",
                    bytes(range(256)) * 4, b""]
            for data in junk:
                s = await trio.open_tcp_stream("127.0.0.1", b.tls_port)
                if data:
                    await s.send_all(data)
                with trio.fail_after(3):   # the gateway closes it (error or timeout)
                    while await s.receive_some(4096):
                        pass
                await s.aclose()
            # a silent half-open client does not block others; a good client still works
            idle = await trio.open_tcp_stream("127.0.0.1", b.tls_port)
            a = await _ua(n, _tls(certs, listen=False))
            status, _ = await a.options(("localhost", b.tls_port), timeout=5, transport="tls")
            assert status == 200
            await idle.aclose()
            n.cancel_scope.cancel()
