"""PEM/DER PKCS#10 -> CsrView: decode, check the self-signature, extract.

Pure. Everything the policy engine and the signer need to know about a request
is extracted here once, so neither has to touch ASN.1. A request that cannot
be decoded, or whose signature does not verify with its own public key,
raises `CsrParseError` with a message fit for a Denied condition.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from signer.models import CsrView, KeyInfo, SubjectAttribute

_PEM_CSR_TYPES = (b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST")
_SHORT_NAMES = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.EMAIL_ADDRESS: "emailAddress",
}


class CsrParseError(ValueError):
    """spec.request is not a usable PKCS#10 request; the message says why."""


def parse_csr(data: bytes) -> CsrView:
    """Decode one PKCS#10 request (PEM, or DER as a fallback) and verify it.

    Exactly one PEM block of type CERTIFICATE REQUEST is accepted, as the
    apiserver does; trailing blocks would be an ambiguity we refuse.
    """
    csr = _load(data)
    try:
        valid = csr.is_signature_valid
    except Exception as exc:  # unsupported algorithms raise from the backend
        raise CsrParseError(f"cannot verify the request's signature: {exc}") from exc
    if not valid:
        raise CsrParseError("the request's self-signature does not verify")
    return _view(csr)


def _load(data: bytes) -> x509.CertificateSigningRequest:
    stripped = data.strip()
    if not stripped:
        raise CsrParseError("spec.request is empty")
    if stripped.startswith(b"-----BEGIN"):
        blocks = stripped.count(b"-----BEGIN")
        if blocks != 1:
            raise CsrParseError(f"spec.request must hold exactly one PEM block, found {blocks}")
        header = stripped.split(b"\n", 1)[0]
        if not any(b"BEGIN " + t + b"-----" in header for t in _PEM_CSR_TYPES):
            raise CsrParseError("spec.request PEM block is not a CERTIFICATE REQUEST")
        try:
            return x509.load_pem_x509_csr(stripped)
        except ValueError as exc:
            raise CsrParseError(f"spec.request is not a valid PKCS#10 request: {exc}") from exc
    try:
        return x509.load_der_x509_csr(stripped)
    except ValueError as exc:
        raise CsrParseError("spec.request is neither PEM nor DER PKCS#10") from exc


def _key_info(csr: x509.CertificateSigningRequest) -> KeyInfo:
    try:
        key = csr.public_key()
    except Exception:
        return KeyInfo(algorithm="unknown", size=0)
    if isinstance(key, rsa.RSAPublicKey):
        return KeyInfo(algorithm="rsa", size=key.key_size, exponent=key.public_numbers().e)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return KeyInfo(algorithm="ecdsa", size=key.curve.key_size, curve=key.curve.name)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyInfo(algorithm="ed25519", size=256)
    if isinstance(key, ed448.Ed448PublicKey):
        return KeyInfo(algorithm="ed448", size=456)
    if isinstance(key, dsa.DSAPublicKey):
        return KeyInfo(algorithm="dsa", size=key.key_size)
    return KeyInfo(algorithm="unknown", size=0)


def _view(csr: x509.CertificateSigningRequest) -> CsrView:
    try:
        subject = tuple(
            SubjectAttribute(
                oid=attr.oid.dotted_string,
                name=_SHORT_NAMES.get(attr.oid, attr.oid.dotted_string),
                value=attr.value if isinstance(attr.value, str) else attr.value.hex(),
            )
            for attr in csr.subject
        )
        extensions = list(csr.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise CsrParseError(f"spec.request has malformed subject or extensions: {exc}") from exc

    dns: tuple[str, ...] = ()
    ips: tuple[object, ...] = ()
    uris: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    other: list[str] = []
    requests_ca = False
    for ext in extensions:
        if ext.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            san = ext.value
            assert isinstance(san, x509.SubjectAlternativeName)
            dns = tuple(san.get_values_for_type(x509.DNSName))
            ips = tuple(san.get_values_for_type(x509.IPAddress))
            uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
            emails = tuple(san.get_values_for_type(x509.RFC822Name))
            for gn in san:
                if isinstance(gn, x509.OtherName):
                    other.append(f"otherName:{gn.type_id.dotted_string}")
                elif isinstance(gn, x509.DirectoryName):
                    other.append(f"dirName:{gn.value.rfc4514_string()}")
                elif isinstance(gn, x509.RegisteredID):
                    other.append(f"registeredID:{gn.value.dotted_string}")
        elif ext.oid == ExtensionOID.BASIC_CONSTRAINTS:
            bc = ext.value
            assert isinstance(bc, x509.BasicConstraints)
            requests_ca = bc.ca

    return CsrView(
        subject=subject,
        dns_names=dns,
        ip_addresses=ips,  # type: ignore[arg-type]
        uris=uris,
        emails=emails,
        other_sans=tuple(other),
        key=_key_info(csr),
        requests_ca=requests_ca,
        csr=csr,
    )
