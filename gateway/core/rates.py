"""Token bucket with an injected clock.

Rules:
- ``rate`` tokens per second, at most ``burst`` stored; the bucket starts full.
- ``take(n, now)`` returns 0.0 and deducts ``n`` when granted, else the seconds to wait
  until it would be granted (nothing deducted).
- A request larger than ``burst`` can never be covered by stored tokens, so it is
  granted as soon as the bucket is *full* and leaves the bucket in debt (negative
  tokens). Generally: granted when ``tokens >= min(n, burst)``. The long-run rate stays
  exact: the debt is paid back at ``rate`` before anything else is granted.
- ``rate <= 0`` means unlimited (always granted).
- Time never runs backwards: an older ``now`` is treated as the last one seen.
"""

from __future__ import annotations

_EPS = 1e-9


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = float(rate)
        self.burst = float(max(burst, 0.0))
        self.tokens = self.burst
        self.stamp = float(now)

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            if self.tokens < self.burst:
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_time(self, n: float, now: float) -> float:
        """Seconds until ``take(n)`` would be granted; 0.0 if it would be now."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        need = min(n, self.burst) - self.tokens
        if need <= _EPS:
            return 0.0
        return need / self.rate

    def take(self, n: float, now: float) -> float:
        """Deduct ``n`` tokens and return 0.0, or return the wait without deducting."""
        if self.rate <= 0:
            return 0.0
        wait = self.wait_time(n, now)
        if wait == 0.0:
            self.tokens -= n
        return wait

    def give_back(self, n: float) -> None:
        """Return tokens taken for work that was not done (capped at ``burst``)."""
        if self.rate > 0:
            self.tokens = min(self.burst, self.tokens + n)

    def set_rate(self, rate: float, burst: float, now: float) -> None:
        self._refill(now)
        self.rate = float(rate)
        self.burst = float(max(burst, 0.0))
        self.tokens = min(self.tokens, self.burst)

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, burst={self.burst}, tokens={self.tokens:.3f})"
