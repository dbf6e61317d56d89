"""Router: prefixes, priority, weights, prefer_margin, ramp, probes, max_tps."""

import random
from collections import Counter

import pytest

from gateway.core.health import CarrierHealth
from gateway.core.routing import CarrierSpec, Router


class FakeHealth:
    """Stand-in with fixed answers (real CarrierHealth is used further down)."""

    def __init__(self, state="closed", score=1.0, ramp=1.0, probes=0):
        self.state, self._score, self.ramp, self.probes = state, score, ramp, probes

    def breaker_state(self, now):
        return self.state

    def score(self, now):
        return self._score

    def ramp_factor(self, now):
        return self.ramp if self.state == "closed" else 0.0

    def allow(self, now):
        if self.state == "closed":
            return True
        if self.state == "half_open" and self.probes > 0:
            self.probes -= 1
            return True
        return False


CARRIERS = [
    CarrierSpec("a", priority=1, weight=1),
    CarrierSpec("b", priority=1, weight=3),
    CarrierSpec("c", priority=2),
    {"name": "d", "priority": 1, "weight": 1, "smpp": {"max_tps": 2}},
]
ROUTES = [
    {"prefix": "+", "carriers": ["a", "b", "c"]},
    ("+44", ["c", "d"]),
    ("4420", ["d"]),
    ("+1500", ["c"]),
]


def router(**kw):
    return Router(ROUTES, CARRIERS, kw.pop("prefer_margin", 0.2), rng=random.Random(1), **kw)


def healths(**over):
    h = {n: FakeHealth() for n in "abcd"}
    h.update(over)
    return h


@pytest.mark.parametrize(
    "dest,route",
    [("+15005550006", ("c",)), ("+15105550006", ("a", "b", "c")),
     ("+447700900000", ("c", "d")), ("+442071234567", ("d",)), ("12345", ("a", "b", "c")),
     ("+4", ("a", "b", "c"))],
)
def test_longest_prefix(dest, route):
    assert router().route_for(dest) == route


def test_no_route_no_candidates():
    r = Router([("+44", ["a"])], CARRIERS, 0.2)
    assert r.route_for("+15005550006") == ()
    assert r.choose("+15005550006", healths(), 0.0) == []


def test_unknown_carrier_in_route_rejected():
    with pytest.raises(ValueError):
        Router([("+", ["zzz"])], CARRIERS, 0.2)


def test_priority_then_weight_distribution():
    r = router()
    firsts = Counter(r.choose("+15105550006", healths(), 0.0)[0] for _ in range(4000))
    assert set(firsts) == {"a", "b"}
    assert firsts["b"] / 4000 == pytest.approx(0.75, abs=0.03)
    # the lower priority carrier is always last
    assert all(r.choose("+15105550006", healths(), 0.0)[-1] == "c" for _ in range(100))


def test_seeded_rng_is_deterministic():
    seq1 = [router().choose("+15105550006", healths(), 0.0) for _ in range(20)]
    seq2 = [router().choose("+15105550006", healths(), 0.0) for _ in range(20)]
    assert seq1 == seq2


@pytest.mark.parametrize(
    "scores,first",
    [
        ({"a": 0.7, "b": 0.7, "c": 0.95}, {"c"}),      # beats both by > 0.2
        ({"a": 0.8, "b": 0.8, "c": 0.95}, {"a", "b"}),  # within margin: priority wins
        ({"a": 0.6, "b": 0.9, "c": 0.95}, {"b", "c"}),  # c beats a only when a is drawn
    ],
)
def test_prefer_margin(scores, first):
    hs = healths(**{k: FakeHealth(score=v) for k, v in scores.items()})
    r = router()
    got = {r.choose("+15105550006", hs, 0.0)[0] for _ in range(200)}
    assert got == first


def test_unhealthy_carriers_skipped():
    hs = healths(a=FakeHealth("open", 0.0), b=FakeHealth("half_open", 0.6, probes=0))
    assert router().choose("+15105550006", hs, 0.0) == ["c"]


