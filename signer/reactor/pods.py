"""Reconcile one PodCertificateRequest: decide by policy, then issue, deny or fail, once.

A PCR has no human in the loop and no approval step: the signer writes exactly one
terminal status (Issued, Denied or Failed) through `/status`, and the apiserver
freezes the status after that. So the whole reconcile is one decision and one write,
guarded by the object's resourceVersion (a `Conflict` re-reads the PCR and decides
again on the fresh copy), followed by one Event. A PCR with a terminal condition is
final and never touched; one whose signer no policy governs is left alone (ABSTAIN).

Sharing with the CSR reactor, and why:
- the work queue and its workers are shared. Keys are ``pcr:<namespace>/<name>``; a
  CSR name is a DNS subdomain and cannot contain ``:``, so the keys never collide.
  A PCR's fairness lane is ``namespace:<ns>``, the lane a ServiceAccount's CSRs use:
  a tenant's pods and its CSRs wait in one lane, and a flood of either does not
  delay another tenant. One pool of `--workers` also bounds concurrent API writes
  for both kinds together;
- the cache is a second `CsrCache` instance with a PCR key and finality (its
  finished-UID memory and per-signer relists apply as they are). Its CSR-only parts
  (shedding spec.request, Pending notes) are never used for PCRs: a PCR is decided
  at once and never waits for a human;
- `Snapshot` and `Metrics` are the CSR reactor's, so policies, CAs and limits hot
  reload for both kinds together; every metric call says ``kind="pcr"`` (a bounded
  label, docs/metrics.md), so PCRs and CSRs are told apart in the same series.

Work is done inline on the event loop: a PCR's key material is at most 10 KiB
(the apiserver's limit), so reading the key and signing cost what a small CSR does.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from signer.kube.errors import ApiError, Conflict
from signer.models import Decision, Outcome, PodGrant, PodRequest, Refusal
from signer.pki.ca import CaBundle
from signer.pki.podcerts import (
    INVALID_KEY,
    UNSUPPORTED_KEY_TYPE,
    PodIssued,
    PodKey,
    denied_status,
    failed_status,
    issue_pod_certificate,
    pod_key,
    rfc3339,
    status_for,
)
from signer.policy.evaluation import quote
from signer.policy.pods import decide_pod, denied_reason
from signer.policy.policyset import PolicySet
from signer.reactor.cache import CsrCache
from signer.reactor.queueing import WorkQueue
from signer.reactor.reconcile import CA_REFUSALS, CA_UNAVAILABLE, Metrics, Snapshot, refresh

log = logging.getLogger(__name__)

RawPcr = dict[str, Any]
"""A certificates.k8s.io/v1beta1 PodCertificateRequest as JSON."""

KEY_PREFIX: Final = "pcr:"
TERMINAL: Final = frozenset({"Issued", "Denied", "Failed"})
KEY_REASONS: Final = frozenset({UNSUPPORTED_KEY_TYPE, INVALID_KEY})
"""Refusals about the key: Denied `UnsupportedKeyType`, which the kubelet shows on the pod
and which the pod's author fixes by changing the volume's keyType."""
RETRY_REASONS: Final = CA_REFUSALS | {"CAExpiresSoon"}
"""CA problems: a rotated CA fixes them, so the PCR waits (a Failed PCR fails its pod for
good: the kubelet never retries)."""
DEFAULT_MAX_EXPIRATION: Final = 86400


def pcr_key(raw: RawPcr) -> str:
    """The queue and cache key of a PCR; "" for an object without a name."""
    metadata = raw.get("metadata") or {}
    name = str(metadata.get("name") or "")
    if not name:
        return ""
    return f"{KEY_PREFIX}{metadata.get('namespace') or ''}/{name}"


def is_pcr_key(key: str) -> bool:
    return key.startswith(KEY_PREFIX)


def split_key(key: str) -> tuple[str, str]:
    """(namespace, name) of a `pcr_key`."""
    namespace, _, name = key[len(KEY_PREFIX) :].partition("/")
    return namespace, name


def pcr_lane(key: str) -> str:
    """The fairness lane of a PCR: its namespace, as for a ServiceAccount's CSRs."""
    return "namespace:" + split_key(key)[0]


def is_final_pcr(raw: RawPcr) -> bool:
    """Issued, Denied or Failed: the apiserver allows no further status change."""
    conditions = (raw.get("status") or {}).get("conditions") or []
    return any(
        isinstance(c, dict) and c.get("type") in TERMINAL and str(c.get("status")) == "True"
        for c in conditions
    )


