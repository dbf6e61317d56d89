"""Benchmark of the HTTP layer (gateway.io.http_server / http_client) on loopback.

Owns: two measurements, each with the server in its own process pinned to CPU 0 and
the load on CPU 1 (when the machine has 2+ cores):
  1. server req/s: a plain epoll load generator, C keep-alive connections, each sending
     a form POST and reading the fixed-size 201 JSON answer (no parsing on that side);
  2. client req/s and client CPU µs per request: gateway HttpClient, C concurrent
     callers sharing one pool, against the same server.
Rules: loopback only, every loop bounded by --seconds; the server process is killed
at the end. Usage: python bench/bench_http.py [--seconds 3] [--conns 32]
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import sys
import time

import trio

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gateway.io.http_client import ClientLimits, HttpClient  # noqa: E402
from gateway.io.http_server import HttpServer, Response  # noqa: E402

FORM = b"To=%2B15005550006&From=%2B15005550001&Body=Hello+there"


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {cpu})


async def _handler(req):
    form = req.form()
    return Response.json({"sid": "SM" + "0" * 32, "to": form.get("To", [""])[0],
                          "status": "queued"}, 201)


async def _serve() -> None:
    server = HttpServer(_handler, "127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        print(port, flush=True)


def _request(port: int) -> bytes:
    return (f"POST /2010-04-01/Accounts/AC1/Messages.json HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(FORM)}\r\n\r\n").encode() + FORM


def _raw_load(port: int, conns: int, seconds: float) -> tuple[int, float]:
    """A plain epoll loop (much cheaper per request than any Python HTTP client, so
    the server is what saturates): C connections, one request in flight on each;
    responses are fixed-size (the Date header has a fixed width), so bytes are counted."""
    req = _request(port)
    probe = socket.create_connection(("127.0.0.1", port))
    probe.sendall(req)
    resp_len = len(probe.recv(65536))
    probe.close()
    ep = select.epoll()
    socks, pending = {}, {}
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks[s.fileno()] = s
        pending[s.fileno()] = resp_len
        ep.register(s.fileno(), select.EPOLLIN)
        s.send(req)
    count = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        for fd, _ in ep.poll(0.5):
            s = socks[fd]
            data = s.recv(65536)
            if not data:
                raise RuntimeError("server closed a connection")
            pending[fd] -= len(data)
            if pending[fd] <= 0:
                count += 1
                pending[fd] = resp_len
                s.send(req)
    wall = time.perf_counter() - t0
    for s in socks.values():
        s.close()
    ep.close()
    return count, wall


async def _client_load(port: int, conns: int, seconds: float) -> tuple[int, float, float]:
    client = HttpClient(ClientLimits(max_per_origin=conns), allow_private=True)
    url = f"http://127.0.0.1:{port}/2010-04-01/Accounts/AC1/Messages.json"
    headers = [("Content-Type", "application/x-www-form-urlencoded")]
    count = 0

    async def worker(deadline: float) -> None:
        nonlocal count
        while trio.current_time() < deadline:
            resp = await client.request("POST", url, headers=headers, body=FORM)
            if resp.status != 201:
                raise RuntimeError(f"status {resp.status}")
            count += 1

    await client.request("POST", url, headers=headers, body=FORM)
    t0, c0 = time.perf_counter(), time.process_time()
    deadline = trio.current_time() + seconds
    async with trio.open_nursery() as nursery:
        for _ in range(conns):
            nursery.start_soon(worker, deadline)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await client.aclose()
    return count, wall, cpu


def _proc_cpu(pid: int) -> float:
    """utime + stime of a process in seconds (Linux /proc), 0.0 elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        _pin(0)
        trio.run(_serve)
        return
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        _pin(1)
        s0 = _proc_cpu(proc.pid)
        n, wall = _raw_load(port, args.conns, args.seconds)
        scpu = _proc_cpu(proc.pid) - s0
        print(f"server: {n / wall:,.0f} req/s ({n} requests, {args.conns} keep-alive "
              f"connections, {wall:.1f} s); server CPU {scpu / n * 1e6:.0f} µs/req "
              f"= {n / scpu if scpu else 0:,.0f} req/s per core-second")
        n, wall, cpu = trio.run(_client_load, port, args.conns, args.seconds)
        print(f"client: {n / wall:,.0f} req/s, {cpu / n * 1e6:.0f} µs CPU per request "
              f"({n} requests, concurrency {args.conns})")
    finally:
        proc.kill()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
