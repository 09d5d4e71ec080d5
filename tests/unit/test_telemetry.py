"""Telemetry: every documented metric renders, label values stay bounded, instances are private."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from signer import telemetry as telemetry_module
from signer.models import Outcome
from signer.pki import podcerts
from signer.telemetry import (
    CONTENT_TYPE,
    MAX_POLICY_LABELS,
    REQUEST_KINDS,
    SIGNING_FAILURE_REASONS,
    Telemetry,
)

SIGNER = "csr-signer.dev/cluster-local"


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    instance = Telemetry.create(signer_names=[SIGNER])
    yield instance
    instance.shutdown()


def samples(telemetry: Telemetry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse render() back: (sample name, labels) -> value."""
    body, _ = telemetry.render()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(telemetry: Telemetry, name: str, **labels: str) -> float | None:
    return samples(telemetry).get((name, frozenset(labels.items())))


Use = Callable[[Telemetry], None]


@pytest.mark.parametrize(
    ("use", "name", "labels", "expected"),
    [
        pytest.param(
            lambda t: t.decision(SIGNER, Outcome.APPROVE, "knative-internal", kind="csr"),
            "csr_signer_decisions_total",
            {"signer": SIGNER, "kind": "csr", "outcome": "approve", "policy": "knative-internal"},
            1.0,
            id="decision-counts-outcome-and-policy",
        ),
        pytest.param(
            lambda t: t.decision(SIGNER, Outcome.ABSTAIN, None, kind="csr"),
            "csr_signer_decisions_total",
            {"signer": SIGNER, "kind": "csr", "outcome": "abstain", "policy": ""},
            1.0,
            id="decision-without-policy-has-empty-policy-label",
        ),
        pytest.param(
            lambda t: t.issued(SIGNER, kind="csr"),
            "csr_signer_certificates_issued_total",
            {"signer": SIGNER, "kind": "csr"},
            1.0,
            id="issued",
        ),
        pytest.param(
            lambda t: t.signing_failed(SIGNER, "CAExpired", kind="csr"),
            "csr_signer_signing_failures_total",
            {"signer": SIGNER, "kind": "csr", "reason": "CAExpired"},
            1.0,
            id="signing-failure-by-reason",
        ),
        pytest.param(
            lambda t: t.signing_failed(SIGNER, "the CA said no: csr-abc", kind="csr"),
            "csr_signer_signing_failures_total",
            {"signer": SIGNER, "kind": "csr", "reason": "Other"},
            1.0,
            id="unknown-failure-reason-becomes-Other",
        ),
        pytest.param(
            lambda t: t.observe_latency(SIGNER, 0.3, kind="csr"),
            "csr_signer_issue_latency_seconds_bucket",
            {"signer": SIGNER, "kind": "csr", "le": "0.5"},
            1.0,
            id="latency-lands-in-its-bucket",
        ),
        pytest.param(
            lambda t: t.observe_latency(SIGNER, 0.3, kind="csr"),
            "csr_signer_issue_latency_seconds_bucket",
            {"signer": SIGNER, "kind": "csr", "le": "0.25"},
            0.0,
            id="latency-not-in-smaller-bucket",
        ),
        pytest.param(
            lambda t: t.observe_latency(SIGNER, 3600, kind="csr"),
            "csr_signer_issue_latency_seconds_bucket",
            {"signer": SIGNER, "kind": "csr", "le": "600.0"},
            0.0,
            id="latency-over-10-minutes-only-in-inf",
        ),
        pytest.param(
            lambda t: t.observe_latency(SIGNER, -5, kind="csr"),
            "csr_signer_issue_latency_seconds_sum",
            {"signer": SIGNER, "kind": "csr"},
            0.0,
            id="negative-latency-from-clock-skew-counts-as-zero",
        ),
        pytest.param(
            lambda t: t.set_queue_depth(7), "csr_signer_queue_depth", {}, 7.0, id="queue-depth"
        ),
        pytest.param(
            lambda t: t.set_concurrency_limit(12),
            "csr_signer_concurrency_limit",
            {},
            12.0,
            id="concurrency-limit",
        ),
        pytest.param(
            lambda t: t.api_error("conflict", "update"),
            "csr_signer_api_errors_total",
            {"kind": "conflict", "verb": "update"},
            1.0,
            id="api-error-by-kind-and-verb",
        ),
        pytest.param(
            lambda t: t.api_error("teapot", "frobnicate"),
            "csr_signer_api_errors_total",
            {"kind": "other", "verb": "other"},
            1.0,
            id="unknown-api-error-kind-and-verb-become-other",
        ),
        pytest.param(
            lambda t: t.request_unreadable(SIGNER, "Malformed"),
            "csr_signer_requests_unreadable_total",
            {"signer": SIGNER, "reason": "Malformed"},
            1.0,
            id="unreadable-request",
        ),
        pytest.param(
            lambda t: t.request_unreadable(SIGNER, "whatever a tenant sent"),
            "csr_signer_requests_unreadable_total",
            {"signer": SIGNER, "reason": "Other"},
            1.0,
            id="unknown-unreadable-reason-becomes-other",
        ),
        pytest.param(
            lambda t: t.set_ca_not_after(SIGNER, 1_900_000_000),
            "csr_signer_ca_not_after_timestamp_seconds",
            {"signer": SIGNER},
            1_900_000_000.0,
            id="ca-not-after",
        ),
        pytest.param(
            lambda t: t.policy_reload(ok=True),
            "csr_signer_policy_reloads_total",
            {"result": "success"},
            1.0,
            id="policy-reload-success",
        ),
        pytest.param(
            lambda t: t.policy_reload(ok=False),
            "csr_signer_policy_reloads_total",
            {"result": "failure"},
            1.0,
            id="policy-reload-failure",
        ),
        pytest.param(
            lambda t: t.policy_reload(ok=False),
            "csr_signer_policies_valid",
            {},
            0.0,
            id="failed-reload-marks-policies-invalid",
        ),
        pytest.param(
            lambda t: t.policy_reload(ok=True),
            "csr_signer_policies_valid",
            {},
            1.0,
            id="good-reload-marks-policies-valid",
        ),
        pytest.param(lambda t: t.set_leader(True), "csr_signer_leader", {}, 1.0, id="leader-gauge"),
    ],
)
def test_each_metric_renders_after_use(
    telemetry: Telemetry, use: Use, name: str, labels: dict[str, str], expected: float
) -> None:
    use(telemetry)
    assert value(telemetry, name, **labels) == expected


