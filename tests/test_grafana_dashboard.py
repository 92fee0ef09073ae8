"""deploy/grafana-dashboard.json: a Grafana dashboard (schema 39) on a Prometheus data
source variable, whose every query names only metrics the hub really exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: The series a family of each type exports (Prometheus text format).
SUFFIXES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
METRIC = re.compile(r"\bcatalyst_[a-z0-9_]+")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _queries(dashboard: dict[str, Any]) -> Iterator[str]:
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            yield query["query"]
        elif variable["type"] == "query":
            yield query


def exported_series() -> set[str]:
    """Every series name the hub's registry exports, from its own /metrics text."""
    text = Metrics().render().decode()
    series: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            series.update(name + suffix for suffix in SUFFIXES.get(kind, ("",)))
        elif line and not line.startswith("#"):
            series.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return series


def test_it_is_a_grafana_dashboard_on_a_prometheus_variable(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] == 39
    assert dashboard["uid"] and dashboard["title"]
    (source,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert (source["name"], source["query"]) == ("datasource", "prometheus")
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in _panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_queries_are_balanced(dashboard: dict[str, Any]) -> None:
    for expr in _queries(dashboard):
        for opening, closing in ("()", "{}", "[]"):
            assert expr.count(opening) == expr.count(closing), expr
        assert expr.count('"') % 2 == 0, expr


def test_every_metric_a_query_names_is_exported(dashboard: dict[str, Any]) -> None:
    series = exported_series()
    named = {name for expr in _queries(dashboard) for name in METRIC.findall(expr)}
    assert named, "no queries found"
    assert named <= series, f"not exported: {sorted(named - series)}"


def test_it_shows_what_operators_ask_for(dashboard: dict[str, Any]) -> None:
    exprs = "\n".join(_queries(dashboard))
    for needed in (
        "rate(catalyst_signals_published_total",
        "catalyst_deliveries_total{channel",
        "histogram_quantile(0.95, sum by (le, channel) (rate(catalyst_delivery_latency_seconds_bucket",
        "histogram_quantile(0.5, sum by (le, channel) (rate(catalyst_signal_first_delivery_seconds",
        "histogram_quantile(0.95, sum by (le, channel) (rate(catalyst_signal_last_delivery_seconds",
        'state="rate_limited"',
        'state="dead"',
        "catalyst_websocket_connections",
    ):
        assert needed in exprs, needed
