"""Small frozen value types shared by the pure core and the edges.

They carry no behaviour that needs I/O, so `signer.policy` and `signer.pki` can
depend on them without learning about the API. Raw Kubernetes objects are
translated into these at the edge (`signer.kube`, the CLI), once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from cryptography import x509

SERVICEACCOUNT_PREFIX = "system:serviceaccount:"
SERVICEACCOUNTS_GROUP = "system:serviceaccounts"
AUTHENTICATED_GROUP = "system:authenticated"
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123_SUBDOMAIN_PART = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_dns1123_label(value: str) -> bool:
    """RFC 1123 label as Kubernetes validates namespace names."""
    return bool(_DNS1123_LABEL.fullmatch(value))


def is_dns1123_subdomain(value: str) -> bool:
    """RFC 1123 subdomain as Kubernetes validates ServiceAccount names."""
    if not value or len(value) > 253:
        return False
    return all(_DNS1123_SUBDOMAIN_PART.fullmatch(part) for part in value.split("."))


@dataclass(frozen=True, slots=True)
class ServiceAccountRef:
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked, as the apiserver recorded it in spec.username/groups/uid.

    These fields are set by the apiserver from the authenticated identity, so
    they are the only identity a policy may trust.
    """

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    @property
    def serviceaccount(self) -> ServiceAccountRef | None:
        """The ServiceAccount, if the username is a well-formed SA username.

        A malformed one (extra colons, empty parts, invalid names) is not a
        ServiceAccount: policies that bind to ServiceAccounts do not apply.
        """
        if not self.username.startswith(SERVICEACCOUNT_PREFIX):
            return None
        rest = self.username[len(SERVICEACCOUNT_PREFIX) :]
        parts = rest.split(":")
        if len(parts) != 2:
            return None
        namespace, name = parts
        if not is_dns1123_label(namespace) or not is_dns1123_subdomain(name):
            return None
        return ServiceAccountRef(namespace=namespace, name=name)


KeyAlgorithm = Literal["rsa", "ecdsa", "ed25519", "ed448", "dsa", "unknown"]


@dataclass(frozen=True, slots=True)
class KeyInfo:
    algorithm: KeyAlgorithm
    size: int
    """Bits for RSA/DSA, curve size for ECDSA, 256 for Ed25519."""
    curve: str | None = None
    """Curve name for ECDSA (`secp256r1`, `secp384r1`, ...)."""
    exponent: int | None = None
    """RSA public exponent (None for other algorithms)."""

    def describe(self) -> str:
        if self.algorithm == "ecdsa":
            return f"ECDSA {self.curve}"
        if self.algorithm in ("ed25519", "ed448"):
            return self.algorithm.capitalize()
        return f"{self.algorithm.upper()} {self.size}"


@dataclass(frozen=True, slots=True)
class SubjectAttribute:
    oid: str
    name: str
    """Short name as RFC 4514 prints it (CN, O, OU, ...) or the dotted OID."""
    value: str


@dataclass(frozen=True, slots=True)
class CsrView:
    """What a PKCS#10 request asks for, extracted once and checked.

    Constructed only by `signer.pki.parsing.parse_csr`, which verifies the
    self-signature first: a CsrView always comes from a well-formed request.
    """

    subject: tuple[SubjectAttribute, ...]
    dns_names: tuple[str, ...]
    ip_addresses: tuple[IPv4Address | IPv6Address, ...]
    uris: tuple[str, ...]
    emails: tuple[str, ...]
    other_sans: tuple[str, ...]
    """SAN kinds we never issue (otherName, directoryName, registeredID)."""
    key: KeyInfo
    requests_ca: bool
    """The request carries BasicConstraints CA:TRUE (informational: never honoured)."""
    csr: x509.CertificateSigningRequest = field(repr=False, compare=False)

    @property
    def common_name(self) -> str | None:
        names = [a.value for a in self.subject if a.name == "CN"]
        return names[0] if names else None

    def describe(self, *, max_names: int = 20, max_chars: int = 2048) -> str:
        """What will be issued, as we parsed it, for a human about to approve.

        A reviewer approves what `kubectl describe csr` shows; this line lets them
        check that it is what we will sign (subject, every kind of SAN, key). It is
        bounded like `Decision.summary`: the first names and a count of the rest.
        """
        subject = ",".join(f"{a.name}={a.value}" for a in self.subject) or "(empty)"
        parts = [f"subject {json.dumps(subject)}"]
        kinds: tuple[tuple[str, tuple[object, ...]], ...] = (
            ("DNS", self.dns_names),
            ("IP", self.ip_addresses),
            ("URI", self.uris),
            ("email", self.emails),
        )
        for label, values in kinds:
            if values:
                shown = ", ".join(json.dumps(str(v)) for v in values[:max_names])
                more = f" and {len(values) - max_names} more" if len(values) > max_names else ""
                parts.append(f"{label} [{shown}{more}]")
        parts.append(f"key {self.key.describe()}")
        text = "; ".join(parts)
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