@pytest.mark.parametrize(
    ("name", "labels", "expected"),
    [
        pytest.param(
            "csr_signer_certificates_issued_total",
            {"signer": SIGNER, "kind": "csr"},
            0.0,
            id="csr-issued-starts-at-zero-per-configured-signer",
        ),
        pytest.param(
            "csr_signer_certificates_issued_total",
            {"signer": SIGNER, "kind": "pcr"},
            0.0,
            id="pcr-issued-starts-at-zero-per-configured-signer",
        ),
        pytest.param(
            "csr_signer_policy_reloads_total",
            {"result": "failure"},
            0.0,
            id="reload-failures-start-at-zero",
        ),
        pytest.param("csr_signer_queue_depth", {}, 0.0, id="queue-starts-empty"),
        pytest.param("csr_signer_leader", {}, 0.0, id="not-leader-until-told"),
    ],
)
def test_series_exist_before_first_event(
    telemetry: Telemetry, name: str, labels: dict[str, str], expected: float
) -> None:
    """So rate() and alerts on absence work from the first scrape."""
    assert value(telemetry, name, **labels) == expected


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("csr_signer_ca_not_after_timestamp_seconds", id="ca-expiry-unknown"),
        pytest.param("csr_signer_policies_valid", id="policy-validity-unknown"),
    ],
)
def test_unknown_state_is_absent_rather_than_zero(telemetry: Telemetry, name: str) -> None:
    """A 0 would read as "CA expired in 1970" or "policies invalid"."""
    assert all(sample_name != name for sample_name, _ in samples(telemetry))


