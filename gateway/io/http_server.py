"""Thin HTTP/1.1 server on trio over httptools (llhttp): the API and /metrics listener.

Owns: accepting connections, one httptools.HttpRequestParser per connection,
keep-alive and pipelining (handlers run one at a time per connection, responses go
out in request order, one send_all per batch), chunked request bodies,
``Expect: 100-continue``, limits (ServerLimits), timeouts and graceful drain.

Rules:
- Limits: header bytes > max_header_bytes -> 431; body > max_body (declared or read)
  -> 413; unknown Expect -> 417; parse errors -> 400; every error response closes the
  connection (after a short lingering read so the peer sees the answer, not a RST).
- Over max_connections a new connection gets 503 and is closed.
- Timeouts: header_timeout from the first byte of a request (and for the first
  request of a new connection), body_timeout from headers complete, idle_timeout
  between keep-alive requests (it may end up to min(1 s, idle_timeout/32) early: the
  deadline is not moved for less). A request that times out mid-way gets 408.
- HTTP/1.0 closes after the response unless it asked for keep-alive; ``Connection:
  close`` is honoured. The server sets Date, Content-Length and Connection.
Error handling: a handler exception becomes a bare 500 (no traceback leaves the
process); the exception is logged with logging.exception. Socket errors end only
that connection.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httptools
import trio

from gateway.io.http_common import (
    Request,
    Response,
    error_bytes,
    serialize_response,
    sock_close,
    sock_recv,
    sock_recv_reply,
    sock_send_all,
)

__all__ = ["HttpServer", "ServerLimits", "Request", "Response", "Handler"]

log = logging.getLogger("gateway.http")

Handler = Callable[[Request], Awaitable[Response]]

_NET_ERRORS = (OSError, trio.ClosedResourceError, trio.BrokenResourceError)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_INTERNAL_ERROR = Response.text("Internal Server Error", 500)
_NAMES: dict[bytes, str] = {}       # raw header name -> lower-case str (first 512 seen)


@dataclass(frozen=True)
class ServerLimits:
    max_header_bytes: int = 16 * 1024
    max_body: int = 1024 * 1024
    max_connections: int = 1024
    idle_timeout: float = 75.0      # between keep-alive requests
    header_timeout: float = 10.0    # first byte of a request -> headers complete
    body_timeout: float = 30.0      # headers complete -> body complete
    send_timeout: float = 30.0      # handler + writing the responses of one batch
    linger: float = 2.0             # lingering read after an error response
    recv_size: int = 64 * 1024


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing; _Conn.error holds the status."""


class _Conn:
    """Per-connection parser state; methods named on_* are httptools callbacks."""

    __slots__ = ("limits", "client", "parser", "ready", "url", "headers", "body",
                 "body_len", "in_headers", "in_body", "hdr_bytes", "hdr_raw", "t_start",
                 "error", "need_continue", "upgrade", "idle", "scope", "max_header_bytes")

    def __init__(self, limits: ServerLimits, client: tuple[str, int]) -> None:
        self.limits = limits
        self.max_header_bytes = limits.max_header_bytes
        self.client = client
        self.parser = httptools.HttpRequestParser(self)
        self.ready: list[tuple[Request, bool]] = []
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.body_len = 0
        self.in_headers = self.in_body = False
        self.hdr_bytes = self.hdr_raw = self.error = 0
        self.t_start = 0.0
        self.need_continue = self.upgrade = self.idle = False
        self.scope: trio.CancelScope | None = None

    def _fail(self, status: int) -> None:
        self.error = status
        raise _Stop()

    def on_message_begin(self) -> None:
        self.in_headers = True
        self.url = b""
        self.headers = {}
        self.body = []
        self.body_len = 0
        self.hdr_bytes = 0
        self.hdr_raw = -1
        self.t_start = trio.current_time()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.hdr_bytes += len(url)
        if self.hdr_bytes > self.max_header_bytes:
            self._fail(431)

    def on_header(self, name: bytes, value: bytes) -> None:
        n = self.hdr_bytes + len(name) + len(value) + 4
        self.hdr_bytes = n
        if n > self.max_header_bytes:
            self._fail(431)
        key = _NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_NAMES) < 512:
                _NAMES[name] = key
        headers = self.headers
        if key in headers:
            headers[key] = f"{headers[key]}, {value.decode('latin-1')}"
        else:
            headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.in_headers = False
        self.in_body = True
        self.t_start = trio.current_time()
        headers = self.headers
        clen = headers.get("content-length")
        if clen is not None and clen.isdigit() and int(clen) > self.limits.max_body:
            self._fail(413)
        expect = headers.get("expect")
        if expect is not None:
            if expect.lower() != "100-continue":
                self._fail(417)
            if self.parser.get_http_version() != "1.0":
                self.need_continue = True

    def on_body(self, data: bytes) -> None:
        self.body_len += len(data)
        if self.body_len > self.limits.max_body:
            self._fail(413)
        self.body.append(data)

    def on_message_complete(self) -> None:
        parser = self.parser
        body = self.body
        req = Request(parser.get_method().decode("ascii", "replace"),
                      self.url.decode("latin-1"), self.headers,
                      body[0] if len(body) == 1 else b"".join(body), self.client,
                      parser.get_http_version())
        self.ready.append((req, parser.should_keep_alive()))
        self.in_body = False
        self.in_headers = False
        self.need_continue = False
        self.body = []


