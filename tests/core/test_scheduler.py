"""SenderScheduler: per-sender FIFO at class rates, fairness, capacity, idle senders."""

import random

import pytest

from gateway.core.rates import TokenBucket
from gateway.core.scheduler import SenderScheduler

RATES = {"long_code": 1.0, "toll_free": 3.0, "short_code": 100.0}


def drain(s: SenderScheduler, until: float = 1e9):
    """Event loop with an injected clock: wake at next_ready_at, pop everything ready."""
    out = []
    while (t := s.next_ready_at()) is not None and t <= until:
        for number, item, segs in s.pop_ready(t):
            out.append((t, number, item, segs))
    return out


@pytest.mark.parametrize(
    "cls,n,expected",
    [
        ("long_code", 5, [0, 1, 2, 3, 4]),
        ("toll_free", 7, [0, 0, 0, 1 / 3, 2 / 3, 1, 4 / 3]),
        ("short_code", 103, [0] * 100 + [0.01, 0.02, 0.03]),
    ],
)
def test_class_rates_exact(cls, n, expected):
    s = SenderScheduler(0.0)
    s.add_sender("A", RATES[cls], 10_000, cls)
    for i in range(n):
        assert s.push("A", i, 1, 0.0)
    got = drain(s)
    assert [g[2] for g in got] == list(range(n))
    assert [g[0] for g in got] == pytest.approx(expected)


def test_multisegment_costs_n_tokens():
    s = SenderScheduler(0.0)
    s.add_sender("A", 1.0, 100)
    s.push("A", "m3", 3, 0.0)
    s.push("A", "m1", 1, 0.0)
    s.push("A", "m2", 2, 0.0)
    got = drain(s)
    assert [(g[2], g[0]) for g in got] == [("m3", 0.0), ("m1", 3.0), ("m2", 4.0)]


def test_capacity_in_segments():
    s = SenderScheduler(0.0)
    s.add_sender("A", 1.0, 5)
    assert s.push("A", "a", 3, 0.0)
    assert s.push("A", "b", 2, 0.0)
    assert not s.push("A", "c", 1, 0.0)
    assert s.depth("A") == 5
    assert [x[1] for x in s.pop_ready(0.0)] == ["a"]
    assert s.push("A", "c", 1, 0.0)
    assert not s.push("A", "d", 3, 0.0)
    assert s.push("A", "d", 2, 0.0)


def test_unknown_sender_raises():
    s = SenderScheduler(0.0)
    with pytest.raises(KeyError):
        s.push("nope", 1, 1, 0.0)


def test_fair_interleaving_with_limit():
    s = SenderScheduler(0.0)
    for n in "ABC":
        s.add_sender(n, 100.0, 1000, "short_code")
        for i in range(5):
            s.push(n, f"{n}{i}", 1, 0.0)
    first = s.pop_ready(0.0, limit=6)
    assert [x[1] for x in first] == ["A0", "B0", "C0", "A1", "B1", "C1"]
    rest = s.pop_ready(0.0)
    assert [x[1] for x in rest] == ["A2", "B2", "C2", "A3", "B3", "C3", "A4", "B4", "C4"]


def test_busy_sender_does_not_slow_others():
    s = SenderScheduler(0.0)
    s.add_sender("busy", 100.0, 100_000, "short_code")
    s.add_sender("slow", 1.0, 100)
    for i in range(5000):
        s.push("busy", i, 1, 0.0)
    s.push("slow", "x", 1, 0.0)
    s.push("slow", "y", 1, 0.0)
    got = drain(s, until=2.0)
    slow = [(t, item) for t, n, item, _ in got if n == "slow"]
    assert slow == [(0.0, "x"), (1.0, "y")]


def test_push_front_keeps_order_and_refund():
    s = SenderScheduler(0.0)
    s.add_sender("A", 1.0, 100)
    for i in range(4):
        s.push("A", i, 1, 0.0)
    popped = s.pop_ready(0.0)
    assert [p[1] for p in popped] == [0]
    # link dropped before the response: put it back at the head, tokens refunded
    s.push_front("A", 0, 1, now=0.0, refund=True)
    assert s.next_ready_at() == 0.0
    got = drain(s)
    assert [(g[0], g[2]) for g in got] == [(0, 0), (1, 1), (2, 2), (3, 3)]


