"""HttpClient against real loopback servers: pooling, stale retry, timeouts, body cap,
chunked / close-delimited responses, TLS (self-signed cert made with openssl)."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest
import trio

from gateway.io.http_client import (
    BodyTooLarge,
    ClientLimits,
    ConnectError,
    ConnectTimeout,
    HttpClient,
    HttpClientError,
    ProtocolError,
    ReadTimeout,
    TotalTimeout,
)
from gateway.io.http_server import Response
from tests.io.test_http_server import running


async def hello(request):
    return Response.text(f"hello {request.path} {len(request.body)}")


async def read_head(stream: trio.SocketStream, buf: bytearray) -> bytes:
    """Read one request head (and body by Content-Length) from a raw stream."""
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += await stream.receive_some(65536)
    buf[:] = rest[length:]
    return head


async def raw_server(nursery, conn_handler) -> tuple[int, list]:
    """Serve each accepted connection with conn_handler(stream, index); returns port and
    a list that records one entry per accepted connection."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    accepted: list[int] = []

    async def wrapped(stream):
        accepted.append(len(accepted))
        async with stream:
            try:
                await conn_handler(stream, accepted[-1])
            except (trio.BrokenResourceError, EOFError):
                pass

    nursery.start_soon(trio.serve_listeners, wrapped, listeners)
    return listeners[0].socket.getsockname()[1], accepted


async def test_pool_reuses_connection_and_caps_concurrency():
    inflight, peak = 0, 0
    gate = trio.Event()

    async def handler(request):
        nonlocal inflight, peak
        inflight += 1
        peak = max(peak, inflight)
        if request.path == "/wait":
            await gate.wait()
        inflight -= 1
        return Response.text("ok")

    with trio.fail_after(5):
        async with running(handler) as server:
            client = HttpClient(ClientLimits(max_per_origin=2))
            url = f"http://127.0.0.1:{server.port}"
            for i in range(5):
                resp = await client.request("POST", f"{url}/n", body=b"x=%d" % i)
                assert resp.status == 200 and resp.body == b"ok"
            assert server.connections_accepted == 1 and client.connections_opened == 1
            async with trio.open_nursery() as nursery:
                for _ in range(6):
                    nursery.start_soon(client.request, "GET", f"{url}/wait")
                while inflight < 2:
                    await trio.sleep(0.005)
                gate.set()
            assert peak == 2
            assert server.connections_accepted == 2 and client.connections_opened == 2
            await client.aclose()


async def test_stale_pooled_connection_is_retried_once():
    async def answer_once_then_close(stream, index):
        buf = bytearray()
        await read_head(stream, buf)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        # keep-alive was promised, but the server drops the connection

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            port, accepted = await raw_server(nursery, answer_once_then_close)
            client = HttpClient()
            for _ in range(3):
                resp = await client.request("GET", f"http://127.0.0.1:{port}/")
                assert resp.body == b"ok"
            assert len(accepted) == 3
            await client.aclose()
            nursery.cancel_scope.cancel()


async def test_fresh_connection_closed_without_answer_is_not_retried():
    async def close_at_once(stream, index):
        await read_head(stream, bytearray())

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            port, accepted = await raw_server(nursery, close_at_once)
            client = HttpClient()
            with pytest.raises(ProtocolError):
                await client.request("POST", f"http://127.0.0.1:{port}/", body=b"a=1")
            assert len(accepted) == 1
            nursery.cancel_scope.cancel()


async def test_read_and_total_timeouts():
    async def never_answer(stream, index):
        await read_head(stream, bytearray())
        await trio.sleep_forever()

    async def trickle(stream, index):
        await read_head(stream, bytearray())
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        while True:
            await stream.send_all(b"x")
            await trio.sleep(0.02)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            port, _ = await raw_server(nursery, never_answer)
            client = HttpClient(ClientLimits(read_timeout=10, total_timeout=10))
            t0 = trio.current_time()
            with pytest.raises(ReadTimeout):
                await client.request("GET", f"http://127.0.0.1:{port}/", read_timeout=0.2)
            assert 0.15 < trio.current_time() - t0 < 2
            with pytest.raises(TotalTimeout):
                await client.request("GET", f"http://127.0.0.1:{port}/", total_timeout=0.2)
            port2, _ = await raw_server(nursery, trickle)
            with pytest.raises(TotalTimeout):      # bytes keep coming: only total fires
                await client.request("GET", f"http://127.0.0.1:{port2}/",
                                     read_timeout=0.5, total_timeout=0.3)
            nursery.cancel_scope.cancel()


