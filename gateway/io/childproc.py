"""Worker processes the event loop talks to over two pipes (the SQLite writer, the
status-callback sender).

Owns: spawning ``python -c "from MODULE import FUNC; FUNC(*args, rfd, wfd)"`` with a
pipe each way, and the non-blocking reads and writes on the parent's ends from trio.

Rules: the child gets its two pipe ends as the last two arguments (ints); everything
else is passed as strings. The parent's ends are non-blocking; a read of 0 bytes means
the child is gone (``EOFError``). Stopping is the caller's: close the fds (the child sees
EOF and exits) and ``reap``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import trio


def spawn(module: str, func: str, *args: str) -> tuple[subprocess.Popen, int, int]:
    """Start the child; returns (process, parent read fd, parent write fd)."""
    c_read, p_write = os.pipe()
    p_read, c_write = os.pipe()
    code = (f"import sys; from {module} import {func}; "
            f"{func}(*sys.argv[1:-2], int(sys.argv[-2]), int(sys.argv[-1]))")
    try:
        proc = subprocess.Popen([sys.executable, "-c", code, *args, str(c_read), str(c_write)],
                                pass_fds=(c_read, c_write), close_fds=True)
    except BaseException:
        close(p_read, p_write)
        raise
    finally:
        close(c_read, c_write)
    os.set_blocking(p_write, False)
    os.set_blocking(p_read, False)
    return proc, p_read, p_write


async def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            await trio.lowlevel.wait_writable(fd)


async def read_some(fd: int, n: int = 65536) -> bytes:
    """Up to ``n`` bytes, waiting until there are some; EOFError when the child is gone."""
    while True:
        try:
            data = os.read(fd, n)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(fd)
            continue
        if not data:
            raise EOFError("worker process closed its pipe")
        return data


async def read_exact(fd: int, n: int) -> bytes:
    parts, need = [], n
    while need:
        chunk = await read_some(fd, need)
        parts.append(chunk)
        need -= len(chunk)
    return b"".join(parts)


def close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def reap(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Wait for the child to exit; kill it past ``timeout``."""
    if proc is None:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
