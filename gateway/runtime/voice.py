"""Voice at run time: the SIP user agent, inbound and outbound calls, ``<Dial>``
bridges, conference rooms (``conferences``, a ``voice.conference.ConferenceHub``), call
queues (``queues``, a ``voice.queues.QueueHub``), ``<Dial><Sip>`` (``allow_sip_dial``),
trunk probing, call records and call status callbacks.

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
- Outbound (Calls API, ``<Dial>``): ``voice_outbound.OutboundCalls`` (trunk order,
  failover before ringing).
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
from gateway.io import sip_tls
from gateway.io.rtp import RtpSession
from gateway.io.sip_endpoint import SipUA
from gateway.runtime.voice_outbound import RETRY_STATUSES, OutboundCalls
from gateway.runtime.webhooks import Hook, WebhookError
from gateway.store.base import StoreError
from gateway.voice import tts
from gateway.voice.conference import ConferenceHub
from gateway.voice.dial import dial_numbers
from gateway.voice.interpreter import (
    DialResult,
    FetchError,
    Interpreter,
    Next,
    call_params,
)
from gateway.voice.leg import MediaLeg
from gateway.voice.queues import QueueHub
from gateway.voice.recordings import RecordingStore, state_dir

log = logging.getLogger("gateway.voice")

NS = "call"
__all__ = ["NS", "RETRY_STATUSES", "VoiceService"]


def _hostport(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _tls(settings) -> sip_tls.SipTls:
    """``sip_tls.from_settings`` + ``[sip] tls_ca``: the CA that verifies TLS peers that are
    not trunks (``<Dial><Sip>`` to ``sips:`` URIs); unset = system CAs."""
    tls = sip_tls.from_settings(settings)
    ca = getattr(settings.sip, "tls_ca", "")
    if ca:
        tls.client = sip_tls.client_context(ca)
    return tls


class _Active:
    def __init__(self, call: C.Call):
        self.call = call
        self.scope = trio.CancelScope()
        self.t0 = trio.current_time()
        self.leg: MediaLeg | None = None
        self.interp: Interpreter | None = None


class VoiceService(OutboundCalls):
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
        self.conferences = ConferenceHub(wall=gw.now, store=gw.store)   # <Conference> rooms
        self.queues = QueueHub(store=gw.store, wall=gw.now)      # <Enqueue>, Queues API
        # [sip] allow_sip_dial (default off): <Dial><Sip> may INVITE arbitrary URIs
        self.allow_sip_dial = bool(getattr(gw.settings.sip, "allow_sip_dial", False))

    @staticmethod
    def wanted(settings) -> bool:
        return any(getattr(c, "sip", None) for c in settings.carriers) or any(
            n.voice_url for n in settings.numbers)

    # -- lifecycle ------------------------------------------------------------------
    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await self._recover()
        self.ua = SipUA(self.host, self.port, accept_register=self.accept_register,
                        tls=_tls(self.gw.settings))   # [sip] tls_*, tls trunks
        async with trio.open_nursery() as nursery:
            self.nursery = self.conferences.nursery = nursery
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
        await self.conferences.recover()

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

    async def conference(self, parent: MediaLeg, room, *, time_limit: float,
                         hangup_on_star: bool) -> DialResult:
        """``<Dial><Conference>``: join the account's room of that name."""
        fetch, notify = self._fetcher(parent.call.account_sid)
        return await self.conferences.join(parent, room, time_limit=time_limit,
                                           hangup_on_star=hangup_on_star, notify=notify,
                                           fetch=fetch)

    async def enqueue(self, parent: MediaLeg, verb):
        """``<Enqueue>``: wait in the account's queue of that name."""
        fetch, _ = self._fetcher(parent.call.account_sid)
        return await self.queues.enqueue(parent, verb, fetch)

    async def dial_queue(self, parent: MediaLeg, noun, *, timeout: float, time_limit: float,
                         hangup_on_star: bool) -> DialResult:
        """``<Dial><Queue>``: bridge the queue's oldest caller."""
        return await self.queues.dequeue(self, parent, noun, timeout=timeout,
                                         time_limit=time_limit, hangup_on_star=hangup_on_star)

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
