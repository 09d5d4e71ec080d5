"""PEM/DER PKCS#10 -> CsrView: decode, refuse ambiguity, check the self-signature.

Pure. Everything the policy engine and the signer need to know about a request
is extracted here once, so neither has to touch ASN.1. A request that cannot
be decoded, or whose signature does not verify with its own public key,
raises `CsrParseError` with a message fit for a Denied condition.

The apiserver, `kubectl describe csr` and every Go client read `spec.request`
with Go's crypto/x509; we read it with `cryptography`. The two disagree on
some requests (which extensionRequest attribute counts, which subject value
types are strings, which keys and signatures verify), and a request that means
one thing to a human running kubectl and another to the policy engine must
never be signed. So a request is first walked with a strict DER reader
(`signer.pki.der`) against the subset of PKCS#10 on which both readers are
known to agree (tests/x509diff checks this against Go itself), then decoded
by `cryptography`, and the two readings are compared. Every refusal names
what was wrong; no exception other than `CsrParseError` leaves `parse_csr`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import threading
import warnings
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from signer.models import CsrView, KeyInfo, SubjectAttribute
from signer.pki import der
from signer.pki.der import DerError, Tlv

_PEM_HEADERS = (
    b"-----BEGIN CERTIFICATE REQUEST-----",
    b"-----BEGIN NEW CERTIFICATE REQUEST-----",
)
_SHORT_NAMES = {
    NameOID.COMMON_NAME.dotted_string: "CN",
    NameOID.ORGANIZATION_NAME.dotted_string: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string: "OU",
    NameOID.COUNTRY_NAME.dotted_string: "C",
    NameOID.STATE_OR_PROVINCE_NAME.dotted_string: "ST",
    NameOID.LOCALITY_NAME.dotted_string: "L",
    NameOID.STREET_ADDRESS.dotted_string: "STREET",
    NameOID.DOMAIN_COMPONENT.dotted_string: "DC",
    NameOID.USER_ID.dotted_string: "UID",
    NameOID.SERIAL_NUMBER.dotted_string: "serialNumber",
    NameOID.EMAIL_ADDRESS.dotted_string: "emailAddress",
}
_MAX_QUOTED = 100
# Refusals name the field, as policy violations do ("spec.request dnsNames: ...").
_VERSION = "spec.request version"
_SUBJECT = "spec.request subject"
_ATTRIBUTES = "spec.request attributes"
_EXTENSIONS = "spec.request extensions"
_SANS = "spec.request subjectAltNames"
_DNS = "spec.request dnsNames"
_IPS = "spec.request ipAddresses"
_URIS = "spec.request uris"
_EMAILS = "spec.request emailAddresses"
_KEY = "spec.request publicKey"
_SIGNATURE = "spec.request signature"

_SINGLE_VALUED = ("2.5.4.3", "2.5.4.5")
"""Go's pkix.Name keeps only the LAST CommonName and SerialNumber of a subject."""

_STRINGS = {0x0C: "UTF8String", 0x13: "PrintableString", 0x16: "IA5String", 0x1E: "BMPString"}
"""Subject value types Go and cryptography both decode to the same text."""
_OTHER_TYPES = {
    0x01: "BOOLEAN",
    0x02: "INTEGER",
    0x03: "BIT STRING",
    0x04: "OCTET STRING",
    0x05: "NULL",
    0x06: "OBJECT IDENTIFIER",
    0x12: "NumericString",
    0x14: "T61String",
    0x17: "UTCTime",
    0x18: "GeneralizedTime",
    0x1A: "VisibleString",
    0x1C: "UniversalString",
}
_BMP_REFUSED = re.compile("[\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
"""Code units Go's BMPString decoder refuses (surrogates, noncharacters)."""
_PRINTABLE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
)

_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
_MS_EXTENSION_REQUEST = "1.3.6.1.4.1.311.2.1.14"
_SAN = "2.5.29.17"

