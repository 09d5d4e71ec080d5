"""deploy/grafana-dashboard.json queries only metrics the controller really exports.

A dashboard that names a metric nobody exports shows "No data" forever and
nobody notices; these tests tie every PromQL expression to the documented
metric list in `signer.telemetry` and to a real exposition from `Telemetry`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import signer.telemetry
from signer.models import Outcome
from signer.telemetry import Telemetry

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana-dashboard.json"
METRIC = re.compile(r"\bcsr_signer_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if isinstance(variable.get("query"), dict):
            exprs.append(variable["query"]["query"])
    return exprs


def documented_metrics() -> set[str]:
    """Metric families named in signer/telemetry.py's module docstring (the contract)."""
    doc = signer.telemetry.__doc__ or ""
    return set(re.findall(r"``(csr_signer_[a-z0-9_]+)(?:\{[^`]*\})?``", doc))


def family(series: str, histograms: set[str]) -> str:
    """`x_bucket` of a documented histogram `x` -> `x`; anything else unchanged."""
    for suffix in HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and base in histograms:
            return base
    return series


def exported_series() -> set[str]:
    """Series names in a real exposition with every metric recorded once."""
    telemetry = Telemetry.create(signer_names=["example.com/a"])
    try:
        telemetry.decision("example.com/a", Outcome.APPROVE, "p", kind="csr")
        telemetry.issued("example.com/a", kind="csr")
        telemetry.signing_failed("example.com/a", "CAExpired", kind="pcr")
        telemetry.request_unreadable("example.com/a", "Malformed")
        telemetry.observe_latency("example.com/a", 0.3, kind="pcr")
        telemetry.api_error("conflict", "update")
        telemetry.set_ca_not_after("example.com/a", 2_000_000_000)
        telemetry.policy_reload(ok=True)
        telemetry.set_leader(True)
        text = telemetry.render()[0].decode()
    finally:
        telemetry.shutdown()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1].isalpha()}


def test_dashboard_is_valid_json_with_unique_panel_ids_and_a_datasource_variable() -> None:
    dashboard = load()
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert "datasource" in names
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]


def test_every_queried_metric_is_documented_and_exported() -> None:
    documented = documented_metrics()
    histograms = {m for m in documented if m.endswith("_seconds") and "latency" in m}
    assert len(documented) >= 10, documented  # the docstring parser still finds the list
    exported = exported_series()
    queried = {m for expr in expressions(load()) for m in METRIC.findall(expr)}
    assert queried
    undocumented = {m for m in queried if family(m, histograms) not in documented}
    assert not undocumented, f"dashboard queries undocumented metrics: {sorted(undocumented)}"
    missing = queried - exported
    assert not missing, f"dashboard queries series the controller does not export: {missing}"


def test_every_documented_metric_has_a_panel() -> None:
    histograms = {m for m in documented_metrics() if "latency" in m}
    queried = {family(m, histograms) for expr in expressions(load()) for m in METRIC.findall(expr)}
    assert documented_metrics() - queried == set()


@pytest.mark.parametrize(
    ("title", "needle"),
    [
        pytest.param(
            "Created-to-issued latency",
            "histogram_quantile(0.99,",
            id="latency-panel-shows-p99-from-the-histogram",
        ),
        pytest.param(
            "Created-to-issued latency",
            "histogram_quantile(0.5,",
            id="latency-panel-shows-p50-from-the-histogram",
        ),
        pytest.param("CA expires in", "- time()", id="ca-panel-counts-down-from-not-after-to-now"),
        pytest.param(
            "Decisions by kind and outcome",
            "by (kind, outcome)",
            id="decisions-are-split-by-request-kind-and-outcome",
        ),
        pytest.param(
            "Certificates issued", "by (signer, kind)", id="issued-is-split-by-request-kind"
        ),
        pytest.param(
            "Signing failures by reason",
            "by (kind, reason)",
            id="signing-failures-are-split-by-request-kind",
        ),
        pytest.param(
            "Created-to-issued latency",
            "sum by (kind, le)",
            id="latency-quantiles-are-per-request-kind",
        ),
        pytest.param("API errors by kind", "by (kind", id="api-errors-are-split-by-kind"),
    ],
)
def test_panel_answers_its_question(title: str, needle: str) -> None:
    panel = next(p for p in panels(load()) if p["title"] == title)
    assert any(needle in t["expr"] for t in panel["targets"])
