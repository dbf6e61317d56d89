"""The running gateway: wires store, carriers, dispatcher, messaging, inbound, webhooks
and the HTTP API together, and owns start-up and graceful shutdown.

Start (``Gateway.run``): open the store → load overrides, opt-outs and every message
not yet handed to a carrier (``sending`` ones come back ``queued``) → what is still due
(``store.messages_due``: status callbacks not answered, re-sent before webhooks report
started; MOs stored but not acknowledged, the dedupe set) → start the embedded
simulator if configured → webhooks, links, dispatcher, schedulers → the API listens →
``READY=1``. ``task_status.started(api_port)`` is reported at that point.

Stop (SIGTERM or cancel of ``stop()``): ``STOPPING=1`` → the API stops accepting and
finishes in-flight requests → links unbind once in-flight responses are in (bounded) →
status callbacks get a bounded grace period → the store flushes and closes. Nothing
accepted is lost: what was not sent stays ``queued`` in the store.

Reload (SIGHUP or ``reload()``): ``runtime.reload`` re-reads and validates the config
file and applies what can change live; an invalid file changes nothing.

This class is also the API's ``ApiContext`` (``gateway.api.context``).
"""

from __future__ import annotations

import gc
import logging
import signal
import time

import trio

from gateway import __version__, codec
from gateway.api.app import ApiApp
from gateway.api.context import Health, ServiceView
from gateway.codec import text as textmod
from gateway.core import message as M
from gateway.core.message import Message
from gateway.io import sdnotify
from gateway.io.http_client import ClientLimits, HttpClient
from gateway.io.http_server import HttpServer, ServerLimits
from gateway.observability.metrics import Metrics, labelled
from gateway.runtime.callback_outbox import CallbackOutbox
from gateway.runtime.carriers import Carriers
from gateway.runtime.cluster import make_cluster
from gateway.runtime.dispatcher import Dispatcher
from gateway.runtime.inbound import Inbound
from gateway.runtime.messaging import Messaging
from gateway.runtime.numbers import NumberRegistry
from gateway.runtime.reload import Reloader, ReloadResult
from gateway.runtime.voice import VoiceService
from gateway.runtime.webhooks import WebhookSender
from gateway.store import open_store

log = logging.getLogger("gateway.app")

DRAIN_S = 20.0


