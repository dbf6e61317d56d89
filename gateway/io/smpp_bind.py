"""One bind of an SMPP link: a TCP connection and its ``EsmeSession``, reconnecting.

Owns: connecting (``connect_timeout``), the reader, writer and timer tasks of one
connection (reads go into the session, the session's output goes out in one coalesced
``sock_send_all`` per wake-up, the session's deadlines drive ``tick``), turning session
events into calls on the link's handler (``gateway.io.smpp_link`` documents them), and
reconnecting. ``SmppLink`` owns one (transceiver) or two (tx_rx) of these.

Rules: handler calls are sync and made from this bind's tasks; a bind's state reaches
the handler only through the primary bind (``on_link_state``). Deliver back-pressure:
while ``max_pending_delivers`` answers are pending the reader stops reading.

Error handling:
- Connect errors, bind failures, resets, framing loss, ``response_timeout`` of silence:
  the connection is closed, unanswered submits go to ``on_submit_lost`` (then
  ``on_link_state(False)``), and the bind reconnects after a jittered exponential
  backoff: uniform(d/2, d) with d = 0.5 s * 2**n, capped at 30 s; n resets once a bind
  succeeds, so the first retry after a drop comes within 0.5 s.
- A handler exception is logged; for ``on_deliver`` the PDU is answered with
  ESME_RX_T_APPN (temporary application error) so the SMSC retries it.
"""

from __future__ import annotations

import logging
import math
import socket
from typing import TYPE_CHECKING

import trio

from gateway import codec
from gateway.io.sockio import open_socket, sock_close, sock_recv, sock_send_all
from gateway.proto import smpp_events as ev
from gateway.proto.smpp_session import BOUND, CLOSED, EsmeSession

if TYPE_CHECKING:
    from gateway.io.smpp_link import SmppLink

__all__ = ["SmppBind", "BACKOFF_FIRST", "BACKOFF_CAP"]

log = logging.getLogger("gateway.smpp")

BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0
RECV_SIZE = 65536
_THROTTLES = (codec.Status.ESME_RTHROTTLED, codec.Status.ESME_RMSGQFUL)


class SmppBind:
    """One connection + session of the link, reconnecting forever."""

    def __init__(self, link: SmppLink, bind_type: str, primary: bool) -> None:
        self.link = link
        self.bind_type = bind_type
        self.primary = primary
        self.session: EsmeSession | None = None
        self.sock: socket.socket | None = None
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
            sock = await _connect(cfg.host, int(cfg.port))
        if cs.cancelled_caught:
            return "connect timeout"
        self.sock = sock
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
                            await sock_send_all(sock, tail)
                        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                            pass
                sock_close(sock)
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
        session, sock = self.session, self.sock
        limit = self.link.max_pending_delivers
        while True:
            while session.unanswered >= limit and session.state != CLOSED:
                self.answered = trio.Event()          # back-pressure: stop reading
                await self.answered.wait()
            data = await sock_recv(sock, RECV_SIZE)
            if not data:
                session.connection_lost("connection closed by peer")
                self.process()
                return
            session.receive_data(data, trio.current_time())
            self.process()
            if session.state == CLOSED:
                return

    async def _writer(self) -> None:
        session, sock = self.session, self.sock
        try:
            while True:
                await self.send_wake.wait()
                self.send_wake = trio.Event()
                data = session.data_to_send()
                if data:
                    await sock_send_all(sock, data)
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


async def _connect(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket (TCP_NODELAY) to the first address of
    ``host`` that answers; OSError when none does."""
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: OSError | None = None
    for family, _, _, _, sockaddr in infos:
        try:
            return await open_socket(family, sockaddr)
        except OSError as exc:
            last = exc
    raise last or OSError(f"no address for {host}:{port}")
