"""Cluster Lua scripts on a real Redis, called directly: ``ACK`` (per-stream batched
XACK/XDEL/DECRBY with per-entry answers: 1 acked, 0 not pending / repeated, -1 fenced,
and its command count: one XACK, one XDEL, one DECRBY per stream) and ``RATE`` (token
bucket grants; the key's TTL set on first use and refreshed every 30 s, not per call)."""

from __future__ import annotations

import pytest
import trio

from gateway.runtime.cluster_rates import RATE
from gateway.runtime.cluster_streams import ACK, GROUP
from gateway.store.redis import RedisStore


@pytest.fixture
async def store(redis_server, request):
    s = RedisStore(redis_server.url(), prefix=f"ack-{request.node.name}:")
    await s.open()
    await s.register_script("cluster_ACK", ACK)
    await s.register_script("cluster_RATE", RATE)
    try:
        yield s
    finally:
        await s.close()


async def _stream(c, key: str, n: int, read: int) -> list:
    await c.xgroup_create(key, GROUP, "0", mkstream=True)
    ids = [await c.xadd(key, {"sid": f"SM{i}", "n": "2"}) for i in range(n)]
    await c.xreadgroup(GROUP, "me", streams={key: ">"}, count=read)
    return ids


async def _calls(c) -> dict[str, int]:
    info = await c.info("commandstats")
    return {k[8:]: int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_")}


async def test_ack_batches_per_stream_and_answers_per_entry(store):
    c, p = store.client, store.prefix
    with trio.fail_after(10):
        lease_a, lease_b = p + "lease:1", p + "lease:2"
        await c.set(lease_a, "me:5")
        await c.set(lease_b, "me:6")
        sa, sb, da, db = p + "q:a", p + "q:b", p + "n:a", p + "n:b"
        ids_a = await _stream(c, sa, 4, 4)
        ids_b = await _stream(c, sb, 2, 2)
        await c.set(da, "8")
        await c.set(db, "1")                       # below what is acked: clamped at 0
        entries = [
            (lease_a, sa, da, "me:5", ids_a[0], 2),
            (lease_a, sa, da, "me:4", ids_a[1], 2),    # stale token: refused alone
            (lease_b, sb, db, "me:6", ids_b[0], 2),
            (lease_a, sa, da, "me:5", ids_a[2], 2),
            (lease_a, sa, da, "me:5", ids_a[0], 2),    # repeated in the same call
            (lease_b, sb, db, "me:6", ids_b[1], 2),
        ]
        keys = [k for e in entries for k in e[:3]]
        args = [GROUP] + [a for e in entries for a in e[3:]]
        before = await _calls(c)
        out = await store.evalsha("cluster_ACK", keys, args)
        after = await _calls(c)
        assert [int(x) for x in out] == [1, -1, 1, 1, 0, 1]
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("xack", "xdel", "decrby")}
        assert delta == {"xack": 2, "xdel": 2, "decrby": 2}
        assert [e.identifier for e in await c.xrange(sa)] == [ids_a[1], ids_a[3]]
        assert await c.xlen(sb) == 0
        assert int(await c.get(da)) == 4
        assert int(await c.get(db)) == 0
        pending = await c.xpending(sa, GROUP)
        assert pending.pending == 2                # the fenced one and the unacked one

        # acked again (another gateway did it first): 0 per entry, nothing decremented
        again = [(lease_a, sa, da, "me:5", ids_a[0], 2), (lease_a, sa, da, "me:5", ids_a[3], 2)]
        keys = [k for e in again for k in e[:3]]
        args = [GROUP] + [a for e in again for a in e[3:]]
        out = await store.evalsha("cluster_ACK", keys, args)
        assert [int(x) for x in out] == [0, 1]
        assert int(await c.get(da)) == 2
        assert [e.identifier for e in await c.xrange(sa)] == [ids_a[1]]


async def test_rate_bucket_grants_and_sets_its_ttl_once_per_30_s(store):
    c, key = store.client, store.prefix + "tb:s:+1500"
    with trio.fail_after(10):
        before = await _calls(c)
        # rate 1/s, burst 2: starts full; more than the burst is granted then (in debt)
        out = await store.evalsha("cluster_RATE", [key], [1, 2, 5])
        assert [int(x) for x in out] == [5]
        assert 60 < await c.ttl(key) <= 1 * 2 + 60 + 30
        for _ in range(3):                      # in debt now: nothing more for ~3 s
            out = await store.evalsha("cluster_RATE", [key], [1, 2, 1])
            assert [int(x) for x in out] == [0]
        after = await _calls(c)
        assert after.get("expire", 0) - before.get("expire", 0) == 1
        # a bucket written by a gateway without the 'e' field gets its TTL set again
        await c.hdel(key, ["e"])
        await store.evalsha("cluster_RATE", [key], [1, 2, 1])
        assert (await _calls(c)).get("expire", 0) - after.get("expire", 0) == 1
