"""HttpServer over real loopback sockets: keep-alive, pipelining, chunked bodies,
100-continue, limits, timeouts, connection cap, drain, error handling."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

import httptools
import pytest
import trio

from gateway.io.http_server import HttpServer, Request, Response, ServerLimits


# ---------------------------------------------------------------- helpers
@asynccontextmanager
async def running(handler, limits: ServerLimits | None = None):
    server = HttpServer(handler, "127.0.0.1", 0, limits=limits)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        yield server
        nursery.cancel_scope.cancel()


class RawConn:
    """A raw client connection that parses responses with httptools."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.responses: list[tuple[int, dict[str, str], bytes]] = []
        self._cur: dict = {}
        self.parser = httptools.HttpResponseParser(self)
        self.eof = False

    @classmethod
    async def open(cls, port: int) -> RawConn:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    def on_message_begin(self) -> None:
        self._cur = {"headers": {}, "body": b""}

    def on_header(self, name: bytes, value: bytes) -> None:
        self._cur["headers"][name.decode().lower()] = value.decode()

    def on_body(self, data: bytes) -> None:
        self._cur["body"] += data

    def on_message_complete(self) -> None:
        self.responses.append((self.parser.get_status_code(), self._cur["headers"],
                               self._cur["body"]))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def read_raw(self) -> bytes:
        data = await self.stream.receive_some(65536)
        if not data:
            self.eof = True
        return data

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        while not self.responses:
            data = await self.read_raw()
            if not data:
                raise EOFError("closed before a complete response")
            self.parser.feed_data(data)
        return self.responses.pop(0)

    async def wait_closed(self) -> None:
        """Read until the server closes (EOF or reset), then close our side."""
        try:
            while True:
                data = await self.stream.receive_some(65536)
                if not data:
                    break
                self.parser.feed_data(data)
        except trio.BrokenResourceError:
            pass
        await self.stream.aclose()


    async def aclose(self) -> None:
        await self.stream.aclose()


async def until(predicate) -> None:
    """Wait for a condition (callers bound the time with trio.fail_after)."""
    while not predicate():
        await trio.sleep(0.005)


def req(path: str = "/", method: str = "GET", body: bytes = b"", extra: str = "",
        version: str = "1.1") -> bytes:
    head = f"{method} {path} HTTP/{version}\r\nHost: t\r\n{extra}"
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def echo(request: Request) -> Response:
    return Response.json({"method": request.method, "path": request.path,
                          "query": request.query, "body": request.body.decode("latin-1"),
                          "form": request.form(), "headers": request.headers})


# ---------------------------------------------------------------- tests
async def test_keep_alive_reuses_one_connection():
    with trio.fail_after(5):
        async with running(echo) as server:
            conn = await RawConn.open(server.port)
            for i in range(5):
                await conn.send(req(f"/n{i}"))
                status, headers, body = await conn.response()
                assert status == 200 and f'"/n{i}"'.encode() in body
                assert "date" in headers and headers["content-length"] == str(len(body))
                assert "connection" not in headers
            assert server.connections_accepted == 1
            await conn.aclose()


async def test_pipelined_requests_answered_in_order_in_one_write():
    with trio.fail_after(5):
        async with running(echo) as server:
            conn = await RawConn.open(server.port)
            await conn.send(req("/a") + req("/b", "POST", b"x=1") + req("/c"))
            first = await conn.read_raw()              # one write -> one loopback segment
            assert first.count(b"HTTP/1.1 200 OK") == 3
            conn.parser.feed_data(first)
            got = [await conn.response() for _ in range(3)]
            assert [r[0] for r in got] == [200, 200, 200]
            assert [r[2].split(b'"path":"')[1][:2] for r in got] == [b"/a", b"/b", b"/c"]
            await conn.aclose()


async def test_chunked_request_body_is_reassembled():
    with trio.fail_after(5):
        async with running(echo) as server:
            conn = await RawConn.open(server.port)
            await conn.send(b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                            b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
                            b"5\r\nBody=\r\n")
            await conn.send(b"6\r\n&To=%2\r\n2\r\nB1\r\n0\r\n\r\n")
            status, _, body = await conn.response()
            assert status == 200
            assert b'"body":"Body=&To=%2B1"' in body
            assert b'"form":{"Body":[""],"To":["+1"]}' in body
            await conn.aclose()


