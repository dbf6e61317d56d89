"""``<Dial><Number>…``: the child legs of a call, placed through carrier trunks, rung in
parallel, the first to answer bridged to its parent.

Owns: ``dial_numbers(service, parent_leg, numbers, ...) -> DialResult`` — one child
``Call`` record per ``<Number>`` (direction ``outbound-dial``, ``parent_call_sid``,
starts ``initiated``), each INVITE through ``service.place`` (same trunk order and
failover as API calls), the race (first answer wins; the others are CANCELed, or BYE'd
when they answered in the same instant, and end ``canceled``), the ``<Number url>``
whisper (that TwiML runs on the answered child before the bridge; a ``<Hangup/>`` or
``<Reject/>`` there means "do not connect"), ``sendDigits`` after answer, and the bridge
until either side hangs up, the ``timeLimit`` passes or ``*`` is pressed with
``hangupOnStar``.

``<Sip>`` nouns ring in the same race: ``sip_dial.place`` INVITEs the URI directly
(``[sip] allow_sip_dial``; SSRF rules there); the child's ``To`` is the URI, its
``statusCallback``/``statusCallbackEvent`` are honoured; the result carries
``sip_call_id``/``sip_response_code``/``sip_headers`` (the ``X-`` headers of the final
response: the winner's, else the first ``<Sip>``'s).

Rules: ``DialCallStatus`` is the winner's final status (completed); with no winner it is
busy when every number was busy, no-answer when any rang out or timed out, else failed.
``DialCallDuration`` is the bridged time in whole seconds.
Error handling: a failed INVITE is a DialResult, never an exception; every child's RTP
session is closed and its record saved whatever happens (shielded).
"""

from __future__ import annotations

import trio

from gateway.codec import twiml_voice as tv
from gateway.core import call as C
from gateway.core import ids
from gateway.core import numbers as nums
from gateway.io.rtp import RtpSession
from gateway.io.sip_endpoint import CallFailed
from gateway.voice import sip_dial
from gateway.voice.interpreter import DialResult, Next
from gateway.voice.leg import MediaLeg, bridge


class _Attempt:
    def __init__(self, number, child: C.Call, rtp: RtpSession) -> None:
        self.number, self.child, self.rtp = number, child, rtp
        self.out = None
        self.remote: bytes | None = None
        self.failed: str | None = None
        self.sip_code = 0                  # last SIP status of a <Sip> attempt
        self.sip_headers: list[tuple[str, str]] = []   # ... its final response's headers


def _loser_status(attempts: list[_Attempt]) -> str:
    codes = [a.failed for a in attempts]
    if codes and all(c == C.BUSY for c in codes):
        return C.BUSY
    if any(c in (C.NO_ANSWER, None) for c in codes):
        return C.NO_ANSWER
    return C.FAILED


async def _ring(svc, att: _Attempt, timeout: float, won) -> None:
    """Place one child call; ``won(att)`` when it answers. Cancelled -> CANCEL it."""
    child = att.child
    if isinstance(att.number, tv.Sip):
        out, failed, att.sip_code, att.sip_headers = await sip_dial.place(
            svc, child, att.rtp, timeout, att.number)
    else:
        out, failed = await svc.place(child, att.rtp, timeout)
    if out is None:
        att.failed = failed
        return
    att.out = out
    try:
        if out.provisionals or await out.wait_progress() == "ringing":
            svc._move(child, C.RINGING)
        att.remote = await out.wait_answer()
    except CallFailed as exc:
        att.failed = C.NO_ANSWER if exc.status == 408 else C.status_for_sip(exc.status)
        att.sip_code, att.sip_headers = exc.status, out.final_headers
        return
    except trio.Cancelled:
        if not out.answered:
            with trio.CancelScope(shield=True):
                await out.cancel()
        raise
    att.sip_code, att.sip_headers = 200, out.final_headers
    won(att)


def _result(status: str, att: _Attempt | None, duration: int,
            attempts: list[_Attempt]) -> DialResult:
    sip = att if att is not None and isinstance(att.number, tv.Sip) else next(
        (a for a in attempts if isinstance(a.number, tv.Sip)), None)
    if sip is None:
        return DialResult(status, att.child.sid if att else None, duration)
    return DialResult(status, att.child.sid if att else None, duration,
                      sip_call_id=sip.child.sip_call_id, sip_response_code=sip.sip_code,
                      sip_headers=tuple(sip_dial.header_params(sip.sip_headers)))


