"""sd_notify against a real AF_UNIX datagram socket (path and abstract), watchdog env."""

import os
import socket
import uuid

import pytest
import trio

from gateway.io import sdnotify
from gateway.observability.metrics import Metrics


@pytest.fixture
def receiver(tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()


def test_notify_path_socket(receiver):
    assert sdnotify.notify("READY=1") is True
    assert receiver.recv(4096) == b"READY=1"
    assert sdnotify.notify("STATUS=draining\nSTOPPING=1")
    assert receiver.recv(4096) == b"STATUS=draining\nSTOPPING=1"


def test_notify_abstract_socket(monkeypatch):
    name = f"gateway-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("WATCHDOG=1")
        assert sock.recv(64) == b"WATCHDOG=1"


def test_notify_without_systemd_or_with_dead_socket(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/not/allowed")
    assert sdnotify.notify("READY=1") is False


@pytest.mark.parametrize("usec, pid, want", [
    ("30000000", None, 30.0),
    ("30000000", "self", 30.0),
    ("30000000", "1", None),          # meant for another process
    ("0", None, None),
    ("junk", None, None),
    (None, None, None),
])
def test_watchdog_interval(monkeypatch, usec, pid, want):
    for k, v in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, str(os.getpid()) if v == "self" else v)
    assert sdnotify.watchdog_interval() == want


async def test_run_watchdog_pings_while_healthy(receiver, monkeypatch, mock_clock):
    mock_clock.autojump_threshold = 0
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    receiver.setblocking(False)
    healthy = [True]
    metrics = Metrics()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: sdnotify.run_watchdog(
                lambda: healthy[0], metrics=metrics, task_status=task_status))
            await trio.lowlevel.wait_readable(receiver)
            assert receiver.recv(64) == b"WATCHDOG=1"
            assert metrics.watchdog_last_ok._value.get() > 0
            healthy[0] = False
            # the next tick (1 s later) withholds the ping; nothing must arrive in 1.5 s
            with trio.move_on_after(1.5) as scope:
                await trio.lowlevel.wait_readable(receiver)
            assert scope.cancelled_caught
            nursery.cancel_scope.cancel()


async def test_run_watchdog_returns_when_disabled(monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    with trio.fail_after(1):
        await sdnotify.run_watchdog()