class Usage(StrEnum):
    """certificates.k8s.io/v1 KeyUsage values (spec.usages)."""

    SIGNING = "signing"
    DIGITAL_SIGNATURE = "digital signature"
    CONTENT_COMMITMENT = "content commitment"
    KEY_ENCIPHERMENT = "key encipherment"
    KEY_AGREEMENT = "key agreement"
    DATA_ENCIPHERMENT = "data encipherment"
    CERT_SIGN = "cert sign"
    CRL_SIGN = "crl sign"
    ENCIPHER_ONLY = "encipher only"
    DECIPHER_ONLY = "decipher only"
    ANY = "any"
    SERVER_AUTH = "server auth"
    CLIENT_AUTH = "client auth"
    CODE_SIGNING = "code signing"
    EMAIL_PROTECTION = "email protection"
    SMIME = "s/mime"
    IPSEC_END_SYSTEM = "ipsec end system"
    IPSEC_TUNNEL = "ipsec tunnel"
    IPSEC_USER = "ipsec user"
    TIMESTAMPING = "timestamping"
    OCSP_SIGNING = "ocsp signing"
    MICROSOFT_SGC = "microsoft sgc"
    NETSCAPE_SGC = "netscape sgc"


@dataclass(frozen=True, slots=True)
class CsrRequest:
    """The parts of a CertificateSigningRequest object the core decides on.

    `usages` stays as the raw strings from spec.usages: an unknown value must
    be reported, not dropped by a parser.
    """

    name: str
    signer_name: str
    request: bytes
    """spec.request: PEM-encoded PKCS#10, as the apiserver stores it."""
    requester: Requester
    usages: tuple[str, ...] = ()
    expiration_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class PodRequest:
    """The parts of a PodCertificateRequest (KEP-4317) the core decides on.

    Only fields the apiserver vouches for carry identity: the namespace and
    spec.serviceAccountName, podName/podUID and nodeName are checked against the
    real Pod, ServiceAccount and Node by NodeRestriction when a kubelet creates
    the request. `annotations` (spec.unverifiedUserAnnotations) are copied from
    the pod spec, so whoever can create a pod writes them: they are requests to be
    checked, never identity.
    """

    signer_name: str
    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str
    node_name: str
    key: KeyInfo
    """From spec.stubPKCS10Request (or the deprecated spec.pkixPublicKey)."""
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    """spec.unverifiedUserAnnotations, copied read-only so the value stays frozen (a
    mapping is not hashable: the hash leaves it out, equality compares it)."""
    max_expiration_seconds: int = 86400
    """spec.maxExpirationSeconds; the apiserver defaults it to 86400."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "annotations", MappingProxyType(dict(self.annotations)))

    @property
    def requester(self) -> Requester:
        """The pod's ServiceAccount as a CSR requester, so requester selectors apply unchanged.

        The username and groups are those the apiserver gives the
        ServiceAccount's own token: a policy selecting `serviceAccounts`,
        `usernames: [system:serviceaccount:ns:sa]` or `groups:
        [system:serviceaccounts:ns]` means the same pods whether they ask with a
        CSR or a PodCertificateRequest.
        """
        return Requester(
            username=f"{SERVICEACCOUNT_PREFIX}{self.namespace}:{self.service_account}",
            groups=(
                SERVICEACCOUNTS_GROUP,
                f"{SERVICEACCOUNTS_GROUP}:{self.namespace}",
                AUTHENTICATED_GROUP,
            ),
        )


@dataclass(frozen=True, slots=True)
class PodGrant:
    """What an approved PodCertificateRequest's certificate carries, as policy decided.

    The names are final: rendered from the approving policy's `podCertificate`
    patterns, then the annotation-requested names the policy allows, each once,
    granted first. Issuance adds nothing and drops nothing.
    """

    dns_names: tuple[str, ...]
    uris: tuple[str, ...]
    max_lifetime: timedelta | None
    """The approving policy's maxLifetime; None: the signer's own maximum applies."""
    policy: str


class Outcome(StrEnum):
    APPROVE = "approve"
    DENY = "deny"
    ABSTAIN = "abstain"


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of evaluating a CSR: a value, never an exception.

    `reasons` are human-readable, each citing policy and field, in a fixed
    order, and never contain key material.
    """

    outcome: Outcome
    policy: str | None = None
    reasons: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        return "; ".join(self.reasons)

    def summary(self, *, max_reasons: int = 20, max_chars: int = 4096) -> str:
        """`message`, bounded for a condition, an Event and a log line.

        A hostile CSR with thousands of SANs yields thousands of reasons; the
        whole list could push the object past etcd's size limit and the denial
        would then fail forever. The first reasons, in their fixed order, and a
        count of the rest are enough for a human to act on.
        """
        shown = list(self.reasons[:max_reasons])
        text = "; ".join(shown)
        if len(text) > max_chars:
            text = text[: max_chars - 1] + "…"
        hidden = len(self.reasons) - len(shown)
        if hidden > 0:
            text += f"; and {hidden} more"
        return text


@dataclass(frozen=True, slots=True)
class Refusal:
    """The signer will not issue for this request: a value, never an exception.

    The controller turns it into a `Failed` condition (`reason` is the
    condition's CamelCase reason, `message` its human-readable message), the
    CLI into a one-line error. The message never contains key material.
    """

    reason: str
    message: str
