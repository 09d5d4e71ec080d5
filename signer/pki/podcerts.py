"""Issue a pod certificate for a PodCertificateRequest (KEP-4317). Pure; the clock is an argument.

What kube-apiserver 1.36 checks when a signer writes an `Issued` status
(docs/design/podcertificaterequests.md, section 3) decides the shape here:

- the leaf comes first in `certificateChain` and carries exactly the request's
  public key, so the key is read from the request (`pod_key`) and nothing else;
- `notBefore`/`notAfter` must equal the leaf's, and X.509 times are whole
  seconds, so every time is truncated to whole seconds before it is used;
- `notBefore` must be within 5 minutes of the apiserver's clock, so the backdate
  is 1 minute (`POD_BACKDATE`), not the CSR path's 5, which would sit on the edge:
  enough for a peer whose clock is a little behind ours, and 4 minutes of room for
  our clock against the apiserver's (never before the CA's own NotBefore);
- the lifetime must be in [1 h, spec.maxExpirationSeconds]: it is the smallest
  of maxExpirationSeconds, the policy's maxLifetime and the signer's maximum,
  refused below 1 h rather than stretched past a cap, and cut to the CA's
  NotAfter (refused if that leaves under 1 h);
- `beginRefreshAt` must be in [notBefore + 10 min, notAfter - 10 min]: it is
  at a fraction in [0.5, 0.75) of the lifetime, fixed per pod by a hash of its
  UID so a fleet started together does not refresh together, then clamped.

The leaf is built like a CSR leaf (`signer.pki.signing.sign_leaf`): BasicConstraints
CA:FALSE critical, SKI/AKI, random 159-bit serial, hash by CA key. It has an empty
subject (a pod has no meaningful CN; its identity is the SANs, which are
therefore critical), KeyUsage digitalSignature (+ keyEncipherment for RSA, for
TLS 1.2 RSA key exchange) and ExtendedKeyUsage serverAuth + clientAuth: pod
certificates are used for mTLS in both directions.

Every reason not to issue is a `Refusal` (reason = the condition's CamelCase
reason); nothing raises for a bad request. `status_for`, `denied_status` and
`failed_status` build the exact `/status` bodies the apiserver accepts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from signer.models import KeyInfo, Refusal, Usage
from signer.pki.ca import CaBundle
from signer.pki.keys import below_floor
from signer.pki.parsing import CsrParseError, key_info, parse_csr
from signer.pki.signing import (
    SIGNING_ERRORS,
    ca_refusal,
    san_extensions,
    sign_leaf,
    usage_extensions,
)
from signer.pki.usages import MappedUsages, map_usages

UNSUPPORTED_KEY_TYPE: Final = "UnsupportedKeyType"
"""The API's own reason (PodCertificateRequestConditionUnsupportedKeyType): the kubelet
surfaces it on the pod, and the message names the `keyType` values that would work."""
INVALID_KEY: Final = "InvalidKey"
"""The key fields cannot be read (the apiserver validates them, so only on version skew)."""

MIN_LIFETIME: Final = timedelta(hours=1)
"""The apiserver's floor for an issued pod certificate's lifetime."""
REFRESH_MARGIN: Final = timedelta(minutes=10)
POD_BACKDATE: Final = timedelta(minutes=1)
"""How far NotBefore is set before now (the module docstring says why 1 minute)."""
"""beginRefreshAt must be at least this far from both NotBefore and NotAfter."""

POD_KEY_TYPES: Final = "RSA3072, RSA4096, ECDSAP256, ECDSAP384, ECDSAP521 or ED25519"
"""The projected volume's `keyType` values: what a refusal suggests instead."""
_RSA_SIZES = frozenset({3072, 4096})
"""The apiserver accepts exactly these RSA moduli in a PodCertificateRequest."""

