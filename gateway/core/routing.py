"""Which carrier carries a message: longest-prefix routes, priority, weight, health.

Owns: the route table, the carrier order for one destination, and the per-carrier
``max_tps`` buckets. Health comes in as ``health.CarrierHealth`` objects (anything
with ``breaker_state(now)``, ``score(now)``, ``allow(now)``, ``ramp_factor(now)``).

Rules for ``choose(dest, healths, now)`` (best first; empty = nothing usable now):
- The route is the longest prefix of ``dest`` (digits compared without '+'; prefix
  ``"+"`` or ``""`` matches everything). Its carriers are the candidates.
- Healthy = breaker ``closed``. Healthy carriers are ordered by ``priority`` (lower
  first) and, within a priority, by a weighted random draw on ``weight`` (deterministic
  with a seeded ``random.Random``).
- A healthy carrier whose score beats the first one's by more than ``prefer_margin``
  takes the first place (the best-scoring such carrier).
- A carrier that closed recently is ramping: with probability ``1 - ramp_factor`` it is
  moved behind the others, so its share grows back over the ramp instead of at once.
- Unhealthy carriers get only probe traffic: a ``half_open`` carrier whose breaker
  grants a probe (``allow(now)``, consumes the probe token) is put *first* so this
  message is the probe, followed by the healthy ones as fallback. ``open`` carriers and
  carriers without a health object are never returned.
- ``exclude`` drops carriers (e.g. the one a resend comes back from).
- Cost: a destination's route is found by probing only the prefix lengths in use,
  longest first, in a table that holds each route's carriers already grouped by
  priority; a route with one carrier skips the draw and ordering entirely.

``max_tps`` is not applied inside ``choose``: the dispatcher calls
``take_carrier_token(name, now, n)`` for the carrier it is about to use; 0.0 means go,
otherwise the seconds until that carrier has capacity (the dispatcher may try the next
candidate or wait). ``max_tps = 0`` means no cap. The cap's gate per carrier comes from
a ``rate_gate.GateFactory`` (default ``local_gate``, an in-process token bucket with a
one-second burst), given as ``gates=`` or by ``set_gate_factory`` (runtime.cluster_rates).
``update(routes, carriers, prefer_margin, now)`` swaps the tables on a config reload
(same factory; unchanged caps keep their gate state).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .rate_gate import GateFactory, RateGate, local_gate


@dataclass(frozen=True, slots=True)
class CarrierSpec:
    name: str
    priority: int = 1
    weight: float = 1.0
    max_tps: float = 0.0


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _spec(obj: Any) -> CarrierSpec:
    if isinstance(obj, CarrierSpec):
        return obj
    max_tps = _get(obj, "max_tps")
    if max_tps is None:
        smpp = _get(obj, "smpp")
        max_tps = _get(smpp, "max_tps", 0.0) if smpp is not None else 0.0
    return CarrierSpec(
        name=str(_get(obj, "name")),
        priority=int(_get(obj, "priority", 1)),
        weight=float(_get(obj, "weight", 1.0)),
        max_tps=float(max_tps or 0.0),
    )


def _score_of(e: tuple[CarrierSpec, float, float]) -> float:
    return e[1]


def _prefix_key(prefix: str) -> str:
    return prefix.strip().lstrip("+")


def _route_pairs(routes: Any) -> Iterable[tuple[str, list[str]]]:
    if isinstance(routes, Mapping):
        return [(p, list(c)) for p, c in routes.items()]
    pairs = []
    for r in routes:
        if isinstance(r, tuple):
            pairs.append((r[0], list(r[1])))
        else:
            pairs.append((_get(r, "prefix"), list(_get(r, "carriers"))))
    return pairs


def _tables(routes: Any, carriers: Any
            ) -> tuple[dict[str, CarrierSpec], dict[str, tuple[str, ...]]]:
    items = carriers.values() if isinstance(carriers, Mapping) else carriers
    specs: dict[str, CarrierSpec] = {}
    for c in items:
        spec = _spec(c)
        specs[spec.name] = spec
    table: dict[str, tuple[str, ...]] = {}
    for prefix, names in _route_pairs(routes):
        for n in names:
            if n not in specs:
                raise ValueError(f"route {prefix!r}: unknown carrier {n!r}")
        table[_prefix_key(prefix)] = tuple(names)
    return specs, table


_NO_ROUTE: tuple[tuple[str, ...], list[list[CarrierSpec]]] = ((), [])


class Router:
    CACHE_SIZE = 65536  # destinations whose route lookup is remembered

    def __init__(
        self,
        routes: Any,
        carriers: Any,
        prefer_margin: float = 0.2,
        rng: random.Random | None = None,
        now: float = 0.0,
        gates: GateFactory | None = None,
    ) -> None:
        self.carriers, self.routes = _tables(routes, carriers)
        self._index()
        self.prefer_margin = prefer_margin
        self.rng = rng or random.Random()
        self._buckets: dict[str, RateGate] = {}
        self.set_gate_factory(gates or local_gate, now)

    def update(self, routes: Any, carriers: Any, prefer_margin: float, now: float) -> None:
        """Config reload: new route table, carrier specs and margin, in one step (raises
        ValueError before changing anything). Gates come from the current factory: a
        carrier whose ``max_tps`` is unchanged keeps its gate and state, a changed cap
        is ``set_rate`` on the same gate, a new cap gets a new gate."""
        specs, table = _tables(routes, carriers)
        buckets: dict[str, RateGate] = {}
        for s in specs.values():
            if s.max_tps <= 0:
                continue
            gate = self._buckets.get(s.name)
            if gate is None:
                gate = self._gates(s.name, s.max_tps, max(1.0, s.max_tps), now)
            elif self.carriers[s.name].max_tps != s.max_tps:
                gate.set_rate(s.max_tps, max(1.0, s.max_tps), now)
            buckets[s.name] = gate
        self.carriers, self.routes, self._buckets = specs, table, buckets
        self._index()
        self.prefer_margin = prefer_margin

    def set_gate_factory(self, gates: GateFactory, now: float) -> None:
        """One gate from ``gates`` per carrier with a ``max_tps`` cap (replaces the old
        ones and their state)."""
        self._gates = gates
        self._buckets = {
            s.name: gates(s.name, s.max_tps, max(1.0, s.max_tps), now)
            for s in self.carriers.values() if s.max_tps > 0
        }

    def route_for(self, dest: str) -> tuple[str, ...]:
        """Carrier names of the longest matching prefix (empty when no route)."""
        return self._route(dest)[0]

    def _index(self) -> None:
        """Per route prefix its (names, carriers grouped by ascending priority), the
        prefix lengths in use (longest first), and an empty destination cache (used
        only when many lengths make the probe loop longer than a cache lookup)."""
        self._hits: dict[str, tuple[tuple[str, ...], list[list[CarrierSpec]]]] = {}
        for prefix, names in self.routes.items():
            by_prio: dict[int, list[CarrierSpec]] = {}
            for n in names:
                spec = self.carriers[n]
                by_prio.setdefault(spec.priority, []).append(spec)
            self._hits[prefix] = (names, [by_prio[p] for p in sorted(by_prio)])
        self._lengths = sorted({len(p) for p in self.routes}, reverse=True)
        self._cache: dict[str, tuple[tuple[str, ...], list[list[CarrierSpec]]]] | None = (
            {} if len(self._lengths) > 4 else None)

    def _route(self, dest: str) -> tuple[tuple[str, ...], list[list[CarrierSpec]]]:
        cache = self._cache
        if cache is not None:
            hit = cache.get(dest)
            if hit is not None:
                return hit
        digits = dest[1:] if dest[:1] == "+" else dest
        if digits[:1] == "+":
            digits = digits.lstrip("+")
        hits = self._hits
        n = len(digits)
        hit = _NO_ROUTE
        for i in self._lengths:
            if i <= n:
                found = hits.get(digits[:i])
                if found is not None:
                    hit = found
                    break
        if cache is not None:
            if len(cache) >= self.CACHE_SIZE:
                cache.clear()
            cache[dest] = hit
        return hit

    def choose(
        self, dest: str, healths: Mapping[str, Any], now: float, exclude: Iterable[str] = ()
    ) -> list[str]:
        _, groups = self._route(dest)
        if len(groups) == 1 and len(groups[0]) == 1 and not exclude:
            # one carrier (the common route): no draw, no ordering, no score needed
            name = groups[0][0].name
            h = healths.get(name)
            if h is None:
                return []
            bs = getattr(h, "breaker_state", None)
            state = bs(now) if bs is not None else h.snapshot(now)[0]
            if state == "closed" or (state == "half_open" and h.allow(now)):
                return [name]
            return []
        if exclude and not isinstance(exclude, (set, frozenset)):
            exclude = set(exclude)
        probes: list[str] = []
        ordered: list[tuple[CarrierSpec, float, float]] = []  # (spec, score, ramp)
        rng = self.rng
        for group in groups:
            usable = []
            for spec in group:
                h = healths.get(spec.name)
                if h is None or (exclude and spec.name in exclude):
                    continue
                snap = getattr(h, "snapshot", None)
                if snap is not None:
                    state, score, ramp = snap(now)
                else:
                    state = h.breaker_state(now)
                    score, ramp = (h.score(now), h.ramp_factor(now)) if state == "closed" \
                        else (0.0, 0.0)
                if state == "closed":
                    usable.append((spec, score, ramp))
                elif state == "half_open" and h.allow(now):
                    probes.append(spec.name)
            # weighted draw without replacement within the priority
            while len(usable) > 1:
                total = 0.0
                for e in usable:
                    total += e[0].weight if e[0].weight > 0 else 0.0
                if total <= 0:
                    break
                x = rng.random() * total
                i = 0
                for i, e in enumerate(usable):  # noqa: B007
                    x -= e[0].weight if e[0].weight > 0 else 0.0
                    if x < 0:
                        break
                ordered.append(usable.pop(i))
            ordered.extend(usable)
        if len(ordered) > 1:
            best = max(ordered, key=_score_of)
            if best[1] > ordered[0][1] + self.prefer_margin:
                ordered.remove(best)
                ordered.insert(0, best)
            if any(e[2] < 1.0 for e in ordered):
                kept, demoted = [], []
                for e in ordered:
                    (demoted if e[2] < 1.0 and rng.random() >= e[2] else kept).append(e)
                ordered = kept + demoted
        return probes + [e[0].name for e in ordered]

    # -- carrier-wide caps -------------------------------------------------------------

    def take_carrier_token(self, name: str, now: float, n: float = 1) -> float:
        """0.0 and ``n`` tokens taken when carrier ``name`` is under its max_tps, else wait."""
        b = self._buckets.get(name)
        return 0.0 if b is None else b.take(n, now)

    def carrier_wait(self, name: str, now: float, n: float = 1) -> float:
        b = self._buckets.get(name)
        return 0.0 if b is None else b.wait_time(n, now)
