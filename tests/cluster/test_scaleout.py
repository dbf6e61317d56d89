"""Scale-out details on one Redis: carrier bind leases and their failover, rates that hold
while sender ownership moves, the cluster-wide 21611 check, and rebalancing a busy
cluster when a gateway joins."""

from __future__ import annotations

from collections import Counter

import trio

from gateway.runtime import cluster_slots
from gateway.runtime.cluster import slot_of
from tests.e2e.harness import LONG, LONG2, SHORT, TOLL_FREE

from .harness import cluster_env, wait_until

TO = "+15005550001"


def worst_window(times: list[float], skip: float = 1.0) -> int:
    """Most submits in any 1 s window starting after the first ``skip`` s of the flow
    (the buckets start full: the first second may carry one burst)."""
    starts = [t for t in times if t >= times[0] + skip]
    return max((sum(1 for t in times if t0 <= t < t0 + 1.0) for t0 in starts), default=0)


async def test_one_bind_moves_within_seconds_and_dlrs_callback_once(tmp_path, redis_server):
    with trio.fail_after(40):
        async with cluster_env(tmp_path, redis_server, n=2, binds=1,
                               sim_kw={"dlr_delay_ms": 1500}) as env:
            await wait_until(lambda: any(x.gw.cluster.binds.held for x in env.nodes))
            holder = next(i for i, x in enumerate(env.nodes) if x.gw.cluster.binds.held)
            other = 1 - holder
            await wait_until(lambda: env.sim.bound_count == 1)
            for _ in range(3):                       # stays one across several lease ticks
                with trio.move_on_after(0.5):
                    await wait_until(lambda: env.sim.bound_count != 1, timeout=1)
                assert env.sim.bound_count == 1
            assert env.nodes[other].gw.links["a"].state == "down"
            cb = env.sink.url("/status")
            sids = []
            for i in range(10):                      # accepted on both gateways
                st, body = await env.create(i % 2, To=TO, From=LONG2 if i % 2 else TOLL_FREE,
                                            Body=f"d{i}", StatusCallback=cb)
                assert st == 201, body
                sids.append(body["sid"])
            await wait_until(lambda: len(env.sim.submits) >= 10)
            # a crash loses the crashed gateway's undelivered webhooks (in memory, as on
            # one gateway): let the "sent" ones out first; the DLRs come 1.5 s later
            await wait_until(lambda: sum(1 for h in env.sink.at("/status")
                                         if h.form["MessageStatus"] == "sent") >= 10)
            env.crash(holder)                        # the DLRs find no bind
            t0 = trio.current_time()
            await wait_until(lambda: env.nodes[other].gw.links["a"].state == "bound",
                             timeout=6)
            assert trio.current_time() - t0 < 5.0
            assert env.sim.bound_count == 1
            for i in range(4):                       # messages keep flowing
                st, body = await env.create(other, To=TO, From=LONG, Body=f"e{i}",
                                            StatusCallback=cb)
                assert st == 201, body
                sids.append(body["sid"])

            def statuses() -> Counter:
                return Counter((h.form["MessageSid"], h.form["MessageStatus"])
                               for h in env.sink.at("/status"))

            await wait_until(lambda: all(statuses()[(s, "delivered")] for s in sids),
                             timeout=15)
            await trio.sleep(0.3)   # a duplicate callback (if any) would arrive now: none may
            got = statuses()
            assert all(n == 1 for n in got.values()), [k for k, n in got.items() if n > 1]
            assert {s for s, st in got if st == "sent"} == set(sids)


