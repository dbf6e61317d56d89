"""The SQLite writer connection in a process of its own, driven from the event loop.

Why: the gateway's event loop and a writer *thread* share one GIL. With the loop busy,
every handoff of the GIL to the writer waits for the loop's next blocking call, so
commits stretch to milliseconds and API latency follows. Here the writer connection
lives in a child process (its own interpreter, the second core) and the event loop talks
to it through two pipes: no thread, no GIL handoff.

Rules (the same as ``sqlite_writer.GroupCommitWriter``, which this replaces when
``SqliteStore(writer="process")``):
- Trio tasks queue ops; one committer task ships every queued op (up to ``max_batch``)
  as one batch, the child runs ``sqlite_writer.run_batch`` (one ``BEGIN IMMEDIATE …
  COMMIT``, WAL, ``synchronous=FULL``) and answers; then every waiter of that batch is
  rescheduled. While a batch is in the child, new ops gather for the next one.
- Ops run in queue order; ops with the same coalescing ``key`` in one batch: only the
  last runs. Op functions must be module-level (pickled by reference), args plain data.
- The child exits when its input pipe closes (parent gone, also after ``kill -9``) or on
  the stop sentinel; a batch it already received may still commit (at least once).

Error handling: a failed batch fails all its ops with ``StoreError`` (the writer goes on
with the next batch). An op that cannot be pickled fails alone. When the child dies, the
batch in flight fails (``StoreError``: it may or may not have committed, so nothing is
retried silently) and the next batch starts a new child, at most ``MAX_RESTARTS`` times a
minute; past that every op fails, the watchdog's ``ping`` fails, /healthz says failing
and systemd restarts the service.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import struct
import subprocess
import time
from collections import deque
from collections.abc import Callable

import trio

from gateway.io import childproc
from gateway.store.base import StoreError
from gateway.store.sqlite_writer import Op, WriterStats, batch_items, settle, wake

log = logging.getLogger("gateway.store")

_LEN = struct.Struct("!I")
MAX_RESTARTS = 5          # writer process restarts per minute before the store gives up


# -- child ------------------------------------------------------------------------------
def _read_exact(fd: int, n: int) -> bytes | None:
    parts, need = [], n
    while need:
        chunk = os.read(fd, need)
        if not chunk:
            return None
        parts.append(chunk)
        need -= len(chunk)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def child_main(path: str, rfd: int, wfd: int) -> None:
    """Entry point of the writer process: batches in on ``rfd``, results out on ``wfd``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from gateway.store import sqlite_schema as S
    from gateway.store.sqlite_writer import run_batch

    db = S.connect(path, writer=True)
    try:
        while True:
            head = _read_exact(rfd, 4)
            if head is None:
                return
            body = _read_exact(rfd, _LEN.unpack(head)[0])
            if body is None:
                return
            items = pickle.loads(body)
            if items is None:
                _write_all(wfd, _frame(([], None)))
                return
            _write_all(wfd, _result_frame(run_batch(db, items)))
    finally:
        db.close()


def _result_frame(answer: tuple[list, str | None]) -> bytes:
    """Frame an answer; a result that does not pickle becomes that op's error."""
    try:
        return _frame(answer)
    except (pickle.PicklingError, TypeError, AttributeError):
        results, failure = answer
        safe = []
        for res in results:
            try:
                pickle.dumps(res)
                safe.append(res)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                safe.append(("err", f"result not transferable: {exc}"))
        return _frame((safe, failure))


def _frame(obj) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


