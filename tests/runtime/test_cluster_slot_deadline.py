"""Sender-slot leases stop being drained at the local deadline: the last successful
renewal's send time + VALID_FRACTION of the lease, on the local monotonic clock
(MockClock here), also while a renewal hangs (frozen connection: no error to react to)
and when a renewal is answered only after its own deadline.

The store is a stand-in answering the TICK script like Redis would for one slot we hold
(token 7); the real script and Redis are exercised by tests/cluster."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import trio

from gateway.core import message as M
from gateway.runtime.cluster import RedisCluster
from gateway.runtime.cluster_binds import VALID_FRACTION
from gateway.runtime.cluster_rates import RETRY_S
from gateway.runtime.cluster_slots import LEASE_MS, slot_of

NUMBER = "+15005550006"
SLOT = slot_of(NUMBER)
VALID_S = LEASE_MS / 1000 * VALID_FRACTION


class Client:
    async def xautoclaim(self, *args, **kw):
        return ("0-0", [], [])


class Store:
    prefix = "t:"
    backend = "redis"

    def __init__(self) -> None:
        self.client = Client()
        self.sent: list[float] = []
        self.hang = False
        self.delay = 0.0

    async def evalsha(self, name, keys, args):
        assert name == "cluster_TICK"
        self.sent.append(trio.current_time())
        if self.hang:
            await trio.sleep_forever()
        await trio.sleep(self.delay)
        return [1, 1, [SLOT, 7]]


class Dispatcher:
    def __init__(self) -> None:
        self.capacity = {NUMBER: (10.0, 100)}
        self.live: dict = {}
        self.removed: list[tuple[float, str]] = []
        self.sched = SimpleNamespace(depth=lambda number: 0)

    def queue(self, sid: str) -> None:
        msg = SimpleNamespace(sid=sid, status=M.QUEUED)
        self.live[sid] = SimpleNamespace(msg=msg, sender_number=NUMBER)

    def remove(self, sid: str) -> bool:
        self.removed.append((trio.current_time(), sid))
        return self.live.pop(sid, None) is not None


def _cluster() -> tuple[RedisCluster, Store, Dispatcher]:
    store, disp = Store(), Dispatcher()
    gw = SimpleNamespace(store=store, dispatcher=disp,
                         settings=SimpleNamespace(carriers=[]), carriers=None)
    return RedisCluster(gw), store, disp


async def test_a_hung_renewal_stops_draining_at_the_local_deadline(autojump_clock):
    cl, store, disp = _cluster()
    gate = cl.rates.sender_gate(NUMBER, 10.0, 1.0, 0.0)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cl._lease_loop)
            nursery.start_soon(cl.watch_slots)
            await trio.sleep(5.5)                    # renewals at 1..5 s succeed
            assert cl.held == {SLOT: 7} and cl.serving(NUMBER)
            disp.queue("SM1")
            cl.entry_of["SM1"] = (SLOT, cl.stream(NUMBER), b"1-0", 1)
            gate.tokens = 5.0                        # credit left from before
            store.hang = True                        # the renewal sent at 6 s never returns
            last_ok = store.sent[-1]
            deadline = last_ok + VALID_S
            await trio.sleep_until(deadline - 0.01)
            assert store.sent[-1] == pytest.approx(6.0)
            assert cl.serving(NUMBER) and cl.held and not disp.removed
            assert gate.take(1, trio.current_time()) == 0.0
            # from the deadline on: no credit spent, not served, even before the watch ran
            assert gate.take(1, deadline) == RETRY_S and gate.tokens == 4.0
            await trio.sleep_until(deadline + 0.01)
            assert cl.held == {} and not cl.serving(NUMBER)
            assert [sid for _, sid in disp.removed] == ["SM1"]
            assert disp.removed[0][0] == pytest.approx(deadline)
            assert "SM1" not in cl.entry_of          # its entry stays pending in Redis
            # before Redis lets another gateway take it (lease from the send time)
            assert disp.removed[0][0] < last_ok + LEASE_MS / 1000
            nursery.cancel_scope.cancel()


async def test_a_renewal_answered_after_its_deadline_counts_as_failed(autojump_clock):
    cl, store, _disp = _cluster()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cl.watch_slots)
            await cl._tick(acquire=True)
            assert cl.held == {SLOT: 7}
            assert cl._valid_until == pytest.approx(store.sent[0] + VALID_S)
            store.delay = VALID_S + 0.5              # slow, not failed, but too late
            await cl._tick(acquire=True)
            assert cl.held == {} and not cl.serving(NUMBER)
            store.delay = 0.0                        # Redis fast again: taken back
            await cl._tick(acquire=True)
            assert cl.held == {SLOT: 7} and cl.serving(NUMBER)
            nursery.cancel_scope.cancel()
