"""Benchmark: one SmppLink bind (window 64) against the SMSC simulator in another process.

Owns: measuring submit -> submit_sm_resp pairs per second through ``gateway.io.smpp_link``
and the link side's CPU per message (``time.process_time`` of this process only; the
simulator runs in a child process started with ``python -m gateway.testing.smsc``).
Prints the numbers; asserts nothing. Bounded to ~``--seconds`` (default 8) of submitting.

Usage: python bench/bench_link.py [--seconds 8] [--window 64] [--dlr]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import trio

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from gateway import codec  # noqa: E402
from gateway.io.smpp_link import SmppLink  # noqa: E402


@dataclass
class Cfg:
    host: str = "127.0.0.1"
    port: int = 0
    system_id: str = "bench"
    password: str = "pw"
    bind: str = "transceiver"
    window: int = 64
    response_timeout: float = 10.0
    enquire_link_interval: float = 30.0
    system_type: str = ""


class Handler:
    __slots__ = ("resps", "errors", "lost", "dlrs", "up")

    def __init__(self) -> None:
        self.resps = self.errors = self.lost = self.dlrs = 0
        self.up = trio.Event()

    def on_link_state(self, carrier, up, reason):
        if up:
            self.up.set()

    def on_submit_resp(self, carrier, ref, status, message_id, latency):
        self.resps += 1
        if status:
            self.errors += 1

    def on_submit_lost(self, carrier, refs, reason):
        self.lost += len(refs)

    def on_deliver(self, carrier, pdu):
        self.dlrs += 1
        return 0


def start_sim() -> tuple[subprocess.Popen, int]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.testing.smsc", "--listen", "127.0.0.1:0",
         "--no-record"], stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, int(line.split()[3].split(":")[-1].rstrip(","))


async def bench(port: int, seconds: float, window: int, dlr: bool) -> dict:
    h = Handler()
    link = SmppLink("bench", Cfg(port=port, window=window), h)
    rd = 1 if dlr else 0
    template = dict(source_addr="15005550006", destination_addr="15551234567",
                    short_message=b"benchmark message body", registered_delivery=rd)
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        with trio.fail_after(10):
            await h.up.wait()
        # warm-up
        for i in range(2000):
            while not link.submit(i, codec.SubmitSm(**template)):
                await link.wait_slot()
        while h.resps < 2000:
            await link.wait_slot()
        r0, t0, c0 = h.resps, time.perf_counter(), time.process_time()
        deadline = t0 + seconds
        i = 0
        submit, wait_slot, SubmitSm = link.submit, link.wait_slot, codec.SubmitSm
        while True:
            if submit(i, SubmitSm(**template)):
                i += 1
                continue
            if time.perf_counter() >= deadline:
                break
            await wait_slot()
        with trio.fail_after(10):
            while link._tx.session.in_flight:
                await wait_slot()
        t1, c1 = time.perf_counter(), time.process_time()
        n = h.resps - r0
        await link.close()
        nursery.cancel_scope.cancel()
    return {"pairs": n, "wall_s": t1 - t0, "pairs_per_s": n / (t1 - t0),
            "link_cpu_us_per_msg": (c1 - c0) / n * 1e6, "errors": h.errors, "lost": h.lost,
            "dlrs": h.dlrs, "codec": codec.BACKEND, "window": window}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--dlr", action="store_true", help="request DLRs (more sim work)")
    args = ap.parse_args()
    proc, port = start_sim()
    try:
        r = trio.run(bench, port, args.seconds, args.window, args.dlr)
    finally:
        proc.terminate()
        proc.wait(5)
    print(f"codec={r['codec']} window={r['window']} pairs={r['pairs']} "
          f"in {r['wall_s']:.2f}s -> {r['pairs_per_s']:,.0f} submit/resp pairs/s; "
          f"link CPU {r['link_cpu_us_per_msg']:.2f} us/msg "
          f"(= {1e6 / r['link_cpu_us_per_msg']:,.0f} msgs per link CPU-second); "
          f"errors={r['errors']} lost={r['lost']} dlrs={r['dlrs']}")


if __name__ == "__main__":
    main()
