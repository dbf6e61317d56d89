"""Store messages (every backend): create/get/list/filters/paging, idempotency, save ordering,
delete, recovery of pending messages after an unclean stop."""

from __future__ import annotations

import calendar
import datetime

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.message import ACCEPTED, DELIVERED, QUEUED, SCHEDULED, SENDING, SENT
from gateway.store import sqlite_schema as S
from gateway.store.base import MessageFilter

from .conftest import ACCOUNT, OTHER, make_msg


def day(s: str, hour: int = 12) -> float:
    d = datetime.date.fromisoformat(s)
    return float(calendar.timegm(d.timetuple()) + hour * 3600)


async def test_create_get_roundtrip_assigns_increasing_seq(store):
    with trio.fail_after(10):
        a = make_msg(carrier_message_ids=["x1", "x2"], error_code=30003, smart_encoded=True,
                     send_at=123.5, messaging_service_sid="MG" + "1" * 32)
        b = make_msg()
        got_a, created_a = await store.create_message(a)
        got_b, created_b = await store.create_message(b)
        assert created_a and created_b
        assert 0 < got_a.seq < got_b.seq
        fetched = await store.get_message(a.sid)
        assert fetched == a
        assert fetched is not a
        assert await store.get_message("SM" + "f" * 32) is None


@settings(max_examples=60, deadline=None)
@given(body=st.text(max_size=200), ids=st.lists(st.text(max_size=12), max_size=3),
       err=st.none() | st.integers(0, 99999), sent=st.none() | st.floats(0, 2e9),
       attempts=st.integers(0, 50), seq=st.integers(1, 2**62))
def test_row_codec_roundtrip(body, ids, err, sent, attempts, seq):
    msg = make_msg(body=body, carrier_message_ids=ids, error_code=err, date_sent=sent,
                   attempts=attempts, seq=seq)
    assert S.msg_of(S.row_of(msg)) == msg


async def test_list_filters_and_paging(store):
    with trio.fail_after(10):
        made = []
        specs = [
            dict(to="+1001", from_="+2001", date_sent=day("2024-03-01")),
            dict(to="+1002", from_="+2001", date_sent=day("2024-03-02", 0)),
            dict(to="+1001", from_="+2002", date_sent=day("2024-03-02", 23)),
            dict(to="+1001", from_="+2001", date_sent=day("2024-03-03")),
            dict(to="+1002", from_="+2002", date_sent=None),
            dict(to="+1001", from_="+2001", date_sent=day("2024-03-02"), account_sid=OTHER),
        ]
        for spec in specs:
            msg, _ = await store.create_message(make_msg(**spec))
            made.append(msg)
        mine = [m for m in made if m.account_sid == ACCOUNT]

        async def sids(**kw):
            res = await store.list_messages(MessageFilter(account_sid=ACCOUNT, **kw), 100)
            return [m.sid for m in res]

        def expect(pred):
            return [m.sid for m in sorted(mine, key=lambda m: -m.seq) if pred(m)]

        assert await sids() == expect(lambda m: True)
        assert await sids(to="+1001") == expect(lambda m: m.to == "+1001")
        assert await sids(from_="+2002") == expect(lambda m: m.from_ == "+2002")
        assert await sids(to="+1001", from_="+2001") == expect(
            lambda m: m.to == "+1001" and m.from_ == "+2001")
        assert await sids(date_sent="2024-03-02") == [mine[2].sid, mine[1].sid]
        assert await sids(date_sent_before="2024-03-02") == [mine[0].sid]
        assert await sids(date_sent_after="2024-03-02") == [mine[3].sid, mine[2].sid,
                                                            mine[1].sid]
        assert await sids(date_sent_after="2024-03-02", date_sent_before="2024-03-03") == [
            mine[2].sid, mine[1].sid]
        other = await store.list_messages(MessageFilter(account_sid=OTHER), 100)
        assert [m.sid for m in other] == [made[5].sid]

        # paging by before_seq walks every row once, newest first
        pages, before = [], None
        while True:
            page = await store.list_messages(MessageFilter(account_sid=ACCOUNT), 2, before)
            if not page:
                break
            assert len(page) <= 2
            pages.extend(m.sid for m in page)
            before = page[-1].seq
        assert pages == expect(lambda m: True)


