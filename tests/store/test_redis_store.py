"""RedisStore specifics: the durability check at open, server-side TTLs, group commit,
the final-status guard, and acknowledged writes surviving kill -9 of redis-server."""

from __future__ import annotations

import pytest
import trio

from gateway.core.message import DELIVERED, SENT
from gateway.store.base import DLR_TTL, MessageFilter, StoreError
from gateway.store.redis import IDEMPOTENCY_TTL, RedisStore, parse_url

from . import redis_server as rs
from .conftest import ACCOUNT, make_msg

pytestmark = pytest.mark.skipif(not rs.available(), reason="redis-server not installed")


@pytest.fixture
async def rstore(redis_server, request):
    s = RedisStore(redis_server.url(), prefix=f"r-{request.node.name}:")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def test_url_parameters_are_ours_or_theirs():
    url, ours = parse_url("unix:///tmp/r.sock?db=2&allow_everysec=1&prefix=a:")
    assert url == "unix:///tmp/r.sock?db=2" and ours == {"allow_everysec": "1", "prefix": "a:"}


async def test_refuses_everysec_unless_allowed(tmp_path):
    server = rs.RedisServer(tmp_path / "everysec", fsync="everysec").start()
    try:
        with trio.fail_after(10):
            store = RedisStore(server.url())
            with pytest.raises(StoreError, match="appendfsync always"):
                await store.open()
            store = RedisStore(server.url(allow_everysec="1"))
            await store.open()
            try:
                assert await store.ping()
            finally:
                await store.close()
    finally:
        server.stop()


async def test_unreachable_server_is_a_store_error(tmp_path):
    with trio.fail_after(10), pytest.raises(StoreError):
        await RedisStore(f"unix://{tmp_path}/nothing.sock").open()


async def test_ttls_are_server_side(rstore):
    with trio.fail_after(10):
        msg, _ = await rstore.create_message(make_msg(), "idem-1")
        rstore.map_carrier_id_nowait("c", "m-1", msg.sid)
        assert await rstore.sid_for_carrier_id("c", "m-1") == msg.sid   # before the flush
        await rstore.ping()
        assert rstore._pending_map == {}
        assert await rstore.sid_for_carrier_id("c", "m-1") == msg.sid
        assert await rstore.sid_for_carrier_id("c", "M-1") is None
        c = rstore.client
        idem_ttl = await c.pttl(rstore.keys.idem(ACCOUNT, "idem-1"))
        dlr_ttl = await c.pttl(rstore.keys.dlr("c", "m-1"))
        assert IDEMPOTENCY_TTL * 1000 - 60_000 < idem_ttl <= IDEMPOTENCY_TTL * 1000
        assert DLR_TTL * 1000 - 60_000 < dlr_ttl <= DLR_TTL * 1000
        assert await c.pttl(rstore.keys.msg(msg.sid)) == -1        # messages never expire


async def test_concurrent_creates_share_pipelines(rstore):
    n = 500
    with trio.fail_after(20):
        before = rstore.batches
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(rstore.create_message, make_msg())
        assert rstore.batches - before < n / 5
        rows = await rstore.list_messages(MessageFilter(account_sid=ACCOUNT), 10 * n)
        assert len(rows) == n and len({m.seq for m in rows}) == n


async def test_final_status_is_not_undone_by_a_late_save(rstore, redis_server):
    other = RedisStore(redis_server.url(), prefix=rstore.prefix)   # a second gateway
    await other.open()
    try:
        with trio.fail_after(10):
            msg, _ = await rstore.create_message(make_msg())
            stale = await other.get_message(msg.sid)
            msg.status = DELIVERED
            await rstore.save_message(msg)
            stale.status = SENT                    # the other gateway's late 'sent'
            await other.save_message(stale)
            assert (await rstore.get_message(msg.sid)).status == DELIVERED
            assert await rstore.unfinished_sent(0.0) == []
            msg.body = ""                          # same status: a redaction still applies
            await rstore.save_message(msg)
            assert (await other.get_message(msg.sid)).body == ""
    finally:
        await other.close()


async def test_cancelled_waiter_does_not_retract(rstore):
    with trio.fail_after(10):
        msg = make_msg()
        with trio.CancelScope() as scope:
            scope.cancel()
            await rstore.create_message(msg)
        assert scope.cancelled_caught
        assert await rstore.ping() is True
        assert await rstore.get_message(msg.sid) is not None


async def test_acknowledged_writes_survive_kill_9_of_redis(tmp_path):
    server = rs.RedisServer(tmp_path / "crash").start()
    acked = []
    try:
        with trio.fail_after(20):
            store = RedisStore(server.url())
            await store.open()
            try:
                async def writer(w):
                    for i in range(10_000):
                        m = make_msg()
                        try:
                            await store.create_message(m, f"k{w}-{i}")
                        except StoreError:
                            return                     # in flight at the kill: not acked
                        acked.append(m.sid)

                async with trio.open_nursery() as nursery:
                    for w in range(8):
                        nursery.start_soon(writer, w)
                    while len(acked) < 300:
                        await trio.sleep(0.005)       # condition wait, bounded above
                    server.kill9()
            finally:
                await store.close()
            server.start()
            again = RedisStore(server.url())
            await again.open()
            try:
                for sid in acked:
                    assert await again.get_message(sid) is not None, sid
                new, _ = await again.create_message(make_msg())
                assert new.seq > len(acked)
            finally:
                await again.close()
    finally:
        server.stop()
    assert len(acked) >= 300


async def test_create_with_route_queues_once_and_refuses_past_the_cluster_cap(rstore):
    from gateway.core.errors import TwilioError
    from gateway.core.message import QUEUED
    from gateway.store.redis import StreamRoute

    p = rstore.prefix
    route = StreamRoute(p + "q:s", p + "n:s", "", 3, 2, 60)

    def routed(m):
        return route._replace(marker=f"{p}r:{m.sid}")

    rstore.on_create = routed
    with trio.fail_after(10):
        first, created = await rstore.create_message(make_msg(status=QUEUED), "k1")
        assert created
        again, created = await rstore.create_message(make_msg(status=QUEUED), "k1")
        assert not created and again.sid == first.sid     # repeat: no second entry
        with pytest.raises(TwilioError) as err:           # 2 + 2 segments > cap 3
            await rstore.create_message(make_msg(status=QUEUED))
        assert err.value.code == 21611
        c = rstore.client
        assert await c.xlen(p + "q:s") == 1 and int(await c.get(p + "n:s")) == 2
        # ROUTE: at most once per message, and only while it is pending
        results = []
        rstore.route_nowait(first, routed(first), lambda r, e: results.append(r))
        await rstore.ping()
        assert results == [0] and await c.xlen(p + "q:s") == 1


async def test_sent_is_never_moved_back_to_queued(rstore):
    from gateway.core.message import QUEUED

    with trio.fail_after(10):
        msg, _ = await rstore.create_message(make_msg(status=QUEUED))
        msg.status = SENT
        await rstore.save_message(msg)
        msg.status = QUEUED                       # a late save from another gateway
        await rstore.save_message(msg)
        assert (await rstore.get_message(msg.sid)).status == SENT