def pod_request(raw: RawPcr, key: PodKey) -> PodRequest:
    """The policy input of a PCR: the fields the apiserver vouches for, and the annotations."""
    metadata = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    annotations = spec.get("unverifiedUserAnnotations") or {}
    expiration = spec.get("maxExpirationSeconds")
    return PodRequest(
        signer_name=str(spec.get("signerName") or ""),
        namespace=str(metadata.get("namespace") or ""),
        service_account=str(spec.get("serviceAccountName") or ""),
        pod_name=str(spec.get("podName") or ""),
        pod_uid=str(spec.get("podUID") or ""),
        node_name=str(spec.get("nodeName") or ""),
        key=key.info,
        annotations={str(k): str(v) for k, v in annotations.items()}
        if isinstance(annotations, dict)
        else {},
        max_expiration_seconds=expiration
        if isinstance(expiration, int) and not isinstance(expiration, bool)
        else DEFAULT_MAX_EXPIRATION,
    )


@dataclass(frozen=True, slots=True)
class PodVerdict:
    """What the policies make of a PCR before any CA is involved.

    The reconciler and `csr-signer policy check` both take it from `judge_pcr`, so the
    check says exactly what the controller would (in the controller's order: an ungoverned
    signer abstains before its key is read).
    """

    decision: Decision
    denied_reason: str | None = None
    """The Denied condition's reason when the decision denies."""
    message: str = ""
    """The Denied condition's message when the decision denies."""
    key: PodKey | None = None
    request: PodRequest | None = None
    grant: PodGrant | None = None
    """Not None exactly when the decision approves."""


def judge_pcr(
    raw: RawPcr,
    policies: PolicySet,
    *,
    cluster_domain: str,
    namespace_labels: Mapping[str, str] | None = None,
) -> PodVerdict:
    """Decide on a PCR (never raises): abstain, deny with the condition to write, or approve.

    `namespace_labels`: the PCR's namespace's labels (None: unknown, and then no
    `namespaceSelector` selects it)."""
    spec = raw.get("spec") or {}
    signer = str(spec.get("signerName") or "")
    if not policies.governs(signer):
        return PodVerdict(
            Decision(Outcome.ABSTAIN, reasons=(f"no policy governs signer {quote(signer)}",))
        )
    podkey = pod_key(spec)
    if isinstance(podkey, Refusal):
        return PodVerdict(
            Decision(Outcome.DENY, reasons=(f"{UNSUPPORTED_KEY_TYPE}: {podkey.message}",)),
            denied_reason=UNSUPPORTED_KEY_TYPE,
            message=podkey.message,
        )
    request = pod_request(raw, podkey)
    decision, grant = decide_pod(
        request, policies, cluster_domain=cluster_domain, namespace_labels=namespace_labels
    )
    if decision.outcome is Outcome.DENY or grant is None:
        return PodVerdict(
            decision,
            denied_reason=denied_reason(decision) if decision.outcome is Outcome.DENY else None,
            message=_summary(decision),
            key=podkey,
            request=request,
        )
    return PodVerdict(decision, key=podkey, request=request, grant=grant)


def issue_for(
    verdict: PodVerdict, ca: CaBundle, *, now: dt.datetime, signer_max: dt.timedelta
) -> PodIssued | Refusal:
    """Sign what an approving `verdict` grants (pure; `policy check` signs with a throwaway CA)."""
    if verdict.key is None or verdict.request is None or verdict.grant is None:
        raise ValueError("issue_for needs an approving verdict")
    return issue_pod_certificate(
        verdict.key,
        ca,
        dns_names=verdict.grant.dns_names,
        uris=verdict.grant.uris,
        pod_uid=verdict.request.pod_uid,
        now=now,
        max_expiration_seconds=verdict.request.max_expiration_seconds,
        max_lifetime=verdict.grant.max_lifetime,
        signer_max=signer_max,
    )


class PcrWriter(Protocol):
    """What the reconciler needs from the API (`signer.kube.pcrs.PcrClient`)."""

    async def get(self, namespace: str, name: str) -> RawPcr | None: ...
    async def write_status(self, raw: RawPcr, status: dict[str, Any]) -> RawPcr: ...
    async def event(self, raw: RawPcr, type_: str, reason: str, message: str) -> None: ...


