"""End-to-end benchmark of the gateway on loopback, pure Python (no Node): ``make bench``.

Owns: one bounded run of the whole pipeline, every part in its own process:

  loader --API POST--> gateway --submit_sm--> ``gateway smsc-sim`` --DLR--> gateway
         --status callbacks (sent, delivered)--> sink

- the SMSC simulator is ``python -m gateway smsc-sim`` (``--no-record``, control port
  polled for its submit count);
- the sink is this file with ``--role sink`` (trio + gateway.io.http_server, counts POSTs
  by MessageStatus, ``GET /stats`` returns the counts and first/last epoch times);
- the gateway is ``python -m gateway run -c`` with a config from bench/e2e_config.py
  (100 short codes, so the 100 segments/s per-sender limit is not the bottleneck);
- the loader is this file with ``--role load`` (gateway.io.http_client.HttpClient, C
  concurrent requests, senders rotating over the short codes); it prints one JSON line.

Prints msgs/s at each stage (API accepted, SMSC submits, callbacks, end to end), gateway
CPU per message (/proc/PID/stat, utime+stime), API latency p50/p99 at full load, then
API create p50/p99 with an open-loop load at half the end-to-end peak.

Rules: 127.0.0.1 only; bounded (default N=5000, --time-limit 120 s for the whole run);
processes are stopped by PID (SIGTERM, then SIGKILL after 5 s); temp dir removed.
Helpers here (free_port, Proc, http_json, cpu_s) are reused by bench/bench_reroute.py.
Usage: python bench/bench_e2e.py [--n 5000] [--c 64] [--rate 0] [--senders 100] [--time-limit 120]
       [--pyspy FILE]  (py-spy raw samples of the gateway from load start to last callback)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import e2e_config  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
# --profile: the gateway runs under cProfile; SIGINT (trio: KeyboardInterrupt) ends it and
# the stats are written (pstats file; read with python -m pstats FILE).
PROFILED_GATEWAY = """
import cProfile, sys
from gateway.cli import main
prof = cProfile.Profile()
try:
    prof.runcall(main, ["run", "-c", sys.argv[1]])
except KeyboardInterrupt:
    pass
finally:
    prof.dump_stats(sys.argv[2])
"""


# ------------------------------------------------------------------ process helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float | None:
    """utime + stime of one process, seconds (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return None


class Proc:
    """A child process logging to a file; ``stop()`` ends it by PID."""

    def __init__(self, name: str, argv: list[str], logdir: str) -> None:
        self.name = name
        self.log = os.path.join(logdir, f"{name}.log")
        self._f = open(self.log, "wb")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._f, cwd=ROOT)
        self.pid = self.p.pid

    def first_line(self, timeout: float) -> str:
        """The child's first stdout line (how it reports its ports)."""
        import select
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            raise RuntimeError(f"{self.name}: no output after {timeout}s; see {self.log}")
        line = self.p.stdout.readline().decode().strip()
        if not line:
            raise RuntimeError(f"{self.name} exited ({self.p.poll()}); see {self.log}")
        return line

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.p.poll() is None:
            os.kill(self.pid, sig)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait(5)
        self._f.close()

    def tail(self, n: int = 15) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def http_json(url: str, data: dict | None = None, timeout: float = 3.0):
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def wait_until(pred, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = pred()
            if v:
                return v
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout}s")
        time.sleep(interval)


def gateway_ready(api_port: int, carriers: int = 1) -> bool:
    body = http_json(f"http://127.0.0.1:{api_port}/healthz", timeout=1.0)
    return sum(1 for c in body.get("carriers", {}).values() if c.get("smpp") == "bound") >= carriers


def pct(sorted_vals: list[float], p: float) -> float | None:
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(p / 100 * len(sorted_vals)))]


# ------------------------------------------------------------------ sink process
def run_sink() -> None:
    import trio

    from gateway.io.http_server import HttpServer, Response

    st = {"requests": 0, "first": None, "last": None, "by_status": {}}

    async def handle(req):
        if req.method == "GET":
            return Response.json(st)
        now = time.time()
        st["requests"] += 1
        st["first"] = st["first"] or now
        st["last"] = now
        s = req.form().get("MessageStatus", ["?"])[-1]
        st["by_status"][s] = st["by_status"].get(s, 0) + 1
        return Response.text("", status=200)

    async def main():
        server = HttpServer(handle, "127.0.0.1", 0)
        async with trio.open_nursery() as n:
            port = await n.start(server.serve)
            print(port, flush=True)

    trio.run(main)