async def test_sender_rate_holds_while_ownership_moves(tmp_path, redis_server):
    rate, n = 10, 40
    rates = f"long_code = {rate}\ntoll_free = 3\nshort_code = 100\nqueue_hours = 1"
    with trio.fail_after(40):
        async with cluster_env(tmp_path, redis_server, n=3, rates=rates, binds=3,
                               sim_kw={"dlr_delay_ms": 0}) as env:
            await wait_until(lambda: sum(len(x.gw.cluster.held) for x in env.nodes) == 16)
            for i in range(n):
                st, body = await env.create(i % 3, To=TO, From=LONG, Body=f"r{i}")
                assert st == 201, body
            slot, owners = slot_of(LONG), []

            async def mover():
                while True:
                    await trio.sleep(0.8)    # a forced move every 0.8 s during the flow
                    for x in env.nodes:
                        cl = x.gw.cluster
                        if slot in cl.held and slot not in cl.draining:
                            owners.append(cl.id)
                            await cl.handover(slot)
                            break

            async with trio.open_nursery() as nursery:
                nursery.start_soon(mover)
                await wait_until(lambda: len(env.sim.submits) >= n, timeout=25)
                nursery.cancel_scope.cancel()
            times = sorted(r.time for r in env.sim.submits)
            bodies = Counter(r.short_message for r in env.sim.submits)
            assert len(set(owners)) >= 2, owners           # ownership really moved
            assert max(bodies.values()) == 1               # graceful moves: no duplicate
            assert worst_window(times) <= rate + 2, worst_window(times)


async def test_carrier_max_tps_is_cluster_wide(tmp_path, redis_server):
    tps, per = 12, 30
    rates = "long_code = 20\ntoll_free = 20\nshort_code = 20\nqueue_hours = 1"
    senders = [LONG, LONG2, TOLL_FREE]
    with trio.fail_after(40):
        async with cluster_env(tmp_path, redis_server, n=3, rates=rates, binds=3,
                               max_tps=tps, sim_kw={"dlr_delay_ms": 0}) as env:
            await wait_until(lambda: sum(len(x.gw.cluster.held) for x in env.nodes) == 16)
            owners = {next(i for i, x in enumerate(env.nodes) if slot_of(s) in x.gw.cluster.held)
                      for s in senders}
            assert len(owners) >= 2              # the senders drain on different gateways
            for i in range(per * len(senders)):
                st, body = await env.create(i % 3, To=TO, From=senders[i % 3], Body=f"c{i}")
                assert st == 201, body
            await wait_until(lambda: len(env.sim.submits) >= per * len(senders), timeout=25)
            times = sorted(r.time for r in env.sim.submits)
            assert worst_window(times) <= tps + 2, worst_window(times)


async def test_queue_full_sees_the_cluster_wide_depth(tmp_path, redis_server):
    # long_code 1/s for 0.002 h: 7 segments fit a sender's queue across the cluster
    rates = "long_code = 1\ntoll_free = 3\nshort_code = 100\nqueue_hours = 0.002"
    with trio.fail_after(30):
        async with cluster_env(tmp_path, redis_server, n=2, binds=1, rates=rates) as env:
            env.sim.set_down(True)                   # nothing drains meanwhile
            for i in range(7):
                st, body = await env.create(i % 2, To=TO, From=LONG, Body=f"q{i}")
                assert st == 201, body
            for node in (0, 1):                      # the owner and the other gateway
                st, body = await env.create(node, To=TO, From=LONG, Body="one too many")
                assert st == 400 and body["code"] == 21611, body
            st, body = await env.create(1, To=TO, From=LONG2, Body="other sender")
            assert st == 201, body
            env.sim.set_down(False)
            await wait_until(lambda: len(env.sim.submits) >= 1, timeout=10)


async def test_new_gateway_gets_busy_senders_under_load(tmp_path, redis_server, monkeypatch):
    monkeypatch.setattr(cluster_slots, "SLOTS", 3)     # LONG, LONG2, SHORT: one busy slot each
    rates = "long_code = 4\ntoll_free = 4\nshort_code = 4\nqueue_hours = 1"
    senders = [LONG, LONG2, SHORT]
    with trio.fail_after(45):
        async with cluster_env(tmp_path, redis_server, n=1, binds=2, rates=rates,
                               sim_kw={"dlr_delay_ms": 0}) as env:
            first = env.nodes[0].gw.cluster
            await wait_until(lambda: len(first.held) == 3)
            n = 60
            for i in range(n):
                st, body = await env.create(0, To=TO, From=senders[i % 3], Body=f"b{i}")
                assert st == 201, body
            second = (await env.start_node()).gw.cluster
            await wait_until(lambda: len(second.held) >= 1, timeout=10)
            assert len(env.sim.submits) < n - 6      # moved while every queue was busy
            assert len(first.held) == 2
            await wait_until(lambda: len(env.sim.submits) >= n, timeout=25)
            bodies = Counter(r.short_message for r in env.sim.submits)
            assert len(bodies) == n and max(bodies.values()) == 1
