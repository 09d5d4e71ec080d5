"""Builders for PKCS#10 requests and CSR objects in tests (cf. kubelet-csr-approver's
`createCsr(CsrParams)`): one keyword per thing a test wants to vary, defaults
that make a valid cluster-local request.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from signer.models import CsrRequest, Requester
from signer.pki.ca import CA_KEY_TYPES, generate_key, generate_root

KeyType = Literal[
    "ecdsa-p256",
    "ecdsa-p384",
    "ecdsa-p521",
    "rsa-1024",
    "rsa-2048",
    "rsa-2048-e3",
    "rsa-3072",
    "rsa-4096",
    "ed25519",
]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def new_key(key_type: KeyType) -> PrivateKey:
    """The product's key types come from `generate_key`; the weak ones tests need
    (P-521, RSA 1024, RSA with e=3), which the product refuses to make, are built here."""
    if key_type in CA_KEY_TYPES:
        key = generate_key(key_type)  # type: ignore[arg-type]
        assert isinstance(
            key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        )
        return key
    if key_type == "ecdsa-p521":
        return ec.generate_private_key(ec.SECP521R1())
    if key_type == "rsa-2048-e3":
        return rsa.generate_private_key(public_exponent=3, key_size=2048)
    return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type.split("-")[1]))


@cache
def cached_key(key_type: KeyType) -> PrivateKey:
    """One key per type per test session: RSA generation is slow."""
    return new_key(key_type)


def _hash_for(key: PrivateKey) -> hashes.HashAlgorithm | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


@dataclass
class CsrParams:
    common_name: str | None = None
    dns_names: list[str] = field(default_factory=lambda: ["web.default.svc"])
    ip_addresses: list[str] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    organizations: list[str] = field(default_factory=list)
    extra_subject: list[x509.NameAttribute] = field(default_factory=list)
    key_type: KeyType = "ecdsa-p256"
    request_ca: bool = False
    extra_extensions: list[x509.ExtensionType] = field(default_factory=list)
    tamper: bool = False
    """Flip a byte in the signature so the self-signature no longer verifies."""


def build_csr_pem(params: CsrParams | None = None, **kwargs: Any) -> bytes:
    """A PEM-encoded PKCS#10 request; kwargs override CsrParams fields."""
    p = params or CsrParams(**kwargs)
    key = cached_key(p.key_type)
    attrs: list[x509.NameAttribute] = []
    if p.common_name is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, p.common_name))
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in p.organizations]
    attrs += p.extra_subject
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in p.dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in p.ip_addresses]
    sans += [x509.UniformResourceIdentifier(u) for u in p.uris]
    sans += [x509.RFC822Name(e) for e in p.emails]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if p.request_ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    for ext in p.extra_extensions:
        builder = builder.add_extension(ext, critical=False)
    csr = builder.sign(key, _hash_for(key))  # type: ignore[arg-type]
    der = csr.public_bytes(serialization.Encoding.DER)
    if p.tamper:
        der = der[:-1] + bytes([der[-1] ^ 0x01])
    b64 = base64.encodebytes(der).decode().replace("\n", "")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + "\n".join(lines)
        + "\n-----END CERTIFICATE REQUEST-----\n"
    ).encode()


def sa_username(namespace: str, name: str = "default") -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def sa_groups(namespace: str) -> tuple[str, ...]:
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated")


def csr_request(
    *,
    signer_name: str = "csr-signer.dev/cluster-local",
    username: str = "system:serviceaccount:default:web",
    groups: tuple[str, ...] | None = None,
    usages: tuple[str, ...] = ("digital signature", "key encipherment", "server auth"),
    expiration_seconds: int | None = None,
    pem: bytes | None = None,
    name: str = "test-csr",
    **csr_kwargs: Any,
) -> CsrRequest:
    """A CsrRequest as the controller would see it after reading the object."""
    if groups is None:
        sa = Requester(username=username).serviceaccount
        groups = sa_groups(sa.namespace) if sa else ("system:authenticated",)
    return CsrRequest(
        name=name,
        signer_name=signer_name,
        request=pem if pem is not None else build_csr_pem(**csr_kwargs),
        requester=Requester(username=username, groups=groups),
        usages=usages,
        expiration_seconds=expiration_seconds,
    )


def csr_manifest(req: CsrRequest) -> dict[str, Any]:
    """The object as `kubectl get csr -o yaml` prints it (the parts we read)."""
    spec: dict[str, Any] = {
        "request": base64.b64encode(req.request).decode(),
        "signerName": req.signer_name,
        "usages": list(req.usages),
        "username": req.requester.username,
        "groups": list(req.requester.groups),
    }
    if req.expiration_seconds is not None:
        spec["expirationSeconds"] = req.expiration_seconds
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": req.name},
        "spec": spec,
    }


def self_signed_pem(common_name: str = "test") -> bytes:
    """A syntactically valid certificate (for apiserver validation tests)."""
    cert, _key = generate_root(common_name, "ecdsa-p256", 1, datetime.datetime.now(datetime.UTC))
    return cert
