"""SIP transaction layer with an injected clock: retransmission schedules (A, E, G),
timeouts (B, F, H), absorption of retransmitted requests, ACK of non-2xx, TCP quiet."""

import ast
import pathlib

import pytest

from gateway.codec import sip
from gateway.proto.sip_dialog import response_to
from gateway.proto.sip_transaction import (
    AckIn,
    RequestIn,
    ResponseIn,
    StrayResponse,
    TransactionLayer,
    TxTimeout,
)

PEER = ("127.0.0.1", 5070)


def req(method="INVITE", branch="z9hG4bKabc", seq=1, to_tag=None):
    r = sip.Request(method, "sip:bob@127.0.0.1:5070")
    r.add("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport")
    r.add("From", "<sip:alice@127.0.0.1>;tag=a1")
    r.add("To", "<sip:bob@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""))
    r.add("Call-ID", "cid1")
    r.add("CSeq", f"{seq} {method}")
    r.add("Max-Forwards", "70")
    return r


def run_until(layer, t_end, step=0.05):
    """Tick in small steps; return [(time, parsed message)] sent."""
    return run_until_from(layer, 0.0, t_end, step)


def test_invite_client_timer_a_doubles_and_b_times_out():
    layer = TransactionLayer()
    layer.send_request(req(), PEER, "UDP", 0.0)
    sent = [(0.0, m) for m in map(lambda o: sip.parse(o.data), layer.data_to_send())]
    sent += run_until(layer, 33)
    times = [t for t, m in sent]
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # A = T1, doubling, uncapped
    ev = layer.next_events()
    assert len(ev) == 1 and isinstance(ev[0], TxTimeout) and ev[0].timer == "B"
    assert not layer.client and layer.next_deadline() is None


def test_non_invite_client_timer_e_caps_at_t2_and_f():
    layer = TransactionLayer()
    layer.send_request(req("OPTIONS"), PEER, "UDP", 0.0)
    layer.data_to_send()
    times = [t for t, _ in run_until(layer, 32.1)]
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]  # E: 0.5, 1, 2, 4, 4, 4 ...
    assert [e.timer for e in layer.next_events()] == ["F"]


def test_tcp_client_does_not_retransmit():
    layer = TransactionLayer()
    layer.send_request(req("OPTIONS"), PEER, "TCP", 0.0)
    layer.data_to_send()
    assert run_until(layer, 33) == []
    assert [e.timer for e in layer.next_events()] == ["F"]


def test_invite_client_acks_non_2xx_and_reacks_retransmits():
    layer = TransactionLayer()
    r = req()
    tx = layer.send_request(r, PEER, "UDP", 0.0)
    layer.data_to_send()
    layer.receive(response_to(r, 180, to_tag="b1"), PEER, "UDP", 0.2)
    assert isinstance(layer.next_events()[0], ResponseIn)
    assert run_until(layer, 10) == []  # proceeding: no more retransmissions, no Timer B
    busy = response_to(r, 486, to_tag="b1")
    layer.receive(busy, PEER, "UDP", 10.0)
    (ev,) = layer.next_events()
    assert ev.response.status == 486 and tx.state == "completed"
    (ack,) = [sip.parse(o.data) for o in layer.data_to_send()]
    assert ack.method == "ACK" and ack.top_via.branch == "z9hG4bKabc"
    assert ack.to.tag == "b1" and ack.cseq.seq == 1 and ack.cseq.method == "ACK"
    layer.receive(busy, PEER, "UDP", 10.5)  # retransmitted final: ACK again, no event
    assert [sip.parse(o.data).method for o in layer.data_to_send()] == ["ACK"]
    assert layer.next_events() == []
    layer.tick(10 + 32)  # Timer D
    assert not layer.client


def test_invite_2xx_ends_client_tx_and_retransmits_are_stray():
    layer = TransactionLayer()
    r = req()
    layer.send_request(r, PEER, "UDP", 0.0)
    ok = response_to(r, 200, to_tag="b1")
    layer.receive(ok, PEER, "UDP", 0.1)
    assert isinstance(layer.next_events()[0], ResponseIn)
    assert [sip.parse(o.data).method for o in layer.data_to_send()] == ["INVITE"]  # no ACK
    layer.receive(ok, PEER, "UDP", 0.6)
    assert isinstance(layer.next_events()[0], StrayResponse)


