"""SipUA on 127.0.0.1 (UDP, and TCP): two real UAs calling each other, OPTIONS, CANCEL,
digest challenges, handler failures, garbage datagrams."""

import hashlib

import pytest
import trio

from gateway.codec import sip
from gateway.io.sip_endpoint import CallFailed, SipUA
from gateway.proto import sip_auth

pytestmark = pytest.mark.codec
SDP_A = b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
SDP_B = SDP_A.replace(b"4000", b"5000").replace(b"o=a", b"o=b")


async def _ua(nursery, **kw):
    ua = SipUA("127.0.0.1", 0, **kw)
    await nursery.start(ua.serve)
    return ua


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_call_invite_ring_answer_ack_bye(transport):
    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            a, b = await _ua(n), await _ua(n)
            got = []

            async def handler(call):
                got.append(call)
                await call.ringing()
                await call.answer(SDP_B)
                await call.ended.wait()

            b.on_incoming = handler
            out = await a.invite(f"sip:+15551230000@127.0.0.1:{b.port}", ("127.0.0.1", b.port),
                                 from_user="+15550001111", sdp_offer=SDP_A, timeout=3,
                                 transport=transport, headers=[("X-Test", "1")])
            assert await out.wait_progress() in ("ringing", "answered")
            assert await out.wait_answer() == SDP_B
            assert out.provisionals == [180] and out.status_code == 200
            inbound = got[0]
            assert inbound.from_user == "+15550001111" and inbound.to_user == "+15551230000"
            assert inbound.remote_sdp == SDP_A and inbound.headers.get("x-test") == "1"
            # the 2xx retransmission stops once the ACK arrived
            core_call = b.core.calls[inbound.call_id]
            with trio.fail_after(1):
                while core_call.state != "confirmed":
                    await trio.sleep(0.01)
            await out.hangup()
            await inbound.ended.wait()
            assert inbound.end_reason == "bye" and out.end_reason == "hangup"
            n.cancel_scope.cancel()


async def test_callee_hangs_up():
    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            a, b = await _ua(n), await _ua(n)

            async def handler(call):
                await call.answer(SDP_B)
                await call.hangup()

            b.on_incoming = handler
            out = await a.invite(f"sip:1@127.0.0.1:{b.port}", ("127.0.0.1", b.port),
                                 from_user="2", sdp_offer=SDP_A)
            await out.wait_answer()
            await out.ended.wait()
            assert out.end_reason == "bye"
            n.cancel_scope.cancel()


async def test_cancel_before_answer_gets_487():
    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            a, b = await _ua(n), await _ua(n)
            inbound = []

            async def handler(call):
                inbound.append(call)
                await call.ringing()
                await call.ended.wait()

            b.on_incoming = handler
            out = await a.invite(f"sip:1@127.0.0.1:{b.port}", ("127.0.0.1", b.port),
                                 from_user="2", sdp_offer=SDP_A)
            assert await out.wait_progress() == "ringing"
            await out.cancel()
            with pytest.raises(CallFailed) as ei:
                await out.wait_answer()
            assert ei.value.status == 487
            await inbound[0].ended.wait()
            assert inbound[0].canceled and inbound[0].end_reason == "cancel"
            await out.ended.wait()
            assert out.end_reason == "cancel"
            n.cancel_scope.cancel()


@pytest.mark.parametrize("behaviour,status", [("none", 480), ("raise", 500), ("404", 404)])
async def test_handler_outcomes(behaviour, status):
    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            a, b = await _ua(n), await _ua(n)

            async def handler(call):
                if behaviour == "raise":
                    raise RuntimeError("boom")
                await call.reject(404)

            b.on_incoming = None if behaviour == "none" else handler
            out = await a.invite(f"sip:1@127.0.0.1:{b.port}", ("127.0.0.1", b.port),
                                 from_user="2", sdp_offer=SDP_A)
            assert await out.wait_progress() == "failed"
            with pytest.raises(CallFailed) as ei:
                await out.wait_answer()
            assert ei.value.status == status
            n.cancel_scope.cancel()