def test_all_unhealthy_probe_only():
    hs = healths(a=FakeHealth("open", 0.0), b=FakeHealth("half_open", 0.6, probes=1),
                 c=FakeHealth("open", 0.0))
    r = router()
    assert r.choose("+15105550006", hs, 0.0) == ["b"]
    assert r.choose("+15105550006", hs, 0.0) == []   # probe token used


def test_probe_goes_first_with_healthy_fallback():
    hs = healths(a=FakeHealth("half_open", 0.6, probes=1))
    got = router().choose("+15105550006", hs, 0.0)
    assert got[0] == "a" and got[1:] == ["b", "c"]


def test_missing_health_and_exclude():
    r = router()
    assert r.choose("+15105550006", {"c": FakeHealth()}, 0.0) == ["c"]
    assert set(r.choose("+15105550006", healths(), 0.0, exclude=["b"])) == {"a", "c"}


def test_ramp_limits_share():
    hs = healths(b=FakeHealth(ramp=0.25))
    r = Router([("+", ["b", "c"])], CARRIERS, 0.2, rng=random.Random(3))
    firsts = Counter(r.choose("+1", hs, 0.0)[0] for _ in range(4000))
    assert firsts["b"] / 4000 == pytest.approx(0.25, abs=0.03)


def test_max_tps_bucket():
    r = router()
    assert r.take_carrier_token("d", 0.0) == 0.0
    assert r.take_carrier_token("d", 0.0) == 0.0
    assert r.take_carrier_token("d", 0.0) == pytest.approx(0.5)
    assert r.carrier_wait("d", 0.25) == pytest.approx(0.25)
    assert r.take_carrier_token("d", 0.5) == 0.0
    assert all(r.take_carrier_token("a", 0.0) == 0.0 for _ in range(1000))  # no cap


def test_failover_with_real_health_within_two_seconds():
    """Primary loses its link: the very next choice avoids it; it returns after the
    cool-down through probes, then ramps back."""
    now = 0.0
    hs = {n: CarrierHealth(n, None, now) for n in ("a", "c")}
    for h in hs.values():
        h.on_link(True, now)
    r = Router([("+", ["a", "c"])], CARRIERS, 0.2, rng=random.Random(5))
    assert r.choose("+1", hs, 1.0) == ["a", "c"]
    hs["a"].on_link(False, 2.0)
    assert r.choose("+1", hs, 2.0) == ["c"]
    hs["a"].on_link(True, 3.0)
    assert r.choose("+1", hs, 6.9) == ["c"]           # still cooling down
    t = 7.0
    got = r.choose("+1", hs, t)
    assert got == ["a", "c"]                          # probe first
    assert r.choose("+1", hs, t) == ["c"]             # one probe per second
    for k in range(3):
        hs["a"].on_submit_resp(0.02, 0, t + k)
        if k < 2:
            assert r.choose("+1", hs, t + k + 1)[0] == "a"
    assert hs["a"].breaker_state(t + 2) == "closed"
    firsts = Counter(r.choose("+1", hs, t + 2)[0] for _ in range(1000))
    assert 50 < firsts["a"] < 200                     # ramp starts near 10 %
    firsts = Counter(r.choose("+1", hs, t + 20)[0] for _ in range(100))
    assert firsts["a"] == 100                         # fully back


def test_max_tps_gate_factory():
    made = {}

    class Closed:
        def __init__(self, rate):
            self.rate = rate

        def wait_time(self, n, now):
            return 1.0

        def take(self, n, now):
            return 1.0

        def give_back(self, n):
            pass

        def set_rate(self, rate, burst, now):
            pass

    def factory(key, rate, burst, now):
        made[key] = (rate, burst)
        return Closed(rate)

    r = router()
    assert r.take_carrier_token("d", 0.0) == 0.0                 # local bucket
    r.set_gate_factory(factory, 0.0)
    assert made == {"d": (2.0, 2.0)}                             # only capped carriers
    assert r.take_carrier_token("d", 0.0) == 1.0 and r.carrier_wait("d", 0.0) == 1.0
    assert r.take_carrier_token("a", 0.0) == 0.0
    r2 = router(gates=factory)
    assert r2.take_carrier_token("d", 5.0) == 1.0
