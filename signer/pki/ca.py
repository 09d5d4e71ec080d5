"""CA material: load, validate, publish, and bootstrap a signing CA. Pure.

The signing CA comes from a Kubernetes Secret of type `kubernetes.io/tls`
(the kube layer reads and base64-decodes it) or from files (the CLI reads
them); both end in `load_ca`, which takes bytes and never touches the disk.

Secret layout
-------------
``tls.crt``
    The signing CA certificate first, optionally followed by intermediates up
    to, but not including, the root. Every non-root certificate here (the
    signing CA too, unless it is itself the root) follows each issued leaf, so
    clients that hold only the root can build the path.
    A self-signed certificate after the first is tolerated and treated as a
    root: it is published, never sent in chains.
``tls.key``
    The signing CA's private key, unencrypted PEM (PKCS#8, PKCS#1 or SEC1).
    RSA (2048 bits or more), ECDSA P-256/P-384 or Ed25519.
``ca.crt`` (optional)
    The root(s) to publish in trust bundles. When present it must contain the
    root that anchors ``tls.crt``; when absent, ``tls.crt`` must be anchored by
    a self-signed certificate (the signing CA itself, or a root after the
    intermediates) and that is what gets published.
``next-ca.crt`` (optional)
    The CA that will replace this one: certificate(s) only, no key.

Rotation
--------
Clients must trust a new CA *before* any leaf signed by it reaches them, and
must keep trusting the old one until the last leaf it signed expires. Only
publishing matters ahead of the switch, so the next CA needs no key in the
Secret, and the signer always signs with the one key it has:

1. Add the new root as ``next-ca.crt``. `CaBundle.trust_bundle_pem` now
   carries both; wait until every consumer has the new bundle.
2. Switch: put the new CA in ``tls.crt``/``tls.key``, set ``ca.crt`` to the
   new root followed by the old one, remove ``next-ca.crt``.
3. Once the longest-lived leaf from the old CA has expired (the configured
   maximum duration after the switch), drop the old root from ``ca.crt``.

A next CA must be a CA certificate that has not expired; it may be not yet
valid, since it is only published.

Validation raises `CaError` with a message naming the Secret key (or file),
so a bad CA fails loudly at load time instead of producing unverifiable
certificates later. Nothing here ever prints key material: `CaBundle` has a
hand-written repr and `identity` is derived from the certificate only.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar, get_args

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

TLS_CRT = "tls.crt"
TLS_KEY = "tls.key"
CA_CRT = "ca.crt"
NEXT_CA_CRT = "next-ca.crt"

CaKeyType = Literal["ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"]
CA_KEY_TYPES: tuple[CaKeyType, ...] = get_args(CaKeyType)

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
SignatureHash = hashes.SHA256 | hashes.SHA384

_MIN_RSA_BITS = 2048
_CLOCK_SKEW = timedelta(hours=1)
"""How far `generate_root` backdates: CA certificates are made on one machine
and used on others, whose clocks may be behind."""


class CaError(ValueError):
    """The CA material is unusable; the message says which part and why."""


class CaTimeError(CaError):
    """The material is sound but outside its validity now: it may be fine later
    (a CA issued seconds ago on a machine whose clock runs ahead of ours)."""


@dataclass(frozen=True, slots=True)
class CaLabels:
    """What to call each input in error messages (Secret keys, or file paths)."""

    cert: str = TLS_CRT
    key: str = TLS_KEY
    roots: str = CA_CRT
    next: str = NEXT_CA_CRT


@dataclass(frozen=True, slots=True, repr=False)
class CaBundle:
    """A validated signing CA, with what issuing needs precomputed once.

    Constructed by `load_ca`. The derived fields (hash, AKI, chain PEM) are
    computed at load time because a CA signs thousands of certificates
    between reloads.
    """

    certificate: x509.Certificate
    key: SigningKey = field(compare=False)
    intermediates: tuple[x509.Certificate, ...]
    """The certificates after the signing CA in tls.crt, in order (roots excluded)."""
    roots: tuple[x509.Certificate, ...]
    """Published trust anchors: ca.crt, or the self-signed anchor of tls.crt."""
    next_cas: tuple[x509.Certificate, ...]
    """The CA(s) that will replace this one: published, never used to sign."""
    not_before: datetime
    not_after: datetime
    """The earliest NotAfter along the chain: no leaf may outlive it."""
    fingerprint: str
    """SHA-256 of the signing certificate's DER, lowercase hex."""
    hash_algorithm: SignatureHash | None
    """Chosen by the CA key: SHA-256 (RSA, P-256), SHA-384 (P-384), None (Ed25519)."""
    authority_key_identifier: x509.AuthorityKeyIdentifier
    chain_pem: bytes
    """What follows an issued leaf, PEM: the signing CA unless it is a root, then
    the intermediates. Empty for a self-signed signing CA."""

    @property
    def subject(self) -> x509.Name:
        return self.certificate.subject

    @property
    def identity(self) -> str:
        """Subject and fingerprint prefix: enough to tell CAs apart in logs."""
        return f"{self.certificate.subject.rfc4514_string()} sha256:{self.fingerprint[:16]}"

    def trust_bundle_pem(self) -> bytes:
        """Roots to publish, then the next CA(s), each certificate once."""
        seen: set[bytes] = set()
        out: list[bytes] = []
        for cert in (*self.roots, *self.next_cas):
            der = cert.public_bytes(serialization.Encoding.DER)
            if der not in seen:
                seen.add(der)
                out.append(cert.public_bytes(serialization.Encoding.PEM))
        return b"".join(out)

    def __repr__(self) -> str:
        return (
            f"CaBundle(identity={self.identity!r}, not_after={self.not_after.isoformat()}, "
            f"intermediates={len(self.intermediates)}, roots={len(self.roots)}, "
            f"next_cas={len(self.next_cas)})"
        )

    __str__ = __repr__


