"""SqliteStore small state: DLR map (TTL, expiry sweep), kv, ping, open_store, close."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import trio

from gateway.store import open_store
from gateway.store.base import DLR_TTL, StoreError
from gateway.store.sqlite import IDEMPOTENCY_TTL, SqliteStore

from .conftest import FakeClock, make_msg


def count(table):
    return lambda conn: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


async def test_dlr_map_visible_at_once_then_durable(sqlite_store):
    store = sqlite_store
    with trio.fail_after(10):
        store.map_carrier_id_nowait("carrier-a", "0a1b", "SM" + "1" * 32)
        # not yet committed, but a fast DLR must find it
        assert await store.sid_for_carrier_id("carrier-a", "0a1b") == "SM" + "1" * 32
        await store.ping()
        assert store._pending_map == {}
        assert await store.sid_for_carrier_id("carrier-a", "0a1b") == "SM" + "1" * 32
        assert await store.sid_for_carrier_id("carrier-b", "0a1b") is None
        assert await store.sid_for_carrier_id("carrier-a", "0A1B") is None
        assert await store.run_in_writer(count("dlr_map")) == 1


async def test_dlr_map_ttl_and_sweep(sqlite_store, clock):
    store = sqlite_store
    with trio.fail_after(10):
        store.map_carrier_id_nowait("c", "old", "SM" + "1" * 32)
        await store.ping()
        clock.now += DLR_TTL - 10
        store.map_carrier_id_nowait("c", "new", "SM" + "2" * 32)
        await store.ping()
        assert await store.sid_for_carrier_id("c", "old") == "SM" + "1" * 32
        clock.now += 20                      # "old" is now past the TTL, "new" is not
        assert await store.sid_for_carrier_id("c", "old") is None
        assert await store.sid_for_carrier_id("c", "new") == "SM" + "2" * 32
        assert await store.sweep() == 1
        assert await store.run_in_writer(count("dlr_map")) == 1
        assert await store.sweep() == 0


async def test_idempotency_keys_expire(sqlite_store, clock):
    store = sqlite_store
    with trio.fail_after(10):
        first = make_msg()
        await store.create_message(first, "k")
        clock.now += IDEMPOTENCY_TTL + 1
        assert await store.sweep() == 1
        second, created = await store.create_message(make_msg(), "k")
        assert created and second.sid != first.sid


async def test_writer_sweeps_periodically(tmp_path):
    clock = FakeClock()
    store = SqliteStore(tmp_path / "sweep.db", clock=clock, sweep_interval=0.01)
    await store.open()
    try:
        with trio.fail_after(10):
            store.map_carrier_id_nowait("c", "1", "SM" + "1" * 32)
            await store.ping()
            clock.now += DLR_TTL + 1
            while await store.run_in_writer(count("dlr_map")):
                await trio.sleep(0.01)       # condition wait, bounded by fail_after
    finally:
        await store.close()


async def test_kv(store):
    with trio.fail_after(10):
        assert await store.kv_get("optout", "+1") is None
        await store.kv_put("optout", "+1", {"at": 1.5, "by": ["x"]})
        await store.kv_put("optout", "+0", {"a": None})
        await store.kv_put("other", "+1", {"b": 2})
        assert await store.kv_get("optout", "+1") == {"at": 1.5, "by": ["x"]}
        assert await store.kv_items("optout") == [("+0", {"a": None}),
                                                  ("+1", {"at": 1.5, "by": ["x"]})]
        await store.kv_put("optout", "+1", {"v": 2})
        assert await store.kv_get("optout", "+1") == {"v": 2}
        await store.kv_delete("optout", "+1")
        await store.kv_delete("optout", "missing")
        assert await store.kv_get("optout", "+1") is None
        assert await store.kv_items("optout") == [("+0", {"a": None})]
        assert await store.kv_items("other") == [("+1", {"b": 2})]


async def test_close_flushes_nowait_writes_and_reopen_sees_them(make_store):
    with trio.fail_after(10):
        store = make_store()
        await store.open()
        assert await store.ping() is True
        msg, _ = await store.create_message(make_msg())
        msg.status = "sending"
        store.save_message_nowait(msg)
        store.map_carrier_id_nowait("c", "m1", msg.sid)
        await store.close()
        assert await store.ping() is False
        with pytest.raises(StoreError):
            await store.create_message(make_msg())
        with pytest.raises(StoreError):
            store.save_message_nowait(msg)
        await store.close()                  # idempotent

        again = make_store()
        await again.open()
        try:
            assert (await again.get_message(msg.sid)).status == "sending"
            assert await again.sid_for_carrier_id("c", "m1") == msg.sid
        finally:
            await again.close()


async def test_open_store_factory(tmp_path):
    store = open_store(SimpleNamespace(backend="sqlite", path=str(tmp_path / "var" / "g.db")))
    assert isinstance(store, SqliteStore)
    await store.open()                       # creates the missing directory
    try:
        assert await store.ping()
    finally:
        await store.close()
    from gateway.store.redis import RedisStore

    redis = open_store(SimpleNamespace(backend="redis", url="redis://127.0.0.1:6379/0?prefix=x:",
                                       password="pw", tls=True))
    assert isinstance(redis, RedisStore)          # not opened: no connection yet
    assert redis.url.startswith("rediss://") and redis.prefix == "x:"
    with pytest.raises(ValueError):
        open_store(SimpleNamespace(backend="mysql"))