_NULL = b"\x05\x00"
_PSS_PARAMS = frozenset(
    bytes.fromhex(
        "3034a00f300d06096086480165030402" + h + "0500a11c301a06092a864886f70d010108"
        "300d06096086480165030402" + h + "0500a2030201" + salt
    )
    for h, salt in (("01", "20"), ("02", "30"), ("03", "40"))
)
"""The only RSASSA-PSS parameters Go verifies: SHA-2, MGF1 with the same hash, salt = hash size."""
_SIGNATURES: dict[str, tuple[str, str, frozenset[bytes | None]]] = {
    "1.2.840.113549.1.1.11": ("sha256WithRSAEncryption", "rsa", frozenset({_NULL, None})),
    "1.2.840.113549.1.1.12": ("sha384WithRSAEncryption", "rsa", frozenset({_NULL, None})),
    "1.2.840.113549.1.1.13": ("sha512WithRSAEncryption", "rsa", frozenset({_NULL, None})),
    "1.2.840.113549.1.1.10": ("RSASSA-PSS", "rsa", _PSS_PARAMS),
    "1.2.840.10045.4.3.2": ("ecdsa-with-SHA256", "ecdsa", frozenset({None})),
    "1.2.840.10045.4.3.3": ("ecdsa-with-SHA384", "ecdsa", frozenset({None})),
    "1.2.840.10045.4.3.4": ("ecdsa-with-SHA512", "ecdsa", frozenset({None})),
    "1.3.101.112": ("Ed25519", "ed25519", frozenset({None})),
}
"""Signature algorithm OID -> (name, key family, accepted parameter encodings)."""
_WEAK_SIGNATURES = {
    "1.2.840.113549.1.1.2": "md2WithRSAEncryption",
    "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.3.14.3.2.29": "sha1WithRSASignature",
    "1.2.840.10045.4.1": "ecdsa-with-SHA1",
    "1.2.840.10040.4.3": "dsa-with-SHA1",
}
_CURVES = {
    "1.3.132.0.33": 28,  # P-224
    "1.2.840.10045.3.1.7": 32,  # P-256
    "1.3.132.0.34": 48,  # P-384
    "1.3.132.0.35": 66,  # P-521
}
"""Named curves Go's crypto/x509 parses, with their coordinate size in bytes."""
_UNVERIFIABLE_KEYS = {
    "1.3.101.113": "Ed448",
    "1.2.840.10040.4.1": "DSA",
    "1.3.101.110": "X25519",
    "1.3.101.111": "X448",
    "1.2.840.113549.1.1.10": "RSASSA-PSS",
}
"""Keys cryptography verifies but Go's CheckSignature cannot (so the apiserver refuses them)."""

_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_URI = re.compile(
    rf"[a-z][a-z0-9+.\-]*:"  # Go lower-cases the scheme: accept only the lower-case form
    rf"(?://(?:[A-Za-z0-9\-_~!$&'()*+,;=]+(?:\.[A-Za-z0-9\-_~!$&'()*+,;=]+)*)(?::[0-9]+)?"
    rf"(?:/{_PCHAR}*)*"  # authority (no user info, no IP literal), then an absolute path
    rf"|(?!//){_PCHAR}*(?:/{_PCHAR}*)*)"  # or, without an authority, a path not starting "//"
    rf"(?:\?(?:{_PCHAR}|[/?])*)?"
    rf"(?:#(?:{_PCHAR}|[/?])+)?"  # Go drops an empty fragment
)
"""SAN URIs Go's url.Parse accepts and url.URL.String() gives back byte for byte."""


class CsrParseError(ValueError):
    """spec.request is not a usable PKCS#10 request; the message says why."""


@dataclass(slots=True)
class _Reading:
    """What the strict walk read, to compare with cryptography's reading."""

    subject: tuple[tuple[str, str], ...] = ()
    dns: list[str] = field(default_factory=list)
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    key_family: str = ""


def parse_csr(data: bytes) -> CsrView:
    """Decode one PKCS#10 request (PEM, or DER as a fallback) and verify it.

    Exactly one PEM block of type CERTIFICATE REQUEST is accepted, as the
    apiserver does; trailing blocks would be an ambiguity we refuse.
    """
    try:
        request = _der(data)
        reading = _walk(request)
        csr = _load(request)
        _verify(csr)
        view = _view(csr)
        _compare(view, reading)
    except CsrParseError:
        raise
    except DerError as exc:
        raise CsrParseError(f"spec.request is not a valid PKCS#10 request: {exc}") from exc
    except Exception as exc:  # a safety net: the specific checks above should refuse first
        raise CsrParseError(f"spec.request cannot be decoded: {type(exc).__name__}: {exc}") from exc
    return view


