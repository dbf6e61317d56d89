"""Circuit breaker for one carrier: closed → open → half_open → closed, with a ramp.

Owns: the state machine only. ``health.CarrierHealth`` feeds it the score, the link
state and probe outcomes; the breaker never computes a score itself.

Rules (times injected, seconds):
- ``closed``: all traffic. Opens at once when the link is down or the score is below
  ``open_below``.
- ``open``: no traffic. After the cool-down, and only while the link is up, it goes
  ``half_open``. The cool-down doubles (up to ``cooldown_max``) when the breaker opens
  again soon after closing (within ``stable_after``) or a probe fails: flapping is
  damped. It resets to ``cooldown`` after a stable closed period.
- ``half_open``: ``allow()`` grants a trickle of probes (``probe_rate`` per second).
  A failed probe (error, timeout, link down) opens it again. After ``probes_to_close``
  good probes *and* a score of at least ``close_above`` it closes. ``close_above >
  open_below`` is the hysteresis band that keeps a borderline carrier from flapping.
- After closing, ``ramp_factor`` grows linearly from ``ramp_floor`` to 1 over
  ``ramp_s`` seconds; the router uses it to limit the carrier's share so traffic
  returns without a stampede.
- The very first link-up of a fresh breaker closes it directly (no history to distrust,
  no ramp): a carrier is usable as soon as it first binds.
- Every state change is appended to ``transitions`` as a ``Transition`` (log-worthy
  event); the owner drains them with ``drain()``.
"""

from __future__ import annotations

from typing import NamedTuple

from .rates import TokenBucket

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"



MAX_TRANSITIONS = 256   # kept for the admin view and tests; older ones are dropped

class Transition(NamedTuple):
    at: float
    carrier: str
    old: str
    new: str
    reason: str


class Breaker:
    def __init__(
        self,
        name: str,
        now: float,
        *,
        open_below: float = 0.5,
        close_above: float = 0.7,
        cooldown: float = 5.0,
        cooldown_max: float = 60.0,
        stable_after: float = 60.0,
        probe_rate: float = 1.0,
        probes_to_close: int = 3,
        ramp_s: float = 10.0,
        ramp_floor: float = 0.1,
    ) -> None:
        if close_above <= open_below:
            raise ValueError("close_above must be greater than open_below (hysteresis)")
        self.name = name
        self.open_below = open_below
        self.close_above = close_above
        self.cooldown = cooldown
        self.cooldown_max = cooldown_max
        self.stable_after = stable_after
        self.probe_rate = probe_rate
        self.probes_to_close = probes_to_close
        self.ramp_s = ramp_s
        self.ramp_floor = ramp_floor

        self.state = OPEN
        self.fresh = True  # never been closed: first link-up closes directly
        self.opened_at = now
        self.open_until = now
        self.cur_cooldown = cooldown
        self.closed_at: float | None = None
        self.ramp_from: float | None = None  # None: no ramp running
        self.probes_ok = 0
        self.probe_bucket = TokenBucket(probe_rate, 1.0, now)
        self.transitions: list[Transition] = []     # the latest MAX_TRANSITIONS only

    # -- inputs ------------------------------------------------------------------------

    def update(self, now: float, score: float, link_up: bool) -> str | None:
        """Re-evaluate; returns the new state when it changed, else None."""
        if self.state == CLOSED:
            if not link_up:
                return self._open(now, "link down")
            if score < self.open_below:
                return self._open(now, f"score {score:.2f} < {self.open_below}")
        elif self.state == OPEN:
            if link_up and self.fresh:
                return self._close(now, "link up", ramp=False)
            if link_up and now >= self.open_until:
                self.probes_ok = 0
                self.probe_bucket = TokenBucket(self.probe_rate, 1.0, now)
                return self._move(now, HALF_OPEN, f"cool-down {self.cur_cooldown:g}s over")
        else:  # HALF_OPEN
            if not link_up:
                return self._reopen(now, "link down while probing")
            if self.probes_ok >= self.probes_to_close and score >= self.close_above:
                return self._close(
                    now, f"{self.probes_ok} probes ok, score {score:.2f}", ramp=True
                )
        return None

    def probe_result(self, ok: bool, now: float) -> str | None:
        """Outcome of traffic while half_open (ignored in other states)."""
        if self.state != HALF_OPEN:
            return None
        if ok:
            self.probes_ok += 1
            return None
        return self._reopen(now, "probe failed")

    # -- queries -----------------------------------------------------------------------

    def allow(self, now: float) -> bool:
        """closed: yes; half_open: one probe per 1/probe_rate s; open: no."""
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN:
            return self.probe_bucket.take(1, now) == 0.0
        return False

    def ramp_factor(self, now: float) -> float:
        """Share limit in [ramp_floor, 1] after closing; 0 when not closed."""
        if self.state != CLOSED:
            return 0.0
        if self.ramp_from is None:
            return 1.0
        if self.ramp_s <= 0:
            return 1.0
        x = (now - self.ramp_from) / self.ramp_s
        if x >= 1.0:
            self.ramp_from = None
            return 1.0
        return self.ramp_floor + (1.0 - self.ramp_floor) * max(0.0, x)

    def drain(self) -> list[Transition]:
        out, self.transitions = self.transitions, []
        return out

    # -- internals ---------------------------------------------------------------------

    def _move(self, now: float, new: str, reason: str) -> str:
        self.transitions.append(Transition(now, self.name, self.state, new, reason))
        if len(self.transitions) > MAX_TRANSITIONS:
            del self.transitions[: len(self.transitions) - MAX_TRANSITIONS]
        self.state = new
        return new

    def _open(self, now: float, reason: str) -> str:
        if self.closed_at is not None and now - self.closed_at < self.stable_after:
            self.cur_cooldown = min(self.cooldown_max, self.cur_cooldown * 2)
        else:
            self.cur_cooldown = self.cooldown
        return self._to_open(now, reason)

    def _reopen(self, now: float, reason: str) -> str:
        self.cur_cooldown = min(self.cooldown_max, self.cur_cooldown * 2)
        return self._to_open(now, reason)

    def _to_open(self, now: float, reason: str) -> str:
        self.opened_at = now
        self.open_until = now + self.cur_cooldown
        self.ramp_from = None
        return self._move(now, OPEN, reason)

    def _close(self, now: float, reason: str, ramp: bool) -> str:
        # a first bind is no recovery: it does not count towards flapping back-off
        self.closed_at = None if self.fresh else now
        self.fresh = False
        self.ramp_from = now if ramp else None
        return self._move(now, CLOSED, reason)
