"""Benchmark of the SQLite store (``SqliteStore``): durable creates/s at several levels
of concurrency, the mixed per-message write cycle, and point-lookup cost.

Rules: a script, not a test; every run uses a fresh database file in a temporary
directory (``--dir`` to choose the disk) and stops by itself (bounded count per case).

Usage: python bench/bench_store.py [--dir DIR] [--count N] [--quick] [--client-cpu]

``--client-cpu`` runs only the gateway's per-message store pattern with the writer in
its own process (create awaited, DLR map, sent and delivered saves nowait with their
due tokens, both callback clears, a flush every 0.25 s) and prints this process's CPU
per message: the event loop's share of the store, without the writer's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import trio

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gateway.core.message import Message  # noqa: E402
from gateway.store.sqlite import SqliteStore  # noqa: E402

ACCOUNT = "AC" + "a" * 32
BODY = "x" * 270


def make(i: int) -> Message:
    return Message(sid=f"SM{i:032x}", account_sid=ACCOUNT, from_=f"+1500555{i % 100:04d}",
                   to=f"+1415{i:07d}", body=BODY, status="queued", date_created=time.time(),
                   date_updated=time.time())


async def run_workers(concurrency: int, total: int, job) -> tuple[float, float]:
    per = max(1, total // concurrency)
    counter = iter(range(10**12))
    t0 = time.perf_counter()

    async def worker() -> None:
        for _ in range(per):
            await job(next(counter))

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    wall = time.perf_counter() - t0
    return per * concurrency / wall, wall


async def bench_creates(path: str, concurrency: int, total: int) -> tuple[float, float, float]:
    store = SqliteStore(path)
    await store.open()
    base = store._seq

    async def job(i: int) -> None:
        await store.create_message(make(base + i + 1))

    rate, wall = await run_workers(concurrency, total, job)
    stats = store.stats
    await store.close()
    return rate, stats.ops / max(1, stats.commits), stats.commit_seconds_sum / wall


async def bench_cycle(path: str, concurrency: int, total: int) -> tuple[float, float, float]:
    store = SqliteStore(path)
    await store.open()
    base = store._seq

    async def job(i: int) -> None:
        msg, _ = await store.create_message(make(base + i + 1))
        msg.status = "sending"
        store.save_message_nowait(msg)
        msg.status = "sent"
        msg.carrier_message_ids = [f"{i:x}"]
        await store.save_message(msg)
        store.map_carrier_id_nowait("carrier-a", f"{i:x}", msg.sid)
        assert await store.sid_for_carrier_id("carrier-a", f"{i:x}") == msg.sid
        msg.status = "delivered"
        await store.save_message(msg)

    rate, wall = await run_workers(concurrency, total, job)
    stats = store.stats
    await store.close()
    return rate, stats.ops / max(1, stats.commits), stats.commit_seconds_sum / wall


async def bench_reads(path: str, n: int) -> tuple[float, float, float]:
    store = SqliteStore(path)
    await store.open()
    msgs = []
    for i in range(0, n, 500):
        async with trio.open_nursery() as nursery:
            for j in range(i, min(n, i + 500)):
                m = make(store._seq + 1 + j)
                msgs.append(m)
                nursery.start_soon(store.create_message, m)
    t0 = time.perf_counter()
    for m in msgs:
        await store.get_message(m.sid)
    direct = (time.perf_counter() - t0) / len(msgs)
    t0 = time.perf_counter()
    for m in msgs[:2000]:
        await trio.to_thread.run_sync(store._sconn.execute,
                                      "SELECT data FROM messages WHERE sid = ?", (m.sid,))
    hop = (time.perf_counter() - t0) / min(2000, len(msgs))
    from gateway.store.base import MessageFilter
    t0 = time.perf_counter()
    for _ in range(200):
        await store.list_messages(MessageFilter(account_sid=ACCOUNT), 50)
    page = (time.perf_counter() - t0) / 200
    await store.close()
    return direct, hop, page


async def bench_client_cpu(path: str, total: int, concurrency: int = 64) -> tuple[float, float]:
    """(event-loop CPU µs per message, msgs/s) of the gateway's store pattern."""
    store = SqliteStore(path, writer="process")
    await store.open()
    base = store._seq
    per = max(1, total // concurrency)

    async def flusher() -> None:
        while True:
            await trio.sleep(0.25)
            await store.flush_due()

    async def worker(k: int) -> None:
        for j in range(per):
            i = base + k * per + j + 1
            m = make(i)
            m.status_callback = "http://127.0.0.1:9/cb"
            msg, _ = await store.create_message(m)
            msg.advance("sending", time.time())
            mid = f"{i:x}"
            msg.carrier_message_ids.append(mid)
            store.map_carrier_id_nowait("carrier-a", mid, msg.sid)
            msg.date_sent = time.time()
            msg.advance("sent", time.time())
            store.save_message_nowait(msg)
            await trio.sleep(0)
            store.clear_due_nowait(msg.sid, "sent")
            msg.advance("delivered", time.time())
            store.save_message_nowait(msg)
            await trio.sleep(0)
            store.clear_due_nowait(msg.sid, "delivered")

    cpu0, t0 = time.process_time(), time.perf_counter()
    async with trio.open_nursery() as outer:
        outer.start_soon(flusher)
        async with trio.open_nursery() as nursery:
            for k in range(concurrency):
                nursery.start_soon(worker, k)
        outer.cancel_scope.cancel()
    await store.close()
    n = per * concurrency
    return (time.process_time() - cpu0) * 1e6 / n, n / (time.perf_counter() - t0)


async def raw_fsync_rate(path: str, n: int = 200) -> float:
    """Plain SQLite, one row per FULL commit, no trio: what this disk does right now."""
    import sqlite3
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (x)")
    t0 = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?)", (i,))
        conn.execute("COMMIT")
    conn.close()
    return n / (time.perf_counter() - t0)


