"""Every Prometheus metric family of the gateway, declared once.

Owns the names, types, labels and buckets that dashboards (``config/grafana-dashboard.json``)
and alerts (``config/alerts.rules.yml``) rely on (CONTRACT §8), plus operator extras.

Rules:
- Prefix ``gateway_``; counters end ``_total``; durations are histograms in ``_seconds``;
  no phone numbers, SIDs or message ids as label values (bounded label sets only).
- ``Metrics(registry=None)`` makes its own ``CollectorRegistry`` (not the global one), so
  several instances can live in one process (tests). ``process=True`` adds the standard
  ``process_*`` / ``python_*`` collectors.
- Hot-path code increments the attributes directly, e.g.
  ``metrics.messages.labels("outbound", "sent").inc()`` or
  ``metrics.smpp_submit_latency.labels(carrier).observe(s)``.
- State that lives elsewhere is read at scrape time through *providers* (plain sync
  callables, called from ``exposition()``; they must be cheap and must not block or await):

  ``set_queue_provider(fn)``   fn() -> {sender_class: (depth_segments, oldest_age_s)}
      -> gateway_queue_depth_segments, gateway_queue_oldest_age_seconds
  ``set_carrier_provider(fn)`` fn() -> {carrier: (score, {link: up_bool}, breaker_state)}
      -> gateway_carrier_health_score, gateway_carrier_link_up,
         gateway_carrier_breaker_state (1 for the current state of closed|open|half_open)
  ``add_collector(fn)``        fn() -> iterable of prometheus_client Metric families, for
      anything else (families yielded must be declared in ``SCRAPE_FAMILIES`` or be new
      names that follow the rules above).

  A provider that raises is logged and skipped; the rest of the scrape still works.
- ``exposition(accept=None) -> (bytes, content_type)``: Prometheus text format, or
  OpenMetrics when the Accept header asks for it.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

SENDER_CLASSES = ("long_code", "toll_free", "short_code")
BREAKER_STATES = ("closed", "open", "half_open")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WEBHOOK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
API_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CALL_SETUP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)

# Families produced at scrape time: name -> (type, help, labels).
SCRAPE_FAMILIES = {
    "gateway_queue_depth_segments": (
        "gauge", "Segments waiting in sender queues", ("sender_class",)),
    "gateway_queue_oldest_age_seconds": (
        "gauge", "Age of the oldest queued message", ("sender_class",)),
    "gateway_carrier_health_score": (
        "gauge", "Carrier health score in [0, 1]", ("carrier",)),
    "gateway_carrier_link_up": (
        "gauge", "1 when the carrier link (smpp bound / sip trunk answering) is up",
        ("carrier", "link")),
    "gateway_carrier_breaker_state": (
        "gauge", "1 for the carrier circuit breaker's current state", ("carrier", "state")),
}

QueueProvider = Callable[[], dict[str, tuple[float, float]]]
CarrierProvider = Callable[[], dict[str, tuple[float, dict[str, bool], str]]]


class _ScrapeCollector:
    """Adapter registered once: runs the providers at scrape time."""

    def __init__(self, owner: Metrics):
        self._owner = owner

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(n, h, labels=list(lb)) for n, (_, h, lb) in SCRAPE_FAMILIES.items()]

    def collect(self) -> Iterable[Metric]:
        o = self._owner
        fam = {n: GaugeMetricFamily(n, h, labels=list(lb)) for n, (_, h, lb) in SCRAPE_FAMILIES.items()}
        queues = _safe(o._queue_provider, "queue") or {}
        for cls in sorted(set(SENDER_CLASSES) | set(queues)):
            depth, age = queues.get(cls, (0.0, 0.0))
            fam["gateway_queue_depth_segments"].add_metric([cls], float(depth))
            fam["gateway_queue_oldest_age_seconds"].add_metric([cls], float(age))
        for carrier, (score, links, breaker) in sorted((_safe(o._carrier_provider, "carrier") or {}).items()):
            fam["gateway_carrier_health_score"].add_metric([carrier], float(score))
            for link, up in sorted(links.items()):
                fam["gateway_carrier_link_up"].add_metric([carrier, link], 1.0 if up else 0.0)
            for state in BREAKER_STATES:
                fam["gateway_carrier_breaker_state"].add_metric(
                    [carrier, state], 1.0 if state == breaker else 0.0)
        yield from fam.values()
        for fn in list(o._collectors):
            yield from _safe(fn, getattr(fn, "__name__", "collector")) or ()


def _safe(fn, what: str):
    if fn is None:
        return None
    try:
        result = fn()
        return list(result) if not isinstance(result, dict) else result
    except Exception:
        log.exception("metrics %s provider failed; skipped in this scrape", what)
        return None


class Metrics:
    """Every metric family; see the module docstring for the provider API."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = False):
        disable_created_metrics()   # no *_created series: they double the series count
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._queue_provider: QueueProvider | None = None
        self._carrier_provider: CarrierProvider | None = None
        self._collectors: list[Callable[[], Iterable[Metric]]] = []

        # -- CONTRACT §8 -------------------------------------------------------------------
        self.messages = Counter(
            "gateway_messages_total", "Messages by direction (outbound|inbound) and Twilio status",
            ["direction", "status"], registry=r)
        self.smpp_submit_latency = Histogram(
            "gateway_smpp_submit_latency_seconds", "submit_sm to submit_sm_resp",
            ["carrier"], buckets=LATENCY_BUCKETS, registry=r)
        self.webhook_requests = Counter(
            "gateway_webhook_requests_total", "Webhook attempts by kind (status|inbound|voice|fallback) "
            "and outcome (ok|retry|failed)", ["kind", "outcome"], registry=r)
        self.webhook_duration = Histogram(
            "gateway_webhook_duration_seconds", "Webhook attempt duration", ["kind"],
            buckets=WEBHOOK_BUCKETS, registry=r)
        self.reroutes = Counter(
            "gateway_reroutes_total", "Messages moved from one carrier to another",
            ["from_carrier", "to_carrier"], registry=r)
        self.calls_active = Gauge("gateway_calls_active", "Calls in progress", registry=r)
        self.calls = Counter(
            "gateway_calls_total", "Calls by direction and final Twilio status",
            ["direction", "status"], registry=r)
        self.build_info = Gauge(
            "gateway_build_info", "Always 1; version and codec backend (cython|python)",
            ["version", "codec"], registry=r)

        # -- API and store -----------------------------------------------------------------
        self.api_requests = Counter(
            "gateway_api_requests_total", "REST API requests by route template and HTTP status",
            ["route", "status"], registry=r)
        self.api_request_duration = Histogram(
            "gateway_api_request_duration_seconds", "REST API request duration", ["route"],
            buckets=API_BUCKETS, registry=r)
        self.api_errors = Counter(
            "gateway_api_errors_total", "REST API errors by Twilio error code", ["code"], registry=r)
        self.store_commit_duration = Histogram(
            "gateway_store_commit_duration_seconds", "One group commit, fsync included",
            buckets=COMMIT_BUCKETS, registry=r)
        self.store_batch_size = Histogram(
            "gateway_store_batch_size", "Writes per group commit", buckets=BATCH_BUCKETS, registry=r)
        self.store_errors = Counter(
            "gateway_store_errors_total", "Failed store commits", registry=r)

        # -- SMPP and DLRs -----------------------------------------------------------------
        self.smpp_pdus = Counter(
            "gateway_smpp_pdus_total", "SMPP PDUs by command name and status name (ESME_ROK, ...)",
            ["carrier", "command", "status"], registry=r)
        self.smpp_window_in_use = Gauge(
            "gateway_smpp_window_in_use", "submit_sm awaiting a response", ["carrier"], registry=r)
        self.smpp_enquire_link_rtt = Histogram(
            "gateway_smpp_enquire_link_rtt_seconds", "enquire_link round trip", ["carrier"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.smpp_reconnects = Counter(
            "gateway_smpp_reconnects_total", "SMPP reconnect attempts", ["carrier"], registry=r)
        self.smpp_throttled = Counter(
            "gateway_smpp_throttled_total", "ESME_RTHROTTLED / ESME_RMSGQFUL answers", ["carrier"],
            registry=r)
        self.dlr = Counter(
            "gateway_dlr_total", "Delivery receipts by outcome (delivered|undelivered|failed|"
            "intermediate|unmatched)", ["carrier", "outcome"], registry=r)
        self.possible_duplicates = Counter(
            "gateway_possible_duplicates_total", "Submits resent after a link loss (in doubt)",
            ["carrier"], registry=r)
        self.mo_messages = Counter(
            "gateway_mo_messages_total", "Inbound (MO) messages received, after reassembly",
            ["carrier"], registry=r)
        self.mo_reassembly_expired = Counter(
            "gateway_mo_reassembly_expired_total", "Multipart MO given up with parts missing",
            ["carrier"], registry=r)
        self.mo_duplicates = Counter(
            "gateway_mo_duplicates_total",
            "Resent MO of one stored before its deliver_sm_resp was known sent: acked, "
            "not stored again", ["carrier"], registry=r)

        # -- webhooks, voice, runtime ------------------------------------------------------
        self.webhook_retries = Counter(
            "gateway_webhook_retries_total", "Webhook retries scheduled", ["kind"], registry=r)
        self.sip_options = Counter(
            "gateway_sip_options_total", "SIP OPTIONS probes by outcome (ok|timeout|error)",
            ["carrier", "outcome"], registry=r)
        self.call_setup_duration = Histogram(
            "gateway_call_setup_duration_seconds", "INVITE to answer", ["direction"],
            buckets=CALL_SETUP_BUCKETS, registry=r)
        self.event_loop_lag = Gauge(
            "gateway_event_loop_lag_seconds", "Latest measured event-loop scheduling lag",
            registry=r)
        self.watchdog_last_ok = Gauge(
            "gateway_watchdog_last_ok_timestamp_seconds", "Epoch time of the last WATCHDOG=1",
            registry=r)
        self.config_reloads = Counter(
            "gateway_config_reload_total", "Config reloads (SIGHUP) by result (ok|error)",
            ["result"], registry=r)
        self.config_last_reload_ok = Gauge(
            "gateway_config_last_reload_success_timestamp_seconds",
            "Epoch time of the last successful config load (start or reload)", registry=r)

        r.register(_ScrapeCollector(self))
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)

    # -- scrape-time providers ---------------------------------------------------------------
    def set_queue_provider(self, fn: QueueProvider | None) -> None:
        self._queue_provider = fn

    def set_carrier_provider(self, fn: CarrierProvider | None) -> None:
        self._carrier_provider = fn

    def add_collector(self, fn: Callable[[], Iterable[Metric]]) -> None:
        self._collectors.append(fn)

    def remove_collector(self, fn: Callable[[], Iterable[Metric]]) -> None:
        self._collectors.remove(fn)

    def set_build_info(self, version: str, codec: str) -> None:
        self.build_info.clear()
        self.build_info.labels(version, codec).set(1)

    def families(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Every declared family as exposed: name -> (type, label names). Counters carry
        their ``_total`` name. (Reads prometheus_client's ``_name/_type/_labelnames``.)"""
        out = {n: (t, tuple(lb)) for n, (t, _, lb) in SCRAPE_FAMILIES.items()}
        for value in vars(self).values():
            if isinstance(value, (Counter, Gauge, Histogram)):
                name = value._name + ("_total" if value._type == "counter" else "")
                out[name] = (value._type, tuple(value._labelnames))
        return out

    # -- exposition ------------------------------------------------------------------------
    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def labelled(metric) -> Callable[..., object]:
    """A cached ``metric.labels(*values)`` for hot paths (label lookup costs ~1 µs).

    Counter and Histogram children come back as lean stand-ins (``inc`` / ``observe``
    only, about 5x cheaper) that update the prometheus_client child's values in place,
    without its lock: use them from the event loop's thread only. Other kinds (and a
    multiprocess-mode prometheus_client) get the real child."""
    cache: dict[tuple, object] = {}

    def child(*values):
        c = cache.get(values)
        if c is None:
            c = cache[values] = _lean(metric.labels(*values))
        return c

    return child


class _LeanCounter:
    __slots__ = ("_v",)

    def __init__(self, value) -> None:
        self._v = value

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self._v._value += amount


class _LeanHistogram:
    __slots__ = ("_sum", "_buckets", "_bounds")

    def __init__(self, child) -> None:
        self._sum = child._sum
        self._buckets = child._buckets
        self._bounds = child._upper_bounds

    def observe(self, amount: float) -> None:
        self._sum._value += amount
        if amount == amount:        # NaN lands in no bucket (as prometheus_client)
            self._buckets[bisect_left(self._bounds, amount)]._value += 1

    def observe_many(self, amount: float, n: int) -> None:
        self._sum._value += amount * n
        if amount == amount:
            self._buckets[bisect_left(self._bounds, amount)]._value += n


def _plain(value) -> bool:
    """A single-process prometheus_client value (a float behind a lock)."""
    return type(value).__name__ == "MutexValue" and isinstance(getattr(value, "_value", None), float)


def _lean(child):
    try:
        if isinstance(child, Counter) and _plain(child._value):
            return _LeanCounter(child._value)
        if (isinstance(child, Histogram) and _plain(child._sum)
                and all(_plain(b) for b in child._buckets)
                and len(child._upper_bounds) == len(child._buckets)):
            return _LeanHistogram(child)
    except AttributeError:          # another prometheus_client layout: the real child
        pass
    return child


def observe_many(child, value: float, n: int) -> None:
    """``child.observe(value)`` ``n`` times (a batch of equal durations) as one update:
    the same sum, count and buckets."""
    if isinstance(child, _LeanHistogram):
        child.observe_many(value, n)
    else:
        for _ in range(n):
            child.observe(value)
