"""systemd/gateway.service: required settings, `systemd-analyze verify` clean, exposure
score <= 2.0, and MemoryDenyWriteExecute= not breaking our imports (checked with the
kernel's PR_SET_MDWE, the same mechanism)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "gateway.service"
ENV = ROOT / "systemd" / "gateway.env"
BINARY = "/opt/gateway/.venv/bin/gateway"
try:                  # graceful drain the daemon allows itself on SIGTERM
    from gateway.runtime.app import DRAIN_S
except ImportError:   # runtime not there yet: the drain CONTRACT/README promise
    DRAIN_S = 30.0

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze not installed (Debian package systemd)")


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def seconds(v: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|min)?", v)
    assert m, v
    return float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "min": 60}[m.group(2)]


def test_unit_has_contract_settings():
    d = directives(UNIT.read_text())
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert seconds(d["WatchdogSec"][0]) >= 10
    assert d["DynamicUser"] == ["yes"] and d["StateDirectory"] == ["gateway"]
    assert len(d["LoadCredential"]) >= 2
    assert all(re.fullmatch(r"[\w.-]+:/\S+", c) for c in d["LoadCredential"])
    assert seconds(d["TimeoutStopSec"][0]) > DRAIN_S
    assert d["ExecStart"] == [f"{BINARY} run -c /etc/gateway/gateway.toml"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]       # reload = SIGHUP


def test_env_file_is_plain_assignments():
    for line in ENV.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", line), line


@pytest.fixture
def runnable_unit(tmp_path):
    """The unit with its binary pointed at one that exists here (verify checks it)."""
    unit = tmp_path / "gateway.service"
    unit.write_text(UNIT.read_text().replace(BINARY, sys.executable))
    return unit


@needs_analyze
def test_systemd_analyze_verify_is_clean(runnable_unit):
    r = subprocess.run(["systemd-analyze", "verify", str(runnable_unit)],
                       capture_output=True, text=True, timeout=30)
    noise = [ln for ln in (r.stdout + r.stderr).splitlines() if "gateway.service" in ln]
    assert r.returncode == 0 and noise == [], r.stdout + r.stderr


@needs_analyze
def test_systemd_analyze_security_score(runnable_unit):
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(runnable_unit)],
                       capture_output=True, text=True, timeout=30)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    if m is None and "--offline" in r.stderr:
        pytest.skip("systemd-analyze too old for --offline")
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.0, r.stdout


MDWE_PROBE = r"""
import ctypes, importlib, pkgutil, sys
if sys.argv[1] == "mdwe":
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:          # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        print("UNSUPPORTED"); sys.exit(0)
import gateway
mods = ["trio", "httptools", "orjson", "msgpack", "prometheus_client", "sqlite3", "ssl"]
mods += [m.name for m in pkgutil.walk_packages(gateway.__path__, "gateway.")
         if m.name != "gateway.__main__"]          # the CLI itself: runs on import
failed = []
for name in mods:
    try:
        importlib.import_module(name)
    except BaseException:
        failed.append(name)
import trio

async def loopback():
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with await trio.open_tcp_stream("127.0.0.1", port) as client:
        server = await listeners[0].accept()
        await client.send_all(b"ping")
        assert await server.receive_some(4) == b"ping"
        await server.aclose()

trio.run(loopback)
codec = sys.modules.get("gateway.codec")
pdu = codec.SubmitSm(sequence_number=7, destination_addr="15551234567", short_message=b"hi")
if codec.decode(codec.encode(pdu)).short_message != b"hi":
    failed.append("codec round trip")
print("BACKEND", getattr(codec, "BACKEND", None), "FAILED", *failed)
"""


def test_memory_deny_write_execute_does_not_break_imports():
    """MemoryDenyWriteExecute=yes is in the unit: importing every gateway module (the
    Cython codec included) and running trio must work with W+X mappings refused."""
    def probe(mode):
        r = subprocess.run([sys.executable, "-c", MDWE_PROBE, mode], capture_output=True,
                           text=True, timeout=60, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().splitlines()[-1]

    with_mdwe = probe("mdwe")
    if with_mdwe == "UNSUPPORTED":
        pytest.skip("kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert with_mdwe == probe("plain")
    assert with_mdwe.endswith("FAILED"), with_mdwe     # every module imported, codec ran


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_daemon_speaks_the_notify_protocol_the_unit_expects(tmp_path):
    """Type=notify + WatchdogSec: READY=1, WATCHDOG=1 within WatchdogSec/2, STOPPING=1 on
    SIGTERM, exit 0 well before TimeoutStopSec; stderr is one text line per event."""
    smsc = _free_port()
    text = (ROOT / "config/gateway.dev.toml").read_text()
    text = (text.replace('"127.0.0.1:8080"', '"127.0.0.1:0"').replace("2775", str(smsc))
            .replace('"127.0.0.1:5060"', '"127.0.0.1:0"')
            .replace('"var/gateway.db"', f'"{tmp_path}/gw.db"'))
    (tmp_path / "gw.toml").write_text(text)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock"),
               WATCHDOG_USEC="2000000", WATCHDOG_PID="")
    stderr = open(tmp_path / "stderr", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "-c", str(tmp_path / "gw.toml")],
                            env=env, cwd=ROOT, stderr=stderr)
    deadline = time.monotonic() + 30

    def until(prefix: str) -> float:
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = sock.recv(4096).decode()
            except TimeoutError:
                raise AssertionError(f"no {prefix} from the daemon; stderr: "
                                     + (tmp_path / "stderr").read_text()[-2000:]) from None
            if any(line.startswith(prefix) for line in msg.split("\n")):
                return time.monotonic()

    try:
        ready = until("READY=1")
        # WATCHDOG_USEC=2 s: pings every 1 s; the first must come before systemd's 2 s limit
        assert until("WATCHDOG=1") - ready < 2.0
        proc.send_signal(signal.SIGTERM)
        term = time.monotonic()
        until("STOPPING=1")
        assert proc.wait(timeout=max(1, deadline - time.monotonic())) == 0
        stop_limit = seconds(directives(UNIT.read_text())["TimeoutStopSec"][0])
        assert time.monotonic() - term < stop_limit
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
    lines = (tmp_path / "stderr").read_text().splitlines()
    assert lines and all(re.match(r"\S+Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ ", ln)
                         for ln in lines), lines
