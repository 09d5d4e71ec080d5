"""Metrics and traces, with every metric and label value written down and bounded.

A `Telemetry` owns its own OpenTelemetry `MeterProvider`, a private
`prometheus_client.CollectorRegistry` that the Prometheus reader exports into,
and its own `TracerProvider`. Nothing is installed globally, so tests can build
as many instances as they like and each `render()` shows only its own numbers.

Label values are bounded (ARCHITECTURE principle 12): a label never carries a
CSR name, a requester or anything else a client controls. Values outside the
documented set are folded into an overflow value rather than raising, because
metrics must never break reconciliation.

The controller decides and signs two kinds of request, CertificateSigningRequests
and PodCertificateRequests, and the per-request metrics say which with a
``kind`` label: ``csr`` or ``pcr`` (`REQUEST_KINDS`), ``other`` for anything
else. (``csr_signer_api_errors_total`` has a ``kind`` label of its own: the
kind of API error, see there.)

Metrics (Prometheus names; also in docs/metrics.md):

``csr_signer_decisions_total{signer, kind, outcome, policy}`` counter
    Policy decisions made. ``outcome``: ``approve``, ``deny``, ``abstain``
    (``other`` for anything else). ``policy``: the deciding policy's name, ``""``
    when no policy decided (abstain), ``other`` once more than
    `MAX_POLICY_LABELS` distinct names have been seen (policy names come from
    the operator's policy files, so the set is bounded by configuration).
``csr_signer_certificates_issued_total{signer, kind}`` counter
    Certificates issued: a CSR's status.certificate, a PCR's Issued status.
``csr_signer_signing_failures_total{signer, kind, reason}`` counter
    Requests the issuer refused (a CSR or PCR marked Failed, a PCR key Denied
    ``UnsupportedKeyType``), and every attempt a CA problem blocked (retried).
    ``reason``: one of `SIGNING_FAILURE_REASONS` (the CamelCase refusal
    reasons of both kinds), ``Other`` for anything else.
``csr_signer_requests_unreadable_total{signer, reason}`` counter
    CSRs refused before any policy or signing, because they could not be
    read safely (CSRs only: a PCR carries no request to parse). ``reason``: one of `UNREADABLE_REASONS` (``Malformed``: not a
    request Go's crypto/x509 reads the same way; ``TooLarge``: over
    ``--max-request-bytes``; ``TooManyNames``: over ``--max-sans``). The CSR is
    Denied, or Failed when a human approved it.
``csr_signer_issue_latency_seconds{signer, kind}`` histogram
    Request creationTimestamp to certificate issued. Buckets `LATENCY_BUCKETS`
    (10 ms .. 10 min); a CSR that waited for a human approval lands in +Inf.
``csr_signer_queue_depth`` gauge
    CSR keys waiting in the work queue.
``csr_signer_concurrency_limit`` gauge
    Requests reconciled at once (`signer.reactor.concurrency`): adaptive by default.
``csr_signer_api_errors_total{kind, verb}`` counter
    Failed Kubernetes API calls. ``kind``: one of `API_ERROR_KINDS` (the
    ``kind`` of `signer.kube.errors.ApiError`), else ``other``. ``verb``: one
    of `API_VERBS`, else ``other``.
``csr_signer_ca_not_after_timestamp_seconds{signer}`` gauge
    NotAfter of the CA that signs for ``signer``, as a Unix time; absent until
    that CA has been loaded. Alert on ``... - time() < 30 * 86400``.
``csr_signer_policy_reloads_total{result}`` counter
    Policy (re)loads. ``result``: ``success``, ``failure``.
``csr_signer_policies_valid`` gauge
    1 when the last policy load succeeded, 0 when it failed; absent before
    the first load.
``csr_signer_leader`` gauge
    1 while this process holds the leader Lease (or runs without leader
    election), else 0.

``signer`` is always one of the configured signer names given to `create()`,
or ``other``. ``certificates_issued_total`` starts at zero for every signer
and both kinds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from prometheus_client import CollectorRegistry, generate_latest

from signer import __version__
from signer.models import Outcome

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""`generate_latest` writes the classic text format, which every Prometheus reads."""

