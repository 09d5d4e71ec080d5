"""The policy file, as pydantic models: the contract with security teams.

Every model forbids unknown fields, so a misspelt key (`dnsName:`) is a load
error rather than a rule that silently does nothing. Patterns, usages, IP
ranges and durations are validated and compiled here, while the error can
still be tied to a field and a line; evaluation then never meets a bad value.

Defaults are the safe choice: nothing that is not listed under `allowed` may
be requested (no SANs, no organizations), keys must be strong, and the usages
are those of a TLS leaf certificate. See docs/policies.md for the reference.
"""

from __future__ import annotations

import re
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, model_validator
from pydantic.alias_generators import to_camel

from signer.durations import parse_duration
from signer.models import Usage
from signer.policy.celrules import (
    MAX_MESSAGE_LENGTH,
    MAX_RULES,
    CelError,
    CelProgram,
    compile_expression,
)
from signer.policy.patterns import Pattern, PatternError, PatternKind

_POLICY_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Kubernetes: a fully qualified domain name, "/", then a path-like name.
_SIGNER_NAME = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
DEFAULT_MAX_DNS_NAMES = 100
"""Per policy, unless the policy or its signer's settings say otherwise."""
MIN_LIFETIME = timedelta(minutes=10)
POD_MIN_LIFETIME = timedelta(hours=1)
"""The apiserver's floor for a PodCertificateRequest's certificate lifetime."""
"""The apiserver rejects spec.expirationSeconds below 600; a shorter cap is a typo."""
CA_USAGES = frozenset({Usage.CERT_SIGN, Usage.CRL_SIGN})
DEFAULT_USAGES = (
    Usage.DIGITAL_SIGNATURE,
    Usage.KEY_ENCIPHERMENT,
    Usage.SERVER_AUTH,
    Usage.CLIENT_AUTH,
)
CURVES = {"P-256": "secp256r1", "P-384": "secp384r1", "P-521": "secp521r1"}
"""Policy curve names -> the names `signer.pki.parsing` reports."""


def _pattern(kind: PatternKind) -> PlainValidator:
    def validate(value: Any) -> Pattern:
        if not isinstance(value, str):
            raise ValueError(f"must be a string (a {kind.value} pattern)")
        try:
            return Pattern(value, kind)
        except PatternError as exc:
            raise ValueError(str(exc)) from exc

    return PlainValidator(validate)


def _generated(kind: PatternKind) -> PlainValidator:
    """A pattern that names one value per pod: bound placeholders only.

    `podCertificate` patterns are rendered, not matched: `{label}` ("any label")
    has no value to render, so it is refused here, at its file and line, rather
    than silently granting nothing at run time.
    """

    def validate(value: Any) -> Pattern:
        if not isinstance(value, str):
            raise ValueError(f"must be a string (a {kind.value} pattern)")
        try:
            return Pattern(value, kind, generated=True)
        except PatternError as exc:
            raise ValueError(str(exc)) from exc

    return PlainValidator(validate)


def _usage(value: Any) -> Usage:
    if not isinstance(value, str):
        raise ValueError("must be a string (a usage)")
    try:
        return Usage(value)
    except ValueError:
        raise ValueError(
            f"unknown usage {value!r} (certificates.k8s.io/v1 usages, e.g. 'server auth')"
        ) from None


def _ip_range(value: Any) -> IPv4Network | IPv6Network:
    if not isinstance(value, str):
        raise ValueError("must be a string (a CIDR such as 10.0.0.0/8)")
    try:
        return ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a CIDR range: {exc}") from None


