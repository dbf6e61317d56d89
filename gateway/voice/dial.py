"""``<Dial><Number>``: the child leg of a call, placed through a carrier trunk and
bridged to its parent.

Owns: ``dial_child(service, parent_leg, number, ...) -> DialResult`` — the child
``Call`` record (direction ``outbound-dial``, ``parent_call_sid``, starts
``initiated``), the INVITE through ``service.place`` (same trunk order and failover as
API calls), ``sendDigits`` after answer, and the bridge until either side hangs up, the
``timeLimit`` passes or ``*`` is pressed with ``hangupOnStar``.

Rules: the child's final status is the ``DialCallStatus`` (completed, busy, no-answer,
failed, canceled); ``DialCallDuration`` is the bridged time in whole seconds.
Error handling: a failed INVITE is a DialResult, never an exception; the child's RTP
session is closed and its record saved whatever happens (shielded).
"""

from __future__ import annotations

import trio

from gateway.core import call as C
from gateway.core import ids
from gateway.core import numbers as nums
from gateway.io.rtp import RtpSession
from gateway.io.sip_endpoint import CallFailed
from gateway.voice.interpreter import DialResult
from gateway.voice.leg import MediaLeg, bridge


async def dial_child(svc, parent: MediaLeg, number, *, timeout: float, caller_id: str,
                 time_limit: float, hangup_on_star: bool) -> DialResult:
    now = svc.gw.now()
    pc = parent.call
    child = C.Call(sid=ids.new_sid("CA"), account_sid=pc.account_sid,
                   from_=caller_id or pc.from_, to=nums.normalize(number.number),
                   direction=C.OUTBOUND_DIAL, status=C.INITIATED, date_created=now,
                   date_updated=now, parent_call_sid=pc.sid, timeout=int(timeout),
                   status_callback_events=())
    await svc.save(child)
    act = svc.track(child)
    svc.gw.metrics.calls_active.inc()
    try:
        async with trio.open_nursery() as n:
            rtp = RtpSession(svc.host, *svc.rtp_range)
            await rtp.open(n)
            try:
                out, failed = await svc.place(child, rtp, timeout)
                if out is None:
                    svc._final(child, failed)
                    return DialResult(child.status, child.sid, 0)
                try:
                    if out.provisionals or await out.wait_progress() == "ringing":
                        svc._move(child, C.RINGING)
                    remote = await out.wait_answer()
                except CallFailed as exc:
                    svc._final(child, C.NO_ANSWER if exc.status == 408
                                else C.status_for_sip(exc.status))
                    return DialResult(child.status, child.sid, 0)
                leg = act.leg = await svc._leg(child, rtp, out, remote)
                svc._move(child, C.IN_PROGRESS)
                n.start_soon(leg.watch)
                if number.send_digits:
                    await leg.send_digits(number.send_digits)
                await bridge(parent, leg, time_limit=time_limit,
                             hangup_on_star=hangup_on_star)
                await leg.hangup()
                svc._final(child, C.COMPLETED)
                return DialResult(C.COMPLETED, child.sid, child.duration or 0)
            finally:
                n.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    await rtp.close()
    finally:
        if not child.final:
            svc._final(child, C.COMPLETED if child.status == C.IN_PROGRESS else C.CANCELED)
        svc.gw.metrics.calls_active.dec()
        with trio.CancelScope(shield=True):
            await svc.save(child)
        svc.active.pop(child.sid, None)
