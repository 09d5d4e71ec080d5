"""Build a PKCS#10 request from what it asks for. Pure (no I/O; keys are made in memory).

`policy test` cases describe a CSR by its names and key type instead of
carrying PEM, so a suite has no keys to maintain and stays readable in review.
The request built here is then read back by `signer.pki.parsing`, exactly as the
controller reads a real one: a test exercises the whole decision path, parser
included.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from signer.pki.ca import CaKeyType, SigningKey, generate_key

KEY_TYPES: Final[dict[str, CaKeyType]] = {
    "RSA-2048": "rsa-2048",
    "RSA-3072": "rsa-3072",
    "RSA-4096": "rsa-4096",
    "ECDSA-P256": "ecdsa-p256",
    "ECDSA-P384": "ecdsa-p384",
    "Ed25519": "ed25519",
}
"""The key types a test case may name, and the generator each one uses."""


class RequestBuildError(ValueError):
    """A value cannot be put in a request (e.g. a non-ASCII DNS name)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        """The RequestSpec field, as a test file spells it (`dnsNames`)."""
        self.message = message


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """What the request asks for; everything empty makes an empty subject and no SANs."""

    common_name: str | None = None
    organizations: Sequence[str] = ()
    dns_names: Sequence[str] = ()
    ip_addresses: Sequence[str] = ()
    uris: Sequence[str] = ()
    emails: Sequence[str] = ()


class KeyCache:
    """One key per key type for the life of the cache: RSA-4096 takes a second to make."""

    def __init__(self) -> None:
        self._keys: dict[str, SigningKey] = {}

    def key(self, key_type: str) -> SigningKey:
        """The key for a name of KEY_TYPES; KeyError for any other name."""
        key = self._keys.get(key_type)
        if key is None:
            key = self._keys[key_type] = generate_key(KEY_TYPES[key_type])
        return key


def build_request(spec: RequestSpec, key: SigningKey) -> bytes:
    """A PEM PKCS#10 request for `spec`, self-signed with `key`."""
    attributes: list[x509.NameAttribute[str]] = []
    try:
        if spec.common_name is not None:
            attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name))
        attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in spec.organizations]
    except ValueError as exc:
        raise RequestBuildError("subject", str(exc)) from None
    sans: list[x509.GeneralName] = []
    for kind, values, make in (
        ("dnsNames", spec.dns_names, x509.DNSName),
        ("uris", spec.uris, x509.UniformResourceIdentifier),
        ("emails", spec.emails, x509.RFC822Name),
    ):
        for value in values:
            try:
                sans.append(make(value))
            except ValueError:
                raise RequestBuildError(
                    kind, f"{value!r} is not ASCII; write the A-label (xn--) form"
                ) from None
    for value in spec.ip_addresses:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            raise RequestBuildError("ipAddresses", f"{value!r} is not an IP address") from None
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, _hash_for(key))
    return csr.public_bytes(serialization.Encoding.PEM)


def _hash_for(key: SigningKey) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()