async def test_expect_100_continue_then_body():
    with trio.fail_after(5):
        async with running(echo) as server:
            conn = await RawConn.open(server.port)
            await conn.send(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                            b"Expect: 100-continue\r\n\r\n")
            assert await conn.response() == (100, {}, b"")
            await conn.send(b"a=b")
            status, _, body = await conn.response()
            assert status == 200 and b'"body":"a=b"' in body
            await conn.aclose()


async def test_expect_100_continue_too_large_gets_413_without_body():
    limits = ServerLimits(max_body=100)
    with trio.fail_after(5):
        async with running(echo, limits) as server:
            conn = await RawConn.open(server.port)
            await conn.send(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n"
                            b"Expect: 100-continue\r\n\r\n")
            status, headers, _ = await conn.response()
            assert status == 413 and headers["connection"] == "close"
            await conn.wait_closed()


async def test_unknown_expectation_gets_417():
    with trio.fail_after(5):
        async with running(echo) as server:
            conn = await RawConn.open(server.port)
            await conn.send(req("/", extra="Expect: teapot\r\n"))
            assert (await conn.response())[0] == 417


async def test_header_too_large_gets_431_in_one_piece_and_trickled():
    limits = ServerLimits(max_header_bytes=1024)
    with trio.fail_after(5):
        async with running(echo, limits) as server:
            conn = await RawConn.open(server.port)
            await conn.send(req("/", extra=f"X-Big: {'a' * 2000}\r\n"))
            assert (await conn.response())[0] == 431
            await conn.wait_closed()
            # an unterminated header value sent in small pieces is cut off too
            conn = await RawConn.open(server.port)
            await conn.send(b"GET / HTTP/1.1\r\nX-Slow: ")
            for _ in range(40):
                await conn.send(b"b" * 100)
                if conn.responses:
                    break
                with trio.move_on_after(0.01):      # poll for an early answer
                    data = await conn.read_raw()
                    conn.parser.feed_data(data)
            assert conn.responses and conn.responses[0][0] == 431


async def test_body_too_large_gets_413_declared_and_chunked():
    limits = ServerLimits(max_body=1000)
    with trio.fail_after(5):
        async with running(echo, limits) as server:
            conn = await RawConn.open(server.port)
            await conn.send(req("/", "POST", b"x" * 5000))
            assert (await conn.response())[0] == 413
            await conn.wait_closed()
            conn = await RawConn.open(server.port)
            chunk = b"3e8\r\n" + b"y" * 1000 + b"\r\n"
            await conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                            + chunk * 2 + b"0\r\n\r\n")
            assert (await conn.response())[0] == 413


async def test_malformed_request_gets_400_and_close():
    with trio.fail_after(5):
        async with running(echo) as server:
            conn = await RawConn.open(server.port)
            await conn.send(b"GARBAGE\x01 / HTTP/9\r\n\r\n")
            status, headers, _ = await conn.response()
            assert status == 400 and headers["connection"] == "close"
            await conn.wait_closed()


async def test_slow_headers_get_408_and_idle_keepalive_is_closed():
    limits = ServerLimits(header_timeout=0.2, idle_timeout=0.3)
    with trio.fail_after(5):
        async with running(echo, limits) as server:
            conn = await RawConn.open(server.port)
            await conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n")       # never finished
            t0 = trio.current_time()
            assert (await conn.response())[0] == 408
            await conn.wait_closed()
            assert trio.current_time() - t0 >= 0.15
            conn = await RawConn.open(server.port)
            await conn.send(req("/"))
            assert (await conn.response())[0] == 200
            t0 = trio.current_time()
            await conn.wait_closed()                                   # idle timeout
            assert 0.2 <= trio.current_time() - t0 < 3
            await until(lambda: server.active_connections == 0)


async def test_connection_cap_answers_503():
    limits = ServerLimits(max_connections=2)
    with trio.fail_after(5):
        async with running(echo, limits) as server:
            conns = [await RawConn.open(server.port) for _ in range(2)]
            for c in conns:
                await c.send(req("/"))
                assert (await c.response())[0] == 200
            extra = await RawConn.open(server.port)
            await extra.send(req("/"))
            status, headers, _ = await extra.response()
            assert status == 503 and headers["connection"] == "close"
            await extra.wait_closed()
            await conns[0].aclose()
            await until(lambda: server.active_connections == 1)
            again = await RawConn.open(server.port)
            await again.send(req("/"))
            assert (await again.response())[0] == 200


