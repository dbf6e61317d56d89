"""Alert rules and dashboard: promtool checks and unit tests, every metric name they use is
declared in gateway/observability/metrics.py, the dashboard is well-formed Grafana 10 JSON."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.observability.metrics import Metrics

CONFIG = Path(__file__).resolve().parents[2] / "config"
RULES = CONFIG / "alerts.rules.yml"
RULE_TESTS = CONFIG / "alerts.test.yml"
DASHBOARD = CONFIG / "grafana-dashboard.json"
CONTRACT_FAMILIES = [
    "gateway_messages_total", "gateway_queue_depth_segments", "gateway_carrier_health_score",
    "gateway_carrier_link_up", "gateway_smpp_submit_latency_seconds",
    "gateway_webhook_requests_total", "gateway_webhook_duration_seconds", "gateway_reroutes_total",
    "gateway_calls_active", "gateway_calls_total", "gateway_build_info",
]

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not installed (Debian package prometheus)")


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def metric_names(text: str) -> set[str]:
    names = set(re.findall(r"\bgateway_[a-z_]+[a-z]", text))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


@needs_promtool
def test_promtool_check_rules():
    r = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_promtool
def test_promtool_unit_tests():
    r = subprocess.run(["promtool", "test", "rules", RULE_TESTS.name], capture_output=True,
                       text=True, timeout=60, cwd=CONFIG)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_every_alert_has_a_firing_unit_test():
    alerts = set(re.findall(r"^\s*- alert: (\w+)", RULES.read_text(), re.M))
    fired = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels",
                           RULE_TESTS.read_text()))
    assert len(alerts) >= 12
    assert alerts - fired == set()


def test_metric_names_in_rules_and_dashboard_are_declared():
    declared = set(Metrics().families())
    used = metric_names(RULES.read_text()) | metric_names(" ".join(dashboard_exprs()))
    assert used, "no metric names found"
    assert used - declared == set()


def test_dashboard_uses_the_contract_metrics():
    text = " ".join(dashboard_exprs())
    missing = [n for n in CONTRACT_FAMILIES if n not in metric_names(text)]
    assert missing == []


def test_dashboard_is_grafana10_shaped():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not area & cells, f"panel {p['title']!r} overlaps another"
        cells |= area
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}" and t["expr"].strip()
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("health", "traffic share", "link", "latency", "throughput", "queue", "dlr",
                  "webhook", "api errors", "reroutes", "calls"):
        assert topic in titles, topic


def test_histogram_quantiles_keep_le():
    """histogram_quantile over rate(..._bucket) must aggregate ``by (..., le)``."""
    exprs = dashboard_exprs() + re.findall(r"expr: (.*)", RULES.read_text())
    for e in exprs:
        for m in re.finditer(r"histogram_quantile\([^,]+,\s*sum by \(([^)]*)\)", e):
            assert "le" in [x.strip() for x in m.group(1).split(",")], e