OTHER: Final = "other"
OUTCOMES: Final = frozenset(o.value for o in Outcome)
REQUEST_KINDS: Final = ("csr", "pcr")
"""The ``kind`` label of per-request metrics: CertificateSigningRequest, PodCertificateRequest."""
SIGNING_FAILURE_REASONS: Final = frozenset(
    {
        "InvalidRequest",  # spec.request unreadable, not PKCS#10, bad self-signature
        "UnknownUsage",
        "ForbiddenUsage",
        "InvalidUsage",
        "UnsupportedKey",  # below the key floor: not RSA, ECDSA or Ed25519
        "WeakKey",  # below the key floor: short RSA, e != 65537, another curve
        "NoUsages",
        "NoIdentity",
        "CAUnavailable",  # no usable CA loaded (Secret missing or invalid)
        "CAExpired",
        "CANotYetValid",
        "SigningFailed",
        "CertificateTooLarge",  # the API refused to store the certificate (413 / etcd)
        # PodCertificateRequests only (signer.pki.podcerts):
        "UnsupportedKeyType",  # below the key floor or not a pod key type (PCR Denied)
        "InvalidKey",  # the key fields cannot be read (PCR Denied)
        "InvalidDNSName",  # a DNS name the apiserver would reject
        "LifetimeTooShort",  # the smallest lifetime cap is under the 1 h minimum
        "CAExpiresSoon",  # the CA expires within the 1 h minimum (retried)
    }
)
UNREADABLE_REASONS: Final = frozenset({"Malformed", "TooLarge", "TooManyNames"})
OTHER_REASON: Final = "Other"
API_ERROR_KINDS: Final = frozenset(
    {
        "not_found",
        "conflict",
        "gone",
        "forbidden",
        "invalid",
        "server",
        "timeout",
        "too_large",
        "transport",
        OTHER,
    }
)
API_VERBS: Final = frozenset({"get", "list", "watch", "create", "update", "patch", "delete"})
RELOAD_RESULTS: Final = ("success", "failure")
LATENCY_BUCKETS: Final = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
MAX_POLICY_LABELS: Final = 100
"""Guard against a policy directory that churns names: past this, ``policy="other"``."""

_SCOPE = "signer"


def _bounded(value: str, allowed: Iterable[str], overflow: str = OTHER) -> str:
    return value if value in allowed else overflow


def _traces_url(endpoint: str) -> str:
    """An endpoint given without a path gets OTLP/HTTP's ``/v1/traces``.

    The exporter uses an explicitly passed endpoint verbatim (it appends the
    path only to the OTEL_EXPORTER_OTLP_ENDPOINT variable), and operators
    usually configure the collector's base URL.
    """
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        parts = parts._replace(path="/v1/traces")
    return urlunsplit(parts)


