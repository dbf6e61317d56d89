"""``labelled`` children (lean, lock-free stand-ins) expose exactly what the
prometheus_client children would after the same updates."""

import math

from hypothesis import given
from hypothesis import strategies as st

from gateway.observability.metrics import Metrics, labelled, observe_many

amounts = st.one_of(st.floats(min_value=-1.0, max_value=100.0), st.just(math.inf),
                    st.just(0.005), st.just(10.0))


def _samples(metrics: Metrics, family: str):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in metrics.registry.collect() if fam.name == family for s in fam.samples}


@given(st.lists(amounts, max_size=20), st.lists(st.integers(0, 5), max_size=10))
def test_lean_children_match_prometheus_client(observations, incs):
    lean, real = Metrics(), Metrics()
    h = labelled(lean.api_request_duration)("Messages.json")
    c = labelled(lean.messages)("outbound", "sent")
    assert type(h).__name__ == "_LeanHistogram" and type(c).__name__ == "_LeanCounter"
    real.api_request_duration.labels("Messages.json")     # the series exist on both sides
    for x in observations:
        h.observe(x)
        real.api_request_duration.labels("Messages.json").observe(x)
    for n in incs:
        c.inc(n)
        real.messages.labels("outbound", "sent").inc(n)
    c.inc()
    real.messages.labels("outbound", "sent").inc()
    assert _samples(lean, "gateway_api_request_duration_seconds") == \
        _samples(real, "gateway_api_request_duration_seconds")
    assert _samples(lean, "gateway_messages") == _samples(real, "gateway_messages")


@given(amounts, st.integers(1, 40))
def test_observe_many_is_n_observes(x, n):
    lean, real = Metrics(), Metrics()
    observe_many(labelled(lean.webhook_duration)("status"), x, n)
    for _ in range(n):
        real.webhook_duration.labels("status").observe(x)
    a = _samples(lean, "gateway_webhook_duration_seconds")
    b = _samples(real, "gateway_webhook_duration_seconds")
    assert a.keys() == b.keys()
    for k in a:      # the sum is x*n vs n additions of x: equal up to rounding
        assert math.isclose(a[k], b[k], rel_tol=1e-9) or a[k] == b[k]


def test_negative_counter_increment_refused():
    import pytest
    with pytest.raises(ValueError):
        labelled(Metrics().messages)("outbound", "sent").inc(-1)
