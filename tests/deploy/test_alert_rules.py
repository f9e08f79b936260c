"""The alert rules and the Grafana dashboard: valid for Prometheus (``promtool``, from Debian's ``prometheus``
package; skipped without it, installed by .ci/run), unit-tested alerts, the PrometheusRule equal to the plain
file, every alert documented. That every metric they use is exported by a running relay is checked end to end
(tests/e2e/test_monitoring_metrics.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.monitoring import (
    DASHBOARD,
    PROMETHEUS_RULE,
    RULES,
    RULES_TEST,
    dashboard,
    dashboard_exprs,
    dashboard_panels,
    metric_names,
    rules,
    used_metric_names,
)

SEVERITIES = {"warning", "critical"}
# Counted by the web process that served the request (app/platform/metrics.py, prometheus-client): summed over replicas.
PER_REPLICA_COUNTERS = {"relay_webhooks_total", "relay_api_auth_total", "relay_console_signins_total"}


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.skip("promtool is not installed: apt-get install prometheus (Debian's package provides it)")
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)


def test_promtool_check_rules_passes() -> None:
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    result = run_promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool has no query checker: the dashboard's queries become recording rules it parses."""
    recording = [{"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(dashboard_exprs(plain=True))]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recording}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheusrule_holds_the_same_groups_as_the_rules_file() -> None:
    (doc,) = [d for d in yaml.safe_load_all(PROMETHEUS_RULE.read_text()) if d]
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert doc["metadata"]["name"] == "bulkexport-relay" and "namespace" not in doc["metadata"]
    assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "bulkexport-relay"
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"} and set(doc["spec"]) == {"groups"}
    assert doc["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def _readme_alert_anchor(rule: dict[str, Any]) -> str:
    return f"README.md#{rule['alert'].lower()}"


def test_every_alert_says_what_how_bad_and_where_the_runbook_is() -> None:
    alerts = rules()
    assert {r["alert"] for r in alerts} >= {
        "RelayFeedLagging",
        "RelayDaysFailed",
        "RelayFeedDaysFailed",
        "RelayFeedDaysCorrupt",
        "RelayUncopiedDayNearDeletion",
        "RelayPollerNotRunning",
        "RelaySignatureRejectionsRising",
        "RelayQueueGrowing",
        "RelayRegistryLost",
        "RelayQuotaExhaustedDaysMissing",
        "RelayAccountDown",
        "RelayAuthGuessing",
        "RelayStoreAnomalies",
        "RelayTasksRefused",
        "RelayLakeDaysFailed",
    }
    for rule in alerts:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and len(annotations["description"]) > 60, rule["alert"]
        assert annotations["runbook_url"] == _readme_alert_anchor(rule), rule["alert"]
    near_deletion = {r["labels"]["severity"]: r["expr"] for r in alerts if r["alert"] == "RelayUncopiedDayNearDeletion"}
    assert near_deletion == {
        "warning": "max(relay_oldest_uncopied_day_age_seconds) > 5 * 86400",
        "critical": "max(relay_oldest_uncopied_day_age_seconds) > 6 * 86400",
    }


def test_cluster_metrics_are_never_summed_over_replicas() -> None:
    """Every web replica reports the same Redis-backed cluster metrics: a sum would count them once per replica.
    Only the request counters (webhooks, API and console authentications) are per replica."""
    for expr in [r["expr"] for r in rules()] + dashboard_exprs():
        if re.search(r"\bsum\s*(\(|by\b|without\b)", expr):
            assert metric_names([expr]) <= PER_REPLICA_COUNTERS, expr


def test_per_replica_counters_are_summed_over_replicas() -> None:
    """Each web replica counts only the requests it served: max() would show one replica's share."""
    for expr in [r["expr"] for r in rules()] + dashboard_exprs():
        if metric_names([expr]) & PER_REPLICA_COUNTERS:
            assert re.search(r"\bsum\s*(\(|by\b)", expr) and not re.search(r"\bmax\b", expr), expr


def test_the_dashboard_is_importable_and_uses_its_datasource_variable() -> None:
    doc = dashboard()
    assert doc["uid"] == "bulkexport-relay" and doc["title"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    (variable,) = doc["templating"]["list"]
    assert (variable["type"], variable["query"], variable["name"]) == ("datasource", "prometheus", "datasource")
    for panel in dashboard_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and panel["description"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"] and target["expr"].strip(), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
    assert DASHBOARD.read_text().endswith("\n")


def test_rules_and_dashboard_cover_the_same_questions() -> None:
    """Each metric an alert fires on has a panel, so the dashboard shows what paged."""
    alert_metrics = {n for r in rules() for n in used_metric_names() if n in r["expr"]}
    panel_metrics = {n for n in used_metric_names() if any(n in e for e in dashboard_exprs())}
    assert alert_metrics <= panel_metrics, alert_metrics - panel_metrics
