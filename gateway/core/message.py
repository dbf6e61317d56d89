"""The message record and its status machine.

Rules:
- ``status`` moves only along ``TRANSITIONS``; ``advance`` refuses anything else and
  returns False (a late DLR after a final state is ignored, not an error).
- Times are float epoch seconds (UTC). Rendering to RFC 2822 is the API's job.
- ``seq`` is a gateway-wide monotonic number given at create time: per-sender FIFO order
  is ``seq`` order, also after a restart.
- ``due`` holds the tokens of work owed for this message that the *next store write*
  of it must record (not a stored field itself: the store moves it into its own column
  and empties the list): ``advance`` adds the new status when it gets a status
  callback (``wants_callback``), so the obligation to send that callback is durable in
  the same write as the status; inbound adds ``mo:<key>`` (an MO not yet acknowledged).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# Outbound
ACCEPTED = "accepted"
SCHEDULED = "scheduled"
QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
UNDELIVERED = "undelivered"
FAILED = "failed"
CANCELED = "canceled"
# Inbound
RECEIVING = "receiving"
RECEIVED = "received"

FINAL = frozenset({DELIVERED, UNDELIVERED, FAILED, CANCELED, RECEIVED})
#: statuses that get a status callback when reached (Twilio: not the initial one)
CALLBACK_STATUSES = frozenset({QUEUED, SENT, DELIVERED, UNDELIVERED, FAILED, CANCELED})

TRANSITIONS: dict[str, frozenset[str]] = {
    ACCEPTED: frozenset({QUEUED, FAILED, CANCELED}),
    SCHEDULED: frozenset({QUEUED, CANCELED, FAILED}),
    QUEUED: frozenset({SENDING, FAILED, CANCELED}),
    # sending -> queued: the link dropped before submit_sm_resp; the message is resent
    SENDING: frozenset({SENT, FAILED, QUEUED, DELIVERED, UNDELIVERED}),
    SENT: frozenset({DELIVERED, UNDELIVERED, FAILED}),
    # a carrier may report delivered after an intermediate undelivered (retry on its side)
    UNDELIVERED: frozenset({DELIVERED}),
    DELIVERED: frozenset(),
    FAILED: frozenset(),
    CANCELED: frozenset(),
    RECEIVING: frozenset({RECEIVED}),
    RECEIVED: frozenset(),
}

OUTBOUND_API = "outbound-api"
OUTBOUND_REPLY = "outbound-reply"
INBOUND = "inbound"


def can_move(src: str, dst: str) -> bool:
    return dst in TRANSITIONS.get(src, frozenset())


def wants_callback(src: str, dst: str, status_callback: str | None) -> bool:
    """Does the move ``src`` -> ``dst`` get a status callback? (Twilio: not for the
    initial status; ``queued`` only after accepted/scheduled.)"""
    if not status_callback or dst not in CALLBACK_STATUSES:
        return False
    return dst != QUEUED or src in (ACCEPTED, SCHEDULED)


@dataclass(slots=True)
class Message:
    sid: str
    account_sid: str
    from_: str
    to: str
    body: str
    status: str
    direction: str = OUTBOUND_API
    num_segments: int = 1
    num_media: int = 0
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    sender_class: str = "long_code"
    smart_encoded: bool = False
    date_created: float = 0.0
    date_updated: float = 0.0
    date_sent: float | None = None
    valid_until: float = 0.0          # epoch s after which a queued message fails with 30036
    send_at: float | None = None      # scheduled messages
    error_code: int | None = None
    error_message: str | None = None
    carrier: str | None = None
    carrier_message_ids: list[str] = field(default_factory=list)
    raw_dlr_done_date: str | None = None
    seq: int = 0
    attempts: int = 0
    #: work owed, for the next store write to record (see the module rules)
    due: list[str] = field(default_factory=list, compare=False, repr=False)

    def advance(self, status: str, now: float) -> bool:
        """Move to ``status`` if the status machine allows it; False otherwise."""
        if status == self.status:
            return False
        if not can_move(self.status, status):
            return False
        if wants_callback(self.status, status, self.status_callback):
            self.due.append(status)
        self.status = status
        self.date_updated = now
        return True


def _copier():
    """``copy(msg)``: a shallow copy of a ``Message`` (lists shared), as straight-line
    code: ``dataclasses.replace`` and ``copy.copy`` of a slots dataclass cost 5-10x more
    (``__init__`` keyword handling / ``__getstate__`` through ``fields()``)."""
    names = Message.__slots__
    lines = ["def copy(m):", "    c = _new(_cls)"]
    lines += [f"    c.{n} = m.{n}" for n in names]
    lines.append("    return c")
    env = {"_new": object.__new__, "_cls": Message}
    exec("\n".join(lines), env)  # noqa: S102 - fixed field names of Message
    return env["copy"]


#: shallow copy of a message (its lists are shared with the original)
copy_message = _copier()


def field_defaults(skip=()) -> dict[str, object]:
    """Each ``Message`` field not in ``skip`` → its default (a fresh one for factories;
    ``dataclasses.MISSING`` for a required field). The stores encode only the fields that
    differ from it."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(Message):
        if f.name in skip:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
        else:
            out[f.name] = dataclasses.MISSING  # required: always stored
    return out
