"""SMPP link to one carrier: trio adapter around ``gateway.proto.smpp_session``.

Owns: the public face of one carrier's bind(s) (one transceiver, or a transmitter +
receiver pair for ``bind = "tx_rx"``): submits and the window, deliver answers, the
slot wake-ups, close. Each connection with its session, tasks and reconnects is a
``gateway.io.smpp_bind.SmppBind``, which turns session events into the handler calls
(``on_link_state``, ``on_submit_resp``, ``on_submit_lost``, ``on_deliver``). Handler
methods are sync, called from the link's tasks, and must not block.

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
- Connection loss and reconnect backoff: see ``gateway.io.smpp_bind``.
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
import random

import trio

from gateway.io.smpp_bind import SmppBind
from gateway.proto.smpp_session import BOUND, CLOSED

log = logging.getLogger("gateway.smpp")

MAX_PENDING_DELIVERS = 256


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
            self._tx = SmppBind(self, "transmitter", True)
            self._binds = [self._tx, SmppBind(self, "receiver", False)]
        elif bind in ("transceiver", "transmitter", "receiver"):
            self._tx = SmppBind(self, bind, True)
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