def _child(pc: C.Call, number, caller_id: str, timeout: float, now: float) -> C.Call:
    child = C.Call(sid=ids.new_sid("CA"), account_sid=pc.account_sid,
                   from_=caller_id or pc.from_, to=nums.normalize(number.number)
                   if isinstance(number, tv.Number) else number.uri.partition("?")[0],
                   direction=C.OUTBOUND_DIAL, status=C.INITIATED, date_created=now,
                   date_updated=now, parent_call_sid=pc.sid, timeout=int(timeout),
                   status_callback_events=())
    if isinstance(number, tv.Sip) and number.status_callback:
        child.status_callback = number.status_callback
        child.status_callback_method = number.status_callback_method
        child.status_callback_events = number.status_callback_event or C.DEFAULT_EVENTS
    return child


async def _whisper(svc, leg: MediaLeg, att: _Attempt) -> bool:
    """Run ``<Number url>`` / ``<Sip url>`` on the answered child (``<Sip>``: with the 2xx's
    ``X-`` headers as ``SipHeader_X-…``, as Twilio); False = do not connect."""
    number = att.number
    params = [(k.removeprefix("Dial"), v) for k, v in sip_dial.header_params(
        att.sip_headers)] if isinstance(number, tv.Sip) else []
    interp = svc._interpreter(leg)
    await interp.play_document(Next(number.url, number.method, params))
    return not (leg.ended or interp.hung_up)


async def dial_numbers(svc, parent: MediaLeg, numbers, *, timeout: float, caller_id: str,
                       time_limit: float, hangup_on_star: bool) -> DialResult:
    now = svc.gw.now()
    pc = parent.call
    attempts: list[_Attempt] = []
    acts = []
    try:
        async with trio.open_nursery() as rtp_nursery:
            for number in numbers:
                child = _child(pc, number, caller_id, timeout, now)
                await svc.save(child)
                acts.append(svc.track(child))
                svc.gw.metrics.calls_active.inc()
                rtp = RtpSession(svc.host, *svc.rtp_range)
                await rtp.open(rtp_nursery)
                attempts.append(_Attempt(number, child, rtp))
            try:
                return await _race_and_bridge(svc, parent, attempts, timeout=timeout,
                                              time_limit=time_limit,
                                              hangup_on_star=hangup_on_star)
            finally:
                rtp_nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for att in attempts:
                await att.rtp.close()
            for act in acts:
                child = act.call
                if not child.final:
                    svc._final(child, C.COMPLETED if child.status == C.IN_PROGRESS
                               else C.CANCELED)
                svc.gw.metrics.calls_active.dec()
                await svc.save(child)
                svc.active.pop(child.sid, None)


async def _race_and_bridge(svc, parent: MediaLeg, attempts: list[_Attempt], *,
                           timeout: float, time_limit: float,
                           hangup_on_star: bool) -> DialResult:
    winner: list[_Attempt] = []
    async with trio.open_nursery() as ring:
        def won(att: _Attempt) -> None:
            if not winner:
                winner.append(att)
                ring.cancel_scope.cancel()

        async def watch_parent() -> None:       # the caller hung up: stop ringing
            await parent.sip.ended.wait()
            ring.cancel_scope.cancel()

        ring.start_soon(watch_parent)
        async with trio.open_nursery() as tries:
            for att in attempts:
                tries.start_soon(_ring, svc, att, timeout, won)
        ring.cancel_scope.cancel()
    for att in attempts:
        if att in winner:
            continue
        if att.out is not None and att.out.answered:      # answered too late: hang up
            with trio.CancelScope(shield=True):
                await att.out.hangup()
        if att.failed:
            svc._final(att.child, att.failed)
        else:
            svc._final(att.child, C.CANCELED)
    if not winner:
        att = attempts[0]
        return _result(_loser_status(attempts), att if len(attempts) == 1 else None, 0,
                       attempts)
    att = winner[0]
    child = att.child
    leg = svc.active[child.sid].leg = await svc._leg(child, att.rtp, att.out, att.remote)
    svc._move(child, C.IN_PROGRESS)
    async with trio.open_nursery() as n:
        n.start_soon(leg.watch)
        try:
            if att.number.send_digits:
                await leg.send_digits(att.number.send_digits)
            if att.number.url and not await _whisper(svc, leg, att):
                await leg.hangup()
                svc._final(child, C.COMPLETED)
                return _result(C.COMPLETED, att, 0, attempts)
            if not parent.ended:
                await bridge(parent, leg, time_limit=time_limit,
                             hangup_on_star=hangup_on_star)
            await leg.hangup()
            svc._final(child, C.COMPLETED)
            return _result(C.COMPLETED, att, child.duration or 0, attempts)
        finally:
            n.cancel_scope.cancel()
