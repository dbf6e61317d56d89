"""Metrics: every family declared with CONTRACT §8 names/labels, conventions, providers,
exposition parsed back by prometheus_client's own parser."""

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from gateway.observability.metrics import Metrics

CONTRACT = {  # CONTRACT §8: name -> (type, labels)
    "gateway_messages_total": ("counter", ("direction", "status")),
    "gateway_queue_depth_segments": ("gauge", ("sender_class",)),
    "gateway_carrier_health_score": ("gauge", ("carrier",)),
    "gateway_carrier_link_up": ("gauge", ("carrier", "link")),
    "gateway_smpp_submit_latency_seconds": ("histogram", ("carrier",)),
    "gateway_webhook_requests_total": ("counter", ("kind", "outcome")),
    "gateway_webhook_duration_seconds": ("histogram", ("kind",)),
    "gateway_reroutes_total": ("counter", ("from_carrier", "to_carrier")),
    "gateway_calls_active": ("gauge", ()),
    "gateway_calls_total": ("counter", ("direction", "status")),
    "gateway_build_info": ("gauge", ("version", "codec")),
}
EXTRAS = [
    "gateway_api_requests_total", "gateway_api_request_duration_seconds",
    "gateway_store_commit_duration_seconds", "gateway_store_batch_size",
    "gateway_queue_oldest_age_seconds", "gateway_smpp_pdus_total", "gateway_smpp_window_in_use",
    "gateway_smpp_enquire_link_rtt_seconds", "gateway_smpp_reconnects_total", "gateway_dlr_total",
    "gateway_possible_duplicates_total", "gateway_webhook_retries_total",
    "gateway_carrier_breaker_state", "gateway_event_loop_lag_seconds", "gateway_mo_messages_total",
]
FORBIDDEN_LABELS = {"number", "to", "from", "sid", "message_sid", "message_id", "body", "phone"}


def parse(m: Metrics, accept=None):
    body, ctype = m.exposition(accept)
    return {f.name: f for f in text_string_to_metric_families(body.decode())}, ctype


def test_contract_families_with_exact_types_and_labels():
    fams = Metrics().families()
    for name, want in CONTRACT.items():
        assert fams.get(name) == want, name
    assert set(EXTRAS) <= set(fams)


def test_naming_conventions():
    for name, (kind, labels) in Metrics().families().items():
        assert name.startswith("gateway_"), name
        assert (kind == "counter") == name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith("_seconds") or name == "gateway_store_batch_size", name
        assert not FORBIDDEN_LABELS & set(labels), name


def test_every_family_is_exposed_with_its_type_on_a_fresh_registry():
    registry = CollectorRegistry()
    m = Metrics(registry)
    assert m.registry is registry
    fams, ctype = parse(m)
    assert ctype.startswith("text/plain")
    for name, (kind, _) in m.families().items():
        base = name[: -len("_total")] if kind == "counter" else name
        assert base in fams and fams[base].type == kind, name
    assert not any(n.endswith("_created") for n in fams)


def test_instances_do_not_collide():
    a, b = Metrics(), Metrics()
    a.messages.labels("outbound", "sent").inc(3)
    fams, _ = parse(b)
    assert fams["gateway_messages"].samples == []


def test_samples_round_trip():
    m = Metrics()
    m.set_build_info("1.2.3", "cython")
    m.set_build_info("1.2.4", "python")   # replaces, never two build_info series
    m.messages.labels("outbound", "delivered").inc(2)
    m.smpp_submit_latency.labels("a").observe(0.03)
    m.calls_active.inc()
    fams, _ = parse(m)
    assert [(s.labels, s.value) for s in fams["gateway_build_info"].samples] == [
        ({"version": "1.2.4", "codec": "python"}, 1.0)]
    assert fams["gateway_messages"].samples[0].value == 2
    buckets = {s.labels["le"]: s.value for s in fams["gateway_smpp_submit_latency_seconds"].samples
               if s.name.endswith("_bucket")}
    assert buckets["0.025"] == 0 and buckets["0.05"] == 1
    assert fams["gateway_calls_active"].samples[0].value == 1


def test_scrape_time_providers():
    m = Metrics()
    queue = {"long_code": (12, 3.5)}
    m.set_queue_provider(lambda: queue)
    m.set_carrier_provider(lambda: {"a": (0.25, {"smpp": False, "sip": True}, "open")})
    fams, _ = parse(m)
    depth = {s.labels["sender_class"]: s.value for s in fams["gateway_queue_depth_segments"].samples}
    assert depth == {"long_code": 12, "toll_free": 0, "short_code": 0}
    age = {s.labels["sender_class"]: s.value for s in fams["gateway_queue_oldest_age_seconds"].samples}
    assert age["long_code"] == 3.5
    assert fams["gateway_carrier_health_score"].samples[0].value == 0.25
    links = {s.labels["link"]: s.value for s in fams["gateway_carrier_link_up"].samples}
    assert links == {"smpp": 0.0, "sip": 1.0}
    states = {s.labels["state"]: s.value for s in fams["gateway_carrier_breaker_state"].samples}
    assert states == {"closed": 0.0, "open": 1.0, "half_open": 0.0}
    queue["long_code"] = (1, 0.0)          # read at every scrape, not cached
    fams, _ = parse(m)
    assert {s.value for s in fams["gateway_queue_depth_segments"].samples
            if s.labels["sender_class"] == "long_code"} == {1}


def test_failing_provider_does_not_break_the_scrape(caplog):
    m = Metrics()
    m.set_carrier_provider(lambda: 1 / 0)

    def extra():
        yield GaugeMetricFamily("gateway_extra_thing", "extra", value=7)

    m.add_collector(extra)
    m.messages.labels("inbound", "received").inc()
    fams, _ = parse(m)
    assert fams["gateway_carrier_health_score"].samples == []
    assert fams["gateway_extra_thing"].samples[0].value == 7
    assert fams["gateway_messages"].samples[0].value == 1
    assert "carrier provider failed" in caplog.text
    m.remove_collector(extra)
    assert "gateway_extra_thing" not in parse(m)[0]


def test_openmetrics_on_request():
    m = Metrics()
    body, ctype = m.exposition("application/openmetrics-text; version=1.0.0")
    assert ctype.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_process_collectors_optional():
    assert "process_cpu_seconds" not in parse(Metrics())[0]
    fams, _ = parse(Metrics(process=True))
    assert "process_cpu_seconds" in fams and "python_info" in fams