_STUB: Final = "stubPKCS10Request"
_PKIX: Final = "pkixPublicKey"
_POP: Final = "proofOfPossession"
_CERT_KEY_TYPES = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
    dsa.DSAPublicKey,
    x25519.X25519PublicKey,
    x448.X448PublicKey,
)
"""The key classes a certificate can carry (`CertificatePublicKeyTypes`), for isinstance."""

_REASON = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")
"""metav1.Condition reason syntax; the apiserver refuses a status with any other."""
_MAX_MESSAGE = 32 * 1024
"""metav1.Condition message limit, in bytes."""


@dataclass(frozen=True, slots=True)
class PodKey:
    """The public key a PodCertificateRequest asks to have certified."""

    public_key: CertificatePublicKeyTypes = field(repr=False, compare=False)
    info: KeyInfo
    """As `signer.pki.parsing` describes CSR keys, for the key floor and `keys` rules."""
    source: Literal["stubPKCS10Request", "pkixPublicKey"]
    """Which spec field held it (pkixPublicKey: a 1.35 kubelet)."""


@dataclass(frozen=True, slots=True)
class PodIssued:
    """A signed pod certificate and the times its status must carry.

    Every datetime is aware UTC with whole seconds, and not_before/not_after are
    exactly the leaf's, as the apiserver demands.
    """

    chain_pem: bytes
    """The leaf, then `CaBundle.chain_pem`: status.certificateChain."""
    not_before: datetime
    not_after: datetime
    begin_refresh_at: datetime
    serial_number: int
    issued_at: datetime
    """The moment of signing (NotBefore is `POD_BACKDATE` earlier, or the CA's NotBefore)."""
    cut_to_ca: bool
    """NotAfter was shortened to the CA's NotAfter (worth a log line: rotate the CA)."""
    certificate: x509.Certificate = field(repr=False, compare=False)


def pod_key(spec: Mapping[str, Any]) -> PodKey | Refusal:
    """The key of a PodCertificateRequest spec, as the API returns it (JSON), or why not.

    The byte fields are base64 strings, and JSON `null` (the apiserver writes
    `null` for an unset one) or "" means absent. Exactly one form must be set,
    as the apiserver requires:

    - `stubPKCS10Request`: a DER PKCS#10 request (1.36+ kubelets). It is read
      with `parse_csr`, the same strict reader and self-signature check as a
      CSR's spec.request, so a key Kubernetes and we would read differently is
      refused. Its subject, SANs and extensions are deliberately ignored: the
      kubelet always sends an empty request, the apiserver does not look at
      its contents either, and what the certificate carries comes from policy
      alone, so nothing in the request can add to it.
    - `pkixPublicKey` with `proofOfPossession` (1.35 kubelets): a DER
      SubjectPublicKeyInfo. The proof (a signature over the pod UID) was
      verified by the apiserver at create time and spec is immutable, so it is
      only required to be present, not verified again. The key must be in the
      canonical DER encoding (what Go's MarshalPKIXPublicKey writes), so the key
      in the leaf is byte for byte the key in the request.

    The key floor is not applied here but by `issue_pod_certificate`, whoever
    calls it.
    """
    stub = _bytes_field(spec, _STUB)
    pkix = _bytes_field(spec, _PKIX)
    pop = _bytes_field(spec, _POP)
    if isinstance(stub, Refusal):
        return stub
    if isinstance(pkix, Refusal):
        return pkix
    if isinstance(pop, Refusal):
        return pop
    if stub is not None and (pkix is not None or pop is not None):
        return _form_refusal("both are set")
    if stub is not None:
        return _stub_key(stub)
    if pkix is None:
        return _form_refusal("neither is set")
    if pop is None:
        return _form_refusal(f"spec.{_PKIX} is set without spec.{_POP}")
    return _pkix_key(pkix)