@pytest.mark.parametrize(
    "use",
    [
        pytest.param(lambda t: t.issued("attacker.example/x", kind="csr"), id="issued"),
        pytest.param(lambda t: t.decision("x.y/z", Outcome.DENY, "p", kind="pcr"), id="decision"),
        pytest.param(
            lambda t: t.signing_failed("x.y/z", "CAExpired", kind="csr"), id="signing-failed"
        ),
        pytest.param(lambda t: t.observe_latency("x.y/z", 1, kind="pcr"), id="latency"),
    ],
)
def test_unconfigured_signer_becomes_other(telemetry: Telemetry, use: Use) -> None:
    use(telemetry)
    signers = {dict(labels).get("signer") for _, labels in samples(telemetry)} - {None}
    assert signers <= {SIGNER, "other"}
    assert "other" in signers


KINDED: dict[str, tuple[Callable[[Telemetry, str], None], str, dict[str, str]]] = {
    "decision": (
        lambda t, kind: t.decision(SIGNER, Outcome.DENY, "p", kind=kind),
        "csr_signer_decisions_total",
        {"signer": SIGNER, "outcome": "deny", "policy": "p"},
    ),
    "issued": (
        lambda t, kind: t.issued(SIGNER, kind=kind),
        "csr_signer_certificates_issued_total",
        {"signer": SIGNER},
    ),
    "signing-failed": (
        lambda t, kind: t.signing_failed(SIGNER, "SigningFailed", kind=kind),
        "csr_signer_signing_failures_total",
        {"signer": SIGNER, "reason": "SigningFailed"},
    ),
    "latency": (
        lambda t, kind: t.observe_latency(SIGNER, 0.3, kind=kind),
        "csr_signer_issue_latency_seconds_count",
        {"signer": SIGNER},
    ),
}
"""Every per-request metric: how to record it with a `kind`, and its series' other labels."""


@pytest.mark.parametrize("metric", sorted(KINDED))
@pytest.mark.parametrize(
    ("kind", "label"),
    [
        pytest.param("csr", "csr", id="csr"),
        pytest.param("pcr", "pcr", id="pcr"),
        pytest.param("CSR", "other", id="case-matters-so-CSR-is-other"),
        pytest.param("pod/my-pod", "other", id="anything-else-becomes-other"),
        pytest.param("", "other", id="empty-becomes-other"),
    ],
)
def test_kind_label_is_bounded(telemetry: Telemetry, metric: str, kind: str, label: str) -> None:
    use, name, labels = KINDED[metric]
    use(telemetry, kind)
    assert value(telemetry, name, **labels, kind=label) == 1.0
    kinds = {dict(ls).get("kind") for n, ls in samples(telemetry) if n == name} - {None}
    assert kinds <= {*REQUEST_KINDS, "other"}


@pytest.mark.parametrize("metric", sorted(KINDED))
def test_kinds_are_counted_apart(telemetry: Telemetry, metric: str) -> None:
    use, name, labels = KINDED[metric]
    use(telemetry, "csr")
    use(telemetry, "pcr")
    use(telemetry, "pcr")
    assert value(telemetry, name, **labels, kind="csr") == 1.0
    assert value(telemetry, name, **labels, kind="pcr") == 2.0


def test_unreadable_requests_have_no_kind_label(telemetry: Telemetry) -> None:
    """CSRs only: a PodCertificateRequest never reaches the unreadable-request counter."""
    telemetry.request_unreadable(SIGNER, "Malformed")
    unreadable = "csr_signer_requests_unreadable_total"
    assert value(telemetry, unreadable, signer=SIGNER, reason="Malformed") == 1.0


@pytest.mark.parametrize(
    "reason",
    [
        "UnsupportedKeyType",
        "InvalidKey",
        "InvalidDNSName",
        "LifetimeTooShort",
        "CAExpiresSoon",
        "NoIdentity",
        "SigningFailed",
        "CAExpired",
        "CANotYetValid",
        "CAUnavailable",
    ],
)
def test_pcr_refusal_reasons_keep_their_name(telemetry: Telemetry, reason: str) -> None:
    telemetry.signing_failed(SIGNER, reason, kind="pcr")
    failures = "csr_signer_signing_failures_total"
    assert value(telemetry, failures, signer=SIGNER, kind="pcr", reason=reason) == 1.0