def _duration(value: Any) -> timedelta:
    """A lifetime in the shared grammar of `signer.durations`, checked for policy use.

    A YAML number is seconds, as a bare number is in the grammar. What is
    policy-specific stays here: the lifetime caps spec.expirationSeconds, a
    whole number of seconds, so a fraction would be silently cut off (an
    error instead), and below 10m the apiserver would refuse the CSR anyway.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration such as 24h, 90d or 1h30m")
    lifetime = parse_duration(value)
    if lifetime % timedelta(seconds=1):
        raise ValueError(f"{value!r} is not a whole number of seconds")
    if lifetime < MIN_LIFETIME:
        raise ValueError(f"{value!r} is shorter than the 10m minimum Kubernetes accepts")
    return lifetime


def _regex_str(regex: re.Pattern[str], what: str) -> PlainValidator:
    def validate(value: Any) -> str:
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return PlainValidator(validate)


def _plain_str(what: str) -> PlainValidator:
    def validate(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError(f"must be a non-empty string ({what})")
        return value

    return PlainValidator(validate)


def _non_empty(value: tuple[Any, ...]) -> tuple[Any, ...]:
    # An AfterValidator rather than min_length: it runs only when every item
    # is valid, so one bad item is not also reported as "empty".
    if not value:
        raise ValueError("must list at least one item")
    return value


NonEmpty = AfterValidator(_non_empty)
DnsPattern = Annotated[Pattern, _pattern(PatternKind.DNS)]
UriPattern = Annotated[Pattern, _pattern(PatternKind.URI)]
EmailPattern = Annotated[Pattern, _pattern(PatternKind.EMAIL)]
TextPattern = Annotated[Pattern, _pattern(PatternKind.TEXT)]
NamespacePattern = Annotated[Pattern, _pattern(PatternKind.NAMESPACE)]
ServiceAccountNamePattern = Annotated[Pattern, _pattern(PatternKind.SERVICEACCOUNT_NAME)]
GeneratedDnsPattern = Annotated[Pattern, _generated(PatternKind.DNS)]
GeneratedUriPattern = Annotated[Pattern, _generated(PatternKind.URI)]
UsageValue = Annotated[Usage, PlainValidator(_usage)]
IpRange = Annotated[IPv4Network | IPv6Network, PlainValidator(_ip_range)]
Duration = Annotated[timedelta, PlainValidator(_duration)]
PolicyName = Annotated[str, _regex_str(_POLICY_NAME, "policy name (a DNS-1123 label)")]
SignerName = Annotated[str, _regex_str(_SIGNER_NAME, "signer name (example.com/name)")]
Username = Annotated[str, _plain_str("a username")]
Group = Annotated[str, _plain_str("a group")]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
    )


# Kubernetes label syntax (apimachinery validation.IsQualifiedName / IsValidLabelValue).
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


def _label_key(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string (a label key)")
    prefix, slash, name = value.rpartition("/")
    if not _LABEL_NAME.fullmatch(name) or (
        slash and (not prefix or len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix))
    ):
        raise ValueError(f"{value!r} is not a valid label key (e.g. team or example.com/team)")
    return value


def _label_value(value: Any) -> str:
    if not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid label value (63 characters, [-A-Za-z0-9_.])")
    return value


LabelKey = Annotated[str, PlainValidator(_label_key)]
LabelValue = Annotated[str, PlainValidator(_label_value)]


class LabelSelectorRequirement(_Model):
    """One `matchExpressions` entry, with the Kubernetes semantics."""

    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[LabelValue, ...] = ()

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> LabelSelectorRequirement:
        # As metav1.LabelSelectorAsSelector: In/NotIn need values, the others none.
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"values must not be empty for operator {self.operator}")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"values must be empty for operator {self.operator}")
        return self


class LabelSelector(_Model):
    """A Kubernetes label selector: every matchLabels pair and every expression must hold.

    As in Kubernetes, an empty selector (`{}`) selects every namespace.
    """

    match_labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()


class ServiceAccountSelector(_Model):
    """ServiceAccounts in any namespace matching `namespaces`, optionally by name."""

    namespaces: Annotated[tuple[NamespacePattern, ...], NonEmpty]
    names: tuple[ServiceAccountNamePattern, ...] | None = None
    """None means every ServiceAccount in those namespaces."""
    namespace_selector: LabelSelector | None = None
    """The namespace must also carry these labels (as the controller last saw them)."""


class Requesters(_Model):
    """Who a policy applies to; it applies if any one selector matches.

    Identity comes only from spec.username and spec.groups, which the
    apiserver sets from the authenticated caller.
    """

    service_accounts: tuple[ServiceAccountSelector, ...] = ()
    usernames: tuple[Username, ...] = ()
    groups: tuple[Group, ...] = ()

    @model_validator(mode="after")
    def _selects_someone(self) -> Requesters:
        if not (self.service_accounts or self.usernames or self.groups):
            raise ValueError("selects nobody: list serviceAccounts, usernames or groups")
        return self


class RsaKeys(_Model):
    algorithm: Literal["RSA"]
    min_size: int = Field(default=2048, ge=2048)
    max_size: int | None = Field(default=None, ge=2048)
    """An upper bound keeps a huge key from costing the signer real CPU."""
    public_exponent: Literal[65537] = 65537
    """The only exponent the signer's key floor (`signer.pki.keys`) accepts; written out
    so that a reviewer reading the rule sees it (e=3 keys are refused)."""


class EcdsaKeys(_Model):
    algorithm: Literal["ECDSA"]
    curves: Annotated[tuple[Literal["P-256", "P-384", "P-521"], ...], NonEmpty]


class Ed25519Keys(_Model):
    algorithm: Literal["Ed25519"]


KeyRule = Annotated[RsaKeys | EcdsaKeys | Ed25519Keys, Field(discriminator="algorithm")]
DEFAULT_KEYS: tuple[KeyRule, ...] = (
    RsaKeys(algorithm="RSA"),
    EcdsaKeys(algorithm="ECDSA", curves=("P-256", "P-384")),
    Ed25519Keys(algorithm="Ed25519"),
)


class SubjectRules(_Model):
    common_name: Literal["Empty", "EmptyOrDNSName", "DNSName"] = "EmptyOrDNSName"
    """`EmptyOrDNSName`: no CN, or a CN equal to one of the requested DNS SANs."""
    organizations: tuple[TextPattern, ...] = ()
    """Allowed O values; no other subject attribute is ever allowed."""


class Allowed(_Model):
    """What a request may contain; anything not listed is a violation."""

    dns_names: tuple[DnsPattern, ...] = ()
    ip_ranges: tuple[IpRange, ...] = ()
    max_dns_names: int | None = Field(default=None, ge=1, le=10_000)
    """At most this many DNS names (None: the signer's `maxDnsNames`, default 100).
    A certificate with tens of thousands of names is too large to store, and costs
    the signer real CPU to evaluate and sign."""
    uris: tuple[UriPattern, ...] = ()
    emails: tuple[EmailPattern, ...] = ()
    subject: SubjectRules = SubjectRules()
    usages: tuple[UsageValue, ...] = DEFAULT_USAGES
    keys: Annotated[tuple[KeyRule, ...], NonEmpty] = DEFAULT_KEYS

    @model_validator(mode="after")
    def _no_ca_usages(self) -> Allowed:
        ca = sorted(u.value for u in CA_USAGES.intersection(self.usages))
        if ca:
            raise ValueError(f"usages {ca} are for CAs; this signer never issues CA certificates")
        return self


class Required(_Model):
    """What a request must contain, on top of being allowed."""

    min_dns_names: int = Field(default=0, ge=0)
    usages: tuple[UsageValue, ...] = ()
    """Every one of these must be requested."""
    any_usage_of: tuple[UsageValue, ...] = ()
    """At least one of these must be requested (e.g. server auth or client auth)."""


class PodCertificate(_Model):
    """What a pod selected by the policy receives from a PodCertificateRequest.

    Its presence is what makes a policy serve PodCertificateRequests at all:
    a policy without it only ever decides CSRs. Each pattern is rendered for
    the pod's namespace and ServiceAccount; names the pod asks for in its
    annotations are checked against `allowed`, as CSR SANs are. Empty lists
    are valid: the pod then gets only the allowed names it asks for.
    """

    dns_names: tuple[GeneratedDnsPattern, ...] = ()
    uris: tuple[GeneratedUriPattern, ...] = ()


def _cel_expression(value: Any) -> CelProgram:
    if not isinstance(value, str):
        raise ValueError("must be a string (a CEL expression)")
    try:
        return compile_expression(value)
    except CelError as exc:
        raise ValueError(str(exc)) from None


def _cel_message(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) > MAX_MESSAGE_LENGTH or "\n" in value.strip():
        raise ValueError(f"must be one line of at most {MAX_MESSAGE_LENGTH} characters")
    return value.strip()


CelExpression = Annotated[CelProgram, PlainValidator(_cel_expression)]


class CelRule(_Model):
    """A CEL condition the request must meet (docs/policies.md, "CEL rules")."""

    expression: CelExpression
    message: Annotated[str, PlainValidator(_cel_message)] = ""
    """The violation's message when the expression is false (default: the expression)."""


class Policy(_Model):
    """One named rule set: which signer, which requesters, what they may request."""

    name: PolicyName
    description: str = ""
    signer_names: Annotated[tuple[SignerName, ...], NonEmpty]
    requesters: Requesters
    allowed: Allowed = Allowed()
    required: Required = Required()
    max_lifetime: Duration | None = None
    """Longer requests are shortened when signing, never denied for it."""
    pod_certificate: PodCertificate | None = None
    """None: the policy does not serve PodCertificateRequests."""
    cel_rules: Annotated[tuple[CelRule, ...], Field(max_length=MAX_RULES)] = ()
    """Every one must be true, on top of `allowed` and `required`."""

    @model_validator(mode="after")
    def _satisfiable(self) -> Policy:
        """A policy that can approve nothing is a mistake worth failing the load for."""
        allowed = set(self.allowed.usages)
        missing = [u.value for u in self.required.usages if u not in allowed]
        if missing:
            raise ValueError(f"required.usages {missing} are not in allowed.usages")
        if self.required.any_usage_of and not allowed.intersection(self.required.any_usage_of):
            raise ValueError("no usage in required.anyUsageOf is in allowed.usages")
        if self.required.min_dns_names and not self.allowed.dns_names:
            raise ValueError("required.minDnsNames needs at least one allowed.dnsNames pattern")
        if self.allowed.subject.common_name == "DNSName" and not self.allowed.dns_names:
            raise ValueError("allowed.subject.commonName DNSName needs allowed.dnsNames")
        if (
            self.pod_certificate is not None
            and self.max_lifetime is not None
            and self.max_lifetime < POD_MIN_LIFETIME
        ):
            # The apiserver refuses a pod certificate valid for under an hour, and a
            # refused PodCertificateRequest fails its pod for good: say so at load.
            raise ValueError(
                "maxLifetime is under 1h, the shortest pod certificate Kubernetes accepts; "
                "a policy with podCertificate needs at least 1h"
            )
        return self


class SignerSettings(_Model):
    """Per-signer options, independent of any one policy."""

    name: SignerName
    when_no_policy_applies: Literal["abstain", "deny"] = "abstain"
    """`abstain` leaves the CSR Pending for a human; `deny` closes it."""
    max_dns_names: int = Field(default=DEFAULT_MAX_DNS_NAMES, ge=1, le=10_000)
    """The default of every policy's `allowed.maxDnsNames` for this signer."""


class PolicyDocument(_Model):
    """One YAML document of a policy file."""

    signers: tuple[SignerSettings, ...] = ()
    policies: tuple[Policy, ...] = ()
