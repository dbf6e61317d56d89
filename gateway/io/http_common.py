"""Shared HTTP/1.1 pieces for the trio server and client: messages, errors, wire I/O.

Owns: the Request/Response value types the API handlers see, the client error
hierarchy (HttpClientError and its subclasses), response serialization with the
cached Date header, and the client's per-connection and per-response state
(ClientConnection, ResponseState). Connection policy (limits, timeouts, pooling) lives
in http_server.py and http_client.py; the raw socket helpers (sock_recv,
sock_send_all, ...) in sockio.py, re-exported here.

Rules: header names in Request.headers are lower-case str (latin-1), repeats joined
with ", ". Response headers are (name, value) pairs; the server adds Date,
Content-Length and Connection itself, so handlers must not set them. Header values
with CR or LF are refused (ValueError) to prevent response splitting. parse_qs
memoises the unescaping of repeated values (bounded; a pure function of the text).
"""

from __future__ import annotations

import socket
import time
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import unquote, unquote_to_bytes

import httptools
import orjson
import trio

from gateway.io.sockio import (  # re-exported: the server's and client's socket I/O
    open_socket,
    sock_close,
    sock_recv,
    sock_recv_reply,
    sock_send_all,
)

__all__ = [
    "Request", "Response", "HttpClientError", "ConnectError", "ConnectTimeout",
    "ReadTimeout", "TotalTimeout", "BodyTooLarge", "BlockedAddress", "ProtocolError",
    "http_date", "status_line", "parse_qs", "sock_recv", "sock_recv_reply", "sock_send_all",
    "sock_close", "error_bytes", "serialize_response", "ResponseState", "ClientConnection", "open_socket",
]


# ---------------------------------------------------------------- client errors
class HttpClientError(Exception):
    """Base of every error the HTTP client raises."""


class ConnectError(HttpClientError):
    """TCP connect or TLS handshake failed (nothing was sent)."""


class ConnectTimeout(ConnectError):
    """Connect (incl. TLS handshake) did not finish within connect_timeout."""


class ReadTimeout(HttpClientError):
    """No byte of the response arrived within read_timeout."""


class TotalTimeout(HttpClientError):
    """The whole request (pool wait, connect, send, receive) exceeded total_timeout."""


class BodyTooLarge(HttpClientError):
    """The response body exceeded max_body."""


class BlockedAddress(HttpClientError):
    """The SSRF guard refused the target (private/loopback/reserved address)."""


class ProtocolError(HttpClientError):
    """Malformed response, connection closed mid-response, or an unusable URL."""


# ---------------------------------------------------------------- date / status
_date_cache = [0, b""]


def http_date() -> bytes:
    """RFC 7231 IMF-fixdate for now, recomputed at most once per second."""
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True).encode("ascii")
    return _date_cache[1]


_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        line = f"HTTP/1.1 {status} {reason}\r\n".encode("ascii")
        _STATUS_LINES[status] = line
    return line


# ---------------------------------------------------------------- request/response
_HEXDIGITS = "0123456789abcdefABCDEF"
#: "%XX" escapes of ASCII characters, any case of the hex digits
_ASCII_ESCAPES = {a + b: chr(int(a + b, 16)) for a in _HEXDIGITS for b in _HEXDIGITS
                  if int(a + b, 16) < 0x80}


_UNQUOTED: dict[str, str] = {}     # escaped value -> text, for repeated values (callbacks)
_UNQUOTED_MAX = 256                 # entries (cleared when full); values up to 512 chars


def _unquote_plus(s: str) -> str:
    s = s.replace("+", " ")
    if "%" not in s:
        return s
    if s[:3] in ("%2B", "%2b") and s.find("%", 3) < 0:     # "To=%2B1555...": E.164
        return "+" + s[3:]
    text = _UNQUOTED.get(s)
    if text is None:
        text = _unquote_escapes(s)
        if len(s) <= 512:
            if len(_UNQUOTED) >= _UNQUOTED_MAX:
                _UNQUOTED.clear()
            _UNQUOTED[s] = text
    return text


def _unquote_escapes(s: str) -> str:
    parts = s.split("%")
    out = [parts[0]]
    esc = _ASCII_ESCAPES
    for part in parts[1:]:
        c = esc.get(part[:2])
        if c is None:           # a non-ASCII byte or a malformed escape: the general way
            return unquote_to_bytes(s).decode("utf-8", "replace")
        out.append(c)
        out.append(part[2:])
    return "".join(out)


def parse_qs(s: str) -> dict[str, list[str]]:
    """urllib.parse.parse_qs(s, keep_blank_values=True), minus its per-pair overhead."""
    out: dict[str, list[str]] = {}
    for pair in s.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if "%" in key or "+" in key:
            key = _unquote_plus(key)
        if "%" in value or "+" in value:
            value = _unquote_plus(value)
        old = out.get(key)
        if old is None:
            out[key] = [value]
        else:
            old.append(value)
    return out


