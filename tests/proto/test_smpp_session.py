"""EsmeSession without sockets: the test plays the SMSC with codec PDUs."""

from __future__ import annotations

import struct

import pytest

from gateway import codec
from gateway.proto import smpp_session as ss
from gateway.proto.smpp_events import (
    BindFailed,
    Bound,
    DeliverReceived,
    EnquireLinkRtt,
    LinkDead,
    ProtocolError,
    SubmitResp,
    SubmitsLost,
    Unbound,
)

pytestmark = pytest.mark.codec
C, S = codec.CommandId, codec.Status


class Peer:
    """The SMSC end: decodes what the session sends."""

    def __init__(self) -> None:
        self.dec = codec.Decoder()

    def read(self, session) -> list:
        return self.dec.feed(session.data_to_send())


def new_session(**kw):
    kw.setdefault("window", 4)
    kw.setdefault("response_timeout", 5.0)
    kw.setdefault("enquire_link_interval", 30.0)
    return ss.EsmeSession("gw", "pw", **kw), Peer()


def bound_session(now=0.0, **kw):
    s, peer = new_session(**kw)
    s.start_bind(now)
    [bind] = peer.read(s)
    s.receive_data(codec.encode(codec.resp_for(bind, 0)), now)
    assert s.next_events() == [Bound("")]
    return s, peer


def sm(dest="15005550006"):
    return codec.SubmitSm(source_addr="12345", destination_addr=dest, short_message=b"hi",
                          registered_delivery=1)


def test_bind_ok_sends_bind_with_credentials():
    s, peer = new_session(bind_type="transceiver", system_type="VMA")
    assert s.state == "closed"
    s.start_bind(0.0)
    assert s.state == "binding"
    [bind] = peer.read(s)
    assert bind.command_id == C.BIND_TRANSCEIVER
    assert (bind.system_id, bind.password, bind.system_type) == ("gw", "pw", "VMA")
    resp = codec.BindTransceiverResp(bind.sequence_number, 0, system_id="SMSC")
    s.receive_data(codec.encode(resp), 0.1)
    assert s.next_events() == [Bound("SMSC")]
    assert s.state == "bound" and s.free_slots() == 4


@pytest.mark.parametrize("bind_type,cid", [("transmitter", C.BIND_TRANSMITTER),
                                           ("receiver", C.BIND_RECEIVER)])
def test_bind_types(bind_type, cid):
    s, peer = new_session(bind_type=bind_type)
    s.start_bind(0.0)
    [bind] = peer.read(s)
    assert bind.command_id == cid


def test_bind_failed():
    s, peer = new_session()
    s.start_bind(0.0)
    [bind] = peer.read(s)
    s.receive_data(codec.encode(codec.resp_for(bind, S.ESME_RINVPASWD)), 0.1)
    assert s.next_events() == [BindFailed(S.ESME_RINVPASWD)]
    assert s.state == "closed"
    with pytest.raises(ss.LocalProtocolError):
        s.submit(1, sm(), 0.2)


def test_bind_timeout_is_link_dead():
    s, peer = new_session()
    s.start_bind(0.0)
    assert s.next_deadline() == 5.0
    s.tick(4.9)
    assert s.next_events() == []
    s.tick(5.0)
    assert s.next_events() == [LinkDead("bind timeout")]


def test_submit_window_and_out_of_order_responses():
    s, peer = bound_session()
    seqs = [s.submit(f"r{i}", sm(), 1.0 + i) for i in range(4)]
    assert s.free_slots() == 0
    with pytest.raises(ss.LocalProtocolError, match="window full"):
        s.submit("r4", sm(), 5.0)
    pdus = peer.read(s)
    assert [p.sequence_number for p in pdus] == seqs
    assert len(set(seqs)) == 4
    # answer out of order, in one buffer
    resps = [codec.SubmitSmResp(seqs[i], 0, message_id=f"m{i}") for i in (2, 0, 3)]
    s.receive_data(codec.encode_many(resps), 6.0)
    evs = s.next_events()
    assert [(e.ref, e.message_id) for e in evs] == [("r2", "m2"), ("r0", "m0"), ("r3", "m3")]
    assert evs[0].latency == pytest.approx(3.0) and evs[1].latency == pytest.approx(5.0)
    assert s.free_slots() == 3 and s.in_flight_refs() == ["r1"]


def test_receiver_cannot_submit():
    s, peer = bound_session(bind_type="receiver")
    assert s.free_slots() == 0
    with pytest.raises(ss.LocalProtocolError):
        s.submit(1, sm(), 0.0)


def test_sequence_wraps_and_skips_in_flight():
    s, peer = bound_session(window=3)
    s._seq = ss.MAX_SEQ - 1
    a = s.submit("a", sm(), 0.0)
    b = s.submit("b", sm(), 0.0)
    assert (a, b) == (ss.MAX_SEQ, 1)
    # seq 2 still in flight after a full cycle is skipped
    c = s.submit("c", sm(), 0.0)
    assert c == 2
    peer.read(s)
    s.receive_data(codec.encode(codec.SubmitSmResp(a, 0, message_id="x")), 0.1)
    s.next_events()
    s._seq = 1          # next candidate 2 is in flight -> 3
    assert s.submit("d", sm(), 0.2) == 3


