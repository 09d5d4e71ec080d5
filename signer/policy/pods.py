"""decide_pod(): from a PodCertificateRequest to approve (and what to issue) or deny. Pure.

A PodCertificateRequest (KEP-4317) is created by the kubelet for a pod's
projected `podCertificate` volume. Nobody approves it by hand and the kubelet
gives up on a denied one for good, so a decision here is final: "no policy
applies" is a denial, never Pending, and every denial must say what to change.

The order of questions is the contract (docs/policies.md, "PodCertificateRequests"):

1. Does any policy govern the signer name? No: abstain. The caller leaves the
   request to whoever signs for that name.
2. Are the unverified annotations all ones we understand (`ANNOTATIONS`)? No:
   deny (`InvalidUnverifiedUserAnnotations`). The KEP asks signers to refuse keys
   they do not understand: a pod asking for something we would silently ignore
   would get a certificate other than the one it asked for.
3. Which policies apply to the pod's ServiceAccount (`PodRequest.requester`)
   *and* have a `podCertificate` section? None: deny (`NoPolicy`).
4. Is the key above the signer's key floor? No: deny (`UnsupportedKeyType`).
   No policy could approve it, and issuance would refuse it anyway.
5. Evaluate each of those policies, in load order. A policy grants the names
   its `podCertificate` patterns render to for this pod, plus the names the pod
   asks for in its annotations that `allowed` admits (checked exactly as CSR
   SANs are, by `signer.policy.evaluation`); the key must match `allowed.keys`.
   The first policy with no violation approves, with a `PodGrant`; otherwise
   deny with every violation of every policy, in that order.

Reasons keep the CSR format `<policy>: <field>: <message>`, values quoted by
`evaluation.quote`. A reason that on its own explains a denial carries the
condition reason as a prefix (`NoPolicy: ...`, `UnsupportedKeyType: ...`,
`InvalidUnverifiedUserAnnotations: ...`); `denied_reason` turns a decision's
reasons into the Denied condition's reason, `Decision.summary()` is its message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from signer.models import Decision, KeyInfo, Outcome, PodGrant, PodRequest
from signer.pki.keys import below_floor
from signer.policy.celrules import Activation
from signer.policy.decide import DEFAULT_CLUSTER_DOMAIN
from signer.policy.evaluation import (
    MAX_VIOLATIONS_PER_FIELD,
    Violation,
    bind,
    cel_violations,
    dns_name_allowed,
    key_not_allowed,
    not_allowed,
    quote,
    too_many_dns_names,
    uri_allowed,
)
from signer.policy.matching import applicable
from signer.policy.patterns import Bindings
from signer.policy.policyset import PolicySet
from signer.policy.schema import Policy

DNS_NAMES_ANNOTATION: Final = "csr-signer.dev/dns-names"
"""Extra DNS names a pod asks for: comma-separated, each checked against allowed.dnsNames."""
URIS_ANNOTATION: Final = "csr-signer.dev/uris"
"""Extra URIs a pod asks for: comma-separated, each checked against allowed.uris."""
ANNOTATIONS: Final = (DNS_NAMES_ANNOTATION, URIS_ANNOTATION)
"""The only spec.unverifiedUserAnnotations keys this signer understands."""

NO_POLICY: Final = "NoPolicy"
UNSUPPORTED_KEY_TYPE: Final = "UnsupportedKeyType"
"""The KEP's reason: the kubelet surfaces it, and the pod's keyType is what to change."""
INVALID_ANNOTATIONS: Final = "InvalidUnverifiedUserAnnotations"
"""The KEP's reason for annotations the signer does not accept."""
POLICY_VIOLATION: Final = "PolicyViolation"
"""Denied for anything else, or for several kinds of reason at once."""
_PREFIXES: Final = frozenset({NO_POLICY, UNSUPPORTED_KEY_TYPE, INVALID_ANNOTATIONS})

F_ANNOTATIONS: Final = "spec.unverifiedUserAnnotations"
F_DNS: Final = f"{F_ANNOTATIONS} {DNS_NAMES_ANNOTATION}"
F_URIS: Final = f"{F_ANNOTATIONS} {URIS_ANNOTATION}"
F_GRANT: Final = "podCertificate"
F_KEY: Final = "publicKey"

KUBELET_KEY_TYPES: Final = (
    ("RSA3072", KeyInfo("rsa", 3072, exponent=65537)),
    ("RSA4096", KeyInfo("rsa", 4096, exponent=65537)),
    ("ECDSAP256", KeyInfo("ecdsa", 256, curve="secp256r1")),
    ("ECDSAP384", KeyInfo("ecdsa", 384, curve="secp384r1")),
    ("ECDSAP521", KeyInfo("ecdsa", 521, curve="secp521r1")),
    ("ED25519", KeyInfo("ed25519", 256)),
)
"""The pod volume's `keyType` values and the keys the kubelet makes for them: a key
denial names the ones a policy accepts, which is what the pod's author can change."""
_MAX_DESCRIBED = 20