class Request:
    """One parsed HTTP request; the body is complete when the handler sees it."""

    __slots__ = ("method", "target", "path", "query", "headers", "body", "client",
                 "http_version")

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes,
                 client: tuple[str, int], http_version: str = "1.1") -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.client = client
        self.http_version = http_version
        raw = target
        if not raw.startswith("/"):            # absolute-form or "*"
            scheme_end = raw.find("://")
            if scheme_end >= 0:
                slash = raw.find("/", scheme_end + 3)
                raw = raw[slash:] if slash >= 0 else "/"
        q = raw.find("?")
        if q >= 0:
            self.query = raw[q + 1:]
            raw = raw[:q]
        else:
            self.query = ""
        hashpos = raw.find("#")
        if hashpos >= 0:
            raw = raw[:hashpos]
        self.path = unquote(raw) if "%" in raw else raw

    def query_params(self) -> dict[str, list[str]]:
        return parse_qs(self.query) if self.query else {}

    def form(self) -> dict[str, list[str]]:
        """urlencoded body (blank values kept: ``Body=`` gives ``[""]``); query for GET."""
        if self.method in ("GET", "HEAD", "DELETE") and not self.body:
            return self.query_params()
        ctype = self.headers.get("content-type", "")
        if ctype and not ctype.lower().startswith("application/x-www-form-urlencoded"):
            return {}
        if not self.body:
            return {}
        return parse_qs(self.body.decode("utf-8", "replace"))

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} from {self.client}>"


class Response:
    """Status, extra headers and a complete body (bytes)."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int = 200, headers: list[tuple[str, str]] | None = None,
                 body: bytes = b"") -> None:
        self.status = status
        self.headers = headers if headers is not None else []
        self.body = body

    @classmethod
    def json(cls, obj, status: int = 200, headers: list[tuple[str, str]] | None = None):
        hdrs = [("Content-Type", "application/json")]
        if headers:
            hdrs.extend(headers)
        return cls(status, hdrs, orjson.dumps(obj))

    @classmethod
    def text(cls, s: str, status: int = 200,
             content_type: str = "text/plain; charset=utf-8",
             headers: list[tuple[str, str]] | None = None):
        hdrs = [("Content-Type", content_type)]
        if headers:
            hdrs.extend(headers)
        return cls(status, hdrs, s.encode("utf-8"))

    @classmethod
    def empty(cls, status: int = 204, headers: list[tuple[str, str]] | None = None):
        return cls(status, list(headers) if headers else [], b"")

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)} bytes>"


# ---------------------------------------------------------------- serialization
def error_bytes(status: int) -> bytes:
    """A complete plain-text error response that closes the connection."""
    body = status_line(status)[13:-2]          # the reason phrase
    return b"".join((status_line(status), b"Date: ", http_date(),
                     b"\r\nContent-Type: text/plain\r\nContent-Length: ",
                     str(len(body)).encode(), b"\r\nConnection: close\r\n\r\n", body))


def serialize_response(resp: Response, conn_hdr: str, head_only: bool) -> bytes:
    """Status line, Date, Content-Length, the handler's headers, conn_hdr, body."""
    body = resp.body
    extra = ""
    for name, value in resp.headers:
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise ValueError(f"CR/LF in response header {name!r}")
        extra += f"{name}: {value}\r\n"
    head = b"".join((status_line(resp.status), b"Date: ", http_date(),
                     f"\r\nContent-Length: {len(body)}\r\n{extra}{conn_hdr}\r\n"
                     .encode("latin-1")))
    if head_only or not body:
        return head
    return head + body


# ---------------------------------------------------------------- client wire state
class ResponseState:
    """httptools response callbacks for one response (used by the client)."""

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


class ClientConnection:
    """One TCP connection: a raw non-blocking socket, wrapped in SSLStream for https."""

    __slots__ = ("sock", "tls", "reused", "idle_since")

    def __init__(self, sock: socket.socket, tls: trio.SSLStream | None = None) -> None:
        self.sock = sock
        self.tls = tls
        self.reused = False
        self.idle_since = 0.0

    async def send_all(self, data: bytes) -> None:
        if self.tls is None:
            await sock_send_all(self.sock, data)
        else:
            await self.tls.send_all(data)

    async def recv(self, n: int, reply: bool = False) -> bytes:
        """Up to ``n`` bytes; ``reply``: the first read after sending a request."""
        if self.tls is None:
            return await (sock_recv_reply if reply else sock_recv)(self.sock, n)
        return await self.tls.receive_some(n)

    def close(self) -> None:
        if self.tls is not None:
            self.tls.transport_stream.socket.close()
        else:
            sock_close(self.sock)
