"""SMPP link to one carrier: trio adapter around ``gateway.proto.smpp_session``.

Owns: the TCP connection(s) of one carrier's bind (one transceiver, or a transmitter +
receiver pair for ``bind = "tx_rx"``), reading into the session, one coalesced
``send_all`` per batch of outgoing PDUs, the session's timers, reconnecting, and turning
session events into handler calls (``on_link_state``, ``on_submit_resp``,
``on_submit_lost``, ``on_deliver``). Handler methods are sync, called from the link's
tasks, and must not block.

Deliver answers (store before ack): ``handler.on_deliver`` returns the deliver_sm_resp
status, or None = "answer pending": the runtime calls ``link.answer_deliver(pdu, status)``
once the content is durably stored. Answers may go out in any order (SMPP allows it) and
a pending one never holds back other PDUs. A pending answer belongs to the connection
that received the PDU: if that connection is gone, the answer is dropped and the carrier
delivers the PDU again (at least once). Back-pressure: while a bind has
``max_pending_delivers`` (default 256) unanswered PDUs, its reader stops reading the
socket (TCP pushes back on the carrier); it resumes as answers go out.

Rules:
- ``run`` reports ``task_status.started()`` at once (a dead carrier must not block the
  daemon's start) and then loops forever; the link state goes through
  ``handler.on_link_state`` and ``link.state`` ("bound" | "down"). With tx_rx the state is
  that of the transmitter (the one that carries submits); the receiver reconnects on its
  own.
- ``submit`` never blocks: it returns False when the link is not bound, closing,
  throttled, or the window is full; ``wait_slot`` waits for that to change. It raises
  ValueError for a PDU that cannot be encoded (fail that message; nothing was sent).
- Every accepted submit gets exactly one of ``on_submit_resp`` or (inside a list)
  ``on_submit_lost``, also across drops.

Error handling:
- Connect errors, bind failures, resets, framing loss, ``response_timeout`` of silence:
  the connection is closed, unanswered submits go to ``on_submit_lost`` (then
  ``on_link_state(False)``), and the link reconnects after a jittered exponential backoff:
  uniform(d/2, d) with d = 0.5 s * 2**n, capped at 30 s; n resets once a bind succeeds,
  so the first retry after a drop comes within 0.5 s.
- ESME_RTHROTTLED / ESME_RMSGQFUL go to ``on_submit_resp`` with that status (the caller
  re-queues) and pause new submits on this link for 0.1 s, doubling while throttling
  persists, up to 1 s (``EsmeSession.throttled_until``).
- Metrics (optional ``metrics`` object, ``gateway.observability.metrics.Metrics``):
  enquire_link RTT, reconnects, throttled answers, window in use. Submit latency is
  NOT observed here: the handler gets it and the runtime records it (no double count).
- A handler exception is logged; for ``on_deliver`` the PDU is answered with
  ESME_RX_T_APPN (temporary application error) so the SMSC retries it.
"""

from __future__ import annotations

import logging
import math
import random

import trio

from gateway import codec
from gateway.proto import smpp_events as ev
from gateway.proto.smpp_session import BOUND, CLOSED, EsmeSession

log = logging.getLogger("gateway.smpp")

BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0
RECV_SIZE = 65536
MAX_PENDING_DELIVERS = 256
_THROTTLES = (codec.Status.ESME_RTHROTTLED, codec.Status.ESME_RMSGQFUL)