def decide_pod(
    request: PodRequest,
    policies: PolicySet,
    *,
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN,
    namespace_labels: Mapping[str, str] | None = None,
) -> tuple[Decision, PodGrant | None]:
    """Approve (with the grant to issue), deny or abstain on `request`; never raises.

    The grant is not None exactly when the decision approves. `namespace_labels`
    are the labels of the pod's namespace, None when unknown.
    """
    signer_name = request.signer_name
    if not policies.governs(signer_name):
        return Decision(
            Outcome.ABSTAIN, reasons=(f"no policy governs signer {quote(signer_name)}",)
        ), None

    unknown = _unknown_annotations(request.annotations)
    if unknown:
        return Decision(Outcome.DENY, reasons=unknown), None

    requester = request.requester
    matching = applicable(policies, signer_name, requester, namespace_labels)
    candidates = tuple(p for p in matching if p.pod_certificate is not None)
    if not candidates:
        return Decision(Outcome.DENY, reasons=(_no_policy(signer_name, request, matching),)), None

    floor = below_floor(request.key)
    if floor is not None:
        return Decision(
            Outcome.DENY, reasons=(f"{UNSUPPORTED_KEY_TYPE}: {F_KEY}: {floor.message}",)
        ), None

    bindings, who = bind(requester, cluster_domain=cluster_domain)
    dns_names = _split(request.annotations.get(DNS_NAMES_ANNOTATION, ""))
    uris = _split(request.annotations.get(URIS_ANNOTATION, ""))
    facts = _PodFacts(
        request=request,
        bindings=bindings,
        requester=who,
        dns_names=dns_names,
        uris=uris,
        max_dns_names=policies.max_dns_names(signer_name),
        activation=Activation.of(
            kind="PCR",
            requester=requester,
            key=request.key,
            dns_names=dns_names,
            uris=uris,
            expiration_seconds=request.max_expiration_seconds,
            namespace_labels=namespace_labels,
        ),
    )
    reasons: list[str] = []
    for policy in candidates:
        grant, violations = _evaluate(policy, facts)
        if grant is not None:
            approved = f"{policy.name}: approved: issues {_describe(grant)}"
            return Decision(Outcome.APPROVE, policy=policy.name, reasons=(approved,)), grant
        reasons.extend(violations)
    return Decision(
        Outcome.DENY,
        # Naming one policy is only honest when exactly one was in play.
        policy=candidates[0].name if len(candidates) == 1 else None,
        reasons=tuple(reasons),
    ), None


def denied_reason(decision: Decision) -> str:
    """The CamelCase reason for the Denied condition of a `decide_pod` denial.

    A specific reason only when every reason has it: `UnsupportedKeyType` tells
    the pod's author to change keyType, which is misleading if a name was also
    refused. Anything else, or a mix, is `PolicyViolation`.
    """
    prefixes = {reason.partition(":")[0] for reason in decision.reasons}
    if len(prefixes) == 1:
        (prefix,) = prefixes
        if prefix in _PREFIXES:
            return prefix
    return POLICY_VIOLATION


@dataclass(frozen=True, slots=True)
class _PodFacts:
    """Everything evaluation looks at, computed once per request, not per policy."""

    request: PodRequest
    bindings: Bindings
    requester: str
    """How reasons name the requester, as for CSRs: `requester namespace "ns"`."""
    dns_names: tuple[str, ...]
    """Asked for in the DNS names annotation, each once, in order."""
    uris: tuple[str, ...]
    """Asked for in the URIs annotation, each once, in order."""
    max_dns_names: int
    """The signer's default for policies that set no `allowed.maxDnsNames`."""
    activation: Activation
    """The request as `celRules` see it: the names the pod asks for, its key."""


