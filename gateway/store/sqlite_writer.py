"""One long-lived writer thread doing group commit for ``SqliteStore``.

Owns: the write queue, the writer thread and its connection, batching, commit, waking the
trio tasks that wait for a commit, and the writer's statistics.

Rules:
- Trio tasks put ops into a thread-safe FIFO; the writer takes every queued op (up to
  ``max_batch``) into one ``BEGIN IMMEDIATE … COMMIT`` (one fsync with
  ``synchronous=FULL``), then wakes all the waiters of that batch with ONE
  ``run_sync_soon`` call. No thread hop per statement.
- Ops run in queue order, so writes from one task are applied in the order issued.
- Ops may carry a coalescing ``key``: when several ops with the same key are in one
  batch, only the last one runs (the earlier ones succeed with ``None``). Use it only for
  whole-value overwrites (``save_message`` of a full row).
- An op's function runs on the writer thread with the writer connection and returns the
  op's result; it must not commit.
- Cancelling a waiting task does not retract its op: the write may still commit.
- ``on_done(outcome)`` callbacks must not unwrap the outcome: a successful op without a
  waiting task gets the shared ``NOWAIT_OK`` (no object per op on the hot path).

Error handling:
- ``sqlite3.IntegrityError`` (a constraint) fails that op only: SQLite rolls back just the
  failing statement, so op functions check before they write when they have several
  statements. Any other exception from an op function fails that op only too.
- Any other ``sqlite3.Error`` (disk full, I/O error, lock timeout) or a failed COMMIT rolls
  the whole batch back; every op of the batch gets a ``StoreError`` (nowait ops are lost
  and counted in ``stats.errors``). The writer keeps running and serves the next batch.
- Once ``stop`` is called, new ops raise ``StoreError``; ops queued before are committed.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import outcome
import trio

from gateway.store.base import StoreError

log = logging.getLogger("gateway.store")

#: upper bounds (seconds) of the commit-duration histogram buckets (last one is +Inf)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                  float("inf"))


@dataclass
class WriterStats:
    commits: int = 0                    # successful transactions
    ops: int = 0                        # ops committed
    nowait_ops: int = 0                 # of which had no waiter
    last_batch: int = 0
    max_batch: int = 0
    errors: int = 0                     # failed batches (rolled back)
    op_errors: int = 0                  # single ops refused (constraint, bad input)
    coalesced: int = 0                  # ops superseded by a later op in the same batch
    last_error: str = ""
    commit_seconds_sum: float = 0.0
    commit_seconds_count: int = 0
    #: non-cumulative counts per ``COMMIT_BUCKETS`` bound
    commit_seconds_buckets: list[int] = field(default_factory=lambda: [0] * len(COMMIT_BUCKETS))
    recent_commit_seconds: deque = field(default_factory=lambda: deque(maxlen=256))

    def observe(self, seconds: float) -> None:
        self.commit_seconds_sum += seconds
        self.commit_seconds_count += 1
        self.recent_commit_seconds.append(seconds)
        for i, bound in enumerate(COMMIT_BUCKETS):
            if seconds <= bound:
                self.commit_seconds_buckets[i] += 1
                break


class Op:
    __slots__ = ("fn", "args", "task", "on_done", "key", "outcome")

    def __init__(self, fn: Callable, args: tuple, task, on_done=None, key=None) -> None:
        self.fn = fn
        self.args = args
        self.key = key              # coalescing key, or None
        self.task = task            # trio task waiting for the commit, or None
        self.on_done = on_done      # callable(outcome) run on the trio thread, or None
        self.outcome: outcome.Outcome | None = None




def run_batch(conn: sqlite3.Connection, items: list) -> tuple[list, str | None]:
    """Run ``items`` ((fn, args) or None = skip) in one transaction on ``conn``.

    Returns (results, None) after COMMIT, each result ``("ok", value)`` or
    ``("err", message)`` for an op that failed alone; or ([], message) when the whole
    batch was rolled back. Used by the writer thread and by the writer process alike.
    """
    results: list = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        for item in items:
            if item is None:
                results.append(None)
                continue
            fn, args = item
            try:
                results.append(("ok", fn(conn, *args)))
            except sqlite3.IntegrityError as exc:
                results.append(("err", f"constraint failed: {exc}"))
            except sqlite3.Error:
                raise
            except Exception as exc:  # noqa: BLE001 - a bad op fails alone
                log.exception("store op %s failed", getattr(fn, "__name__", fn))
                results.append(("err", f"{type(exc).__name__}: {exc}"))
        conn.execute("COMMIT")
    except Exception as exc:  # sqlite3.Error (disk full, I/O, locked) or a bug here
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("rollback failed")
        return [], str(exc) or type(exc).__name__
    return results, None


def batch_items(batch: list[Op]) -> list:
    """What ``run_batch`` runs for ``batch``: (fn, args), or None for an op that is
    skipped (the stop sentinel, or superseded by a later op with the same key)."""
    last = {op.key: i for i, op in enumerate(batch) if op.key is not None}
    return [None if op.fn is _stop or (op.key is not None and last[op.key] != i)
            else (op.fn, op.args) for i, op in enumerate(batch)]


#: the outcome handed to the ``on_done`` of an op nobody waits for when it succeeded:
#: one shared object (its value is discarded; ``on_done`` callbacks must not unwrap)
NOWAIT_OK = outcome.Value(None)


def settle(batch: list[Op], items: list, results: list, failure: str | None,
           stats: WriterStats, on_commit, t0: float) -> None:
    """Give every op of a finished batch its outcome and update ``stats``."""
    if failure is not None:
        stats.errors += 1
        stats.last_error = failure
        log.error("store commit failed, %d ops rolled back: %s", len(batch), failure)
        for op in batch:       # one Outcome per op: an Outcome unwraps only once
            op.outcome = (outcome.Value(None) if op.fn is _stop
                          else outcome.Error(StoreError(f"commit failed: {failure}")))
        return
    nowait = coalesced = op_errors = 0
    Value = outcome.Value
    for op, item, res in zip(batch, items, results, strict=True):
        if op.task is None:
            nowait += 1
            if item is None:
                op.outcome = NOWAIT_OK
                coalesced += op.fn is not _stop
            elif res[0] == "ok":
                op.outcome = NOWAIT_OK
            else:
                op.outcome = outcome.Error(StoreError(res[1]))
                op_errors += 1
        elif item is None:
            op.outcome = Value(None)      # fresh: an Outcome unwraps only once
            coalesced += op.fn is not _stop
        elif res[0] == "ok":
            op.outcome = Value(res[1])
        else:
            op.outcome = outcome.Error(StoreError(res[1]))
            op_errors += 1
    dt = time.perf_counter() - t0
    n = len(batch)
    stats.commits += 1
    stats.ops += n
    stats.nowait_ops += nowait
    stats.coalesced += coalesced
    stats.op_errors += op_errors
    stats.last_batch = n
    if n > stats.max_batch:
        stats.max_batch = n
    stats.observe(dt)
    if on_commit is not None:
        try:
            on_commit(dt, n)
        except Exception:  # noqa: BLE001 - metrics never break a commit
            log.exception("store on_commit observer failed")


def wake(ops: list[Op]) -> None:
    """On the trio thread: run the ``on_done`` callbacks of settled ops and reschedule
    their waiting tasks."""
    reschedule = trio.lowlevel.reschedule
    for op in ops:
        on_done = op.on_done
        if on_done is not None:
            try:
                on_done(op.outcome)
            except Exception:  # noqa: BLE001 - a callback bug must not strand waiters
                log.exception("store on_done callback failed")
        task = op.task
        if task is not None:
            op.task = None
            reschedule(task, op.outcome)


def _stop(conn: sqlite3.Connection) -> None:  # sentinel op
    return None


class GroupCommitWriter:
    def __init__(self, conn: sqlite3.Connection, *, max_batch: int = 1000,
                 periodic: Callable[[], tuple[Callable, tuple]] | None = None,
                 periodic_interval: float = 60.0, name: str = "store-writer") -> None:
        """``periodic()`` returns the (fn, args) op added every ``periodic_interval`` s."""
        self._conn = conn
        self._q: queue.SimpleQueue[Op] = queue.SimpleQueue()
        self._max_batch = max_batch
        self._periodic = periodic
        self._periodic_interval = periodic_interval
        self._name = name
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.stats = WriterStats()
        #: optional ``fn(seconds, batch_size)`` called on the writer thread after each
        #: commit (metrics; prometheus_client is thread-safe); must be quick
        self.on_commit: Callable[[float, int], None] | None = None

    # -- trio side ------------------------------------------------------------------------
    def start(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        return self._q.qsize()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def submit_nowait(self, fn: Callable, *args, on_done=None, key=None) -> None:
        if self._stopping or self._thread is None:
            raise StoreError("store is closed")
        self._q.put(Op(fn, args, None, on_done, key))

    async def submit(self, fn: Callable, *args, key=None):
        """Queue ``fn(conn, *args)``; return its result once its batch has committed."""
        if self._stopping or self._thread is None:
            raise StoreError("store is closed")
        op = Op(fn, args, trio.lowlevel.current_task(), None, key)
        self._q.put(op)

        def abort(_raise_cancel):
            op.task = None
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    async def stop(self) -> None:
        """Commit everything queued so far, then end the thread."""
        if self._thread is None or self._stopping:
            return
        op = Op(_stop, (), trio.lowlevel.current_task())
        self._stopping = True
        self._q.put(op)

        def abort(_raise_cancel):
            op.task = None
            return trio.lowlevel.Abort.SUCCEEDED

        try:
            await trio.lowlevel.wait_task_rescheduled(abort)
        finally:
            await trio.to_thread.run_sync(self._thread.join)

    # -- writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        q = self._q
        next_periodic = time.monotonic() + self._periodic_interval
        stop = False
        try:
            while not stop:
                timeout = None
                if self._periodic is not None:
                    timeout = max(0.0, next_periodic - time.monotonic())
                batch: list[Op] = []
                try:
                    batch.append(q.get(timeout=timeout))
                except queue.Empty:
                    pass
                else:
                    stop = batch[0].fn is _stop
                    while not stop and len(batch) < self._max_batch:
                        try:
                            op = q.get_nowait()
                        except queue.Empty:
                            break
                        batch.append(op)
                        stop = op.fn is _stop
                if self._periodic is not None and time.monotonic() >= next_periodic:
                    fn, args = self._periodic()
                    batch.append(Op(fn, args, None))
                    next_periodic = time.monotonic() + self._periodic_interval
                if batch:
                    self._commit(batch)
        finally:
            try:
                self._conn.close()
            except sqlite3.Error:
                log.exception("closing the writer connection failed")

    def _commit(self, batch: list[Op]) -> None:
        t0 = time.perf_counter()
        items = batch_items(batch)
        results, failure = run_batch(self._conn, items)
        settle(batch, items, results, failure, self.stats, self.on_commit, t0)
        ops = [op for op in batch if op.task is not None or op.on_done is not None]
        if ops and self._token is not None:
            try:
                self._token.run_sync_soon(wake, ops)
            except trio.RunFinishedError:
                pass  # the trio run is gone (a crash-like exit); nobody is waiting
