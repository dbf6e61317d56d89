"""Reassembly of multipart inbound (MO) SMS from their decoded parts.

Owns the table of incomplete messages. The caller decodes each deliver_sm with
``gateway.codec.text.decode_short_message`` and passes the ``Part`` with a key that names
the conversation and the concatenation reference, e.g. ``(source, dest, part.ref)``.

Rules:
- Parts may come in any order; a part whose index was already seen is ignored (the
  first copy wins), and so is a duplicate of a message completed within ``timeout``.
- A message is complete when every index 1..total has arrived; ``add`` then returns the
  whole text and forgets the entry. A single-part ``Part`` is returned at once.
- A message still incomplete ``timeout`` seconds after its first part is handed back by
  ``expire(now)`` as ``(key, partial_text, parts_missing)``, parts in index order, so the
  caller can deliver what arrived and say how much is missing.
- Memory is bounded: at most ``max_entries`` incomplete messages; adding one more evicts
  the oldest, which the next ``expire`` call returns like a timed-out one.
- UCS-2 surrogate pairs cut across parts by the sender are joined; a surrogate that stays
  unpaired becomes U+FFFD.
- Time is injected (``now``, monotonic seconds); no I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

DEFAULT_TIMEOUT = 300.0
DEFAULT_MAX_ENTRIES = 10_000


def _clean(text: str) -> str:
    """Pair surrogates that were split across parts; replace the unpaired ones."""
    for ch in text:
        if "\ud800" <= ch <= "\udfff":
            break
    else:
        return text
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


class _Entry:
    __slots__ = ("total", "parts", "first_seen")

    def __init__(self, total: int, first_seen: float) -> None:
        self.total = total
        self.parts: dict[int, str] = {}
        self.first_seen = first_seen

    def text(self) -> str:
        return _clean("".join(self.parts[i] for i in sorted(self.parts)))


class Reassembler:
    """Joins message parts; see the module docstring for the rules."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if timeout <= 0 or max_entries < 1:
            raise ValueError("timeout and max_entries must be positive")
        self.timeout = timeout
        self.max_entries = max_entries
        # (key, total) -> entry, oldest first (insertion order == first_seen order)
        self._pending: OrderedDict[tuple[Hashable, int], _Entry] = OrderedDict()
        # (key, total) -> time completed; remembered for ``timeout`` to drop late duplicates
        self._done: OrderedDict[tuple[Hashable, int], float] = OrderedDict()
        self._evicted: list[tuple[Hashable, str, int]] = []
        self.evicted_total = 0
        self.duplicates_total = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, key: Hashable, part: Any, now: float) -> str | None:
        """Add one part; the whole text when this part completes its message, else None."""
        total, index = part.total, part.index
        if total <= 1:
            return part.text
        if not 1 <= index <= total:
            return None
        ident = (key, total)
        self._forget_done(now)
        if ident in self._done:
            self.duplicates_total += 1
            return None
        entry = self._pending.get(ident)
        if entry is None:
            if len(self._pending) >= self.max_entries:
                (old_key, _), old = self._pending.popitem(last=False)
                self._evicted.append((old_key, old.text(), old.total - len(old.parts)))
                self.evicted_total += 1
            entry = self._pending[ident] = _Entry(total, now)
        if index in entry.parts:
            self.duplicates_total += 1
            return None
        entry.parts[index] = part.text
        if len(entry.parts) < total:
            return None
        del self._pending[ident]
        self._done[ident] = now
        while len(self._done) > self.max_entries:
            self._done.popitem(last=False)
        return entry.text()

    def expire(self, now: float) -> list[tuple[Hashable, str, int]]:
        """Messages whose first part is ``timeout`` old (and evicted ones), as
        ``(key, partial_text, parts_missing)``; they are forgotten."""
        out, self._evicted = self._evicted, []
        deadline = now - self.timeout
        while self._pending:
            ident, entry = next(iter(self._pending.items()))
            if entry.first_seen > deadline:
                break
            del self._pending[ident]
            out.append((ident[0], entry.text(), entry.total - len(entry.parts)))
        self._forget_done(now)
        return out

    def next_expiry(self) -> float | None:
        """When the oldest incomplete message times out (to schedule ``expire``)."""
        for entry in self._pending.values():
            return entry.first_seen + self.timeout
        return None

    def _forget_done(self, now: float) -> None:
        deadline = now - self.timeout
        while self._done:
            ident, at = next(iter(self._done.items()))
            if at > deadline:
                break
            del self._done[ident]
