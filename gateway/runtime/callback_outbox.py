"""Durable outbox of status callbacks: every status callback not yet answered 2xx (and
not yet given up) is recorded in the store's kv namespace ``cb``, so a crash loses none.

Owns: the ``cb`` records and the task that writes them. One record holds a *batch* of
callback events (key ``b<n>-<boot id>``; each item: idempotency token, kind, url,
method, params, account, attempt, wall time), so the store sees one write per batch,
not one per callback.

Rules:
- ``record(hook)`` when a status callback is enqueued, ``done(hook)`` when the receiver
  answered 2xx or the attempts are exhausted. Both are sync and O(1) on the hot path.
- Every ``TICK_S`` the pacer task writes: one new batch record with the callbacks
  recorded at least ``grace`` seconds ago (default ``GRACE_S``) that are not done yet —
  a receiver that answers within the grace costs no write at all; a rewrite of each
  batch some of whose callbacks finished since it was written (only the rest stays);
  a delete for each batch whose callbacks are all done. Writes of one batch are issued
  in order and the store applies writes in issue order.
- ``load()`` at start returns every recorded callback as a ``Hook`` with its original
  idempotency token and attempt count, oldest first; the sender enqueues them again.
  At least once: a callback answered after its batch's last write but before a crash
  is sent again, with the same token, so a receiver can deduplicate.

Gaps (documented, accepted): a record is written ``grace`` + up to ``TICK_S`` + one
group commit after the status change's save was issued: a crash inside that window
loses the callbacks of that window that were not answered yet (``grace=0`` narrows it
to a tick and a commit). With a shared Redis store the ``cb`` namespace is shared: a
gateway that starts re-sends callbacks other live gateways are still working on
(duplicates, same token).

Error handling: a failed write (``StoreError``) is logged; the batch is marked dirty
and written again at the next tick. The callbacks themselves are still attempted.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections import deque

import trio

from gateway.store.base import StoreError

log = logging.getLogger("gateway.webhooks")

NS = "cb"
GRACE_S = 0.25
TICK_S = 0.25


class _Batch:
    __slots__ = ("key", "hooks", "dirty", "written")

    def __init__(self, key: str, hooks: list) -> None:
        self.key = key
        self.hooks = hooks          # hooks not done yet (compacted at rewrite)
        self.dirty = True
        self.written = False


class CallbackOutbox:
    def __init__(self, store, token_of, grace: float = GRACE_S, tick: float = TICK_S) -> None:
        self.store = store
        self.token_of = token_of          # account sid -> auth token (None if unknown)
        self.grace = grace
        self.tick = tick
        self._new: deque[tuple[float, object]] = deque()   # (recorded at, hook)
        self._batch_of: dict[str, _Batch] = {}              # token -> its batch
        self._done_new: set[str] = set()                     # done before batching
        self._dirty: set[_Batch] = set()
        self._names = (f"b{n}-{secrets.token_hex(4)}" for n in itertools.count())
        self._wake = trio.Event()
        self.writes = 0

    # -- hot path -------------------------------------------------------------------------
    def record(self, hook) -> None:
        self._new.append((trio.current_time(), hook))
        if len(self._new) == 1:
            self._wake.set()

    def done(self, hook) -> None:
        batch = self._batch_of.pop(hook.idem, None)
        if batch is None:
            self._done_new.add(hook.idem)     # still in ``_new``: skipped at batching
            return
        batch.dirty = True
        self._dirty.add(batch)
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._new) + len(self._dirty)

    # -- writer ---------------------------------------------------------------------------
    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if not self._new and not self._dirty:
                self._wake = trio.Event()
                await self._wake.wait()
            await trio.sleep(self.tick)
            await self.flush(trio.current_time() - self.grace)

    async def flush(self, cutoff: float = float("inf")) -> None:
        """Write a batch of the callbacks recorded before ``cutoff`` and not done, then
        rewrite or delete the batches that changed."""
        new, done_new = self._new, self._done_new
        hooks = []
        while new and new[0][0] <= cutoff:
            hook = new.popleft()[1]
            if hook.idem in done_new:
                done_new.discard(hook.idem)
            else:
                hooks.append(hook)
        if hooks:
            batch = _Batch(next(self._names), hooks)
            for hook in hooks:
                self._batch_of[hook.idem] = batch
            self._dirty.add(batch)
        dirty, self._dirty = self._dirty, set()
        for batch in dirty:
            await self._write(batch)

    async def _write(self, batch: _Batch) -> None:
        batch_of = self._batch_of
        batch.hooks = [h for h in batch.hooks if batch_of.get(h.idem) is batch]
        batch.dirty = False
        try:
            if batch.hooks:
                await self.store.kv_put(NS, batch.key, {"items": [_item(h) for h in batch.hooks]})
                batch.written = True
            elif batch.written:
                await self.store.kv_delete(NS, batch.key)
            self.writes += 1
        except StoreError as exc:
            log.warning("status callback batch %s not written: %s", batch.key, exc)
            batch.dirty = True
            self._dirty.add(batch)

    # -- start ----------------------------------------------------------------------------
    async def load(self, hook_cls) -> list:
        """Every recorded callback as a ``hook_cls`` (``webhooks.Hook``), oldest first."""
        out = []
        for key, value in await self.store.kv_items(NS):
            hooks = []
            for v in value.get("items", []) if isinstance(value, dict) else []:
                try:
                    token = self.token_of(v["account"])
                    params = [(str(k), str(val)) for k, val in v["params"]]
                    hook = hook_cls(v["kind"], v["url"], v["method"], params, token or "",
                                    idem=v["idem"], attempt=int(v.get("attempt", 0)))
                    at = float(v.get("at", 0.0))
                except (KeyError, TypeError, ValueError):
                    log.warning("unreadable status callback record in %s dropped", key)
                    continue
                if not token:
                    log.warning("status callback %s: unknown account, dropped", v["idem"])
                    continue
                hooks.append(hook)
                out.append((at, hook))
            batch = _Batch(key, hooks)
            batch.written = True
            batch.dirty = False
            for hook in hooks:
                self._batch_of[hook.idem] = batch
            if not hooks:
                self._dirty.add(batch)        # nothing usable left: deleted at next tick
                self._wake.set()
        out.sort(key=lambda ah: ah[0])
        return [h for _, h in out]


def _item(hook) -> dict:
    account = ""
    for k, v in hook.params:
        if k == "AccountSid":
            account = v
            break
    return {"idem": hook.idem, "kind": hook.kind, "url": hook.url, "method": hook.method,
            "params": hook.params, "account": account, "attempt": hook.attempt,
            "at": time.time()}