class Telemetry:
    """The controller's meters and tracer; build one with `Telemetry.create()`."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        meter_provider: MeterProvider,
        tracer_provider: TracerProvider | None,
        signer_names: Sequence[str],
    ) -> None:
        """Wire instruments onto providers built by `create()` (use that instead)."""
        self._registry = registry
        self._meter_provider = meter_provider
        self._tracer_provider = tracer_provider
        self._signers = frozenset(signer_names)
        self._policies: set[str] = set()
        self._closed = False
        self._tracer: trace.Tracer = (
            tracer_provider.get_tracer(_SCOPE, __version__)
            if tracer_provider is not None
            else trace.NoOpTracer()
        )

        meter = meter_provider.get_meter(_SCOPE, __version__)
        self._decisions = meter.create_counter(
            "csr_signer_decisions",
            description="Policy decisions made, by request kind, outcome and policy.",
        )
        self._unreadable = meter.create_counter(
            "csr_signer_requests_unreadable",
            description="Requests refused before policy because they could not be read safely.",
        )
        self._issued = meter.create_counter(
            "csr_signer_certificates_issued",
            description="Certificates issued, by signer and request kind.",
        )
        self._signing_failures = meter.create_counter(
            "csr_signer_signing_failures",
            description="Requests the issuer refused, by request kind and reason.",
        )
        self._latency = meter.create_histogram(
            "csr_signer_issue_latency_seconds",
            unit="s",
            description="Seconds from request creation to certificate issued.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        # Observed at collection time: the queue changes on every watch event, and a
        # synchronous gauge's SDK path per change showed up at 3% of CPU in a profile.
        self._queue_depth_now = 0
        meter.create_observable_gauge(
            "csr_signer_queue_depth",
            callbacks=[self._observe_queue_depth],
            description="CSR keys waiting in the work queue.",
        )
        self._concurrency_now = 0
        meter.create_observable_gauge(
            "csr_signer_concurrency_limit",
            callbacks=[self._observe_concurrency],
            description="Reconciles allowed at once (adaptive unless --workers is set).",
        )
        self._api_errors = meter.create_counter(
            "csr_signer_api_errors", description="Failed Kubernetes API calls, by kind and verb."
        )
        self._ca_not_after = meter.create_gauge(
            "csr_signer_ca_not_after_timestamp_seconds",
            unit="s",
            description="NotAfter of each signer's CA certificate (Unix time).",
        )
        self._policy_reloads = meter.create_counter(
            "csr_signer_policy_reloads", description="Policy (re)loads, by result."
        )
        self._policies_valid = meter.create_gauge(
            "csr_signer_policies_valid", description="1 if the last policy load succeeded."
        )
        self._leader = meter.create_gauge(
            "csr_signer_leader", description="1 while this process is the leader."
        )

        # Start known series at zero, so rate() and absent() work from the first scrape.
        for signer in signer_names:
            for kind in REQUEST_KINDS:
                self._issued.add(0, {"signer": signer, "kind": kind})
        for result in RELOAD_RESULTS:
            self._policy_reloads.add(0, {"result": result})
        self.set_queue_depth(0)
        self.set_leader(False)

    @classmethod
    def create(
        cls,
        *,
        signer_names: Iterable[str] = (),
        otlp_endpoint: str | None = None,
        service_name: str = "csr-signer",
        span_exporter: SpanExporter | None = None,
    ) -> Telemetry:
        """Build providers that belong to this instance only.

        `signer_names` are the allowed values of the ``signer`` label.
        `otlp_endpoint` turns on trace export over OTLP/HTTP (batched, off the
        event loop's thread); `span_exporter` is a seam for tests (spans are
        exported synchronously). With neither, the tracer is OpenTelemetry's
        no-op tracer, so instrumented code costs next to nothing.

        The resource is built explicitly, not with `Resource.create()`, which
        would read OTEL_* variables: configuration comes from `signer.config`.
        """
        resource = Resource({SERVICE_NAME: service_name, "service.version": __version__})
        registry = CollectorRegistry(auto_describe=False)
        reader = PrometheusMetricReader(
            disable_target_info=True, scope_info_enabled=False, registry=registry
        )
        meter_provider = MeterProvider(
            metric_readers=[reader], resource=resource, shutdown_on_exit=False
        )
        processors: list[SpanProcessor] = []
        if otlp_endpoint is not None:
            # Imported only when used: it pulls in requests and protobuf.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            exporter = OTLPSpanExporter(endpoint=_traces_url(otlp_endpoint))
            processors.append(BatchSpanProcessor(exporter))
        if span_exporter is not None:
            processors.append(SimpleSpanProcessor(span_exporter))
        tracer_provider = None
        if processors:
            tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
            for processor in processors:
                tracer_provider.add_span_processor(processor)
        return cls(
            registry=registry,
            meter_provider=meter_provider,
            tracer_provider=tracer_provider,
            signer_names=tuple(dict.fromkeys(signer_names)),
        )

    # -- recording ---------------------------------------------------------------

    def _signer(self, signer: str) -> str:
        return _bounded(signer, self._signers)

    @staticmethod
    def _kind(kind: str) -> str:
        return _bounded(kind, REQUEST_KINDS)

    def _policy(self, policy: str | None) -> str:
        if not policy:
            return ""
        if policy not in self._policies and len(self._policies) < MAX_POLICY_LABELS:
            self._policies.add(policy)
        return _bounded(policy, self._policies)

    def decision(self, signer: str, outcome: Outcome, policy: str | None, *, kind: str) -> None:
        """Count one policy decision; `policy` is None (or "") when none decided."""
        self._decisions.add(
            1,
            {
                "signer": self._signer(signer),
                "kind": self._kind(kind),
                "outcome": _bounded(str(outcome), OUTCOMES),
                "policy": self._policy(policy),
            },
        )

    def issued(self, signer: str, *, kind: str) -> None:
        """Count one certificate issued (CSR status.certificate, PCR Issued status)."""
        self._issued.add(1, {"signer": self._signer(signer), "kind": self._kind(kind)})

    def request_unreadable(self, signer: str, reason: str) -> None:
        """Count one CSR refused before policy (`UNREADABLE_REASONS`); CSRs only."""
        self._unreadable.add(
            1,
            {
                "signer": self._signer(signer),
                "reason": _bounded(reason, UNREADABLE_REASONS, OTHER_REASON),
            },
        )

    def signing_failed(self, signer: str, reason: str, *, kind: str) -> None:
        """Count one request the issuer refused (its reason), or one attempt our CA blocked."""
        self._signing_failures.add(
            1,
            {
                "signer": self._signer(signer),
                "kind": self._kind(kind),
                "reason": _bounded(reason, SIGNING_FAILURE_REASONS, OTHER_REASON),
            },
        )

    def observe_latency(self, signer: str, seconds: float, *, kind: str) -> None:
        """Record creation-to-issued time; negative values (clock skew) count as 0."""
        self._latency.record(
            max(0.0, seconds), {"signer": self._signer(signer), "kind": self._kind(kind)}
        )

    def set_concurrency_limit(self, limit: int) -> None:
        """Reconciles allowed at once (`signer.reactor.concurrency`), read at collection."""
        self._concurrency_now = limit

    def _observe_concurrency(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self._concurrency_now)]

    def set_queue_depth(self, depth: int) -> None:
        """Cheap: the value is read when metrics are collected (`_observe_queue_depth`)."""
        self._queue_depth_now = depth

    def _observe_queue_depth(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self._queue_depth_now)]

    def api_error(self, kind: str, verb: str) -> None:
        """Count one failed API call; `kind` is `signer.kube.errors.ApiError.kind`."""
        self._api_errors.add(
            1, {"kind": _bounded(kind, API_ERROR_KINDS), "verb": _bounded(verb, API_VERBS)}
        )

    def set_ca_not_after(self, signer: str, unix_seconds: float) -> None:
        """NotAfter of the CA that signs for `signer` (each signer has its own gauge)."""
        self._ca_not_after.set(unix_seconds, {"signer": self._signer(signer)})

    def policy_reload(self, ok: bool) -> None:
        """Count one policy load attempt and publish whether policies are now valid."""
        self._policy_reloads.add(1, {"result": "success" if ok else "failure"})
        self._policies_valid.set(1 if ok else 0)

    def set_leader(self, leader: bool) -> None:
        self._leader.set(1 if leader else 0)

    # -- export ----------------------------------------------------------------

    @property
    def tracer(self) -> trace.Tracer:
        """This instance's tracer; spans go to the configured exporters, if any."""
        return self._tracer

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of this instance's metrics, and its content type."""
        return generate_latest(self._registry), CONTENT_TYPE

    def shutdown(self) -> None:
        """Flush spans, detach the Prometheus collector. Safe to call twice.

        Blocking: with an OTLP endpoint it may wait for the exporter's timeout
        while flushing, so async code should call it via `asyncio.to_thread`.
        """
        if self._closed:
            return
        self._closed = True
        self._meter_provider.shutdown()
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
