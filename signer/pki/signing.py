"""Issue a leaf certificate for a verified CSR. Pure; the clock is an argument.

The certificate is shaped the way kube-controller-manager's signers shape it
(`PermissiveSigningPolicy` in k8s.io/kubernetes
pkg/controller/certificates/authority), so clients that work with the
built-in signers work with ours:

- NotBefore = now - 5 minutes, for clocks that run behind ours.
- Lifetime = spec.expirationSeconds, or the configured default, clamped to
  [10 minutes, configured maximum]: the signer may shorten a request, never
  lengthen it. NotAfter = now + lifetime - 5 minutes, so the validity window
  is exactly the lifetime; a short-lived certificate (under 8 hours) is not
  docked the backdate (NotAfter = now + lifetime), else a 10-minute
  certificate would be usable for 5.
- NotAfter never passes the CA's (the earliest NotAfter along its chain): a
  leaf cannot be trusted longer than its issuers. An expired CA refuses.
- Random serial of 159 bits (kube-controller-manager uses 128; RFC 5280 wants
  at least 64 bits of entropy against chosen-prefix collisions).
- Subject and DNS/IP/URI/email SANs are copied; every other requested
  extension is dropped, so BasicConstraints CA:TRUE in a request still gets a
  leaf: we always write BasicConstraints CA:FALSE, critical.
- spec.usages -> KeyUsage / ExtendedKeyUsage (`signer.pki.usages`); at least one.
- The request's key must meet the floor in `signer.pki.keys`, whoever approved it.
- SubjectKeyIdentifier of the leaf key; AuthorityKeyIdentifier of the CA.
- Hash chosen by the CA key (see `CaBundle.hash_algorithm`).

Every reason not to sign is a `Refusal` value (the controller turns it into a
`Failed` condition); nothing raises to the caller for a bad request.

The pieces every leaf shares (CA validity, BasicConstraints CA:FALSE, usage and
SAN extensions, SKI/AKI, serial, hash) are public helpers here, used by
`signer.pki.podcerts` too, so a pod certificate and a CSR certificate can never
drift apart in how they are built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtensionOID

from signer.models import CsrView, Refusal
from signer.pki.ca import CaBundle
from signer.pki.keys import below_floor
from signer.pki.usages import MappedUsages, map_usages

BACKDATE = timedelta(minutes=5)
SHORT_LIVED = timedelta(hours=8)
"""Below this lifetime the backdate is not taken off NotAfter (as kube does)."""
MIN_DURATION = timedelta(minutes=10)
"""Twice the backdate: the apiserver's own floor for spec.expirationSeconds."""

_LEAF_CONSTRAINTS = x509.Extension(
    ExtensionOID.BASIC_CONSTRAINTS, True, x509.BasicConstraints(ca=False, path_length=None)
)
SIGNING_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm)
"""What `sign_leaf` raises for a key or name cryptography will not encode: a Refusal."""


@dataclass(frozen=True, slots=True)
class SigningLimits:
    """Configured lifetimes. A nonsensical configuration fails at construction."""

    max_duration: timedelta
    default_duration: timedelta
    """Used when the CSR has no spec.expirationSeconds (still capped by the max)."""
    min_duration: ClassVar[timedelta] = MIN_DURATION

    def __post_init__(self) -> None:
        if self.max_duration < MIN_DURATION:
            raise ValueError(f"max_duration must be at least {MIN_DURATION}")
        if self.default_duration <= timedelta(0):
            raise ValueError("default_duration must be positive")

    def lifetime(self, requested_seconds: int | None) -> timedelta:
        """The lifetime to issue: requested or default, within [min, max]."""
        wanted = (
            self.default_duration
            if requested_seconds is None
            else timedelta(seconds=requested_seconds)
        )
        return max(MIN_DURATION, min(wanted, self.max_duration))


@dataclass(frozen=True, slots=True)
class Issued:
    """A signed leaf: `certificate_pem` goes into status.certificate as is."""

    certificate_pem: bytes
    """The leaf, then every non-root CA certificate up its chain (`CaBundle.chain_pem`)."""
    serial_number: int
    not_before: datetime
    not_after: datetime
    cut_to_ca: bool
    """NotAfter was shortened to the CA's NotAfter (worth a log line: rotate the CA)."""
    certificate: x509.Certificate = field(repr=False, compare=False)


