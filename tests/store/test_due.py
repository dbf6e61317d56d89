"""Due tokens on every backend: a status callback is due from the very write that stores
its status, survives a reopen, is cleared by a later save (folded) or by a flush, several
saves in one batch keep every token, MO tokens ride on the create; SQLite upgrades a
version-1 file in place."""

import sqlite3

import trio

from gateway.core import message as M
from gateway.store import due as D
from gateway.store import sqlite_schema as S
from gateway.store.sqlite import SqliteStore

from .conftest import make_msg

CB = "http://127.0.0.1:9/status"


async def due_of(store) -> dict[str, list[str]]:
    return {m.sid: toks for m, toks in await store.messages_due()}


def test_apply_removes_then_adds_once():
    assert D.apply(None, "", ";sent") == ";sent"
    assert D.apply(";sent", ";sent", ";delivered") == ";delivered"
    assert D.apply(";undelivered;sent", ";sent", ";undelivered") == ";undelivered"
    assert D.apply(";sent", ";sent", "") is None
    assert D.apply(";mo:ab", ";delivered", "") == ";mo:ab"


async def test_status_due_with_its_save_survives_reopen_then_cleared(make_store):
    with trio.fail_after(20):
        store = make_store()
        await store.open()
        plain = make_msg()                                  # no StatusCallback: nothing due
        msg = make_msg(status_callback=CB)
        for m in (plain, msg):
            await store.create_message(m)
            m.advance(M.SENDING, 1.0)
            assert m.advance(M.SENT, 2.0)
            store.save_message_nowait(m)
        assert msg.due == []                                # taken by the store
        await store.close()                                 # flushes: as a crash after commit
        store = make_store()
        await store.open()
        (got, toks), = await store.messages_due()
        assert (got.sid, got.status, toks) == (msg.sid, M.SENT, ["sent"])
        store.clear_due_nowait(msg.sid, "sent")
        assert store.due_backlog == 1
        await store.flush_due()
        assert store.due_backlog == 0
        assert await due_of(store) == {}
        await store.close()


async def test_clear_folds_into_next_save_and_saves_in_one_batch_keep_all(store):
    with trio.fail_after(20):
        msg = make_msg(status_callback=CB)
        await store.create_message(msg)
        msg.advance(M.SENDING, 1.0)
        msg.advance(M.SENT, 2.0)
        store.save_message_nowait(msg)
        msg.advance(M.DELIVERED, 3.0)
        store.save_message_nowait(msg)                      # same batch (coalesced in SQLite)
        await store.ping()
        assert await due_of(store) == {msg.sid: ["sent", "delivered"]}
        store.clear_due_nowait(msg.sid, "sent")
        msg.body = ""                                       # any later save carries the clear
        await store.save_message(msg)
        assert store.due_backlog == 0
        assert await due_of(store) == {msg.sid: ["delivered"]}
        store.clear_due_nowait(msg.sid, "delivered")
        await store.flush_due()
        assert await due_of(store) == {}


async def test_queued_due_only_after_accepted_and_mo_token_on_create(store):
    with trio.fail_after(20):
        acc = make_msg(status=M.ACCEPTED, status_callback=CB)
        await store.create_message(acc)
        acc.advance(M.QUEUED, 1.0)
        store.save_message_nowait(acc)
        mo = make_msg(status=M.RECEIVED, direction=M.INBOUND)
        mo.due.append("mo:abc")
        await store.create_message(mo)
        assert await due_of(store) == {acc.sid: ["queued"], mo.sid: ["mo:abc"]}
        assert (await store.get_message(mo.sid)).due == []
        store.clear_due_nowait(mo.sid, "mo:abc")
        store.clear_due_nowait(acc.sid, "queued")
        await store.flush_due()
        assert await due_of(store) == {}


async def test_delete_drops_due(store):
    with trio.fail_after(20):
        msg = make_msg(status=M.SCHEDULED, status_callback=CB)
        await store.create_message(msg)
        msg.advance(M.CANCELED, 1.0)
        await store.save_message(msg)
        assert await due_of(store) == {msg.sid: ["canceled"]}
        assert await store.delete_message(msg.sid)
        assert await due_of(store) == {}


OLD_DDL = """
CREATE TABLE messages (seq INTEGER PRIMARY KEY, sid TEXT NOT NULL UNIQUE,
  account_sid TEXT NOT NULL, from_ TEXT NOT NULL, to_ TEXT NOT NULL, status TEXT NOT NULL,
  date_created REAL NOT NULL, date_sent REAL, date_updated REAL NOT NULL, data BLOB NOT NULL);
"""


async def test_sqlite_upgrades_a_version_1_file_in_place(tmp_path):
    path = tmp_path / "old.db"
    old = make_msg(status=M.SENT, status_callback=CB)
    conn = sqlite3.connect(path)
    conn.executescript(OLD_DDL)
    conn.execute(f"INSERT INTO messages ({S.COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                 S.row_of(old)[:10])
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with trio.fail_after(20):
        for writer in ("thread", "process"):
            store = SqliteStore(path, writer=writer)
            await store.open()
            got = await store.get_message(old.sid)
            assert got is not None and got.body == old.body
            if writer == "thread":
                assert got.status == M.SENT
                got.advance(M.DELIVERED, 5.0)
                await store.save_message(got)
            assert await due_of(store) == {old.sid: ["delivered"]}
            await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == S.SCHEMA_VERSION
    conn.close()
