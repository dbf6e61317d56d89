"""HTTP/1.1 pipelining over the client's keep-alive pool: many requests to one origin
written with one send, their responses read back in order from the same connection.

Status callbacks are independent, idempotent POSTs to (usually) one receiver: sending a
batch per write turns 2 syscalls and a scheduler round per callback into 2 per batch.

Rules:
- All requests of a batch go to one origin (scheme, host, port); paths may differ.
- Results come back in request order: a ``ClientResponse`` or the ``HttpClientError``
  that request got. When the connection closes or breaks mid-batch, every request
  without a response gets a ``ProtocolError`` (the caller retries them: at least once).
- A reused connection that dies before the first response byte is retried once on a
  fresh connection (the peer closed an idle keep-alive connection), like ``request``.
- One timer for the batch: connect timeout, then read timeout between bytes, and the
  total timeout over the whole batch.
"""

from __future__ import annotations

import httptools

from gateway.io.http_client import (
    _NET_ERRORS,
    ClientResponse,
    HttpClient,
    _Stale,
    _Timer,
)
from gateway.io.http_common import (
    ConnectTimeout,
    HttpClientError,
    ProtocolError,
    ReadTimeout,
    ResponseState,
    TotalTimeout,
)


class _Responses(ResponseState):
    """``ResponseState``'s callbacks (headers, body cap) for consecutive responses on one
    connection: each complete one is appended to ``out`` and the state starts afresh."""

    __slots__ = ("out",)

    def __init__(self, max_body: int) -> None:
        super().__init__(max_body)
        self.out: list[ClientResponse] = []
        self.keep = True

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if not (100 <= status < 200 and status != 101):      # interim responses: skipped
            self.out.append(ClientResponse(status, self.headers, b"".join(self.body)))
            self.keep = self.parser.should_keep_alive()
        self.headers, self.body, self.size = {}, [], 0
        self.head_done, self.length, self.chunked = False, None, False


def _payload(method: str, target: str, host_hdr: str, headers, body: bytes) -> bytes:
    lines = "".join([f"{k}: {v}\r\n" for k, v in headers])
    n = len(headers)
    if lines.count("\n") != n or lines.count("\r") != n:     # CR/LF inside a name or value
        for k, v in headers:
            if "\n" in k or "\r" in k or "\n" in v or "\r" in v:
                raise ProtocolError(f"CR/LF in request header {k!r}")
    return (f"{method} {target} HTTP/1.1\r\nHost: {host_hdr}\r\n{lines}"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body


async def request_many(
    client: HttpClient,
    method: str,
    requests: list[tuple[str, list[tuple[str, str]], bytes]],
    *,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    total_timeout: float | None = None,
    max_body: int | None = None,
) -> list[ClientResponse | HttpClientError]:
    """Send ``requests`` (url, headers, body) pipelined on one connection of their
    common origin; see the module rules."""
    lim = client.limits
    parsed = [client.parse_url(url) for url, _, _ in requests]
    origin = parsed[0][:3]
    if any(p[:3] != origin for p in parsed):
        raise ValueError("request_many needs one origin")
    data = b"".join(
        _payload(method, p[3], p[4], hdrs, body) for p, (_, hdrs, body) in zip(parsed, requests, strict=True)
    )
    timer = _Timer(
        lim.total_timeout if total_timeout is None else total_timeout,
        lim.connect_timeout if connect_timeout is None else connect_timeout,
        lim.read_timeout if read_timeout is None else read_timeout,
    )
    n = len(requests)
    results: list[ClientResponse | HttpClientError] = []
    with timer.scope:
        try:
            results = await _exchange(client, origin, data, n, timer,
                                      lim.max_body if max_body is None else max_body)
        except HttpClientError as exc:      # connect failed, refused, blocked: all of them
            results = [exc] * n
    if timer.scope.cancelled_caught:
        err: HttpClientError
        if timer.phase == "connect":
            err = ConnectTimeout(f"connect to {origin[1]}:{origin[2]} timed out")
        elif timer.phase == "read":
            err = ReadTimeout("no response byte within the read timeout")
        else:
            err = TotalTimeout("batch not answered within the total timeout")
        results = results + [err] * (n - len(results))
    return results


async def _exchange(client: HttpClient, origin, data: bytes, n: int, timer: _Timer,
                    max_body: int) -> list:
    async def attempt(conn):
        return await _roundtrips(client, conn, data, n, timer, max_body)

    return await client.with_connection(origin, timer, attempt)


async def _roundtrips(client: HttpClient, conn, data: bytes, n: int, timer: _Timer,
                      max_body: int):
    state = _Responses(max_body)
    timer.arm("read")
    try:
        await conn.send_all(data)
    except _NET_ERRORS as exc:
        if conn.reused:
            raise _Stale() from exc
        return [ProtocolError(f"send failed: {exc}")] * n, False
    recv_size = client.limits.recv_size
    error: HttpClientError | None = None
    first = True
    while len(state.out) < n:
        try:
            chunk = await conn.recv(recv_size, first)
            first = False
        except _NET_ERRORS as exc:
            if conn.reused and not state.out:
                raise _Stale() from exc
            error = ProtocolError(f"connection lost: {exc}")
            break
        if not chunk:
            if conn.reused and not state.out:
                raise _Stale()
            error = ProtocolError("connection closed mid-batch")
            break
        try:
            state.parser.feed_data(chunk)
        except httptools.HttpParserCallbackError as exc:
            ctx = exc.__context__
            error = ctx if isinstance(ctx, HttpClientError) else ProtocolError(f"bad response: {exc}")
            break
        except httptools.HttpParserError as exc:
            error = ProtocolError(f"bad response: {exc}")
            break
        if not state.keep:
            break
        timer.arm("read")
    out: list = list(state.out[:n])
    if len(out) < n:
        out.extend([error or ProtocolError("connection closed mid-batch")] * (n - len(out)))
        return out, False
    return out, state.keep and error is None