def test_every_pod_certificate_refusal_reason_is_a_label_value() -> None:
    """A new `Refusal(reason=...)` in signer.pki.podcerts must be added to the label set."""
    source = Path(podcerts.__file__).read_text()
    reasons = set(re.findall(r'reason="([A-Za-z]+)"', source))
    reasons |= {podcerts.UNSUPPORTED_KEY_TYPE, podcerts.INVALID_KEY}
    assert len(reasons) >= 7, reasons  # the pattern still finds the refusals
    assert reasons - SIGNING_FAILURE_REASONS == set()


def test_policy_label_values_are_capped(telemetry: Telemetry) -> None:
    for index in range(MAX_POLICY_LABELS + 5):
        telemetry.decision(SIGNER, Outcome.APPROVE, f"policy-{index}", kind="csr")
    policies = {
        dict(labels)["policy"]
        for name, labels in samples(telemetry)
        if name == "csr_signer_decisions_total"
    }
    assert len(policies) == MAX_POLICY_LABELS + 1
    assert "other" in policies


def test_every_metric_is_documented_in_the_module_docstring(telemetry: Telemetry) -> None:
    telemetry.set_ca_not_after(SIGNER, 1)
    telemetry.policy_reload(ok=True)
    telemetry.decision(SIGNER, Outcome.APPROVE, None, kind="csr")
    telemetry.signing_failed(SIGNER, "CAExpired", kind="csr")
    telemetry.observe_latency(SIGNER, 1, kind="csr")
    telemetry.api_error("gone", "watch")
    telemetry.request_unreadable(SIGNER, "TooLarge")
    body, _ = telemetry.render()
    families = set(re.findall(r"^# TYPE (\S+)", body.decode(), flags=re.MULTILINE))
    assert len(families) == 12
    doc = telemetry_module.__doc__ or ""
    for family in families:
        assert f"``{family}" in doc


def test_render_returns_prometheus_text(telemetry: Telemetry) -> None:
    body, content_type = telemetry.render()
    assert content_type == CONTENT_TYPE
    assert content_type.startswith("text/plain; version=0.0.4")
    assert b"# TYPE csr_signer_leader gauge" in body


def test_two_instances_do_not_share_numbers_or_the_global_registry() -> None:
    first = Telemetry.create(signer_names=[SIGNER])
    second = Telemetry.create(signer_names=[SIGNER])
    try:
        first.issued(SIGNER, kind="csr")
        first.issued(SIGNER, kind="csr")
        second.issued(SIGNER, kind="csr")
        issued = "csr_signer_certificates_issued_total"
        assert value(first, issued, signer=SIGNER, kind="csr") == 2.0
        assert value(second, issued, signer=SIGNER, kind="csr") == 1.0
        assert REGISTRY.get_sample_value(issued, {"signer": SIGNER, "kind": "csr"}) is None
    finally:
        first.shutdown()
        second.shutdown()


def test_shutdown_is_idempotent_and_empties_the_exposition() -> None:
    instance = Telemetry.create(signer_names=[SIGNER])
    instance.shutdown()
    instance.shutdown()
    assert instance.render()[0] == b""


class ListExporter(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def test_spans_reach_an_injected_exporter() -> None:
    exporter = ListExporter()
    instance = Telemetry.create(signer_names=[SIGNER], span_exporter=exporter)
    try:
        with instance.tracer.start_as_current_span("reconcile") as span:
            span.set_attribute("csr.signer", SIGNER)
        assert [s.name for s in exporter.spans] == ["reconcile"]
        assert exporter.spans[0].resource.attributes["service.name"] == "csr-signer"
    finally:
        instance.shutdown()


def test_without_an_exporter_spans_are_not_recorded(telemetry: Telemetry) -> None:
    with telemetry.tracer.start_as_current_span("reconcile") as span:
        assert not span.is_recording()