def test_push_front_without_refund_waits_for_tokens():
    s = SenderScheduler(0.0)
    s.add_sender("A", 1.0, 100)
    s.push("A", "a", 1, 0.0)
    s.push("A", "b", 1, 0.0)
    assert [p[1] for p in s.pop_ready(0.0)] == ["a"]
    s.push_front("A", "a", 1, now=0.5)
    assert s.next_ready_at() == pytest.approx(1.0)
    assert [g[2] for g in drain(s)] == ["a", "b"]


def test_remove_and_next_ready():
    s = SenderScheduler(0.0)
    s.add_sender("A", 1.0, 100)
    s.add_sender("B", 1.0, 100)
    for i in range(3):
        s.push("A", i, 1, 0.0)
    s.push("B", "b", 2, 0.0)
    assert s.remove("A", lambda x: x == 0) == [0]
    assert s.depth("A") == 2
    assert sorted(map(str, (x[1] for x in s.pop_ready(0.0)))) == ["1", "b"]
    assert s.remove(None, lambda x: True) == [2]
    assert s.next_ready_at() is None
    assert s.pop_ready(100.0) == []
    assert s.depth_by_class() == {"long_code": 0}
    assert len(s) == 0


def test_depth_and_oldest_age_by_class():
    s = SenderScheduler(0.0)
    s.add_sender("L", 1.0, 100, "long_code")
    s.add_sender("S", 100.0, 1000, "short_code")
    s.add_sender("T", 3.0, 1000, "toll_free")
    s.push("L", "l1", 2, 1.0)
    s.push("L", "l2", 1, 2.0)
    s.push("S", "s1", 4, 5.0)
    assert s.depth_by_class() == {"long_code": 3, "short_code": 4, "toll_free": 0}
    assert s.oldest_age_by_class(10.0) == {"long_code": 9.0, "short_code": 5.0,
                                           "toll_free": 0.0}


def test_idle_senders_cost_nothing():
    """1000 pops with 10k idle senders: the heap holds only the busy sender and no idle
    sender's gate is ever asked (cost is counted, not timed — timing lives in bench/)."""
    asked: dict[str, int] = {}

    class CountingGate(TokenBucket):
        def __init__(self, key, rate, burst, now):
            super().__init__(rate, burst, now)
            self.key = key

        def take(self, n, now):
            asked[self.key] = asked.get(self.key, 0) + 1
            return super().take(n, now)

        def wait_time(self, n, now):
            asked[self.key] = asked.get(self.key, 0) + 1
            return super().wait_time(n, now)

    s = SenderScheduler(0.0, gates=CountingGate)
    for i in range(10_000):
        s.add_sender(f"+1500{i:07d}", 1.0, 36_000)
    s.add_sender("busy", 100.0, 100_000, "short_code")
    for i in range(1000):
        s.push("busy", i, 1, 0.0)
    assert s.heap_size() == 1 and s.active_senders() == 1
    asked.clear()
    got = drain(s)
    assert len(got) == 1000
    assert s.heap_size() <= 1
    assert set(asked) == {"busy"}                     # idle senders never consulted


