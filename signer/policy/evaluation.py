"""evaluate(policy, facts) -> every violation, with its field. Pure.

A violation is a value: evaluation never stops at the first problem, so a
denied requester (and a reviewer running `policy check`) sees everything that
is wrong at once. Violations come out in a fixed order, that of `FIELDS`, and
within a field in the order the request lists its values, so the same request
always produces the same message.

Values taken from the request are quoted JSON-style (control characters and
non-ASCII escaped) and truncated, so a hostile CSR cannot forge extra lines or
flood a condition message. Key material is never quoted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from signer.models import CsrRequest, CsrView, KeyInfo, Requester, Usage
from signer.pki.keys import RSA_EXPONENT
from signer.policy.celrules import Activation, Variables, evaluate_rules
from signer.policy.patterns import Bindings, Pattern
from signer.policy.schema import (
    CURVES,
    DEFAULT_MAX_DNS_NAMES,
    EcdsaKeys,
    KeyRule,
    Policy,
    RsaKeys,
)

F_DNS = "spec.request dnsNames"
F_IPS = "spec.request ipAddresses"
F_URIS = "spec.request uris"
F_EMAILS = "spec.request emailAddresses"
F_OTHER_SANS = "spec.request subjectAltNames"
F_SUBJECT = "spec.request subject"
F_CA = "spec.request basicConstraints"
F_KEY = "spec.request publicKey"
F_USAGES = "spec.usages"
F_CEL = "celRules"
FIELDS = (F_DNS, F_IPS, F_URIS, F_EMAILS, F_OTHER_SANS, F_SUBJECT, F_CA, F_KEY, F_USAGES, F_CEL)
"""The order in which violations are reported."""
_MAX_QUOTED = 256
MAX_VIOLATIONS_PER_FIELD = 20
"""Evaluation of a field stops after this many violations (Decision.summary shows 20)."""
_KNOWN_USAGES = frozenset(u.value for u in Usage)
_CURVE_LABELS = {v: k for k, v in CURVES.items()}
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Violation:
    policy: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.policy}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """Everything evaluation looks at, computed once per request, not per policy."""

    csr: CsrView
    usages: tuple[str, ...]
    bindings: Bindings
    requester: str
    """How reasons name the requester: `requester namespace "ns"` or `requester "user"`."""
    activation: Activation
    """The request as `celRules` see it, converted to CEL at most once."""
    max_dns_names: int = DEFAULT_MAX_DNS_NAMES
    """The signer's default for policies that set no `allowed.maxDnsNames`."""

    @classmethod
    def of(
        cls,
        request: CsrRequest,
        csr: CsrView,
        *,
        cluster_domain: str,
        max_dns_names: int = DEFAULT_MAX_DNS_NAMES,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> RequestFacts:
        bindings, who = bind(request.requester, cluster_domain=cluster_domain)
        activation = _csr_activation(request, csr, namespace_labels)
        return cls(
            csr=csr,
            usages=request.usages,
            bindings=bindings,
            requester=who,
            activation=activation,
            max_dns_names=max_dns_names,
        )


def _csr_activation(
    request: CsrRequest, csr: CsrView, namespace_labels: Mapping[str, str] | None
) -> Activation:
    """A CSR's variables for `celRules`, not even gathered until a rule runs."""

    def make() -> Variables:
        return Activation.of(
            kind="CSR",
            requester=request.requester,
            key=csr.key,
            dns_names=csr.dns_names,
            ip_addresses=csr.ip_addresses,
            uris=csr.uris,
            emails=csr.emails,
            common_name=csr.common_name,
            organizations=tuple(a.value for a in csr.subject if a.name == "O"),
            usages=request.usages,
            expiration_seconds=request.expiration_seconds,
            namespace_labels=namespace_labels,
        ).make()

    return Activation(make)


def bind(requester: Requester, *, cluster_domain: str) -> tuple[Bindings, str]:
    """The bound placeholders' values for `requester`, and how reasons name it.

    Only a well-formed ServiceAccount binds `{namespace}` and `{serviceaccount}`;
    reasons then name its namespace (`requester namespace "ns"`), the value those
    placeholders are about, and otherwise the username.
    """
    sa = requester.serviceaccount
    if sa is not None:
        return (
            Bindings(sa.namespace, sa.name, cluster_domain),
            f"requester namespace {quote(sa.namespace)}",
        )
    return Bindings(None, None, cluster_domain), f"requester {quote(requester.username)}"


def quote(value: str) -> str:
    """A request-supplied value, safe to put in a one-line message."""
    if len(value) > _MAX_QUOTED:
        return json.dumps(value[:_MAX_QUOTED]) + "..."
    return json.dumps(value)


def evaluate(policy: Policy, facts: RequestFacts) -> list[Violation]:
    """Every way the request does not conform to `policy`; empty means approve."""
    out: list[Violation] = []
    name = policy.name
    allowed = policy.allowed
    csr = facts.csr
    b = facts.bindings

    def add(field: str, message: str) -> None:
        out.append(Violation(name, field, message))

    def names(field: str, values: tuple[T, ...], ok: Callable[[T], bool], why: str) -> None:
        out.extend(not_allowed(name, field, values, ok, why))

    limit = allowed.max_dns_names or facts.max_dns_names
    found = len(set(csr.dns_names))
    if found > limit:
        add(F_DNS, too_many_dns_names(found, limit))
    denied_for = f"is not allowed for {facts.requester}"
    names(F_DNS, csr.dns_names, lambda d: dns_name_allowed(policy, d, b), denied_for)
    if found < policy.required.min_dns_names:
        n = policy.required.min_dns_names
        add(F_DNS, f"at least {n} DNS name{'s' if n > 1 else ''} required, found {found}")
    names(
        F_IPS,
        csr.ip_addresses,
        lambda ip: any(ip in n for n in allowed.ip_ranges),
        "is not in an allowed range",
    )
    names(F_URIS, csr.uris, lambda u: uri_allowed(policy, u, b), denied_for)
    names(F_EMAILS, csr.emails, lambda e: _any_match(allowed.emails, e, b), denied_for)
    names(
        F_OTHER_SANS, csr.other_sans, lambda _o: False, "is not a kind of name this signer issues"
    )

    for message in _subject(policy, facts):
        add(F_SUBJECT, message)
    if csr.requests_ca:
        add(F_CA, "requests a CA certificate (CA:TRUE); CA certificates are never issued")
    key_problem = key_not_allowed(policy, csr.key)
    if key_problem is not None:
        add(F_KEY, key_problem)

    for message in _usages(policy, facts.usages):
        add(F_USAGES, message)
    out.extend(cel_violations(policy, facts.activation))
    return out


def cel_violations(policy: Policy, activation: Activation) -> list[Violation]:
    """The policy's `celRules` that are not true, in order; shared by CSRs and PCRs."""
    return [
        Violation(policy.name, f"{F_CEL}[{index}]", message)
        for index, message in evaluate_rules(policy.cel_rules, activation)
    ]


def not_allowed(
    policy: str, field: str, values: tuple[T, ...], ok: Callable[[T], bool], why: str
) -> list[Violation]:
    """One violation per value not `ok` (a value listed twice counts once), at most
    `MAX_VIOLATIONS_PER_FIELD` and then one saying there are more: a hostile request
    with 100,000 names must not cost 100,000 evaluations and messages; the first ones
    are enough to act on. Shared by CSR SANs and PodCertificateRequest annotations,
    so both are judged and worded alike."""
    out: list[Violation] = []
    for value in _unique(values):
        if ok(value):
            continue
        if len(out) == MAX_VIOLATIONS_PER_FIELD:
            more = f"more values are not allowed (only the first {len(out)} are listed)"
            out.append(Violation(policy, field, more))
            break
        out.append(Violation(policy, field, f"{quote(str(value))} {why}"))
    return out


def too_many_dns_names(found: int, limit: int) -> str:
    """The maxDnsNames violation, checked before the names one by one (they may be many)."""
    return f"{found} DNS names requested, at most {limit} allowed"


def dns_name_allowed(policy: Policy, name: str, bindings: Bindings) -> bool:
    """Whether `allowed.dnsNames` admits `name` for the requester (`bindings`)."""
    return len(name) <= 253 and _any_match(policy.allowed.dns_names, name, bindings)


def uri_allowed(policy: Policy, uri: str, bindings: Bindings) -> bool:
    """Whether `allowed.uris` admits `uri` for the requester (`bindings`)."""
    return _any_match(policy.allowed.uris, uri, bindings)


def key_not_allowed(policy: Policy, key: KeyInfo) -> str | None:
    """Why `allowed.keys` refuses `key` (by type and size only, never key material)."""
    rules = policy.allowed.keys
    if any(_key_allowed(rule, key) for rule in rules):
        return None
    return f"{_key_label(key)} is not allowed (allowed: {_describe(rules)})"


def _subject(policy: Policy, facts: RequestFacts) -> list[str]:
    rules = policy.allowed.subject
    out: list[str] = []
    cns: list[str] = []
    for attr in facts.csr.subject:
        if attr.name == "CN":
            cns.append(attr.value)
        elif attr.name == "O":
            if not _any_match(rules.organizations, attr.value, facts.bindings):
                out.append(f"O {quote(attr.value)} is not allowed")
        else:
            out.append(f"attribute {attr.name} is not allowed")
    if len(cns) > 1:
        out.append(f"{len(cns)} CN attributes; at most one is allowed")
    if cns:
        cn = cns[0]
        if rules.common_name == "Empty":
            out.append(f"CN {quote(cn)} is not allowed: CN must be empty")
        elif cn not in facts.csr.dns_names:
            must = "empty or one" if rules.common_name == "EmptyOrDNSName" else "one"
            out.append(f"CN {quote(cn)} must be {must} of the requested DNS names")
    elif rules.common_name == "DNSName":
        out.append("CN is required and must be one of the requested DNS names")
    return out


def _usages(policy: Policy, requested: tuple[str, ...]) -> list[str]:
    allowed = policy.allowed.usages
    required = policy.required
    out: list[str] = []
    for usage in _unique(requested):
        if usage not in _KNOWN_USAGES:
            out.append(f"{quote(usage)} is not a known usage")
        elif usage not in allowed:
            out.append(f"{quote(usage)} is not allowed")
    out.extend(f'"{u.value}" is required' for u in required.usages if u not in requested)
    if required.any_usage_of and not any(u in requested for u in required.any_usage_of):
        options = ", ".join(f'"{u.value}"' for u in required.any_usage_of)
        out.append(f"one of {options} is required")
    return out


def _key_allowed(rule: KeyRule, key: KeyInfo) -> bool:
    if isinstance(rule, RsaKeys):
        return (
            key.algorithm == "rsa"
            and key.size >= rule.min_size
            and (rule.max_size is None or key.size <= rule.max_size)
            and key.exponent == rule.public_exponent
        )
    if isinstance(rule, EcdsaKeys):
        return key.algorithm == "ecdsa" and any(CURVES[c] == key.curve for c in rule.curves)
    return key.algorithm == "ed25519"


def _key_label(key: KeyInfo) -> str:
    if key.algorithm == "ecdsa" and key.curve in _CURVE_LABELS:
        return f"ECDSA {_CURVE_LABELS[key.curve]}"
    if key.algorithm == "rsa" and key.exponent != RSA_EXPONENT:
        return f"{key.describe()} with e={key.exponent}"
    return key.describe()


def _describe(rules: tuple[KeyRule, ...]) -> str:
    parts: list[str] = []
    for rule in rules:
        if isinstance(rule, RsaKeys):
            upper = f" and <= {rule.max_size}" if rule.max_size else ""
            parts.append(f"RSA >= {rule.min_size}{upper} bits")
        elif isinstance(rule, EcdsaKeys):
            parts.append(f"ECDSA {'/'.join(rule.curves)}")
        else:
            parts.append("Ed25519")
    return ", ".join(parts)


def _any_match(patterns: tuple[Pattern, ...], value: str, bindings: Bindings) -> bool:
    return any(p.matches(value, bindings) for p in patterns)


def _unique(values: tuple[T, ...]) -> list[T]:
    return list(dict.fromkeys(values)) if len(values) > 1 else list(values)