def ca_secret_manifest(
    name: str,
    namespace: str,
    cert_pem: bytes,
    key_pem: bytes,
    *,
    roots_pem: bytes | None = None,
    next_ca_pem: bytes | None = None,
) -> dict[str, Any]:
    """The `kubernetes.io/tls` Secret that `load_ca_from_secret_data` reads back.

    `ca.crt` is the published root(s): `roots_pem`, or the certificate itself
    for a self-signed root. `next_ca_pem` is the next CA of a rotation (step 1 in
    the module docstring). Pure: the caller serialises or sends it.
    """

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {
            TLS_CRT: b64(cert_pem),
            TLS_KEY: b64(key_pem),
            CA_CRT: b64(roots_pem if roots_pem is not None else cert_pem),
            **({NEXT_CA_CRT: b64(next_ca_pem)} if next_ca_pem is not None else {}),
        },
    }


def load_ca_from_secret_data(data: Mapping[str, bytes], *, now: datetime) -> CaBundle:
    """A `kubernetes.io/tls` Secret's data (already base64-decoded) -> CaBundle."""
    for required in (TLS_CRT, TLS_KEY):
        if not data.get(required):
            raise CaError(f"the CA Secret has no {required}")
    return load_ca(
        data[TLS_CRT],
        data[TLS_KEY],
        data.get(CA_CRT) or None,
        data.get(NEXT_CA_CRT) or None,
        now=now,
    )


def load_ca(
    cert_pem: bytes,
    key_pem: bytes,
    roots_pem: bytes | None = None,
    next_pem: bytes | None = None,
    *,
    now: datetime,
    labels: CaLabels = CaLabels(),
) -> CaBundle:
    """Parse and validate CA material; raise `CaError` naming what is wrong.

    Checks, in order: everything parses; the key is a supported type and
    matches the first certificate; each certificate in the chain is a CA
    (BasicConstraints CA:TRUE, keyCertSign) within its validity period; each
    is signed by the next; the chain ends at a published root.
    """
    _require_aware(now)
    certs = _load_certs(cert_pem, labels.cert)
    key = _load_key(key_pem, labels.key)
    signing = certs[0]
    if _spki(key.public_key()) != _spki(signing.public_key()):
        raise CaError(
            f"{labels.key} does not match the certificate in {labels.cert} "
            f"({signing.subject.rfc4514_string()})"
        )
    intermediates = tuple(c for c in certs[1:] if not _is_self_signed(c))
    extra_roots = tuple(c for c in certs[1:] if _is_self_signed(c))
    chain = (signing, *intermediates)
    for index, cert in enumerate(chain):
        what = f"{labels.cert} certificate {index + 1} ({cert.subject.rfc4514_string()})"
        _check_ca(cert, what)
        _check_valid(cert, what, now)
    for child, parent in itertools.pairwise(chain):
        if not _issued_by(child, parent):
            raise CaError(
                f"{labels.cert}: {child.subject.rfc4514_string()} is not issued by the "
                f"certificate after it ({parent.subject.rfc4514_string()}); "
                "list the signing CA first, then each issuer in order"
            )
    if roots_pem is not None:
        roots = _load_certs(roots_pem, labels.roots)
        anchor = _anchor(chain[-1], roots, True, labels)
    else:
        anchor = _anchor(chain[-1], extra_roots, False, labels)
        roots = (anchor, *(r for r in extra_roots if r != anchor))
    if anchor is not chain[-1]:
        what = f"root {anchor.subject.rfc4514_string()}"
        _check_ca(anchor, what)
        _check_valid(anchor, what, now)
    next_cas = _load_certs(next_pem, labels.next) if next_pem is not None else ()
    for cert in next_cas:
        what = f"{labels.next} ({cert.subject.rfc4514_string()})"
        _check_ca(cert, what)
        if cert.not_valid_after_utc <= now:
            raise CaError(f"{what} expired at {cert.not_valid_after_utc.isoformat()}")
    path = (*chain, anchor)
    sent = () if anchor is signing else chain
    return CaBundle(
        certificate=signing,
        key=key,
        intermediates=intermediates,
        roots=roots,
        next_cas=next_cas,
        not_before=signing.not_valid_before_utc,
        not_after=min(c.not_valid_after_utc for c in path),
        fingerprint=signing.fingerprint(hashes.SHA256()).hex(),
        hash_algorithm=_hash_for(key),
        authority_key_identifier=_authority_key_identifier(signing),
        chain_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in sent),
    )


CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
"""What a root made here may do: sign certificates and CRLs (and its own OCSP/TLS uses)."""


def generate_root(
    common_name: str, key_type: CaKeyType, days: int, now: datetime
) -> tuple[bytes, bytes]:
    """A new self-signed root CA: (certificate PEM, unencrypted PKCS#8 key PEM).

    For bootstrapping (`csr-signer ca init`), the local run mode and tests.
    NotBefore is backdated an hour for clock skew between the machine that
    makes the CA and those that verify with it.
    """
    _require_aware(now)
    if not common_name:
        raise ValueError("common_name must not be empty")
    if days < 1:
        raise ValueError("days must be at least 1")
    key = generate_key(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, _hash_for(key))
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def generate_key(key_type: CaKeyType) -> SigningKey:
    """A fresh private key of one of the supported CA key types."""
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type in ("rsa-2048", "rsa-3072", "rsa-4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise ValueError(
        f"unsupported key type {key_type!r}; expected one of {', '.join(CA_KEY_TYPES)}"
    )


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")


def _load_certs(data: bytes, label: str) -> tuple[x509.Certificate, ...]:
    if b"PRIVATE KEY-----" in data:
        # Refuse rather than ignore: a key pasted into a certificate field
        # would otherwise end up published in a trust bundle by someone else.
        raise CaError(f"{label} contains a private key; it must hold certificates only")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CaError(f"{label} is not PEM-encoded X.509 certificates") from exc
    return tuple(certs)


def _load_key(data: bytes, label: str) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise CaError(f"{label} is encrypted; provide an unencrypted key") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        # The backend's message may quote parts of the input: do not repeat it.
        raise CaError(f"{label} is not a PEM-encoded private key") from exc
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _MIN_RSA_BITS:
            raise CaError(f"{label} is RSA {key.key_size}; at least {_MIN_RSA_BITS} bits needed")
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise CaError(f"{label} uses curve {key.curve.name}; use P-256 or P-384")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise CaError(f"{label} is a {type(key).__name__}; use RSA, ECDSA P-256/P-384 or Ed25519")


def _spki(public_key: object) -> bytes:
    assert hasattr(public_key, "public_bytes")
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _hash_for(key: SigningKey) -> SignatureHash | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        return hashes.SHA384()
    return hashes.SHA256()


_Ext = TypeVar("_Ext", bound=x509.ExtensionType)


def _extension(cert: x509.Certificate, kind: type[_Ext]) -> _Ext | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_ca(cert: x509.Certificate, what: str) -> None:
    bc = _extension(cert, x509.BasicConstraints)
    if bc is None or not bc.ca:
        raise CaError(f"{what} is not a CA certificate (BasicConstraints CA is not true)")
    ku = _extension(cert, x509.KeyUsage)
    if ku is None or not ku.key_cert_sign:
        raise CaError(f"{what} may not sign certificates (KeyUsage lacks keyCertSign)")


def _check_valid(cert: x509.Certificate, what: str, now: datetime) -> None:
    if cert.not_valid_after_utc <= now:
        raise CaTimeError(f"{what} expired at {cert.not_valid_after_utc.isoformat()}")
    if cert.not_valid_before_utc > now:
        raise CaTimeError(f"{what} is not valid before {cert.not_valid_before_utc.isoformat()}")


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and _issued_by(cert, cert)


def _anchor(
    top: x509.Certificate,
    roots: Sequence[x509.Certificate],
    roots_given: bool,
    labels: CaLabels,
) -> x509.Certificate:
    """The root the chain ends at; it must be among the published roots."""
    if _is_self_signed(top):
        if roots_given and top not in roots:
            raise CaError(
                f"{labels.roots} does not contain the self-signed CA from {labels.cert} "
                f"({top.subject.rfc4514_string()}); clients could not verify issued certificates"
            )
        return top
    for root in roots:
        if _issued_by(top, root):
            return root
    where = labels.roots if roots_given else f"{labels.cert} or {labels.roots}"
    raise CaError(
        f"the chain in {labels.cert} ends at {top.subject.rfc4514_string()}, issued by "
        f"{top.issuer.rfc4514_string()}, which is not in {where}; "
        "publish that root so clients can verify issued certificates"
    )


def _authority_key_identifier(signing: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    # Use the CA's own SKI when it has one: verifiers match AKI against the
    # issuer's SKI byte for byte, whichever method the CA's maker used.
    try:
        ski = signing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        public_key = signing.public_key()
        assert isinstance(
            public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
        )
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
