"""The voice TwiML interpreter: runs a call's documents verb by verb on a ``CallLeg``.

Owns: the ``CallLeg`` protocol (what a call must offer: answer, reject, hangup, say,
play, digits, record, dial), the webhook ``Fetcher`` signature, Twilio's voice request
parameters, and the execution rules of every verb.

Rules (Twilio's, ``reference/twilio.md`` §6–7):
- A document comes from a URL (fetched with the call's parameters) or inline TwiML.
  Relative URLs (``action``, ``<Redirect>``, ``<Play>``) resolve against the URL of the
  document that holds them. ``action`` absent = the current document URL (Gather,
  Record); ``<Dial>`` without ``action`` continues with the next verb.
- The call is answered before the first verb that is not ``<Reject>``; ``<Reject>``
  on an answered call is a hangup. The end of a document is a hangup.
- ``<Gather>``: earlier DTMF is discarded; nested prompts play while listening and the
  first digit stops them (barge-in); then ``timeout`` seconds for each further digit;
  ``finishOnKey`` ends input (not part of ``Digits``), ``numDigits`` ends it when
  reached. Digits -> POST ``action`` with ``Digits``; none -> next verb (or POST with
  ``Digits=""`` when ``actionOnEmptyResult``).
- ``<Record>``: empty recording -> no action request, next verb; else POST ``action``
  with ``RecordingUrl``, ``RecordingDuration``, ``RecordingSid``, ``Digits`` (the key
  that ended it, ``hangup``, or empty on timeout/maxLength).
- ``<Dial>``: every ``<Number>``/``<Sip>`` is handed to the leg at once (parallel, first
  answer wins); ``action`` gets ``DialCallStatus``, ``DialCallSid``, ``DialCallDuration``
  (+ ``DialSipCallId``/``DialSipResponseCode``/``DialSipHeader_X-…`` with a ``<Sip>``).
  ``callerId`` defaults to the call's ``From``. ``<Dial><Conference>`` joins the room until the caller leaves
  it or it ends; ``<Dial><Queue>`` bridges the queue's oldest caller (+ ``QueueSid``).
- ``<Enqueue>`` waits in the queue (``leg.enqueue``); ``action`` gets ``QueueResult``,
  ``QueueSid``, ``QueueTime`` (none: next verb); dequeued by the Members API, that URL
  runs instead. ``<Leave>`` outside a waitUrl document does nothing.
- ``play_document``: no final hangup (whispers); ``hung_up``: ``<Hangup/>``/``<Reject/>`` ran.
- ``loop="0"`` repeats until hangup, capped at ``LOOP_FOREVER`` rounds.
- ``Calls`` update with ``Url``/``Twiml`` mid-call: ``replace()`` stops the current verb
  and runs the new document.

Error handling: a document that cannot be fetched (``FetchError``) or parsed
(``TwimlError``) is requested again from the fallback URL (once per failure, with
``ErrorCode`` and ``ErrorUrl``); when that fails too, or there is none, the caller hears
``ERROR_TEXT`` and the call is hung up. A remote hangup (``CallEnded`` from the leg)
ends the run quietly; an action request after hangup (Record, Dial) is still made with
``CallStatus=completed``, its answer is ignored.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field, replace
from urllib.parse import urljoin

import trio

from gateway.codec import twiml_voice as tv
from gateway.core import call as C
from gateway.voice.callleg import (
    CallEnded,
    CallLeg,
    DialResult,
    EnqueueResult,
    Fetcher,
    FetchError,
    Notifier,
    RecordResult,
)

__all__ = ["CallEnded", "CallLeg", "DialResult", "EnqueueResult", "FetchError", "Fetcher", "Interpreter",
           "Next", "Notifier", "RecordResult", "call_params"]

log = logging.getLogger("gateway.voice")

API_VERSION = "2010-04-01"
LOOP_FOREVER = 1000
MAX_DOCUMENTS = 500
ERROR_TEXT = "We are sorry, an application error has occurred. Goodbye."


@dataclass(slots=True)
class Next:
    """The next document to run: fetched from ``url`` or given inline as ``twiml``."""

    url: str | None = None
    method: str = "POST"
    params: list[tuple[str, str]] = field(default_factory=list)
    twiml: str | bytes | None = None


def call_params(call: C.Call) -> list[tuple[str, str]]:
    """Twilio's voice request parameters for ``call`` (every request carries them)."""
    p = [("CallSid", call.sid), ("AccountSid", call.account_sid), ("From", call.from_),
         ("To", call.to), ("CallStatus", call.status), ("ApiVersion", API_VERSION),
         ("Direction", call.direction), ("Caller", call.from_), ("Called", call.to)]
    if call.parent_call_sid:
        p.append(("ParentCallSid", call.parent_call_sid))
    if call.forwarded_from:
        p.append(("ForwardedFrom", call.forwarded_from))
    return p