async def main(args) -> None:
    tmp = tempfile.mkdtemp(prefix="bench-store-", dir=args.dir)
    try:
        print(f"# SqliteStore bench: WAL, synchronous=FULL, dir={tmp}")
        if args.client_cpu:
            for r in range(3):
                us, rate = await bench_client_cpu(os.path.join(tmp, f"cpu{r}.db"), args.count)
                print(f"client CPU (process writer)  {us:7.1f} us/msg  {rate:8.0f} msgs/s")
            return
        raw = await raw_fsync_rate(os.path.join(tmp, "raw.db"))
        print(f"raw sqlite 1 row/commit (disk baseline)   {raw:10.0f}/s")
        for conc in (1, 10, 100, 1000):
            total = min(args.count, 2000) if conc == 1 else args.count
            rate, batch, busy = await bench_creates(os.path.join(tmp, f"c{conc}.db"), conc,
                                                    total)
            print(f"durable creates   concurrency={conc:5d}  {rate:10.0f}/s  "
                  f"mean batch {batch:7.1f}  writer busy {busy:4.0%}")
        for conc in (1, 100, 1000):
            total = min(args.count, 1000) if conc == 1 else args.count
            rate, batch, busy = await bench_cycle(os.path.join(tmp, f"m{conc}.db"), conc,
                                                  total)
            print(f"mixed cycle       concurrency={conc:5d}  {rate:10.0f} msgs/s  "
                  f"mean batch {batch:7.1f}  writer busy {busy:4.0%}")
        direct, hop, page = await bench_reads(os.path.join(tmp, "r.db"), 5000)
        print(f"get_message on trio thread     {direct * 1e6:8.1f} us")
        print(f"point read via to_thread hop   {hop * 1e6:8.1f} us")
        print(f"list_messages page of 50       {page * 1e6:8.1f} us")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="directory for the database files")
    parser.add_argument("--count", type=int, default=20000, help="operations per case")
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    parser.add_argument("--client-cpu", action="store_true",
                        help="only the event loop's CPU per message (process writer)")
    a = parser.parse_args()
    if a.quick:
        a.count = 2000
    trio.run(main, a)