async def test_options_rtt_and_timeout():
    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            a, b = await _ua(n), await _ua(n)
            status, rtt = await a.options(("127.0.0.1", b.port))
            assert status == 200 and 0 <= rtt < 1
            silent = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await silent.bind(("127.0.0.1", 0))
            status, rtt = await a.options(silent.getsockname(), timeout=0.3)
            assert status == 0 and rtt == 0.3
            silent.close()
            n.cancel_scope.cancel()


async def test_invite_timeout_cancels():
    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            a, b = await _ua(n), await _ua(n)

            async def handler(call):
                await call.ringing()
                await call.ended.wait()

            b.on_incoming = handler
            out = await a.invite(f"sip:1@127.0.0.1:{b.port}", ("127.0.0.1", b.port),
                                 from_user="2", sdp_offer=SDP_A, timeout=0.3)
            with pytest.raises(CallFailed) as ei:
                await out.wait_answer()
            assert ei.value.status == 408
            await out.ended.wait()
            n.cancel_scope.cancel()


@pytest.mark.parametrize("algorithm,code", [("MD5", 401), ("SHA-256", 407)])
async def test_digest_challenge_then_answer(algorithm, code):
    """A raw UDP UAS that challenges first, then checks the credentials and answers."""
    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            a = await _ua(n)
            srv = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await srv.bind(("127.0.0.1", 0))
            port = srv.getsockname()[1]
            seen = []

            async def uas():
                from gateway.proto.sip_dialog import response_to
                while True:
                    data, addr = await srv.recvfrom(65536)
                    req = sip.parse(data)
                    seen.append(req)
                    if req.method != "INVITE":
                        continue
                    hdr = "Authorization" if code == 401 else "Proxy-Authorization"
                    cred = req.get(hdr)
                    if cred is None:
                        resp = response_to(req, code, to_tag="srv")
                        name = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
                        resp.add(name, f'Digest realm="trunk", nonce="n0nce", qop="auth", '
                                       f'algorithm={algorithm}, opaque="op"')
                    else:
                        ok = sip_auth.check(cred, method="INVITE", password="pw")
                        resp = response_to(req, 200 if ok else 403, to_tag="srv", body=SDP_B)
                        resp.add("Contact", f"<sip:srv@127.0.0.1:{port}>")
                    await srv.sendto(resp.encode(), addr)

            n.start_soon(uas)
            out = await a.invite(f"sip:1@127.0.0.1:{port}", ("127.0.0.1", port),
                                 from_user="2", sdp_offer=SDP_A, auth=("user", "pw"))
            assert await out.wait_answer() == SDP_B
            invites = [r for r in seen if r.method == "INVITE"]
            assert invites[1].cseq.seq == invites[0].cseq.seq + 1
            assert invites[1].top_via.branch != invites[0].top_via.branch
            with trio.fail_after(2):  # ACK for the 401/407 (same branch) and for the 200
                while len([r for r in seen if r.method == "ACK"]) < 2:
                    await trio.sleep(0.01)
            acks = [r for r in seen if r.method == "ACK"]
            assert acks[0].top_via.branch == invites[0].top_via.branch
            assert acks[1].cseq.seq == invites[1].cseq.seq
            cred = sip_auth.parse_challenge(invites[1].get(
                "Authorization" if code == 401 else "Proxy-Authorization"))
            assert cred["qop"] == "auth" and cred["nc"] == "00000001" and cred["cnonce"]
            assert cred["algorithm"] == algorithm
            assert len(cred["response"]) == len(hashlib.new(
                "md5" if algorithm == "MD5" else "sha256").hexdigest())
            n.cancel_scope.cancel()
        srv.close()


