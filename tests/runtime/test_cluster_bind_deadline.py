"""Bind leases stop being used at the local deadline: the last successful renewal's send
time + VALID_FRACTION of the lease, on the local monotonic clock (MockClock here), also
while a renewal hangs (frozen or stalled: no error to react to).

The store is a stand-in answering the BIND script like Redis would for a lease we hold
(token 7); the real script and Redis are exercised by tests/cluster."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import trio

from gateway import settings as settings_mod
from gateway.runtime.carriers import Carriers
from gateway.runtime.cluster_binds import VALID_FRACTION, BindLeases
from tests.e2e.harness import config_text

LEASE_MS = 3000


class Store:
    def __init__(self) -> None:
        self.sent: list[float] = []
        self.delay = 0.0
        self.hang = False

    async def evalsha(self, name, keys, args):
        self.sent.append(trio.current_time())
        if self.hang:
            await trio.sleep_forever()
        await trio.sleep(self.delay)
        return 7


class Link:
    def __init__(self) -> None:
        self.dropped: list[tuple[float, str]] = []

    def drop(self, reason: str) -> None:
        self.dropped.append((trio.current_time(), reason))


def _leases() -> tuple[BindLeases, Store, Link]:
    store, link = Store(), Link()
    smpp = SimpleNamespace(system_id="gw", cluster_binds=1)
    gw = SimpleNamespace(settings=SimpleNamespace(carriers=[SimpleNamespace(name="a", smpp=smpp)]),
                         carriers=SimpleNamespace(links={"a": link}))
    cluster = SimpleNamespace(gw=gw, p="t:c:", id="me", store=store)
    return BindLeases(cluster, LEASE_MS), store, link


async def _renew_every_third(binds: BindLeases) -> None:
    while True:                                  # as RedisCluster._lease_loop
        await binds.tick()
        await trio.sleep(LEASE_MS / 3000)


async def test_a_hung_renewal_stops_the_bind_at_the_local_deadline(autojump_clock):
    binds, store, link = _leases()
    valid_s = LEASE_MS / 1000 * VALID_FRACTION
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(binds.watch)
            nursery.start_soon(_renew_every_third, binds)
            await trio.sleep(5.5)                # renewals at 0..5 s succeed
            assert binds.may_send("a", trio.current_time()) and not link.dropped
            store.hang = True                    # the renewal sent at 6 s never returns
            last_ok = store.sent[-1]
            await trio.sleep(0.5 + 0.001)
            assert len(store.sent) == 7 and store.sent[-1] == pytest.approx(6.0)
            deadline = last_ok + valid_s
            await trio.sleep_until(deadline - 0.01)
            assert binds.may_send("a", trio.current_time()) and not link.dropped
            assert not binds.may_send("a", deadline)   # no submit from the deadline on
            await trio.sleep_until(deadline + 0.01)
            assert [r for _, r in link.dropped] == ["bind lease not renewed"]
            assert link.dropped[0][0] == pytest.approx(deadline)
            # before Redis lets another gateway take it (lease from the send time)
            assert link.dropped[0][0] < last_ok + LEASE_MS / 1000
            assert not binds.held and not binds.may_send("a", trio.current_time())
            nursery.cancel_scope.cancel()


async def test_the_deadline_runs_from_the_renewals_send_time(autojump_clock):
    binds, store, link = _leases()
    store.delay = 1.5                            # a slow (not failed) renewal
    await binds.tick()
    assert binds.valid_until == pytest.approx(store.sent[0] + LEASE_MS / 1000 * VALID_FRACTION)
    assert trio.current_time() == pytest.approx(1.5)
    assert binds.may_send("a", trio.current_time())
    assert not binds.may_send("b", trio.current_time())     # no lease for that carrier


async def test_carriers_offer_no_window_on_a_bind_past_its_deadline(tmp_path, autojump_clock):
    path = tmp_path / "gw.toml"
    path.write_text(config_text(tmp_path, [("a", 1)], 1))
    carriers = Carriers(settings_mod.load(path))
    carriers.links = {"a": SimpleNamespace(state="bound", free_slots=lambda: 5)}
    assert carriers.free_slots() == 5                  # single gateway: no hook
    binds, _store, _link = _leases()
    carriers.may_send = binds.may_send
    await binds.tick()
    assert carriers.free_slots() == 5
    await trio.sleep(LEASE_MS / 1000 * VALID_FRACTION)  # no renewal since
    assert carriers.free_slots() == 0                  # the dispatcher submits nothing
