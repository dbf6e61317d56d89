"""Voice at run time: the SIP user agent, inbound and outbound calls, ``<Dial>``
bridges, trunk probing, call records and call status callbacks.

Owns: ``VoiceService(gw)`` — started by ``Gateway.run`` (``await nursery.start(
voice.run)``) when a carrier has a ``sip`` trunk or a number a ``voice_url``; the calls
store (kv namespace ``call``, value ``Call.to_dict()``), ``recordings`` (a
``RecordingStore``: WAVs under the state directory, served by ``api.recordings``), and the
Calls API operations the Gateway delegates here.

Rules:
- Inbound INVITE: the To user (with or without ``+``) must be a configured number with a
  ``voice_url``, else 404. Then 180, an SDP answer on an RTP port from
  ``[sip] rtp_port_min..max`` (488 when no common codec), and the interpreter runs the
  number's ``voice_url`` (signed POST, ``CallStatus=ringing``); the call is answered by
  the first verb that is not ``<Reject>``.
- Outbound (Calls API, ``<Dial>``): carriers are the destination's route carriers with a
  ``sip`` trunk: the router's healthy order first, then the others, trunks whose last
  OPTIONS failed last. A carrier that gives no 18x/final within ``setup_timeout`` or
  answers 408/5xx before any ringing is CANCELed and the next one tried (a reroute is
  counted); after ringing there is no failover.
- Status callbacks (signed, retried, ``Hook("voice")``) for the StatusCallbackEvent
  choices (inbound calls: the number's ``status_callback``, ``completed`` only, as
  Twilio's number-level StatusCallback): initiated, ringing, answered, completed (every final status), with
  ``CallbackSource``, ``SequenceNumber``, ``Timestamp`` and, when final,
  ``CallDuration``.
- OPTIONS to every trunk every ``options_interval``: any final answer but 408/503 is
  "up"; the result feeds the carrier's health (``on_options``) and ``/healthz``.
- Metrics: ``gateway_calls_active``, ``gateway_calls_total{direction,status}`` at the
  final status, ``gateway_call_setup_duration_seconds{direction}`` INVITE -> answer.

Error handling: a failed webhook or TwiML goes to the fallback URL, then a spoken error
(interpreter). Calls left unfinished by a crash are marked ``failed`` (never answered)
or ``completed`` at start. A call task that raises is logged and its call completed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import format_datetime

import trio

from gateway.codec import sdp as sdpc
from gateway.core import call as C
from gateway.core import ids
from gateway.core import numbers as nums
from gateway.io.rtp import RtpSession
from gateway.io.sip_endpoint import CallFailed, SipUA
from gateway.runtime.webhooks import Hook, WebhookError
from gateway.store.base import StoreError
from gateway.voice import tts
from gateway.voice.dial import dial_numbers
from gateway.voice.interpreter import (
    DialResult,
    FetchError,
    Interpreter,
    Next,
    call_params,
)
from gateway.voice.leg import MediaLeg
from gateway.voice.recordings import RecordingStore, state_dir

log = logging.getLogger("gateway.voice")

NS = "call"
RETRY_STATUSES = frozenset({0, 408, 500, 502, 503, 504})


def _hostport(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class _Active:
    def __init__(self, call: C.Call):
        self.call = call
        self.scope = trio.CancelScope()
        self.t0 = trio.current_time()
        self.leg: MediaLeg | None = None
        self.interp: Interpreter | None = None


class VoiceService:
    setup_timeout = 4.0          # s to the first 18x/final before trying the next trunk

    def __init__(self, gw) -> None:
        self.gw = gw
        self.host, self.port = _hostport(gw.settings.sip.listen)
        self.rtp_range = (gw.settings.sip.rtp_port_min, gw.settings.sip.rtp_port_max)
        # [sip] accept_register (default off): answer REGISTER 200 for phones that must
        # register before calling (pyVoIP); trunks are configured, never registered.
        self.accept_register = bool(getattr(gw.settings.sip, "accept_register", False))
        self.ua: SipUA | None = None
        self.nursery: trio.Nursery | None = None
        self.tts = tts.default()
        self.active: dict[str, _Active] = {}
        self.sip_up: dict[str, bool | None] = {
            c.name: None for c in gw.settings.carriers if getattr(c, "sip", None)}
        self.recordings = RecordingStore(
            gw.store, state_dir(gw.settings.store.path) / "recordings",
            gw.settings.api.public_url, gw.now)

    @staticmethod
    def wanted(settings) -> bool:
        return any(getattr(c, "sip", None) for c in settings.carriers) or any(
            n.voice_url for n in settings.numbers)

    # -- lifecycle ------------------------------------------------------------------
    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await self._recover()
        self.ua = SipUA(self.host, self.port, accept_register=self.accept_register)
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self.port = await nursery.start(self.ua.serve)
            self.ua.on_incoming = self._inbound
            for c in self.gw.settings.carriers:
                if getattr(c, "sip", None):
                    nursery.start_soon(self._probe_loop, c.name, c.sip)
            log.info("voice ready sip=%s:%s", self.host, self.port)
            task_status.started(self.port)

    async def _recover(self) -> None:
        now = self.gw.now()
        for sid, d in await self.gw.store.kv_items(NS):
            call = C.Call.from_dict(d)
            if not call.final:
                status = C.COMPLETED if call.status == C.IN_PROGRESS else C.FAILED
                C.advance(call, status, now)
                await self.gw.store.kv_put(NS, sid, call.to_dict())

    # -- store / API ----------------------------------------------------------------
    async def save(self, call: C.Call) -> None:
        try:
            await self.gw.store.kv_put(NS, call.sid, call.to_dict())
        except StoreError:
            log.exception("call sid=%s: store write failed (status %s)", call.sid, call.status)

    async def get_call(self, sid: str) -> C.Call | None:
        if sid in self.active:
            return self.active[sid].call
        d = await self.gw.store.kv_get(NS, sid)
        return C.Call.from_dict(d) if d else None

    async def list_calls(self, account_sid: str) -> list[C.Call]:
        rows = [C.Call.from_dict(d) for _, d in await self.gw.store.kv_items(NS)]
        rows = [self.active[c.sid].call if c.sid in self.active else c
                for c in rows if c.account_sid == account_sid]
        rows.sort(key=lambda c: (c.date_created, c.sid), reverse=True)
        return rows

    async def create_call(self, call: C.Call) -> C.Call:
        await self.save(call)
        if self.nursery is None:
            self._final(call, C.FAILED)
            await self.save(call)
            return call
        act = self.active[call.sid] = _Active(call)
        self.nursery.start_soon(self._outbound, act)
        return call

    async def update_call(self, call: C.Call, *, status=None, url=None, method="POST",
                          twiml=None) -> C.Call:
        act = self.active.get(call.sid)
        if act is None:
            return call
        call = act.call
        if status == C.CANCELED and call.status in (C.QUEUED, C.INITIATED, C.RINGING):
            act.scope.cancel()
            self._final(call, C.CANCELED)
        elif status == C.COMPLETED:
            if act.leg is not None and act.leg.answered:
                await act.leg.hangup()
            else:
                act.scope.cancel()
                self._final(call, C.CANCELED)
        elif url or twiml:
            if act.interp is not None:
                act.interp.replace(Next(url, method, twiml=twiml))
            else:
                call.url, call.method, call.twiml = url, method, twiml
        await self.save(call)
        return call

    async def save_recording(self, call: C.Call, wav: bytes, seconds: int) -> tuple[str, str]:
        """Store a ``<Record>`` WAV -> (RecordingSid, RecordingUrl)."""
        rec = await self.recordings.save(call.account_sid, call.sid, wav, seconds)
        return rec.sid, self.recordings.url(rec)

    # -- status ---------------------------------------------------------------------
    def _move(self, call: C.Call, status: str) -> bool:
        if not C.advance(call, status, self.gw.now()):
            return False
        if C.wants_callback(call, status):
            self._callback(call, status)
        if self.nursery is not None:
            self.nursery.start_soon(self.save, call)
        return True

    def _final(self, call: C.Call, status: str) -> None:
        if call.final:
            return
        if not C.can_move(call.status, status):
            status = C.COMPLETED if call.status == C.IN_PROGRESS else C.FAILED
        self._move(call, status)
        direction = "inbound" if call.direction == C.INBOUND else "outbound"
        self.gw.metrics.calls.labels(direction, call.status).inc()

    def _callback(self, call: C.Call, status: str) -> None:
        token = self.gw.auth_token(call.account_sid) or ""
        call.sequence += 1
        params = call_params(call) + [
            ("CallbackSource", "call-progress-events"),
            ("SequenceNumber", str(call.sequence - 1)),
            ("Timestamp", format_datetime(datetime.fromtimestamp(self.gw.now(), UTC))),
        ]
        if call.final:
            params += [("CallDuration", str(call.duration or 0)), ("Duration",
                       str(((call.duration or 0) + 59) // 60))]
        self.gw.webhooks.enqueue(Hook("voice", call.status_callback or "",
                                      call.status_callback_method, params, token))

    def on_answered(self, call: C.Call) -> None:
        act = self.active.get(call.sid)
        if act is not None and call.direction == C.INBOUND:
            self.gw.metrics.call_setup_duration.labels("inbound").observe(
                trio.current_time() - act.t0)
        self._move(call, C.IN_PROGRESS)

    def on_rejected(self, call: C.Call, status: str) -> None:
        self._final(call, status)

    def _fetcher(self, account_sid: str):
        token = self.gw.auth_token(account_sid) or ""

        async def fetch(url: str, method: str, params: list[tuple[str, str]]):
            try:
                res = await self.gw.webhooks.call(Hook("voice", url, method, params, token))
            except WebhookError as exc:
                raise FetchError(exc.code, str(exc)) from None
            return res.body, res.content_type

        def notify(url: str, method: str, params: list[tuple[str, str]]) -> None:
            self.gw.webhooks.enqueue(Hook("voice", url, method, params, token))
        return fetch, notify

    def _interpreter(self, leg: MediaLeg) -> Interpreter:
        fetch, notify = self._fetcher(leg.call.account_sid)
        return Interpreter(leg, fetch, fallback_url=leg.call.fallback_url,
                           fallback_method=leg.call.fallback_method, notify=notify)

    # -- inbound --------------------------------------------------------------------
    async def _inbound(self, inv) -> None:
        user = nums.normalize(inv.to_user)
        view = self.gw.registry.get(user) or self.gw.registry.get("+" + user.lstrip("+"))
        if view is None or not view.voice_url:
            log.info("inbound call to unknown number %s: 404", inv.to_user)
            await inv.reject(404, "Not Found")
            return
        try:
            offer = sdpc.parse(inv.remote_sdp)
        except sdpc.SdpError as exc:
            log.info("inbound call %s: bad SDP (%s): 488", inv.call_id, exc)
            await inv.reject(488)
            return
        now = self.gw.now()
        from_ = nums.normalize(inv.from_user)
        if from_.isdigit() and len(from_) >= 10:
            from_ = "+" + from_
        call = C.Call(sid=ids.new_sid("CA"), account_sid=view.account_sid, from_=from_,
                      to=view.phone_number, direction=C.INBOUND, status=C.RINGING,
                      date_created=now, date_updated=now, url=view.voice_url,
                      method=view.voice_method, fallback_url=view.voice_fallback_url or None,
                      fallback_method=view.voice_fallback_method, sip_call_id=inv.call_id,
                      carrier=self._carrier_at(inv.source),
                      # the number's StatusCallback (Twilio: voice status, "completed" only)
                      status_callback=view.status_callback or None,
                      status_callback_method=view.status_callback_method or "POST",
                      status_callback_events=C.DEFAULT_EVENTS if view.status_callback else ())
        await inv.ringing()
        act = self.active[call.sid] = _Active(call)
        self.gw.metrics.calls_active.inc()
        try:
            await self.save(call)
            async with trio.open_nursery() as n:
                rtp = RtpSession(self.host, *self.rtp_range)
                await rtp.open(n)
                try:
                    local, pt = sdpc.answer(offer, self.host, rtp.port)
                except sdpc.SdpError:
                    await inv.reject(488)
                    self._final(call, C.FAILED)
                    n.cancel_scope.cancel()
                    await rtp.close()
                    return
                rtp.set_remote((offer.connection_host or inv.source[0], offer.audio_port), pt,
                               offer.telephone_event_pt, codec=offer.codec_name(pt))
                leg = act.leg = MediaLeg(self, call, rtp, inv, local_sdp=local)
                act.interp = self._interpreter(leg)
                n.start_soon(leg.watch)
                await act.interp.run(Next(call.url, call.method))
                await rtp.close()
                n.cancel_scope.cancel()
            if not call.final:
                self._final(call, C.COMPLETED if call.status == C.IN_PROGRESS else C.CANCELED)
        except Exception:
            log.exception("inbound call sid=%s failed", call.sid)
            self._final(call, C.COMPLETED if call.status == C.IN_PROGRESS else C.FAILED)
        finally:
            self.gw.metrics.calls_active.dec()
            with trio.CancelScope(shield=True):
                await self.save(call)
            self.active.pop(call.sid, None)

    def _carrier_at(self, source) -> str | None:
        for c in self.gw.settings.carriers:
            if getattr(c, "sip", None) and c.sip.host == source[0]:
                return c.name
        return None

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
                f"sip:{user}@{trunk.host}:{trunk.port}", (trunk.host, trunk.port),
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

    async def _outbound(self, act: _Active) -> None:
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

    async def _run_outbound(self, act: _Active, n: trio.Nursery) -> None:
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

    def track(self, call: C.Call) -> _Active:
        """Register a running call (its record is served from memory until it ends)."""
        act = self.active[call.sid] = _Active(call)
        return act

    # -- <Dial> ---------------------------------------------------------------------
    async def dial(self, parent: MediaLeg, numbers, *, timeout: float, caller_id: str,
                   time_limit: float, hangup_on_star: bool) -> DialResult:
        """``<Dial>``: ring every number at once, bridge the first to answer."""
        return await dial_numbers(self, parent, numbers, timeout=timeout,
                                  caller_id=caller_id, time_limit=time_limit,
                                  hangup_on_star=hangup_on_star)

    # -- trunk probes ---------------------------------------------------------------
    async def _probe_loop(self, name: str, trunk) -> None:
        while True:
            status, rtt = await self.ua.options((trunk.host, trunk.port),
                                                timeout=min(2.0, trunk.options_interval),
                                                transport=trunk.transport)
            ok = status != 0 and status not in (408, 503)
            if self.sip_up.get(name) is not ok:
                log.info("sip trunk carrier=%s %s (status %s)", name, "up" if ok else "down",
                         status)
            self.sip_up[name] = ok
            self.gw.carriers.set_sip_state(name, ok)
            self.gw.carriers.healths[name].on_options(ok, rtt if ok else None,
                                                      trio.current_time())
            await trio.sleep(trunk.options_interval)

    def healthz(self) -> dict[str, str]:
        """{carrier: "up"|"down"} for carriers with a SIP trunk."""
        return {name: "up" if up else "down" for name, up in self.sip_up.items()}
