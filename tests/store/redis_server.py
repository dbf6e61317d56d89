"""A throwaway ``redis-server`` for tests and benches: unix socket in a temp dir, AOF with
``appendfsync always``, no TCP port (``--port 0``), stopped by its PID.

Rules: start waits for the server to answer PING (a condition with a deadline), never a
fixed sleep. ``kill9`` + ``start`` on the same dir is a crash and restart from the AOF.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def available() -> bool:
    return os.path.exists(REDIS_SERVER)


class RedisServer:
    def __init__(self, directory: str | os.PathLike, fsync: str = "always") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sock = str(self.dir / "redis.sock")
        self.fsync = fsync
        self.proc: subprocess.Popen | None = None

    def url(self, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"unix://{self.sock}" + (f"?{query}" if query else "")

    def start(self, timeout: float = 10.0) -> RedisServer:
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", self.sock, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "yes", "--appendfsync", self.fsync,
             "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self._pong():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("redis-server did not answer PING")
            time.sleep(0.01)        # polling a condition, bounded by the deadline
        return self

    def _pong(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1.0)
                s.connect(self.sock)
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()