class _Bind:
    """One connection + session of the link, reconnecting forever."""

    def __init__(self, link: SmppLink, bind_type: str, primary: bool) -> None:
        self.link = link
        self.bind_type = bind_type
        self.primary = primary
        self.session: EsmeSession | None = None
        self.stream = None
        self.up = False
        self.send_wake = trio.Event()
        self.timer_scope = trio.CancelScope()
        self.conn_scope = trio.CancelScope()
        self.attempt = 0
        self.answered = trio.Event()       # set when a pending deliver answer went out
        self.reason = "closed"
        self.last_reason = ""

    def bound(self) -> bool:
        s = self.session
        return s is not None and s.state == BOUND

    async def run_forever(self) -> None:
        link = self.link
        try:
            while True:
                await link.wait_gate()   # cluster: bind only while a bind lease is held
                await self._connect_once()
                if link.closing:
                    return
                await self._backoff()
        finally:
            self._lost("link stopped")

    async def _connect_once(self) -> None:
        try:
            reason = await self._one_connection()
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        self._lost(reason)
        self.last_reason = reason

    async def _backoff(self) -> None:
        link = self.link
        d = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** self.attempt)
        self.attempt += 1
        if link.m_reconnects is not None:
            link.m_reconnects.inc()
        delay = link.rng.uniform(d / 2, d)
        log.info("smpp %s/%s down (%s), reconnect in %.2fs", link.name, self.bind_type,
                 self.last_reason, delay)
        await trio.sleep(delay)

    async def _one_connection(self) -> str:
        link, cfg = self.link, self.link.cfg
        with trio.move_on_after(link.connect_timeout) as cs:
            stream = await trio.open_tcp_stream(cfg.host, int(cfg.port))
        if cs.cancelled_caught:
            return "connect timeout"
        self.stream = stream
        session = EsmeSession.from_cfg(cfg, self.bind_type)
        self.session = session
        self.reason = "connection closed"
        try:
            with trio.CancelScope() as self.conn_scope:
                async with trio.open_nursery() as nursery:
                    session.start_bind(trio.current_time())
                    nursery.start_soon(self._writer)
                    nursery.start_soon(self._timer)
                    self.wake_writer()
                    await self._reader()
                    nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(0.5):
                    tail = session.data_to_send()
                    if tail:
                        try:
                            await stream.send_all(tail)
                        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                            pass
                await stream.aclose()
        return self.reason

    def _lost(self, reason: str) -> None:
        s = self.session
        if s is not None and self.link._awaiting:
            self._forget_answers(s)
        if s is not None and s.state != CLOSED:
            s.connection_lost(reason)
            self.process()
        elif self.up:
            self._set_up(False, reason)

    # ---------------------------------------------------------------- tasks
    async def _reader(self) -> None:
        try:
            await self._read_loop()
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.reason = f"read error: {exc!r}"

    async def _read_loop(self) -> None:
        session, stream = self.session, self.stream
        receive = stream.receive_some
        limit = self.link.max_pending_delivers
        while True:
            while session.unanswered >= limit and session.state != CLOSED:
                self.answered = trio.Event()          # back-pressure: stop reading
                await self.answered.wait()
            data = await receive(RECV_SIZE)
            if not data:
                session.connection_lost("connection closed by peer")
                self.process()
                return
            session.receive_data(data, trio.current_time())
            self.process()
            if session.state == CLOSED:
                return

    async def _writer(self) -> None:
        session, send_all = self.session, self.stream.send_all
        try:
            while True:
                await self.send_wake.wait()
                self.send_wake = trio.Event()
                data = session.data_to_send()
                if data:
                    await send_all(data)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.reason = f"write error: {exc!r}"
            self.conn_scope.cancel()

    def wake_writer(self) -> None:
        self.send_wake.set()

    async def _timer(self) -> None:
        session = self.session
        while True:
            d = session.next_deadline()
            with trio.CancelScope(deadline=math.inf if d is None else d) as self.timer_scope:
                await trio.sleep_forever()
            session.tick(trio.current_time())
            self.process()
            if session.state == CLOSED:
                self.conn_scope.cancel()
                return

    def rearm_timer(self) -> None:
        d = self.session.next_deadline()
        if d is not None and d < self.timer_scope.deadline:
            self.timer_scope.deadline = d

    # ---------------------------------------------------------------- events
    def process(self) -> None:
        session, link = self.session, self.link
        events = session.next_events()
        if events:
            h, name = link.handler, link.name
            freed = False
            for e in events:
                t = type(e)
                try:
                    if t is ev.SubmitResp:
                        freed = True
                        h.on_submit_resp(name, e.ref, e.status, e.message_id, e.latency)
                        if e.status in _THROTTLES and link.m_throttled is not None:
                            link.m_throttled.inc()
                    elif t is ev.DeliverReceived:
                        self._deliver(e.pdu)
                    elif t is ev.SubmitsLost:
                        freed = True
                        log.warning("smpp %s: %d submits lost (%s)", name, len(e.refs), e.reason)
                        h.on_submit_lost(name, e.refs, e.reason)
                    elif t is ev.Bound:
                        self.attempt = 0
                        self._set_up(True, "bound")
                    elif t is ev.BindFailed:
                        self.reason = f"bind failed: status 0x{e.status:08x}"
                        log.warning("smpp %s/%s %s", name, self.bind_type, self.reason)
                    elif t is ev.LinkDead or t is ev.Unbound:
                        self.reason = e.reason if t is ev.LinkDead else "unbound"
                        if link._awaiting:
                            self._forget_answers(session)
                        self._set_up(False, self.reason)
                    elif t is ev.ProtocolError:
                        log.info("smpp %s: protocol error %r", name, e)
                    elif t is ev.EnquireLinkRtt:
                        link.last_rtt = e.rtt
                        if link.m_rtt is not None:
                            link.m_rtt.observe(e.rtt)
                except Exception:
                    log.exception("smpp %s: handler failed on %r", name, e)
            if freed:
                link.notify()
                if link.m_window is not None and self.primary:
                    link.m_window.set(len(session._inflight))
        if session.has_output:
            self.send_wake.set()

    def _deliver(self, pdu) -> None:
        link = self.link
        session = self.session
        link._awaiting[id(pdu)] = (pdu, self, session)
        try:
            status = link.handler.on_deliver(link.name, pdu)
        except Exception:
            log.exception("smpp %s: on_deliver failed", link.name)
            status = codec.Status.ESME_RX_T_APPN
        if status is not None:
            link.answer_deliver(pdu, status)

    def _forget_answers(self, session) -> None:
        """The connection is gone: its pending answers can never be sent."""
        awaiting = self.link._awaiting
        for key in [k for k, v in awaiting.items() if v[2] is session]:
            del awaiting[key]
        self.answered.set()
        self.link.notify()

    def _set_up(self, up: bool, reason: str) -> None:
        if up == self.up:
            return
        self.up = up
        link = self.link
        if self.primary:
            try:
                link.handler.on_link_state(link.name, up, reason)
            except Exception:
                log.exception("smpp %s: on_link_state failed", link.name)
        log.info("smpp %s/%s %s (%s)", link.name, self.bind_type, "up" if up else "down", reason)
        link.notify()


