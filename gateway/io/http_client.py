"""HTTP/1.1 client on trio over httptools: webhooks, status callbacks, media fetches.

Owns: a keep-alive pool per origin (scheme, host, port) with at most max_per_origin
connections (callers beyond that wait), request writing, response parsing
(content-length, chunked, close-delimited), TLS via trio.SSLStream, timeouts and the
SSRF guard (gateway.io.ssrf) when allow_private is False.

Rules:
- A connection goes back to the pool only after a response that completed cleanly
  and did not ask to close; anything else closes it.
- With allow_private=False the host is resolved once, every address vetted, and the
  vetted IP itself is dialled (Host header and TLS SNI keep the name).
- Timeouts: connect_timeout covers TCP connect + TLS handshake, read_timeout is the
  longest wait for any byte of the response, total_timeout bounds the whole call
  (pool wait included). Each can be overridden per request.
Error handling: a request sent on a *reused* connection that gets no byte back
(peer closed the idle connection) is retried once on a fresh connection; nothing
else is retried here (retry policy belongs to the webhook layer). Errors are
HttpClientError subclasses: ConnectError, ConnectTimeout, ReadTimeout, TotalTimeout,
BodyTooLarge, BlockedAddress, ProtocolError.
"""

from __future__ import annotations

import socket
import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
import trio

from gateway.io import ssrf
from gateway.io.http_common import (
    BlockedAddress,
    BodyTooLarge,
    ClientConnection,
    ConnectError,
    ConnectTimeout,
    HttpClientError,
    ProtocolError,
    ReadTimeout,
    ResponseState,
    TotalTimeout,
    open_socket,
)

__all__ = ["HttpClient", "ClientLimits", "ClientResponse", "HttpClientError",
           "ConnectError", "ConnectTimeout", "ReadTimeout", "TotalTimeout",
           "BodyTooLarge", "BlockedAddress", "ProtocolError"]

_NET_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


@dataclass(frozen=True)
class ClientLimits:
    max_per_origin: int = 32
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    total_timeout: float = 15.0
    max_body: int = 65536
    idle_timeout: float = 30.0      # pooled connections older than this are dropped
    recv_size: int = 65536


class ClientResponse:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status} {len(self.body)} bytes>"


class _Stale(Exception):
    """A reused connection closed before any response byte: safe to retry once."""


class _Timer:
    """One cancel scope per request; its deadline is the nearest of the total deadline
    and the current phase's (connect or read) deadline, so one scope serves all three
    timeouts. ``phase`` says which one fired."""

    __slots__ = ("scope", "total_deadline", "connect_timeout", "read_timeout", "phase")

    def __init__(self, total: float, connect_timeout: float, read_timeout: float) -> None:
        self.total_deadline = trio.current_time() + total
        self.scope = trio.CancelScope(deadline=self.total_deadline)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.phase = "total"

    def arm(self, phase: str) -> None:
        limit = self.connect_timeout if phase == "connect" else self.read_timeout
        deadline = trio.current_time() + limit
        if deadline < self.total_deadline:
            self.scope.deadline = deadline
            self.phase = phase
        elif self.phase != "total":
            self.scope.deadline = self.total_deadline
            self.phase = "total"