def _quote(value: str) -> str:
    """A request-supplied value, bounded and on one line, for a refusal message."""
    return json.dumps(value[:_MAX_QUOTED]) + ("..." if len(value) > _MAX_QUOTED else "")


def _der(data: bytes) -> bytes:
    """The DER bytes of spec.request, from its only PEM block or as given."""
    stripped = data.strip()
    if not stripped:
        raise CsrParseError("spec.request is empty")
    if not stripped.startswith(b"-----BEGIN"):
        if not data.startswith(b"\x30"):  # not even a SEQUENCE
            raise CsrParseError("spec.request is neither PEM nor DER PKCS#10")
        return data  # DER: whitespace-looking bytes at either end are part of it
    blocks = stripped.count(b"-----BEGIN")
    if blocks != 1:
        raise CsrParseError(f"spec.request must hold exactly one PEM block, found {blocks}")
    first, _, rest = stripped.partition(b"\n")
    body, _, last = rest.rpartition(b"\n")
    first = first.rstrip(b"\r")
    if first not in _PEM_HEADERS:
        raise CsrParseError("spec.request PEM block is not a CERTIFICATE REQUEST")
    if last.rstrip(b"\r") != first.replace(b"BEGIN", b"END") or b":" in body:
        raise CsrParseError("spec.request PEM block is malformed (headers, or a bad END line)")
    try:
        return base64.b64decode(b"".join(body.split()), validate=True)
    except binascii.Error as exc:
        raise CsrParseError(f"spec.request PEM block is not valid base64: {exc}") from exc


def _fields(tlv: Tlv, tag: int, what: str, *counts: int) -> list[Tlv]:
    items = der.expect(tlv, tag, what).children()
    if len(items) not in counts:
        raise DerError(f"{what} has {len(items)} fields")
    return items


def _walk(request: bytes) -> _Reading:
    """Read the request strictly, refusing everything Go could read differently."""
    tbs, algorithm, signature = _fields(der.read_one(request), der.SEQUENCE, "the request", 3)
    version, subject, spki, attributes = _fields(tbs, der.SEQUENCE, "certificationRequestInfo", 4)
    if (number := der.as_int(version)) != 0:
        raise CsrParseError(
            f"{_VERSION}: {number} is not 0 (v1), the only PKCS#10 version; "
            "cryptography refuses it and Kubernetes would ignore it"
        )
    reading = _Reading(subject=_name(subject, _SUBJECT))
    _read_key(spki, reading)
    _read_signature(algorithm, signature, reading)
    for oid, value in _extensions(attributes).items():
        if oid == _SAN:
            _read_san(value, reading)
    return reading


def _name(tlv: Tlv, where: str) -> tuple[tuple[str, str], ...]:
    """(OID, text) per attribute of a Name; one attribute per RDN, text values only."""
    out: list[tuple[str, str]] = []
    for rdn in der.expect(tlv, der.SEQUENCE, where).children():
        atvs = der.expect(rdn, der.SET, "an RDN").children()
        if not atvs:
            raise CsrParseError(f"{where}: an empty RDN (Kubernetes skips it, we cannot)")
        if len(atvs) > 1:
            raise CsrParseError(
                f"{where}: a multi-valued RDN ({len(atvs)} attributes in one set); "
                "one attribute per RDN is accepted"
            )
        oid_tlv, value = _fields(atvs[0], der.SEQUENCE, "an attribute of a name", 2)
        oid = der.as_oid(oid_tlv)
        out.append((oid, _text(value, f"{where}: {_SHORT_NAMES.get(oid, oid)}")))
    for oid in _SINGLE_VALUED:
        if (count := sum(1 for o, _ in out if o == oid)) > 1:
            raise CsrParseError(
                f"{where}: {count} {_SHORT_NAMES[oid]} attributes; at most one is allowed "
                "(Kubernetes reads the last one, we would read the first)"
            )
    return tuple(out)


