"""Hand-built PKCS#10 requests: any structure, any encoding, validly self-signed.

`request(...)` assembles certificationRequestInfo from DER pieces (see
`der_build`) and signs those exact bytes with a cached key, so a test can
produce what `cryptography`'s builder never would (two extensionRequest
attributes, a BIT STRING CN, version 1, ...) and still have a signature that
verifies, or deliberately does not.
"""

from __future__ import annotations

import base64
import math
import textwrap
from collections.abc import Callable, Sequence
from functools import cache
from typing import Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

from tests.x509diff import der_build as d

KeyKind = Literal[
    "rsa-2048",
    "rsa-3072",
    "rsa-1024",
    "rsa-2048-e3",
    "rsa-2048-e2^31+",
    "ecdsa-p224",
    "ecdsa-p256",
    "ecdsa-p384",
    "ecdsa-p521",
    "ecdsa-secp256k1",
    "ed25519",
    "ed448",
    "dsa-2048",
]
KEY_KINDS: tuple[KeyKind, ...] = KeyKind.__args__  # type: ignore[attr-defined]
PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | dsa.DSAPrivateKey
)

SigAlg = Literal[
    "sha256-rsa",
    "sha384-rsa",
    "sha512-rsa",
    "sha1-rsa",
    "md5-rsa",
    "pss-sha256",
    "pss-sha512",
    "pss-sha256-salt20",
    "ecdsa-sha256",
    "ecdsa-sha384",
    "ecdsa-sha512",
    "ecdsa-sha1",
    "ed25519",
    "ed448",
    "dsa-sha256",
]
SIG_ALGS: tuple[SigAlg, ...] = SigAlg.__args__  # type: ignore[attr-defined]

# OIDs used across the differential tests.
CN = "2.5.4.3"
SERIAL = "2.5.4.5"
COUNTRY = "2.5.4.6"
ORG = "2.5.4.10"
OU = "2.5.4.11"
UID = "0.9.2342.19200300.100.1.1"
EMAIL_ADDRESS = "1.2.840.113549.1.9.1"
UNIQUE_ID = "2.5.4.45"
EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
MS_EXTENSION_REQUEST = "1.3.6.1.4.1.311.2.1.14"
CHALLENGE_PASSWORD = "1.2.840.113549.1.9.7"
SAN = "2.5.29.17"
BASIC_CONSTRAINTS = "2.5.29.19"
KEY_USAGE = "2.5.29.15"

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
    "md5": hashes.MD5(),
}
_SIG_OIDS: dict[str, str] = {
    "sha256-rsa": "1.2.840.113549.1.1.11",
    "sha384-rsa": "1.2.840.113549.1.1.12",
    "sha512-rsa": "1.2.840.113549.1.1.13",
    "sha1-rsa": "1.2.840.113549.1.1.5",
    "md5-rsa": "1.2.840.113549.1.1.4",
    "pss-sha256": "1.2.840.113549.1.1.10",
    "pss-sha512": "1.2.840.113549.1.1.10",
    "pss-sha256-salt20": "1.2.840.113549.1.1.10",
    "ecdsa-sha256": "1.2.840.10045.4.3.2",
    "ecdsa-sha384": "1.2.840.10045.4.3.3",
    "ecdsa-sha512": "1.2.840.10045.4.3.4",
    "ecdsa-sha1": "1.2.840.10045.4.1",
    "ed25519": "1.3.101.112",
    "ed448": "1.3.101.113",
    "dsa-sha256": "2.16.840.1.101.3.4.3.2",
}


_SIG_HASH: dict[str, str] = {
    alg: next(part for part in alg.split("-") if part in _HASHES)
    for alg in _SIG_OIDS
    if any(part in _HASHES for part in alg.split("-"))
}
"""The hash each algorithm signs with (Ed25519/Ed448 hash internally)."""


