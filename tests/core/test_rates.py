"""TokenBucket with an injected clock."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.rates import TokenBucket


def test_starts_full_then_waits():
    b = TokenBucket(1.0, 1.0, 0.0)
    assert b.take(1, 0.0) == 0.0
    assert b.take(1, 0.0) == pytest.approx(1.0)
    assert b.take(1, 0.5) == pytest.approx(0.5)
    assert b.take(1, 1.0) == 0.0


def test_refusal_deducts_nothing():
    b = TokenBucket(2.0, 2.0, 0.0)
    assert b.take(2, 0.0) == 0.0
    for _ in range(5):
        assert b.take(1, 0.25) == pytest.approx(0.25)
    assert b.take(1, 0.5) == 0.0


def test_oversized_request_goes_when_full_and_leaves_debt():
    b = TokenBucket(1.0, 1.0, 0.0)
    assert b.take(3, 0.0) == 0.0        # full bucket: granted, tokens = -2
    assert b.take(1, 0.0) == pytest.approx(3.0)
    assert b.take(1, 2.9) == pytest.approx(0.1)
    assert b.take(1, 3.0) == 0.0


def test_burst_caps_stored_tokens():
    b = TokenBucket(100.0, 100.0, 0.0)
    assert b.take(100, 1000.0) == 0.0
    assert b.take(1, 1000.0) == pytest.approx(0.01)


def test_unlimited_when_rate_zero():
    b = TokenBucket(0, 0, 0.0)
    assert all(b.take(10, 0.0) == 0.0 for _ in range(100))


def test_give_back():
    b = TokenBucket(1.0, 1.0, 0.0)
    b.take(1, 0.0)
    b.give_back(1)
    assert b.take(1, 0.0) == 0.0


@given(
    rate=st.sampled_from([1.0, 3.0, 100.0, 0.5]),
    reqs=st.lists(st.integers(1, 8), min_size=1, max_size=40),
)
def test_long_run_rate_never_exceeded(rate, reqs):
    """Greedy taker: segments granted up to time t never exceed burst + rate*t (+ debt of
    the last oversized grant)."""
    burst = max(1.0, rate)
    b = TokenBucket(rate, burst, 0.0)
    now, taken = 0.0, 0
    for n in reqs:
        w = b.take(n, now)
        if w > 0:
            now += w
            assert b.take(n, now) == 0.0
        taken += n
        assert taken - n + min(n, burst) <= burst + rate * now + 1e-6