def _evaluate(policy: Policy, facts: _PodFacts) -> tuple[PodGrant | None, list[str]]:
    """The grant if `policy` approves, else its violations as reasons, in field order."""
    pod_certificate = policy.pod_certificate
    assert pod_certificate is not None
    request, bindings, who = facts.request, facts.bindings, facts.requester
    requested_dns, requested_uris = facts.dns_names, facts.uris
    granted_dns = _rendered(p.render(bindings) for p in pod_certificate.dns_names)
    granted_uris = _rendered(p.render(bindings) for p in pod_certificate.uris)
    reasons: list[str] = []
    name = policy.name
    if not (granted_dns or granted_uris or requested_dns or requested_uris):
        reasons.append(str(Violation(name, F_GRANT, _nothing_granted(request))))

    # A name the policy grants anyway is no violation, whatever `allowed` says:
    # asking for it changes nothing.
    denied_for = f"is not allowed for {who}"
    limit = policy.allowed.max_dns_names or facts.max_dns_names
    found = len(set(requested_dns))
    if found > limit:
        reasons.append(str(Violation(name, F_DNS, too_many_dns_names(found, limit))))
    dns = frozenset(granted_dns)
    for v in not_allowed(
        name,
        F_DNS,
        requested_dns,
        lambda d: d in dns or dns_name_allowed(policy, d, bindings),
        denied_for,
    ):
        reasons.append(str(v))
    uris = frozenset(granted_uris)
    for v in not_allowed(
        name,
        F_URIS,
        requested_uris,
        lambda u: u in uris or uri_allowed(policy, u, bindings),
        denied_for,
    ):
        reasons.append(str(v))

    key_problem = key_not_allowed(policy, request.key)
    if key_problem is not None:
        message = f"{key_problem}; {_key_types_hint(policy)}"
        reasons.append(f"{UNSUPPORTED_KEY_TYPE}: {Violation(name, F_KEY, message)}")
    reasons.extend(str(v) for v in cel_violations(policy, facts.activation))
    if reasons:
        return None, reasons
    return PodGrant(
        dns_names=_unique((*granted_dns, *requested_dns)),
        uris=_unique((*granted_uris, *requested_uris)),
        max_lifetime=policy.max_lifetime,
        policy=name,
    ), []


def _unknown_annotations(annotations: Mapping[str, str]) -> tuple[str, ...]:
    """One reason per key we do not understand, sorted, at most MAX_VIOLATIONS_PER_FIELD."""
    unknown = sorted(key for key in annotations if key not in ANNOTATIONS)
    understood = ", ".join(quote(key) for key in ANNOTATIONS)
    out = [
        f"{INVALID_ANNOTATIONS}: {F_ANNOTATIONS}: key {quote(key)} is not understood by "
        f"this signer (it understands {understood})"
        for key in unknown[:MAX_VIOLATIONS_PER_FIELD]
    ]
    if len(unknown) > MAX_VIOLATIONS_PER_FIELD:
        out.append(
            f"{INVALID_ANNOTATIONS}: {F_ANNOTATIONS}: {len(unknown) - MAX_VIOLATIONS_PER_FIELD} "
            "more keys are not understood"
        )
    return tuple(out)


def _no_policy(signer_name: str, request: PodRequest, matching: tuple[Policy, ...]) -> str:
    who = f"ServiceAccount {quote(request.service_account)} in namespace {quote(request.namespace)}"
    reason = (
        f"{NO_POLICY}: no policy for signer {quote(signer_name)} issues pod certificates to {who}"
    )
    if len(matching) == 1:
        reason += f" (policy {matching[0].name} applies, but has no podCertificate section)"
    elif matching:
        names = ", ".join(p.name for p in matching)
        reason += f" (policies {names} apply, but none has a podCertificate section)"
    return reason


def _nothing_granted(request: PodRequest) -> str:
    message = (
        "no name to issue: no pattern renders a name for ServiceAccount "
        f"{quote(request.service_account)} and the pod's annotations request none"
    )
    if "." in request.service_account:
        message += " ({serviceaccount} renders nothing for a ServiceAccount name with a dot)"
    return message


def _key_types_hint(policy: Policy) -> str:
    usable = [
        name
        for name, key in KUBELET_KEY_TYPES
        if below_floor(key) is None and key_not_allowed(policy, key) is None
    ]
    if not usable:
        return "no keyType a kubelet can generate is allowed"
    choice = usable[0] if len(usable) == 1 else f"one of {', '.join(usable)}"
    return f"set the pod's podCertificate keyType to {choice}"


def _split(value: str) -> tuple[str, ...]:
    """A comma-separated annotation value: items stripped, empty ones dropped, each once."""
    return _unique(item for raw in value.split(",") if (item := raw.strip()))


def _rendered(values: Iterable[str | None]) -> tuple[str, ...]:
    return _unique(v for v in values if v is not None)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _describe(grant: PodGrant) -> str:
    """The names to be issued, bounded like `CsrView.describe`, for the Issued message."""
    parts: list[str] = []
    for label, values in (("DNS", grant.dns_names), ("URI", grant.uris)):
        if values:
            shown = ", ".join(quote(v) for v in values[:_MAX_DESCRIBED])
            hidden = len(values) - _MAX_DESCRIBED
            parts.append(f"{label} [{shown}{f' and {hidden} more' if hidden > 0 else ''}]")
    return "; ".join(parts)
