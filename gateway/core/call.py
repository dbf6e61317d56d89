"""The call record and its status machine (Twilio's CallStatus).

Owns: ``Call`` (one leg: inbound, outbound-api or outbound-dial), the allowed status
moves, durations, and the plain-dict form the store keeps (kv namespace ``call``).

Rules:
- Statuses: queued -> initiated -> ringing -> in-progress -> completed, or a final
  failure: busy | failed | no-answer | canceled. ``initiated`` is Twilio's progress
  stage (the INVITE went out); inbound calls start ``ringing``; ``<Dial>`` child legs
  start ``initiated`` (they skip ``queued``).
- ``advance(call, status, now)`` refuses anything not in ``TRANSITIONS`` (returns False,
  the record unchanged): a late event after a final status is ignored, not an error.
- ``start_time`` is set on answer (in-progress), ``end_time`` on any final status;
  ``duration`` is whole seconds from answer to end (0 when never answered), as Twilio.
- ``canceled`` is only reachable before answer; an answered call ends ``completed``.
- Times are float epoch seconds (UTC); rendering to RFC 2822 is the API's job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

QUEUED = "queued"
INITIATED = "initiated"
RINGING = "ringing"
IN_PROGRESS = "in-progress"
COMPLETED = "completed"
BUSY = "busy"
FAILED = "failed"
NO_ANSWER = "no-answer"
CANCELED = "canceled"

INBOUND = "inbound"
OUTBOUND_API = "outbound-api"
OUTBOUND_DIAL = "outbound-dial"

FINAL = frozenset({COMPLETED, BUSY, FAILED, NO_ANSWER, CANCELED})
_FAILURES = frozenset({BUSY, FAILED, NO_ANSWER, CANCELED})

TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({INITIATED, RINGING, IN_PROGRESS}) | _FAILURES,
    INITIATED: frozenset({RINGING, IN_PROGRESS}) | _FAILURES,
    RINGING: frozenset({IN_PROGRESS}) | _FAILURES,
    IN_PROGRESS: frozenset({COMPLETED, FAILED}),
    COMPLETED: frozenset(),
    BUSY: frozenset(),
    FAILED: frozenset(),
    NO_ANSWER: frozenset(),
    CANCELED: frozenset(),
}

#: StatusCallbackEvent names -> the statuses that fire them
EVENTS = {"initiated": (INITIATED,), "ringing": (RINGING,), "answered": (IN_PROGRESS,),
          "completed": tuple(sorted(FINAL))}
DEFAULT_EVENTS = ("completed",)

#: SIP final response -> Twilio status of a failed outbound attempt
SIP_FAILURE_STATUS = {486: BUSY, 600: BUSY, 480: NO_ANSWER, 408: NO_ANSWER,
                      487: CANCELED, 603: BUSY}


def status_for_sip(code: int) -> str:
    """Twilio status for a SIP final failure response (anything unknown: failed)."""
    return SIP_FAILURE_STATUS.get(code, FAILED)


def can_move(src: str, dst: str) -> bool:
    return dst in TRANSITIONS.get(src, frozenset())


@dataclass(slots=True)
class Call:
    sid: str
    account_sid: str
    from_: str
    to: str
    direction: str = OUTBOUND_API
    status: str = QUEUED
    date_created: float = 0.0
    date_updated: float = 0.0
    start_time: float | None = None          # answer
    end_time: float | None = None
    duration: int | None = None              # seconds, set at a final status
    parent_call_sid: str | None = None
    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    fallback_url: str | None = None
    fallback_method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: tuple[str, ...] = DEFAULT_EVENTS
    timeout: int = 60
    time_limit: int = 14400
    send_digits: str = ""
    carrier: str | None = None
    sip_call_id: str | None = None
    answered_by: str | None = None
    caller_name: str | None = None
    forwarded_from: str | None = None
    error_code: int | None = None
    sequence: int = 0                        # status callback SequenceNumber counter
    extra: dict = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status_callback_events"] = list(self.status_callback_events)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Call:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "status_callback_events" in kw:
            kw["status_callback_events"] = tuple(kw["status_callback_events"])
        return cls(**kw)


def advance(call: Call, status: str, now: float) -> bool:
    """Move ``call`` to ``status`` if allowed; set answer/end times and duration."""
    if status == call.status or not can_move(call.status, status):
        return False
    call.status = status
    call.date_updated = now
    if status == IN_PROGRESS:
        call.start_time = now
    if status in FINAL:
        call.end_time = now
        call.duration = int(now - call.start_time) if call.start_time is not None else 0
    return True


def wants_callback(call: Call, status: str) -> bool:
    """True when ``status`` is one of the call's StatusCallbackEvent choices."""
    if not call.status_callback:
        return False
    return any(status in EVENTS.get(ev, ()) for ev in call.status_callback_events)


def event_name(status: str) -> str:
    """The StatusCallbackEvent name ``CallbackSource``-style for a status."""
    if status == IN_PROGRESS:
        return "answered"
    if status in FINAL:
        return "completed"
    return status
