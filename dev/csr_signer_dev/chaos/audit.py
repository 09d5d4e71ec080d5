"""The final audit: what the apiserver holds, against what policy and the CA allowed.

Pure: it takes the apiserver's own records (CSRs, PCRs and Events as JSON, listed once
the cluster is quiet) and what the harness changed when (`History` of the CA per signer
and of the policy version), and returns findings. Nothing here trusts the controllers'
logs or metrics.

A change is not seen at once (a watch delivers the new CA Secret, a poll picks the
policy files up, an apiserver stalled for 30 s delays both), so a value stays "in
force" for `grace` seconds after it was replaced: a decision inside that window may
follow either the old value or the new one, never anything else.

Categories (the last line of `csr-signer local chaos` counts distinct requests):
- lost: should have been issued (or decided) and was not, or was issued with a chain
  that does not verify against the CA in force when it was signed;
- double: two Approved (or Denied) conditions, or more than one Issued Event;
- out-of-policy: issued, approved or decided where policy says it must not be, or a
  certificate carrying a name its requester's policy does not allow.
An Issued request with no Issued Event is reported apart: Events are best effort.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from signer.pki.podcerts import POD_BACKDATE
from signer.pki.signing import BACKDATE

from csr_signer_dev.chaos.requests import (
    DENY,
    EXPECT,
    ISSUE,
    REFUSE,
    UNTOUCHED,
    allowed_names,
    parse_name,
)

T = TypeVar("T")
LOST, DOUBLE, OUT_OF_POLICY = "lost", "double-issued", "out-of-policy"
RESOLUTION = 1.0
"""Seconds: API timestamps and NotBefore are cut to the second."""


@dataclass
class History(Generic[T]):
    """What was in force since when: (unix time, value), appended in time order."""

    entries: list[tuple[float, T]] = field(default_factory=list)

    def set(self, since: float, value: T) -> None:
        self.entries.append((since, value))

    def in_force(self, at: float, grace: float, *, within: float = 0.0) -> list[T]:
        """Values in force at some moment of [`at`, `at` + `within`], counting each for
        `grace` s past its replacement. `within` is a timestamp's resolution: the API's
        times and a certificate's NotBefore are whole seconds, cut, not rounded."""
        found: list[T] = []
        for i, (since, value) in enumerate(self.entries):
            until = self.entries[i + 1][0] + grace if i + 1 < len(self.entries) else float("inf")
            if (since <= at + within or i == 0) and at <= until and value not in found:
                found.append(value)
        return found


@dataclass(frozen=True, slots=True)
class Finding:
    category: str
    name: str
    detail: str


