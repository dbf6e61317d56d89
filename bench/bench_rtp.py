"""RTP media benchmark: how many concurrent 20 ms G.711 streams one process sustains.

N RtpSessions play μ-law to N receiving RtpSessions on 127.0.0.1 (so each stream costs one
paced send and one receive+parse in this process). Prints, per N: packets/s out and in
versus the 50 pps/stream target, loss/late counts, CPU seconds per wall second, CPU per
stream and the implied streams per core. Optionally records on the receivers
(``--record``) to include the reorder buffer and decode cost.

Usage: .venv/bin/python bench/bench_rtp.py [--seconds 5] [--record] [N ...]
(default N: 100 300 600)
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import trio

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gateway.codec import g711
from gateway.io.rtp import RtpSession


async def run(n: int, seconds: float, record: bool) -> dict:
    audio = g711.silence(int(8000 * seconds))
    audio = bytes((i * 37) & 0xFF for i in range(len(audio)))      # non-silent bytes
    async with trio.open_nursery() as nursery:
        tx, rx = [], []
        for _ in range(n):
            a, b = RtpSession("127.0.0.1"), RtpSession("127.0.0.1")
            pa, pb = await a.open(nursery), await b.open(nursery)
            a.set_remote(("127.0.0.1", pb), 0)
            b.set_remote(("127.0.0.1", pa), 0)
            if record:
                b.start_recording()
            tx.append(a)
            rx.append(b)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        w0 = time.perf_counter()
        async with trio.open_nursery() as players:
            for a in tx:
                players.start_soon(a.play, audio)
        wall_play = time.perf_counter() - w0
        with trio.move_on_after(0.5):                       # let the last packets land
            while sum(b.stats["packets_in"] for b in rx) < n * len(audio) // 160:
                await trio.sleep(0.01)
        wall = time.perf_counter() - w0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        out = sum(a.stats["packets_out"] for a in tx)
        inn = sum(b.stats["packets_in"] for b in rx)
        res = {
            "n": n, "wall_play": wall_play, "expected": n * len(audio) // 160,
            "pps_out": out / wall_play, "pps_in": inn / wall, "out": out, "in": inn,
            "lost": sum(b.stats["lost"] for b in rx), "late": sum(b.stats["late"] for b in rx),
            "cpu_per_s": cpu / wall,
            "send_errors": sum(a.stats["send_errors"] for a in tx),
        }
        for s in tx + rx:
            await s.close()
        nursery.cancel_scope.cancel()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="*", type=int, default=[100, 300, 600])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * max(args.n) + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
    print(f"RTP bench: {args.seconds:.0f} s of 20 ms PCMU per stream, sender+receiver in "
          f"one process{' , receivers recording' if args.record else ''}")
    print(f"{'streams':>8} {'pps out':>9} {'pps in':>9} {'target':>8} {'lost':>6} "
          f"{'late':>5} {'play s':>7} {'CPU/s':>6} {'CPU%/stream':>12} {'streams/core':>13}")
    for n in args.n:
        r = trio.run(run, n, args.seconds, args.record)
        per = r["cpu_per_s"] / n
        print(f"{n:>8} {r['pps_out']:>9.0f} {r['pps_in']:>9.0f} {n * 50:>8} {r['lost']:>6} "
              f"{r['late']:>5} {r['wall_play']:>7.2f} {r['cpu_per_s']:>6.2f} "
              f"{100 * per:>11.3f}% {1 / per if per else 0:>13.0f}")


if __name__ == "__main__":
    main()
