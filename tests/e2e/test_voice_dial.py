"""``<Dial>`` with several ``<Number>``s rung in parallel: SIPp (``-sn uas``) answers one
trunk, a minimal in-test UAS on the other only rings. The first answer wins and is
bridged; the ringing one gets CANCEL (we check the CANCEL arrived and 487 was ACKed) and
its child call ends ``canceled``. Skipped without SIPp."""

from __future__ import annotations

import pytest
import trio

from gateway.core import call as C

from .voice_harness import (
    NUMBER,
    SIPP,
    free_udp_port,
    scenario_dtmf,
    sipp,
    uac_args,
    uas_args,
    voice_env,
)

pytestmark = pytest.mark.skipif(SIPP is None, reason="SIPp (sip-tester) not installed")


def _reply(req: str, status: str, tag: str = "ringer1") -> bytes:
    lines = req.split("\r\n")
    keep = [ln for ln in lines[1:] if ln.split(":", 1)[0].strip().lower()
            in ("via", "from", "call-id", "cseq")]
    to = next(ln for ln in lines if ln.lower().startswith("to:"))
    if ";tag=" not in to:
        to += f";tag={tag}"
    return ("\r\n".join([f"SIP/2.0 {status}", *keep, to, "Content-Length: 0"])
            + "\r\n\r\n").encode()


class Ringer:
    """A UAS that answers OPTIONS, rings every INVITE (100, 180) and never answers;
    CANCEL -> 200 + 487. Records the methods it received."""

    def __init__(self) -> None:
        self.sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        self.methods: list[str] = []
        self.invites: dict[str, str] = {}
        self.changed = trio.Event()

    async def run(self) -> None:
        while True:
            data, addr = await self.sock.recvfrom(65536)
            msg = data.decode(errors="replace")
            method = msg.split(" ", 1)[0]
            if method == "SIP/2.0":
                continue
            self.methods.append(method)
            self.changed.set()
            self.changed = trio.Event()
            call_id = next(ln.split(":", 1)[1].strip() for ln in msg.split("\r\n")
                           if ln.lower().startswith(("call-id:", "i:")))
            if method == "OPTIONS":
                await self.sock.sendto(_reply(msg, "200 OK"), addr)
            elif method == "INVITE" and call_id not in self.invites:
                self.invites[call_id] = msg
                await self.sock.sendto(_reply(msg, "100 Trying"), addr)
                await self.sock.sendto(_reply(msg, "180 Ringing"), addr)
            elif method == "CANCEL":
                await self.sock.sendto(_reply(msg, "200 OK"), addr)
                await self.sock.sendto(_reply(self.invites[call_id], "487 Request Terminated"),
                                       addr)

    async def wait_for(self, method: str, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while method not in self.methods:
                await self.changed.wait()


async def test_dial_rings_numbers_in_parallel_first_answer_wins(tmp_path):
    port = free_udp_port()
    ringer = Ringer()
    await ringer.sock.bind(("127.0.0.1", 0))
    rport = ringer.sock.getsockname()[1]
    routes = [("+1500555", ["a"]), ("+1500666", ["b"])]
    with trio.fail_after(40):
        async with trio.open_nursery() as outer:
            outer.start_soon(ringer.run)
            async with sipp(uas_args(port), tmp_path):
                async with voice_env(tmp_path, [("a", port), ("b", rport)],
                                     routes=routes) as env:
                    env.sink.replies["/voice"] = (200, "text/xml", (
                        b'<Response><Dial action="/dialed" timeLimit="1" timeout="10">'
                        b"<Number>+15006660001</Number><Number>+15005550001</Number>"
                        b"</Dial></Response>"))
                    env.sink.replies["/dialed"] = (200, "text/xml",
                                                   b"<Response><Hangup/></Response>")
                    scen = tmp_path / "in.xml"
                    scen.write_text(scenario_dtmf([]))
                    async with sipp(uac_args(env.sip_port, scen, NUMBER.lstrip("+")),
                                    tmp_path) as p:
                        rc = await p.wait(30)
                    assert rc == 0, p.out.decode(errors="replace")[-3000:]
                    (dialed,) = env.sink.at("/dialed")
                    assert dialed.form["DialCallStatus"] == "completed"
                    await ringer.wait_for("CANCEL")
                    await ringer.wait_for("ACK")            # our ACK of its 487
                    with trio.fail_after(10):
                        while True:
                            calls = await env.gw.voice.list_calls(dialed.form["AccountSid"])
                            kids = [c for c in calls if c.direction == C.OUTBOUND_DIAL]
                            if len(kids) == 2 and all(c.final for c in calls):
                                break
                            await trio.sleep(0.02)
                    by_carrier = {c.carrier: c for c in kids}
                    assert by_carrier["a"].status == C.COMPLETED
                    assert by_carrier["a"].sid == dialed.form["DialCallSid"]
                    assert by_carrier["b"].status == C.CANCELED
                    assert {c.parent_call_sid for c in kids} == {dialed.form["CallSid"]}
            outer.cancel_scope.cancel()


async def test_number_url_whisper_runs_on_the_called_party_first(tmp_path):
    port = free_udp_port()
    with trio.fail_after(40):
        async with sipp(uas_args(port), tmp_path):
            async with voice_env(tmp_path, [("a", port)]) as env:
                env.sink.replies["/voice"] = (200, "text/xml", (
                    b'<Response><Dial action="/dialed" timeLimit="1">'
                    b'<Number url="/whisper">+15005550001</Number></Dial></Response>'))
                env.sink.replies["/whisper"] = (200, "text/xml",
                                                b"<Response><Pause length=\"1\"/></Response>")
                env.sink.replies["/dialed"] = (200, "text/xml", b"<Response><Hangup/></Response>")
                scen = tmp_path / "in.xml"
                scen.write_text(scenario_dtmf([]))
                async with sipp(uac_args(env.sip_port, scen, NUMBER.lstrip("+")), tmp_path) as p:
                    rc = await p.wait(30)
                assert rc == 0, p.out.decode(errors="replace")[-3000:]
                (whisper,) = env.sink.at("/whisper")
                (dialed,) = env.sink.at("/dialed")
                # the whisper document is fetched for the child leg, before the bridge
                assert whisper.form["CallSid"] == dialed.form["DialCallSid"]
                assert whisper.form["ParentCallSid"] == dialed.form["CallSid"]
                assert whisper.form["Direction"] == "outbound-dial"
                assert dialed.form["DialCallStatus"] == "completed"
                assert env.sink.hits.index(whisper) < env.sink.hits.index(dialed)
