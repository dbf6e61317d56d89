"""``SqliteStore``: the embedded durable store (SQLite WAL, ``synchronous=FULL``).

Owns: the message table, idempotency keys, the DLR map, the kv table, and which thread
does what with them (the SQL the writer runs for each write is ``sqlite_ops``).

Rules:
- Writes go through one ``GroupCommitWriter`` thread (group commit, one fsync per batch);
  ``async`` writes return after their batch committed, ``*_nowait`` writes join the next
  batch; several saves of one message in one batch write only the last. A message row is
  encoded when the write is issued, so later changes to the ``Message`` object do not
  leak into an earlier write.
- ``seq`` is kept in memory after ``open`` (``max(seq)`` + 1 per create).
- Point lookups by key run on the trio thread on their own read connection (WAL readers
  see every committed batch); scans (lists, pending, kv_items) run in a worker thread on
  a second read connection, one at a time.
- Reads see committed data only. The one exception: a DLR-map entry written with
  ``map_carrier_id_nowait`` is visible to ``sid_for_carrier_id`` at once (kept in memory
  until its batch commits), so a fast DLR never misses its message.
- Due tokens (``gateway.store.due``): a create/save writes the message's new ones and
  the buffered clears of that message in its own statement; ``flush_due`` writes the
  other buffered clears as one ``executemany`` op.
- DLR-map entries older than ``DLR_TTL`` and idempotency keys older than
  ``IDEMPOTENCY_TTL`` are invisible to lookups and deleted by the writer every
  ``sweep_interval`` seconds, ``SWEEP_LIMIT`` rows per table per sweep.

Error handling: a failed commit raises ``StoreError`` in every waiting caller (see
``sqlite_writer``); the store stays usable and the next batch is tried afresh. A caller
cancelled while waiting does not retract its write.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable

import orjson
import trio

from gateway.core.message import QUEUED, SENDING, Message
from gateway.store import due as D
from gateway.store import sqlite_ops as O
from gateway.store import sqlite_schema as S
from gateway.store.base import DLR_TTL, MessageFilter, Store, StoreError
from gateway.store.sqlite_ops import IDEMPOTENCY_TTL, SWEEP_LIMIT
from gateway.store.sqlite_proc import ProcessWriter
from gateway.store.sqlite_writer import GroupCommitWriter, WriterStats

__all__ = ["IDEMPOTENCY_TTL", "SWEEP_LIMIT", "SqliteStore"]



class SqliteStore(D.BufferedDueClears, Store):
    backend = "sqlite"

    def __init__(self, path: str | os.PathLike, *, clock: Callable[[], float] = time.time,
                 max_batch: int = 1000, sweep_interval: float = 60.0,
                 writer: str = "thread") -> None:
        """``writer``: "thread" (the writer connection on a thread of this process) or
        "process" (on its own process: no GIL shared with the event loop; the daemon's
        choice, see ``sqlite_proc``)."""
        self.path = os.fspath(path)
        self._writer_mode = writer
        self._clock = clock
        self._max_batch = max_batch
        self._sweep_interval = sweep_interval
        self._writer: GroupCommitWriter | None = None
        self._closed_writer: GroupCommitWriter | None = None
        self._rconn: sqlite3.Connection | None = None      # trio thread: point lookups
        self._sconn: sqlite3.Connection | None = None      # worker thread: scans
        self._scan_limiter = trio.CapacityLimiter(1)
        self._seq = 0
        self._pending_map: dict[tuple[str, str], str] = {}
        self._pending_rows: dict[str, tuple] = {}   # sid -> row saved nowait, not committed
        self._due = D.DueBuffer(coalescing=True)

    # -- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        if self._writer is not None:
            return
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        try:
            wconn = S.connect(self.path, writer=True, check_same_thread=False)
            S.migrate(wconn)
            self._seq = wconn.execute("SELECT coalesce(max(seq), 0) FROM messages").fetchone()[0]
            self._rconn = S.connect(self.path, writer=False)
            self._sconn = S.connect(self.path, writer=False, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        if self._writer_mode == "process":
            wconn.close()
            self._writer = ProcessWriter(
                self.path, max_batch=self._max_batch, periodic=self._sweep_op,
                periodic_interval=self._sweep_interval)
        else:
            self._writer = GroupCommitWriter(
                wconn, max_batch=self._max_batch, periodic=self._sweep_op,
                periodic_interval=self._sweep_interval, name=f"store-writer:{self.path}")
        self._writer.start()

    async def close(self) -> None:
        if self._writer is None:
            return
        if self._due:
            try:
                await self.flush_due()
            except StoreError:
                pass   # logged by the writer; the tokens stay due (re-sent at start)
        writer, self._writer = self._writer, None
        self._closed_writer = writer
        try:
            await writer.stop()
        finally:
            for conn in (self._rconn, self._sconn):
                if conn is not None:
                    async with self._scan_limiter:
                        conn.close()
            self._rconn = self._sconn = None

    @property
    def stats(self) -> WriterStats:
        w = self._writer or self._closed_writer
        return w.stats if w is not None else WriterStats()

    @property
    def queue_depth(self) -> int:
        return self._writer.queue_depth if self._writer is not None else 0

    def _w(self) -> GroupCommitWriter:
        if self._writer is None:
            raise StoreError("store is not open")
        return self._writer

    def _r(self) -> sqlite3.Connection:
        if self._rconn is None:
            raise StoreError("store is not open")
        return self._rconn

    async def _scan(self, fn: Callable[[sqlite3.Connection], object]):
        conn = self._sconn
        if conn is None:
            raise StoreError("store is not open")
        try:
            return await trio.to_thread.run_sync(fn, conn, limiter=self._scan_limiter)
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc

    def _sweep_op(self) -> tuple[Callable, tuple]:  # writer thread: the periodic op
        return O.w_sweep, (self._clock(),)

    async def sweep(self) -> int:
        """Delete expired DLR-map rows and idempotency keys now; returns rows deleted."""
        return await self._w().submit(O.w_sweep, self._clock())

    async def run_in_writer(self, fn: Callable[[sqlite3.Connection], object]):
        """Run ``fn(conn)`` inside the next batch on the writer connection (maintenance,
        tests); returns its result after the commit."""
        return await self._w().submit(fn)

    async def ping(self, timeout: float = 5.0) -> bool:
        with trio.move_on_after(timeout):
            try:
                await self._w().submit(O.w_ping, self._clock())
            except StoreError:
                return False
            return True
        return False

    # -- messages -------------------------------------------------------------------------
    async def create_message(self, msg: Message, idempotency_key: str | None = None
                             ) -> tuple[Message, bool]:
        writer = self._w()
        self._seq += 1
        msg.seq = self._seq
        row = S.row_of(msg)
        due = D.join(msg.due) or None
        msg.due.clear()
        if idempotency_key is None:
            await writer.submit(O.w_insert, row, due)
            return msg, True
        old = await writer.submit(O.w_create_idem, row, idempotency_key, self._clock(), due)
        if old is None:
            return msg, True
        return old, False

    def _save_row(self, msg: Message) -> tuple:
        if msg.seq <= 0:  # never created here: the fallback insert needs a seq
            self._seq += 1
            msg.seq = self._seq
        return S.row_of(msg)

    async def save_message(self, msg: Message) -> None:
        writer = self._w()
        row = self._save_row(msg)
        change = self._due.for_write(msg.sid, msg.due)
        try:
            await writer.submit(O.w_save, row, change[0], change[1], key=msg.sid)
        finally:
            self._due.committed(msg.sid, change)

    def save_message_nowait(self, msg: Message) -> None:
        writer = self._w()
        row = self._save_row(msg)
        sid = msg.sid
        change = self._due.for_write(sid, msg.due)
        # read-your-writes: get_message sees the row before its batch commits
        self._pending_rows[sid] = row
        due = self._due

        def done(_outcome) -> None:
            if self._pending_rows.get(sid) is row:
                del self._pending_rows[sid]
            due.committed(sid, change)

        writer.submit_nowait(O.w_save, row, change[0], change[1], key=sid, on_done=done)

    # -- due tokens (gateway.store.due) -----------------------------------------------------
    async def flush_due(self) -> None:
        pairs = self._due.drain()
        if pairs:
            try:
                await self._w().submit(O.w_clear_due, pairs)
            except StoreError:
                self._due.restore(pairs)
                raise

    async def messages_due(self) -> list[tuple[Message, list[str]]]:
        def run(conn: sqlite3.Connection) -> list:
            return [(S.msg_of(r[:-1]), D.split(r[-1])) for r in conn.execute(S.SELECT_DUE)]

        return await self._scan(run)

    async def delete_message(self, sid: str) -> bool:
        return await self._w().submit(O.w_delete, sid)

    async def get_message(self, sid: str) -> Message | None:
        pending = self._pending_rows.get(sid)
        if pending is not None:
            return S.msg_of(pending)
        try:
            row = self._r().execute(S.SELECT_MSG + " WHERE sid = ?", (sid,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc
        return S.msg_of(row) if row is not None else None

    async def list_messages(self, flt: MessageFilter, limit: int,
                            before_seq: int | None = None) -> list[Message]:
        where = ["account_sid = ?"]
        args: list[object] = [flt.account_sid]
        if flt.to is not None:
            where.append("to_ = ?")
            args.append(flt.to)
        if flt.from_ is not None:
            where.append("from_ = ?")
            args.append(flt.from_)
        if flt.date_sent is not None:
            start = S.day_start(flt.date_sent)
            where.append("date_sent >= ? AND date_sent < ?")
            args += [start, start + 86400.0]
        if flt.date_sent_before is not None:
            where.append("date_sent < ?")
            args.append(S.day_start(flt.date_sent_before))
        if flt.date_sent_after is not None:
            where.append("date_sent >= ?")
            args.append(S.day_start(flt.date_sent_after))
        if before_seq is not None:
            where.append("seq < ?")
            args.append(before_seq)
        args.append(max(0, int(limit)))
        sql = f"{S.SELECT_MSG} WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?"
        return await self._scan(lambda c: [S.msg_of(r) for r in c.execute(sql, args)])

    async def pending_messages(self) -> list[Message]:
        sql = f"{S.SELECT_MSG} WHERE {S.PENDING_WHERE} ORDER BY seq"

        def run(conn: sqlite3.Connection) -> list[Message]:
            out = []
            for row in conn.execute(sql):
                msg = S.msg_of(row)
                if msg.status == SENDING:
                    msg.status = QUEUED
                out.append(msg)
            return out

        return await self._scan(run)

    async def unfinished_sent(self, since: float) -> list[Message]:
        sql = (f"{S.SELECT_MSG} WHERE {S.SENT_WHERE} "
               "AND coalesce(date_sent, date_updated) >= ? ORDER BY seq")
        return await self._scan(lambda c: [S.msg_of(r) for r in c.execute(sql, (since,))])

    # -- DLR map --------------------------------------------------------------------------
    def map_carrier_id_nowait(self, carrier: str, carrier_message_id: str, sid: str) -> None:
        writer = self._w()
        key = (carrier, carrier_message_id)
        self._pending_map[key] = sid

        def done(_outcome) -> None:
            if self._pending_map.get(key) == sid:
                del self._pending_map[key]

        writer.submit_nowait(O.w_map, carrier, carrier_message_id, sid, self._clock(),
                             on_done=done)

    async def sid_for_carrier_id(self, carrier: str, carrier_message_id: str) -> str | None:
        sid = self._pending_map.get((carrier, carrier_message_id))
        if sid is not None:
            return sid
        try:
            row = self._r().execute(
                "SELECT sid FROM dlr_map WHERE carrier = ? AND carrier_message_id = ? "
                "AND created >= ?", (carrier, carrier_message_id, self._clock() - DLR_TTL)
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc
        return row[0] if row is not None else None

    # -- kv -------------------------------------------------------------------------------
    async def kv_put(self, ns: str, key: str, value: dict) -> None:
        await self._w().submit(O.w_kv_put, ns, key, orjson.dumps(value).decode())

    async def kv_get(self, ns: str, key: str) -> dict | None:
        try:
            row = self._r().execute("SELECT value FROM kv WHERE ns = ? AND key = ?",
                                    (ns, key)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc
        return orjson.loads(row[0]) if row is not None else None

    async def kv_delete(self, ns: str, key: str) -> None:
        await self._w().submit(O.w_kv_delete, ns, key)

    async def kv_items(self, ns: str) -> list[tuple[str, dict]]:
        sql = "SELECT key, value FROM kv WHERE ns = ? ORDER BY key"
        return await self._scan(
            lambda c: [(k, orjson.loads(v)) for k, v in c.execute(sql, (ns,))])
