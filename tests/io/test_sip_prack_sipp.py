"""RFC 3262 against SIPp (Debian sip-tester) as the independent peer: SIPp requires 100rel
and PRACKs our reliable 180; our UAC PRACKs SIPp's reliable 180 (RSeq 7) before its 200."""

import pytest
import trio

from gateway.testing import sipp
from tests.io.test_sip_endpoint import SDP_A, SDP_B, _free_udp_port, _run_sipp, _sipp_skip, _ua

pytestmark = pytest.mark.slow


async def test_sipp_requires_100rel_and_pracks_our_180(tmp_path):
    _sipp_skip()
    body = (sipp.invite(require_100rel=True) + '<recv response="100" optional="true"/>'
            + sipp.prack_reliable(180, cseq=2)
            + '<recv response="200" rrs="true"/>' + sipp.ack() + sipp.bye(cseq=3))
    (tmp_path / "uac.xml").write_text(sipp.scenario(body, "prack-uac"))
    with trio.fail_after(15):
        async with trio.open_nursery() as n:
            b = await _ua(n)
            calls = []

            async def handler(call):
                calls.append(call)
                await call.ringing()
                await call.answer(SDP_B)   # held by the core until the PRACK
                await call.ended.wait()

            b.on_incoming = handler
            rc, rows = await _run_sipp(["-sf", "uac.xml", f"127.0.0.1:{b.port}", "-s", "1555",
                                        "-p", str(_free_udp_port())], tmp_path)
            assert rc == 0, rows[-1]
            assert rows[-1]["SuccessfulCall(C)"] == "1"
            assert calls and calls[0].end_reason == "bye"
            n.cancel_scope.cancel()


async def test_our_uac_pracks_sipp_reliable_180(tmp_path):
    _sipp_skip()
    (tmp_path / "uas.xml").write_text(sipp.scenario(sipp.uas_reliable_180() + sipp.ok_bye(),
                                                    "prack-uas"))
    port = _free_udp_port()
    with trio.fail_after(15):
        async with trio.open_nursery() as n:
            a = await _ua(n)
            result, done = {}, trio.Event()

            async def run():
                result["rc"], result["rows"] = await _run_sipp(
                    ["-sf", "uas.xml", "-p", str(port)], tmp_path)
                done.set()

            n.start_soon(run)
            out = await a.invite(f"sip:service@127.0.0.1:{port}", ("127.0.0.1", port),
                                 from_user="gw", sdp_offer=SDP_A, timeout=8)
            await out.wait_answer()
            assert out.provisionals == [180] and out.status_code == 200
            await out.hangup()
            await done.wait()
            assert result["rc"] == 0, result["rows"][-1]
            assert result["rows"][-1]["SuccessfulCall(C)"] == "1"
            n.cancel_scope.cancel()
