"""systemd notification protocol (sd_notify) without libsystemd.

Owns: ``notify(msg)`` (a datagram to ``$NOTIFY_SOCKET``, path or ``@abstract``),
``watchdog_interval()`` (``WatchdogSec`` from ``$WATCHDOG_USEC``/``$WATCHDOG_PID``), and
``run_watchdog`` — a trio task sending ``WATCHDOG=1`` every interval/2 while the daemon is
healthy and recording event-loop lag.

Rules:
- ``notify`` never raises: no ``$NOTIFY_SOCKET`` (not under systemd) or a send error
  returns False. Messages: ``READY=1`` once the store is open and the API listens,
  ``WATCHDOG=1`` while healthy, ``STOPPING=1`` on SIGTERM, ``STATUS=...`` free text.
- ``watchdog_interval()`` returns the watchdog *timeout* in seconds (None when disabled or
  meant for another pid); ping at half of it, as systemd recommends.
- Error handling: a failed send is logged once per run of failures and retried at the next
  tick; an unhealthy check skips the ping so systemd restarts a stuck daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

import trio

log = logging.getLogger(__name__)


def notify(msg: str) -> bool:
    """Send ``msg`` (e.g. ``"READY=1"``) to the service manager; True when sent."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr or addr[0] not in "/@":
        return False
    if addr[0] == "@":
        addr = "\0" + addr[1:]              # Linux abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(msg.encode())
    except OSError as e:
        log.debug("sd_notify %r failed: %s", msg, e)
        return False
    return True


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds, or None when no watchdog applies to this process."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000


async def run_watchdog(
    healthy: Callable[[], bool] | None = None,
    *,
    metrics=None,
    interval: float | None = None,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """Ping ``WATCHDOG=1`` every ``interval`` (default watchdog_interval()/2) while
    ``healthy()`` holds; set ``gateway_event_loop_lag_seconds`` from how late each wake-up
    was. Returns at once (after started()) when no watchdog is configured and no metrics
    object wants lag samples."""
    timeout = watchdog_interval()
    period = interval if interval is not None else (timeout / 2 if timeout else 1.0)
    task_status.started()
    if timeout is None and metrics is None and interval is None:
        return
    failing = False
    while True:
        due = trio.current_time() + period
        await trio.sleep_until(due)
        lag = max(0.0, trio.current_time() - due)
        if metrics is not None:
            metrics.event_loop_lag.set(lag)
        if healthy is not None and not healthy():
            log.warning("watchdog: health check failed, WATCHDOG=1 withheld")
            continue
        if timeout is None and interval is None:
            continue
        if notify("WATCHDOG=1"):
            failing = False
            if metrics is not None:
                metrics.watchdog_last_ok.set(time.time())
        elif not failing:
            failing = True
            log.warning("watchdog: WATCHDOG=1 could not be sent")
