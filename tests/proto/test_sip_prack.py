"""RFC 3262 (100rel/PRACK) between two sans-I/O UA cores on the in-memory network of
test_sip_dialog (time is the explicit ``now``: retransmissions are checked to the tick)."""

from gateway.codec import sip
from gateway.proto.sip_dialog import CallEnded, CallProgress, CallRejected, IncomingCall
from tests.proto.test_sip_dialog import ANSWER, OFFER, A, B, Net, _send_times

REQUIRE = [("Require", "100rel")]


def _invite(net, headers=REQUIRE):
    cid = net.a.invite(f"sip:+1555@{B[0]}:{B[1]}", B, from_user="+1444", sdp=OFFER, now=0,
                       headers=headers)
    net.run(0)
    return cid


def _sent(net, src, method_or_status):
    return [m for s, _, m in net.wire if s == src and (
        getattr(m, "method", None) == method_or_status
        or getattr(m, "status", None) == method_or_status)]


def test_reliable_180_prack_200_then_answer_and_bye_in_order():
    net = Net()
    cid = _invite(net)
    (inc,) = net.of(B, IncomingCall)
    assert inc.request.get("Supported") == "100rel"   # our UAC advertises it
    net.b.ringing(cid, 0.1)
    net.run(0.1)
    (ringing,) = _sent(net, B, 180)
    assert ringing.get("Require") == "100rel" and 1 <= int(ringing.get("RSeq")) < 2**31
    (prack,) = _sent(net, A, "PRACK")
    inv_seq = net.a.calls[cid].invite.cseq.seq
    assert prack.get("RAck") == f"{ringing.get('RSeq')} {inv_seq} INVITE"
    assert prack.cseq.seq == inv_seq + 1 and prack.to.tag == ringing.to.tag
    assert [m.cseq.method for m in _sent(net, B, 200)] == ["PRACK"]
    assert [e.status for e in net.of(A, CallProgress)] == [180]
    net.b.answer(cid, ANSWER, 0.2)
    net.run(0.2)
    assert net.b.calls[cid].state == "confirmed"
    net.advance(0.2, 2.0)   # no retransmission of the acknowledged 180
    assert len(_sent(net, B, 180)) == 1
    net.a.hangup(cid, 2.0)
    net.run(2.0)
    bye = _sent(net, A, "BYE")[0]
    assert bye.cseq.seq == prack.cseq.seq + 1
    assert net.of(B, CallEnded)[0].reason == "bye"   # not 500 Out Of Order


def test_answer_waits_for_the_prack_and_180_retransmits_t1_doubling():
    net = Net()
    cid = _invite(net)
    net.drop = lambda src, m: getattr(m, "method", None) == "PRACK" and net.clock < 1.5
    net.clock = 0.1
    net.b.ringing(cid, 0.1)
    net.run(0.1)
    net.b.answer(cid, ANSWER, 0.2)
    net.run(0.2)
    assert not [m for m in _sent(net, B, 200) if m.cseq.method == "INVITE"]   # held
    for i in range(1, 40):
        net.clock = t = round(0.2 + i * 0.1, 1)
        for core in net.cores.values():
            core.tick(t)
        net.run(t)
    times = [round(t, 1) for t in _send_times(net, B, 180)]
    assert times[:3] == [0.1, 0.6, 1.6]           # T1, 2*T1 (PRACK lost meanwhile)
    oks = [(t, m.cseq.method) for t, s, m in net.sent_at
           if s == B and isinstance(m, sip.Response) and m.status == 200]
    assert [m for _, m in oks] == ["PRACK", "INVITE"]   # the 2xx after the PRACK's 200
    assert oks[0][0] == oks[1][0] >= 1.5
    assert net.b.calls[cid].state == "confirmed" and net.a.calls[cid].state == "confirmed"
    assert len(_send_times(net, B, 180)) == 3      # no more after the PRACK


def test_no_prack_for_64_t1_rejects_504():
    net = Net()
    cid = _invite(net)
    net.drop = lambda src, m: getattr(m, "method", None) == "PRACK"
    net.b.ringing(cid, 0.1)
    net.run(0.1)
    net.advance(0.1, 33.0, step=0.1)
    times = [round(t, 1) for t in _send_times(net, B, 180)]
    assert times == [0.1, 0.6, 1.6, 3.6, 7.6, 15.6, 31.6]
    assert [m.cseq.method for m in _sent(net, B, 504)] == ["INVITE"]
    assert net.of(B, CallEnded)[0].reason == "timeout"
    assert net.of(A, CallRejected)[0].status == 504
    assert len(net.of(A, CallProgress)) == 1          # retransmissions not re-reported


def test_supported_only_gets_unreliable_18x():
    net = Net()
    cid = _invite(net, headers=[])
    net.b.ringing(cid, 0.1)
    net.run(0.1)
    (ringing,) = _sent(net, B, 180)
    assert ringing.get("RSeq") is None and ringing.get("Require") is None
    assert not _sent(net, A, "PRACK")
    net.b.answer(cid, ANSWER, 0.2)
    net.run(0.2)
    assert net.b.calls[cid].state == "confirmed"


def test_second_18x_queued_until_prack_and_rseq_increments():
    net = Net()
    cid = _invite(net)
    net.drop = lambda src, m: getattr(m, "method", None) == "PRACK" and net.clock < 0.3
    net.clock = 0.1
    net.b.ringing(cid, 0.1)
    net.b.ringing(cid, 0.1, sdp=ANSWER)    # 183 must wait for the 180's PRACK
    net.run(0.1)
    assert not _sent(net, B, 183)
    net.clock = 0.6
    net.advance(0.6, 0.6)                    # 180 retransmitted; A re-PRACKs? no: E timer
    net.advance(0.7, 1.2)
    (p183,) = _sent(net, B, 183)
    first = _sent(net, B, 180)[0]
    assert int(p183.get("RSeq")) == int(first.get("RSeq")) + 1
    assert [e.status for e in net.of(A, CallProgress)] == [180, 183]
    assert len(_sent(net, A, "PRACK")) >= 2


def test_prack_matching_nothing_gets_481():
    net = Net()
    cid = _invite(net)
    net.drop = lambda src, m: getattr(m, "method", None) == "PRACK"
    net.b.ringing(cid, 0.1)
    net.run(0.1)
    ringing = _sent(net, B, 180)[0]
    bad = sip.Request("PRACK", f"sip:+1555@{B[0]}:{B[1]}")
    for n, v in [("Via", f"SIP/2.0/UDP {A[0]}:{A[1]};branch=z9hG4bKbadrack"),
                 ("From", net.a.calls[cid].invite.get("From")), ("To", ringing.get("To")),
                 ("Call-ID", cid), ("CSeq", "9000 PRACK"),
                 ("RAck", f"{int(ringing.get('RSeq')) + 5} 1 INVITE")]:
        bad.add(n, v)
    net.drop = lambda src, m: False
    net.b.receive(bad.encode(), A, "UDP", 0.2)
    net.run(0.2)
    assert [m.cseq.method for m in _sent(net, B, 481)] == ["PRACK"]
    assert net.b.calls[cid].state == "early"
