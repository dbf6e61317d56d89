"""A real Prometheus scrapes a real, running Gateway (in-process, two simulated carriers)
after a little of everything: MT with status callbacks, an MO with its webhook, an API
error, a failing callback, throttling, and a link loss with submits in flight (reroute,
resend, reconnect). Then every Grafana panel query and every alert expression is
evaluated through /api/v1/query: each must succeed, and every panel must show data.

Panels that can only show data with voice (calls, SIP trunks) are listed in ``VOICE``.
Panels whose series exist but never move because the runtime does not update the metric
are listed in ``RUNTIME_GAPS`` (strict: a gap that starts moving fails the test, so the
list shrinks as the runtime is fixed). The synthetic-exposition version of this test is
tests/observability/test_prometheus_e2e.py; its helpers are reused here.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import urllib.parse

import pytest
import trio

from tests.e2e.harness import LONG, SHORT, TOLL_FREE, gateway_env, wait_until
from tests.observability.test_prometheus_e2e import (
    CONFIG,
    expressions,
    free_port,
    grafana_to_promql,
    http_get_json,
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None,
                       reason="prometheus not installed (Debian package prometheus)"),
]

FAST = "long_code = 50\ntoll_free = 3\nshort_code = 100\nqueue_hours = 1"
TO = "+15558675310"

# panel title -> why it has no data without voice
VOICE = {
    "Calls active": "gateway_calls_active is 0 without calls (the series exists)",
    "Calls by direction and status": "gateway_calls_total moves only when calls end",
    "Call setup time p90 and SIP OPTIONS": "call setup histogram and SIP OPTIONS need SIP trunks",
}
# metric family -> why it is legitimately 0 in a healthy run without voice
NATURALLY_ZERO = {
    "gateway_store_errors_total": "counts failed commits: none in a healthy run",
}
# metric family -> why the running gateway never updates it today (strict: a family that
# starts moving fails the test until it is taken off this list)
RUNTIME_GAPS: dict[str, str] = {}

FAMILY_RE = re.compile(r"\b(gateway_[a-z0-9_]+)")


def panel_targets() -> list[tuple[str, int, str]]:
    dash = json.loads((CONFIG / "grafana-dashboard.json").read_text())
    return [(p["title"], i, grafana_to_promql(t["expr"]))
            for p in dash["panels"] for i, t in enumerate(p.get("targets", []))]


def alert_expressions() -> list[str]:
    panels = {e for _, _, e in panel_targets()}
    return [e for e in expressions() if e not in panels]


def families(expr: str) -> set[str]:
    """Metric families an expression reads; a histogram by its ``_count`` series."""
    return {re.sub(r"_(bucket|sum)$", "_count", n) for n in FAMILY_RE.findall(expr)}


def moved_expr(family: str) -> str:
    """Largest value any series of the family had in the last 5 min (gauges included)."""
    return f"max(max_over_time({family}[5m]))"


async def query(base: str, expr: str) -> dict:
    return await trio.to_thread.run_sync(
        http_get_json, f"{base}/query?query={urllib.parse.quote(expr)}")


async def workload(env, prom_saw) -> None:
    """A little of everything the dashboard shows (see the module docstring);
    ``prom_saw(expr)`` waits until Prometheus returns a non-empty result for ``expr``."""
    client = env.client()
    sink = env.sink
    sink.replies["/fail"] = (500, "text/plain", b"nope")
    a = env.sims["a"]

    def create(**kw):
        return client.messages.create(to=TO, **kw).sid

    def bad_to():
        from twilio.base.exceptions import TwilioRestException
        try:
            client.messages.create(to="not-a-number", from_=LONG, body="x")
        except TwilioRestException as e:
            return e.code

    for i in range(5):
        await trio.to_thread.run_sync(lambda i=i: create(
            from_=LONG, body=f"p{i}", status_callback=sink.url("/status")))
    await trio.to_thread.run_sync(lambda: create(
        from_=LONG, body="fail-cb", status_callback=sink.url("/fail") + "#rc=1"))
    assert await trio.to_thread.run_sync(bad_to) == 21211
    a.inject_mo(TO, LONG, "hello gateway")
    await sink.wait_for(lambda: sink.at("/sms"))
    await sink.wait_for(lambda: len([h for h in sink.at("/status")
                                     if h.form.get("MessageStatus") == "delivered"]) >= 5)
    await sink.wait_for(lambda: len(sink.at("/fail")) >= 2)       # attempt + one retry

    # throttling on a: answered ESME_RTHROTTLED, retried until a lets it through
    a.set_faults(throttle=1.0)
    await trio.to_thread.run_sync(lambda: create(from_=SHORT, body="throttled"))
    m = env.gw.metrics
    await wait_until(lambda: m.smpp_throttled.labels("a")._value.get() >= 1, timeout=10)
    a.set_faults(throttle=0.0)

    # a backlog (toll free drains 3 segments/s) that a scrape sees
    await trio.to_thread.run_sync(lambda: [create(from_=TOLL_FREE, body=f"q{i}") for i in range(15)])
    await prom_saw("max_over_time(gateway_queue_oldest_age_seconds{sender_class='toll_free'}[1m]) > 0")

    # link loss with submits in flight (and seen in flight by a scrape): resend
    # (possible duplicate) and reroute to b
    a.set_faults(response_delay_ms=1500)
    await trio.to_thread.run_sync(lambda: [create(from_=SHORT, body=f"r{i}") for i in range(20)])
    await wait_until(lambda: env.gw.links["a"].free_slots() < 64, timeout=5)
    await prom_saw("max(max_over_time(gateway_smpp_window_in_use{carrier='a'}[1m])) > 0")
    a.drop_all()
    a.set_faults(response_delay_ms=0)
    want = {f"r{i}".encode() for i in range(20)}
    await wait_until(lambda: want <= {s.short_message for sim in env.sims.values()
                                      for s in sim.submits}, timeout=15)
    await wait_until(lambda: env.gw.carriers.healthz()["a"]["smpp"] == "bound", timeout=10)
    # one enquire_link round trip (interval 5 s in the harness config)
    await wait_until(lambda: m.smpp_enquire_link_rtt.labels("a")._sum.get() > 0, timeout=10)


async def test_every_panel_and_alert_evaluates_on_a_live_gateway(tmp_path):
    prom_port = free_port()
    base = f"http://127.0.0.1:{prom_port}/api/v1"
    with trio.fail_after(75):
        async with gateway_env(tmp_path, n_carriers=2, rates=FAST) as env:
            (tmp_path / "prometheus.yml").write_text(
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                f"rule_files: ['{CONFIG / 'alerts.rules.yml'}']\n"
                "scrape_configs:\n"
                "  - job_name: gateway\n"
                f"    static_configs: [{{targets: ['127.0.0.1:{env.api_port}']}}]\n")
            log = open(tmp_path / "prometheus.log", "wb")
            proc = await trio.lowlevel.open_process(
                ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'data'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                stdout=log, stderr=log)
            try:
                async def prom_saw(expr: str) -> None:
                    await wait_for(f"{base}/query?query={urllib.parse.quote(expr)}",
                                   lambda d: d.get("data", {}).get("result"), 10)

                await wait_for(f"{base}/query?query=" + urllib.parse.quote('up{job="gateway"} == 1'),
                               lambda d: d.get("data", {}).get("result"), 30)
                await workload(env, prom_saw)
                # two scrapes after the last event, so every rate() has its samples
                scrapes = 'count_over_time(up{job="gateway"}[5m])'
                d = await wait_for(f"{base}/query?query={urllib.parse.quote(scrapes)}",
                                   lambda d: d.get("data", {}).get("result"), 20)
                n0 = float(d["data"]["result"][0]["value"][1])
                await wait_for(f"{base}/query?query={urllib.parse.quote(scrapes)}",
                               lambda d: float(d["data"]["result"][0]["value"][1]) >= n0 + 2, 10)
                up = await query(base, 'up{job="gateway"}')
                assert up["data"]["result"][0]["value"][1] == "1"

                report, empty, used = [], [], set()
                for title, i, expr in panel_targets():
                    d = await query(base, expr)
                    assert d.get("status") == "success", (title, expr, d)
                    n = len(d["data"]["result"])
                    gap = families(expr) & set(RUNTIME_GAPS)
                    report.append(f"{n:3d} series  {title} [{i}]" + (" (voice)" if title in VOICE
                                  else f" (gap: {sorted(gap)})" if gap else ""))
                    if title in VOICE:
                        continue
                    used |= families(expr)
                    if n == 0 and not gap:
                        empty.append((title, i, expr))
                flat = []
                for fam in sorted(used):
                    d = await query(base, moved_expr(fam))
                    result = d["data"]["result"]
                    peak = float(result[0]["value"][1]) if result else math.nan
                    moved = not math.isnan(peak) and peak != 0.0
                    report.append(f"family {fam}: max over 5m = {peak}")
                    if fam in NATURALLY_ZERO:
                        continue
                    if moved == (fam in RUNTIME_GAPS):
                        flat.append((fam, "listed in RUNTIME_GAPS but moves" if moved
                                     else "never moved"))
                print("\n" + "\n".join(report))
                for expr in alert_expressions():
                    d = await query(base, expr)
                    assert d.get("status") == "success", (expr, d)
                assert empty == [], f"panels without data: {empty}"
                assert flat == [], f"metric families the running gateway does not update: {flat}"
            finally:
                proc.terminate()
                with trio.move_on_after(10):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                log.close()