class SmppLink:
    """One carrier's SMPP link. See the module docstring."""

    def __init__(self, name: str, smpp_cfg, handler, *, metrics=None,
                 rng: random.Random | None = None,
                 max_pending_delivers: int = MAX_PENDING_DELIVERS) -> None:
        self.name = name
        self.max_pending_delivers = max(1, max_pending_delivers)
        #: id(pdu) -> (pdu, bind, session) of deliver_sm whose answer is pending
        self._awaiting: dict[int, tuple] = {}
        self.cfg = smpp_cfg
        self.handler = handler
        self.metrics = metrics
        self.rng = rng or random.Random()
        self.closing = False
        self.last_rtt: float | None = None
        self.connect_timeout = float(getattr(smpp_cfg, "connect_timeout", 0) or
                                     getattr(smpp_cfg, "response_timeout", 5) or 5)
        bind = getattr(smpp_cfg, "bind", "transceiver")
        if bind == "tx_rx":
            self._tx = _Bind(self, "transmitter", True)
            self._binds = [self._tx, _Bind(self, "receiver", False)]
        elif bind in ("transceiver", "transmitter", "receiver"):
            self._tx = _Bind(self, bind, True)
            self._binds = [self._tx]
        else:
            raise ValueError(f"smpp bind must be transceiver or tx_rx, not {bind!r}")
        self._slot_event: trio.Event | None = None
        self._run_scope = trio.CancelScope()
        #: cluster hook: ``async gate(name)`` returns once this gateway may bind
        #: (``runtime.cluster_binds``); None = always
        self.gate = None
        m = metrics
        self.m_rtt = _child(m, "smpp_enquire_link_rtt", name)
        self.m_reconnects = _child(m, "smpp_reconnects", name)
        self.m_throttled = _child(m, "smpp_throttled", name)
        self.m_window = _child(m, "smpp_window_in_use", name)

    @property
    def state(self) -> str:
        return "bound" if self._tx.bound() else "down"

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        with self._run_scope:
            async with trio.open_nursery() as nursery:
                for b in self._binds:
                    nursery.start_soon(b.run_forever)

    async def wait_gate(self) -> None:
        """Cluster hook: wait until this gateway may connect (holds a bind lease)."""
        if self.gate is not None:
            await self.gate(self.name)

    def drop(self, reason: str) -> None:
        """Cluster hook: close the connection(s) now (bind lease lost); unanswered
        submits go to ``on_submit_lost``; the link then waits at its gate."""
        for b in self._binds:
            b.reason = reason
            b.conn_scope.cancel()

    def free_slots(self) -> int:
        tx = self._tx
        s = tx.session
        if s is None or self.closing:
            return 0
        tu = s.throttled_until
        if tu and trio.current_time() < tu:
            return 0
        return s.free_slots()

    def submit(self, ref, pdu) -> bool:
        tx = self._tx
        s = tx.session
        if s is None or self.closing or s.state != BOUND:
            return False
        if len(s._inflight) >= s.window:
            return False
        now = trio.current_time()
        if s.throttled_until and now < s.throttled_until:
            return False
        idle = not s._inflight
        s.submit(ref, pdu, now)
        tx.send_wake.set()
        if idle:
            tx.rearm_timer()
        return True

    @property
    def pending_delivers(self) -> int:
        """deliver_sm received on live connections and not answered yet."""
        return len(self._awaiting)

    def answer_deliver(self, pdu, status: int = 0) -> bool:
        """Send the deliver_sm_resp for a PDU whose ``on_deliver`` returned None. False
        when it cannot be sent any more (its connection is gone; the carrier resends) or
        was answered already."""
        entry = self._awaiting.pop(id(pdu), None)
        if entry is None or entry[0] is not pdu:
            return False
        _, b, session = entry
        if b.session is not session or session.state == CLOSED:
            return False
        session.answer_deliver(pdu, status or 0)
        b.send_wake.set()
        if not self._awaiting:
            self.notify()
        if not b.answered.is_set():
            b.answered.set()
        return True

    def notify(self) -> None:
        ev_ = self._slot_event
        if ev_ is not None:
            self._slot_event = None
            ev_.set()

    async def wait_slot(self) -> None:
        """Return when a submit may succeed, or the link state changed."""
        if self.free_slots() > 0:
            await trio.lowlevel.checkpoint()
            return
        if self._slot_event is None:
            self._slot_event = trio.Event()
        event = self._slot_event
        s = self._tx.session
        until = s.throttled_until if s is not None else 0.0
        if until and until > trio.current_time():
            with trio.move_on_at(until):
                await event.wait()
        else:
            await event.wait()

    async def close(self) -> None:
        """Stop submits, wait for in-flight answers (bounded), unbind, close."""
        self.closing = True
        rt = float(getattr(self.cfg, "response_timeout", 5) or 5)
        with trio.move_on_after(rt):
            while (self._tx.session is not None and self._tx.session.in_flight) or self._awaiting:
                if self._slot_event is None:
                    self._slot_event = trio.Event()
                await self._slot_event.wait()
        with trio.move_on_after(rt):
            for b in self._binds:
                s = b.session
                if s is not None and s.state == BOUND:
                    s.unbind(trio.current_time())
                    b.send_wake.set()
                    b.rearm_timer()
            for b in self._binds:
                while b.session is not None and b.session.state != CLOSED:
                    if self._slot_event is None:
                        self._slot_event = trio.Event()
                    await self._slot_event.wait()
        self._run_scope.cancel()
        for b in self._binds:
            b._lost("closed")


def _child(metrics, family: str, carrier: str):
    """``metrics.<family>.labels(carrier)`` or None (no metrics object, or no such family)."""
    fam = getattr(metrics, family, None) if metrics is not None else None
    if fam is None:
        return None
    try:
        return fam.labels(carrier)
    except Exception:           # a metrics object of another shape: run without it
        log.warning("metric %s unusable; skipped", family)
        return None