def _text(value: Tlv, what: str) -> str:
    """Decode a string value exactly as Go does, or refuse it."""
    kind = _STRINGS.get(value.tag)
    if kind is None:
        kind = _OTHER_TYPES.get(value.tag, f"value with tag 0x{value.tag:02x}")
        raise CsrParseError(
            f"{what} is encoded as {kind}; only UTF8String, PrintableString, IA5String "
            "and BMPString values read the same in Kubernetes and here"
        )
    raw = value.content
    try:
        if kind == "BMPString":
            text = raw.decode("utf-16-be")
            if len(text) * 2 != len(raw) or _BMP_REFUSED.search(text):
                raise ValueError("it has a surrogate or a noncharacter, which Kubernetes refuses")
            if text.endswith("\x00"):
                raise ValueError("it ends in NUL, which Kubernetes strips")
        elif kind == "UTF8String":
            text = raw.decode("utf-8")
        elif kind == "IA5String" and not raw.isascii():
            raise ValueError("it has a non-ASCII byte, which Kubernetes refuses")
        elif kind == "PrintableString" and not _PRINTABLE.issuperset(raw):
            raise ValueError("it has characters outside the PrintableString alphabet")
        else:
            text = raw.decode("ascii")
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise CsrParseError(f"{what} is not a valid {kind}: {exc}") from exc
    return text


def _extensions(attributes: Tlv) -> dict[str, bytes]:
    """The requested extensions, from the only extensionRequest attribute."""
    requests: list[list[Tlv]] = []
    found = der.expect(attributes, 0xA0, "the attributes").children()
    _check_set_order(found, "the attributes")
    for attribute in found:
        oid_tlv, values = _fields(attribute, der.SEQUENCE, "an attribute", 2)
        oid = der.as_oid(oid_tlv)
        items = der.expect(values, der.SET, "an attribute's values").children()
        if len(items) > 1:
            _check_set_order(items, f"the values of attribute {oid}")
        if oid == _MS_EXTENSION_REQUEST:
            raise CsrParseError(
                f"{_ATTRIBUTES}: Microsoft's extensionRequest ({oid}) is not read by "
                f"Kubernetes; request extensions under {_EXTENSION_REQUEST} only"
            )
        if oid == _EXTENSION_REQUEST:
            requests.append(items)
    if not requests:
        return {}
    if len(requests) > 1:
        raise CsrParseError(
            f"{_ATTRIBUTES}: {len(requests)} extensionRequest attributes; Kubernetes merges "
            "them and we would read one, so exactly one is accepted"
        )
    if len(requests[0]) != 1:
        raise CsrParseError(
            f"{_ATTRIBUTES}: the extensionRequest has {len(requests[0])} values; "
            "exactly one is accepted"
        )
    out: dict[str, bytes] = {}
    for extension in der.expect(requests[0][0], der.SEQUENCE, "the extensions").children():
        parts = _fields(extension, der.SEQUENCE, "an extension", 2, 3)
        oid = der.as_oid(parts[0])
        if len(parts) == 3 and not der.as_bool(parts[1]):
            raise CsrParseError(f"{_EXTENSIONS}: {oid} spells out critical=FALSE, which DER omits")
        if oid in out:
            raise CsrParseError(f"{_EXTENSIONS}: {oid} is requested more than once")
        out[oid] = der.expect(parts[-1], der.OCTET_STRING, "an extension's value").content
    return out


def _check_set_order(items: list[Tlv], what: str) -> None:
    """DER sorts a SET OF; cryptography refuses one out of order, Go does not care."""
    encodings = [item.raw for item in items]
    if encodings != sorted(encodings):
        raise CsrParseError(f"{_ATTRIBUTES}: {what} are not in DER (sorted) order")


def _read_san(value: bytes, reading: _Reading) -> None:
    try:
        names = der.expect(der.read_one(value), der.SEQUENCE, "GeneralNames").children()
    except DerError as exc:
        raise CsrParseError(f"{_SANS}: the extension cannot be decoded: {exc}") from exc
    for name in names:
        number = name.tag & 0x1F
        if name.tag & 0xC0 != 0x80 or number > 8:
            raise CsrParseError(f"{_SANS}: an entry with tag 0x{name.tag:02x} is not a GeneralName")
        if name.constructed != (number in (0, 3, 4, 5)):
            raise CsrParseError(f"{_SANS}: entry [{number}] is encoded in the wrong form")
        if number in (3, 5):
            raise CsrParseError(f"{_SANS}: x400Address and ediPartyName are not supported")
        if number == 0:
            der.as_oid(_fields(name, name.tag, "an otherName", 2)[0])
        elif number == 4:
            (directory,) = _fields(name, name.tag, "a directoryName", 1)
            _name(directory, f"{_SANS} directoryName")
        elif number == 7:
            reading.ips.append(_ip(name.content))
        elif number == 8:
            der.as_oid(Tlv(der.OID, name.content, name.raw))
        elif number == 1:
            reading.emails.append(_ia5(name.content, _EMAILS))
        elif number == 2:
            reading.dns.append(_ia5(name.content, _DNS))
        else:
            reading.uris.append(_uri(_ia5(name.content, _URIS)))


