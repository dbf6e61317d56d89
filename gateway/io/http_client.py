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

import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
import trio

from gateway.io import ssrf
from gateway.io.http_common import (BlockedAddress, BodyTooLarge, ConnectError,
                                    ConnectTimeout, HttpClientError, ProtocolError,
                                    ReadTimeout, TotalTimeout)

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


class _Parse:
    """httptools response callbacks for one response."""

    __slots__ = ("headers", "body", "size", "max_body", "done", "head_done",
                 "chunked", "length", "parser", "keep")

    def __init__(self, max_body: int) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.max_body = max_body
        self.done = False
        self.head_done = False
        self.chunked = False
        self.length: int | None = None
        self.keep = False

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        val = value.decode("latin-1")
        old = self.headers.get(key)
        self.headers[key] = val if old is None else f"{old}, {val}"

    def on_headers_complete(self) -> None:
        self.head_done = True
        clen = self.headers.get("content-length")
        if clen is not None and clen.isdigit():
            self.length = int(clen)
            if self.length > self.max_body:
                raise BodyTooLarge(f"content-length {clen} > {self.max_body}")
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()

    def on_body(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_body:
            raise BodyTooLarge(f"body over {self.max_body} bytes")
        self.body.append(data)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:      # interim response: skip it
            self.headers = {}
            self.head_done = False
            self.length = None
            return
        self.keep = self.parser.should_keep_alive()
        self.done = True


class _Connection:
    __slots__ = ("stream", "reused", "idle_since")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.reused = False
        self.idle_since = 0.0


class _Pool:
    __slots__ = ("idle", "slots")

    def __init__(self, size: int) -> None:
        self.idle: deque[_Connection] = deque()
        self.slots = trio.Semaphore(size)


class HttpClient:
    def __init__(self, limits: ClientLimits | None = None, allow_private: bool = True,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.limits = limits or ClientLimits()
        self.allow_private = allow_private
        self._ssl_context = ssl_context
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self.connections_opened = 0

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
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ProtocolError(f"unsupported URL scheme {parts.scheme!r}")
        try:
            host = parts.hostname
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise ProtocolError(f"bad URL {url!r}: {exc}") from exc
        if not host:
            raise ProtocolError(f"URL without host: {url!r}")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_hdr = f"[{host}]" if ":" in host else host
        if port != (443 if scheme == "https" else 80):
            host_hdr = f"{host_hdr}:{port}"
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
        with trio.move_on_after(total) as scope:
            return await self._exchange(
                (scheme, host, port), payload, method == "HEAD",
                lim.connect_timeout if connect_timeout is None else connect_timeout,
                lim.read_timeout if read_timeout is None else read_timeout,
                lim.max_body if max_body is None else max_body)
        assert scope.cancelled_caught
        raise TotalTimeout(f"{method} {url}: no complete response within {total} s")

    async def _exchange(self, origin, payload: bytes, head_only: bool,
                        connect_timeout: float, read_timeout: float,
                        max_body: int) -> ClientResponse:
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(self.limits.max_per_origin)
        async with pool.slots:
            for _attempt in (0, 1):
                conn = await self._take_idle(pool)
                if conn is None:
                    conn = await self._connect(origin, connect_timeout)
                try:
                    resp, keep = await self._roundtrip(conn, payload, head_only,
                                                       read_timeout, max_body)
                except _Stale:
                    await trio.aclose_forcefully(conn.stream)
                    continue
                except BaseException:
                    await trio.aclose_forcefully(conn.stream)
                    raise
                if keep:
                    conn.reused = True
                    conn.idle_since = trio.current_time()
                    pool.idle.append(conn)
                else:
                    await trio.aclose_forcefully(conn.stream)
                return resp
        raise ProtocolError("connection closed before a response")   # pragma: no cover

    async def _take_idle(self, pool: _Pool) -> _Connection | None:
        oldest = trio.current_time() - self.limits.idle_timeout
        while pool.idle:
            conn = pool.idle.pop()            # most recently used first
            if conn.idle_since >= oldest:
                return conn
            await trio.aclose_forcefully(conn.stream)
        return None

    async def _connect(self, origin, connect_timeout: float) -> _Connection:
        scheme, host, port = origin
        with trio.move_on_after(connect_timeout) as scope:
            if self.allow_private:
                addrs = [host]
            else:
                addrs = await ssrf.resolve_public(host, port)
            stream: trio.abc.Stream | None = None
            last: Exception | None = None
            for addr in addrs:
                try:
                    stream = await trio.open_tcp_stream(addr, port)
                    break
                except OSError as exc:
                    last = exc
            if stream is None:
                raise ConnectError(f"connect to {host}:{port} failed: {last}") from last
            if scheme == "https":
                tls = trio.SSLStream(stream, self.ssl_context, server_hostname=host,
                                     https_compatible=True)
                try:
                    await tls.do_handshake()
                except (trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
                    await trio.aclose_forcefully(tls)
                    cause = exc.__cause__ or exc
                    raise ConnectError(f"TLS handshake with {host}:{port}: {cause}") from exc
                except BaseException:
                    await trio.aclose_forcefully(tls)
                    raise
                stream = tls
            self.connections_opened += 1
            return _Connection(stream)
        assert scope.cancelled_caught
        raise ConnectTimeout(f"connect to {host}:{port} took over {connect_timeout} s")

    async def _roundtrip(self, conn: _Connection, payload: bytes, head_only: bool,
                         read_timeout: float, max_body: int):
        stream = conn.stream
        state = _Parse(max_body)
        parser = state.parser
        got_any = False
        try:
            await stream.send_all(payload)
        except _NET_ERRORS as exc:
            if conn.reused:
                raise _Stale() from exc
            raise ProtocolError(f"send failed: {exc}") from exc
        while True:
            with trio.move_on_after(read_timeout) as scope:
                try:
                    data = await stream.receive_some(self.limits.recv_size)
                except _NET_ERRORS as exc:
                    if conn.reused and not got_any:
                        raise _Stale() from exc
                    raise ProtocolError(f"connection lost: {exc}") from exc
            if scope.cancelled_caught:
                raise ReadTimeout(f"no response byte within {read_timeout} s")
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
        return self._finish(parser, state, keep=False)

    @staticmethod
    def _finish(parser, state: _Parse, keep: bool):
        body = b"".join(state.body)
        return ClientResponse(parser.get_status_code(), state.headers, body), keep

    async def aclose(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            while pool.idle:
                await trio.aclose_forcefully(pool.idle.pop().stream)
