"""CarrierHealth score and breaker, driven by a fake clock (``now`` arguments)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.health import CarrierHealth, HealthConfig

OK, THROTTLED, MSGQFUL, SUBMITFAIL, INVDSTADR, SYSERR = 0, 0x58, 0x14, 0x45, 0x0B, 0x08


def traffic(h, t0, t1, rate=100.0, status=OK, latency=0.02, watch=None):
    """Feed submit_sm_resps at ``rate``/s over [t0, t1); returns the first time the
    breaker was seen not closed (or None)."""
    n = int(round((t1 - t0) * rate))
    first_open = None
    for i in range(n):
        t = t0 + i / rate
        h.on_submit_resp(latency, status, t)
        if first_open is None and h.breaker_state(t) != "closed":
            first_open = t
    return first_open


def healthy(t_end=60.0, **kw) -> CarrierHealth:
    h = CarrierHealth("a", HealthConfig(**kw), 0.0)
    h.on_link(True, 0.0)
    traffic(h, 0.0, t_end)
    assert [(t.old, t.new) for t in h.drain_transitions()] == [("open", "closed")]
    return h


def test_fresh_carrier_closes_on_first_bind():
    h = CarrierHealth("a", None, 0.0)
    assert h.score(0.0) == 0.0
    assert h.breaker_state(0.0) == "open" and not h.allow(0.0)
    h.on_link(True, 0.1)
    assert h.breaker_state(0.1) == "closed"
    assert h.score(0.1) == 1.0
    assert h.ramp_factor(0.1) == 1.0
    assert [(t.old, t.new) for t in h.drain_transitions()] == [("open", "closed")]


def test_steady_traffic_scores_one():
    h = healthy()
    assert h.score(60.0) == pytest.approx(1.0)
    assert h.breaker_state(60.0) == "closed"


@pytest.mark.parametrize(
    "name,status,latency,within",
    [
        ("error burst", SUBMITFAIL, 0.02, 5.0),
        ("system errors", SYSERR, 0.02, 5.0),
        ("latency spike x50", OK, 1.0, 2.0),
    ],
)
def test_bad_input_opens_breaker(name, status, latency, within):
    h = healthy()
    opened = traffic(h, 60.0, 80.0, status=status, latency=latency)
    assert opened is not None, name
    assert opened - 60.0 <= within, (name, opened)
    assert any(t.new == "open" and t.at == opened for t in h.transitions)


def test_throttling_storm_lowers_score_but_keeps_breaker_closed():
    # THROTTLED is back-pressure, not failure: the carrier gets less preference (score)
    # but is never cut to probe traffic by throttling alone (one-carrier routes drain).
    h = healthy()
    opened = traffic(h, 60.0, 80.0, status=THROTTLED, latency=0.02)
    assert opened is None
    assert h.breaker_state(80.0) == "closed"
    assert h.score(80.0) <= 0.7


@pytest.mark.parametrize(
    "name,status,latency",
    [
        ("bad destination addresses", INVDSTADR, 0.02),
        ("latency x1.5", OK, 0.03),
        ("sub-floor latency x2.5", OK, 0.05),
    ],
)
def test_harmless_input_keeps_breaker_closed(name, status, latency):
    h = healthy()
    assert traffic(h, 60.0, 90.0, status=status, latency=latency) is None, name
    assert h.score(90.0) > 0.9


def test_some_throttling_degrades_without_opening():
    h = healthy()
    for i in range(2000):  # 20 % throttled for 20 s
        h.on_submit_resp(0.02, THROTTLED if i % 5 == 0 else OK, 60.0 + i / 100)
    s = h.score(80.0)
    assert 0.5 < s < 0.9
    assert h.breaker_state(80.0) == "closed"


def test_dlr_failure_wave_opens():
    h = healthy()
    t = 60.0
    for i in range(600):  # 95 % delivered for a minute
        h.on_dlr(i % 20 != 0, t + i / 10)
    assert h.score(120.0) > 0.9
    opened = None
    for i in range(1200):  # then nothing delivered
        now = 120.0 + i / 10
        h.on_submit_resp(0.02, OK, now)
        h.on_dlr(False, now)
        if opened is None and h.breaker_state(now) == "open":
            opened = now
    assert opened is not None and opened - 120.0 < 90.0
    assert h.inputs(opened)["dlr_delivered_ratio"] < 0.4


def test_timeouts_open():
    h = healthy()
    opened = None
    for i in range(500):  # every submit times out (100/s)
        now = 60.0 + i * 0.01
        h.on_timeout(now)
        if h.breaker_state(now) == "open":
            opened = now
            break
    assert opened is not None and opened - 60.0 < 2.0


def test_link_loss_opens_immediately_and_scores_zero():
    h = healthy()
    h.on_link(False, 60.0)
    assert h.breaker_state(60.0) == "open"
    assert h.score(60.0) == 0.0
    assert not h.allow(60.0)
    tr = h.drain_transitions()
    assert tr[-1].new == "open" and tr[-1].reason == "link down" and tr[-1].at == 60.0


def test_recovery_cooldown_probes_close_and_ramp():
    h = healthy()
    h.on_link(False, 60.0)
    h.on_link(True, 61.0)
    assert h.breaker_state(64.9) == "open"            # cool-down 5 s
    assert h.breaker_state(65.0) == "half_open"
    # probe trickle: one per second
    grants = [t for t in (65.0, 65.2, 65.5, 66.0, 66.3, 67.0) if h.allow(t)]
    assert grants == [65.0, 66.0, 67.0]
    for t in (65.0, 66.0):
        h.on_submit_resp(0.02, OK, t)
        assert h.breaker_state(t) == "half_open"
    h.on_submit_resp(0.02, OK, 67.0)
    assert h.breaker_state(67.0) == "closed"
    assert h.ramp_factor(67.0) == pytest.approx(0.1)
    assert h.ramp_factor(72.0) == pytest.approx(0.55)
    assert h.ramp_factor(77.0) == 1.0
    assert [(t.old, t.new) for t in h.drain_transitions()] == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_link_down_during_cooldown_waits_for_link():
    h = healthy()
    h.on_link(False, 60.0)
    assert h.breaker_state(100.0) == "open"
    h.on_link(True, 100.0)
    assert h.breaker_state(100.0) == "half_open"


def test_failed_probe_reopens_with_doubled_cooldown():
    h = healthy()
    opened = None
    for i in range(1000):
        opened = 60.0 + i / 100
        h.on_submit_resp(0.02, SUBMITFAIL, opened)
        if h.breaker_state(opened) == "open":
            break
    until = h.breaker.open_until
    assert until - opened == pytest.approx(5.0)
    assert h.breaker_state(until) == "half_open"
    assert h.allow(until)
    h.on_submit_resp(0.02, SUBMITFAIL, until + 0.1)
    assert h.breaker_state(until + 0.1) == "open"
    assert h.breaker.open_until - (until + 0.1) == pytest.approx(10.0)


def test_flapping_link_backs_off():
    h = healthy()
    t = 60.0
    cooldowns = []
    for _ in range(6):
        h.on_link(False, t)
        cooldowns.append(h.breaker.open_until - t)
        h.on_link(True, t)
        t = h.breaker.open_until
        assert h.breaker_state(t) == "half_open"
        for _ in range(3):
            t += 1.0
            h.on_submit_resp(0.02, OK, t)
        assert h.breaker_state(t) == "closed"
        t += 1.0
    assert cooldowns == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    # a long stable period resets the cool-down
    traffic(h, t, t + 61, rate=10)
    h.on_link(False, t + 61)
    assert h.breaker.open_until - (t + 61) == 5.0


def test_hysteresis_band_neither_opens_nor_closes():
    """A score between open_below (0.5) and close_above (0.7) keeps the current state."""
    cfg = dict(w_options=1.0)
    h = healthy(**cfg)
    t = 60.0
    for i in range(60):  # 60 % of OPTIONS answered -> score ~0.6
        h.on_options(i % 5 < 3, 0.01, t + i)
    t += 60
    assert 0.5 < h.score(t) < 0.7
    traffic(h, t, t + 10, rate=10)
    assert h.breaker_state(t + 10) == "closed"       # does not open inside the band
    t += 10
    h.on_link(False, t)
    h.on_link(True, t)
    t = h.breaker.open_until
    assert h.breaker_state(t) == "half_open"
    for k in range(10):
        h.on_options(k % 5 < 3, 0.01, t)
        t += 1.0
        h.on_submit_resp(0.02, OK, t)
    assert 0.5 < h.score(t) < 0.7
    assert h.breaker_state(t) == "half_open"          # does not close inside the band
    for _ in range(30):                               # OPTIONS recover
        t += 1.0
        h.on_options(True, 0.01, t)
    h.on_submit_resp(0.02, OK, t)
    assert h.score(t) >= 0.7
    assert h.breaker_state(t) == "closed"


def test_options_failure_alone_degrades_but_keeps_sms():
    h = healthy()
    for i in range(30):
        h.on_options(False, None, 60.0 + i)
    assert h.score(90.0) == pytest.approx(0.6)
    assert h.breaker_state(90.0) == "closed"


def test_inputs_for_admin():
    h = healthy()
    h.on_options(True, 0.004, 60.0)
    d = h.inputs(60.0)
    assert d["carrier"] == "a" and d["link_up"] is True and d["state"] == "closed"
    assert set(d["components"]) == {"errors", "timeouts", "throttle", "latency", "dlr",
                                     "options"}
    assert d["latency_recent_s"] == pytest.approx(0.02)
    assert d["options_rtt_s"] == 0.004
    assert 0.0 <= d["score"] <= 1.0


def test_hysteresis_config_validated():
    with pytest.raises(ValueError):
        CarrierHealth("a", HealthConfig(open_below=0.7, close_above=0.6), 0.0)


events = st.lists(
    st.tuples(
        st.floats(0.0, 3.0),
        st.sampled_from(["ok", "err", "thr", "timeout", "up", "down", "dlr_ok", "dlr_bad",
                         "opt_ok", "opt_bad", "slow"]),
    ),
    max_size=200,
)


def _run(seq):
    h = CarrierHealth("x", None, 0.0)
    t, trace = 0.0, []
    for dt, ev in seq:
        t += dt
        actions = {
            "ok": (h.on_submit_resp, 0.02, OK), "err": (h.on_submit_resp, 0.02, SUBMITFAIL),
            "thr": (h.on_submit_resp, 0.02, THROTTLED), "slow": (h.on_submit_resp, 5.0, OK),
            "timeout": (h.on_timeout,), "up": (h.on_link, True), "down": (h.on_link, False),
            "dlr_ok": (h.on_dlr, True), "dlr_bad": (h.on_dlr, False),
            "opt_ok": (h.on_options, True, 0.01), "opt_bad": (h.on_options, False, None),
        }
        fn, *args = actions[ev]
        fn(*args, t)
        trace.append((h.score(t), h.breaker_state(t), h.ramp_factor(t)))
    return h, trace


@settings(max_examples=60, deadline=None)
@given(events)
def test_random_sequences_stay_sane_and_deterministic(seq):
    h, trace = _run(seq)
    for score, state, ramp in trace:
        assert 0.0 <= score <= 1.0
        assert state in ("closed", "open", "half_open")
        assert 0.0 <= ramp <= 1.0
        assert (state == "closed") == (ramp > 0.0)
    assert trace == _run(seq)[1]
    if not h.link_up:
        assert h.score(1e6) == 0.0 and h.breaker.state != "closed"