class HttpServer:
    """``await nursery.start(server.serve)`` -> port; ``await server.drain(timeout)``."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0,
                 limits: ServerLimits | None = None, backlog: int = 1024) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.limits = limits or ServerLimits()
        self.backlog = backlog
        self.draining = False
        self.connections_accepted = 0
        self._conns: set[_Conn] = set()
        self._listeners: list[socket.socket] = []
        self._conn_scope = trio.CancelScope()
        self._done = trio.Event()
        self._changed = trio.Event()

    @property
    def active_connections(self) -> int:
        return len(self._conns)

    def _listen(self) -> None:
        infos = socket.getaddrinfo(self.host or None, self.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        port = self.port
        error: OSError | None = None
        for family, type_, proto, _, addr in infos:
            sock = socket.socket(family, type_, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((addr[0], port) + tuple(addr[2:]))
                sock.listen(self.backlog)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            port = sock.getsockname()[1]          # every family on the same port
            self._listeners.append(sock)
        if not self._listeners:
            raise error or OSError(f"cannot listen on {self.host}:{self.port}")
        self.port = port

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self._listen()
        try:
            with self._conn_scope:
                async with trio.open_nursery() as nursery:
                    for listener in self._listeners:
                        nursery.start_soon(self._accept_loop, listener, nursery)
                    task_status.started(self.port)
        finally:
            self._close_listeners()
            self._done.set()

    def _close_listeners(self) -> None:
        for listener in self._listeners:
            sock_close(listener)

    async def _accept_loop(self, listener: socket.socket, nursery: trio.Nursery) -> None:
        while True:
            try:
                await trio.lowlevel.wait_readable(listener)
                sock, addr = listener.accept()
            except BlockingIOError:
                continue
            except (trio.ClosedResourceError, OSError) as exc:
                if listener.fileno() < 0 or self.draining:
                    return
                log.warning("accept failed: %s", exc)    # EMFILE etc.: back off briefly
                await trio.sleep(0.1)
                continue
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if len(self._conns) >= self.limits.max_connections:
                nursery.start_soon(self._reject, sock, 503)
            else:
                self.connections_accepted += 1
                nursery.start_soon(self._serve_conn, sock, (addr[0], addr[1]))

    async def _reject(self, sock: socket.socket, status: int) -> None:
        try:
            with trio.move_on_after(self.limits.linger):
                await sock_send_all(sock, error_bytes(status))
                await self._linger(sock)
        except _NET_ERRORS:
            pass
        finally:
            sock_close(sock)

    async def _linger(self, sock: socket.socket) -> None:
        """Half-close and read what the peer still sends, so our answer isn't RST away."""
        try:
            sock.shutdown(socket.SHUT_WR)
            budget = 4 * self.limits.max_body
            with trio.move_on_after(self.limits.linger):
                while budget > 0:
                    data = await sock_recv(sock, self.limits.recv_size)
                    if not data:
                        return
                    budget -= len(data)
        except _NET_ERRORS:
            pass

    async def _serve_conn(self, sock: socket.socket, client: tuple[str, int]) -> None:
        limits = self.limits
        conn = _Conn(limits, client)
        self._conns.add(conn)
        idle_since = trio.current_time()
        idle_timeout = limits.header_timeout        # first request of a connection
        recv_size = limits.recv_size
        recv = sock_recv
        # keep-alive: the idle deadline moves with every request; it is only moved when
        # it would be off by more than this (a deadline change costs a heap update)
        slack = min(1.0, limits.idle_timeout / 32)
        try:
            with trio.CancelScope() as scope:
                conn.scope = scope
                while True:
                    if conn.in_body:
                        scope.deadline = conn.t_start + limits.body_timeout
                    elif conn.in_headers:
                        scope.deadline = conn.t_start + limits.header_timeout
                    else:
                        if self.draining:
                            return
                        conn.idle = True
                        deadline = idle_since + idle_timeout
                        if not deadline - slack <= scope.deadline <= deadline:
                            scope.deadline = deadline
                    data = await recv(sock, recv_size)
                    recv = sock_recv
                    conn.idle = False
                    if not data:
                        return
                    now = trio.current_time()
                    if scope.deadline < now + limits.send_timeout:
                        scope.deadline = now + limits.send_timeout
                    try:
                        conn.parser.feed_data(data)
                    except httptools.HttpParserUpgrade:
                        conn.upgrade = True
                    except httptools.HttpParserError:
                        if not conn.error:
                            conn.error = 400
                    if conn.in_headers and not conn.error:
                        if conn.hdr_raw < 0:
                            conn.hdr_raw = 0
                        else:
                            conn.hdr_raw += len(data)
                            if conn.hdr_raw > limits.max_header_bytes:
                                conn.error = 431
                    if conn.ready:
                        if not await self._respond(sock, conn):
                            return
                        idle_since = trio.current_time()
                        idle_timeout = limits.idle_timeout
                        recv = sock_recv_reply      # the client's next request comes later
                    elif conn.error:
                        await self._send_error(sock, conn.error)
                        return
                    elif conn.upgrade:
                        return
                    if conn.need_continue:
                        conn.need_continue = False
                        await sock_send_all(sock, _CONTINUE)
            conn.idle = False
            if scope.cancelled_caught and (conn.in_headers or conn.in_body):
                with trio.move_on_after(limits.linger):
                    await self._send_error(sock, 408)
        except _NET_ERRORS:
            pass
        finally:
            self._conns.discard(conn)
            self._changed.set()
            sock_close(sock)

    async def _send_error(self, sock: socket.socket, status: int) -> None:
        await sock_send_all(sock, error_bytes(status))
        await self._linger(sock)

    async def _respond(self, sock: socket.socket, conn: _Conn) -> bool:
        """Run the handler for every complete request; one send; False = close."""
        out: list[bytes] = []
        keep = True
        ready = conn.ready
        for req, keep_alive in ready:
            try:
                resp = await self.handler(req)
            except Exception:
                log.exception("handler failed for %s %s", req.method, req.path)
                resp = _INTERNAL_ERROR
            keep = keep_alive and not self.draining and not conn.upgrade
            if keep:
                conn_hdr = "Connection: keep-alive\r\n" if req.http_version == "1.0" else ""
            else:
                conn_hdr = "Connection: close\r\n"
            try:
                data = serialize_response(resp, conn_hdr, req.method == "HEAD")
            except ValueError:
                log.exception("bad response from handler for %s %s", req.method, req.path)
                data = serialize_response(_INTERNAL_ERROR, conn_hdr, req.method == "HEAD")
            out.append(data)
            if not keep:
                break
        ready.clear()
        if keep and conn.error:
            out.append(error_bytes(conn.error))
            keep = False
        await sock_send_all(sock, out[0] if len(out) == 1 else b"".join(out))
        if not keep and conn.error:
            await self._linger(sock)
        return keep

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let in-flight requests finish, close idle connections;
        at the deadline cancel whatever remains. Returns when serve() has ended."""
        self.draining = True
        self._close_listeners()
        with trio.move_on_after(timeout):
            while self._conns:
                for conn in list(self._conns):
                    if conn.idle and conn.scope is not None:
                        conn.scope.cancel()
                self._changed = trio.Event()
                await self._changed.wait()
        self._conn_scope.cancel()
        if self._listeners:
            await self._done.wait()
