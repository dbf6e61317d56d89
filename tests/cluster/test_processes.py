"""Two ``gateway run`` processes on one Redis: kill -9 one by PID under load; every
message answered 201 reaches the carrier (the survivor claims the dead one's senders)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from gateway.io.http_client import HttpClient
from gateway.io.http_server import HttpServer
from tests.e2e.harness import LONG, LONG2, SHORT, TOLL_FREE, Sink

from .harness import ClusterEnv, redis_config, start_sim, wait_until

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(rb"gateway ready api=127\.0\.0\.1:(\d+)")


async def spawn(cfg: Path) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "-c", str(cfg)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env,
                            cwd=str(REPO))
    with trio.fail_after(20):
        while True:
            line = await trio.to_thread.run_sync(proc.stderr.readline)
            assert line, "gateway exited before it was ready"
            m = READY.search(line)
            if m:
                break
    # keep draining stderr so the child never blocks on a full pipe
    def drain():
        with open(str(cfg) + f".{proc.pid}.log", "wb") as f:
            for line in proc.stderr:
                f.write(line)
    trio.lowlevel.spawn_system_task(trio.to_thread.run_sync, drain)
    return proc, int(m.group(1))


@pytest.mark.slow
async def test_kill_9_one_gateway_process_loses_nothing(tmp_path, redis_server):
    rates = "long_code = 20\ntoll_free = 20\nshort_code = 20\nqueue_hours = 1"
    senders = [LONG, LONG2, TOLL_FREE, SHORT]
    procs: list[subprocess.Popen] = []
    try:
        with trio.fail_after(50):
            async with trio.open_nursery() as nursery:
                sim = await start_sim(nursery, dlr_delay_ms=10)
                sink = Sink()
                sink.server = HttpServer(sink.handle, "127.0.0.1", 0)
                sink.port = await nursery.start(sink.server.serve)
                cfg = tmp_path / "gw.toml"
                cfg.write_text(redis_config(tmp_path, sim.port, sink.port,
                                            redis_server.url(prefix=f"p-{os.getpid()}:"), rates,
                                            binds=2))
                ports = []
                for _ in range(2):
                    proc, port = await spawn(cfg)
                    procs.append(proc)
                    ports.append(port)
                env = ClusterEnv([], sim, None, HttpClient(), nursery)
                env.nodes = [type("N", (), {"port": p})() for p in ports]
                acked = set()
                for i in range(200):
                    node = i % 2 if i < 80 else 1
                    if i == 80:
                        os.kill(procs[0].pid, signal.SIGKILL)     # under load
                        procs[0].wait()
                    st, _ = await env.create(node, To="+15005550001",
                                             From=senders[i % 4], Body=f"p{i}")
                    if st == 201:
                        acked.add(f"p{i}")
                assert len(acked) >= 150

                def missing():
                    return acked - {r.short_message.decode() for r in sim.submits}

                try:
                    await wait_until(lambda: not missing(), timeout=30)
                except trio.TooSlowError:
                    print("MISSING", len(missing()), sorted(missing(), key=lambda b: int(b[1:]))[:40], file=sys.stderr)
                    raise
                await env.http.aclose()
                nursery.cancel_scope.cancel()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