# ------------------------------------------------------------------ load process
def run_load(a) -> None:
    """Closed loop (--c workers, --n messages) or open loop (--rate msgs/s for --n)."""
    import base64

    import trio

    from gateway.io.http_client import ClientLimits, HttpClient, HttpClientError

    url = f"http://127.0.0.1:{a.api_port}/2010-04-01/Accounts/{e2e_config.ACCOUNT}/Messages.json"
    auth = base64.b64encode(f"{e2e_config.ACCOUNT}:{a.token}".encode()).decode()
    headers = [("Authorization", "Basic " + auth),
               ("Content-Type", "application/x-www-form-urlencoded")]
    cb = "&StatusCallback=" + urllib.parse.quote(a.callback, safe="") if a.callback else ""
    senders = e2e_config.short_codes(a.first, a.senders)
    res = {"accepted": 0, "errors": 0, "status": {}, "lat": [], "bodies": [], "t_acc": []}

    def body(i: int) -> bytes:
        return (f"To=%2B1555{i % 10_000_000:07d}&From={senders[i % len(senders)]}"
                f"&Body={a.prefix}{i}{cb}").encode()

    async def one(client, i):
        t0 = time.monotonic()
        try:
            r = await client.request("POST", url, headers=headers, body=body(i))
            code = r.status
        except HttpClientError as exc:
            code = type(exc).__name__
        t1 = time.monotonic()
        res["status"][str(code)] = res["status"].get(str(code), 0) + 1
        if code == 201:
            res["accepted"] += 1
            res["lat"].append(t1 - t0)
            if a.bodies:
                res["bodies"].append(f"{a.prefix}{i}")
                res["t_acc"].append(time.time())
        else:
            res["errors"] += 1

    async def main():
        client = HttpClient(ClientLimits(max_per_origin=max(a.c, 1)), allow_private=True)
        res["start"] = time.time()
        with trio.move_on_after(a.time_limit):
            if a.rate:
                async with trio.open_nursery() as n:
                    t0 = trio.current_time()
                    for i in range(a.n):
                        await trio.sleep_until(t0 + i / a.rate)
                        n.start_soon(one, client, i)
            else:
                it = iter(range(a.n))

                async def worker():
                    for i in it:
                        await one(client, i)
                async with trio.open_nursery() as n:
                    for _ in range(a.c):
                        n.start_soon(worker)
        res["end"] = time.time()
        await client.aclose()

    trio.run(main)
    lat = sorted(res.pop("lat"))
    res["p50_ms"] = round(1000 * pct(lat, 50), 2) if lat else None
    res["p99_ms"] = round(1000 * pct(lat, 99), 2) if lat else None
    res["max_ms"] = round(1000 * lat[-1], 2) if lat else None
    res["cpu_s"] = round(time.process_time(), 2)
    print(json.dumps(res), flush=True)


def load(api_port: int, token: str, callback: str, n: int, c: int, time_limit: float,
         rate: float = 0.0, senders: int = 100, first: int = 20100, prefix: str = "bench",
         bodies: bool = False) -> dict:
    """Run the loader as its own process; its JSON result."""
    argv = [sys.executable, os.path.abspath(__file__), "--role", "load", "--api-port", str(api_port),
            "--token", token, "--callback", callback, "--n", str(n), "--c", str(c),
            "--rate", str(rate), "--time-limit", str(time_limit), "--senders", str(senders),
            "--from", str(first), "--prefix", prefix] + (["--bodies"] if bodies else [])
    out = subprocess.run(argv, capture_output=True, timeout=time_limit + 30, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"loader failed: {out.stderr.decode()[-2000:]}")
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