def _hostport(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class Gateway:
    def __init__(self, settings, *, metrics: Metrics | None = None, registry=None):
        self.settings = settings
        self.metrics = metrics or Metrics(registry)
        self.metrics.build_info.labels(__version__, codec.BACKEND).set(1)
        self.store = open_store(settings.store)
        self.tokens = {a.sid: a.auth_token for a in settings.accounts}
        self.registry = NumberRegistry(settings, self.store)
        self._services = {s.sid: self._service_view(s) for s in settings.messaging_services}
        self._service_of_number = {n: s for s in self._services.values() for n in s.numbers}
        self.carriers = Carriers(settings, self.metrics)
        self.dispatcher = Dispatcher(self)
        self.messaging = Messaging(self)
        self.inbound = Inbound(self)
        self.cluster = make_cluster(self)   # scale-out hooks (runtime/cluster.py)
        wh = settings.webhooks
        self.http_client = HttpClient(
            limits=ClientLimits(
                max_per_origin=64, connect_timeout=wh.connect_timeout,
                read_timeout=wh.read_timeout, total_timeout=wh.total_timeout,
                max_body=wh.max_body_bytes,
            ),
            allow_private=wh.allow_private,
        )
        remote_cfg = None
        if getattr(wh, "sender", "inline") == "process":
            remote_cfg = {
                "limits": {"max_per_origin": 64, "connect_timeout": wh.connect_timeout,
                           "read_timeout": wh.read_timeout, "total_timeout": wh.total_timeout,
                           "max_body": wh.max_body_bytes},
                "allow_private": wh.allow_private, "max_attempts": wh.max_attempts,
                "workers": 64,
            }
        self.webhooks = WebhookSender(self.http_client, max_attempts=wh.max_attempts,
                                      metrics=self.metrics, remote_cfg=remote_cfg,
                                      outbox=CallbackOutbox(self.store, self.auth_token))
        self.voice = VoiceService(self)    # started in run() when voice is configured
        self.api = ApiApp(self, observe=self._observe_api)
        self.server: HttpServer | None = None
        self.simulator = None
        self.nursery: trio.Nursery | None = None
        self.api_port: int | None = None
        self._stopping = trio.Event()
        self._store_ok = True
        self.stopped = False
        self.clock = time.time          # epoch clock (injectable for schedule tests)
        m = self.metrics
        self._m_messages = labelled(m.messages)
        self._m_dlr = labelled(m.dlr)
        self._m_api = labelled(m.api_requests)
        self._m_api_dur = labelled(m.api_request_duration)
        self._m_api_err = labelled(m.api_errors)
        self.metrics.set_queue_provider(self._queue_stats)
        self.metrics.set_carrier_provider(self.carriers.metric_rows)

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await self.store.open()
        self._observe_store()
        try:
            await self._load()
            async with trio.open_nursery() as outer:
                self.nursery = outer
                await outer.start(self._signals)   # before READY: a SIGTERM always drains
                if getattr(self.settings.simulator, "enabled", False):
                    await self._start_simulator(outer)
                await outer.start(self.webhooks.run)
                if VoiceService.wanted(self.settings):
                    await outer.start(self.voice.run)
                await outer.start(self.cluster.run)   # cluster: sender ownership
                outer.start_soon(self.api.keys.refresh_loop, trio.sleep)  # shared store only
                self.carriers.build_links(self.dispatcher)
                async with trio.open_nursery() as links:
                    for link in self.carriers.links.values():
                        await links.start(link.run)
                    outer.start_soon(self.dispatcher.run)
                    outer.start_soon(self.messaging.schedule_loop)
                    outer.start_soon(self.inbound.expire_loop)
                    outer.start_soon(self.carriers.watch)
                    host, port = _hostport(self.settings.api.listen)
                    self.server = HttpServer(self.api.handle, host, port, limits=self._server_limits())
                    self.api_port = await outer.start(self.server.serve)
                    outer.start_soon(self._watchdog)
                    gc.freeze()       # config, tables, loaded state: out of every GC scan
                    sdnotify.notify("READY=1\nSTATUS=" + self._status_line())
                    log.info("gateway ready api=%s:%s codec=%s", host, self.api_port, codec.BACKEND)
                    task_status.started(self.api_port)
                    await self._stopping.wait()
                    await self._drain(outer, links)
        finally:
            with trio.CancelScope(shield=True):
                await self.http_client.aclose()
                await self.store.close()
            self.stopped = True
            log.info("gateway stopped")

    def stop(self) -> None:
        self._stopping.set()

    async def _drain(self, outer: trio.Nursery, links: trio.Nursery) -> None:
        sdnotify.notify("STOPPING=1")
        log.info("gateway draining")
        deadline = trio.current_time() + DRAIN_S
        if self.server is not None:
            await self.server.drain(5.0)
        async with trio.open_nursery() as n:
            for link in self.carriers.links.values():
                n.start_soon(link.close)
        await self.webhooks.wait_idle(max(0.5, min(5.0, deadline - trio.current_time())))
        links.cancel_scope.cancel()
        outer.cancel_scope.cancel()

    async def _signals(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """SIGTERM/SIGINT: drain and stop; SIGHUP: ``reload()`` (not once stopping)."""
        self._reloader = Reloader(self)     # sets the config-load metrics
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
            task_status.started()
            async for sig in sigs:
                if sig != signal.SIGHUP:
                    self.stop()
                elif not self._stopping.is_set():
                    self.nursery.start_soon(self.reload)

    async def reload(self) -> ReloadResult:
        """SIGHUP's entry point (``runtime.reload``): ``.ok`` False = file invalid, unchanged."""
        return await self._reloader.reload()

    async def _watchdog(self) -> None:
        """WATCHDOG=1 only while the event loop runs on time and the store commits."""
        interval = sdnotify.watchdog_interval()
        period = min(interval / 2, 5.0) if interval else 5.0
        while True:
            ok = await self.store.ping()
            self._store_ok = ok
            if ok:
                self.metrics.watchdog_last_ok.set(time.time())
                sdnotify.notify("WATCHDOG=1\nSTATUS=" + self._status_line())
            t0 = trio.current_time()
            await trio.sleep(period)
            # how late the loop woke us: scheduling lag under load
            self.metrics.event_loop_lag.set(max(0.0, trio.current_time() - t0 - period))

    def _observe_store(self) -> None:
        writer = getattr(self.store, "_writer", None)
        if writer is None or not hasattr(writer, "on_commit"):
            return
        duration, batch = self.metrics.store_commit_duration, self.metrics.store_batch_size

        def observe(seconds: float, n: int) -> None:
            duration.observe(seconds)
            batch.observe(n)

        writer.on_commit = observe

    async def _load(self) -> None:
        await self.registry.load()
        await self.messaging.load()
        await self.api.keys.load()          # API keys (SK…) for auth, from the store
        for view in self.registry.views.values():
            self.dispatcher.add_sender(view.phone_number, view.type)
        for alpha in self.registry.alpha_senders():
            self.dispatcher.add_sender(alpha.key, alpha.view.type)
        pending = await self.store.pending_messages()
        for msg in pending:
            if self.cluster.should_load(msg):   # cluster: queued ones are in streams
                self.messaging.place(msg)
        if pending:
            log.info("loaded pending messages count=%d", len(pending))
        due = await self.store.messages_due()
        callbacks = self.messaging.restore_callbacks(due)
        unacked = self.inbound.dedupe.restore(due, time.time())
        if callbacks or unacked:
            log.info("loaded due work status_callbacks=%d unacked_mo=%d", callbacks, unacked)

    async def _start_simulator(self, nursery: trio.Nursery) -> None:
        from gateway.testing.smsc import SimConfig, SmscSimulator

        sim = self.settings.simulator
        host, port = _hostport(sim.listen)
        cfg = SimConfig(host=host, port=port, dlr_delay_ms=sim.dlr_delay_ms,
                        dlr_states=dict(sim.dlr_states))
        self.simulator = SmscSimulator(cfg)
        await nursery.start(self.simulator.serve)

    def _server_limits(self) -> ServerLimits:
        api = self.settings.api
        return ServerLimits(max_body=api.max_body_bytes, max_connections=api.max_connections)

    def _status_line(self) -> str:
        bound = sum(1 for link in self.carriers.links.values() if link.state == "bound")
        depth = sum(self.dispatcher.sched.depth_by_class().values())
        return f"{bound}/{len(self.carriers.links)} carriers bound, {depth} segments queued"

    def _queue_stats(self) -> dict[str, tuple[float, float]]:
        sched = self.dispatcher.sched
        now = trio.current_time()
        depth = sched.depth_by_class()
        age = sched.oldest_age_by_class(now)
        return {c: (depth.get(c, 0), age.get(c, 0.0)) for c in ("long_code", "toll_free", "short_code", "alphanumeric")}

    def _observe_api(self, route: str, status: int, seconds: float, code: int | None) -> None:
        self._m_api(route, str(status)).inc()
        self._m_api_dur(route).observe(seconds)
        if code is not None:
            self._m_api_err(str(code)).inc()

    # -- used by the pipeline ---------------------------------------------------------------
    def class_rate(self, sender_class: str) -> float:
        return float(getattr(self.settings.rates, sender_class))

    def split_mode(self, carrier: str) -> str:
        return self.carriers.split_mode(carrier)

    @staticmethod
    def ton_for(number: str) -> int:
        return 1 if number.startswith("+") else 3 if len(number) <= 6 else 0

    def free_slots(self) -> int:
        return self.carriers.free_slots()

    @property
    def router(self):
        return self.carriers.router

    @property
    def healths(self):
        return self.carriers.healths

    @property
    def links(self):
        return self.carriers.links

    def on_link_state(self, carrier, up, reason):
        self.carriers.on_link_state(carrier, up, reason)

    def health_submit(self, carrier, latency, status):
        self.carriers.on_submit_resp(carrier, latency, status)

    def health_lost(self, carrier, reason):
        self.carriers.on_lost(carrier, reason)

    def count_reroute(self, src, dst):
        self.carriers.count_reroute(src, dst)

    def count_duplicate(self, carrier):
        self.metrics.possible_duplicates.labels(carrier).inc()

    def count_dlr(self, carrier, outcome):
        self._m_dlr(carrier, outcome).inc()
        if outcome in (M.DELIVERED, M.UNDELIVERED):
            self.carriers.on_dlr(carrier, outcome == M.DELIVERED)

    def count_message(self, direction, status):
        self._m_messages("inbound" if direction == M.INBOUND else "outbound", status).inc()

    def status_changed(self, msg: Message) -> None:
        self.messaging.status_changed(msg)

    async def set_opt_out(self, sender, recipient, out):
        await self.messaging.set_opt_out(sender, recipient, out)

    async def send_reply(self, account, from_, to, body, status_callback, bypass_opt_out=False):
        return await self.messaging.send_reply(account, from_, to, body, status_callback, bypass_opt_out)

    def count_segments(self, body: str, smart: bool) -> int:
        return textmod.count_segments(body, smart)

    def service(self, sid: str | None) -> ServiceView | None:
        return self._services.get(sid) if sid else None

    def service_for_number(self, number: str) -> ServiceView | None:
        return self._service_of_number.get(number)

    def store_nowait_kv(self, ns: str, key: str, value: dict) -> None:
        if self.nursery is not None:
            self.nursery.start_soon(self.store.kv_put, ns, key, value)

    @staticmethod
    def _service_view(s) -> ServiceView:
        started = time.time()
        return ServiceView(
            sid=s.sid, account_sid=s.account, friendly_name=s.friendly_name,
            numbers=tuple(s.numbers), sticky_sender=s.sticky_sender,
            sms_url=s.sms_url or "", sms_method=getattr(s, "sms_method", "POST") or "POST",
            fallback_url=getattr(s, "sms_fallback_url", "") or "",
            status_callback=s.status_callback or "", date_created=started, date_updated=started,
            alpha_sender=getattr(s, "alpha_sender", ""),
        )

    # -- ApiContext -------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock()

    def auth_token(self, account_sid: str) -> str | None:
        return self.tokens.get(account_sid)

    def account_friendly_name(self, account_sid: str) -> str:
        return next((a.friendly_name for a in self.settings.accounts if a.sid == account_sid), "")

    def numbers(self, account_sid: str):
        return self.registry.for_account(account_sid)

    def number(self, account_sid: str, phone_number: str):
        """The account's number ``phone_number`` or None (O(1); thousands of numbers)."""
        view = self.registry.get(phone_number)
        return view if view is not None and view.account_sid == account_sid else None

    def alpha_sender(self, account_sid: str, sender_id: str):
        """The account's alphanumeric sender ``sender_id`` (any case) or None."""
        return self.registry.alpha(account_sid, sender_id)

    def services(self, account_sid: str) -> list[ServiceView]:
        return [s for s in self._services.values() if s.account_sid == account_sid]

    async def submit_message(self, msg: Message, idempotency_key: str | None):
        return await self.messaging.submit(msg, idempotency_key)

    async def cancel_message(self, msg: Message) -> Message:
        return await self.messaging.cancel(msg)

    async def redact_message(self, msg: Message) -> Message:
        return await self.messaging.redact(msg)

    async def update_number(self, account_sid: str, phone_number: str, fields: dict):
        return await self.registry.update(phone_number, fields)

    async def health(self) -> Health:
        store_ok = self._store_ok
        carriers = self.carriers.healthz()
        degraded = any(c["smpp"] != "bound" for c in carriers.values())
        status = "failing" if not store_ok else "degraded" if degraded else "ok"
        body = {"status": status, "store": "ok" if store_ok else "failing", "carriers": carriers,
                "version": __version__, "codec": codec.BACKEND}
        return Health(body, 503 if not store_ok else 200)

    def carriers_admin(self) -> list[dict]:
        return self.carriers.admin()

    # -- Calls (CallsContext, delegated to the voice service) ---------------------------
    async def create_call(self, call):
        return await self.voice.create_call(call)

    async def get_call(self, sid: str):
        return await self.voice.get_call(sid)

    async def list_calls(self, account_sid: str):
        return await self.voice.list_calls(account_sid)

    async def update_call(self, call, *, status=None, url=None, method="POST", twiml=None):
        return await self.voice.update_call(call, status=status, url=url, method=method,
                                            twiml=twiml)

    def metrics_exposition(self) -> tuple[bytes, str]:
        return self.metrics.exposition()