# -- parent -----------------------------------------------------------------------------
class ProcessWriter:
    """``GroupCommitWriter``'s interface, with the connection in a child process."""

    def __init__(self, path: str, *, max_batch: int = 1000,
                 periodic: Callable[[], tuple[Callable, tuple]] | None = None,
                 periodic_interval: float = 60.0) -> None:
        self.path = path
        self._max_batch = max_batch
        self._periodic = periodic
        self._periodic_interval = periodic_interval
        self._q: deque[Op] = deque()
        self._wake = trio.lowlevel.ParkingLot()
        self._proc: subprocess.Popen | None = None
        self._to_child: int | None = None
        self._from_child: int | None = None
        self._stopping = False
        self._done = trio.Event()
        self.dead = False
        self._restarts: list[float] = []
        self.stats = WriterStats()
        self.on_commit: Callable[[float, int], None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def queue_depth(self) -> int:
        return len(self._q)

    @property
    def running(self) -> bool:
        return self._proc is not None and not self._stopping and not self.dead

    def start(self) -> None:
        self._spawn()
        trio.lowlevel.spawn_system_task(self._committer, name="store-writer")

    def _spawn(self) -> None:
        self._proc, self._from_child, self._to_child = childproc.spawn(
            "gateway.store.sqlite_proc", "child_main", self.path)
        self.dead = False

    # -- queueing -------------------------------------------------------------------------
    def submit_nowait(self, fn: Callable, *args, on_done=None, key=None) -> None:
        if self._stopping or self._proc is None:
            raise StoreError("store is closed")
        self._q.append(Op(fn, args, None, on_done, key))
        if self._wake:
            self._wake.unpark()

    async def submit(self, fn: Callable, *args, key=None):
        if self._stopping or self._proc is None:
            raise StoreError("store is closed")
        op = Op(fn, args, trio.lowlevel.current_task(), None, key)
        self._q.append(op)
        if self._wake:
            self._wake.unpark()

        def abort(_raise_cancel):
            op.task = None
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    async def stop(self) -> None:
        """Commit everything queued so far, then stop the child."""
        if self._proc is None or self._stopping:
            return
        self._stopping = True
        if self._wake:
            self._wake.unpark()
        with trio.CancelScope(shield=True):
            await self._done.wait()
            await trio.to_thread.run_sync(self._reap)

    def _reap(self) -> None:
        childproc.reap(self._proc)
        childproc.close(self._to_child, self._from_child)

    # -- committer ------------------------------------------------------------------------
    async def _committer(self) -> None:
        next_periodic = trio.current_time() + self._periodic_interval
        try:
            while True:
                if not self._q:
                    if self._stopping:
                        break
                    with trio.move_on_at(next_periodic if self._periodic else float("inf")):
                        await self._wake.park()
                batch = [self._q.popleft() for _ in range(min(len(self._q), self._max_batch))]
                if self._periodic is not None and trio.current_time() >= next_periodic:
                    fn, args = self._periodic()
                    batch.append(Op(fn, args, None))
                    next_periodic = trio.current_time() + self._periodic_interval
                if batch:
                    await self._commit(batch)
            if not self.dead:
                await self._roundtrip(_frame(None))
        finally:
            self._done.set()

    @staticmethod
    def _encode(items: list) -> tuple[bytes, list[int]]:
        """The frame for ``items``, and the indexes of ops that cannot cross to the child
        (sent as skipped; they fail alone). Pickled once in the common case."""
        try:
            return _frame(items), []
        except (pickle.PicklingError, TypeError, AttributeError):
            pass
        bad = []
        for i, item in enumerate(items):
            try:
                pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
            except (pickle.PicklingError, TypeError, AttributeError):
                bad.append(i)
        for i in bad:
            items[i] = None
        return _frame(items), bad

    def _restart(self) -> None:
        """Start a new child after one died, at most ``MAX_RESTARTS`` per minute."""
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < 60.0]
        if len(self._restarts) >= MAX_RESTARTS or self._stopping:
            return
        self._restarts.append(now)
        old = self._proc
        childproc.close(self._to_child, self._from_child)
        if old is not None and old.poll() is None:
            old.kill()
        try:
            self._spawn()
            log.warning("store writer process restarted pid=%s", self.pid)
        except OSError as exc:
            log.error("store writer process could not be restarted: %s", exc)

    async def _roundtrip(self, data: bytes):
        await childproc.write_all(self._to_child, data)
        head = await childproc.read_exact(self._from_child, 4)
        return pickle.loads(await childproc.read_exact(self._from_child, _LEN.unpack(head)[0]))

    async def _commit(self, batch: list[Op]) -> None:
        t0 = time.perf_counter()
        items = batch_items(batch)
        failure: str | None
        data, bad = self._encode(items)
        if self.dead:
            self._restart()
        if self.dead:
            results, failure = [], "store writer process is gone"
        else:
            try:
                results, failure = await self._roundtrip(data)
            except (EOFError, OSError, pickle.PickleError) as exc:
                self.dead = True
                log.error("store writer process died: %s", exc)
                results, failure = [], f"store writer process died: {exc}"
        if failure is None:
            for i in bad:
                results[i] = ("err", "op is not transferable to the writer process")
                items[i] = (None, None)
        settle(batch, items, results, failure, self.stats, self.on_commit, t0)
        wake(batch)
