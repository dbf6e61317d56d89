"""Voice benchmark with SIPp as the carrier: call setups/s and concurrent media streams.

Owns: one bounded run (< 60 s) of two phases against a gateway in its own process:

A. **Call setups/s.** SIPp (UAC) calls a number at ``--rate`` cps for ``--setup-seconds``:
   INVITE -> 100/180 -> the gateway POSTs the number's voice webhook (this process runs
   the sink, signed requests, TwiML ``<Hangup/>``) -> 200 -> ACK -> the gateway's BYE ->
   200. Prints achieved successful cps, failures, SIPp's INVITE->200 response time and
   gateway CPU ms per call.
B. **Concurrent media.** SIPp calls a second number ``--streams`` times (at 100 cps, all
   held ~12 s) and plays ``g711a.pcap`` (PCMA, 50 pps) twice per call; the gateway
   answers with ``<Say loop="0">`` (paced PCMA out, 50 pps). Over a steady window with
   every call up it prints RTP packets/s in and out of the gateway (``RtpSession.
   totals()`` sampled in the gateway), gateway CPU per stream and the implied
   full-duplex 20 ms streams per core.

The gateway runs as ``bench_voice.py --role gateway CONFIG``: ``Gateway`` from the project
(SQLite store in a temp dir, RTP ports ephemeral), printing one JSON sample per 0.5 s
(RTP totals, active calls). CPU = utime+stime from /proc of the gateway process and its
children (the store writer process). Targets (issue 6): >= 100 setups/s, >= 300 streams
per core.

Rules: 127.0.0.1 only; every process bounded (SIPp ``-timeout``) and stopped by PID
(SIGTERM, then SIGKILL); the temp dir is removed. Needs ``sipp`` (Debian sip-tester).
Usage: .venv/bin/python bench/bench_voice.py [--rate 200] [--setup-seconds 6]
       [--streams 300] [--time-limit 58]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from gateway.testing import sipp as scenarios  # noqa: E402 - after the sys.path line (run as a script)

ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TOKEN = "bench-token"
SETUP_NUMBER, MEDIA_NUMBER = "+15005550100", "+15005550101"
PCAP = "/usr/share/sip-tester/g711a.pcap"
TICK = os.sysconf("SC_CLK_TCK")
SAY = "This is the gateway media benchmark, speaking in a loop until the caller hangs up."


def free_port(kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_tree(pid: int) -> float:
    """utime+stime (s) of ``pid`` and its direct children."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    total = 0.0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, IndexError, ValueError):
            pass
    return total


# ------------------------------------------------------------------ SIPp scenarios
# the carrier's INVITE (+ its 100/180/200 and the ACK), shared with the tests
def _call(pt: int, codec: str) -> str:
    return (scenarios.invite(pt, codec) + '<recv response="100" optional="true"/>'
            '<recv response="180" optional="true"/><recv response="200" rtd="true"/>'
            + scenarios.ack())


SETUP_SCENARIO = _call(0, "PCMU") + scenarios.ok_bye()

MEDIA_SCENARIO = _call(8, "PCMA") + f"""
  <nop><action><exec play_pcap_audio="{PCAP}"/></action></nop>
  <pause milliseconds="7000"/>
  <nop><action><exec play_pcap_audio="{PCAP}"/></action></nop>
  <pause milliseconds="5000"/>
""" + scenarios.bye(2)


def scenario(body: str) -> str:
    return scenarios.scenario(body, "bench")


def config(tmp: str, sink_port: int) -> str:
    sink = f"http://127.0.0.1:{sink_port}"
    return textwrap.dedent(f"""
        [api]
        listen = "127.0.0.1:0"
        public_url = "http://127.0.0.1:8080"
        [store]
        backend = "sqlite"
        path = "{tmp}/gw.db"
        [sip]
        listen = "127.0.0.1:0"
        rtp_port_min = 0
        rtp_port_max = 0
        [webhooks]
        allow_private = true
        [[accounts]]
        sid = "{ACCOUNT}"
        auth_token = "{TOKEN}"
        [[numbers]]
        number = "{SETUP_NUMBER}"
        account = "{ACCOUNT}"
        type = "long_code"
        voice_url = "{sink}/setup"
        [[numbers]]
        number = "{MEDIA_NUMBER}"
        account = "{ACCOUNT}"
        type = "long_code"
        voice_url = "{sink}/media"
        """)


