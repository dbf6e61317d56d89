"""Durability of status callbacks: no callback of a committed status is lost, also across
``kill -9``, at almost no write cost.

Owns: clearing message status callbacks once answered, the restore list handed to the
sender at start, and the flush task of the store's buffered due clears.

How (``gateway.store.due``): ``Message.advance`` puts the new status into ``msg.due``
and the store writes it in the same statement/script as the status itself, so the
obligation is durable exactly when the status is. Nothing is written when a callback
is enqueued. When it is answered 2xx or given up, ``done`` buffers a clear of that
token; the message's next save carries it (no extra write), and every ``TICK_S`` the
``run`` task writes the remaining clears as one op (``store.flush_due``: one
``executemany`` / one script). The same flush carries the MO acknowledgements of
``runtime.inbound`` (``mo:`` tokens).

Rules:
- Status callbacks have a stable idempotency token per (message, status)
  (``callback_token``), so a callback sent again after a crash carries the token of
  its earlier attempts and a receiver can deduplicate.
- ``restore(hooks)`` (at start, by ``Messaging.restore_callbacks`` from
  ``store.messages_due``) before the sender runs; ``load`` returns them (plus the
  records a previous version left in kv ``cb``) and the sender enqueues them before it
  reports started. Attempt counts start again at 0 after a restart.
- ``record``/``done`` are sync and O(1) on the hot path.

Gaps (accepted): at least once, not exactly once — a callback answered less than one
tick (+ one commit) before a crash is sent again. Cluster: a gateway that loses the
``deliver_callback`` race for a (message, status) leaves its token until a restart of
some gateway sends it again (same token).

Error handling: a failed flush (``StoreError``) is logged; the clears stay buffered and
go with the next tick. The callbacks themselves are unaffected.
"""

from __future__ import annotations

import hashlib
import logging

import trio

from gateway.store.base import StoreError

log = logging.getLogger("gateway.webhooks")

LEGACY_NS = "cb"          # kv batches written by the previous outbox (read once, deleted)
TICK_S = 0.25


def callback_token(sid: str, status: str) -> str:
    """The I-Twilio-Idempotency-Token of a message's status callback: 32 hex digits,
    the same on every attempt, on every gateway and after a restart."""
    return hashlib.blake2b(f"{sid}|{status}".encode(), digest_size=16).hexdigest()


def _message_event(hook) -> tuple[str, str] | None:
    params = hook.params
    if len(params) > 6:     # fast path: the order of ``Messaging.callback_hook``
        a, b = params[4], params[6]
        if a[0] == "MessageSid" and b[0] == "MessageStatus" and a[1] and b[1]:
            return a[1], b[1]
    sid = status = None
    for k, v in hook.params:
        if k == "MessageSid":
            sid = v
        elif k == "MessageStatus":
            status = v
    return (sid, status) if sid and status else None


class CallbackOutbox:
    def __init__(self, store, token_of, tick: float = TICK_S) -> None:
        self.store = store
        self.token_of = token_of          # account sid -> auth token (None if unknown)
        self.tick = tick
        self._restored: list = []
        self._legacy: dict[str, str] = {}          # idem -> legacy kv key
        self._legacy_left: dict[str, int] = {}     # legacy kv key -> hooks not done
        self._legacy_gone: list[str] = []
        self._wake = trio.Event()
        self.flushes = 0

    # -- hot path -------------------------------------------------------------------------
    def record(self, hook) -> None:
        """A status callback was enqueued: nothing to write (the message holds it)."""

    def done(self, hook) -> None:
        """Answered 2xx or given up: clear its due token (buffered)."""
        event = _message_event(hook)
        if event is not None:
            self.store.clear_due_nowait(event[0], event[1])
        if self._legacy:
            key = self._legacy.pop(hook.idem, None)
            if key is not None:
                self._legacy_left[key] -= 1
                if not self._legacy_left[key]:
                    del self._legacy_left[key]
                    self._legacy_gone.append(key)
        wake = self._wake
        if not wake.is_set():
            wake.set()

    def settle(self, sid: str, status: str) -> None:
        """A status that will get no callback after all (no auth token): clear it."""
        self.store.clear_due_nowait(sid, status)
        self._wake.set()

    @property
    def backlog(self) -> int:
        return self.store.due_backlog + len(self._legacy_gone)

    # -- writer ---------------------------------------------------------------------------
    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if not self.backlog:
                self._wake = trio.Event()
                with trio.move_on_after(self.tick * 4):   # clears buffered by others (MO acks)
                    await self._wake.wait()
                if not self.backlog:
                    continue
            await trio.sleep(self.tick)
            await self.flush()

    async def flush(self) -> None:
        """Write every buffered due clear (callbacks, MO acks) now."""
        try:
            await self.store.flush_due()
            self.flushes += 1
            gone, self._legacy_gone = self._legacy_gone, []
            for key in gone:
                await self.store.kv_delete(LEGACY_NS, key)
        except StoreError as exc:
            log.warning("due clears not written (retried next tick): %s", exc)

    # -- start ----------------------------------------------------------------------------
    def restore(self, hooks: list) -> None:
        """Callbacks found due in the store at start, oldest first (sent by ``load``)."""
        self._restored.extend(hooks)

    async def load(self, hook_cls) -> list:
        """The restored callbacks, then those of the previous outbox's kv records."""
        out, self._restored = self._restored, []
        for key, value in await self.store.kv_items(LEGACY_NS):
            items = value.get("items", []) if isinstance(value, dict) else []
            n = 0
            for v in items:
                try:
                    token = self.token_of(v["account"])
                    params = [(str(k), str(val)) for k, val in v["params"]]
                    hook = hook_cls(v["kind"], v["url"], v["method"], params, token or "",
                                    idem=v["idem"], attempt=int(v.get("attempt", 0)))
                except (KeyError, TypeError, ValueError):
                    continue
                if token:
                    out.append(hook)
                    self._legacy[hook.idem] = key
                    n += 1
            if n:
                self._legacy_left[key] = n
            else:
                self._legacy_gone.append(key)
        if self._legacy_gone:
            self._wake.set()
        return out
