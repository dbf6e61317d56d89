"""SIP over connection transports (RFC 3261 §18, §26): TCP and TLS connections of a SipUA.

Owns: ``StreamConns`` — accepting connections (TLS: handshake first, bounded), opening
them on demand (TLS: SNI + certificate check against the name the destination was given
as), Content-Length framing both ways (``codec.sip.StreamDecoder``), and connection
reuse: one connection per (transport, peer); a request that arrived on a connection makes
its top Via sent-by and Contact (a response: its Contact), when IP addresses, aliases of
that connection, so responses and in-dialog requests to that peer go back over it
(RFC 5923's idea; phones behind NAT cannot be connected to).

Rules: the UA hands messages in via ``send`` and gets them back through its
``_stream_in`` / ``_stream_garbage`` / ``_stream_failed`` coroutines. Opening a
connection never blocks the caller: messages queue (64 at most) until it is up.

Error handling: a failed connect or TLS handshake (bad certificate, timeout, refused) is
logged at WARNING with the reason and reported to the UA (``_stream_failed``: the core
fails the pending transactions to that peer at once -> 503, so the caller fails over). A
broken connection is dropped silently; the next message opens a new one. Anything a peer
sends before or during a handshake, or as garbage after it, ends only that connection.
"""

from __future__ import annotations

import ipaddress
import logging

import trio

from gateway.codec.sip import Request, Response, SipError, StreamDecoder
from gateway.io.sip_tls import SipTls

log = logging.getLogger("gateway.sip")
Addr = tuple[str, int]
CONNECT_TIMEOUT = 10.0
WRITE_TIMEOUT = 10.0
MAX_PENDING = 64


class _Conn:
    __slots__ = ("transport", "peer", "stream", "lock", "pending", "dead")

    def __init__(self, transport: str, peer: Addr, stream=None):
        self.transport, self.peer, self.stream = transport, peer, stream
        self.lock = trio.Lock()
        self.pending: list[bytes] = []
        self.dead = False

    @property
    def key(self) -> tuple[str, Addr]:
        return (self.transport, self.peer)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class StreamConns:
    def __init__(self, ua, tls: SipTls):
        self.ua = ua
        self.tls = tls
        self.conns: dict[tuple[str, Addr], _Conn] = {}
        self.aliases: dict[tuple[str, Addr], _Conn] = {}
        self.names: dict[Addr, str] = {}   # resolved (ip, port) -> name given (SNI, check)
        self.nursery: trio.Nursery | None = None

    # --- inbound -------------------------------------------------------------------
    async def accept(self, stream: trio.SocketStream, transport: str) -> None:
        """``trio.serve_listeners`` handler; never raises (the listener must survive)."""
        try:
            peer = stream.socket.getpeername()[:2]
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        if transport == "TLS":
            ssl_stream = trio.SSLStream(stream, self.tls.server, server_side=True)
            try:
                with trio.fail_after(self.tls.handshake_timeout):
                    await ssl_stream.do_handshake()
            except Exception as e:  # garbage, plain SIP, timeouts: this connection only
                log.info("sip: TLS handshake from %s:%s failed: %s", peer[0], peer[1],
                         _why(e))
                await trio.aclose_forcefully(ssl_stream)
                return
            stream = ssl_stream
        conn = _Conn(transport, (peer[0], peer[1]), stream)
        self.conns[conn.key] = conn
        try:
            await self._read(conn)
        except Exception:  # pragma: no cover - defensive: keep the listener alive
            log.exception("sip: %s connection from %s failed", transport, peer)

    # --- outbound ------------------------------------------------------------------
    async def send(self, data: bytes, dest: Addr, transport: str) -> None:
        key = (transport, dest)
        conn = self.conns.get(key) or self.aliases.get(key)
        if conn is None:
            conn = _Conn(transport, dest)
            self.conns[key] = conn
            self.nursery.start_soon(self._connect, conn)
        if conn.stream is None:
            if len(conn.pending) < MAX_PENDING:
                conn.pending.append(data)
            return
        await self._write(conn, data)

    async def _connect(self, conn: _Conn) -> None:
        host, port = conn.peer
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await trio.open_tcp_stream(host, port)
                if conn.transport == "TLS":
                    name = self.names.get(conn.peer, host)
                    stream = trio.SSLStream(stream, self.tls.client_for(name, port),
                                            server_hostname=name)
                    await stream.do_handshake()
        except Exception as e:
            log.warning("sip: %s connection to %s:%s (%s) failed: %s", conn.transport, host,
                        port, self.names.get(conn.peer, host), _why(e))
            self._drop(conn)
            await self.ua._stream_failed(conn.peer, conn.transport)
            return
        conn.stream = stream
        pending, conn.pending = conn.pending, []
        for data in pending:
            await self._write(conn, data)
        if not conn.dead:
            await self._read(conn)

    async def _write(self, conn: _Conn, data: bytes) -> None:
        try:
            async with conn.lock:
                with trio.fail_after(WRITE_TIMEOUT):
                    await conn.stream.send_all(data)
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError,
                trio.BusyResourceError, OSError) as e:
            log.debug("sip: send to %s over %s failed: %s", conn.peer, conn.transport, _why(e))
            self._drop(conn)
            await trio.aclose_forcefully(conn.stream)

    # --- reading -------------------------------------------------------------------
    async def _read(self, conn: _Conn) -> None:
        dec = StreamDecoder()
        try:
            async for chunk in conn.stream:
                try:
                    msgs = dec.feed(chunk)
                except SipError as e:
                    await self.ua._stream_garbage(bytes(chunk), e, conn.peer, conn.transport)
                    return
                for msg in msgs:
                    self._alias(conn, msg)
                    await self.ua._stream_in(msg, conn.peer, conn.transport)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self._drop(conn)
            await trio.aclose_forcefully(conn.stream)

    def _alias(self, conn: _Conn, msg: Request | Response) -> None:
        """Requests: top Via sent-by + Contact; responses: Contact (the remote target of
        a dialog we set up over this connection)."""
        default = 5061 if conn.transport == "TLS" else 5060
        try:
            addrs = []
            if isinstance(msg, Request):
                via = msg.top_via
                addrs.append((via.host, via.port or default))
            contact = msg.contact
            if contact is not None and contact.uri.host:
                addrs.append(contact.uri.hostport(default))
        except SipError:
            return
        for host, port in addrs:
            key = (conn.transport, (host, port))
            if _is_ip(host) and key not in self.conns:
                self.aliases[key] = conn

    def _drop(self, conn: _Conn) -> None:
        conn.dead = True
        if self.conns.get(conn.key) is conn:
            del self.conns[conn.key]
        for key in [k for k, c in self.aliases.items() if c is conn]:
            del self.aliases[key]

    async def aclose(self) -> None:
        for conn in list(self.conns.values()):
            self._drop(conn)
            if conn.stream is not None:
                await trio.aclose_forcefully(conn.stream)


def _why(e: BaseException) -> str:
    """The useful part of a trio/ssl error (trio wraps ssl.SSLError as the cause)."""
    cause = e.__cause__ or e.__context__
    text = str(e) or type(e).__name__
    return f"{text}: {cause}" if cause is not None and str(cause) else text