def gateway_role(config_path: str) -> None:
    import logging

    import prometheus_client
    import trio

    from gateway import settings as settings_mod
    from gateway.io.rtp import RtpSession
    from gateway.runtime.app import Gateway

    logging.basicConfig(level=logging.ERROR)

    async def main() -> None:
        gw = Gateway(settings_mod.load(config_path), registry=prometheus_client.CollectorRegistry())
        async with trio.open_nursery() as nursery:
            await nursery.start(gw.run)
            await gw.voice.tts.synthesize(SAY, "man", "en-US")       # warm the TTS cache
            print(json.dumps({"ready": gw.voice.port}), flush=True)
            while not gw.stopped:                 # SIGTERM/SIGINT: Gateway drains and stops
                print(json.dumps({"t": time.monotonic(), "rtp": RtpSession.totals(),
                                  "active": len(gw.voice.active)}), flush=True)
                await trio.sleep(0.5)

    trio.run(main)


# ------------------------------------------------------------------ sink (thread)
def start_sink() -> tuple[int, dict]:
    """The voice webhook, in a thread with its own trio loop; returns (port, counts)."""
    import trio

    from gateway.io.http_server import HttpServer, Response

    counts = {"setup": 0, "media": 0}
    ready = threading.Event()
    box = {}
    replies = {"/setup": b"<Response><Hangup/></Response>",
               "/media": f'<Response><Say loop="0">{SAY}</Say></Response>'.encode()}

    async def handle(req):
        counts[req.path.strip("/")] = counts.get(req.path.strip("/"), 0) + 1
        return Response(200, [("Content-Type", "text/xml")],
                         replies.get(req.path, b"<Response/>"))

    async def main():
        server = HttpServer(handle, "127.0.0.1", 0)
        async with trio.open_nursery() as n:
            box["port"] = await n.start(server.serve)
            ready.set()

    threading.Thread(target=lambda: trio.run(main), daemon=True).start()
    ready.wait(10)
    return box["port"], counts


# ------------------------------------------------------------------ driver
class Gw:
    def __init__(self, tmp: str, sink_port: int):
        path = os.path.join(tmp, "gw.toml")
        with open(path, "w") as f:
            f.write(config(tmp, sink_port))
        script = os.environ.get("BENCH_VOICE_GATEWAY_SCRIPT")   # e.g. a profiling wrapper
        cmd = ([sys.executable, script, path] if script else
               [sys.executable, os.path.abspath(__file__), "--role", "gateway", path])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.samples: list[dict] = []
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("gateway did not start")
        self.sip_port = json.loads(line)["ready"]
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.samples.append(json.loads(line))
            except ValueError:
                pass

    def last(self) -> dict:
        return self.samples[-1] if self.samples else {"active": 0, "rtp": {}}

    def stop(self) -> None:
        stop_proc(self.proc)


def stop_proc(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def sipp(tmp: str, name: str, body: str, service: str, gw_port: int, extra: list[str],
         limit: float) -> tuple[subprocess.Popen, str]:
    path = os.path.join(tmp, f"{name}.xml")
    with open(path, "w") as f:
        f.write(scenario(body))
    stat = os.path.join(tmp, f"{name}.csv")
    args = ["sipp", f"127.0.0.1:{gw_port}", "-sf", path, "-s", service.lstrip("+"),
            "-i", "127.0.0.1", "-p", str(free_port()), "-mi", "127.0.0.1",
            "-mp", str(free_port()), "-nostdin", "-timeout", f"{int(limit)}s",
            "-timeout_error", "-trace_stat", "-stf", stat, "-fd", "1", *extra]
    proc = subprocess.Popen(args, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, stat


def last_stat(path: str) -> dict:
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f, delimiter=";"))
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def _seconds(v: str) -> float | None:
    try:                                              # "HH:MM:SS:mmm[uuu]"
        h, m, s, frac = v.split(":")
        return int(h) * 3600 + int(m) * 60 + int(s) + float("0." + frac)
    except ValueError:
        return None


def rtd_ms(stat: dict) -> str:
    v = stat.get("ResponseTime1(C)", "")
    try:                                              # "HH:MM:SS:mmm" or "HH:MM:SS:mmmmmm"
        h, m, s, frac = v.split(":")
        return f"{(int(h) * 3600 + int(m) * 60 + int(s)) * 1000 + float('0.' + frac) * 1000:.1f}"
    except ValueError:
        return v or "?"