def issue_pod_certificate(
    key: PodKey,
    ca: CaBundle,
    *,
    dns_names: Sequence[str],
    uris: Sequence[str],
    pod_uid: str,
    now: datetime,
    max_expiration_seconds: int,
    max_lifetime: timedelta | None,
    signer_max: timedelta,
) -> PodIssued | Refusal:
    """Sign `key` for a pod with `ca`, or say why not. Never raises for a bad request.

    `dns_names` and `uris` are final (policy has decided them); `max_lifetime`
    is the approving policy's cap (None: none), `signer_max` the signer's own.
    Checks, in order: key floor and pod key types, CA validity, names, lifetime.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    now = now.astimezone(UTC).replace(microsecond=0)
    refusal = _key_refusal(key.info) or ca_refusal(ca, now) or _names_refusal(dns_names, uris)
    if refusal is not None:
        return refusal
    lifetime = _lifetime(max_expiration_seconds, max_lifetime, signer_max)
    if isinstance(lifetime, Refusal):
        return lifetime
    not_before = max(now - POD_BACKDATE, ca.not_before.astimezone(UTC).replace(microsecond=0))
    not_after = not_before + lifetime
    cut_to_ca = not_after > ca.not_after
    if cut_to_ca:
        not_after = ca.not_after.astimezone(UTC).replace(microsecond=0)
        if not_after - now < MIN_LIFETIME:  # from now: the backdate is not lifetime
            return Refusal(
                reason="CAExpiresSoon",
                message=f"the signing CA {ca.identity} expires at {ca.not_after.isoformat()}, "
                f"less than {_duration(MIN_LIFETIME)} from now: a pod certificate must be "
                "valid for at least that long; rotate the CA",
            )
    try:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        names += [x509.UniformResourceIdentifier(u) for u in uris]
        cert = sign_leaf(
            ca,
            subject=x509.Name([]),
            public_key=key.public_key,
            not_before=not_before,
            not_after=not_after,
            extensions=[
                *usage_extensions(_pod_usages(key.info.algorithm == "rsa")),
                *san_extensions(names, subject_empty=True),
            ],
        )
    except SIGNING_ERRORS as exc:
        return Refusal(reason="SigningFailed", message=f"cannot sign the pod certificate: {exc}")
    return PodIssued(
        chain_pem=cert.public_bytes(serialization.Encoding.PEM) + ca.chain_pem,
        not_before=not_before,
        not_after=not_after,
        begin_refresh_at=begin_refresh_at(not_before, not_after, pod_uid),
        serial_number=cert.serial_number,
        issued_at=now,
        cut_to_ca=cut_to_ca,
        certificate=cert,
    )


def refresh_fraction(pod_uid: str) -> float:
    """Where in its lifetime a pod's certificate is refreshed: in [0.5, 0.75).

    Derived from SHA-256 of the pod UID: the same for every certificate of one
    pod (its refreshes stay evenly spaced), different across pods (a fleet
    created at once does not come back at once). 51 bits of the hash over
    2^53 keep the float exact, so it never rounds up to 0.75.
    """
    return _refresh_numerator(pod_uid) / 2**53


def begin_refresh_at(not_before: datetime, not_after: datetime, pod_uid: str) -> datetime:
    """NotBefore + lifetime x `refresh_fraction`, in whole seconds, clamped to
    [NotBefore + 10 min, NotAfter - 10 min] (the apiserver's window; with a
    lifetime of at least 1 h the fraction already lies inside it)."""
    seconds = int((not_after - not_before).total_seconds())
    at = not_before + timedelta(seconds=seconds * _refresh_numerator(pod_uid) // 2**53)
    return max(not_before + REFRESH_MARGIN, min(at, not_after - REFRESH_MARGIN))


def status_for(
    issued: PodIssued, *, reason: str = "Issued", message: str | None = None
) -> dict[str, Any]:
    """The PodCertificateRequest status for `issued`, exactly as `/status` must receive it.

    lastTransitionTime is the moment of issuance (NotBefore is backdated).
    """
    if message is None:
        message = (
            f"certificate issued, serial {issued.serial_number:x}, valid until "
            f"{rfc3339(issued.not_after)}"
        )
    return {
        "conditions": [_condition("Issued", reason, message, issued.issued_at)],
        "certificateChain": issued.chain_pem.decode("ascii"),
        "notBefore": rfc3339(issued.not_before),
        "beginRefreshAt": rfc3339(issued.begin_refresh_at),
        "notAfter": rfc3339(issued.not_after),
    }


def denied_status(reason: str, message: str, now: datetime) -> dict[str, Any]:
    """A Denied status: one condition, no chain or times (the apiserver refuses any)."""
    return {"conditions": [_condition("Denied", reason, message, now)]}


def failed_status(reason: str, message: str, now: datetime) -> dict[str, Any]:
    """A Failed status: one condition, no chain or times (the apiserver refuses any)."""
    return {"conditions": [_condition("Failed", reason, message, now)]}


def rfc3339(moment: datetime) -> str:
    """`2030-06-01T12:00:00Z`: UTC, whole seconds, as metav1.Time writes it."""
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware (UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, reason: str, message: str, now: datetime) -> dict[str, str]:
    if _REASON.fullmatch(reason) is None or len(reason) > 1024:
        # Our reasons are constants: a bad one is a bug, not a request to refuse.
        raise ValueError(f"{reason!r} is not a valid condition reason")
    raw = message.encode()
    if len(raw) > _MAX_MESSAGE:
        message = raw[: _MAX_MESSAGE - 3].decode(errors="ignore") + "..."
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": rfc3339(now),
    }


def _bytes_field(spec: Mapping[str, Any], name: str) -> bytes | Refusal | None:
    """A []byte spec field: base64 text, or None when null, missing or empty."""
    value = spec.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return Refusal(reason=INVALID_KEY, message=f"spec.{name} is not a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        return Refusal(reason=INVALID_KEY, message=f"spec.{name} is not valid base64")
    return raw or None


def _form_refusal(what: str) -> Refusal:
    return Refusal(
        reason=INVALID_KEY,
        message=f"exactly one of spec.{_STUB} or spec.{_PKIX} (with spec.{_POP}) "
        f"must be set; {what}",
    )


def _stub_key(stub: bytes) -> PodKey | Refusal:
    if not stub.startswith(b"\x30"):  # parse_csr would take PEM too; Kubernetes takes DER only
        return Refusal(reason=INVALID_KEY, message=f"spec.{_STUB} is not a DER PKCS#10 request")
    try:
        view = parse_csr(stub)
    except CsrParseError as exc:
        # parse_csr names the CSR API's field; name the one that was read.
        message = str(exc).replace("spec.request", f"spec.{_STUB}")
        return Refusal(reason=INVALID_KEY, message=message)
    return PodKey(public_key=view.csr.public_key(), info=view.key, source=_STUB)


def _pkix_key(pkix: bytes) -> PodKey | Refusal:
    try:
        public_key = serialization.load_der_public_key(pkix)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # cryptography's message may quote the input: do not repeat it.
        return Refusal(
            reason=INVALID_KEY, message=f"spec.{_PKIX} is not a DER SubjectPublicKeyInfo"
        )
    if not isinstance(public_key, _CERT_KEY_TYPES):
        return Refusal(
            reason=UNSUPPORTED_KEY_TYPE,
            message=f"spec.{_PKIX} holds a {type(public_key).__name__}, which no certificate "
            f"carries; use keyType {POD_KEY_TYPES}",
        )
    canonical = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if canonical != pkix:
        return Refusal(
            reason=INVALID_KEY,
            message=f"spec.{_PKIX} is not in canonical DER (trailing bytes, a compressed "
            "point or non-standard parameters)",
        )
    return PodKey(public_key=public_key, info=key_info(public_key), source=_PKIX)


def _key_refusal(key: KeyInfo) -> Refusal | None:
    """The key floor, then the apiserver's pod key types; both as UnsupportedKeyType.

    The floor (`signer.pki.keys`) is checked whoever approved; the narrower set
    (RSA exactly 3072 or 4096 bits) is what the apiserver itself admits in a
    PodCertificateRequest, so a key outside it can only come from version skew.
    """
    weak = below_floor(key)
    if weak is not None:
        return Refusal(
            reason=UNSUPPORTED_KEY_TYPE, message=f"{weak.message}; use keyType {POD_KEY_TYPES}"
        )
    if key.algorithm == "rsa" and key.size not in _RSA_SIZES:
        return Refusal(
            reason=UNSUPPORTED_KEY_TYPE,
            message=f"the request's {key.describe()} key is not a pod certificate key type; "
            f"use keyType {POD_KEY_TYPES}",
        )
    return None


def _names_refusal(dns_names: Sequence[str], uris: Sequence[str]) -> Refusal | None:
    """An empty-subject leaf needs SANs; DNS names the apiserver would reject never get signed
    (it refuses the whole status, and the request would be retried forever)."""
    if not dns_names and not uris:
        return Refusal(
            reason="NoIdentity",
            message="the pod certificate would have neither DNS names nor URIs",
        )
    for name in dns_names:
        if not name or ".." in name or name.startswith(".") or name.endswith("."):
            return Refusal(
                reason="InvalidDNSName",
                message=f"DNS name {name[:100]!r} is empty, has an empty label, or starts "
                "or ends with a dot",
            )
    return None


MAX_EXPIRATION_SECONDS = 91 * 86_400
"""The apiserver's ceiling for spec.maxExpirationSeconds (7,862,400 s)."""


