"""A real Prometheus scrapes ``Metrics().exposition()`` served by a tiny trio server; every
dashboard expression and alert expression evaluates through /api/v1/query, and the rule
file loads and evaluates cleanly. Skipped when ``prometheus`` is not installed."""

import json
import re
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import trio

from gateway.observability.metrics import Metrics

CONFIG = Path(__file__).resolve().parents[2] / "config"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None,
                       reason="prometheus not installed (Debian package prometheus)"),
]


def populated_metrics() -> Metrics:
    m = Metrics()
    m.set_build_info("0.1.0", "python")
    m.set_queue_provider(lambda: {"long_code": (5, 2.0), "short_code": (100, 0.5)})
    m.set_carrier_provider(lambda: {"a": (0.97, {"smpp": True, "sip": True}, "closed"),
                                    "b": (0.2, {"smpp": False}, "open")})
    for carrier in ("a", "b"):
        m.smpp_submit_latency.labels(carrier).observe(0.04)
        m.smpp_enquire_link_rtt.labels(carrier).observe(0.01)
        m.smpp_pdus.labels(carrier, "submit_sm_resp", "ESME_RTHROTTLED").inc()
        m.smpp_window_in_use.labels(carrier).set(3)
        m.smpp_reconnects.labels(carrier).inc()
        m.smpp_throttled.labels(carrier).inc()
        m.dlr.labels(carrier, "delivered").inc(4)
        m.possible_duplicates.labels(carrier).inc()
        m.sip_options.labels(carrier, "ok").inc()
    m.messages.labels("outbound", "sent").inc(10)
    m.messages.labels("inbound", "received").inc(2)
    m.reroutes.labels("b", "a").inc()
    for kind in ("status", "inbound"):
        m.webhook_requests.labels(kind, "ok").inc()
        m.webhook_duration.labels(kind).observe(0.2)
        m.webhook_retries.labels(kind).inc()
    m.api_requests.labels("messages.create", "201").inc()
    m.api_request_duration.labels("messages.create").observe(0.003)
    m.api_errors.labels("21211").inc()
    m.store_commit_duration.observe(0.002)
    m.store_batch_size.observe(12)
    m.calls_active.set(1)
    m.calls.labels("inbound", "completed").inc()
    m.call_setup_duration.labels("inbound").observe(1.5)
    m.event_loop_lag.set(0.001)
    return m


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:      # 4xx/5xx carry the error JSON
        return json.loads(e.read() or b"{}")


def grafana_to_promql(expr: str) -> str:
    return (expr.replace("$__rate_interval", "1m").replace('"$instance"', '".*"')
            .replace('"$carrier"', '".*"'))


def expressions() -> list[str]:
    dash = json.loads((CONFIG / "grafana-dashboard.json").read_text())
    exprs = [grafana_to_promql(t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]
    rules = (CONFIG / "alerts.rules.yml").read_text()
    for m in re.finditer(r"expr: (\|\n((?:\s{10}.*\n)+)|.*)", rules):
        exprs.append((m.group(2) or m.group(1)).strip())
    return exprs


async def serve_metrics(metrics: Metrics, task_status=trio.TASK_STATUS_IGNORED):
    async def handle(stream):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        body, ctype = metrics.exposition(None)
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode()
        await stream.send_all(head + body)
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def wait_for(url: str, ok, deadline_s: float):
    with trio.fail_after(deadline_s):
        while True:
            try:
                data = await trio.to_thread.run_sync(http_get_json, url)
                if ok(data):
                    return data
            except (OSError, ValueError):
                pass
            await trio.sleep(0.2)       # polling a condition, bounded by fail_after


async def test_prometheus_scrapes_and_evaluates_everything(tmp_path):
    metrics = populated_metrics()
    prom_port = free_port()
    base = f"http://127.0.0.1:{prom_port}/api/v1"
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_metrics, metrics)
            (tmp_path / "prometheus.yml").write_text(
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                f"rule_files: ['{CONFIG / 'alerts.rules.yml'}']\n"
                "scrape_configs:\n"
                f"  - job_name: gateway\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
            log = open(tmp_path / "prometheus.log", "wb")
            proc = await trio.lowlevel.open_process(
                ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'data'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                stdout=log, stderr=log)
            try:
                q = f"{base}/query?query=" + urllib.parse.quote('count_over_time(up{job="gateway"}[1m])')
                await wait_for(q, lambda d: d.get("data", {}).get("result")
                               and float(d["data"]["result"][0]["value"][1]) >= 3, 30)
                for expr in expressions():
                    d = await trio.to_thread.run_sync(
                        http_get_json, f"{base}/query?query={urllib.parse.quote(expr)}")
                    assert d.get("status") == "success", (expr, d)
                d = await trio.to_thread.run_sync(http_get_json, f"{base}/query?query=" +
                                                  urllib.parse.quote("gateway_carrier_health_score"))
                assert {r["metric"]["carrier"] for r in d["data"]["result"]} == {"a", "b"}
                rules = await wait_for(f"{base}/rules", lambda d: d["data"]["groups"] and all(
                    r["health"] != "unknown" for g in d["data"]["groups"] for r in g["rules"]), 10)
                health = [(r["name"], r["health"], r.get("lastError", ""))
                          for g in rules["data"]["groups"] for r in g["rules"]]
                assert len(health) >= 12
                assert [h for h in health if h[1] == "err"] == []
            finally:
                proc.terminate()
                with trio.move_on_after(10):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                log.close()
                nursery.cancel_scope.cancel()
