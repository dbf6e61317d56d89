"""Carrier health score in [0, 1] and its circuit breaker, deterministic in ``now``.

Owns: what the gateway believes about one carrier. Inputs come from the SMPP link
(bind state, submit_sm_resp latency and status, response timeouts), from DLRs, and
from SIP OPTIONS probes. Outputs: ``score(now)``, the breaker state, ``allow(now)``
(probe trickle when half open), ``ramp_factor(now)``, ``inputs(now)`` for /healthz and
the admin view, and ``transitions`` (log-worthy breaker changes; drain them).

Score rules (weights and thresholds in ``HealthConfig``):
- Link down → 0, whatever else.
- Otherwise every input gives a component ``c`` in [0, 1] and
  ``score = Π (1 - w · (1 - c))``: a weight is how far that input *alone* can pull
  the score down (weight 1: a fully bad input makes the score 0).
- Rates are windowed with exponential decay (time constant ``window_s``) and counted
  over at least ``min_samples`` events (missing ones count as good), so one error on
  an idle carrier is not a 100 % error rate.
  * errors: non-zero submit_sm_resp statuses that blame the carrier (not throttling,
    not a bad address: see ``errors.MESSAGE_FAULT_SMPP_STATUSES``), c = 1 - rate/error_bad.
  * timeouts: submits without a response in time, c = 1 - rate/timeout_bad.
  * throttling: ESME_RTHROTTLED / ESME_RMSGQFUL, c = 1 - rate/throttle_bad.
  * latency: recent mean (``latency_fast_s``) against the carrier's own baseline
    (``latency_baseline_s``), both floored at ``latency_floor``; ratio ≤ latency_ok_ratio
    → 1, ≥ latency_bad_ratio → 0, linear between. Needs ``latency_min_samples``.
    After those first samples, a sample feeds the baseline clamped to
    latency_ok_ratio × baseline: a slow spell cannot redefine "normal" within a few
    hundred answers (the baseline is count-weighted); a lasting change is still learnt,
    the baseline growing at most by that factor per ``latency_baseline_s``.
  * DLR: delivered / final over ``dlr_window_s``; ≥ dlr_ok → 1, ≤ dlr_bad → 0.
  * OPTIONS (optional, only once seen): ok ratio over ``options_window_s``.
- ``score(now)`` reuses its last value for ``score_cache_s`` (50 ms) unless a bad input
  (error, timeout, throttle, slow answer, failed DLR/OPTIONS) or a link change came in:
  the router asks for every message, and good inputs can only raise the score.
  ``exact_score(now)`` always recomputes.
- When the breaker goes half open the windowed rates and the recent latency are reset:
  the probes, not the failure that opened it, decide whether it closes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import breaker as _b
from .errors import ESME_ROK, MESSAGE_FAULT_SMPP_STATUSES, THROTTLE_SMPP_STATUSES


@dataclass(frozen=True, slots=True)
class HealthConfig:
    window_s: float = 10.0          # time constant of error/timeout/throttle rates
    min_samples: float = 5.0        # rates are over at least this many submits
    error_bad: float = 0.5          # error rate that zeroes the error component
    timeout_bad: float = 0.2        # timeout rate that zeroes the timeout component
    throttle_bad: float = 0.5       # throttle rate that zeroes the throttle component
    latency_fast_s: float = 3.0     # time constant of the recent latency mean
    latency_baseline_s: float = 300.0  # time constant of the baseline latency mean
    latency_floor: float = 0.05     # s; latencies below count as this (ignore sub-ms jitter)
    latency_min_samples: int = 20   # no latency judgement before this many responses
    latency_ok_ratio: float = 2.0   # recent/baseline still fully healthy
    latency_bad_ratio: float = 10.0  # recent/baseline that zeroes the component
    dlr_window_s: float = 60.0
    dlr_min_samples: float = 10.0
    dlr_ok: float = 0.8             # delivered/final at or above: healthy
    dlr_bad: float = 0.2            # at or below: component 0
    options_window_s: float = 30.0
    options_min_samples: float = 3.0
    w_errors: float = 1.0           # weights: how far each input alone pulls the score down
    w_timeouts: float = 1.0
    w_latency: float = 0.7
    w_throttle: float = 0.4           # < 1 - open_below: throttling (back-pressure) alone never opens the breaker
    w_dlr: float = 0.7
    w_options: float = 0.4          # a dead SIP trunk alone degrades but does not open SMS
    open_below: float = 0.5         # breaker opens below this score
    close_above: float = 0.7        # and closes again only at or above this (hysteresis)
    cooldown_s: float = 5.0         # open → half_open after this (doubles when flapping)
    cooldown_max_s: float = 60.0
    stable_after_s: float = 60.0    # closed this long: cool-down back to cooldown_s
    probe_rate: float = 1.0         # probes per second while half open
    probes_to_close: int = 3
    ramp_s: float = 10.0            # share ramps from ramp_floor to 1 over this after closing
    ramp_floor: float = 0.1
    score_cache_s: float = 0.05     # a score is reused this long unless a bad input or a
                                    # link change arrived (good inputs only raise it)


class Decay:
    """Exponentially decaying sum: ``at(now)`` = Σ xᵢ·e^{-(now - tᵢ)/tau}."""

    __slots__ = ("tau", "value", "stamp")

    def __init__(self, tau: float, now: float) -> None:
        self.tau = tau
        self.value = 0.0
        self.stamp = now

    def at(self, now: float) -> float:
        if self.value == 0.0 or now <= self.stamp:
            return self.value
        return self.value * math.exp(-(now - self.stamp) / self.tau)

    def add(self, x: float, now: float) -> None:
        if now > self.stamp:
            self.value = self.at(now)
            self.stamp = now
        self.value += x

    def reset(self, now: float) -> None:
        self.value = 0.0
        self.stamp = now


def _add_pair(a: Decay, xa: float, b: Decay, xb: float, now: float) -> None:
    """``a.add(xa, now); b.add(xb, now)`` with one ``exp`` when both decay alike (a
    sum and its count, always updated together): the same floating-point result."""
    if a.stamp != b.stamp or a.tau != b.tau or now <= a.stamp:
        a.add(xa, now)
        b.add(xb, now)
        return
    f = math.exp(-(now - a.stamp) / a.tau)
    a.value = a.value * f + xa if a.value != 0.0 else xa
    b.value = b.value * f + xb if b.value != 0.0 else xb
    a.stamp = b.stamp = now


def _lin(x: float, good: float, bad: float) -> float:
    """1 at ``good``, 0 at ``bad``, linear between (either direction)."""
    if good == bad:
        return 1.0 if x == good else 0.0
    return min(1.0, max(0.0, (x - bad) / (good - bad)))


class CarrierHealth:
    def __init__(self, name: str, cfg: HealthConfig | None = None, now: float = 0.0) -> None:
        self.name = name
        self.cfg = c = cfg or HealthConfig()
        self.link_up = False
        self.link_changed_at = now
        w, lf, lb = c.window_s, c.latency_fast_s, c.latency_baseline_s
        self._ok, self._err = Decay(w, now), Decay(w, now)
        self._timeout, self._throttle = Decay(w, now), Decay(w, now)
        self._lat_fast_sum, self._lat_fast_n = Decay(lf, now), Decay(lf, now)
        self._lat_base_sum, self._lat_base_n = Decay(lb, now), Decay(lb, now)
        self._lat_samples = 0
        self._dlr_ok, self._dlr_all = Decay(c.dlr_window_s, now), Decay(c.dlr_window_s, now)
        self._opt_ok = Decay(c.options_window_s, now)
        self._opt_all = Decay(c.options_window_s, now)
        self._opt_seen = False
        self.options_rtt: float | None = None
        self._cache_at = -math.inf
        self._cache_score = 0.0
        self._quick_latency = c.latency_floor * c.latency_ok_ratio
        self.breaker = _b.Breaker(
            name, now, open_below=c.open_below, close_above=c.close_above,
            cooldown=c.cooldown_s, cooldown_max=c.cooldown_max_s,
            stable_after=c.stable_after_s, probe_rate=c.probe_rate,
            probes_to_close=c.probes_to_close, ramp_s=c.ramp_s, ramp_floor=c.ramp_floor,
        )

    @property
    def transitions(self) -> list[_b.Transition]:
        return self.breaker.transitions

    def drain_transitions(self) -> list[_b.Transition]:
        return self.breaker.drain()

    # -- inputs ------------------------------------------------------------------------

    def on_link(self, up: bool, now: float) -> None:
        if up != self.link_up:
            self.link_up = up
            self.link_changed_at = now
        self._cache_at = -math.inf
        self._evaluate(now)

    def on_submit_resp(self, latency: float, status: int, now: float) -> None:
        self._due(now)
        self._latency(latency, now)
        if status == ESME_ROK or status in MESSAGE_FAULT_SMPP_STATUSES:
            self._ok.add(1.0, now)
            self.breaker.probe_result(True, now)
            if latency <= self._quick_latency and self.breaker.state == _b.CLOSED:
                return  # hot path: a fast good answer cannot open a closed breaker
        elif status in THROTTLE_SMPP_STATUSES:
            self._throttle.add(1.0, now)
        else:
            self._err.add(1.0, now)
            self.breaker.probe_result(False, now)
        self._cache_at = -math.inf
        self._evaluate(now)

    def on_timeout(self, now: float) -> None:
        self._due(now)
        self._timeout.add(1.0, now)
        self.breaker.probe_result(False, now)
        self._cache_at = -math.inf
        self._evaluate(now)

    def on_dlr(self, delivered: bool, now: float) -> None:
        self._dlr_all.add(1.0, now)
        if delivered:
            self._dlr_ok.add(1.0, now)
        else:
            self._cache_at = -math.inf
        self._evaluate(now)

    def on_options(self, ok: bool, rtt: float | None, now: float) -> None:
        self._opt_seen = True
        self._opt_all.add(1.0, now)
        if ok:
            self._opt_ok.add(1.0, now)
            self.options_rtt = rtt
        else:
            self._cache_at = -math.inf
        self._evaluate(now)

    # -- outputs -----------------------------------------------------------------------

    def components(self, now: float) -> dict[str, float]:
        c = self.cfg
        total = (self._ok.at(now) + self._err.at(now) + self._timeout.at(now)
                 + self._throttle.at(now))
        denom = max(total, c.min_samples)
        comps = {
            "errors": _lin(self._err.at(now) / denom, 0.0, c.error_bad),
            "timeouts": _lin(self._timeout.at(now) / denom, 0.0, c.timeout_bad),
            "throttle": _lin(self._throttle.at(now) / denom, 0.0, c.throttle_bad),
            "latency": 1.0,
            "dlr": _lin(self.dlr_ratio(now), c.dlr_ok, c.dlr_bad),
            "options": 1.0,
        }
        ratio = self.latency_ratio(now)
        if ratio is not None:
            comps["latency"] = _lin(ratio, c.latency_ok_ratio, c.latency_bad_ratio)
        if self._opt_seen:
            all_ = self._opt_all.at(now)
            missing = max(0.0, c.options_min_samples - all_)
            comps["options"] = (self._opt_ok.at(now) + missing) / max(all_, c.options_min_samples)
        return comps

    def score(self, now: float) -> float:
        if not self.link_up:
            return 0.0
        if 0.0 <= now - self._cache_at < self.cfg.score_cache_s:
            return self._cache_score
        self._cache_score = s = self.exact_score(now)
        self._cache_at = now
        return s

    def exact_score(self, now: float) -> float:
        """The score without the short reuse of ``score()``."""
        if not self.link_up:
            return 0.0
        c = self.cfg
        comps = self.components(now)
        s = 1.0
        for key, w in (("errors", c.w_errors), ("timeouts", c.w_timeouts),
                       ("latency", c.w_latency), ("throttle", c.w_throttle),
                       ("dlr", c.w_dlr), ("options", c.w_options)):
            s *= 1.0 - w * (1.0 - comps[key])
        return min(1.0, max(0.0, s))

    def breaker_state(self, now: float) -> str:
        self._evaluate(now)
        return self.breaker.state

    def allow(self, now: float) -> bool:
        self._evaluate(now)
        return self.breaker.allow(now)

    def ramp_factor(self, now: float) -> float:
        self._evaluate(now)
        return self.breaker.ramp_factor(now)

    def snapshot(self, now: float) -> tuple[str, float, float]:
        """(breaker state, score, ramp factor) in one evaluation (the router's call)."""
        self._evaluate(now)
        b = self.breaker
        return b.state, self.score(now), (b.ramp_factor(now) if b.state == _b.CLOSED else 0.0)

    def latency_ratio(self, now: float) -> float | None:
        """Recent mean latency / baseline mean latency (floored); None without data."""
        c = self.cfg
        n_fast = self._lat_fast_n.at(now)
        if self._lat_samples < c.latency_min_samples or n_fast < 1e-3:
            return None
        fast = self._lat_fast_sum.at(now) / n_fast
        base = self._lat_base_sum.at(now) / max(self._lat_base_n.at(now), 1e-12)
        return max(fast, c.latency_floor) / max(base, c.latency_floor)

    def dlr_ratio(self, now: float) -> float:
        """delivered / final DLRs; missing samples below dlr_min_samples count as delivered."""
        c = self.cfg
        all_ = self._dlr_all.at(now)
        missing = max(0.0, c.dlr_min_samples - all_)
        return (self._dlr_ok.at(now) + missing) / max(all_, c.dlr_min_samples)

    def inputs(self, now: float) -> dict:
        """Everything the score is made of, for /healthz details and the admin view."""
        state = self.breaker_state(now)
        total = max(self._ok.at(now) + self._err.at(now) + self._timeout.at(now)
                    + self._throttle.at(now), 1e-12)
        n_fast = self._lat_fast_n.at(now)
        n_base = self._lat_base_n.at(now)
        return {
            "carrier": self.name,
            "link_up": self.link_up,
            "state": state,
            "score": round(self.score(now), 4),
            "components": {k: round(v, 4) for k, v in self.components(now).items()},
            "submits_window": round(total, 2),
            "error_rate": round(self._err.at(now) / total, 4),
            "timeout_rate": round(self._timeout.at(now) / total, 4),
            "throttle_rate": round(self._throttle.at(now) / total, 4),
            "latency_recent_s": self._lat_fast_sum.at(now) / n_fast if n_fast > 1e-3 else None,
            "latency_baseline_s": self._lat_base_sum.at(now) / n_base if n_base > 1e-12 else None,
            "dlr_delivered_ratio": round(self.dlr_ratio(now), 4),
            "options_ok_ratio": (self._opt_ok.at(now) / max(self._opt_all.at(now), 1e-12)
                                 if self._opt_seen else None),
            "options_rtt_s": self.options_rtt,
            "ramp_factor": round(self.breaker.ramp_factor(now), 4),
            "open_until": self.breaker.open_until if state == _b.OPEN else None,
            "cooldown_s": self.breaker.cur_cooldown,
        }

    # -- internals ---------------------------------------------------------------------

    def _latency(self, latency: float, now: float) -> None:
        self._lat_samples += 1
        _add_pair(self._lat_fast_sum, latency, self._lat_fast_n, 1.0, now)
        if latency > self._quick_latency and self._lat_samples > self.cfg.latency_min_samples:
            n = self._lat_base_n.at(now)
            base = self._lat_base_sum.at(now) / n if n > 1e-12 else 0.0
            latency = min(latency, max(base, self.cfg.latency_floor) * self.cfg.latency_ok_ratio)
        _add_pair(self._lat_base_sum, latency, self._lat_base_n, 1.0, now)

    def _due(self, now: float) -> None:
        """Let a finished cool-down turn half open before a probe's outcome is counted."""
        if self.breaker.state == _b.OPEN and now >= self.breaker.open_until:
            self._evaluate(now)

    def _evaluate(self, now: float) -> None:
        new = self.breaker.update(now, self.score(now), self.link_up)
        if new == _b.HALF_OPEN:
            self._cache_at = -math.inf
            for d in (self._ok, self._err, self._timeout, self._throttle,
                      self._lat_fast_sum, self._lat_fast_n, self._dlr_ok, self._dlr_all):
                d.reset(now)
        elif new is not None:
            # one input can justify two steps (open → half_open needs another look)
            self.breaker.update(now, self.score(now), self.link_up)