def _resolve(base: str | None, url: str | None) -> str | None:
    if not url:
        return base
    return urljoin(base, url) if base else url


def _rounds(loop: int) -> int:
    return LOOP_FOREVER if loop == 0 else loop


class Interpreter:
    def __init__(self, leg: CallLeg, fetch: Fetcher, *, fallback_url: str | None = None,
                 fallback_method: str = "POST", notify: Notifier | None = None) -> None:
        self.leg = leg
        self.fetch = fetch
        self.fallback_url, self.fallback_method = fallback_url or None, fallback_method
        self.notify, self.documents = notify, 0
        self.warnings: list[str] = []
        self._scope: trio.CancelScope | None = None
        self._pending: Next | None = None
        self.hung_up = False

    @property
    def call(self) -> C.Call:
        return self.leg.call

    # -- control --------------------------------------------------------------------
    def replace(self, nxt: Next) -> None:
        """Run ``nxt`` instead of whatever runs now (Calls update with Url/Twiml)."""
        self._pending = nxt
        if self._scope is not None:
            self._scope.cancel()

    async def run(self, first: Next) -> None:
        """Run documents until hangup; returns when the call is over."""
        with contextlib.suppress(CallEnded):
            await self._documents(first)
            await self.leg.hangup()

    async def play_document(self, first: Next) -> None:
        """Run ``first`` (and what it leads to) but leave the call up at the end."""
        with contextlib.suppress(CallEnded):
            await self._documents(first)

    async def _documents(self, first: Next) -> None:
        nxt: Next | None = first
        while nxt is not None and not self.leg.ended and not self.hung_up:
            self._pending = None
            with trio.CancelScope() as scope:
                self._scope = scope
                nxt = await self._step(nxt)
            self._scope = None
            if self._pending is not None:
                nxt = self._pending

    # -- documents ------------------------------------------------------------------
    async def _step(self, nxt: Next) -> Next | None:
        self.documents += 1
        if self.documents > MAX_DOCUMENTS:
            log.warning("call sid=%s: more than %d documents, hanging up", self.call.sid,
                        MAX_DOCUMENTS)
            return None
        loaded = await self._load(nxt)
        if loaded is None:
            await self._speak_error()
            return None
        verbs, doc_url = loaded
        return await self._exec(verbs, doc_url)

    async def _load(self, nxt: Next) -> tuple[list, str | None] | None:
        if nxt.twiml is not None:
            try:
                return self._parse(nxt.twiml, "text/xml", None), None
            except tv.TwimlError as exc:
                log.warning("call sid=%s inline TwiML invalid: %s", self.call.sid, exc)
                return None
        assert nxt.url is not None
        params = call_params(self.call) + nxt.params
        try:
            body, ctype = await self.fetch(nxt.url, nxt.method, params)
            return self._parse(body, ctype, nxt.url), nxt.url
        except (FetchError, tv.TwimlError) as exc:
            log.warning("call sid=%s document %s failed: code=%s %s", self.call.sid, nxt.url,
                        getattr(exc, "code", None), exc)
            if not self.fallback_url or nxt.url == self.fallback_url:
                return None
            fb = params + [("ErrorCode", str(getattr(exc, "code", 11200))),
                           ("ErrorUrl", nxt.url)]
            try:
                body, ctype = await self.fetch(self.fallback_url, self.fallback_method, fb)
                return self._parse(body, ctype, self.fallback_url), self.fallback_url
            except (FetchError, tv.TwimlError) as exc2:
                log.warning("call sid=%s fallback %s failed: %s", self.call.sid,
                            self.fallback_url, exc2)
                return None

    def _parse(self, body: bytes | str, ctype: str, url: str | None) -> list:
        kind = (ctype or "").split(";")[0].strip().lower()
        if kind.startswith("audio/") and url:
            return [tv.Play(url), tv.Hangup()]
        if kind == "text/plain":
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            if not text.lstrip().startswith("<"):
                return [tv.Say(text.strip()), tv.Hangup()]
        doc = tv.parse_document(body)
        self.warnings.extend(doc.warnings)
        return doc.verbs

    async def _speak_error(self) -> None:
        if not self.leg.answered:
            await self.leg.answer()
        await self.leg.say(ERROR_TEXT, "man", "en-US")

    # -- verbs ----------------------------------------------------------------------
    async def _exec(self, verbs: list, doc_url: str | None) -> Next | None:
        leg = self.leg
        for verb in verbs:
            if isinstance(verb, tv.Reject):
                self.hung_up = True
                if not leg.answered:
                    await leg.reject(verb.reason)
                    return None
                return None                         # answered: <Reject> is a hangup
            if not leg.answered:
                await leg.answer()
            if isinstance(verb, (tv.Say, tv.Play, tv.Pause)):
                await self._prompt(verb, doc_url)
            elif isinstance(verb, tv.Gather):
                nxt = await self._gather(verb, doc_url)
                if nxt is not None:
                    return nxt
            elif isinstance(verb, tv.Record):
                nxt = await self._record(verb, doc_url)
                if nxt is not None:
                    return nxt
            elif isinstance(verb, tv.Dial):
                nxt = await self._dial(verb, doc_url)
                if nxt is not None:
                    return nxt
            elif isinstance(verb, tv.Enqueue):
                nxt = await self._enqueue(verb, doc_url)
                if nxt is not None:
                    return nxt
            elif isinstance(verb, tv.Redirect):
                url = _resolve(doc_url, verb.url)
                return Next(url, verb.method)
            elif isinstance(verb, tv.Hangup):
                self.hung_up = True
                return None
        return None

    async def _prompt(self, verb, doc_url: str | None) -> None:
        leg = self.leg
        if isinstance(verb, tv.Say):
            if verb.text:
                for _ in range(_rounds(verb.loop)):
                    await leg.say(verb.text, verb.voice, verb.language)
        elif isinstance(verb, tv.Play):
            if verb.digits:
                await leg.send_digits(verb.digits)
            if verb.url:
                url = _resolve(doc_url, verb.url)
                for _ in range(_rounds(verb.loop)):
                    await leg.play(url)
        elif isinstance(verb, tv.Pause):
            await leg.pause(float(verb.length))

    async def _gather(self, g: tv.Gather, doc_url: str | None) -> Next | None:
        leg = self.leg
        leg.clear_digits()
        first: list[str] = []
        if g.nested:
            async with trio.open_nursery() as nursery:
                async def listen() -> None:
                    digit = await leg.next_digit(None)
                    if digit is not None:
                        first.append(digit)
                    nursery.cancel_scope.cancel()       # barge-in: stop the prompts

                nursery.start_soon(listen)
                for prompt in g.nested:
                    await self._prompt(prompt, doc_url)
                nursery.cancel_scope.cancel()
        digits = ""
        finished = False
        pending = list(first)
        while True:
            digit = pending.pop(0) if pending else await leg.next_digit(float(g.timeout))
            if digit is None:
                break
            if g.finish_on_key and digit == g.finish_on_key:
                finished = True
                break
            digits += digit
            if g.num_digits is not None and len(digits) >= g.num_digits:
                break
        if not digits and not g.action_on_empty_result:
            return None
        action = _resolve(doc_url, g.action)
        if action is None:
            return None
        params = [("Digits", digits)]
        if finished:
            params.append(("FinishedOnKey", g.finish_on_key))
        return Next(action, g.method, params)

    async def _record(self, r: tv.Record, doc_url: str | None) -> Next | None:
        leg = self.leg
        leg.clear_digits()
        try:
            res = await leg.record(timeout=float(r.timeout), finish_on_key=r.finish_on_key,
                                   max_length=float(r.max_length), play_beep=r.play_beep,
                                   trim=r.trim)
        except CallEnded:
            return None
        if not res.url or res.duration <= 0:
            return None
        if r.recording_status_callback and self.notify is not None:
            self.notify(_resolve(doc_url, r.recording_status_callback) or "",
                        r.recording_status_callback_method,
                        call_params(self.call) + [
                            ("RecordingUrl", res.url), ("RecordingSid", res.sid or ""),
                            ("RecordingDuration", str(res.duration)),
                            ("RecordingStatus", "completed"), ("RecordingChannels", "1"),
                            ("RecordingSource", "RecordVerb")])
        action = _resolve(doc_url, r.action)
        if action is None:
            return None
        params = [("RecordingUrl", res.url), ("RecordingDuration", str(res.duration)),
                  ("RecordingSid", res.sid or ""), ("Digits", res.digits)]
        if leg.ended:
            await self._post_after_hangup(action, r.method, params)
            return None
        return Next(action, r.method, params)

    async def _dial(self, d: tv.Dial, doc_url: str | None) -> Next | None:
        leg = self.leg
        res = DialResult(C.FAILED, None, 0)
        caller_id = d.caller_id or self.call.from_
        if d.conference is not None:
            room = d.conference
            if room.status_callback or room.wait_url:          # relative URLs
                room = replace(room, status_callback=_resolve(doc_url, room.status_callback)
                               if room.status_callback else None,
                               wait_url=_resolve(doc_url, room.wait_url)
                               if room.wait_url else None)
            res = await leg.conference(room, time_limit=float(d.time_limit),
                                       hangup_on_star=d.hangup_on_star)
        elif d.queue is not None:
            q = replace(d.queue, url=_resolve(doc_url, d.queue.url)) if d.queue.url else d.queue
            res = await leg.dial_queue(q, timeout=float(d.timeout), time_limit=float(
                d.time_limit), hangup_on_star=d.hangup_on_star)
        elif d.numbers:
            numbers = [replace(n, url=_resolve(doc_url, n.url)) if n.url else n
                       for n in d.numbers]                 # whisper URLs are relative too
            res = await leg.dial(numbers, timeout=float(d.timeout),
                                 caller_id=caller_id, time_limit=float(d.time_limit),
                                 hangup_on_star=d.hangup_on_star, record=d.record)
        action = _resolve(doc_url, d.action) if d.action else None
        if action is None:
            if leg.ended:
                raise CallEnded()
            return None
        params = [("DialCallStatus", res.status), ("DialCallSid", res.call_sid or ""),
                  ("DialCallDuration", str(res.duration))]
        if res.sip_response_code is not None:
            params += [("DialSipCallId", res.sip_call_id or ""), ("DialSipResponseCode",
                       str(res.sip_response_code)), *res.sip_headers]
        if res.queue_sid:
            params.append(("QueueSid", res.queue_sid))
        if leg.ended:
            await self._post_after_hangup(action, d.method, params)
            return None
        return Next(action, d.method, params)

    async def _enqueue(self, e: tv.Enqueue, doc_url: str | None) -> Next | None:
        e = replace(e, wait_url=_resolve(doc_url, e.wait_url)) if e.wait_url else e
        res: EnqueueResult = await self.leg.enqueue(e)
        if res.redirect is not None:
            return Next(*res.redirect)
        action = _resolve(doc_url, e.action) if e.action else None
        if action is None:
            if self.leg.ended:
                raise CallEnded()
            return None
        params = [("QueueResult", res.result), ("QueueSid", res.queue_sid or ""),
                  ("QueueTime", str(res.queue_time))]
        if self.leg.ended:
            await self._post_after_hangup(action, e.method, params)
        return Next(action, e.method, params)

    async def _post_after_hangup(self, url: str, method: str,
                                 params: list[tuple[str, str]]) -> None:
        """Twilio still requests ``action`` after the caller hung up (``CallStatus``
        ``completed``, though our record is finalised a moment later); reply is moot."""
        base = [(k, C.COMPLETED if k == "CallStatus" and v == C.IN_PROGRESS else v)
                for k, v in call_params(self.call)]
        try:
            await self.fetch(url, method, base + params)
        except FetchError as exc:
            log.info("call sid=%s action after hangup failed: %s", self.call.sid, exc)
        raise CallEnded()