def _ia5(raw: bytes, where: str) -> str:
    """SAN strings are IA5String: Go refuses the whole request on a non-ASCII byte."""
    if not raw.isascii():
        text = _quote(raw.decode("utf-8", "replace"))
        raise CsrParseError(f"{where}: {text} is not ASCII, which Kubernetes refuses")
    return raw.decode("ascii")


def _ip(raw: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if len(raw) not in (4, 16):
        raise CsrParseError(f"{_IPS}: {len(raw)} bytes is neither IPv4 (4) nor IPv6 (16)")
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        raise CsrParseError(
            f"{_IPS}: {_quote(str(ip))} is IPv4-mapped; Kubernetes reads it as {ip.ipv4_mapped}"
        )
    return ip


def _uri(uri: str) -> str:
    if _URI.fullmatch(uri) is None:
        raise CsrParseError(
            f"{_URIS}: {_quote(uri)} is not a URI Kubernetes reads back unchanged "
            "(lower-case scheme; host without user info, IP literal or port letters; "
            "valid %-escapes; no empty fragment)"
        )
    return uri


def _read_key(spki: Tlv, reading: _Reading) -> None:
    algorithm, key_bits = _fields(spki, der.SEQUENCE, "subjectPublicKeyInfo", 2)
    oid_tlv, *params = _fields(algorithm, der.SEQUENCE, "the key algorithm", 1, 2)
    oid = der.as_oid(oid_tlv)
    param = params[0].raw if params else None
    key = der.as_bits(key_bits)
    if oid in _UNVERIFIABLE_KEYS:
        raise CsrParseError(
            f"{_KEY}: {_UNVERIFIABLE_KEYS[oid]} keys cannot be verified by Kubernetes "
            "(RSA, ECDSA and Ed25519 can)"
        )
    if oid == "1.2.840.113549.1.1.1":
        if param != _NULL:
            raise CsrParseError(f"{_KEY}: the RSA algorithm parameters are not NULL")
        _check_rsa_key(key)
        reading.key_family = "rsa"
    elif oid == "1.2.840.10045.2.1":
        curve = der.as_oid(params[0]) if params and params[0].tag == der.OID else "explicit"
        if curve not in _CURVES:
            raise CsrParseError(
                f"{_KEY}: ECDSA curve {curve} is not supported by Kubernetes "
                "(P-224, P-256, P-384 and P-521 are)"
            )
        if len(key) != 1 + 2 * _CURVES[curve] or key[0] != 0x04:
            raise CsrParseError(
                f"{_KEY}: the ECDSA point is not uncompressed, the only form Kubernetes reads"
            )
        reading.key_family = "ecdsa"
    elif oid == "1.3.101.112":
        if param is not None:
            raise CsrParseError(f"{_KEY}: the Ed25519 key has algorithm parameters")
        reading.key_family = "ed25519"
    else:
        raise CsrParseError(f"{_KEY}: algorithm {oid} is not supported")


def _check_rsa_key(key: bytes) -> None:
    """Refuse RSA keys Go's crypto/rsa will not verify with (cryptography would)."""
    modulus, exponent = _fields(der.read_one(key), der.SEQUENCE, "the RSA key", 2)
    n, e = der.as_int(modulus), der.as_int(exponent)
    if not 3 <= e < 2**31 or e % 2 == 0:
        raise CsrParseError(
            f"{_KEY}: RSA exponent {e} is not odd and between 3 and 2^31-1, "
            "which Kubernetes requires"
        )
    if n.bit_length() < 1024:
        raise CsrParseError(
            f"{_KEY}: a {n.bit_length()}-bit RSA key is below Kubernetes' 1024-bit minimum"
        )


def _read_signature(algorithm: Tlv, signature: Tlv, reading: _Reading) -> None:
    oid_tlv, *params = _fields(algorithm, der.SEQUENCE, "the signature algorithm", 1, 2)
    oid = der.as_oid(oid_tlv)
    if oid in _WEAK_SIGNATURES:
        raise CsrParseError(
            f"{_SIGNATURE}: {_WEAK_SIGNATURES[oid]}; MD5 and SHA-1 signatures are not accepted"
        )
    if oid not in _SIGNATURES:
        raise CsrParseError(
            f"{_SIGNATURE}: algorithm {oid} is not one Kubernetes verifies "
            "(RSA PKCS#1 v1.5 or PSS with SHA-2, ECDSA with SHA-2, Ed25519)"
        )
    name, family, accepted = _SIGNATURES[oid]
    if (params[0].raw if params else None) not in accepted:
        hint = " (it wants SHA-2, MGF1 with that hash, salt = hash size)" if "PSS" in name else ""
        raise CsrParseError(
            f"{_SIGNATURE}: {name} with parameters Kubernetes does not verify{hint}"
        )
    if family != reading.key_family:
        raise CsrParseError(f"{_SIGNATURE}: {name} does not match the request's key")
    der.as_bits(signature)


def _load(request: bytes) -> x509.CertificateSigningRequest:
    try:
        return x509.load_der_x509_csr(request)
    except ValueError as exc:
        raise CsrParseError(f"spec.request is not a valid PKCS#10 request: {exc}") from exc


def _verify(csr: x509.CertificateSigningRequest) -> None:
    try:
        valid = csr.is_signature_valid
    except Exception as exc:  # unsupported algorithms raise from the backend
        raise CsrParseError(f"cannot verify the request's signature: {exc}") from exc
    if not valid:
        raise CsrParseError("the request's self-signature does not verify")


def _compare(view: CsrView, reading: _Reading) -> None:
    """cryptography's reading must be the strict one: what we sign is what we checked."""
    if tuple((a.oid, a.value) for a in view.subject) != reading.subject:
        raise CsrParseError(f"{_SUBJECT}: cryptography and the strict reading disagree")
    sans = (list(view.dns_names), list(view.ip_addresses), list(view.uris), list(view.emails))
    if sans != (reading.dns, reading.ips, reading.uris, reading.emails):
        raise CsrParseError(f"{_SANS}: cryptography and the strict reading disagree")


def _key_info(csr: x509.CertificateSigningRequest) -> KeyInfo:
    try:
        key = csr.public_key()
    except Exception:
        return KeyInfo(algorithm="unknown", size=0)
    return key_info(key)


def key_info(key: object) -> KeyInfo:
    """What the key floor and `keys` rules look at, for any public key object.

    Public so that keys which do not come from a CSR (a PodCertificateRequest's
    spec.pkixPublicKey) are described exactly as CSR keys are.
    """
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


_WARNINGS = threading.Lock()


def _view(csr: x509.CertificateSigningRequest) -> CsrView:
    # cryptography warns (and still decodes) when a CN is not 1 to 64 bytes or a
    # C not two letters; Go accepts both, and kubelet CNs are often longer.
    # catch_warnings swaps process-wide state; parsing also runs in worker threads
    # (large requests), so every use here is serialized.
    with _WARNINGS, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Attribute's length must be", UserWarning)
        subject = tuple(
            SubjectAttribute(
                oid=attr.oid.dotted_string,
                name=_SHORT_NAMES.get(attr.oid.dotted_string, attr.oid.dotted_string),
                value=attr.value if isinstance(attr.value, str) else attr.value.hex(),
            )
            for attr in csr.subject
        )
        extensions = list(csr.extensions)  # a SAN directoryName is a Name too

    dns: tuple[str, ...] = ()
    ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()
    uris: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    other: list[str] = []
    requests_ca = False
    for ext in extensions:
        if ext.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            san = ext.value
            assert isinstance(san, x509.SubjectAlternativeName)
            dns = tuple(san.get_values_for_type(x509.DNSName))
            ips = tuple(san.get_values_for_type(x509.IPAddress))  # type: ignore[arg-type]
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
        ip_addresses=ips,
        uris=uris,
        emails=emails,
        other_sans=tuple(other),
        key=_key_info(csr),
        requests_ca=requests_ca,
        csr=csr,
    )
