"""SIP user agent on trio: UDP socket + TCP/TLS listeners around ``gateway.proto.sip_core``.

Owns: ``SipUA`` (the UDP socket, the core's timers; TCP/TLS connections are
``sip_streams.StreamConns``, TLS contexts ``sip_tls.SipTls``), ``InboundCall`` /
``OutboundCall`` (the call objects the voice layer uses), ``CallFailed``, and the
``options()`` trunk probe. ``transport`` is "udp" | "tcp" | "tls" (TLS listener only when
``tls.listen`` is set; its port is ``tls_port``).

Rules:
- One task reads UDP, one accepts TCP (plus one reader per connection), one runs the
  core's timers; every core call is followed by ``_flush`` (send what the core queued,
  dispatch its events). Time is ``trio.current_time()`` (MockClock works).
- Inbound INVITEs go to ``on_incoming(call)`` in a task of their own. No handler -> 480;
  handler raises -> 500 (or BYE when it had answered); handler returns without answering
  or rejecting -> 480. The voice layer decides 404 etc. with ``call.reject(status)``.
- ``invite(..., timeout)`` bounds the time to a final answer: past it the INVITE is
  CANCELed and ``wait_answer`` raises ``CallFailed(408, "timeout")``.
- Destinations that are names are resolved with getaddrinfo (IPv4), cached.

Error handling: send errors (ICMP refused, unreachable, reset TCP) are swallowed; the
transaction timers turn silence into 408 / OPTIONS status 0; a connection that cannot be
made (refused, TLS certificate) fails its requests at once (503). A TCP/TLS peer sending
garbage gets a 400 (when routable) and its connection is closed.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from functools import partial

import trio

from gateway.codec.sip import Request, SipError
from gateway.io.sip_streams import StreamConns
from gateway.io.sip_tls import SipTls
from gateway.proto.sip_core import (
    CallAnswered,
    CallEnded,
    CallProgress,
    CallRejected,
    IncomingCall,
    OptionsDone,
    UaCore,
)

log = logging.getLogger("gateway.sip")
Addr = tuple[str, int]


class CallFailed(Exception):
    def __init__(self, status: int, reason: str = ""):
        super().__init__(f"{status} {reason}".strip())
        self.status = status
        self.reason = reason


class _CallBase:
    def __init__(self, ua: SipUA, call_id: str):
        self._ua = ua
        self.call_id = call_id
        self.ended = trio.Event()
        self.end_reason: str | None = None

    def _ended(self, reason: str) -> None:
        if self.end_reason is None:
            self.end_reason = reason
        self.ended.set()

    async def hangup(self) -> None:
        await self._ua._act(self._ua.core.hangup, self.call_id)


class InboundCall(_CallBase):
    def __init__(self, ua: SipUA, request: Request, source: Addr):
        super().__init__(ua, request.call_id)
        frm, to = request.from_, request.to
        self.request = request
        self.headers = request  # .get(name) / .get_all(name) / .headers list
        self.from_uri = str(frm.uri)
        self.from_user = frm.uri.user or ""
        self.to_user = to.uri.user or ""
        self.remote_sdp = request.body
        self.source = source
        self.canceled = False
        self.answered = False
        self.rejected = False

    def _ended(self, reason: str) -> None:
        self.canceled = self.canceled or reason == "cancel"
        super()._ended(reason)

    async def ringing(self, sdp: bytes = b"") -> None:
        await self._ua._act(self._ua.core.ringing, self.call_id, sdp=sdp)

    async def answer(self, local_sdp: bytes) -> None:
        if self.ended.is_set():
            raise CallFailed(487, self.end_reason or "ended")
        self.answered = True
        await self._ua._act(self._ua.core.answer, self.call_id, local_sdp)

    async def reject(self, status: int = 486, reason: str = "") -> None:
        self.rejected = True
        await self._ua._act(self._ua.core.reject, self.call_id, status, reason or None)


class OutboundCall(_CallBase):
    def __init__(self, ua: SipUA, call_id: str):
        super().__init__(ua, call_id)
        self.status_code = 0
        self.reason = ""
        self.remote_sdp = b""
        self.progress_sdp = b""
        self.provisionals: list[int] = []  # every 18x status seen, in order
        self.final_headers: list[tuple[str, str]] = []   # of the final response, if any
        self.answered = False
        self.timed_out = False
        self._progress = trio.Event()
        self._final = trio.Event()

    def _on_progress(self, ev: CallProgress) -> None:
        self.status_code, self.reason = ev.status, ev.reason
        self.provisionals.append(ev.status)
        self.progress_sdp = ev.sdp or self.progress_sdp
        self._progress.set()

    def _on_final(self, status: int, reason: str, sdp: bytes = b"", headers=()) -> None:
        if self._final.is_set():
            return
        self.status_code, self.reason = status, reason
        self.final_headers = list(headers)
        self.answered = 200 <= status < 300
        self.remote_sdp = sdp
        self._final.set()
        self._progress.set()

    async def wait_progress(self) -> str:
        """"ringing" (a 18x arrived), "answered", or "failed"."""
        await self._progress.wait()
        if not self._final.is_set():
            return "ringing"
        return "answered" if self.answered else "failed"

    async def wait_answer(self) -> bytes:
        await self._final.wait()
        if not self.answered:
            raise CallFailed(self.status_code, self.reason)
        return self.remote_sdp

    async def cancel(self) -> None:
        await self._ua._act(self._ua.core.cancel, self.call_id)


class SipUA:
    def __init__(self, host: str, port: int, *, public_host: str | None = None,
                 tcp: bool = True, accept_register: bool = False, tls: SipTls | None = None):
        self.host, self.port = host, port
        self.accept_register = accept_register
        self.public_host = public_host
        self.tcp = tcp
        self.tls = tls or SipTls()
        self.tls_port: int | None = None   # bound TLS listener port (None = no listener)
        self.streams = StreamConns(self, self.tls)
        self.on_incoming = None
        self.core: UaCore | None = None
        self._udp = None
        self._nursery: trio.Nursery | None = None
        self._wake = trio.Event()
        self._calls: dict[str, _CallBase] = {}
        self._options: dict[str, list] = {}
        self._resolved: dict[str, str] = {}

    # --- lifecycle ---------------------------------------------------------------
    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind((self.host, self.port))
        self._udp = sock
        self.port = sock.getsockname()[1]
        self.core = UaCore(self.host, self.port, public_host=self.public_host,
                           accept_register=self.accept_register)
        listeners = []
        if self.tcp:
            try:
                listeners = await trio.open_tcp_listeners(self.port, host=self.host)
            except OSError as e:
                log.warning("sip: no TCP listener on %s:%s: %s", self.host, self.port, e)
        tls_listeners = []
        if self.tls.listen is not None:   # no TLS listener is a start failure: raise
            tls_host, tls_port = self.tls.listen
            tls_listeners = await trio.open_tcp_listeners(tls_port, host=tls_host)
            self.tls_port = self.core.tls_port = tls_listeners[0].socket.getsockname()[1]
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = self.streams.nursery = nursery
                nursery.start_soon(self._udp_loop)
                nursery.start_soon(self._timer_loop)
                for lst in listeners:
                    nursery.start_soon(trio.serve_listeners,
                                       partial(self.streams.accept, transport="TCP"), [lst])
                for lst in tls_listeners:
                    nursery.start_soon(trio.serve_listeners,
                                       partial(self.streams.accept, transport="TLS"), [lst])
                task_status.started(self.port)
        finally:
            sock.close()
            with trio.CancelScope(shield=True):
                await self.streams.aclose()

    async def _act(self, fn, *args, **kw):
        if self.core is None:
            raise RuntimeError("SipUA not serving")
        result = fn(*args, now=trio.current_time(), **kw)
        await self._flush()
        return result

    # --- network -----------------------------------------------------------------
    async def _udp_loop(self) -> None:
        while True:
            try:
                data, addr = await self._udp.recvfrom(65536)
            except OSError:
                continue
            self.core.receive(data, (addr[0], addr[1]), "UDP", trio.current_time())
            await self._flush()

    async def _stream_in(self, msg, peer: Addr, transport: str) -> None:
        self.core.receive_message(msg, peer, transport, trio.current_time())
        await self._flush()

    async def _stream_garbage(self, data: bytes, err: SipError, peer: Addr,
                              transport: str) -> None:
        self.core.answer_garbage(data, err, peer, transport)
        await self._flush()

    async def _stream_failed(self, peer: Addr, transport: str) -> None:
        self.core.transport_error(peer, transport, trio.current_time())
        await self._flush()

    async def _resolve(self, host: str, port: int | None = None) -> str:
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            pass
        if host not in self._resolved:
            info = await trio.socket.getaddrinfo(host, None, trio.socket.AF_INET)
            self._resolved[host] = info[0][4][0]
        if port is not None:   # TLS checks the certificate against the name given
            self.streams.names[(self._resolved[host], port)] = host
        return self._resolved[host]

    async def _send(self, data: bytes, dest: Addr, transport: str) -> None:
        try:
            dest = (await self._resolve(dest[0], dest[1]), dest[1])
            if transport == "UDP":
                await self._udp.sendto(data, dest)
            else:
                await self.streams.send(data, dest, transport)
        except OSError as e:
            log.debug("sip: send to %s failed: %s", dest, e)

    async def _flush(self) -> None:
        core = self.core
        for ev in core.next_events():
            self._dispatch(ev)
        for out in core.data_to_send():
            await self._send(out.data, out.dest, out.transport)
        self._wake.set()

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.core.next_deadline()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            self.core.tick(trio.current_time())
            for ev in self.core.next_events():
                self._dispatch(ev)
            for out in self.core.data_to_send():
                await self._send(out.data, out.dest, out.transport)

    # --- events ------------------------------------------------------------------
    def _dispatch(self, ev) -> None:
        if isinstance(ev, IncomingCall):
            call = InboundCall(self, ev.request, ev.source)
            self._calls[ev.call_id] = call
            self._nursery.start_soon(self._run_handler, call)
            return
        if isinstance(ev, OptionsDone):
            waiter = self._options.get(ev.key)
            if waiter is not None:
                waiter[1] = ev.status
                waiter[0].set()
            return
        call = self._calls.get(ev.call_id)
        if isinstance(ev, CallProgress) and isinstance(call, OutboundCall):
            call._on_progress(ev)
        elif isinstance(ev, CallAnswered) and isinstance(call, OutboundCall):
            call._on_final(200, "OK", ev.sdp, ev.headers)
        elif isinstance(ev, CallRejected) and isinstance(call, OutboundCall):
            call._on_final(ev.status, ev.reason, headers=ev.headers)
        elif isinstance(ev, CallEnded) and call is not None:
            if isinstance(call, OutboundCall):
                call._on_final(487 if ev.reason == "cancel" else 500, ev.reason)
            call._ended(ev.reason)
            self._calls.pop(ev.call_id, None)

    async def _run_handler(self, call: InboundCall) -> None:
        handler = self.on_incoming
        if handler is None:
            await call.reject(480)
            return
        try:
            await handler(call)
        except Exception:
            log.exception("sip: incoming-call handler failed for %s", call.call_id)
            if call.answered:
                await call.hangup()
            else:
                await call.reject(500)
            return
        if not (call.answered or call.rejected or call.ended.is_set()):
            await call.reject(480)

    # --- public API --------------------------------------------------------------
    async def invite(self, to_uri: str, trunk: Addr, *, from_user: str, sdp_offer: bytes,
                     auth: tuple[str, str] | None = None, timeout: float = 30.0,
                     headers: list[tuple[str, str]] | None = None,
                     transport: str = "udp") -> OutboundCall:
        tp = transport.upper()
        trunk = (await self._resolve(trunk[0], trunk[1]), trunk[1])
        call_id = self.core.invite(to_uri, trunk, from_user=from_user, sdp=sdp_offer,
                                   auth=auth, transport=tp, headers=headers,
                                   now=trio.current_time())
        call = OutboundCall(self, call_id)
        self._calls[call_id] = call
        self._nursery.start_soon(self._invite_timeout, call, timeout)
        await self._flush()
        return call

    async def _invite_timeout(self, call: OutboundCall, timeout: float) -> None:
        with trio.move_on_after(timeout):
            await call._final.wait()
            return
        call.timed_out = True
        call._on_final(408, "timeout")
        await call.cancel()

    async def options(self, dest: Addr, timeout: float = 2.0, *,
                      transport: str = "udp") -> tuple[int, float]:
        """(final status, round-trip seconds); (0, timeout) when nothing answered."""
        t0 = trio.current_time()
        dest = (await self._resolve(dest[0], dest[1]), dest[1])
        key = self.core.options(dest, t0, transport=transport.upper())
        waiter = self._options[key] = [trio.Event(), 0]
        try:
            await self._flush()
            with trio.move_on_after(timeout):
                await waiter[0].wait()
        finally:
            del self._options[key]
        if waiter[1] == 0:
            return 0, timeout
        return waiter[1], trio.current_time() - t0