def test_response_timeout_loses_every_outstanding_submit():
    s, peer = bound_session(response_timeout=5.0)
    for i in range(3):
        s.submit(i, sm(), 10.0 + i * 0.1)
    assert s.next_deadline() == pytest.approx(15.0)
    s.tick(14.99)
    assert s.next_events() == []
    s.tick(15.0)
    assert s.next_events() == [SubmitsLost([0, 1, 2], "response_timeout"),
                               LinkDead("response_timeout")]
    assert s.state == "closed" and s.next_deadline() is None


def test_single_withheld_submit_expires_while_peer_talks():
    s, peer = bound_session(response_timeout=5.0)
    seq_a = s.submit("a", sm(), 10.0)
    seq_b = s.submit("b", sm(), 11.0)
    peer.read(s)
    s.receive_data(codec.encode(codec.SubmitSmResp(seq_b, 0, message_id="m")), 12.0)
    assert [e.ref for e in s.next_events()] == ["b"]
    assert s.next_deadline() == pytest.approx(15.0)
    s.tick(15.0)
    assert s.next_events() == [SubmitsLost(["a"], "expired")]
    assert s.state == "bound" and s.free_slots() == 4
    # a late answer is a stray, reported but harmless
    s.receive_data(codec.encode(codec.SubmitSmResp(seq_a, 0, message_id="late")), 16.0)
    [err] = s.next_events()
    assert isinstance(err, ProtocolError) and s.state == "bound"


def test_idle_submit_does_not_time_out_immediately():
    s, peer = bound_session(now=0.0)
    s.submit("a", sm(), 100.0)          # long idle before; last rx at 0
    s.tick(100.0)
    assert s.state == "bound" and s.next_events() == []
    assert [p.command_id for p in peer.read(s)] == [C.SUBMIT_SM, C.ENQUIRE_LINK]
    assert s.next_deadline() == pytest.approx(105.0)


def test_enquire_link_timing_and_rtt():
    s, peer = bound_session(now=0.0, enquire_link_interval=30.0)
    assert s.next_deadline() == 30.0
    s.tick(29.0)
    assert peer.read(s) == []
    s.tick(30.0)
    [el] = peer.read(s)
    assert el.command_id == C.ENQUIRE_LINK
    assert s.next_deadline() == 35.0           # waiting for the answer
    s.receive_data(codec.encode(codec.resp_for(el)), 30.25)
    assert s.next_events() == [EnquireLinkRtt(0.25)]
    assert s.next_deadline() == 60.25


def test_enquire_link_unanswered_is_link_dead():
    s, peer = bound_session(now=0.0)
    s.tick(30.0)
    peer.read(s)
    s.tick(35.0)
    assert s.next_events() == [LinkDead("enquire_link timeout")]


def test_peer_enquire_link_and_unbind_are_answered():
    s, peer = bound_session()
    seq = s.submit("x", sm(), 1.0)
    peer.read(s)
    s.receive_data(codec.encode_many([codec.EnquireLink(77), codec.Unbind(78)]), 2.0)
    out = peer.read(s)
    assert [(p.command_id, p.sequence_number) for p in out] == [
        (C.ENQUIRE_LINK_RESP, 77), (C.UNBIND_RESP, 78)]
    assert s.next_events() == [SubmitsLost(["x"], "peer unbind"), Unbound(True)]
    assert s.state == "closed" and seq


def test_our_unbind():
    s, peer = bound_session()
    s.unbind(1.0)
    [u] = peer.read(s)
    assert u.command_id == C.UNBIND and s.state == "unbinding"
    s.receive_data(codec.encode(codec.resp_for(u)), 1.1)
    assert s.next_events() == [Unbound(False)]
    assert s.state == "closed"


def test_garbage_gets_generic_nack_and_bind_stays():
    s, peer = bound_session()
    unknown = struct.pack(">IIII", 16, 0x00000077, 0, 42)
    short_submit = struct.pack(">IIII", 18, C.SUBMIT_SM, 0, 43) + b"\x00\x01"
    s.receive_data(unknown + short_submit, 1.0)
    out = peer.read(s)
    assert [(p.command_id, p.sequence_number, p.command_status) for p in out] == [
        (C.GENERIC_NACK, 42, S.ESME_RINVCMDID), (C.GENERIC_NACK, 43, S.ESME_RINVCMDLEN)]
    assert all(isinstance(e, ProtocolError) for e in s.next_events())
    assert s.state == "bound"


def test_framing_error_kills_link_after_earlier_pdus():
    s, peer = bound_session()
    seq = s.submit("a", sm(), 0.0)
    seq2 = s.submit("b", sm(), 0.0)
    peer.read(s)
    data = codec.encode(codec.SubmitSmResp(seq, 0, message_id="m1")) + \
        struct.pack(">IIII", 8, C.SUBMIT_SM_RESP, 0, seq2)
    s.receive_data(data, 1.0)
    evs = s.next_events()
    assert isinstance(evs[0], SubmitResp) and evs[0].ref == "a"
    assert SubmitsLost(["b"], evs[-2].reason) == evs[-2]
    assert isinstance(evs[-1], LinkDead) and s.state == "closed"
    [nack] = peer.read(s)
    assert nack.command_id == C.GENERIC_NACK and nack.command_status == S.ESME_RINVCMDLEN


