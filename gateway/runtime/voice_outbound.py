"""Outbound call legs of ``VoiceService``: trunk choice, INVITE with failover, and the
life of a Calls API call (ringing, answer, TwiML, hangup).

Owns: ``OutboundCalls`` (mixed into ``VoiceService``; uses its ``gw``, ``ua``, ``host``,
``rtp_range``, ``sip_up``, ``setup_timeout`` and status helpers ``_move``/``_final``/
``save``/``_interpreter``): ``candidates``, ``place`` (also used by ``<Dial>``),
``_outbound``/``_run_outbound`` and ``_leg`` (the answered leg over the SDP answer).

Rules: carriers are the destination's route carriers with a ``sip`` trunk: the router's
healthy order first, then the others, trunks whose last OPTIONS failed last. A carrier
that gives no 18x/final within ``setup_timeout`` or answers 408/5xx before any ringing
is CANCELed and the next one tried (a reroute is counted); after ringing there is no
failover.
Error handling: a call task that raises is logged and its call completed (or failed
when never answered); the RTP session is always closed (shielded).
"""

from __future__ import annotations

import logging

import trio

from gateway.codec import sdp as sdpc
from gateway.core import call as C
from gateway.io.rtp import RtpSession
from gateway.io.sip_endpoint import CallFailed
from gateway.voice.interpreter import Next
from gateway.voice.leg import MediaLeg

log = logging.getLogger("gateway.voice")

RETRY_STATUSES = frozenset({0, 408, 500, 502, 503, 504})


class OutboundCalls:
    # -- outbound -------------------------------------------------------------------
    def candidates(self, to: str) -> list[str]:
        """Carrier names with a SIP trunk for ``to``: router order, then the rest of the
        route; trunks whose last OPTIONS failed go last."""
        by_name = self.gw.carriers.by_name
        digits = to.lstrip("+")
        best, route = -1, []
        for r in self.gw.settings.routes:
            p = r.prefix.lstrip("+")
            if digits.startswith(p) and len(p) > best:
                best, route = len(p), list(r.carriers)
        sip = [n for n in route if n in by_name and getattr(by_name[n], "sip", None)]
        ranked = [n for n in self.gw.router.choose(to, self.gw.healths, trio.current_time())
                  if n in sip]
        rest = sorted((n for n in sip if n not in ranked), key=lambda n: by_name[n].priority)
        order = ranked + rest
        return [n for n in order if self.sip_up.get(n) is not False] + [
            n for n in order if self.sip_up.get(n) is False]

    async def place(self, call: C.Call, rtp: RtpSession, timeout: float):
        """INVITE through the trunks with failover -> (OutboundCall, None) once it rings
        or answers, or (None, final status)."""
        offer = sdpc.offer(self.host, rtp.port)
        names = self.candidates(call.to)
        status = C.FAILED
        for i, name in enumerate(names):
            trunk = self.gw.carriers.by_name[name].sip
            user = call.to.lstrip("+") if call.to.startswith("+") else call.to
            out = await self.ua.invite(
                f"sip:{user}@{trunk.host}:{trunk.port}"
                + (";transport=tls" if trunk.transport == "tls" else ""),
                (trunk.host, trunk.port),
                from_user=call.from_, sdp_offer=offer, timeout=timeout,
                transport=trunk.transport)
            call.carrier, call.sip_call_id = name, out.call_id   # the trunk being tried
            progress = None
            try:
                with trio.move_on_after(self.setup_timeout):
                    progress = await out.wait_progress()
            except trio.Cancelled:
                with trio.CancelScope(shield=True):
                    await out.cancel()
                raise
            if progress in ("ringing", "answered"):
                call.carrier, call.sip_call_id = name, out.call_id
                return out, None
            code = out.status_code if progress == "failed" else 0
            if progress is None:
                await out.cancel()
            if code not in RETRY_STATUSES:
                return None, C.status_for_sip(code)
            self.gw.carriers.healths[name].on_options(False, None, trio.current_time())
            log.warning("call sid=%s carrier=%s gave %s before ringing; failing over",
                        call.sid, name, code or "no answer")
            if i + 1 < len(names):
                self.gw.count_reroute(name, names[i + 1])
        return None, status

    async def _outbound(self, act) -> None:
        call = act.call
        self.gw.metrics.calls_active.inc()
        try:
            with act.scope:
                async with trio.open_nursery() as n:
                    await self._run_outbound(act, n)
                    n.cancel_scope.cancel()
        except Exception:
            log.exception("outbound call sid=%s failed", call.sid)
        finally:
            if not call.final:
                self._final(call, C.COMPLETED if call.status == C.IN_PROGRESS else C.FAILED)
            self.gw.metrics.calls_active.dec()
            with trio.CancelScope(shield=True):
                await self.save(call)
            self.active.pop(call.sid, None)

    async def _run_outbound(self, act, n: trio.Nursery) -> None:
        call = act.call
        rtp = RtpSession(self.host, *self.rtp_range)
        await rtp.open(n)
        try:
            self._move(call, C.INITIATED)
            t0 = trio.current_time()
            out, failed = await self.place(call, rtp, float(call.timeout))
            if out is None:
                self._final(call, failed)
                return
            try:
                if out.provisionals or await out.wait_progress() == "ringing":
                    self._move(call, C.RINGING)
                remote = await out.wait_answer()
            except CallFailed as exc:
                self._final(call, C.NO_ANSWER if exc.status == 408 else C.status_for_sip(exc.status))
                return
            finally:
                if not out.answered and act.scope.cancel_called:
                    with trio.CancelScope(shield=True):
                        await out.cancel()
            self.gw.metrics.call_setup_duration.labels("outbound").observe(trio.current_time() - t0)
            leg = act.leg = await self._leg(call, rtp, out, remote)
            self._move(call, C.IN_PROGRESS)
            n.start_soon(leg.watch)
            if call.send_digits:
                await leg.send_digits(call.send_digits)
            act.interp = self._interpreter(leg)
            with trio.move_on_after(call.time_limit):
                await act.interp.run(Next(call.url, call.method) if call.url
                                     else Next(twiml=call.twiml))
            await leg.hangup()
            self._final(call, C.COMPLETED)
        finally:
            with trio.CancelScope(shield=True):
                await rtp.close()

    async def _leg(self, call: C.Call, rtp: RtpSession, out, remote: bytes) -> MediaLeg:
        try:
            ans = sdpc.parse(remote)
            pt = sdpc.choose_codec(ans)
            rtp.set_remote((ans.connection_host or "127.0.0.1", ans.audio_port), pt,
                           ans.telephone_event_pt, codec=ans.codec_name(pt))
        except sdpc.SdpError as exc:
            log.warning("call sid=%s: unusable SDP answer (%s)", call.sid, exc)
        return MediaLeg(self, call, rtp, out, answered=True)
