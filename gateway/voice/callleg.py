"""What the voice interpreter needs from a call: the ``CallLeg`` protocol, its results
(``RecordResult``, ``DialResult``, ``EnqueueResult``), its errors (``CallEnded``, ``FetchError``) and the
webhook ``Fetcher``/``Notifier`` signatures.

Owns: these names only (``interpreter`` re-exports them). Rules: every ``async``
``CallLeg`` method raises ``CallEnded`` once the remote side has hung up and is
cancellable. Error handling: n/a (definitions).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.codec import twiml_voice as tv
from gateway.core import call as C


class CallEnded(Exception):
    """The remote side hung up (raised by any ``CallLeg`` operation)."""


class FetchError(Exception):
    """A TwiML document could not be retrieved; ``code`` is Twilio's (11200, 11205…)."""

    def __init__(self, code: int, message: str = ""):
        super().__init__(message or f"fetch failed ({code})")
        self.code = code


@dataclass(frozen=True, slots=True)
class RecordResult:
    url: str | None            # None / duration 0 = nothing recorded
    sid: str | None
    duration: int              # seconds
    digits: str                # the finishing key, "hangup", or ""


@dataclass(frozen=True, slots=True)
class DialResult:
    status: str                # completed | busy | no-answer | failed | canceled
    call_sid: str | None
    duration: int              # seconds the bridge lasted
    sip_call_id: str | None = None         # <Dial><Sip>: the SIP Call-ID of the attempt
    sip_response_code: int | None = None   # ... and its final SIP status (200 answered)
    sip_headers: tuple[tuple[str, str], ...] = ()   # ... DialSipHeader_X-… action params
    queue_sid: str | None = None           # <Dial><Queue>: the queue dequeued from


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    result: str                # QueueResult: bridged | hangup | leave | queue-full | error
    queue_sid: str | None
    queue_time: int            # seconds in the queue
    redirect: tuple[str, str] | None = None   # (url, method): dequeued by the Members API


class CallLeg(Protocol):
    """One call as the interpreter drives it. Every ``async`` method raises ``CallEnded``
    once the remote side has hung up; all of them are cancellable."""

    call: C.Call
    answered: bool
    ended: bool

    async def answer(self) -> None: ...
    async def reject(self, reason: str) -> None: ...          # "rejected" | "busy"
    async def hangup(self) -> None: ...                        # no-op once ended
    async def say(self, text: str, voice: str, language: str) -> None: ...
    async def play(self, url: str) -> None: ...                # fetch + play once
    async def send_digits(self, digits: str) -> None: ...      # RFC 4733, w = 0.5 s
    async def pause(self, seconds: float) -> None: ...
    def clear_digits(self) -> None: ...
    async def next_digit(self, timeout: float | None) -> str | None: ...  # None: timeout
    async def record(self, *, timeout: float, finish_on_key: str, max_length: float,
                     play_beep: bool, trim: str) -> RecordResult: ...
    async def dial(self, numbers: list[tv.Number], *, timeout: float, caller_id: str,
                   time_limit: float, hangup_on_star: bool, record: str) -> DialResult: ...
    async def conference(self, room: tv.Conference, *, time_limit: float,
                         hangup_on_star: bool) -> DialResult: ...
    async def enqueue(self, verb: tv.Enqueue) -> EnqueueResult: ...
    async def dial_queue(self, queue: tv.Queue, *, timeout: float, time_limit: float,
                         hangup_on_star: bool) -> DialResult: ...


#: fetch(url, method, params) -> (body, content_type); raises FetchError
Fetcher = Callable[[str, str, list[tuple[str, str]]], Awaitable[tuple[bytes, str]]]
#: notify(url, method, params): fire-and-forget (recording status callbacks)
Notifier = Callable[[str, str, list[tuple[str, str]]], None]
