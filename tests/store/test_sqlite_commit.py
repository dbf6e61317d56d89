"""SqliteStore group commit: batching, write errors reaching callers, cancellation, and
durability of every acknowledged write across kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio

from gateway.store.base import MessageFilter, StoreError
from gateway.store.sqlite import SqliteStore

from .conftest import ACCOUNT, make_msg

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(sqlite_store):
    """This module tests the SQLite writer thread: SQLite only."""
    return sqlite_store


async def test_concurrent_creates_share_commits(store):
    n = 500
    with trio.fail_after(20):
        before = store.stats.commits
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(store.create_message, make_msg())
        stats = store.stats
        commits = stats.commits - before
        assert commits < n / 5, commits
        assert stats.max_batch > 1
        assert stats.commit_seconds_count >= commits
        assert sum(stats.commit_seconds_buckets) == stats.commit_seconds_count
        rows = await store.list_messages(MessageFilter(account_sid=ACCOUNT), 10 * n)
        assert len(rows) == n
        assert len({m.seq for m in rows}) == n


async def test_disk_full_reaches_callers_and_writer_survives(store):
    with trio.fail_after(20):
        await store.create_message(make_msg())
        pages = await store.run_in_writer(
            lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await store.run_in_writer(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
        errors, ok = [], []

        async def create():
            try:
                ok.append((await store.create_message(make_msg(body="x" * 1500)))[0])
            except StoreError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(create)
        assert errors, "a full database must fail the awaiting callers"
        assert "full" in str(errors[0])
        assert store.stats.errors >= 1
        assert await store.ping() is True        # no new page needed: still commits
        await store.run_in_writer(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
        msg, created = await store.create_message(make_msg())
        assert created and await store.get_message(msg.sid) is not None
        for m in ok:                              # what was acknowledged is there
            assert await store.get_message(m.sid) is not None


async def test_constraint_error_fails_only_that_op(store):
    with trio.fail_after(10):
        dup = make_msg()
        await store.create_message(dup)
        results = {}

        async def create(name, msg):
            try:
                results[name] = await store.create_message(msg)
            except StoreError as exc:
                results[name] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(create, "a", make_msg())
            nursery.start_soon(create, "dup", make_msg(sid=dup.sid))
            nursery.start_soon(create, "b", make_msg())
        assert isinstance(results["dup"], StoreError)
        assert results["a"][1] and results["b"][1]
        assert store.stats.op_errors == 1


async def test_cancelled_waiter_does_not_break_writer(store):
    with trio.fail_after(10):
        msg = make_msg()
        with trio.CancelScope() as scope:
            scope.cancel()
            await store.create_message(msg)
        assert scope.cancelled_caught
        assert await store.ping() is True
        assert await store.get_message(msg.sid) is not None   # the write still committed


CHILD = textwrap.dedent("""
    import sys, trio
    from gateway.core.message import Message
    from gateway.store.sqlite import SqliteStore

    async def main(path):
        store = SqliteStore(path)
        await store.open()
        async def worker(w):
            for i in range(1_000_000):
                m = Message(sid="SM%08x%024x" % (w, i), account_sid="AC" + "a" * 32,
                            from_="+15005550006", to="+15005550001", body="b", status="queued")
                await store.create_message(m)
                print("C", m.sid, flush=True)
                m.status = "sending"
                store.save_message_nowait(m)
                m.status = "sent"
                await store.save_message(m)
                print("S", m.sid, flush=True)
        async with trio.open_nursery() as nursery:
            for w in range(16):
                nursery.start_soon(worker, w)

    trio.run(main, sys.argv[1])
""")


@pytest.mark.slow
async def test_kill_9_keeps_every_acknowledged_write(tmp_path):
    path = str(tmp_path / "kill.db")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, path], stdout=subprocess.PIPE,
                            env=env, cwd=str(REPO))
    lines: list[bytes] = []
    try:
        with trio.fail_after(30):
            while len(lines) < 600:
                line = await trio.to_thread.run_sync(proc.stdout.readline)
                assert line, "child exited early"
                lines.append(line)
            os.kill(proc.pid, signal.SIGKILL)
            lines.extend((await trio.to_thread.run_sync(proc.stdout.read)).splitlines(True))
            assert await trio.to_thread.run_sync(proc.wait) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
    created, sent = set(), set()
    for line in lines:
        if not line.endswith(b"\n"):
            continue                       # cut by the kill mid-write: never acknowledged
        kind, sid = line.decode().split()
        (created if kind == "C" else sent).add(sid)
    assert len(created) >= 300 and sent
    with trio.fail_after(10):
        store = SqliteStore(path)
        await store.open()
        try:
            for sid in created:
                got = await store.get_message(sid)
                assert got is not None, sid
                if sid in sent:
                    assert got.status == "sent", sid
            # the nowait 'sending' was overtaken by 'sent' or comes back as queued
            pending = await store.pending_messages()
            assert all(m.status == "queued" for m in pending)
        finally:
            await store.close()