def test_thousand_senders_property():
    """1000 senders × 10 messages (random classes and segments): every pop happens
    exactly when a reference token bucket for that sender allows it, in FIFO order."""
    rng = random.Random(7)
    s = SenderScheduler(0.0)
    plan = {}
    for i in range(1000):
        cls = rng.choice(list(RATES))
        num = f"+1500{i:07d}"
        s.add_sender(num, RATES[cls], 10_000, cls)
        msgs = []
        for k in range(10):
            segs = rng.choice([1, 1, 1, 2, 3, 7])
            at = rng.choice([0.0, 0.0, 0.5, 2.0])
            msgs.append((k, segs, at))
        plan[num] = (RATES[cls], msgs)
    # pushes happen in time order across senders, interleaved with pops
    events = sorted((at, num, k, segs) for num, (_, msgs) in plan.items()
                    for k, segs, at in msgs)
    got: dict[str, list[tuple[float, int]]] = {n: [] for n in plan}
    pending = list(events)
    now = 0.0
    while pending or s.next_ready_at() is not None:
        nxt = s.next_ready_at()
        if pending and (nxt is None or pending[0][0] <= nxt):
            now = pending[0][0]
            while pending and pending[0][0] == now:
                _, num, k, segs = pending.pop(0)
                assert s.push(num, k, segs, now)
            continue
        now = nxt
        for num, k, _segs in s.pop_ready(now):
            got[num].append((now, k))
    for num, (rate, msgs) in plan.items():
        # per-sender push order = time order then k (stable since k increases)
        order = [k for at, k in sorted((at, k) for k, _, at in msgs)]
        assert [k for _, k in got[num]] == order
        # reference bucket
        burst = max(1.0, rate)
        tokens, stamp, t_prev = burst, 0.0, 0.0
        by_k = {k: (segs, at) for k, segs, at in msgs}
        for t, k in got[num]:
            segs, at = by_k[k]
            ready = max(at, t_prev)
            tokens = min(burst, tokens + (ready - stamp) * rate)
            stamp = ready
            need = min(segs, burst) - tokens
            expect = ready + (need / rate if need > 1e-9 else 0.0)
            assert t == pytest.approx(expect, abs=1e-6), (num, k)
            tokens = min(burst, tokens + (t - stamp) * rate) - segs
            stamp = t_prev = t


class GrantGate:
    """A ``RateGate`` granting only what it was given (as a shared, remote limiter)."""

    def __init__(self, key, rate, burst, now):
        self.key, self.rate, self.burst, self.tokens = key, rate, burst, 0.0
        self.asked = 0

    def wait_time(self, n, now):
        self.asked += 1
        return 0.0 if self.tokens >= n else 0.25

    def take(self, n, now):
        wait = self.wait_time(n, now)
        if wait == 0.0:
            self.tokens -= n
        return wait

    def give_back(self, n):
        self.tokens += n

    def set_rate(self, rate, burst, now):
        self.rate = rate


def test_gate_factory_paces_senders_and_refresh_reschedules():
    gates: dict[str, GrantGate] = {}

    def factory(key, rate, burst, now):
        gates[key] = GrantGate(key, rate, burst, now)
        return gates[key]

    s = SenderScheduler(0.0, gates=factory)
    s.add_sender("+1", 100.0, 1000, "short_code")
    assert gates["+1"].rate == 100.0 and gates["+1"].burst == 100.0
    for i in range(3):
        assert s.push("+1", i, 1, 0.0)
    assert s.pop_ready(0.0) == [] and s.next_ready_at() == pytest.approx(0.25)
    gates["+1"].tokens = 2                    # credit arrived from outside
    s.refresh("+1", 0.1)
    assert s.next_ready_at() == pytest.approx(0.1)
    assert [i for _, i, _ in s.pop_ready(0.1)] == [0, 1]
    s.push_front("+1", 1, 1, 0.1, refund=True)  # never left: its token comes back
    assert gates["+1"].tokens == 1
    assert [i for _, i, _ in s.pop_ready(0.1)] == [1]


def test_set_gate_factory_replaces_the_gates_of_known_senders():
    s = SenderScheduler(0.0)
    s.add_sender("+1", 1.0, 100)
    assert s.push("+1", "a", 1, 0.0) and s.push("+1", "b", 1, 0.0)
    assert [i for _, i, _ in s.pop_ready(0.0)] == ["a"]       # local bucket: 1/s
    made: list[str] = []

    def factory(key, rate, burst, now):
        made.append(key)
        g = GrantGate(key, rate, burst, now)
        g.tokens = 10
        return g

    s.set_gate_factory(factory, 0.1)
    assert made == ["+1"]
    assert s.next_ready_at() == pytest.approx(0.1)            # rescheduled on the new gate
    assert [i for _, i, _ in s.pop_ready(0.1)] == ["b"]
    s.add_sender("+2", 1.0, 100)                               # later senders too
    assert made == ["+1", "+2"]