# ------------------------------------------------------------------ orchestration
def run_bench(a) -> int:
    t_end = time.monotonic() + a.time_limit
    left = lambda: max(1.0, t_end - time.monotonic())  # noqa: E731
    tmp = tempfile.mkdtemp(prefix="bench-e2e-")
    procs: list[Proc] = []
    try:
        sim = Proc("smsc", [sys.executable, "-m", "gateway", "smsc-sim", "--listen", "127.0.0.1:0",
                            "--control", "127.0.0.1:0", "--no-record"], tmp)
        procs.append(sim)
        line = sim.first_line(20)              # "smsc-sim listening on H:P, control on H:C"
        smsc_port = int(line.split(",")[0].rsplit(":", 1)[1])
        ctl = f"http://127.0.0.1:{int(line.rsplit(':', 1)[1])}"
        sink = Proc("sink", [sys.executable, os.path.abspath(__file__), "--role", "sink"], tmp)
        procs.append(sink)
        sink_url = f"http://127.0.0.1:{int(sink.first_line(20))}"
        api_port = free_port()
        cfg = e2e_config.write(os.path.join(tmp, "gateway.toml"), api_port=api_port,
                               carriers=[("a", smsc_port, 1)], store_dir=tmp, token=a.token,
                               first=a.first, count=a.senders, window=a.window)
        gw_argv = ([sys.executable, "-c", PROFILED_GATEWAY, cfg, os.path.abspath(a.profile)]
                   if a.profile else [sys.executable, "-m", "gateway", "run", "-c", cfg])
        gw = Proc("gateway", gw_argv, tmp)
        procs.append(gw)
        try:
            wait_until(lambda: gateway_ready(api_port), 30, "gateway bound")
        except TimeoutError:
            print(gw.tail(), file=sys.stderr)
            raise
        spy = None
        if a.pyspy:   # sampling profile of the gateway during the closed-loop load only
            spy = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "py-spy"),
                                    "record", "-p", str(gw.pid), "-r", "200", "-f", "raw", "--gil",
                                    "-o", os.path.abspath(a.pyspy), "-d", "120"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu0 = {p.name: cpu_s(p.pid) for p in procs}
        res = load(api_port, a.token, sink_url + "/status", a.n, a.c, min(left(), 90),
                   rate=a.rate, senders=a.senders, first=a.first)
        acc = res["accepted"]
        # SMSC submits: poll the control port for the first/last submit times
        t_sub0 = t_sub1 = None
        def done():
            nonlocal t_sub0, t_sub1
            subs = http_json(ctl + "/stats")["submits"]
            if subs and t_sub0 is None:
                t_sub0 = res["start"]
            if subs >= acc and t_sub1 is None:
                t_sub1 = time.time()
            return subs >= acc and http_json(sink_url + "/stats")["requests"] >= a.cb_per_msg * acc
        try:
            wait_until(done, min(left(), 60), "all submits and callbacks", 0.02)
            completed = True
        except TimeoutError:
            completed = False
        cpu1 = {p.name: cpu_s(p.pid) for p in procs}
        if spy is not None:
            spy.send_signal(signal.SIGINT)    # py-spy writes its file on SIGINT
            try:
                spy.wait(15)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(5)
        smsc, sk = http_json(ctl + "/stats"), http_json(sink_url + "/stats")
        end = max(x for x in (t_sub1, sk["last"], res["end"]) if x)
        gw_cpu = cpu1["gateway"] - cpu0["gateway"]
        rate = lambda n, t0, t1: round(n / (t1 - t0), 1) if n and t0 and t1 and t1 > t0 else None  # noqa
        e2e = rate(acc, res["start"], end)
        print(f"bench_e2e: N={a.n} C={a.c}{f' rate={a.rate:g}/s' if a.rate else ''} senders={a.senders} window={a.window} codec="
              f"{http_json(f'http://127.0.0.1:{api_port}/healthz').get('codec')}"
              f"{'' if completed else '  (INCOMPLETE)'}")
        print(f"  API accepted        {acc}/{a.n}  {rate(acc, res['start'], res['end'])} msg/s"
              f"  statuses {res['status']}")
        print(f"  SMSC submits        {smsc['submits']}  ~{rate(smsc['submits'], res['start'], t_sub1)}"
              f" msg/s (first request -> last submit, 20 ms polling)")
        print(f"  status callbacks    {sk['requests']}  {rate(sk['requests'], sk['first'], sk['last'])}"
              f" /s  {sk['by_status']}")
        print(f"  end to end          {e2e} msg/s  (accepted / first request -> last submit or callback)")
        print(f"  gateway CPU         {gw_cpu:.2f} s = {1000 * gw_cpu / max(acc, 1):.3f} ms/msg"
              f"  (sim {cpu1['smsc'] - cpu0['smsc']:.2f} s, sink {cpu1['sink'] - cpu0['sink']:.2f} s,"
              f" loader {res['cpu_s']} s)")
        print(f"  API latency @C={a.c}  p50 {res['p50_ms']} ms  p99 {res['p99_ms']} ms  max {res['max_ms']} ms")
        if e2e and left() > 10:
            half = e2e / 2
            nh = int(min(a.n, half * min(10.0, left() / 3)))
            r2 = load(api_port, a.token, sink_url + "/status", nh, a.c, min(left(), 60), rate=half,
                      senders=a.senders, first=a.first, prefix="half")
            print(f"  API create @ half peak ({half:.0f} msg/s open loop, {r2['accepted']}/{nh}):"
                  f"  p50 {r2['p50_ms']} ms  p99 {r2['p99_ms']} ms  max {r2['max_ms']} ms")
        return 0 if completed else 1
    finally:
        for p in reversed(procs):
            p.stop(signal.SIGINT if a.profile and p.name == "gateway" else signal.SIGTERM)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=("bench", "sink", "load"), default="bench")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--c", type=int, default=64)
    p.add_argument("--rate", type=float, default=0.0,
                   help="open loop msgs/s instead of C workers (same batching in A/B runs)")
    p.add_argument("--senders", type=int, default=100)
    p.add_argument("--from", dest="first", type=int, default=20100)
    p.add_argument("--window", type=int, default=128)
    p.add_argument("--cb-per-msg", type=int, default=2, help="callbacks expected (sent, delivered)")
    p.add_argument("--time-limit", type=float, default=120.0)
    p.add_argument("--token", default=e2e_config.DEFAULT_TOKEN)
    p.add_argument("--api-port", type=int, default=0)
    p.add_argument("--callback", default="")
    p.add_argument("--prefix", default="bench")
    p.add_argument("--bodies", action="store_true", help="load role: report accepted bodies")
    p.add_argument("--profile", default="", metavar="FILE",
                   help="run the gateway under cProfile, pstats to FILE (slows it down)")
    p.add_argument("--pyspy", default="", metavar="FILE",
                   help="py-spy record (raw, 200 Hz, GIL holder only: a CPU proxy) the gateway, "
                   "load start to last callback")
    a = p.parse_args(argv)
    if a.role == "sink":
        run_sink()
        return 0
    if a.role == "load":
        run_load(a)
        return 0
    return run_bench(a)


if __name__ == "__main__":
    sys.exit(main())
