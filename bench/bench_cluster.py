"""Benchmark of scale-out on one Redis: end-to-end msgs/s (HTTP create -> SMSC submit)
with 1, 2 and 3 gateways in one process, and Redis commands per message (INFO
commandstats delta / messages).

Rules: a script, not a test. It starts its own redis-server (unix socket, AOF always) in
a temporary directory and stops it by PID. All gateways share this process (and here
2 cores), so the numbers show the mechanism's cost, not a multi-host speed-up.

Usage: python bench/bench_cluster.py [--count N] [--concurrency C] [--gateways 1,2,3]
       [--top K]   (K commands with the most calls per message; 0 = all)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.cluster.harness import cluster_env  # noqa: E402
from tests.e2e.harness import LONG, LONG2, SHORT, TOLL_FREE  # noqa: E402
from tests.store.redis_server import RedisServer  # noqa: E402

SENDERS = [LONG, LONG2, TOLL_FREE, SHORT]
RATES = "long_code = 100000\ntoll_free = 100000\nshort_code = 100000\nqueue_hours = 1"


async def commandstats(client) -> dict[str, int]:
    info = await client.info("commandstats")
    return {k: int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_")}


async def run_case(tmp: Path, server: RedisServer, gateways: int, count: int,
                   concurrency: int, top_k: int = 8) -> dict:
    async with cluster_env(tmp, server, n=gateways, rates=RATES, binds=gateways,
                           sim_kw={"dlr_delay_ms": 0, "record_submits": False}) as env:
        with trio.fail_after(20):
            while sum(len(x.gw.cluster.held) for x in env.nodes) < 16:
                await trio.sleep(0.05)
        client = env.nodes[0].gw.store.client
        before = await commandstats(client)
        acks0 = sum(getattr(x.gw.cluster, "ack_calls", 0) for x in env.nodes)
        sent0 = env.sim.stats["submits"]
        counter = iter(range(count))
        failures = 0
        t0 = time.perf_counter()

        async def worker() -> None:
            nonlocal failures
            for i in counter:
                st, _ = await env.create(i % gateways, To="+15005550001",
                                         From=SENDERS[i % len(SENDERS)], Body=f"b{i}")
                failures += st != 201

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        t_accept = time.perf_counter() - t0
        with trio.fail_after(120):
            while env.sim.stats["submits"] - sent0 < count - failures:
                await trio.sleep(0.01)
        t_end = time.perf_counter() - t0
        # let DLRs and their saves/acks finish before counting commands
        await trio.sleep(1.0)
        after = await commandstats(client)
        ack_calls = sum(getattr(x.gw.cluster, "ack_calls", 0) for x in env.nodes) - acks0
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        total = sum(delta.values())
        top = sorted(((v, k[8:]) for k, v in delta.items() if v), reverse=True)
        top = top[:top_k] if top_k > 0 else top
        return {"gateways": gateways, "accepted_per_s": count / t_accept,
                "e2e_per_s": count / t_end, "failures": failures,
                "cmds_per_msg": total / count,
                "acks_per_call": count / ack_calls if ack_calls else 0.0,
                "top": ", ".join(f"{k}={v / count:.2f}" for v, k in top)}


async def main(args) -> None:
    with tempfile.TemporaryDirectory() as d:
        server = RedisServer(Path(d) / "redis").start()
        try:
            for n in [int(x) for x in args.gateways.split(",")]:
                case = Path(d) / f"case{n}"
                case.mkdir()
                res = await run_case(case, server, n, args.count,
                                     args.concurrency, args.top)
                print(f"gateways={res['gateways']}  accepted={res['accepted_per_s']:7.0f}/s  "
                      f"end-to-end={res['e2e_per_s']:7.0f}/s  failures={res['failures']}  "
                      f"redis cmds/msg={res['cmds_per_msg']:.1f}  "
                      f"acks/ACK call={res['acks_per_call']:.1f}  ({res['top']})", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--gateways", default="1,2,3")
    ap.add_argument("--top", type=int, default=8)
    logging.basicConfig(level=logging.ERROR)
    trio.run(main, ap.parse_args())