async def test_garbage_gets_400_and_ua_survives():
    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            b = await _ua(n)
            s = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await s.bind(("127.0.0.1", 0))
            await s.sendto(b"\x00\xff garbage\r\n\r\n", ("127.0.0.1", b.port))
            bad = (b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
                   b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n\r\n")
            await s.sendto(bad, ("127.0.0.1", b.port))
            data, _ = await s.recvfrom(65536)
            resp = sip.parse(data)
            assert resp.status == 400
            assert b.core.bad_messages == 2
            a = await _ua(n)
            assert (await a.options(("127.0.0.1", b.port)))[0] == 200
            s.close()
            n.cancel_scope.cancel()


# --- SIPp as an independent peer (Debian package sip-tester) ---------------------------
def _sipp_skip():
    import shutil

    from gateway.codec import _select
    if _select.FORCED_PURE:
        pytest.skip("external-peer test runs once (not in the GATEWAY_NO_EXTENSIONS pass)")
    if shutil.which("sipp") is None:
        pytest.skip("sipp (Debian sip-tester) not installed")


def _free_udp_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _run_sipp(args, tmp_path, limit=8.0):
    """Run sipp to completion (bounded); return (exit code, stat CSV rows)."""
    import csv
    import subprocess
    stat = tmp_path / "stat.csv"
    proc = await trio.lowlevel.open_process(
        ["sipp", *args, "-i", "127.0.0.1", "-m", "1", "-nostdin", "-timeout", f"{int(limit)}s",
         "-trace_stat", "-stf", str(stat), "-fd", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        with trio.fail_after(limit + 2):
            rc = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()  # this PID only
            await proc.wait()
    with open(stat) as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    return rc, rows


@pytest.mark.slow
async def test_sipp_uac_calls_sipua(tmp_path):
    _sipp_skip()
    with trio.fail_after(15):
        async with trio.open_nursery() as n:
            b = await _ua(n)
            answered = []

            async def handler(call):
                await call.ringing()
                await call.answer(SDP_B)
                answered.append(call)
                await call.ended.wait()

            b.on_incoming = handler
            rc, rows = await _run_sipp(["-sn", "uac", f"127.0.0.1:{b.port}",
                                        "-p", str(_free_udp_port()), "-d", "100"], tmp_path)
            assert rc == 0
            assert rows[-1]["SuccessfulCall(C)"] == "1" and rows[-1]["FailedCall(C)"] == "0"
            assert answered and answered[0].end_reason == "bye"
            n.cancel_scope.cancel()


@pytest.mark.slow
async def test_sipua_calls_sipp_uas(tmp_path):
    _sipp_skip()
    port = _free_udp_port()
    with trio.fail_after(15):
        async with trio.open_nursery() as n:
            a = await _ua(n)
            result, done = {}, trio.Event()

            async def sipp():
                result["rc"], result["rows"] = await _run_sipp(
                    ["-sn", "uas", "-p", str(port)], tmp_path)
                done.set()

            n.start_soon(sipp)
            # SIPp may still be starting: Timer A retransmits the INVITE until it listens
            out = await a.invite(f"sip:service@127.0.0.1:{port}", ("127.0.0.1", port),
                                 from_user="gw", sdp_offer=SDP_A, timeout=5)
            await out.wait_answer()
            assert out.status_code == 200
            await out.hangup()
            await done.wait()
            assert result["rc"] == 0
            assert result["rows"][-1]["SuccessfulCall(C)"] == "1"
            n.cancel_scope.cancel()


async def test_tcp_framing_options_then_garbage_400_and_close():
    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            b = await _ua(n)
            stream = await trio.open_tcp_stream("127.0.0.1", b.port)
            port = stream.socket.getsockname()[1]
            opt = (f"OPTIONS sip:127.0.0.1:{b.port} SIP/2.0\r\n"
                   f"v: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bKtcp1\r\n"
                   "f: <sip:p@x>;tag=1\r\nt: <sip:q@y>\r\ni: tcp1\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n")
            await stream.send_all(opt.encode()[:20])  # split across segments
            await stream.send_all(opt.encode()[20:])
            dec, got = sip.StreamDecoder(), []
            while not got:
                got = dec.feed(await stream.receive_some(65536))
            assert got[0].status == 200 and got[0].call_id == "tcp1"
            await stream.send_all(opt.replace("CSeq: 1 OPTIONS", "CSeq: x").encode())
            data = b""
            async for chunk in stream:  # 400, then the UA closes the connection
                data += chunk
            assert data.startswith(b"SIP/2.0 400 ") and b"Call-ID: tcp1" in data
            await stream.aclose()
            n.cancel_scope.cancel()
