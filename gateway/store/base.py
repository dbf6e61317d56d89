"""The durable-state interface. Nothing above this module knows SQL or Redis.

Rules:
- Every ``async`` write returns only after its data is durable (committed and fsync'd
  for SQLite). ``*_nowait`` writes join the next group commit and return at once: use
  them where losing the last few milliseconds is harmless because the state machine
  redoes the work (e.g. ``sending``: a crash before the commit leaves the message
  ``queued`` and it is sent again — at least once).
- Writes from one task are applied in the order they were issued.
- ``create_message`` assigns ``Message.seq`` (gateway-wide monotonic) and stores the
  idempotency key in the same transaction; a repeated key returns the first message
  and ``created=False``.
- The DLR map (carrier, carrier message id) -> message sid is kept ``DLR_TTL`` seconds.
- Due tokens (``gateway.store.due``): ``Message.due`` is written with the message by
  ``create_message``/``save_message*`` (same write as the change) and emptied;
  ``clear_due_nowait`` only buffers (folded into that message's next save when there is
  one), ``flush_due`` writes the rest as one op; ``messages_due`` lists the messages
  with anything due (indexed, not a scan of every message), ascending ``seq``.
- ``kv_*`` is a small namespaced key/value table for opt-outs, number overrides and
  other low-volume state; values are JSON-able dicts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from gateway.core.message import Message

DLR_TTL = 72 * 3600.0


class StoreError(Exception):
    """The store cannot commit (disk full, I/O error, closed)."""


@dataclass(frozen=True, slots=True)
class MessageFilter:
    account_sid: str
    to: str | None = None
    from_: str | None = None
    date_sent: str | None = None          # YYYY-MM-DD (UTC day of date_sent)
    date_sent_before: str | None = None   # DateSent<  (exclusive day)
    date_sent_after: str | None = None    # DateSent>  (inclusive day)


class Store(ABC):
    backend: str = "abstract"

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None:
        """Flush every pending write, then close."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when a commit goes through now (for /healthz)."""

    # -- messages ---------------------------------------------------------------------
    @abstractmethod
    async def create_message(
        self, msg: Message, idempotency_key: str | None = None
    ) -> tuple[Message, bool]: ...

    @abstractmethod
    async def get_message(self, sid: str) -> Message | None: ...

    @abstractmethod
    async def list_messages(
        self, flt: MessageFilter, limit: int, before_seq: int | None = None
    ) -> list[Message]:
        """Newest first (descending ``seq``), ``seq < before_seq`` when given."""

    @abstractmethod
    async def save_message(self, msg: Message) -> None:
        """Durably write the whole row (status, ids, error, dates)."""

    @abstractmethod
    def save_message_nowait(self, msg: Message) -> None: ...

    @abstractmethod
    async def delete_message(self, sid: str) -> bool: ...

    @abstractmethod
    async def pending_messages(self) -> list[Message]:
        """Messages not yet handed to a carrier (accepted, scheduled, queued) plus those
        left ``sending`` by a crash, which come back as ``queued``; ascending ``seq``."""

    @abstractmethod
    async def unfinished_sent(self, since: float) -> list[Message]:
        """``sent`` messages newer than ``since`` still waiting for a DLR (DLR map reload)."""

    # -- due tokens (work owed for a message: callbacks, MO acks) --------------------
    @abstractmethod
    def clear_due_nowait(self, sid: str, token: str) -> None: ...

    @property
    @abstractmethod
    def due_backlog(self) -> int:
        """Messages with buffered clears not yet written."""

    @abstractmethod
    async def flush_due(self) -> None:
        """Write every buffered clear now (one op); StoreError keeps them buffered."""

    @abstractmethod
    async def messages_due(self) -> list[tuple[Message, list[str]]]: ...

    # -- DLR map ----------------------------------------------------------------------
    @abstractmethod
    def map_carrier_id_nowait(self, carrier: str, carrier_message_id: str, sid: str) -> None: ...

    @abstractmethod
    async def sid_for_carrier_id(self, carrier: str, carrier_message_id: str) -> str | None: ...

    # -- small key/value state (opt-outs, number overrides, schedules) ----------------
    @abstractmethod
    async def kv_put(self, ns: str, key: str, value: dict) -> None: ...

    @abstractmethod
    async def kv_get(self, ns: str, key: str) -> dict | None: ...

    @abstractmethod
    async def kv_delete(self, ns: str, key: str) -> None: ...

    @abstractmethod
    async def kv_items(self, ns: str) -> list[tuple[str, dict]]: ...
