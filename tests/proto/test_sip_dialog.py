"""Two sans-I/O UA cores talking through an in-memory network (h11 ConnectionPair style):
calls, BYE either way, re-INVITE, CANCEL/487, 481s, OPTIONS, 2xx retransmission until
ACK, re-ACK of retransmitted 2xx, route sets and loose/strict routing."""

import random

from gateway.codec import sip
from gateway.proto.sip_core import UaCore
from gateway.proto.sip_dialog import (
    CallAnswered,
    CallEnded,
    CallProgress,
    CallRejected,
    Dialog,
    IncomingCall,
    OptionsDone,
    response_to,
)

A, B = ("10.0.0.1", 5060), ("10.0.0.2", 5080)
OFFER, ANSWER = b"v=0\r\no=a 1 1 IN IP4 10.0.0.1\r\n", b"v=0\r\no=b 1 1 IN IP4 10.0.0.2\r\n"


class Net:
    def __init__(self):
        self.cores = {A: UaCore(*A, rng=random.Random(1)), B: UaCore(*B, rng=random.Random(2))}
        self.events = {A: [], B: []}
        self.wire = []  # (src, dst, parsed message) in order
        self.sent_at = []  # (time, src, parsed message)
        self.drop = lambda src, msg: False

    @property
    def a(self):
        return self.cores[A]

    @property
    def b(self):
        return self.cores[B]

    def run(self, now):
        """Deliver until quiet."""
        busy = True
        while busy:
            busy = False
            for src, core in self.cores.items():
                self.events[src] += core.next_events()
                for out in core.data_to_send():
                    busy = True
                    msg = sip.parse(out.data)
                    self.wire.append((src, out.dest, msg))
                    self.sent_at.append((now, src, msg))
                    if not self.drop(src, msg) and out.dest in self.cores:
                        self.cores[out.dest].receive(out.data, src, out.transport, now)

    def advance(self, t0, t1, step=0.1):
        for i in range(round((t1 - t0) / step) + 1):
            t = t0 + i * step
            for core in self.cores.values():
                core.tick(t)
            self.run(t)

    def of(self, side, kind):
        return [e for e in self.events[side] if isinstance(e, kind)]

    def methods(self, src):
        return [m.method if isinstance(m, sip.Request) else m.status
                for s, _, m in self.wire if s == src]


def connected_call(net, headers=None):
    cid = net.a.invite(f"sip:+1555@{B[0]}:{B[1]}", B, from_user="+1444", sdp=OFFER, now=0,
                       headers=headers)
    net.run(0)
    (inc,) = net.of(B, IncomingCall)
    net.b.ringing(cid, 0.1)
    net.run(0.1)
    net.b.answer(cid, ANSWER, 0.2)
    net.run(0.2)
    return cid, inc


def test_call_answer_ack_then_callee_bye():
    net = Net()
    cid, inc = connected_call(net, headers=[("P-Asserted-Identity", "<sip:+1444@carrier>"),
                                            ("Session-Expires", "1800;refresher=uac")])
    assert inc.request.get("P-Asserted-Identity") == "<sip:+1444@carrier>"
    assert [e.status for e in net.of(A, CallProgress)] == [180]
    assert net.of(A, CallAnswered)[0].sdp == ANSWER
    assert net.methods(B) == [100, 180, 200]
    assert net.methods(A) == ["INVITE", "ACK"]
    assert net.b.calls[cid].state == "confirmed" and net.b.calls[cid].ok is None
    net.b.hangup(cid, 1.0)
    net.run(1.0)
    assert net.of(A, CallEnded)[0].reason == "bye" and net.of(B, CallEnded)[0].reason == "hangup"
    bye = [m for s, _, m in net.wire if s == B and isinstance(m, sip.Request)][-1]
    assert bye.method == "BYE" and bye.uri == f"sip:+1444@{A[0]}:{A[1]}"  # remote target
    assert bye.to.tag == net.a.calls[cid].local_tag
    assert net.methods(A)[-1] == 200
    net.advance(1.0, 40, step=1)  # ended calls are forgotten after 64*T1
    assert cid not in net.a.calls and cid not in net.b.calls


def test_reinvite_hold_answered_with_current_sdp_then_caller_bye():
    net = Net()
    cid, _ = connected_call(net)
    dlg = net.a.calls[cid].dialog
    hold = OFFER + b"a=sendonly\r\n"
    req, dest = dlg.request("INVITE", net.a._via("UDP"), body=hold)
    assert dest == B
    net.a.layer.send_request(req, dest, "UDP", 2.0)
    net.run(2.0)
    ok = [m for s, _, m in net.wire if s == B and isinstance(m, sip.Response)][-1]
    assert ok.status == 200 and ok.body == ANSWER and ok.cseq.seq == req.cseq.seq
    net.a.hangup(cid, 3.0)
    net.run(3.0)
    assert net.of(B, CallEnded)[0].reason == "bye"
    assert net.of(A, CallEnded)[0].reason == "hangup"


