"""Per-sender FIFO queues drained at each sender's rate, without scanning idle senders.

Owns: the in-memory order of outbound work per sender number (``From``). Items are
opaque to it (a message sid, a record); their cost is ``segments``.

Rules:
- One FIFO (``collections.deque``) and one token bucket per sender. The bucket's rate is
  the sender class rate in segments/s; its burst is ``max(1, rate)`` segments (one
  second of traffic: a short code may send 100 at once, a long code one per second).
  An N-segment message costs N tokens; a message larger than the burst goes when the
  bucket is full and leaves it in debt (see ``rates.TokenBucket``).
- Capacity is counted in segments (``rate * 3600 * queue_hours`` from the config);
  ``push`` returns False when the message would not fit (the API answers 21611).
  ``push_front`` (resend) never refuses: the message was admitted before.
- A heap of ``(next_eligible_time, tiebreak, sender)`` holds *only* senders with queued
  work, one live entry each; stale entries are skipped lazily and the heap is
  compacted when they pile up. Cost per pop is O(log active senders): thousands of idle
  numbers cost nothing.
- ``pop_ready`` takes one message per sender per turn and puts the sender back behind
  every sender already waiting, so senders interleave fairly and never slow each other
  down; within a sender, order is FIFO.
- Time is injected (``now`` in seconds, monotonic). Calls without ``now`` use the
  latest time seen.
- Rate gates: each sender's bucket comes from a ``rate_gate.GateFactory`` (default
  ``local_gate``: an in-process ``TokenBucket``), given at construction (``gates=``) or
  by ``set_gate_factory`` (a Redis-backed gateway: ``runtime.cluster_rates``), which
  also replaces the gates of senders already known.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from .rate_gate import GateFactory, RateGate, local_gate


class _Sender:
    __slots__ = ("number", "cls", "rate", "capacity", "queue", "segments", "bucket", "token")

    def __init__(self, number: str, cls: str, rate: float, capacity: int,
                 bucket: RateGate) -> None:
        self.number = number
        self.cls = cls
        self.rate = rate
        self.capacity = capacity
        self.queue: deque[tuple[Any, int, float]] = deque()  # (item, segments, enqueued_at)
        self.segments = 0
        self.bucket = bucket
        self.token: int | None = None  # tiebreak of the live heap entry, None = not in heap


class SenderScheduler:
    def __init__(self, now: float = 0.0, gates: GateFactory | None = None) -> None:
        self._gates: GateFactory = gates or local_gate
        self._senders: dict[Hashable, _Sender] = {}
        self._heap: list[tuple[float, int, _Sender]] = []
        self._tiebreak = itertools.count()
        self._active: set[_Sender] = set()
        self._class_segments: dict[str, int] = {}
        self._now = float(now)

    # -- configuration ------------------------------------------------------------------

    def add_sender(
        self, number: str, rate: float, capacity_segments: int, sender_class: str = "long_code"
    ) -> None:
        """Register a sender, or update its rate/capacity/class (config reload)."""
        s = self._senders.get(number)
        if s is None:
            bucket = self._gates(number, rate, max(1.0, rate), self._now)
            self._senders[number] = _Sender(
                number, sender_class, rate, int(capacity_segments), bucket
            )
            self._class_segments.setdefault(sender_class, 0)
            return
        if s.cls != sender_class:
            self._class_segments[s.cls] -= s.segments
            self._class_segments[sender_class] = (
                self._class_segments.get(sender_class, 0) + s.segments
            )
            s.cls = sender_class
        s.rate = rate
        s.capacity = int(capacity_segments)
        s.bucket.set_rate(rate, max(1.0, rate), self._now)
        if s.queue:
            self._schedule(s, self._now)

    def set_gate_factory(self, gates: GateFactory, now: float | None = None) -> None:
        """Use ``gates`` for every sender from now on, known ones included (their old
        gate's state is dropped; queued senders are rescheduled on the new gate)."""
        t = self._tick(now)
        self._gates = gates
        for number, s in self._senders.items():
            s.bucket = gates(number, s.rate, max(1.0, s.rate), t)
            if s.queue:
                self._schedule(s, t)
        self._maybe_compact()

    def refresh(self, number: str, now: float | None = None) -> None:
        """The sender's gate changed from outside (credit arrived): recompute when its
        head is eligible. No-op for unknown or idle senders."""
        s = self._senders.get(number)
        if s is not None and s.queue:
            self._schedule(s, self._tick(now))
            self._maybe_compact()

    def has_sender(self, number: str) -> bool:
        return number in self._senders

    def sender_class(self, number: str) -> str | None:
        """The class a known sender was registered with (None if unknown)."""
        s = self._senders.get(number)
        return s.cls if s is not None else None

    # -- queueing -------------------------------------------------------------------------

    def push(self, number: str, item: Any, segments: int, now: float) -> bool:
        """Append to the sender's FIFO; False when the queue is full (KeyError if unknown)."""
        s = self._senders[number]
        if now > self._now:                 # _tick and _count inlined: once per message
            self._now = now
        if s.segments + segments > s.capacity:
            return False
        q = s.queue
        q.append((item, segments, now))
        s.segments += segments
        cs = self._class_segments
        cs[s.cls] = cs.get(s.cls, 0) + segments
        if len(q) == 1:
            self._active.add(s)
            self._schedule(s, now)
        return True

    def push_front(
        self, number: str, item: Any, segments: int, now: float | None = None,
        refund: bool = False,
    ) -> None:
        """Put a message back at the head of its sender's FIFO (resend, keeps order).

        Push several in reverse order to restore them in their original order.
        ``refund=True`` gives the tokens back when the message never left (no carrier).
        """
        s = self._senders[number]
        t = self._tick(now)
        if refund:
            s.bucket.give_back(segments)
        s.queue.appendleft((item, segments, t))
        self._count(s, segments)
        self._schedule(s, t)
        self._maybe_compact()

    def pop_ready(self, now: float, limit: int = 1 << 30) -> list[tuple[str, Any, int]]:
        """Messages whose sender's bucket allows them now, fairly interleaved."""
        self._tick(now)
        out: list[tuple[str, Any, int]] = []
        heap = self._heap  # _schedule never replaces the list; compaction happens after
        while heap and len(out) < limit:
            t, tok, s = heap[0]
            if tok != s.token:
                heapq.heappop(heap)
                continue
            if t > now:
                break
            heapq.heappop(heap)
            s.token = None
            item, segments, _ = s.queue[0]
            if s.bucket.take(segments, now) > 0.0:
                self._schedule(s, now)  # float rounding: not quite yet
                continue
            q = s.queue
            q.popleft()
            s.segments -= segments              # _count inlined
            cs = self._class_segments
            cs[s.cls] = cs.get(s.cls, 0) - segments
            out.append((s.number, item, segments))
            if q:
                self._schedule(s, now)
            else:
                self._active.discard(s)
        self._maybe_compact()
        return out

    def next_ready_at(self) -> float | None:
        """When the earliest queued message becomes eligible (None: nothing queued)."""
        heap = self._heap
        while heap and heap[0][1] != heap[0][2].token:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def remove(
        self, number: str | None, predicate: Callable[[Any], bool]
    ) -> list[Any]:
        """Take out every queued item of ``number`` (None: all senders) matching predicate."""
        senders = [self._senders[number]] if number is not None else list(self._active)
        removed: list[Any] = []
        for s in senders:
            if not s.queue:
                continue
            keep: deque[tuple[Any, int, float]] = deque()
            head = s.queue[0]
            for entry in s.queue:
                if predicate(entry[0]):
                    removed.append(entry[0])
                    self._count(s, -entry[1])
                else:
                    keep.append(entry)
            s.queue = keep
            if not keep:
                s.token = None
                self._active.discard(s)
            elif keep[0] is not head:
                self._schedule(s, self._now)
        self._maybe_compact()
        return removed

    # -- introspection ----------------------------------------------------------------------

    def depth(self, number: str) -> int:
        """Queued segments of one sender."""
        s = self._senders.get(number)
        return s.segments if s else 0

    def queued(self, number: str) -> int:
        """Queued messages of one sender."""
        s = self._senders.get(number)
        return len(s.queue) if s else 0

    def items(self, number: str) -> list[Any]:
        s = self._senders.get(number)
        return [e[0] for e in s.queue] if s else []

    def depth_by_class(self) -> dict[str, int]:
        return dict(self._class_segments)

    def oldest_age_by_class(self, now: float) -> dict[str, float]:
        """Age of the oldest queued message per class (O(active senders), for scrapes)."""
        ages = {c: 0.0 for c in self._class_segments}
        for s in self._active:
            age = max(0.0, now - s.queue[0][2])
            if age > ages[s.cls]:
                ages[s.cls] = age
        return ages

    def active_senders(self) -> int:
        return len(self._active)

    def heap_size(self) -> int:
        return len(self._heap)

    def __len__(self) -> int:
        return sum(len(s.queue) for s in self._active)

    # -- internals --------------------------------------------------------------------------

    def _tick(self, now: float | None) -> float:
        if now is not None and now > self._now:
            self._now = now
        return self._now if now is None else now

    def _count(self, s: _Sender, segments: int) -> None:
        s.segments += segments
        self._class_segments[s.cls] = self._class_segments.get(s.cls, 0) + segments
        if s.queue:
            self._active.add(s)
        else:
            self._active.discard(s)

    def _schedule(self, s: _Sender, now: float) -> None:
        """(Re)insert the sender's live heap entry for its current head."""
        at = now + s.bucket.wait_time(s.queue[0][1], now)
        tok = next(self._tiebreak)
        s.token = tok
        heapq.heappush(self._heap, (at, tok, s))

    def _maybe_compact(self) -> None:
        if len(self._heap) > 2 * len(self._active) + 64:
            self._heap = [e for e in self._heap if e[1] == e[2].token]
            heapq.heapify(self._heap)
