"""Rate gates: the interface the sender scheduler and the router use to pace work.

Owns: ``RateGate`` (what a rate limiter must answer), ``GateFactory`` (how the
scheduler and the router get one per sender / per capped carrier) and
``local_gate``, the default: an in-process ``rates.TokenBucket``.

Rules:
- A gate is asked with the caller's clock (``now``, seconds, monotonic); it never
  sleeps and does no I/O. ``take(n, now)`` returns 0.0 and deducts ``n`` when granted,
  else the seconds after which asking again makes sense (nothing deducted);
  ``wait_time`` is the same without deducting; ``give_back`` returns tokens of work
  that did not happen; ``set_rate`` applies a new rate/burst (config reload).
- A factory is called as ``factory(key, rate, burst, now)``: ``key`` is the sender
  number (scheduler) or the carrier name (router); ``burst`` is the caller's local
  choice, which a gate may replace with its own (the Redis-backed gates of
  ``gateway.runtime.cluster_rates`` do).
- Core stays sans-I/O: other gates (shared, remote) live outside core and fill
  themselves; the scheduler/router only call the four methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .rates import TokenBucket


class RateGate(Protocol):
    def wait_time(self, n: float, now: float) -> float: ...

    def take(self, n: float, now: float) -> float: ...

    def give_back(self, n: float) -> None: ...

    def set_rate(self, rate: float, burst: float, now: float) -> None: ...


GateFactory = Callable[[str, float, float, float], RateGate]


def local_gate(key: str, rate: float, burst: float, now: float) -> RateGate:
    """The default factory: an in-process token bucket (``key`` is not used)."""
    return TokenBucket(rate, burst, now)