def test_cancel_before_answer_200_and_487():
    net = Net()
    cid = net.a.invite(f"sip:x@{B[0]}:{B[1]}", B, from_user="y", sdp=OFFER, now=0)
    net.run(0)
    net.a.cancel(cid, 0.05)  # only a 100 so far: CANCEL waits for a provisional (§9.1)
    net.run(0.05)
    assert "CANCEL" not in net.methods(A)
    net.b.ringing(cid, 0.1)
    net.run(0.1)
    assert net.methods(A) == ["INVITE", "CANCEL", "ACK"]
    assert net.methods(B) == [100, 180, 200, 487]
    assert net.of(A, CallRejected)[0].status == 487
    assert net.of(A, CallEnded)[0].reason == "cancel" and net.of(B, CallEnded)[0].reason == "cancel"
    assert net.b.calls[cid].canceled


def test_481_for_unknown_dialog_and_cancel_and_options_anywhere():
    net = Net()
    bye = sip.Request("BYE", f"sip:b@{B[0]}")
    for n, v in [("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKq"), ("From", "<sip:a@x>;tag=1"),
                 ("To", "<sip:b@y>;tag=nope"), ("Call-ID", "zz"), ("CSeq", "5 BYE")]:
        bye.add(n, v)
    net.b.receive(bye.encode(), A, "UDP", 0)
    cancel = sip.parse(bye.encode().replace(b"BYE", b"CANCEL"))
    net.b.receive(cancel.encode(), A, "UDP", 0)
    key = net.a.options(B, 0)
    net.run(0)
    statuses = [m.status for s, _, m in net.wire if s == B]
    assert statuses == [481, 481, 200]
    opt_ok = net.wire[-1][2]
    assert "INVITE" in opt_ok.get("Allow") and opt_ok.get("Accept") == "application/sdp"
    assert net.of(A, OptionsDone) == [OptionsDone(key, 200)]


def test_options_timeout_reports_zero():
    net = Net()
    net.drop = lambda src, msg: True
    key = net.a.options(B, 0)
    net.advance(0, 33, step=0.5)
    assert net.of(A, OptionsDone) == [OptionsDone(key, 0)]


def test_uas_retransmits_2xx_until_ack_then_byes_after_64_t1():
    net = Net()
    net.drop = lambda src, msg: isinstance(msg, sip.Request) and msg.method == "ACK"
    cid, _ = connected_call(net)
    net.advance(0.2, 33, step=0.1)
    times = [round(t, 1) for t in _send_times(net, B, 200)]
    assert times[:6] == [0.2, 0.7, 1.7, 3.7, 7.7, 11.7]  # T1 doubling, capped at T2
    assert net.of(B, CallEnded)[0].reason == "timeout"
    assert "BYE" in net.methods(B)
    assert len(net.of(A, CallAnswered)) == 1  # retransmissions re-ACKed, not re-reported


def _send_times(net, src, status):
    return [t for t, s, m in net.sent_at
            if s == src and isinstance(m, sip.Response) and m.status == status]


def test_lost_ack_retransmitted_2xx_is_reacked():
    net = Net()
    dropped = []

    def drop_first_ack(src, msg):
        if isinstance(msg, sip.Request) and msg.method == "ACK" and not dropped:
            dropped.append(msg)
            return True
        return False

    net.drop = drop_first_ack
    cid, _ = connected_call(net)
    assert net.b.calls[cid].state == "answered"
    net.advance(0.2, 1.0)
    assert net.b.calls[cid].state == "confirmed"
    assert net.methods(A).count("ACK") == 2


def test_out_of_order_cseq_gets_500():
    net = Net()
    cid, _ = connected_call(net)
    dlg = net.a.calls[cid].dialog
    req, dest = dlg.request("INFO", net.a._via("UDP"), seq=dlg.local_seq - 1)
    net.a.layer.send_request(req, dest, "UDP", 1)
    net.run(1)
    assert net.methods(B)[-1] == 500


def test_route_sets_loose_and_strict():
    inv = sip.Request("INVITE", "sip:b@10.0.0.2")
    for n, v in [("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1"), ("From", "<sip:a@x>;tag=fa"),
                 ("To", "<sip:b@y>"), ("Call-ID", "c"), ("CSeq", "1 INVITE"),
                 ("Contact", "<sip:a@10.0.0.1:5060>"),
                 ("Record-Route", "<sip:p2.example;lr>, <sip:p1.example:5070;lr>")]:
        inv.add(n, v)
    resp = response_to(inv, 200, to_tag="tb")
    resp.add("Contact", "<sip:b@10.0.0.2:5080>")
    uac = Dialog.as_uac(inv, resp, "<sip:a@10.0.0.1>")
    assert uac.route_set == ["<sip:p1.example:5070;lr>", "<sip:p2.example;lr>"]
    bye, dest = uac.request("BYE", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK2")
    assert bye.uri == "sip:b@10.0.0.2:5080" and dest == ("p1.example", 5070)
    assert bye.get_all("Route") == uac.route_set and bye.cseq.seq == 2
    uas = Dialog.as_uas(inv, "tb", "<sip:b@10.0.0.2:5080>")
    assert uas.route_set == ["<sip:p2.example;lr>", "<sip:p1.example:5070;lr>"]
    assert uas.remote_target.hostport() == ("10.0.0.1", 5060)
    uas.route_set = ["<sip:strict.example>", "<sip:p9.example;lr>"]  # strict router first
    req, dest = uas.request("BYE", "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK3")
    assert req.uri == "sip:strict.example" and dest == ("strict.example", 5060)
    assert req.get_all("Route") == ["<sip:p9.example;lr>", "<sip:a@10.0.0.1:5060>"]
