"""The hot-path shortcuts give the same answers as the general code they bypass:
``copy_message`` vs ``dataclasses.replace``, the one-carrier route of ``Router.choose``
vs the general ordering, the prefix index vs a plain longest-prefix scan, and the
paired decay update of ``CarrierHealth`` vs two ``Decay.add`` calls."""

import dataclasses
import random

import pytest

from gateway.core.health import CarrierHealth, Decay, _add_pair
from gateway.core.message import Message, copy_message
from gateway.core.routing import Router


def _msg() -> Message:
    return Message(sid="SM1", account_sid="AC1", from_="+1500", to="+1415", body="hi",
                   status="queued", carrier_message_ids=["a"], due=["queued"], seq=7,
                   error_code=30003, send_at=5.0)


def test_copy_message_equals_replace_and_is_shallow():
    m = _msg()
    c = copy_message(m)
    assert c == dataclasses.replace(m) and c is not m
    assert all(getattr(c, f.name) == getattr(m, f.name) for f in dataclasses.fields(m))
    c.status = "sent"
    c.carrier_message_ids = []
    assert m.status == "queued" and m.carrier_message_ids == ["a"]


def test_copy_message_covers_every_field():
    names = {f.name for f in dataclasses.fields(Message)}
    m = Message(**{f.name: (f"v-{f.name}" if f.type in ("str", "str | None") else
                            getattr(_msg(), f.name)) for f in dataclasses.fields(Message)})
    c = copy_message(m)
    assert {n for n in names if getattr(c, n) != getattr(m, n)} == set()


class _H:
    """A health stand-in counting probe grants (half_open: ``probes`` grants left)."""

    def __init__(self, state: str, probes: int = 0) -> None:
        self.state, self.probes, self.asked = state, probes, 0

    def breaker_state(self, now):
        return self.state

    def score(self, now):
        return 1.0

    def ramp_factor(self, now):
        return 0.5 if self.state == "closed" else 0.0

    def allow(self, now):
        self.asked += 1
        if self.state == "half_open" and self.probes > 0:
            self.probes -= 1
            return True
        return self.state == "closed"


@pytest.mark.parametrize("state,probes,expect", [
    ("closed", 0, ["a"]), ("half_open", 1, ["a"]), ("half_open", 0, []), ("open", 0, []),
])
def test_single_carrier_route_matches_general_path(state, probes, expect):
    one = Router({"+1": ["a"]}, [{"name": "a"}], rng=random.Random(1))
    two = Router({"+1": ["a", "x"]}, [{"name": "a"}, {"name": "x"}], rng=random.Random(1))
    h1, h2 = _H(state, probes), _H(state, probes)
    assert one.choose("+1415", {"a": h1}, 1.0) == expect
    # the general path, with the second carrier of the route absent (no health)
    assert two.choose("+1415", {"a": h2}, 1.0) == expect
    assert h1.asked == h2.asked
    assert one.choose("+1415", {}, 1.0) == [] and one.choose("+44", {"a": h1}, 1.0) == []
    assert one.choose("+1415", {"a": _H("closed")}, 1.0, exclude=["a"]) == []


def test_prefix_index_is_longest_prefix():
    routes = {"+": ["a"], "+1": ["b"], "+1415": ["c"], "+44": ["b"], "+4420": ["c"],
              "+33": ["a"], "+3361": ["c"], "999": ["b"]}
    r = Router(routes, [{"name": n} for n in "abc"])
    assert r._cache is not None          # many prefix lengths: destination cache on
    keys = {p.lstrip("+"): tuple(c) for p, c in routes.items()}
    rng = random.Random(3)
    for _ in range(2000):
        dest = rng.choice(["+", "", "++"]) + "".join(
            rng.choice("0123456789") for _ in range(rng.randint(0, 12)))
        if rng.random() < 0.3:
            dest = rng.choice(["+1415", "+4420", "+3361", "999", "+44"]) + dest[1:]
        digits = dest.lstrip("+")
        want = next((keys[digits[:i]] for i in range(len(digits), -1, -1)
                     if digits[:i] in keys), ())
        assert r.route_for(dest) == want, dest
    small = Router({"+1": ["a"], "+": ["b"]}, [{"name": "a"}, {"name": "b"}])
    assert small._cache is None and small.route_for("+1212") == ("a",)
    assert small.route_for("+4412") == ("b",)
    small.update({"+44": ["a"]}, [{"name": "a"}], 0.2, 0.0)
    assert small.route_for("+4412") == ("a",) and small.route_for("+1212") == ()


def test_paired_decay_is_bit_identical():
    rng = random.Random(5)
    a, b, c, d = Decay(3.0, 0.0), Decay(3.0, 0.0), Decay(3.0, 0.0), Decay(3.0, 0.0)
    now = 0.0
    for _ in range(500):
        now += rng.choice([0.0, 1e-4, 0.01, 0.5, 4.0])
        x = rng.random()
        _add_pair(a, x, b, 1.0, now)
        c.add(x, now)
        d.add(1.0, now)
        assert (a.value, a.stamp, b.value, b.stamp) == (c.value, c.stamp, d.value, d.stamp)
    a.reset(now)          # stamps equal, values differ: still exact
    _add_pair(a, 2.0, b, 1.0, now + 1)
    c.reset(now)
    c.add(2.0, now + 1)
    d.add(1.0, now + 1)
    assert (a.value, b.value) == (c.value, d.value)


def test_health_latency_path_unchanged_by_pairing():
    h = CarrierHealth("a")
    h.on_link(True, 0.0)
    for i in range(200):
        h.on_submit_resp(0.01 if i % 7 else 0.9, 0, 0.05 * i)
    assert h.latency_ratio(10.0) is not None
    assert h._lat_fast_sum.stamp == h._lat_fast_n.stamp == 0.05 * 199