def _lifetime(
    max_expiration_seconds: int, max_lifetime: timedelta | None, signer_max: timedelta
) -> timedelta | Refusal:
    """The smallest cap, in whole seconds; refused under `MIN_LIFETIME`, never stretched."""
    if not MIN_LIFETIME.total_seconds() <= max_expiration_seconds <= MAX_EXPIRATION_SECONDS:
        # The apiserver allows [3600, 7862400]; anything else is skew or a hostile API,
        # and a huge value would overflow timedelta.
        return Refusal(
            reason="LifetimeTooShort"
            if max_expiration_seconds < MIN_LIFETIME.total_seconds()
            else "InvalidRequest",
            message=f"spec.maxExpirationSeconds {max_expiration_seconds} is outside "
            f"[{int(MIN_LIFETIME.total_seconds())}, {MAX_EXPIRATION_SECONDS}]",
        )
    caps = [
        (timedelta(seconds=max_expiration_seconds), "spec.maxExpirationSeconds"),
        (signer_max, "the signer's maximum lifetime"),
    ]
    if max_lifetime is not None:
        caps.append((max_lifetime, "the policy's maxLifetime"))
    lifetime, which = min(caps, key=lambda cap: cap[0])
    lifetime = timedelta(seconds=int(lifetime.total_seconds()))
    if lifetime < MIN_LIFETIME:
        return Refusal(
            reason="LifetimeTooShort",
            message=f"{which} ({_duration(lifetime)}) is below the {_duration(MIN_LIFETIME)} "
            "a pod certificate must be valid for",
        )
    return lifetime


def _pod_usages(is_rsa: bool) -> MappedUsages:
    usages = [Usage.DIGITAL_SIGNATURE, Usage.SERVER_AUTH, Usage.CLIENT_AUTH]
    if is_rsa:
        usages.append(Usage.KEY_ENCIPHERMENT)
    mapped = map_usages(usages)  # cached by map_usages
    assert not isinstance(mapped, Refusal), mapped
    return mapped


def _refresh_numerator(pod_uid: str) -> int:
    """2^52 + 51 hash bits: over 2^53 that is a fraction in [0.5, 0.75)."""
    digest = hashlib.sha256(pod_uid.encode()).digest()
    return 2**52 + (int.from_bytes(digest[:8], "big") >> 13)


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"