def test_invite_server_100_absorb_g_h():
    layer = TransactionLayer()
    r = req()
    layer.receive(r, ("10.0.0.9", 40000), "UDP", 0.0)
    (ev,) = layer.next_events()
    assert isinstance(ev, RequestIn)
    (trying,) = layer.data_to_send()
    assert sip.parse(trying.data).status == 100
    # response goes per Via: received + rport stamped from the source
    assert trying.dest == ("10.0.0.9", 40000)
    via = ev.request.top_via
    assert via.params["received"] == "10.0.0.9" and via.params["rport"] == "40000"
    layer.receive(req(), ("10.0.0.9", 40000), "UDP", 0.3)  # retransmission: absorbed
    assert layer.next_events() == []
    assert [sip.parse(o.data).status for o in layer.data_to_send()] == [100]
    layer.respond(ev.tx, response_to(r, 486, to_tag="s1"), 1.0)
    layer.data_to_send()
    sent = [t for t, m in run_until_from(layer, 1.0, 34)]
    assert sent[:6] == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5]  # G: T1 doubling, capped at T2
    assert [e.timer for e in layer.next_events()] == ["H"]  # 64*T1 without ACK


def run_until_from(layer, t0, t_end, step=0.05):
    sent = []
    for i in range(round((t_end - t0) / step) + 1):
        t = t0 + i * step
        layer.tick(t)
        sent += [(round(t, 2), sip.parse(o.data)) for o in layer.data_to_send()]
    return sent


def test_ack_for_non_2xx_absorbed_2xx_ack_passed_up():
    layer = TransactionLayer()
    r = req()
    layer.receive(r, PEER, "UDP", 0.0)
    (ev,) = layer.next_events()
    resp = response_to(r, 404, to_tag="s1")
    layer.respond(ev.tx, resp, 0.1)
    ack = req("ACK", to_tag="s1")
    layer.receive(ack, PEER, "UDP", 0.2)
    assert layer.next_events() == [] and ev.tx.state == "confirmed"
    layer.data_to_send()
    assert run_until_from(layer, 0.2, 6) == []  # no more G after ACK; I ends it
    assert not layer.server
    # an ACK matching nothing (the ACK of a 2xx) goes to the core
    layer.receive(req("ACK", branch="z9hG4bKother", to_tag="s1"), PEER, "UDP", 7)
    assert isinstance(layer.next_events()[0], AckIn)


def test_non_invite_server_repeats_final_until_j():
    layer = TransactionLayer()
    r = req("BYE", to_tag="x")
    layer.receive(r, PEER, "UDP", 0.0)
    (ev,) = layer.next_events()
    assert layer.data_to_send() == []  # no 100 for non-INVITE
    layer.respond(ev.tx, response_to(r, 200), 0.0)
    layer.data_to_send()
    layer.receive(req("BYE", to_tag="x"), PEER, "UDP", 5.0)
    assert [sip.parse(o.data).status for o in layer.data_to_send()] == [200]
    assert layer.next_events() == []
    layer.tick(32.0)
    assert not layer.server


MODULES = ["codec/sip.py", "codec/sip_headers.py", "proto/sip_transaction.py",
           "proto/sip_dialog.py", "proto/sip_auth.py", "proto/sip_core.py"]


@pytest.mark.parametrize("name", MODULES)
def test_layering_and_size(name):
    src = (pathlib.Path(__file__).resolve().parents[2] / "gateway" / name).read_text()
    tree = ast.parse(src)
    assert ast.get_docstring(tree) and len(src.splitlines()) < 400
    forbidden = {"trio", "socket", "sqlite3", "asyncio", "time", "gateway.io"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mods = [node.module or ""]
        else:
            continue
        assert not any(m == f or m.startswith(f + ".") for m in mods for f in forbidden)