def issue(
    csr: CsrView,
    ca: CaBundle,
    *,
    usages: Sequence[str],
    now: datetime,
    requested_seconds: int | None,
    limits: SigningLimits,
) -> Issued | Refusal:
    """Sign `csr` with `ca`, or say why not. Never raises for a bad request."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    # X.509 times have whole seconds; truncate first so what we report is
    # exactly what the certificate says.
    now = now.replace(microsecond=0)
    mapped = _check(csr, ca, usages, now)
    if isinstance(mapped, Refusal):
        return mapped
    not_before, not_after, cut_to_ca = _validity(ca, now, limits.lifetime(requested_seconds))
    request = csr.csr
    try:
        cert = sign_leaf(
            ca,
            subject=request.subject,
            public_key=request.public_key(),
            not_before=not_before,
            not_after=not_after,
            extensions=[*usage_extensions(mapped), *_san_extensions(csr)],
        )
    except SIGNING_ERRORS as exc:
        return Refusal(reason="SigningFailed", message=f"cannot sign the request: {exc}")
    return Issued(
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM) + ca.chain_pem,
        serial_number=cert.serial_number,
        not_before=not_before,
        not_after=not_after,
        cut_to_ca=cut_to_ca,
        certificate=cert,
    )


def _check(
    csr: CsrView, ca: CaBundle, usages: Sequence[str], now: datetime
) -> MappedUsages | Refusal:
    """Every reason not to sign, in a fixed order; else the mapped usages."""
    unusable = ca_refusal(ca, now)
    if unusable is not None:
        return unusable
    weak = below_floor(csr.key)
    if weak is not None:
        return weak
    if not usages:
        return Refusal(reason="NoUsages", message="spec.usages is empty: at least one is required")
    if not csr.subject and not (csr.dns_names or csr.ip_addresses or csr.uris or csr.emails):
        return Refusal(
            reason="NoIdentity",
            message="the request has neither a subject nor DNS, IP, URI or email SANs",
        )
    return map_usages(usages)


def ca_refusal(ca: CaBundle, now: datetime) -> Refusal | None:
    """Why `ca` cannot sign at `now` (expired, or not yet valid), or None."""
    if now >= ca.not_after:
        return Refusal(
            reason="CAExpired",
            message=f"the signing CA {ca.identity} expired at {ca.not_after.isoformat()}",
        )
    if now < ca.not_before:
        return Refusal(
            reason="CANotYetValid",
            message=f"the signing CA {ca.identity} is not valid before {ca.not_before.isoformat()}",
        )
    return None


def sign_leaf(
    ca: CaBundle,
    *,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    not_before: datetime,
    not_after: datetime,
    extensions: Sequence[x509.Extension[x509.ExtensionType]],
) -> x509.Certificate:
    """A leaf signed by `ca`: BasicConstraints CA:FALSE (critical) first, then
    `extensions`, then SKI of `public_key` and AKI of the CA; a random 159-bit
    serial; the hash the CA key calls for.

    Every certificate this signer issues goes through here, so none can be a CA
    whatever the caller passes. Raises one of `SIGNING_ERRORS` when cryptography
    will not encode the certificate; callers turn that into a Refusal.
    """
    return x509.CertificateBuilder(
        issuer_name=ca.subject,
        subject_name=subject,
        public_key=public_key,
        serial_number=x509.random_serial_number(),
        not_valid_before=not_before,
        not_valid_after=not_after,
        extensions=[
            _LEAF_CONSTRAINTS,
            *extensions,
            x509.Extension(
                ExtensionOID.SUBJECT_KEY_IDENTIFIER,
                False,
                x509.SubjectKeyIdentifier.from_public_key(public_key),
            ),
            x509.Extension(
                ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False, ca.authority_key_identifier
            ),
        ],
    ).sign(ca.key, ca.hash_algorithm)


def _validity(ca: CaBundle, now: datetime, lifetime: timedelta) -> tuple[datetime, datetime, bool]:
    """(NotBefore, NotAfter, whether NotAfter was cut to the CA's), as the module says."""
    not_before = now - BACKDATE
    not_after = now + lifetime if lifetime < SHORT_LIVED else not_before + lifetime
    if not_after > ca.not_after:
        return not_before, ca.not_after, True
    return not_before, not_after, False


def usage_extensions(mapped: MappedUsages) -> list[x509.Extension[x509.ExtensionType]]:
    """KeyUsage (critical, as Go writes it) and ExtendedKeyUsage, each when present."""
    out: list[x509.Extension[x509.ExtensionType]] = []
    if mapped.key_usage is not None:
        out.append(x509.Extension(ExtensionOID.KEY_USAGE, True, mapped.key_usage))
    if mapped.extended_key_usage is not None:
        out.append(
            x509.Extension(ExtensionOID.EXTENDED_KEY_USAGE, False, mapped.extended_key_usage)
        )
    return out


def _san_extensions(csr: CsrView) -> list[x509.Extension[x509.ExtensionType]]:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in csr.dns_names]
    names += [x509.IPAddress(ip) for ip in csr.ip_addresses]
    names += [x509.UniformResourceIdentifier(u) for u in csr.uris]
    names += [x509.RFC822Name(e) for e in csr.emails]
    return san_extensions(names, subject_empty=not csr.subject)


def san_extensions(
    names: Sequence[x509.GeneralName], *, subject_empty: bool
) -> list[x509.Extension[x509.ExtensionType]]:
    """The SubjectAltName extension for `names`, or none when there are none.

    RFC 5280 4.2.1.6: SubjectAltName is critical when the subject is empty.
    """
    if not names:
        return []
    return [
        x509.Extension(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
            subject_empty,
            x509.SubjectAlternativeName(names),
        )
    ]
