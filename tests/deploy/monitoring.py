"""The monitoring files (alert rules, PrometheusRule, Grafana dashboard) read once, for the deploy tests and for the
e2e test that checks a running relay exports every metric they use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "relay-rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "relay-rules.test.yml"
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "prometheusrule.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "relay-dashboard.json"
# Grafana's interval variables, replaced by a fixed range so the queries parse as plain PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
_METRIC = re.compile(r"\brelay_[a-z0-9_]+\b")


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def dashboard_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_exprs(plain: bool = False) -> list[str]:
    exprs = [t["expr"] for p in dashboard_panels() for t in p["targets"]]
    if plain:
        for variable, value in GRAFANA_VARIABLES.items():
            exprs = [e.replace(variable, value) for e in exprs]
    return exprs


def metric_names(exprs: list[str]) -> set[str]:
    """Every relay_* series name the expressions select (the relay's metrics all start so)."""
    return {name for expr in exprs for name in _METRIC.findall(expr)}


def used_metric_names() -> set[str]:
    return metric_names([r["expr"] for r in rules()] + dashboard_exprs())


def exported_names(exposition: str) -> set[str]:
    """Series names a /metrics body offers: every sample's name, plus each declared family's names (a counter with no
    sample yet is still exported: ``_total``; a histogram: ``_bucket``, ``_count``, ``_sum``)."""
    names = {line.split("{")[0].split(" ")[0] for line in exposition.splitlines() if line and not line.startswith("#")}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE):
        suffixes = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum", "")}.get(kind, ("",))
        names.update(name + s for s in suffixes)
    return names