@dataclass
class AuditResult:
    requests: int = 0
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(kind, observed outcome) -> count."""
    findings: list[Finding] = field(default_factory=list)
    issued_at: list[float] = field(default_factory=list)
    """When each certificate was signed (unix time), for recovery times."""
    missing_events: list[str] = field(default_factory=list)

    def count(self, category: str) -> int:
        return len({f.name for f in self.findings if f.category == category})

    def add(self, category: str, name: str, detail: str) -> None:
        self.findings.append(Finding(category, name, detail))


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def issued_event_counts(events: Iterable[dict[str, Any]]) -> Counter[str]:
    """Issued Events per involved object UID."""
    counts: Counter[str] = Counter()
    for event in events:
        if event.get("reason") == "Issued":
            counts[str((event.get("involvedObject") or {}).get("uid"))] += 1
    return counts


@dataclass(frozen=True)
class Context:
    ca: dict[str, History[bytes]]
    """Signer name -> the CA certificates (PEM) put in force for it."""
    policy: History[str]
    events: Counter[str]
    grace: float


def audit(
    csrs: Iterable[dict[str, Any]],
    pcrs: Iterable[dict[str, Any]],
    events: Iterable[dict[str, Any]],
    *,
    ca: dict[str, History[bytes]],
    policy: History[str],
    grace: float,
) -> AuditResult:
    ctx = Context(ca, policy, issued_event_counts(events), grace)
    result = AuditResult()
    for csr in csrs:
        _audit_csr(csr, ctx, result)
    for pcr in pcrs:
        _audit_pcr(pcr, ctx, result)
    return result


def _expected(kind: str, decided: float | None, ctx: Context) -> set[str]:
    at = decided if decided is not None else float("inf")
    versions = ctx.policy.in_force(at, ctx.grace, within=RESOLUTION) or ["v1"]
    return {EXPECT[kind][v] for v in versions}


def _audit_csr(csr: dict[str, Any], ctx: Context, result: AuditResult) -> None:
    meta, spec, status = csr["metadata"], csr.get("spec") or {}, csr.get("status") or {}
    named = parse_name(meta["name"])
    if named is None:
        return
    name = meta["name"]
    result.requests += 1
    conditions = [c for c in status.get("conditions") or [] if c.get("status") == "True"]
    types = Counter(str(c.get("type")) for c in conditions)
    decided_at = next(
        (parse_time(c.get("lastUpdateTime")) for c in conditions if c["type"] != "Failed"), None
    )
    expected = _expected(named.kind, decided_at, ctx)
    if types["Approved"] > 1 or types["Denied"] > 1:
        result.add(DOUBLE, name, f"conditions {sorted(types.elements())}")
    certificate = status.get("certificate")
    if certificate:
        observed = ISSUE
    elif types["Failed"]:
        observed = "failed"
    elif types["Denied"]:
        observed = DENY
    elif types["Approved"]:
        observed = "approved-unsigned"
    else:
        observed = UNTOUCHED
    result.outcomes[(named.kind, observed)] += 1
    why = f"{named.kind}: expected {'/'.join(sorted(expected))}, got {observed}"
    if types["Approved"] and ISSUE not in expected:
        result.add(OUT_OF_POLICY, name, f"{why} (Approved)")
    if observed == ISSUE:
        chain = x509.load_pem_x509_certificates(base64.b64decode(str(certificate)))
        signed_at = chain[0].not_valid_before_utc.timestamp() + BACKDATE.total_seconds()
        signer = str(spec.get("signerName", ""))
        _check_issued(name, chain[0], signed_at, signer, named.namespace, ctx, result)
        _check_events(name, meta.get("uid"), ctx, result)
    elif (
        (observed == DENY and expected & {DENY, REFUSE})
        or (observed == "failed" and REFUSE in expected)
    ) or (observed == UNTOUCHED and UNTOUCHED in expected):
        return
    elif ISSUE in expected or observed == UNTOUCHED:
        result.add(LOST, name, why)
    elif not types["Approved"]:
        result.add(OUT_OF_POLICY, name, why)


def _audit_pcr(pcr: dict[str, Any], ctx: Context, result: AuditResult) -> None:
    meta, spec, status = pcr["metadata"], pcr.get("spec") or {}, pcr.get("status") or {}
    named = parse_name(meta["name"])
    if named is None:
        return
    name = f"{meta.get('namespace')}/{meta['name']}"
    result.requests += 1
    conditions = [c for c in status.get("conditions") or [] if c.get("status") == "True"]
    types = Counter(str(c.get("type")) for c in conditions)
    if sum(types.values()) > 1:
        result.add(DOUBLE, name, f"conditions {sorted(types.elements())}")
    chain_pem = status.get("certificateChain")
    observed = ISSUE if chain_pem else (next(iter(types), UNTOUCHED).lower())
    result.outcomes[(named.kind, observed)] += 1
    if not chain_pem:
        result.add(LOST, name, f"pcr: expected issue, got {observed}")
        return
    issued = next((c for c in conditions if c.get("type") == "Issued"), None)
    signed_at = parse_time((issued or {}).get("lastTransitionTime"))
    chain = x509.load_pem_x509_certificates(chain_pem.encode())
    if signed_at is None:
        signed_at = chain[0].not_valid_before_utc.timestamp() + POD_BACKDATE.total_seconds()
    signer = str(spec.get("signerName", ""))
    _check_issued(name, chain[0], signed_at, signer, named.namespace, ctx, result)
    _check_events(name, meta.get("uid"), ctx, result)


def _check_issued(  # noqa: PLR0917 - one call per request kind, all values needed
    name: str,
    leaf: x509.Certificate,
    signed_at: float,
    signer: str,
    namespace: str,
    ctx: Context,
    result: AuditResult,
) -> None:
    """The leaf's names are allowed, and it verifies against a CA in force when signed."""
    result.issued_at.append(signed_at)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = set(san.get_values_for_type(x509.DNSName))
        others = len(list(san)) - len(names)
    except x509.ExtensionNotFound:
        names, others = set(), 0
    versions = ctx.policy.in_force(signed_at, ctx.grace, within=RESOLUTION) or ["v1"]
    allowed = frozenset().union(*(allowed_names(namespace, v) for v in versions))
    if others or not names or not names <= allowed:
        result.add(OUT_OF_POLICY, name, f"names {sorted(names)} (+{others} other) not allowed")
    history = ctx.ca.get(signer)
    candidates = history.in_force(signed_at, ctx.grace, within=RESOLUTION) if history else []
    if any(_issued_by(leaf, pem) for pem in candidates):
        return
    when = dt.datetime.fromtimestamp(signed_at, dt.UTC).strftime("%H:%M:%S")
    result.add(
        LOST,
        name,
        f"issuer {leaf.issuer.rfc4514_string()}, signed {when}: does not verify against "
        f"the {len(candidates)} CA(s) in force then",
    )


def _issued_by(leaf: x509.Certificate, ca_pem: bytes) -> bool:
    try:
        leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_events(name: str, uid: str | None, ctx: Context, result: AuditResult) -> None:
    count = ctx.events.get(str(uid), 0)
    if count > 1:
        result.add(DOUBLE, name, f"{count} Issued Events")
    elif count == 0:
        result.missing_events.append(name)