class PodReconciler:
    """Reconciles `pcr:` keys from `cache`; the CSR `Reconciler`'s twin for PCRs."""

    def __init__(
        self,
        *,
        signer_names: frozenset[str],
        cache: CsrCache,
        queue: WorkQueue,
        writer: PcrWriter,
        snapshot: Callable[[], Snapshot],
        metrics: Metrics,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._signer_names = signer_names
        self._cache = cache
        self._queue = queue
        self._writer = writer
        self._snapshot = snapshot
        self._metrics = metrics
        self._clock = clock

    async def __call__(self, key: str) -> None:
        """Reconcile `key` from the cache; requeue with backoff on API errors."""
        raw = self._cache.get(key)
        if raw is None:
            self._queue.forget(key)
            return
        try:
            requeue = await self._reconcile(key, raw)
        except Conflict:
            self._metrics.api_error("conflict", "update")
            await self._refresh(key)
            return
        except ApiError as exc:
            self._metrics.api_error(exc.kind, "update")
            delay = self._queue.retry(key)
            log.warning("%s: %s; retrying in %.2fs", key, exc, delay, extra={"pcr": key})
            return
        if requeue:
            self._queue.retry(key)
        else:
            self._queue.forget(key)

    async def _refresh(self, key: str) -> None:
        """After a conflict: re-read the PCR and decide again on the fresh copy."""
        namespace, name = split_key(key)
        await refresh(
            key,
            read=lambda: self._writer.get(namespace, name),
            deleted={"metadata": {"namespace": namespace, "name": name}},
            cache=self._cache,
            queue=self._queue,
            metrics=self._metrics,
        )

    async def _reconcile(self, key: str, raw: RawPcr) -> bool:
        """Returns True when the PCR must be retried later (not ready to act)."""
        spec = raw.get("spec") or {}
        signer = str(spec.get("signerName") or "")
        if signer not in self._signer_names or is_final_pcr(raw):
            return False
        snapshot = self._snapshot()
        if snapshot.policies is None or not snapshot.namespaces_synced:
            return True  # policies or namespace labels not loaded yet: a denial is final
        namespace = str((raw.get("metadata") or {}).get("namespace") or "")
        verdict = judge_pcr(
            raw,
            snapshot.policies,
            cluster_domain=snapshot.cluster_domain,
            namespace_labels=snapshot.namespace_labels(namespace),
        )
        decision = verdict.decision
        if decision.outcome is Outcome.ABSTAIN:
            return False  # another signer (or a human's tool) may own it
        self._metrics.decision(signer, decision.outcome, decision.policy, kind="pcr")
        if verdict.grant is None:
            await self._deny(key, raw, verdict.denied_reason or "Denied", verdict.message)
            return False
        ca = snapshot.cas.get(signer)
        if ca is None:
            self._metrics.signing_failed(signer, CA_UNAVAILABLE, kind="pcr")
            return True  # no usable CA: readiness says so; retried with backoff
        issued = issue_for(verdict, ca, now=self._clock(), signer_max=snapshot.limits.max_duration)
        if isinstance(issued, Refusal):
            return await self._refuse(key, raw, signer, issued)
        await self._issue(key, raw, signer, issued, decision)
        return False

    async def _deny(self, key: str, raw: RawPcr, reason: str, message: str) -> None:
        raw = await self._writer.write_status(raw, denied_status(reason, message, self._clock()))
        self._cache.apply("MODIFIED", raw)
        await self._writer.event(raw, "Warning", "Denied", f"{reason}: {message}")
        log.info("%s: denied (%s): %s", key, reason, message, extra={"pcr": key})

    async def _refuse(self, key: str, raw: RawPcr, signer: str, refusal: Refusal) -> bool:
        """Issuance refused: wait for a CA, deny a key, or fail; True means retry."""
        self._metrics.signing_failed(signer, refusal.reason, kind="pcr")
        if refusal.reason in RETRY_REASONS:
            log.error("%s: cannot sign: %s", key, refusal.message, extra={"pcr": key})
            return True
        if refusal.reason in KEY_REASONS:
            await self._deny(key, raw, UNSUPPORTED_KEY_TYPE, refusal.message)
            return False
        status = failed_status(refusal.reason, refusal.message, self._clock())
        raw = await self._writer.write_status(raw, status)
        self._cache.apply("MODIFIED", raw)
        await self._writer.event(raw, "Warning", "SigningFailed", refusal.message)
        log.info("%s: signing refused: %s", key, refusal.message, extra={"pcr": key})
        return False

    async def _issue(
        self, key: str, raw: RawPcr, signer: str, issued: PodIssued, decision: Decision
    ) -> None:
        message = (
            f'issued by policy "{decision.policy}": serial {issued.serial_number:x}, '
            f"valid until {rfc3339(issued.not_after)}"
        )
        if issued.cut_to_ca:
            message += " (shortened to the CA's expiry: rotate the CA)"
        raw = await self._writer.write_status(raw, status_for(issued, message=message))
        self._cache.apply("MODIFIED", raw)
        self._metrics.issued(signer, kind="pcr")
        created = _created(raw)
        if created is not None:
            latency = (self._clock() - created).total_seconds()
            self._metrics.observe_latency(signer, max(latency, 0.0), kind="pcr")
        await self._writer.event(raw, "Normal", "Issued", message)
        log.info("%s: %s", key, message, extra={"pcr": key})


def _summary(decision: Decision) -> str:
    return decision.summary() or "denied by policy"


def _created(raw: RawPcr) -> dt.datetime | None:
    stamp = (raw.get("metadata") or {}).get("creationTimestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


__all__ = [
    "PcrWriter",
    "PodReconciler",
    "PodVerdict",
    "is_final_pcr",
    "is_pcr_key",
    "issue_for",
    "judge_pcr",
    "pcr_key",
    "pcr_lane",
    "pod_request",
    "split_key",
]
