"""Failover benchmark: how fast and how cleanly traffic moves off a dead SMPP carrier.

Owns: one bounded run, every part in its own process:
  - two SMSC simulators (``--role sims`` of this file: two gateway.testing.smsc
    SmscSimulator, each with its JSON control port; it prints their ports and the offset
    between its trio clock and epoch, so submit record times can be compared with the
    loader's accept times);
  - the gateway (config from bench/e2e_config.py: carrier a priority 1, carrier b
    priority 2, one route "+" over both, 100 short codes);
  - the open-loop loader of bench/bench_e2e.py (--rate msgs/s from many short codes,
    unique bodies, accept times recorded).
After --fail-at seconds of steady flow carrier A fails: ``down`` = its control port gets
``POST /down`` (connections closed, new ones refused), ``blackhole`` = ``POST /faults``
withhold=1 (submits never answered: only the response timeout can tell).

Measured (epoch times, one clock per machine):
  - time from A's loss to the first submit on B;
  - time to 100 % of new traffic on B: when the last message accepted after the loss
    that was delayed (accept -> submit latency above max(0.25 s, 3 x the pre-failure
    p99)) reached B; after that every new message flows through B at normal latency;
  - lost: API-accepted bodies that neither simulator accepted (GET /submits on both
    control ports; must be 0); possible duplicates: bodies accepted (message id given)
    more than once across both.
Printed next to the anchors: Kamailio ~2 s (fr_timer), FreeSWITCH >= 5 s (OPTIONS
pings), jambonz 60 s (pings).

Rules: 127.0.0.1 only; bounded (--time-limit, default 120 s); processes stopped by PID.
Usage: python bench/bench_reroute.py [--rate 500] [--duration 12] [--fail-at 4]
       [--failure down|blackhole] [--response-timeout 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_e2e as b  # noqa: E402
import e2e_config  # noqa: E402

ANCHORS = [("Kamailio (fr_timer)", "~2 s"), ("FreeSWITCH (OPTIONS pings)", ">= 5 s"),
           ("jambonz (OPTIONS pings)", "60 s")]


# ------------------------------------------------------------------ simulators process
def run_sims() -> None:
    import trio

    from gateway.testing.smsc import SimConfig, SmscSimulator

    async def main():
        sims = [SmscSimulator(SimConfig(port=0, control_port=0, max_records=500_000))
                for _ in range(2)]
        async with trio.open_nursery() as n:
            for s in sims:
                await n.start(s.serve)
            print(json.dumps({"ports": [s.port for s in sims],
                              "controls": [s.control_port for s in sims],
                              "offset": time.time() - trio.current_time()}), flush=True)

    trio.run(main)


# ------------------------------------------------------------------ analysis
def received(ctl: str, offset: float) -> list[tuple[float, str, bool]]:
    """(epoch time, body, carrier accepted it) for every submit a simulator recorded."""
    out = []
    for r in b.http_json(ctl + "/submits?limit=1000000", timeout=20):
        body = bytes.fromhex(r["short_message"]).decode("latin-1")  # ASCII bodies: GSM = ASCII
        out.append((r["time"] + offset, body, r["message_id"] is not None))
    return out


def analyse(acc: dict[str, float], recs_a, recs_b, t_down: float) -> dict:
    first: dict[str, tuple[float, str]] = {}   # body -> (first accepted submit time, carrier)
    count: dict[str, int] = {}
    for name, recs in (("a", recs_a), ("b", recs_b)):
        for t, body, ok in recs:
            if not ok or body not in acc:
                continue
            count[body] = count.get(body, 0) + 1
            if body not in first or t < first[body][0]:
                first[body] = (t, name)
    lost = sorted(set(acc) - set(first))
    dups = sum(c - 1 for c in count.values() if c > 1)
    pre = sorted(first[x][0] - acc[x] for x in acc if acc[x] < t_down - 0.5 and x in first)
    p99_pre = b.pct(pre, 99) or 0.0
    thr = max(0.25, 3 * p99_pre)
    b_after = [t for t, _, ok in recs_b if ok and t >= t_down]
    t_first_b = min(b_after) - t_down if b_after else None
    new = [x for x in acc if acc[x] >= t_down]
    delayed = [first[x][0] for x in new if x in first and first[x][0] - acc[x] > thr]
    on_a_after = sum(1 for x in new if x in first and first[x][1] == "a")
    t_all_b = (max(delayed) - t_down) if delayed else t_first_b
    inflight = [x for x in acc if acc[x] < t_down and x in first and first[x][0] >= t_down]
    return {"accepted": len(acc), "lost": len(lost), "lost_examples": lost[:5], "duplicates": dups,
            "pre_p99_ms": round(1000 * p99_pre, 1), "threshold_ms": round(1000 * thr),
            "t_first_b": t_first_b, "t_all_b": t_all_b, "new_msgs": len(new),
            "new_delayed": len(delayed), "new_on_a": on_a_after,
            "rerouted_backlog": len(inflight),
            "b_before_fail": sum(1 for t, _, ok in recs_b if ok and t < t_down)}


# ------------------------------------------------------------------ orchestration
def run_bench(a) -> int:
    t_end = time.monotonic() + a.time_limit
    tmp = tempfile.mkdtemp(prefix="bench-reroute-")
    procs: list[b.Proc] = []
    loader = None
    try:
        sims = b.Proc("sims", [sys.executable, os.path.abspath(__file__), "--role", "sims"], tmp)
        procs.append(sims)
        info = json.loads(sims.first_line(20))
        ctl_a, ctl_b = (f"http://127.0.0.1:{p}" for p in info["controls"])
        api_port = b.free_port()
        cfg = e2e_config.write(
            os.path.join(tmp, "gateway.toml"), api_port=api_port, store_dir=tmp,
            carriers=[("a", info["ports"][0], 1), ("b", info["ports"][1], 2)],
            token=e2e_config.DEFAULT_TOKEN, first=20100, count=a.senders, window=a.window,
            response_timeout=a.response_timeout, reconnect_min=0.5, reconnect_max=5.0)
        gw = b.Proc("gateway", [sys.executable, "-m", "gateway", "run", "-c", cfg], tmp)
        procs.append(gw)
        try:
            b.wait_until(lambda: b.gateway_ready(api_port, carriers=2), 30, "both carriers bound")
        except TimeoutError:
            print(gw.tail(), file=sys.stderr)
            raise
        n = int(a.rate * a.duration)
        argv = [sys.executable, os.path.join(b.HERE, "bench_e2e.py"), "--role", "load",
                "--api-port", str(api_port), "--token", e2e_config.DEFAULT_TOKEN,
                "--callback", "", "--n", str(n), "--c", "256", "--rate", str(a.rate),
                "--time-limit", str(a.duration + 20), "--senders", str(a.senders),
                "--prefix", "rr", "--bodies"]
        out_f = open(os.path.join(tmp, "loader.json"), "w+b")
        loader = subprocess.Popen(argv, stdout=out_f, stderr=subprocess.PIPE, cwd=b.ROOT)
        time.sleep(a.fail_at)          # steady flow on A before the failure (the load is paced)
        t_down = time.time()
        if a.failure == "down":
            b.http_json(ctl_a + "/down", {"down": True})
        else:
            b.http_json(ctl_a + "/faults", {"withhold": 1.0})
        loader.wait(timeout=a.duration + 40)
        out_f.seek(0)
        res = json.loads(out_f.read().decode().strip().splitlines()[-1])
        acc = dict(zip(res["bodies"], res["t_acc"], strict=True))

        def union():
            got = set()
            for ctl in (ctl_a, ctl_b):
                got.update(body for _, body, ok in received(ctl, info["offset"]) if ok)
            return len(set(acc) - got) == 0
        try:
            b.wait_until(union, max(5.0, min(60.0, t_end - time.monotonic())), "all accepted "
                         "bodies at a simulator", 0.5)
        except TimeoutError:
            pass
        r = analyse(acc, received(ctl_a, info["offset"]), received(ctl_b, info["offset"]), t_down)
        fmt = lambda v: f"{v:.3f} s" if v is not None else "never"  # noqa: E731
        print(f"bench_reroute: failure={a.failure} at t={a.fail_at}s, {a.rate:.0f} msg/s open loop "
              f"for {a.duration}s from {a.senders} short codes, response_timeout="
              f"{a.response_timeout}s")
        print(f"  API accepted               {r['accepted']}/{n}  statuses {res['status']}")
        print(f"  A loss -> first submit on B {fmt(r['t_first_b'])}")
        print(f"  A loss -> 100% new on B     {fmt(r['t_all_b'])}  ({r['new_delayed']} of "
              f"{r['new_msgs']} new msgs delayed > {r['threshold_ms']} ms; pre-failure p99 "
              f"{r['pre_p99_ms']} ms; new msgs on A {r['new_on_a']})")
        print(f"  backlog moved to B          {r['rerouted_backlog']} msgs accepted before the "
              f"loss, submitted after it; on B before the loss: {r['b_before_fail']}")
        print(f"  lost                        {r['lost']}  {r['lost_examples'] or ''}")
        print(f"  possible duplicates         {r['duplicates']} (accepted by a carrier twice)")
        print("  anchors: " + ", ".join(f"{k} {v}" for k, v in ANCHORS))
        return 0 if r["lost"] == 0 else 1
    finally:
        if loader is not None and loader.poll() is None:
            loader.kill()
            loader.wait()
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=("bench", "sims"), default="bench")
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--duration", type=float, default=12.0)
    p.add_argument("--fail-at", type=float, default=4.0)
    p.add_argument("--failure", choices=("down", "blackhole"), default="down")
    p.add_argument("--response-timeout", type=float, default=5.0)
    p.add_argument("--senders", type=int, default=100)
    p.add_argument("--window", type=int, default=128)
    p.add_argument("--time-limit", type=float, default=120.0)
    a = p.parse_args(argv)
    if a.role == "sims":
        run_sims()
        return 0
    return run_bench(a)


if __name__ == "__main__":
    sys.exit(main())
