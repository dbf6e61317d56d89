"""Pipelined requests over one keep-alive connection (gateway.io.http_pipeline)."""

import pytest
import trio

from gateway.io.http_client import HttpClient
from gateway.io.http_common import HttpClientError
from gateway.io.http_pipeline import request_many
from gateway.io.http_server import HttpServer, Response

pytestmark = pytest.mark.codec


async def _server(nursery, handler):
    srv = HttpServer(handler, "127.0.0.1", 0)
    port = await nursery.start(srv.serve)
    return srv, port


async def test_batch_answers_in_order_on_one_connection(nursery):
    seen = []

    async def handler(req):
        seen.append(req.path)
        status = 500 if req.path == "/p3" else 200
        return Response(status, [("Content-Type", "text/plain")], req.body[::-1])

    srv, port = await _server(nursery, handler)
    client = HttpClient()
    reqs = [(f"http://127.0.0.1:{port}/p{i}", [("X-N", str(i))], f"body{i}".encode())
            for i in range(10)]
    with trio.fail_after(5):
        out = await request_many(client, "POST", reqs)
    assert [r.status for r in out] == [500 if i == 3 else 200 for i in range(10)]
    assert [r.body for r in out] == [f"body{i}".encode()[::-1] for i in range(10)]
    assert seen == [f"/p{i}" for i in range(10)]
    assert srv.connections_accepted == 1
    # the connection went back to the pool and is reused by the next batch
    with trio.fail_after(5):
        again = await request_many(client, "POST", reqs[:2])
    assert [r.status for r in again] == [200, 200]
    assert srv.connections_accepted == 1
    await client.aclose()


async def test_connection_close_mid_batch_fails_the_rest(nursery):
    async def handler(req):
        if req.path == "/p2":
            return Response(200, [("Connection", "close")], b"bye")
        return Response(200, [], b"ok")

    _, port = await _server(nursery, handler)
    client = HttpClient()
    reqs = [(f"http://127.0.0.1:{port}/p{i}", [], b"x") for i in range(5)]
    with trio.fail_after(5):
        out = await request_many(client, "POST", reqs)
    assert [getattr(r, "status", None) for r in out[:3]] == [200, 200, 200]
    assert all(isinstance(r, HttpClientError) for r in out[3:])
    await client.aclose()


async def test_one_origin_only():
    with pytest.raises(ValueError):
        await request_many(HttpClient(), "POST", [("http://a:1/x", [], b""), ("http://b:1/x", [], b"")])


async def test_refused_connection_fails_every_request_without_raising():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                   # nothing listens there now
    reqs = [(f"http://127.0.0.1:{port}/x", [], b"a"), (f"http://127.0.0.1:{port}/y", [], b"b")]
    with trio.fail_after(5):
        out = await request_many(HttpClient(), "POST", reqs)
    assert len(out) == 2 and all(isinstance(r, HttpClientError) for r in out)


@pytest.mark.parametrize("hdr", [("X-A", "v\r\nX-Evil: 1"), ("X-A", "v\n"), ("X\rA", "v")])
async def test_crlf_in_a_header_is_refused_before_sending(hdr):
    client = HttpClient()
    reqs = [("http://127.0.0.1:9/p", [("X-Ok", "1"), hdr], b"x")]
    with trio.fail_after(5), pytest.raises(HttpClientError, match="CR/LF"):
        await request_many(client, "POST", reqs)
    await client.aclose()
