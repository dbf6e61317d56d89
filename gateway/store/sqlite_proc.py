"""The SQLite writer connection in a process of its own.

Why: the gateway's event loop and a writer *thread* share one GIL. With the loop busy,
every ``sqlite3_step`` the writer makes hands the GIL back and forth, so commits stretch
to milliseconds and API latency follows. In a child process the writer has its own
interpreter and the second core; the parent's writer thread only ships each batch over a
pipe (one pickle + one write) and blocks in ``recv`` with the GIL released.

Rules:
- The child runs exactly ``sqlite_writer.run_batch`` on its own connection (same pragmas:
  WAL, ``synchronous=FULL``); results travel back in batch order. Durability is the
  child's COMMIT, acknowledged only after it returned.
- Op functions must be picklable by reference (module-level ``_w_*`` functions) with
  plain-data args.
- The child exits when the pipe closes (parent gone, also after ``kill -9``) or on the
  ``None`` sentinel; a batch it already received may still commit (at least once).

Error handling: a dead child turns every later batch into a failed batch
(``StoreError`` for its ops); the watchdog's ``ping`` fails, /healthz says failing, and
systemd restarts the service. Nothing is retried silently.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal

log = logging.getLogger("gateway.store")


def _child_main(conn, path: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from gateway.store import sqlite_schema as S
    from gateway.store.sqlite_writer import run_batch

    db = S.connect(path, writer=True)
    try:
        while True:
            try:
                items = conn.recv()
            except (EOFError, OSError):
                return
            if items is None:
                conn.send(([], None))
                return
            conn.send(run_batch(db, items))
    finally:
        db.close()


class WriterProcess:
    """Parent side: ``run_batch(items)`` forwards to the child and returns its answer."""

    def __init__(self, path: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, args=(child, path),
                                 name="gateway-store-writer", daemon=True)
        self._proc.start()
        child.close()
        self.dead = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def run_batch(self, items: list) -> tuple[list, str | None]:
        if self.dead:
            return [], "store writer process is gone"
        try:
            self._conn.send(items)
            return self._conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            self.dead = True
            log.error("store writer process died: %s", exc)
            return [], f"store writer process died: {exc}"

    def close(self, timeout: float = 10.0) -> None:
        if not self.dead:
            try:
                self._conn.send(None)
                self._conn.recv()
            except (EOFError, OSError):
                pass
        self._conn.close()
        self._proc.join(timeout)
        if self._proc.is_alive():
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.join()