def test_vendor_status_unknown_tlv_odd_coding_keep_bind():
    s, peer = bound_session()
    seq = s.submit("a", sm(), 0.0)
    peer.read(s)
    resp = codec.SubmitSmResp(seq, 0x400, message_id="", tlvs={0x1401: b"\x01\x02"})
    dlv = codec.DeliverSm(5, source_addr="1", destination_addr="2", data_coding=0xF0,
                          short_message=b"\xff\xfe", tlvs={0x1402: b"vendor"})
    s.receive_data(codec.encode_many([resp, dlv]), 0.5)
    e1, e2 = s.next_events()
    assert (e1.ref, e1.status) == ("a", 0x400)
    assert isinstance(e2, DeliverReceived) and e2.pdu.tlvs[0x1402] == b"vendor"
    s.answer_deliver(e2.pdu, 0)
    [r] = peer.read(s)
    assert (r.command_id, r.sequence_number, r.command_status) == (C.DELIVER_SM_RESP, 5, 0)
    assert s.state == "bound"


def test_generic_nack_for_a_submit_is_its_response():
    s, peer = bound_session()
    seq = s.submit("a", sm(), 0.0)
    peer.read(s)
    s.receive_data(codec.encode(codec.GenericNack(seq, S.ESME_RINVCMDLEN)), 0.2)
    [e] = s.next_events()
    assert (type(e), e.ref, e.status, e.message_id) == (SubmitResp, "a", S.ESME_RINVCMDLEN, "")
    assert s.free_slots() == 4


def test_deliver_answered_with_app_status():
    s, peer = bound_session()
    s.receive_data(codec.encode(codec.DeliverSm(9, short_message=b"x")), 0.0)
    [e] = s.next_events()
    s.answer_deliver(e.pdu, S.ESME_RX_T_APPN)
    [r] = peer.read(s)
    assert (r.sequence_number, r.command_status) == (9, S.ESME_RX_T_APPN)


def test_throttle_backoff_grows_and_resets():
    s, peer = bound_session(window=8)
    a = s.submit("a", sm(), 0.0)
    s.receive_data(codec.encode(codec.SubmitSmResp(a, S.ESME_RTHROTTLED)), 0.0)
    [e] = s.next_events()
    assert e.status == S.ESME_RTHROTTLED
    assert s.throttled_until == pytest.approx(0.1)
    b = s.submit("b", sm(), 0.2)
    s.receive_data(codec.encode(codec.SubmitSmResp(b, S.ESME_RMSGQFUL)), 0.2)
    assert s.throttled_until == pytest.approx(0.4)
    for t in (0.5, 1.0, 2.0, 3.0):
        x = s.submit("x", sm(), t)
        s.receive_data(codec.encode(codec.SubmitSmResp(x, S.ESME_RTHROTTLED)), t)
    assert s.throttled_until == pytest.approx(3.0 + ss.THROTTLE_MAX)
    ok = s.submit("ok", sm(), 5.0)
    s.receive_data(codec.encode(codec.SubmitSmResp(ok, 0, message_id="m")), 5.0)
    c = s.submit("c", sm(), 6.0)
    s.receive_data(codec.encode(codec.SubmitSmResp(c, S.ESME_RTHROTTLED)), 6.0)
    assert s.throttled_until == pytest.approx(6.1)


def test_connection_lost_reports_in_flight():
    s, peer = bound_session()
    s.submit("a", sm(), 0.0)
    s.submit("b", sm(), 0.0)
    s.connection_lost("reset")
    assert s.next_events() == [SubmitsLost(["a", "b"], "reset"), LinkDead("reset")]
    s.connection_lost("again")
    assert s.next_events() == []


def test_transition_table_refuses_illegal_moves():
    s, _ = new_session()
    with pytest.raises(ss.LocalProtocolError):
        s.unbind(0.0)
    s.start_bind(0.0)
    with pytest.raises(ss.LocalProtocolError):
        s.start_bind(0.0)


def test_byte_at_a_time_feed():
    s, peer = new_session()
    s.start_bind(0.0)
    [bind] = peer.read(s)
    data = codec.encode(codec.resp_for(bind, 0))
    for i in range(len(data)):
        s.receive_data(data[i:i + 1], 0.0)
    assert s.next_events() == [Bound("")]


def test_unencodable_submit_raises_and_consumes_nothing():
    s, peer = bound_session()
    bad = codec.SubmitSm(source_addr="1", destination_addr="2", short_message=b"x" * 300)
    with pytest.raises(ValueError):
        s.submit("bad", bad, 0.0)
    assert s.free_slots() == 4 and s.in_flight_refs() == [] and peer.read(s) == []
    s.submit("ok", sm(), 0.0)
    assert [p.command_id for p in peer.read(s)] == [C.SUBMIT_SM]