async def test_connection_close_and_http10_defaults():
    with trio.fail_after(5):
        async with running(echo) as server:
            conn = await RawConn.open(server.port)
            await conn.send(req("/", extra="Connection: close\r\n"))
            status, headers, _ = await conn.response()
            assert status == 200 and headers["connection"] == "close"
            await conn.wait_closed()
            conn = await RawConn.open(server.port)
            await conn.send(req("/", version="1.0"))
            status, headers, _ = await conn.response()
            assert headers["connection"] == "close"
            await conn.wait_closed()
            conn = await RawConn.open(server.port)
            for _ in range(2):
                await conn.send(req("/", version="1.0", extra="Connection: keep-alive\r\n"))
                status, headers, _ = await conn.response()
                assert status == 200 and headers["connection"] == "keep-alive"
            assert server.connections_accepted == 3


async def test_handler_exception_is_500_without_traceback(caplog):
    async def boom(request):
        raise RuntimeError("secret-detail")

    with trio.fail_after(5), caplog.at_level(logging.ERROR, logger="gateway.http"):
        async with running(boom) as server:
            conn = await RawConn.open(server.port)
            for _ in range(2):                       # connection stays usable
                await conn.send(req("/x"))
                status, _, body = await conn.response()
                assert status == 500 and b"secret" not in body and b"Trace" not in body
    assert any("secret-detail" in (r.exc_text or "") for r in caplog.records)


async def test_form_query_head_and_repeated_headers():
    with trio.fail_after(5):
        async with running(echo) as server:
            conn = await RawConn.open(server.port)
            await conn.send(req("/p%20q?Body=&To=%2B1&To=x", extra="X-A: 1\r\nx-a: 2\r\n"))
            _, _, body = await conn.response()
            assert b'"path":"/p q"' in body and b'"query":"Body=&To=%2B1&To=x"' in body
            assert b'"form":{"Body":[""],"To":["+1","x"]}' in body
            assert b'"x-a":"1, 2"' in body
            await conn.send(req("/", method="HEAD"))
            data = b""
            while b"\r\n\r\n" not in data:
                data += await conn.read_raw()
            head, _, rest = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: " in head
            assert rest == b""


async def test_drain_finishes_inflight_closes_idle_refuses_new():
    entered, release = trio.Event(), trio.Event()

    async def handler(request):
        if request.path == "/slow":
            entered.set()
            await release.wait()
        return Response.text("done")

    with trio.fail_after(5):
        async with running(handler) as server:
            idle = await RawConn.open(server.port)
            await idle.send(req("/"))
            assert (await idle.response())[0] == 200
            busy = await RawConn.open(server.port)
            await busy.send(req("/slow"))
            await entered.wait()
            drained = trio.Event()
            async with trio.open_nursery() as nursery:
                async def do_drain():
                    await server.drain(3)
                    drained.set()
                nursery.start_soon(do_drain)
                await idle.wait_closed()                      # idle one closed at once
                with pytest.raises(OSError):
                    await trio.open_tcp_stream("127.0.0.1", server.port)
                assert not drained.is_set()
                release.set()
                status, headers, body = await busy.response()
                assert (status, body) == (200, b"done") and headers["connection"] == "close"
                await busy.wait_closed()
            assert drained.is_set() and server.active_connections == 0


async def test_drain_deadline_cancels_stuck_handler():
    async def stuck(request):
        await trio.sleep_forever()

    with trio.fail_after(5):
        async with running(stuck) as server:
            conn = await RawConn.open(server.port)
            await conn.send(req("/"))
            await until(lambda: any(not c.idle for c in server._conns))
            t0 = trio.current_time()
            await server.drain(0.2)
            assert 0.15 <= trio.current_time() - t0 < 2
            await conn.wait_closed()


async def test_serve_reports_port_and_listens():
    server = HttpServer(echo, "127.0.0.1", 0)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            assert port == server.port and port > 0
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.aclose()
            await server.drain(1)