async def test_connect_errors():
    closed = trio.socket.socket()
    await closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()                                        # nothing listens there now

    async def silent_tls(stream, index):                  # TCP accepted, no TLS answer
        await trio.sleep_forever()

    with trio.fail_after(5):
        client = HttpClient()
        with pytest.raises(ConnectError) as info:
            await client.request("GET", f"http://127.0.0.1:{port}/")
        assert not isinstance(info.value, ConnectTimeout)
        async with trio.open_nursery() as nursery:
            port2, _ = await raw_server(nursery, silent_tls)
            with pytest.raises(ConnectTimeout):
                await client.request("GET", f"https://127.0.0.1:{port2}/",
                                     connect_timeout=0.2)
            nursery.cancel_scope.cancel()
        with pytest.raises(ProtocolError):
            await client.request("GET", "ftp://127.0.0.1/")
        assert issubclass(ConnectTimeout, HttpClientError)


async def test_body_cap_and_response_framings():
    big = b"z" * 5000

    async def framings(stream, index):
        buf = bytearray()
        while True:
            head = await read_head(stream, buf)
            path = head.split(b" ")[1]
            if path == b"/big":
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                                      % len(big) + big)
            elif path == b"/bigchunked":
                await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      + b"1388\r\n" + big + b"\r\n0\r\n\r\n")
            elif path == b"/chunked":
                await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                      b"X-A: 1\r\n\r\n5\r\n<Resp\r\n")
                await stream.send_all(b"7\r\nonse/>\n\r\n0\r\n\r\n")
            elif path == b"/interim":
                await stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                                      b"Content-Length: 1\r\n\r\n!")
            elif path == b"/eof":
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n"
                                      b"<close-delimited/>")
                return

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            port, accepted = await raw_server(nursery, framings)
            client = HttpClient(ClientLimits(max_body=1000))
            url = f"http://127.0.0.1:{port}"
            resp = await client.request("GET", f"{url}/chunked")
            assert (resp.status, resp.body) == (200, b"<Response/>\n")
            assert resp.headers["x-a"] == "1"
            resp = await client.request("GET", f"{url}/interim")
            assert (resp.status, resp.body) == (201, b"!")
            resp = await client.request("GET", f"{url}/eof")
            assert resp.body == b"<close-delimited/>"
            assert len(accepted) == 1                   # keep-alive until the EOF one
            with pytest.raises(BodyTooLarge):
                await client.request("GET", f"{url}/big")
            with pytest.raises(BodyTooLarge):
                await client.request("GET", f"{url}/bigchunked")
            resp = await client.request("GET", f"{url}/big", max_body=10000)
            assert resp.body == big
            nursery.cancel_scope.cancel()


async def test_request_carries_host_content_length_and_headers():
    seen = []

    async def handler(request):
        seen.append(request)
        return Response.empty(204)

    with trio.fail_after(5):
        async with running(handler) as server:
            client = HttpClient()
            resp = await client.request(
                "POST", f"http://127.0.0.1:{server.port}/cb?x=1",
                headers=[("Content-Type", "application/x-www-form-urlencoded"),
                         ("X-Twilio-Signature", "abc=")], body=b"Body=&To=%2B1")
            assert resp.status == 204 and resp.body == b""
            r = seen[0]
            assert r.headers["host"] == f"127.0.0.1:{server.port}"
            assert r.headers["content-length"] == "13" and r.target == "/cb?x=1"
            assert r.headers["x-twilio-signature"] == "abc="
            assert r.form() == {"Body": [""], "To": ["+1"]}
            with pytest.raises(ProtocolError):
                await client.request("GET", f"http://127.0.0.1:{server.port}/",
                                     headers=[("X-Bad", "a\r\nInjected: 1")])
            await client.aclose()


# ---------------------------------------------------------------- TLS
@pytest.fixture(scope="module")
def cert_files(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tmp_path_factory.mktemp("tls")
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


async def test_tls_verified_with_custom_ca_and_sni(cert_files):
    cert, key = cert_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    sni = []
    server_ctx.sni_callback = lambda sslobj, name, ctx: sni.append(name)

    async def tls_conn(stream, index):
        buf = bytearray()
        while True:
            head = await read_head(stream, buf)
            body = head.split(b"\r\n")[0]
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                                  % len(body) + body)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_ssl_over_tcp_listeners(
                0, server_ctx, host="127.0.0.1", https_compatible=True)
            port = listeners[0].transport_listener.socket.getsockname()[1]
            accepted = []

            async def wrapped(stream):
                accepted.append(1)
                try:
                    await tls_conn(stream, len(accepted))
                except (trio.BrokenResourceError, EOFError):
                    pass

            nursery.start_soon(trio.serve_listeners, wrapped, listeners)
            client = HttpClient(ssl_context=ssl.create_default_context(cafile=cert))
            for _ in range(2):
                resp = await client.request("GET", f"https://127.0.0.1:{port}/secure")
                assert resp.status == 200 and resp.body == b"GET /secure HTTP/1.1"
            assert len(accepted) == 1                     # TLS connection kept alive
            resp = await client.request("GET", f"https://localhost:{port}/named")
            assert resp.body == b"GET /named HTTP/1.1" and "localhost" in sni
            strict = HttpClient()                         # system CAs: self-signed fails
            with pytest.raises(ConnectError):
                await strict.request("GET", f"https://127.0.0.1:{port}/")
            await client.aclose()
            nursery.cancel_scope.cancel()
