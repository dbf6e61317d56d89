"""Several gateways on one Redis: shared API state and idempotency, one owner per sender
(combined rate at the class rate), hand-over after an abrupt stop, callbacks once per
status, and nothing acknowledged lost across kill -9 of redis-server."""

from __future__ import annotations

import trio

from gateway.runtime.cluster import slot_of
from tests.e2e.harness import LONG, LONG2, SHORT, TOLL_FREE

from .harness import cluster_env, wait_until

TO = "+15005550001"


def sent_bodies(env) -> set[str]:
    return {b.decode("latin-1") for b in env.bodies_at_sim()}


async def test_api_state_idempotency_and_callbacks_shared(tmp_path, redis_server):
    with trio.fail_after(30):
        async with cluster_env(tmp_path, redis_server, n=2) as env:
            cb = env.sink.url("/status")
            st, made = await env.create(0, To=TO, From=LONG, Body="hello cluster",
                                        StatusCallback=cb, idem="k-1")
            assert st == 201, made
            st, fetched = await env.fetch(1, made["sid"])       # the other gateway's API
            assert st == 200 and fetched["body"] == "hello cluster"
            st, again = await env.create(1, To=TO, From=LONG, Body="other body",
                                         StatusCallback=cb, idem="k-1")
            assert st in (200, 201) and again["sid"] == made["sid"]
            await wait_until(lambda: len(env.sink.at("/status")) >= 2)
            st, done = await env.fetch(1, made["sid"])
            assert done["status"] == "delivered"
            # exactly once per status across both gateways, one submit at the carrier
            await trio.sleep(0.3)      # let a duplicate callback (if any) arrive: none may
            statuses = [h.form["MessageStatus"] for h in env.sink.at("/status")]
            assert sorted(statuses) == ["delivered", "sent"]
            assert sent_bodies(env) == {"hello cluster"}


async def test_combined_rate_per_sender_stays_at_class_rate(tmp_path, redis_server):
    rate, n = 10, 40
    rates = f"long_code = {rate}\ntoll_free = 3\nshort_code = 100\nqueue_hours = 1"
    with trio.fail_after(40):
        async with cluster_env(tmp_path, redis_server, n=3, rates=rates, binds=3,
                               sim_kw={"dlr_delay_ms": 0}) as env:
            await wait_until(lambda: sum(len(x.gw.cluster.held) for x in env.nodes) == 16)
            for i in range(n):            # accepted round-robin on all three gateways
                st, body = await env.create(i % 3, To=TO, From=LONG, Body=f"r{i}")
                assert st == 201, body
            await wait_until(lambda: len(env.sim.submits) >= n, timeout=20)
            times = sorted(r.time for r in env.sim.submits if r.source == LONG.lstrip("+"))
            assert len(times) == n
            # any 1 s window: at most rate plus the bucket's one-second burst
            worst = max(sum(1 for t in times if t0 <= t < t0 + 1.0) for t0 in times)
            assert worst <= 2 * rate, worst
            assert times[-1] - times[0] >= (n - 2 * rate) / rate * 0.9
            owners = [x for x in env.nodes if slot_of(LONG) in x.gw.cluster.held]
            assert len(owners) == 1


async def test_abrupt_stop_moves_senders_and_loses_nothing(tmp_path, redis_server):
    rates = "long_code = 10\ntoll_free = 10\nshort_code = 10\nqueue_hours = 1"
    senders = [LONG, LONG2, TOLL_FREE, SHORT]
    with trio.fail_after(45):
        async with cluster_env(tmp_path, redis_server, n=2, rates=rates, binds=2) as env:
            await wait_until(lambda: all(x.gw.cluster.held for x in env.nodes))
            victim = next(i for i, x in enumerate(env.nodes)
                          if any(slot_of(s) in x.gw.cluster.held for s in senders))
            acked = set()
            for i in range(120):
                st, body = await env.create(i % 2, To=TO, From=senders[i % 4], Body=f"m{i}")
                assert st == 201, body
                acked.add(f"m{i}")
            await wait_until(lambda: len(env.sim.submits) >= 10)
            env.crash(victim)
            survivor = env.nodes[1 - victim].gw.cluster
            await wait_until(lambda: len(survivor.held) == 16, timeout=10)
            await wait_until(lambda: acked <= sent_bodies(env), timeout=25)
            assert survivor.claimed > 0