def _big_exponent_key() -> rsa.RSAPrivateKey:
    """RSA 2048 with a public exponent just above 2^31 (cryptography can't generate one)."""
    base = key("rsa-2048")
    assert isinstance(base, rsa.RSAPrivateKey)
    p, q = base.private_numbers().p, base.private_numbers().q
    lam = math.lcm(p - 1, q - 1)
    e = 2**31 + 1
    while math.gcd(e, lam) != 1:
        e += 2
    dd = pow(e, -1, lam)
    numbers = rsa.RSAPrivateNumbers(
        p,
        q,
        dd,
        rsa.rsa_crt_dmp1(dd, p),
        rsa.rsa_crt_dmq1(dd, q),
        rsa.rsa_crt_iqmp(p, q),
        rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


def key(kind: KeyKind, index: int = 0) -> PrivateKey:
    """A few keys per kind per session (`index` picks one): RSA generation is slow."""
    return _key(kind, index)  # one cache key per (kind, index), however it is called


@cache
def _key(kind: KeyKind, index: int) -> PrivateKey:
    if kind == "rsa-2048-e2^31+":
        return _big_exponent_key()
    if kind.startswith("rsa-"):
        size, _, e = kind[4:].partition("-e")
        return rsa.generate_private_key(int(e or 65537), int(size))
    curves: dict[str, ec.EllipticCurve] = {
        "ecdsa-p224": ec.SECP224R1(),
        "ecdsa-p256": ec.SECP256R1(),
        "ecdsa-p384": ec.SECP384R1(),
        "ecdsa-p521": ec.SECP521R1(),
        "ecdsa-secp256k1": ec.SECP256K1(),
    }
    if kind in curves:
        return ec.generate_private_key(curves[kind])
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate()
    return dsa.generate_private_key(2048)


def natural_sig_alg(kind: KeyKind) -> SigAlg:
    """The signature algorithm a well-behaved client uses with this key."""
    if kind.startswith("rsa"):
        return "sha256-rsa"
    if kind in ("ecdsa-p384", "ecdsa-p521"):
        return "ecdsa-sha384"
    if kind.startswith("ecdsa"):
        return "ecdsa-sha256"
    if kind.startswith("dsa"):
        return "dsa-sha256"
    return "ed448" if kind == "ed448" else "ed25519"


def usual_sig_algs(kind: KeyKind) -> tuple[SigAlg, ...]:
    """The signature algorithms clients commonly use with this key."""
    if kind.startswith("rsa"):
        return ("sha256-rsa", "sha256-rsa", "sha384-rsa", "sha512-rsa", "pss-sha256", "pss-sha512")
    if kind.startswith("ecdsa"):
        return ("ecdsa-sha256", "ecdsa-sha384", "ecdsa-sha512")
    return (natural_sig_alg(kind),)


def pss_params(hash_name: str, salt: int) -> bytes:
    hash_id = d.seq(
        d.oid({"sha256": "2.16.840.1.101.3.4.2.1", "sha512": "2.16.840.1.101.3.4.2.3"}[hash_name]),
        d.null(),
    )
    return d.seq(
        d.context(0, hash_id, constructed=True),
        d.context(1, d.seq(d.oid("1.2.840.113549.1.1.8"), hash_id), constructed=True),
        d.context(2, d.integer(salt), constructed=True),
    )


def algorithm_identifier(
    alg: SigAlg, params: Literal["default", "absent", "null"] = "default"
) -> bytes:
    """The AlgorithmIdentifier for `alg`; `params` overrides the usual parameters."""
    if alg.startswith("pss"):
        hash_name = alg.split("-")[1]
        salt = 20 if alg.endswith("salt20") else _HASHES[hash_name].digest_size
        default = pss_params(hash_name, salt)
    elif alg.endswith("-rsa"):
        default = d.null()
    else:
        default = b""
    body = {"default": default, "absent": b"", "null": d.null()}[params]
    return d.seq(d.oid(_SIG_OIDS[alg]), body)


def sign(private: PrivateKey, alg: SigAlg, tbs: bytes) -> bytes:
    """Sign `tbs` the way `alg` says, with whatever `private` can do."""
    chosen = _HASHES[_SIG_HASH.get(alg, "sha256")]
    if isinstance(private, rsa.RSAPrivateKey):
        if alg.startswith("pss"):
            salt = 20 if alg.endswith("salt20") else chosen.digest_size
            return private.sign(tbs, padding.PSS(padding.MGF1(chosen), salt), chosen)
        return private.sign(tbs, padding.PKCS1v15(), chosen)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.sign(tbs, ec.ECDSA(chosen))
    if isinstance(private, dsa.DSAPrivateKey):
        return private.sign(tbs, chosen)
    return private.sign(tbs)


def spki(private: PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- pieces of a request ---------------------------------------------------------


def atv(oid: str, value: bytes) -> bytes:
    """One AttributeTypeAndValue; `value` is a complete TLV (d.string(...), d.bits(...))."""
    return d.seq(d.oid(oid), value)


def name(*rdns: Sequence[bytes]) -> bytes:
    """A Name from RDNs, each a list of ATVs, kept in the given order."""
    return d.seq(*(d.set_of(rdn, sort=False) for rdn in rdns))


def cn(text: str, tag: int = d.UTF8_STRING) -> bytes:
    """A subject with one CN."""
    return name([atv(CN, d.string(tag, text))])


def extension(oid: str, value: bytes, critical: bool | None = None) -> bytes:
    """An Extension; critical=None omits the BOOLEAN, False spells it out (not DER)."""
    flag = [] if critical is None else [d.boolean(critical)]
    return d.seq(d.oid(oid), *flag, d.octets(value))


def general_names(*names: bytes) -> bytes:
    return d.seq(*names)


def dns(text: str | bytes) -> bytes:
    return d.context(2, text.encode() if isinstance(text, str) else text, constructed=False)


def email(text: str | bytes) -> bytes:
    return d.context(1, text.encode() if isinstance(text, str) else text, constructed=False)


def uri(text: str | bytes) -> bytes:
    return d.context(6, text.encode() if isinstance(text, str) else text, constructed=False)


def ip(raw: bytes) -> bytes:
    return d.context(7, raw, constructed=False)


def san(*names: bytes, critical: bool | None = None) -> bytes:
    return extension(SAN, general_names(*names), critical)


def attribute(oid: str, *values: bytes) -> bytes:
    """An Attribute with the given values (a SET, kept in order)."""
    return d.seq(d.oid(oid), d.set_of(values, sort=False))


def extension_request(*extensions: bytes, oid: str = EXTENSION_REQUEST) -> bytes:
    return attribute(oid, d.seq(*extensions))


def request(
    *,
    subject: bytes | None = None,
    attributes: Sequence[bytes] = (),
    key_kind: KeyKind = "ecdsa-p256",
    key_index: int = 0,
    sig_alg: SigAlg | None = None,
    sig_params: Literal["default", "absent", "null"] = "default",
    version: int | bytes = 0,
    public_key_info: bytes | None = None,
    sort_attributes: bool = True,
    tamper: bool = False,
    signer: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """A DER request signed over exactly these bytes (unless `tamper`).

    `version` is a number, or the complete TLV to put there.
    """
    private = key(key_kind, key_index)
    tbs = d.seq(
        d.integer(version) if isinstance(version, int) else version,
        cn("web") if subject is None else subject,
        public_key_info or spki(private),
        d.tlv(0xA0, b"".join(sorted(attributes) if sort_attributes else attributes)),
    )
    alg = sig_alg or natural_sig_alg(key_kind)
    signature = signer(tbs) if signer else sign(private, alg, tbs)
    if tamper:
        signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
    return d.seq(tbs, algorithm_identifier(alg, sig_params), d.bits(signature))


def pem(der: bytes) -> bytes:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return (
        f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n".encode()
    )
