"""Process-level harness: ``gateway run -c FILE`` as a real subprocess (trio), its port
read from its own log line, an in-process SMSC simulator as the carrier, a fake
systemd ``$NOTIFY_SOCKET``, and a trio HTTP client that speaks to the API.

Rules: the daemon binds 127.0.0.1 port 0 and says where in ``gateway ready
api=HOST:PORT``; every wait is a condition polled under a deadline; processes are
stopped by their own PID only (``send_signal``/``kill`` on the handle we started).
"""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import orjson
import trio

from gateway.io.http_client import ClientLimits, HttpClient
from tests.e2e.harness import (
    ACCOUNT,
    TOKEN,
    start_sim,  # noqa: F401 - re-exported for the process tests
)

ROOT = Path(__file__).resolve().parents[2]
READY_RE = re.compile(rb"gateway ready api=(\S+):(\d+)")


@dataclass
class GatewayProcess:
    """One ``python -m gateway run -c CONFIG`` child; stderr goes to ``log_path``."""

    config: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: trio.Process | None = None
    api_port: int | None = None
    _log = None

    async def start(self, timeout: float = 20.0) -> int:
        """Spawn and wait for the ready line; returns the API port."""
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        self.proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "gateway", "run", "-c", str(self.config)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=self._log)
        m = await self.wait_log(READY_RE, timeout)
        self.api_port = int(m.group(2))
        return self.api_port

    def log_text(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    async def wait_log(self, pattern: re.Pattern, timeout: float):
        with trio.fail_after(timeout):
            while True:
                m = pattern.search(self.log_path.read_bytes())
                if m:
                    return m
                if self.proc is not None and self.proc.returncode is not None:
                    raise AssertionError(f"gateway exited {self.proc.returncode} before "
                                         f"{pattern.pattern!r}:\n{self.log_text()[-3000:]}")
                await trio.sleep(0.02)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        with trio.fail_after(timeout):
            return await self.proc.wait()

    async def stop(self) -> None:
        """Best effort cleanup: SIGKILL our child if it still runs, close the log."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            with trio.move_on_after(10):
                await self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


class Api:
    """Just enough of the REST API over ``gateway.io.http_client`` (trio, keep-alive)."""

    def __init__(self, port: int, account: str = ACCOUNT, token: str = TOKEN) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.account = account
        self.auth = "Basic " + base64.b64encode(f"{account}:{token}".encode()).decode()
        self.client = HttpClient(limits=ClientLimits(max_per_origin=64, connect_timeout=2.0,
                                                     read_timeout=10.0, total_timeout=10.0))

    async def create(self, **params) -> tuple[int, dict]:
        body = urlencode(params).encode()
        r = await self.client.request(
            "POST", f"{self.base}/2010-04-01/Accounts/{self.account}/Messages.json",
            headers=[("Authorization", self.auth),
                     ("Content-Type", "application/x-www-form-urlencoded")], body=body)
        return r.status, orjson.loads(r.body) if r.body else {}

    async def get(self, path: str) -> tuple[int, bytes]:
        r = await self.client.request("GET", self.base + path,
                                      headers=[("Authorization", self.auth)])
        return r.status, r.body

    async def aclose(self) -> None:
        await self.client.aclose()


class NotifySocket:
    """A fake systemd notify socket (AF_UNIX datagram) in ``tmp_path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []   # (trio time, datagram)

    def env(self, watchdog_s: float | None = None) -> dict[str, str]:
        env = {"NOTIFY_SOCKET": str(self.path)}
        if watchdog_s:
            env.update(WATCHDOG_USEC=str(int(watchdog_s * 1e6)), WATCHDOG_PID="")
        return env

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            self.messages.append((trio.current_time(), data.decode()))

    def lines(self) -> list[tuple[float, str]]:
        self.drain()
        return [(t, ln) for t, msg in self.messages for ln in msg.split("\n")]

    async def wait_for(self, prefix: str, timeout: float, after: float = float("-inf")) -> float:
        """Trio time of the first notify line starting with ``prefix`` received after ``after``."""
        with trio.fail_after(timeout):
            while True:
                for t, ln in self.lines():
                    if t > after and ln.startswith(prefix):
                        return t
                await trio.lowlevel.wait_readable(self.sock)

    def close(self) -> None:
        self.sock.close()