def phase_setup(tmp, gw: Gw, counts, rate: int, seconds: float) -> None:
    n = int(rate * seconds)
    c0, t0 = cpu_tree(gw.proc.pid), time.monotonic()
    proc, stat = sipp(tmp, "setup", SETUP_SCENARIO, SETUP_NUMBER, gw.sip_port,
                      ["-r", str(rate), "-m", str(n), "-l", str(rate * 2)], seconds + 15)
    try:
        proc.wait(seconds + 20)
    except subprocess.TimeoutExpired:
        pass
    wall = time.monotonic() - t0
    stop_proc(proc)
    cpu = cpu_tree(gw.proc.pid) - c0
    st = last_stat(stat)
    ok = int(st.get("SuccessfulCall(C)", 0) or 0)
    failed = int(st.get("FailedCall(C)", 0) or 0)
    elapsed = _seconds(st.get("ElapsedTime(C)", "")) or wall
    print(f"A. call setups: offered {rate} cps x {n} calls -> {ok} ok, {failed} failed in "
          f"{elapsed:.1f} s = {ok / elapsed:.0f} successful setups/s (with INVITE->BYE "
          f"teardown); INVITE->200 mean {rtd_ms(st)} ms; webhook POSTs {counts['setup']}; "
          f"gateway CPU {1000 * cpu / max(ok, 1):.2f} ms/call ({cpu / elapsed:.2f} cores)")


def phase_media(tmp, gw: Gw, counts, streams: int) -> None:
    rate = 100
    proc, stat = sipp(tmp, "media", MEDIA_SCENARIO, MEDIA_NUMBER, gw.sip_port,
                      ["-r", str(rate), "-m", str(streams), "-l", str(streams)], 40)
    try:
        deadline = time.monotonic() + streams / rate + 6
        while time.monotonic() < deadline and gw.last()["active"] < streams:
            time.sleep(0.1)
        up = gw.last()["active"]
        time.sleep(1.0)                               # past the last answer's first frames
        s0, c0 = gw.last(), cpu_tree(gw.proc.pid)
        t0 = time.monotonic()
        time.sleep(4.0)
        s1, c1 = gw.last(), cpu_tree(gw.proc.pid)
        wall = time.monotonic() - t0
        try:
            proc.wait(25)
        except subprocess.TimeoutExpired:
            pass
    finally:
        stop_proc(proc)
    st = last_stat(stat)
    dt = max(s1.get("t", 0) - s0.get("t", 0), 1e-9)
    rin = (s1["rtp"].get("packets_in", 0) - s0["rtp"].get("packets_in", 0)) / dt
    rout = (s1["rtp"].get("packets_out", 0) - s0["rtp"].get("packets_out", 0)) / dt
    cpu = (c1 - c0) / wall
    per_stream = cpu / max(up, 1)
    print(f"B. media: {up}/{streams} calls up at once (webhook POSTs {counts['media']}); "
          f"steady {wall:.1f} s: RTP in {rin:.0f} pkt/s, out {rout:.0f} pkt/s "
          f"(expected {50 * up} each way); gateway CPU {cpu:.2f} cores = "
          f"{1000 * per_stream:.2f} ms CPU per stream-second -> "
          f"{1 / per_stream if per_stream else float('inf'):.0f} full-duplex streams/core; "
          f"SIPp: {st.get('SuccessfulCall(C)', '?')} ok, {st.get('FailedCall(C)', '?')} failed; "
          f"loss seen by gateway {s1['rtp'].get('lost', 0)} pkts, send errors "
          f"{s1['rtp'].get('send_errors', 0)}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="main")
    ap.add_argument("config", nargs="?")
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--setup-seconds", type=float, default=6.0)
    ap.add_argument("--streams", type=int, default=300)
    ap.add_argument("--time-limit", type=float, default=58.0)
    ap.add_argument("--phase", choices=("all", "setup", "media"), default="all")
    args = ap.parse_args()
    if args.role == "gateway":
        gateway_role(args.config)
        return 0
    if shutil.which("sipp") is None:
        print("sipp not installed (Debian package sip-tester)")
        return 2
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("time limit")))
    signal.alarm(int(args.time_limit))
    tmp = tempfile.mkdtemp(prefix="bench-voice-")
    gw = None
    try:
        sink_port, counts = start_sink()
        gw = Gw(tmp, sink_port)
        if args.phase in ("all", "setup"):
            phase_setup(tmp, gw, counts, args.rate, args.setup_seconds)
        if args.phase in ("all", "media"):
            phase_media(tmp, gw, counts, args.streams)
    except TimeoutError:
        print(f"time limit {args.time_limit:.0f} s reached; stopped")
        return 1
    finally:
        signal.alarm(0)
        if gw is not None:
            gw.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
