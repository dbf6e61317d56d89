"""SmppLink against the SMSC simulator on loopback (real sockets, real clock, bounded)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio
import trio.testing

from gateway import codec
from gateway.io.smpp_link import SmppLink
from gateway.testing.smsc import SimConfig, SmscSimulator

pytestmark = pytest.mark.codec
S = codec.Status


@dataclass
class Cfg:
    host: str = "127.0.0.1"
    port: int = 0
    system_id: str = "gw"
    password: str = "pw"
    bind: str = "transceiver"
    window: int = 64
    response_timeout: float = 5.0
    enquire_link_interval: float = 30.0
    system_type: str = ""


class Handler:
    def __init__(self) -> None:
        self.log: list = []           # ordered ("state"|"lost", ...) entries
        self.resps: dict = {}         # ref -> list of (status, message_id)
        self.lost: list = []
        self.delivers: list = []
        self.changed = trio.Event()

    def _poke(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def on_link_state(self, carrier, up, reason):
        self.log.append(("state", up, reason, trio.current_time()))
        self._poke()

    def on_submit_resp(self, carrier, ref, status, message_id, latency):
        assert latency >= 0
        self.resps.setdefault(ref, []).append((status, message_id))
        self._poke()

    def on_submit_lost(self, carrier, refs, reason):
        self.log.append(("lost", list(refs), reason))
        self.lost.extend(refs)
        self._poke()

    def on_deliver(self, carrier, pdu):
        self.delivers.append(pdu)
        self._poke()
        return 0

    async def until(self, cond, timeout=5.0):
        with trio.fail_after(timeout):
            while not cond():
                await self.changed.wait()


def sm(i=0, rd=1):
    return codec.SubmitSm(source_addr="15005550006", destination_addr=f"1555{i:07d}",
                          short_message=b"hello %d" % i, registered_delivery=rd)


async def start(nursery, sim_cfg=None, **cfg):
    sim = SmscSimulator(sim_cfg or SimConfig(system_id="gw", password="pw"))
    port = await nursery.start(sim.serve)
    h = Handler()
    link = SmppLink("carrier-a", Cfg(port=port, **cfg), h)
    await nursery.start(link.run)
    await h.until(lambda: link.state == "bound")
    return sim, link, h


async def wait_for(cond, timeout=5.0):
    """Poll a condition owned by another component (the simulator), with a deadline."""
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.005)


async def pump(link, items):
    """Submit every (ref, pdu), waiting for slots."""
    for ref, pdu in items:
        while not link.submit(ref, pdu):
            await link.wait_slot()


async def test_1000_submits_window_64_all_answered_with_dlrs():
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            sim, link, h = await start(n)
            assert link.free_slots() == 64
            await pump(link, [(i, sm(i)) for i in range(1000)])
            await h.until(lambda: len(h.resps) == 1000 and len(h.delivers) == 1000)
            assert all(len(v) == 1 and v[0][0] == 0 for v in h.resps.values())
            ids = {v[0][1] for v in h.resps.values()}
            assert len(ids) == 1000
            receipts = {d.tlvs[codec.Tlv.RECEIPTED_MESSAGE_ID] for d in h.delivers}
            assert receipts == ids
            assert all(d.esm_class == 0x04 for d in h.delivers)
            assert sim.stats["submits"] == 1000
            await wait_for(lambda: sim.stats["deliver_resps"][0] == 1000)
            assert h.lost == []
            await link.close()
            assert link.state == "down"
            assert h.log[-1][:3] == ("state", False, "unbound")
            n.cancel_scope.cancel()


async def test_tx_rx_two_binds_dlr_on_receiver():
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim, link, h = await start(n, bind="tx_rx")
            await h.until(lambda: sim.bound_count == 2)
            assert dict(sim.stats["binds"]) == {"transmitter": 1, "receiver": 1}
            await pump(link, [(i, sm(i)) for i in range(50)])
            await h.until(lambda: len(h.resps) == 50 and len(h.delivers) == 50)
            n.cancel_scope.cancel()


async def test_throttled_storm_no_loss():
    sim_cfg = SimConfig(throttle=0.3, msgqful=0.1, seed=7)
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            sim, link, h = await start(n, sim_cfg)
            queue = list(range(300))
            done: set = set()
            throttled = 0

            orig = h.on_submit_resp

            def on_resp(carrier, ref, status, message_id, latency):
                nonlocal throttled
                orig(carrier, ref, status, message_id, latency)
                if status in (S.ESME_RTHROTTLED, S.ESME_RMSGQFUL):
                    throttled += 1
                    queue.append(ref)          # the dispatcher's job: re-queue
                    # the link pauses itself right after a throttle
                    assert link.free_slots() == 0 and not link.submit("probe", sm())
                elif status == 0:
                    done.add(ref)

            h.on_submit_resp = on_resp
            while len(done) < 300:
                if queue:
                    ref = queue.pop(0)
                    while not link.submit(ref, sm(ref, rd=0)):
                        await link.wait_slot()
                else:
                    await h.changed.wait()
            assert throttled > 50
            assert done == set(range(300)) and h.lost == []
            ok = [r for r in sim.submits if r.message_id]
            assert len(ok) == 300                   # every message accepted exactly once
            n.cancel_scope.cancel()


async def test_drop_mid_window_loses_exactly_unanswered_then_rebinds_fast():
    sim_cfg = SimConfig(drop_after=100)
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim, link, h = await start(n, sim_cfg)
            refs = list(range(160))

            async def feed():
                await pump(link, [(i, sm(i, rd=0)) for i in refs])

            n.start_soon(feed)
            await h.until(lambda: link.state == "down")
            sim.set_faults(drop_after=None)
            t_down = trio.current_time()
            lost_entries = [e for e in h.log if e[0] == "lost"]
            assert len(lost_entries) == 1
            lost = lost_entries[0][1]
            answered = set(h.resps)
            assert len(answered) == 100
            assert not answered & set(lost)
            assert sorted(answered | set(lost)) == list(range(len(answered) + len(lost)))
            assert len(lost) > 0
            # on_submit_lost before on_link_state(False)
            kinds = [e[0] for e in h.log]
            assert kinds[kinds.index("lost") + 1] == "state"
            await h.until(lambda: link.state == "bound")
            t_up = [e for e in h.log if e[0] == "state"][-1][3]
            assert t_up - t_down <= 1.0
            assert sim.stats["binds"]["transceiver"] == 2
            n.cancel_scope.cancel()


async def test_withheld_responses_response_timeout_link_dead():
    sim_cfg = SimConfig(withhold=1.0)
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim, link, h = await start(n, sim_cfg, response_timeout=0.3)
            t0 = trio.current_time()
            await pump(link, [(i, sm(i)) for i in range(10)])
            await h.until(lambda: link.state == "down")
            assert trio.current_time() - t0 >= 0.3
            assert h.log[-2][0] == "lost" and sorted(h.log[-2][1]) == list(range(10))
            assert h.log[-2][2] == "response_timeout"
            assert h.log[-1][:3] == ("state", False, "response_timeout")
            assert h.resps == {}
            sim.set_faults(withhold=0.0)
            await h.until(lambda: link.state == "bound")
            n.cancel_scope.cancel()


async def test_sim_down_then_up_reconnects_and_started_does_not_block():
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim = SmscSimulator(SimConfig())
            port = await n.start(sim.serve)
            sim.set_down(True)
            h = Handler()
            link = SmppLink("c", Cfg(port=port), h)
            await n.start(link.run)              # returns although nothing can bind
            assert link.state == "down" and not link.submit(1, sm())
            await wait_for(lambda: sim.stats["connections"] >= 2)   # retried, refused
            assert h.log == []
            sim.set_down(False)
            await h.until(lambda: link.state == "bound", timeout=5)
            n.cancel_scope.cancel()


async def test_bind_failure_keeps_retrying_with_backoff():
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim = SmscSimulator(SimConfig(system_id="gw", password="right"))
            port = await n.start(sim.serve)
            h = Handler()
            link = SmppLink("c", Cfg(port=port, password="wrong"), h)
            await n.start(link.run)
            await wait_for(lambda: sim.stats["bind_failures"] >= 2)
            assert link.state == "down" and h.log == []
            n.cancel_scope.cancel()


async def test_mo_multipart_and_deliver_status():
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim, link, h = await start(n)
            sim.inject_mo("15551234567", "15005550006", "x" * 300, parts=2)
            await h.until(lambda: len(h.delivers) == 2)
            udh = [d.short_message[:6] for d in h.delivers]
            assert {u[5] for u in udh} == {1, 2} and all(u[4] == 2 for u in udh)
            assert all(d.esm_class & 0x40 for d in h.delivers)
            await wait_for(lambda: sim.stats["deliver_resps"][0] == 2)
            n.cancel_scope.cancel()


async def test_metrics_reconnects_throttled_window():
    metrics_mod = pytest.importorskip("gateway.observability.metrics")
    m = metrics_mod.Metrics()
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim = SmscSimulator(SimConfig(throttle=1.0))
            port = await n.start(sim.serve)
            h = Handler()
            link = SmppLink("carrier-m", Cfg(port=port), h, metrics=m)
            await n.start(link.run)
            await h.until(lambda: link.state == "bound")
            await pump(link, [(i, sm(i, rd=0)) for i in range(5)])
            await h.until(lambda: len(h.resps) == 5)
            sim.drop_all()
            await h.until(lambda: link.state == "down")
            await h.until(lambda: link.state == "bound")
            text = m.exposition()[0].decode()
            assert 'gateway_smpp_throttled_total{carrier="carrier-m"} 5.0' in text
            assert 'gateway_smpp_reconnects_total{carrier="carrier-m"} 1.0' in text
            n.cancel_scope.cancel()


async def test_close_waits_for_in_flight_answers_then_unbinds():
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim, link, h = await start(n, SimConfig(response_delay_ms=200))
            await pump(link, [(i, sm(i, rd=0)) for i in range(10)])
            assert link.free_slots() == 54
            await link.close()
            assert sorted(h.resps) == list(range(10)) and h.lost == []
            assert link.state == "down" and not link.submit(99, sm())
            assert h.log[-1][:3] == ("state", False, "unbound")
            n.cancel_scope.cancel()


# -- deliver_sm answered later (store before ack) -------------------------------------
class PendingHandler(Handler):
    """Answers nothing itself: ``on_deliver`` returns None (pending)."""

    def on_deliver(self, carrier, pdu):
        self.delivers.append(pdu)
        self._poke()
        return None


async def start_pending(nursery, **link_kw):
    sim = SmscSimulator(SimConfig(system_id="gw", password="pw"))
    port = await nursery.start(sim.serve)
    h = PendingHandler()
    link = SmppLink("carrier-a", Cfg(port=port), h, **link_kw)
    await nursery.start(link.run)
    await h.until(lambda: link.state == "bound")
    return sim, link, h


async def test_pending_deliver_answers_go_out_later_in_any_order_and_never_block_submits():
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim, link, h = await start_pending(n)
            for i in range(3):
                sim.inject_mo("15551230000", "15005550006", f"mo {i}")
            await h.until(lambda: len(h.delivers) == 3)
            assert link.pending_delivers == 3
            # submits flow while the three answers are pending
            await pump(link, [(i, sm(i, rd=0)) for i in range(20)])
            await h.until(lambda: len(h.resps) == 20)
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert sum(sim.stats["deliver_resps"].values()) == 0
            # answers out of order, each exactly once, with the status given
            assert link.answer_deliver(h.delivers[2], S.ESME_RX_T_APPN)
            assert link.answer_deliver(h.delivers[0], 0)
            assert not link.answer_deliver(h.delivers[0], 0)     # twice: refused
            await wait_for(lambda: sum(sim.stats["deliver_resps"].values()) == 2)
            assert sim.stats["deliver_resps"][S.ESME_RX_T_APPN] == 1
            assert link.answer_deliver(h.delivers[1], 0)
            await wait_for(lambda: sim.stats["deliver_resps"][0] == 2)
            assert link.pending_delivers == 0
            n.cancel_scope.cancel()


async def test_pending_answers_back_pressure_stops_reading_above_the_bound():
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim, link, h = await start_pending(n, max_pending_delivers=2)
            sim.inject_mo("15551230000", "15005550006", "first")
            sim.inject_mo("15551230000", "15005550006", "second")
            await h.until(lambda: len(h.delivers) == 2)
            for i in range(3):
                sim.inject_mo("15551230000", "15005550006", f"more {i}")
            await wait_for(lambda: sim.stats["mo_sent"] == 5)
            await trio.testing.wait_all_tasks_blocked(0.1)
            assert len(h.delivers) == 2          # the reader waits for answers
            # the link stays alive meanwhile; one answer lets the reader go on
            link.answer_deliver(h.delivers[0], 0)
            await h.until(lambda: len(h.delivers) == 5)
            for pdu in h.delivers[1:]:
                link.answer_deliver(pdu, 0)
            await wait_for(lambda: sim.stats["deliver_resps"][0] == 5)
            assert link.state == "bound"
            n.cancel_scope.cancel()


async def test_pending_answer_for_a_dropped_connection_is_dropped():
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim, link, h = await start_pending(n)
            sim.inject_mo("15551230000", "15005550006", "lost answer")
            await h.until(lambda: len(h.delivers) == 1)
            sim.drop_all()
            await h.until(lambda: link.state == "down")
            assert link.pending_delivers == 0
            assert not link.answer_deliver(h.delivers[0], 0)
            await h.until(lambda: link.state == "bound")
            n.cancel_scope.cancel()


async def test_close_waits_for_pending_deliver_answers():
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            sim, link, h = await start_pending(n)
            sim.inject_mo("15551230000", "15005550006", "answer me")
            await h.until(lambda: len(h.delivers) == 1)
            closed = trio.Event()

            async def close():
                await link.close()
                closed.set()

            n.start_soon(close)
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert not closed.is_set() and link.state == "bound"
            link.answer_deliver(h.delivers[0], 0)
            await closed.wait()
            assert sim.stats["deliver_resps"][0] == 1
            n.cancel_scope.cancel()
