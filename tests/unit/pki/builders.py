"""Builders for CA material in pki tests: one keyword per thing a test varies.

`generate_root` makes only good roots; these make the bad ones too (not a CA,
no keyCertSign, expired, ...) and root -> intermediate chains.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from signer.pki.ca import CA_KEY_USAGE, CaKeyType, SigningKey, generate_key

NOW = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)
"""The fixed clock of pki tests: nothing depends on the machine's time."""

LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=True,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
"""For a "CA" that may not sign certificates (keyCertSign and cRLSign off)."""


@cache
def ca_key(label: str, key_type: CaKeyType = "ecdsa-p256") -> SigningKey:
    """One key per (label, type) per session: distinct CAs need distinct keys."""
    return generate_key(key_type)


def _hash(key: SigningKey) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size == 384:
        return hashes.SHA384()
    return hashes.SHA256()


@dataclass(frozen=True)
class Ca:
    cert: x509.Certificate
    key: SigningKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def make_ca(
    common_name: str,
    *,
    key_type: CaKeyType = "ecdsa-p256",
    issuer: Ca | None = None,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=365),
    is_ca: bool = True,
    key_cert_sign: bool = True,
    with_ski: bool = True,
) -> Ca:
    """A CA certificate, self-signed unless `issuer` is given."""
    key = ca_key(common_name, key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            CA_KEY_USAGE if key_cert_sign else LEAF_KEY_USAGE,
            critical=True,
        )
    )
    if with_ski:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
        critical=False,
    )
    return Ca(cert=builder.sign(signer_key, _hash(signer_key)), key=key)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
