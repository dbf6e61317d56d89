"""Call queues: ``<Enqueue>``, ``<Dial><Queue>`` and what the Queues API reads and changes.

Owns: ``QueueHub`` (the account's queues by SID and by friendly name; their config is
kept in the store's kv namespace ``queue`` — ``{sid, account_sid, friendly_name,
max_size, date_created, date_updated}``, loaded lazily on first use; members are live
calls and exist in memory only), ``CallQueue`` and ``Member``.

Rules (Twilio's ``<Enqueue>``, ``<Queue>`` noun, Queue and Member resources):
- ``<Enqueue>name</Enqueue>`` creates the queue when the account has none of that name
  (``max_size`` ``DEFAULT_MAX_SIZE``). A full queue: ``QueueResult=queue-full`` at once.
- While queued the caller hears ``waitUrl`` (``queue_wait.play_queue_wait``: re-fetched
  each time its document ends, with ``QueuePosition``, ``QueueSid``, ``QueueTime``,
  ``AvgQueueTime``, ``CurrentQueueSize``, ``MaxQueueSize``); ``<Leave>`` there ->
  ``leave``; no ``waitUrl``: silence (no built-in hold music). Hangup -> ``hangup``.
- ``<Dial><Queue>``: takes the oldest member (waiting up to the ``<Dial timeout>`` for
  one to arrive; a queue name the account does not have -> ``DialCallStatus=failed``,
  nobody arrived -> ``no-answer``), stops its wait audio, runs the ``<Queue url>``
  document on the *member's* leg (``QueueSid``, ``QueueTime``, ``DequeingCallSid``
  added), then bridges the two legs (``leg.bridge``) until either hangs up,
  ``timeLimit`` or ``hangupOnStar``. The member's ``<Enqueue>`` then ends ``bridged``;
  ``DialCallSid`` is the member's call SID.
- Members API ``Url``: the member leaves the queue and runs that document
  (``EnqueueResult.redirect``; the ``<Enqueue action>`` is not requested).
- ``average_wait_time``: mean seconds waited by the current members at request time.
Error handling: the dequeuer always releases the member (``done`` in ``finally``), so
a crashed bridge never leaves a call waiting forever; a store write that fails is
logged (the live queue still works).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

import trio

from gateway.core import call as C
from gateway.core import ids
from gateway.store.base import StoreError
from gateway.voice.callleg import CallEnded, DialResult, EnqueueResult
from gateway.voice.interpreter import Next, call_params
from gateway.voice.leg import bridge
from gateway.voice.queue_wait import play_queue_wait

log = logging.getLogger("gateway.voice")

NS = "queue"
DEFAULT_MAX_SIZE = 1000          # Twilio: default 1000, at most 5000
MAX_MAX_SIZE = 5000


class QueueNotEmpty(Exception):
    pass


class Member:
    def __init__(self, leg, wall: float) -> None:
        self.leg = leg
        self.call_sid = leg.call.sid
        self.date_enqueued = wall
        self.t0 = trio.current_time()
        self.claim: tuple | None = None       # ("dial", dequeuer sid) | ("redirect", url, method)
        self.claimed = trio.Event()
        self.stopped = trio.Event()           # the member's wait audio has stopped
        self.done = trio.Event()              # the dequeuer is finished with it
        self.queue_time = 0

    def waited(self) -> int:
        return int(trio.current_time() - self.t0)


class CallQueue:
    def __init__(self, rec: dict) -> None:
        self.sid: str = rec["sid"]
        self.account_sid: str = rec["account_sid"]
        self.friendly_name: str = rec["friendly_name"]
        self.max_size: int = int(rec.get("max_size", DEFAULT_MAX_SIZE))
        self.date_created: float = rec["date_created"]
        self.date_updated: float = rec["date_updated"]
        self.members: OrderedDict[str, Member] = OrderedDict()
        self.changed = trio.Event()

    def record(self) -> dict:
        return {"sid": self.sid, "account_sid": self.account_sid,
                "friendly_name": self.friendly_name, "max_size": self.max_size,
                "date_created": self.date_created, "date_updated": self.date_updated}

    def _poke(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def waiting(self) -> list[Member]:
        """Members not yet taken, oldest first."""
        return [m for m in self.members.values() if m.claim is None and not m.leg.ended]

    def position(self, m: Member) -> int:
        return next((i for i, x in enumerate(self.members.values(), 1) if x is m), 0)

    def average_wait(self) -> int:
        ms = list(self.members.values())
        return int(sum(m.waited() for m in ms) / len(ms)) if ms else 0


class QueueHub:
    def __init__(self, store=None, wall=time.time) -> None:
        self.store, self.wall = store, wall
        self.queues: dict[str, CallQueue] = {}
        self._loaded = False

    # -- records --------------------------------------------------------------------
    async def load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.store is not None:
            for _, d in await self.store.kv_items(NS):
                if d["sid"] not in self.queues:
                    self.queues[d["sid"]] = CallQueue(d)

    async def _save(self, q: CallQueue) -> None:
        if self.store is None:
            return
        try:
            await self.store.kv_put(NS, q.sid, q.record())
        except StoreError:
            log.exception("queue sid=%s: store write failed", q.sid)

    async def list(self, account_sid: str) -> list[CallQueue]:
        await self.load()
        rows = [q for q in self.queues.values() if q.account_sid == account_sid]
        rows.sort(key=lambda q: (q.date_created, q.sid))
        return rows

    async def get(self, account_sid: str, sid: str) -> CallQueue | None:
        await self.load()
        q = self.queues.get(sid)
        return q if q is not None and q.account_sid == account_sid else None

    async def by_name(self, account_sid: str, name: str) -> CallQueue | None:
        await self.load()
        return next((q for q in self.queues.values()
                     if q.account_sid == account_sid and q.friendly_name == name), None)

    async def create(self, account_sid: str, name: str,
                     max_size: int = DEFAULT_MAX_SIZE) -> CallQueue:
        await self.load()
        now = self.wall()
        q = CallQueue({"sid": ids.new_sid("QU"), "account_sid": account_sid,
                       "friendly_name": name, "max_size": max_size,
                       "date_created": now, "date_updated": now})
        self.queues[q.sid] = q
        await self._save(q)
        return q

    async def update(self, q: CallQueue, *, name: str | None = None,
                     max_size: int | None = None) -> None:
        if name is not None:
            q.friendly_name = name
        if max_size is not None:
            q.max_size = max_size
        q.date_updated = self.wall()
        await self._save(q)

    async def delete(self, q: CallQueue) -> None:
        if q.members:
            raise QueueNotEmpty(q.sid)
        self.queues.pop(q.sid, None)
        if self.store is not None:
            await self.store.kv_delete(NS, q.sid)

    def redirect(self, q: CallQueue, call_sid: str, url: str, method: str) -> Member | None:
        """Members API ``Url``: dequeue ``call_sid`` (or ``Front``) to ``url``."""
        m = (q.waiting() or [None])[0] if call_sid == "Front" else q.members.get(call_sid)
        if m is None or m.claim is not None:
            return None
        m.claim = ("redirect", url, method)
        self._take(q, m)
        return m

    @staticmethod
    def _take(q: CallQueue, m: Member) -> None:
        """``m`` leaves the queue now (it is being dequeued)."""
        m.queue_time = m.waited()
        q.members.pop(m.call_sid, None)
        q._poke()
        m.claimed.set()

    # -- <Enqueue> ------------------------------------------------------------------
    async def enqueue(self, leg, verb, fetch) -> EnqueueResult:
        account = leg.call.account_sid
        q = await self.by_name(account, verb.name) or await self.create(account, verb.name)
        if len(q.members) >= q.max_size:
            return EnqueueResult("queue-full", q.sid, 0)
        m = Member(leg, self.wall())
        q.members[m.call_sid] = m
        q._poke()
        outcome = "hangup"
        try:
            async with trio.open_nursery() as n:
                async def hold() -> None:
                    nonlocal outcome
                    try:
                        if verb.wait_url and await play_queue_wait(
                                leg, verb.wait_url, verb.wait_url_method, fetch,
                                lambda: self._wait_params(q, m)):
                            outcome = "leave"
                            n.cancel_scope.cancel()
                            return
                        await leg.pause(10.0 ** 7)
                    except CallEnded:
                        n.cancel_scope.cancel()

                async def taken() -> None:
                    await m.claimed.wait()
                    n.cancel_scope.cancel()
                n.start_soon(hold)
                n.start_soon(taken)
            if m.claim is None:
                m.queue_time = m.waited()
            else:                                   # a claim wins over a <Leave>
                if m.claim[0] == "redirect":
                    return EnqueueResult("redirected", q.sid, m.queue_time,
                                         redirect=(m.claim[1], m.claim[2]))
                m.stopped.set()
                await m.done.wait()
                outcome = "bridged"
            return EnqueueResult(outcome, q.sid, m.queue_time)
        finally:
            m.stopped.set()
            q.members.pop(m.call_sid, None)
            q._poke()

    def _wait_params(self, q: CallQueue, m: Member) -> list[tuple[str, str]]:
        return call_params(m.leg.call) + [
            ("QueueSid", q.sid), ("QueuePosition", str(q.position(m))),
            ("QueueTime", str(m.waited())), ("AvgQueueTime", str(q.average_wait())),
            ("CurrentQueueSize", str(len(q.members))), ("MaxQueueSize", str(q.max_size))]

    # -- <Dial><Queue> --------------------------------------------------------------
    async def dequeue(self, svc, leg, noun, *, timeout: float, time_limit: float,
                      hangup_on_star: bool) -> DialResult:
        q = await self.by_name(leg.call.account_sid, noun.name)
        if q is None:
            log.info("call sid=%s <Dial><Queue>%s: no such queue", leg.call.sid, noun.name)
            return DialResult(C.FAILED, None, 0)
        m = None
        with trio.move_on_after(timeout):
            while (m := (q.waiting() or [None])[0]) is None:
                await leg.guard(q.changed.wait)
        if m is None:
            return DialResult(C.NO_ANSWER, None, 0, queue_sid=q.sid)
        m.claim = ("dial", leg.call.sid)
        self._take(q, m)
        duration = 0
        try:
            await leg.guard(m.stopped.wait)
            if noun.url and not m.leg.ended:
                params = [("QueueSid", q.sid), ("QueueTime", str(m.queue_time)),
                          ("DequeingCallSid", leg.call.sid)]
                await svc._interpreter(m.leg).play_document(Next(noun.url, noun.method, params))
            t0 = trio.current_time()
            if not (m.leg.ended or leg.ended):
                await bridge(leg, m.leg, time_limit=time_limit, hangup_on_star=hangup_on_star)
            duration = int(trio.current_time() - t0)
        finally:
            m.done.set()
        return DialResult(C.COMPLETED, m.call_sid, duration, queue_sid=q.sid)