class _Pool:
    """Idle connections of one origin plus a slot count: at most ``size`` requests use
    the origin at once; the rest park in FIFO order. (Not trio.Semaphore: acquiring a
    free slot here does not yield, the request's send/receive will.)"""

    __slots__ = ("idle", "size", "in_use", "lot")

    def __init__(self, size: int) -> None:
        self.idle: deque[ClientConnection] = deque()
        self.size = size
        self.in_use = 0
        self.lot = trio.lowlevel.ParkingLot()

    async def acquire(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.in_use < self.size:
            self.in_use += 1
        else:
            await self.lot.park()             # the releaser hands its slot over

    def release(self) -> None:
        if not self.lot.unpark(count=1):
            self.in_use -= 1


def _parse_url(url: str) -> tuple[str, str, int, str, str]:
    """-> (scheme, host, port, request target, Host header value); ProtocolError if bad."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ProtocolError(f"unsupported URL scheme {parts.scheme!r}")
    default = 443 if scheme == "https" else 80
    try:
        host = parts.hostname
        port = parts.port or default
    except ValueError as exc:
        raise ProtocolError(f"bad URL {url!r}: {exc}") from exc
    if not host:
        raise ProtocolError(f"URL without host: {url!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(c in target for c in " \r\n\t"):
        raise ProtocolError(f"whitespace in URL path: {url!r}")
    host_hdr = f"[{host}]" if ":" in host else host
    if port != default:
        host_hdr = f"{host_hdr}:{port}"
    return scheme, host, port, target, host_hdr


class HttpClient:
    def __init__(self, limits: ClientLimits | None = None, allow_private: bool = True,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.limits = limits or ClientLimits()
        self.allow_private = allow_private
        self._ssl_context = ssl_context
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self.connections_opened = 0
        self._next_sweep = 0.0
        self._urls: dict[str, tuple[str, str, int, str, str]] = {}

    def parse_url(self, url: str) -> tuple[str, str, int, str, str]:
        """``_parse_url(url)``, cached (webhook URLs repeat); ProtocolError if bad."""
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = _parse_url(url)
            if len(self._urls) >= 1024:
                self._urls.clear()
            self._urls[url] = parsed
        return parsed

    @property
    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    async def request(self, method: str, url: str, headers=None, body: bytes = b"", *,
                      connect_timeout: float | None = None,
                      read_timeout: float | None = None,
                      total_timeout: float | None = None,
                      max_body: int | None = None) -> ClientResponse:
        lim = self.limits
        scheme, host, port, target, host_hdr = self.parse_url(url)
        hdr_items = list(headers.items()) if isinstance(headers, dict) else (headers or [])
        names = {k.lower() for k, _ in hdr_items}
        head = [f"{method} {target} HTTP/1.1\r\n"]
        if "host" not in names:
            head.append(f"Host: {host_hdr}\r\n")
        for k, v in hdr_items:
            if "\n" in k or "\r" in k or "\n" in str(v) or "\r" in str(v):
                raise ProtocolError(f"CR/LF in request header {k!r}")
            head.append(f"{k}: {v}\r\n")
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            if "content-length" not in names:
                head.append(f"Content-Length: {len(body)}\r\n")
        head.append("\r\n")
        payload = "".join(head).encode("latin-1") + body
        total = lim.total_timeout if total_timeout is None else total_timeout
        timer = _Timer(total, lim.connect_timeout if connect_timeout is None
                       else connect_timeout,
                       lim.read_timeout if read_timeout is None else read_timeout)
        with timer.scope:
            return await self._exchange((scheme, host, port), payload, method == "HEAD",
                                        timer, lim.max_body if max_body is None else max_body)
        assert timer.scope.cancelled_caught
        if timer.phase == "connect":
            raise ConnectTimeout(f"connect to {host}:{port} took over "
                                 f"{timer.connect_timeout} s")
        if timer.phase == "read":
            raise ReadTimeout(f"{method} {url}: no response byte within "
                              f"{timer.read_timeout} s")
        raise TotalTimeout(f"{method} {url}: no complete response within {total} s")

    def _sweep(self, now: float) -> None:
        """Close idle connections past idle_timeout; forget unused origins."""
        self._next_sweep = now + self.limits.idle_timeout
        oldest = now - self.limits.idle_timeout
        for origin, pool in list(self._pools.items()):
            while pool.idle and pool.idle[0].idle_since < oldest:
                pool.idle.popleft().close()
            if not pool.idle and pool.in_use == 0:
                del self._pools[origin]

    async def _exchange(self, origin, payload: bytes, head_only: bool, timer: _Timer,
                        max_body: int) -> ClientResponse:
        async def attempt(conn):
            return await self._roundtrip(conn, payload, head_only, timer, max_body)

        return await self.with_connection(origin, timer, attempt)

    async def with_connection(self, origin, timer: _Timer, attempt):
        """Run ``attempt(conn) -> (result, keep)`` on a pooled (or new) connection of
        ``origin``; a reused connection found dead before any response byte (``_Stale``)
        is retried once on a fresh one. ``keep`` returns the connection to the pool."""
        now = trio.current_time()
        if now >= self._next_sweep:
            self._sweep(now)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(self.limits.max_per_origin)
        await pool.acquire()
        try:
            for _attempt in (0, 1):
                conn = self._take_idle(pool)
                if conn is None:
                    timer.arm("connect")
                    conn = await self._connect(origin)
                try:
                    result, keep = await attempt(conn)
                except _Stale:
                    conn.close()
                    continue
                except BaseException:
                    conn.close()
                    raise
                if keep:
                    conn.reused = True
                    conn.idle_since = trio.current_time()
                    pool.idle.append(conn)
                else:
                    conn.close()
                return result
        finally:
            pool.release()
        raise ProtocolError("connection closed before a response")   # pragma: no cover

    def _take_idle(self, pool: _Pool) -> ClientConnection | None:
        oldest = trio.current_time() - self.limits.idle_timeout
        while pool.idle:
            conn = pool.idle.pop()            # most recently used first
            if conn.idle_since >= oldest:
                return conn
            conn.close()
        return None

    async def _connect(self, origin) -> ClientConnection:
        scheme, host, port = origin
        if self.allow_private:
            try:
                infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise ConnectError(f"cannot resolve {host!r}: {exc}") from exc
            targets = [(info[0], info[4]) for info in infos]
        else:
            targets = [(socket.AF_INET6 if ":" in ip else socket.AF_INET, (ip, port))
                       for ip in await ssrf.resolve_public(host, port)]
        sock = None
        last: Exception | None = None
        for family, sockaddr in targets:
            try:
                sock = await open_socket(family, sockaddr)
                break
            except OSError as exc:
                last = exc
        if sock is None:
            raise ConnectError(f"connect to {host}:{port} failed: {last}") from last
        conn = ClientConnection(sock)
        if scheme == "https":
            tls = trio.SSLStream(trio.SocketStream(trio.socket.from_stdlib_socket(sock)),
                                 self.ssl_context, server_hostname=host,
                                 https_compatible=True)
            conn.tls = tls
            try:
                await tls.do_handshake()
            except (trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
                conn.close()
                cause = exc.__cause__ or exc
                raise ConnectError(f"TLS handshake with {host}:{port}: {cause}") from exc
            except BaseException:
                conn.close()
                raise
        self.connections_opened += 1
        return conn

    async def _roundtrip(self, conn: ClientConnection, payload: bytes, head_only: bool,
                         timer: _Timer, max_body: int):
        state = ResponseState(max_body)
        parser = state.parser
        got_any = False
        timer.arm("read")
        try:
            await conn.send_all(payload)
        except _NET_ERRORS as exc:
            if conn.reused:
                raise _Stale() from exc
            raise ProtocolError(f"send failed: {exc}") from exc
        recv_size = self.limits.recv_size
        while True:
            try:
                data = await conn.recv(recv_size, not got_any)
            except _NET_ERRORS as exc:
                if conn.reused and not got_any:
                    raise _Stale() from exc
                raise ProtocolError(f"connection lost: {exc}") from exc
            if not data:
                if not got_any and conn.reused:
                    raise _Stale()
                if state.head_done and not state.chunked and state.length is None:
                    break                                  # close-delimited body
                raise ProtocolError("connection closed mid-response")
            got_any = True
            try:
                parser.feed_data(data)
            except httptools.HttpParserCallbackError as exc:
                if isinstance(exc.__context__, HttpClientError):
                    raise exc.__context__ from None
                raise ProtocolError(f"bad response: {exc}") from exc
            except httptools.HttpParserUpgrade as exc:
                raise ProtocolError("unexpected protocol upgrade") from exc
            except httptools.HttpParserError as exc:
                raise ProtocolError(f"bad response: {exc}") from exc
            if state.head_done and head_only:
                state.done = True
                return self._finish(parser, state, keep=False)
            if state.done:
                return self._finish(parser, state, keep=state.keep)
            timer.arm("read")
        return self._finish(parser, state, keep=False)

    @staticmethod
    def _finish(parser, state: ResponseState, keep: bool):
        body = b"".join(state.body)
        return ClientResponse(parser.get_status_code(), state.headers, body), keep

    async def aclose(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            while pool.idle:
                pool.idle.pop().close()
