"""RedisStore's one-script-per-batch writes (``redis_batch.BATCH``): many sub-ops in one
call give the same state as one by one, a failing sub-op fails alone, the per-batch
command count stays flat, and queued messages created routed carry no marker."""

from __future__ import annotations

import pytest
import trio

from gateway.core.message import ACCEPTED, DELIVERED, QUEUED, SENT
from gateway.store.base import MessageFilter, StoreError
from gateway.store.redis import RedisStore, StreamRoute

from . import redis_server as rs
from .conftest import ACCOUNT, make_msg

pytestmark = pytest.mark.skipif(not rs.available(), reason="redis-server not installed")


@pytest.fixture
async def rstore(redis_server, request):
    s = RedisStore(redis_server.url(), prefix=f"b-{request.node.name}:")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def _members(store, key):
    return {m.decode() for m in await store.client.zrange(key, 0, -1)}


async def test_one_message_through_its_whole_life_in_one_batch(rstore):
    with trio.fail_after(10):
        msg = make_msg(status=QUEUED, due=["queued"])
        await rstore.create_message(msg)
        # sent, then delivered, with a due token added and one cleared: pushed together,
        # so they land in one script call
        calls = rstore.script_calls
        msg.status = SENT
        msg.due.append("sent")
        rstore.save_message_nowait(msg)
        rstore.map_carrier_id_nowait("c", "m-9", msg.sid)
        rstore.clear_due_nowait(msg.sid, "queued")
        msg.status = DELIVERED
        msg.due.append("delivered")
        rstore.save_message_nowait(msg)
        await rstore.ping()
        assert rstore.script_calls == calls + 1
        k = rstore.keys
        got = await rstore.get_message(msg.sid)
        assert got.status == DELIVERED and got.seq == msg.seq
        assert await _members(rstore, k.pend) == set() == await _members(rstore, k.sent)
        assert await rstore.sid_for_carrier_id("c", "m-9") == msg.sid
        due = await rstore.messages_due()
        assert [(m.sid, t) for m, t in due] == [(msg.sid, ["sent", "delivered"])]
        # the final-status guard sees the value written earlier in the same call
        msg.status = SENT
        rstore.save_message_nowait(msg)
        msg.status = QUEUED
        rstore.save_message_nowait(msg)
        await rstore.ping()
        assert (await rstore.get_message(msg.sid)).status == DELIVERED
        assert await rstore.delete_message(msg.sid)
        assert await rstore.get_message(msg.sid) is None
        assert await rstore.messages_due() == []
        for key in (k.acct(ACCOUNT), k.acct_to(ACCOUNT, msg.to),
                    k.acct_from(ACCOUNT, msg.from_)):
            assert await _members(rstore, key) == set()


async def test_a_failing_sub_op_fails_alone(rstore):
    with trio.fail_after(10):
        first, _ = await rstore.create_message(make_msg())
        dup = make_msg(sid=first.sid)
        results: dict[str, object] = {}

        async def create(m):
            try:
                results[m.sid + m.body] = (await rstore.create_message(m))[1]
            except StoreError as exc:
                results[m.sid + m.body] = exc

        others = [make_msg() for _ in range(5)]
        async with trio.open_nursery() as nursery:
            for m in [others[0], others[1], dup, *others[2:]]:
                nursery.start_soon(create, m)
        assert isinstance(results[dup.sid + dup.body], StoreError)
        assert all(results[m.sid + m.body] is True for m in others)
        rows = await rstore.list_messages(MessageFilter(account_sid=ACCOUNT), 100)
        assert len(rows) == 6 and len({m.seq for m in rows}) == 6
        assert (await rstore.get_message(first.sid)).body == first.body


async def test_commands_per_batch_do_not_grow_with_its_messages(rstore):
    async def cmds():
        info = await rstore.client.info("commandstats")
        return sum(int(v["calls"]) for v in info.values())

    with trio.fail_after(20):
        n = 200
        before, calls = await cmds(), rstore.script_calls
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(rstore.create_message, make_msg())
        spent = await cmds() - before - 1                  # less the INFO itself
        calls = rstore.script_calls - calls
        assert calls < n / 5
        # per script call: EVAL, MGET, MSET, INCRBY seq and one ZADD per index key (account,
        # To, From, pending): 9; nothing per message
        assert spent <= 9 * calls, (spent, calls)


async def test_queued_created_routed_leave_no_marker(rstore):
    p = rstore.prefix
    undone = []
    rstore.on_create = lambda m: StreamRoute(p + "q:s", p + "n:s", f"{p}r:{m.sid}", 2, 1,
                                             60, mark=m.status == ACCEPTED)
    rstore.on_create_undo = undone.append
    with trio.fail_after(10):
        queued, _ = await rstore.create_message(make_msg(status=QUEUED))
        accepted, _ = await rstore.create_message(make_msg(status=ACCEPTED))
        c = rstore.client
        assert await c.exists([f"{p}r:{queued.sid}"]) == 0
        assert await c.exists([f"{p}r:{accepted.sid}"]) == 1
        assert await c.xlen(p + "q:s") == 2 and int(await c.get(p + "n:s")) == 2
        assert undone == []
        refused = make_msg(status=QUEUED)                 # cap 2 reached
        with pytest.raises(Exception) as err:
            await rstore.create_message(refused)
        assert getattr(err.value, "code", None) == 21611
        assert undone == [refused.sid]
        res = []                      # a route of the accepted one finds its marker
        rstore.route_nowait(accepted, rstore.on_create(accepted), lambda r, e: res.append(r))
        await rstore.ping()
        assert res == [0] and await c.xlen(p + "q:s") == 2


async def test_a_redis_error_inside_a_sub_op_fails_only_that_op(rstore):
    p = rstore.prefix
    await rstore.client.set(p + "q:bad", "not a stream")
    rstore.on_create = lambda m: (StreamRoute(p + "q:bad", p + "n:bad", f"{p}r:{m.sid}", -1,
                                              1, 60) if m.body == "bad" else None)
    with trio.fail_after(10):
        bad, good = make_msg(body="bad"), make_msg(body="good")
        outcome = {}

        async def create(m):
            try:
                outcome[m.body] = (await rstore.create_message(m))[1]
            except StoreError as exc:
                outcome[m.body] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(create, bad)
            nursery.start_soon(create, good)
        assert isinstance(outcome["bad"], StoreError) and "WRONGTYPE" in str(outcome["bad"])
        assert outcome["good"] is True
        assert (await rstore.get_message(good.sid)).body == "good"