async def test_list_uses_indexes(sqlite_store):
    conn = sqlite_store._sconn
    for where in ("account_sid = ?", "account_sid = ? AND to_ = ?",
                  "account_sid = ? AND from_ = ?"):
        sql = f"EXPLAIN QUERY PLAN {S.SELECT_MSG} WHERE {where} AND seq < ? ORDER BY seq DESC"
        plan = " ".join(r[3] for r in conn.execute(sql, (1,) * (sql.count("?"))))
        assert "USING INDEX messages_account" in plan and "TEMP B-TREE" not in plan, plan
    plan = conn.execute(f"EXPLAIN QUERY PLAN {S.SELECT_MSG} WHERE {S.PENDING_WHERE} "
                        "ORDER BY seq").fetchall()
    assert "messages_pending" in plan[0][3]


async def test_idempotency_key_returns_first_message(store):
    with trio.fail_after(10):
        first = make_msg(body="one")
        second = make_msg(body="two")
        got1, c1 = await store.create_message(first, idempotency_key="key-1")
        got2, c2 = await store.create_message(second, idempotency_key="key-1")
        assert c1 is True and c2 is False
        assert got2.sid == first.sid and got2.body == "one"
        assert await store.get_message(second.sid) is None
        # the key is scoped by account
        third = make_msg(account_sid=OTHER)
        _, c3 = await store.create_message(third, idempotency_key="key-1")
        assert c3 is True
        # concurrent duplicates land in one batch: still exactly one row
        results = []

        async def create(i):
            results.append(await store.create_message(make_msg(body=f"c{i}"), "key-2"))

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(create, i)
        assert sum(1 for _, created in results if created) == 1
        assert len({m.sid for m, _ in results}) == 1
        rows = await store.list_messages(MessageFilter(account_sid=ACCOUNT), 1000)
        assert sum(1 for m in rows if m.body.startswith("c")) == 1


async def test_idempotency_key_after_delete_creates_anew(store):
    with trio.fail_after(10):
        a = make_msg()
        await store.create_message(a, "k")
        assert await store.delete_message(a.sid) is True
        assert await store.delete_message(a.sid) is False
        b = make_msg()
        got, created = await store.create_message(b, "k")
        assert created and got.sid == b.sid


async def test_save_and_nowait_apply_in_issue_order(store):
    with trio.fail_after(10):
        msg, _ = await store.create_message(make_msg(body="original"))
        for attempt in range(1, 6):
            msg.attempts = attempt
            msg.status = SENDING if attempt % 2 else QUEUED
            store.save_message_nowait(msg)
        # the row is encoded when issued: a later unsaved change must not leak in
        msg.body = "changed but never saved"
        msg.status = DELIVERED
        await store.ping()                 # FIFO: the nowait saves are committed now
        got = await store.get_message(msg.sid)
        assert (got.status, got.attempts, got.body) == (SENDING, 5, "original")

        msg.body = "original"
        msg.status = SENT
        msg.date_sent = 1_700_000_500.0
        msg.carrier_message_ids = ["abc"]
        store.save_message_nowait(msg)     # nowait then awaited save of the same row
        msg.status = DELIVERED
        await store.save_message(msg)
        got = await store.get_message(msg.sid)
        assert got == msg


async def test_save_unknown_message_inserts_it(store):
    with trio.fail_after(10):
        msg = make_msg()
        await store.save_message(msg)
        assert msg.seq > 0
        assert await store.get_message(msg.sid) == msg


async def test_pending_after_unclean_stop(make_store):
    with trio.fail_after(10):
        first = make_store()
        await first.open()
        statuses = [QUEUED, SENT, ACCEPTED, SENDING, DELIVERED, SCHEDULED, SENDING, QUEUED]
        made = []
        for st_ in statuses:
            m, _ = await first.create_message(make_msg(status=QUEUED))
            m.status = st_
            first.save_message_nowait(m)
            made.append(m)
        await first.ping()                 # FIFO: every nowait save is committed now
        # "crash": open the same file again without closing the first store
        second = make_store()
        await second.open()
        try:
            pending = await second.pending_messages()
            expect = [m for m in made if m.status in (QUEUED, ACCEPTED, SENDING, SCHEDULED)]
            assert [m.sid for m in pending] == [m.sid for m in expect]
            assert [m.seq for m in pending] == sorted(m.seq for m in pending)
            for got, want in zip(pending, expect, strict=True):
                assert got.status == (QUEUED if want.status == SENDING else want.status)
            # seq continues after the highest stored one
            new, _ = await second.create_message(make_msg())
            assert new.seq > max(m.seq for m in made)
            sent = await second.unfinished_sent(since=0.0)
            assert [m.sid for m in sent] == [made[1].sid]
        finally:
            await second.close()
            await first.close()
