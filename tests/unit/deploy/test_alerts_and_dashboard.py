"""The Prometheus alert rules and the Grafana dashboard: they parse, and every metric they
read is one the gateway, the bridge or the function exposes.

The metric names are collected from the processes' own registries here, at test time,
so renaming a metric in the code without its rules and panels fails this test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry

from connectors.bridge.metrics import BridgeMetrics
from connectors.cloud.metrics import FunctionMetrics
from gateway.metrics import GatewayMetrics
from gateway.scaleout import MapperMetrics

ROOT = Path(__file__).resolve().parents[3]
RULES = sorted((ROOT / "deploy" / "prometheus").glob("*.yaml"))
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum",
                                                             "_created"),
            "summary": ("", "_count", "_sum", "_created"), "info": ("_info",),
            "gauge": ("",), "stateset": ("",), "enum": ("",), "unknown": ("",)}
# The alerts the operators' guide promises (docs/observability.md#alerts), by what they watch.
PROMISED = {"silent sender": "hl7gw_frames_total", "spool depth": "hl7gw_spool_depth",
            "publish lag": "hl7gw_oldest_pending_age_seconds",
            "DLQ growth": "hl7gw_bridge_dlq_total", "error ratio": "hl7gw_acks_total"}


def exposed_names() -> set[str]:
    """Every sample name the processes' registries can expose (gateway, bridge, function,
    and the scale-out mapper)."""
    registries = [GatewayMetrics().registry, FunctionMetrics().registry,
                  MapperMetrics().registry]
    bridge = CollectorRegistry()
    BridgeMetrics.build(bridge)
    registries.append(bridge)
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def metrics_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (raises when it does not parse)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name or next((m.value for m in node.matchers.matchers
                                      if m.name == "__name__"), None)
            assert name, f"a selector without a metric name in {expr!r}"
            found.add(name)
        elif isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql_parser.BinaryExpr):
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, promql_parser.AggregateExpr):
            walk(node.expr)
            if node.param is not None:
                walk(node.param)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr
                        | promql_parser.SubqueryExpr):
            walk(node.expr)
        elif not isinstance(node, promql_parser.NumberLiteral | promql_parser.StringLiteral):
            raise AssertionError(f"unknown PromQL node {type(node).__name__} in {expr!r}")

    walk(promql_parser.parse(expr))
    return found


def rules() -> list[dict[str, Any]]:
    found = []
    for path in RULES:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert set(doc) == {"groups"}, path
        for group in doc["groups"]:
            assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"]
            found.extend(group["rules"])
    assert found, "no alert rules under deploy/prometheus"
    return found


def test_the_name_collector_sees_the_metrics_and_the_walker_finds_them() -> None:
    names = exposed_names()
    assert {"hl7gw_frames_total", "hl7gw_bridge_lag", "hl7gw_function_events_total",
            "hl7gw_ack_latency_seconds_bucket", "hl7gw_mapper_info"} <= names
    assert metrics_in('sum by (x) (rate(a_total{y="1"}[5m])) / ignoring(z) b offset 1h'
                      ' and on() absent(c) or histogram_quantile(0.9, d_bucket)') == \
        {"a_total", "b", "c", "d_bucket"}
    assert "hl7gw_no_such_total" not in names


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r.get("alert", "?"))
def test_each_alert_rule_parses_and_reads_existing_metrics(rule: dict[str, Any]) -> None:
    assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
    assert re.fullmatch(r"Hl7gw[A-Za-z]+", rule["alert"])
    if "for" in rule:
        promql_parser.parse_duration(rule["for"])
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    unknown = metrics_in(rule["expr"]) - exposed_names()
    assert unknown == set(), f"{rule['alert']} reads metrics no process exposes"


def test_the_promised_alerts_exist_and_names_are_unique() -> None:
    alerts = rules()
    names = [r["alert"] for r in alerts]
    assert len(names) == len(set(names))
    read = set().union(*(metrics_in(r["expr"]) for r in alerts))
    missing = {what for what, metric in PROMISED.items() if metric not in read}
    assert missing == set()


def _targets(panel: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = list(panel.get("targets", []))
    for inner in panel.get("panels", []):
        found.extend(_targets(inner))
    return found


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_dashboard_parses_and_reads_existing_metrics(path: Path) -> None:
    dash = json.loads(path.read_text(encoding="utf-8"))
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    assert any(v["type"] == "datasource" for v in dash["templating"]["list"])
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    targets = [t for p in panels for t in _targets(p)]
    assert len(targets) >= 10
    names = exposed_names()
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        for target in _targets(panel):
            assert target["refId"] and target["datasource"]["uid"] == "${datasource}"
            # Grafana's own variables, as Grafana would fill them in
            expr = target["expr"].replace("$__rate_interval", "5m")
            unknown = metrics_in(expr) - names
            assert unknown == set(), (panel["title"], unknown)
    assert {"hl7gw_bridge_lag", "hl7gw_function_events_total",
            "hl7gw_spool_depth"} <= set().union(*(metrics_in(t["expr"].replace(
                "$__rate_interval", "5m")) for t in targets))