async def test_redis_kill_9_and_restart_loses_nothing(tmp_path, redis_server):
    from tests.store.redis_server import RedisServer

    own = RedisServer(tmp_path / "redis").start()
    rates = "long_code = 50\ntoll_free = 3\nshort_code = 100\nqueue_hours = 1"
    try:
        with trio.fail_after(45):
            async with cluster_env(tmp_path, own, n=2, rates=rates, binds=2) as env:
                await wait_until(lambda: all(x.gw.cluster.held for x in env.nodes))
                acked = set()
                for i in range(40):
                    st, _ = await env.create(i % 2, To=TO, From=LONG, Body=f"a{i}")
                    assert st == 201
                    acked.add(f"a{i}")
                own.kill9()
                for i in range(5):           # refused while Redis is down: not acknowledged
                    st, _ = await env.create(i % 2, To=TO, From=LONG, Body=f"x{i}")
                    assert st >= 500
                await trio.to_thread.run_sync(own.start)
                for i in range(40):
                    st, _ = await env.create(i % 2, To=TO, From=LONG, Body=f"b{i}")
                    if st == 201:
                        acked.add(f"b{i}")
                assert len(acked) >= 60
                await wait_until(lambda: acked <= sent_bodies(env), timeout=25)
    finally:
        own.stop()


async def test_acks_are_batched_fenced_per_entry_and_clear_the_streams(tmp_path, redis_server):
    rates = "long_code = 1\ntoll_free = 3\nshort_code = 1000\nqueue_hours = 1"
    with trio.fail_after(30):
        async with cluster_env(tmp_path, redis_server, n=1, rates=rates,
                               sim_kw={"dlr_delay_ms": 0}) as env:
            cl = env.nodes[0].gw.cluster
            c = cl.store.client
            await wait_until(lambda: len(cl.held) == 16)

            async def create(i):
                st, body = await env.create(0, To=TO, From=SHORT, Body=f"k{i}")
                assert st == 201, body

            async with trio.open_nursery() as nursery:
                for i in range(30):
                    nursery.start_soon(create, i)
            await wait_until(lambda: len(env.sim.submits) >= 30)
            with trio.fail_after(10):               # every entry acked: XACK+XDEL+DECRBY
                while await c.xlen(cl.stream(SHORT)) or int(
                        await c.get(cl.depth_key(SHORT)) or 0):
                    await trio.sleep(0.02)
            assert cl.ack_calls <= 30
            # one ACK call, two entries of one slot: the stale token's entry is refused
            number = "+19995550100"                 # not a configured sender: never read
            key, slot = cl.stream(number), slot_of(number)
            await c.xgroup_create(key, "g", "0", mkstream=True)
            ids = [await c.xadd(key, {"sid": f"SM{i}", "n": "1"}) for i in range(2)]
            await c.xreadgroup("g", "someone", streams={key: ">"}, count=10)
            token = cl.held[slot]
            cl.held[slot] = token + 1000            # as a gateway that lost the slot
            cl._ack(slot, key, ids[0], 1)
            cl.held[slot] = token
            cl._ack(slot, key, ids[1], 1)
            calls = cl.ack_calls
            await cl._acks_written()
            assert cl.ack_calls == calls + 1
            left = await c.xrange(key)
            assert [e.identifier for e in left] == [ids[0]]
            assert int(await c.get(cl.depth_key(number)) or 0) == 0   # never below 0
