"""Pod certificates for PodCertificateRequests: key forms, leaf shape, times, lifetime, refresh.

Every rule the apiserver checks on an Issued status (docs/design/podcertificaterequests.md,
section 3) has a test here: the leaf carries the request's key, the status times equal
the leaf's in whole seconds, the lifetime is in [1 h, maxExpirationSeconds], and
beginRefreshAt is in [notBefore + 10 min, notAfter - 10 min].
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from signer.models import Refusal
from signer.pki.ca import CaBundle, CaKeyType, load_ca
from signer.pki.podcerts import (
    INVALID_KEY,
    MIN_LIFETIME,
    POD_BACKDATE,
    REFRESH_MARGIN,
    UNSUPPORTED_KEY_TYPE,
    PodIssued,
    PodKey,
    begin_refresh_at,
    denied_status,
    failed_status,
    issue_pod_certificate,
    pod_key,
    refresh_fraction,
    rfc3339,
    status_for,
)
from tests.data.csrs import KeyType, cached_key
from tests.unit.pki.builders import NOW, Ca, make_ca

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
DNS = "web.shop.svc"
URI = "spiffe://cluster.local/ns/shop/sa/web"
POD_UID = "0f3c2a5e-8d1b-4c7e-9a60-2b5d4e3f1a7c"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

KUBELET_KEY_TYPES: list[Any] = [
    pytest.param("rsa-3072", id="RSA3072"),
    pytest.param("rsa-4096", id="RSA4096"),
    pytest.param("ecdsa-p256", id="ECDSAP256"),
    pytest.param("ecdsa-p384", id="ECDSAP384"),
    pytest.param("ecdsa-p521", id="ECDSAP521"),
    pytest.param("ed25519", id="ED25519"),
]


# --- builders -------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def kubelet_hash(key: Any) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """The hash Go's x509.CreateCertificateRequest picks for the key, as the kubelet signs."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = key.curve.key_size
        return (
            hashes.SHA256() if size == 256 else hashes.SHA384() if size == 384 else hashes.SHA512()
        )
    return hashes.SHA256()


def stub_der(
    key: Any, *, subject: x509.Name | None = None, extensions: Sequence[x509.ExtensionType] = ()
) -> bytes:
    """A stubPKCS10Request: empty subject and no extensions unless a test adds some."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject or x509.Name([]))
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(key, kubelet_hash(key)).public_bytes(serialization.Encoding.DER)


def spki(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def stub_spec(key: Any, **extra: Any) -> dict[str, Any]:
    """A spec as a 1.36 kubelet's PCR comes back from the API: the old fields null."""
    return {
        "stubPKCS10Request": b64(stub_der(key)),
        "pkixPublicKey": None,
        "proofOfPossession": None,
        **extra,
    }


def pkix_spec(public_key: Any, **extra: Any) -> dict[str, Any]:
    """A spec as a 1.35 kubelet's PCR: pkixPublicKey + proofOfPossession, no stub."""
    return {
        "pkixPublicKey": b64(spki(public_key)),
        "proofOfPossession": b64(b"verified-by-the-apiserver"),
        "stubPKCS10Request": None,
        **extra,
    }


def key_of(spec: dict[str, Any]) -> PodKey:
    key = pod_key(spec)
    assert isinstance(key, PodKey), key
    return key


def issue(
    ca: CaBundle,
    key: PodKey | None = None,
    *,
    dns_names: tuple[str, ...] = (DNS,),
    uris: tuple[str, ...] = (URI,),
    pod_uid: str = POD_UID,
    now: datetime = NOW,
    max_expiration_seconds: int = 86400,
    max_lifetime: timedelta | None = None,
    signer_max: timedelta = 30 * DAY,
) -> PodIssued | Refusal:
    return issue_pod_certificate(
        key or key_of(stub_spec(cached_key("ecdsa-p256"))),
        ca,
        dns_names=dns_names,
        uris=uris,
        pod_uid=pod_uid,
        now=now,
        max_expiration_seconds=max_expiration_seconds,
        max_lifetime=max_lifetime,
        signer_max=signer_max,
    )


def issued(ca: CaBundle, key: PodKey | None = None, **kwargs: Any) -> PodIssued:
    result = issue(ca, key, **kwargs)
    assert isinstance(result, PodIssued), result
    return result


def refused(ca: CaBundle, key: PodKey | None = None, **kwargs: Any) -> Refusal:
    result = issue(ca, key, **kwargs)
    assert isinstance(result, Refusal), result
    return result


def ext(cert: x509.Certificate, cls: type[Any]) -> x509.Extension[Any]:
    return cert.extensions.get_extension_for_class(cls)


def parse_time(text: str) -> datetime:
    assert RFC3339.fullmatch(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def root() -> Ca:
    return make_ca("Pod Root")


@pytest.fixture(scope="module")
def ca(root: Ca) -> CaBundle:
    return load_ca(root.cert_pem, root.key_pem, now=NOW)


@pytest.fixture(scope="module")
def intermediate(root: Ca) -> Ca:
    return make_ca("Pod Intermediate", issuer=root)


@pytest.fixture(scope="module")
def ca_under_root(root: Ca, intermediate: Ca) -> CaBundle:
    return load_ca(intermediate.cert_pem, intermediate.key_pem, root.cert_pem, now=NOW)


# --- both key forms, every kubelet key type ---------------------------------------


@pytest.mark.parametrize("form", ["stubPKCS10Request", "pkixPublicKey"])
@pytest.mark.parametrize("key_type", KUBELET_KEY_TYPES)
def test_leaf_carries_the_pcr_key_and_verifies_against_the_ca(
    root: Ca,
    intermediate: Ca,
    ca_under_root: CaBundle,
    form: str,
    key_type: KeyType,
) -> None:
    private = cached_key(key_type)
    spec = stub_spec(private) if form == "stubPKCS10Request" else pkix_spec(private.public_key())
    key = key_of(spec)
    assert key.source == form
    assert spki(key.public_key) == spki(private.public_key())

    result = issued(ca_under_root, key)
    leaf = result.certificate
    assert spki(leaf.public_key()) == spki(private.public_key())
    leaf.verify_directly_issued_by(intermediate.cert)
    builder = PolicyBuilder().store(Store([root.cert])).time(NOW)
    builder.build_server_verifier(x509.DNSName(DNS)).verify(leaf, [intermediate.cert])
    client = builder.build_client_verifier().verify(leaf, [intermediate.cert])
    assert client.subjects is not None
    assert x509.UniformResourceIdentifier(URI) in client.subjects


@pytest.mark.parametrize("key_type", KUBELET_KEY_TYPES)
def test_both_forms_describe_the_same_key_alike(key_type: KeyType) -> None:
    private = cached_key(key_type)
    from_stub = key_of(stub_spec(private))
    from_pkix = key_of(pkix_spec(private.public_key()))
    assert from_stub.info == from_pkix.info
    assert from_stub.info.algorithm in {"rsa", "ecdsa", "ed25519"}


def test_stub_contents_are_ignored_only_policy_names_are_issued(ca: CaBundle) -> None:
    private = cached_key("ecdsa-p256")
    stuffed = stub_der(
        private,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:admin")]),
        extensions=[
            x509.SubjectAlternativeName([x509.DNSName("kubernetes.default.svc")]),
            x509.BasicConstraints(ca=True, path_length=None),
        ],
    )
    leaf = issued(ca, key_of({"stubPKCS10Request": b64(stuffed)})).certificate
    assert leaf.subject == x509.Name([])
    assert ext(leaf, x509.SubjectAlternativeName).value == x509.SubjectAlternativeName(
        [x509.DNSName(DNS), x509.UniformResourceIdentifier(URI)]
    )
    assert ext(leaf, x509.BasicConstraints).value.ca is False


# --- pod_key: forms, nulls, malformed input --------------------------------------


@pytest.mark.parametrize(
    ("extra", "source"),
    [
        pytest.param({}, "stubPKCS10Request", id="stub-with-null-pkix-and-pop"),
        pytest.param({"pkixPublicKey": "", "proofOfPossession": ""}, "stubPKCS10Request", id="stub-with-empty-pkix-and-pop"),
        pytest.param({"pkixPublicKey": None, "proofOfPossession": None, "unverifiedUserAnnotations": {"a.io/b": "c"}}, "stubPKCS10Request", id="other-spec-fields-do-not-matter"),
    ],
)  # fmt: skip
def test_null_or_empty_byte_fields_count_as_absent(extra: dict[str, Any], source: str) -> None:
    spec = stub_spec(cached_key("ecdsa-p256"), **extra)
    assert key_of(spec).source == source


def test_pkix_form_with_null_stub_is_read() -> None:
    public = cached_key("ed25519").public_key()
    for spec in (pkix_spec(public), {k: v for k, v in pkix_spec(public).items() if v is not None}):
        assert key_of(spec).source == "pkixPublicKey"


def _stub() -> str:
    return b64(stub_der(cached_key("ecdsa-p256")))


def _pkix() -> str:
    return b64(spki(cached_key("ecdsa-p384").public_key()))


def _tampered_stub() -> str:
    der = stub_der(cached_key("ecdsa-p256"))
    return b64(der[:-1] + bytes([der[-1] ^ 1]))


def _compressed_point() -> str:
    point = cached_key("ecdsa-p256").public_key()
    assert isinstance(point, ec.EllipticCurvePublicKey)
    compressed = point.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    # SEQUENCE { AlgorithmIdentifier { id-ecPublicKey, prime256v1 }, BIT STRING { 0, point } }
    algorithm = bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107")
    bits = b"\x03" + bytes([len(compressed) + 1, 0]) + compressed
    body = algorithm + bits
    return b64(b"\x30" + bytes([len(body)]) + body)


@pytest.mark.parametrize(
    ("spec", "reason", "says"),
    [
        pytest.param(lambda: {"stubPKCS10Request": _stub(), "pkixPublicKey": _pkix(), "proofOfPossession": b64(b"p")}, INVALID_KEY, "both are set", id="both-forms-refused"),
        pytest.param(lambda: {"stubPKCS10Request": _stub(), "proofOfPossession": b64(b"p")}, INVALID_KEY, "both are set", id="stub-with-a-proof-refused"),
        pytest.param(lambda: {"stubPKCS10Request": None, "pkixPublicKey": None, "proofOfPossession": None}, INVALID_KEY, "neither is set", id="all-null-refused"),
        pytest.param(lambda: {}, INVALID_KEY, "neither is set", id="all-missing-refused"),
        pytest.param(lambda: {"stubPKCS10Request": "", "pkixPublicKey": ""}, INVALID_KEY, "neither is set", id="all-empty-refused"),
        pytest.param(lambda: {"proofOfPossession": b64(b"p")}, INVALID_KEY, "neither is set", id="proof-alone-refused"),
        pytest.param(lambda: {"pkixPublicKey": _pkix(), "proofOfPossession": None}, INVALID_KEY, "without spec.proofOfPossession", id="pkix-without-proof-refused"),
        pytest.param(lambda: {"stubPKCS10Request": "not base64!"}, INVALID_KEY, "not valid base64", id="stub-not-base64-refused"),
        pytest.param(lambda: {"stubPKCS10Request": "déjà"}, INVALID_KEY, "not valid base64", id="stub-non-ascii-refused"),
        pytest.param(lambda: {"stubPKCS10Request": 42}, INVALID_KEY, "not a base64 string", id="stub-not-a-string-refused"),
        pytest.param(lambda: {"stubPKCS10Request": b64(b"-----BEGIN CERTIFICATE REQUEST-----\n")}, INVALID_KEY, "not a DER PKCS#10", id="stub-in-pem-refused-kubernetes-reads-der"),
        pytest.param(lambda: {"stubPKCS10Request": b64(b"\x30\x03\x02\x01\x00")}, INVALID_KEY, "spec.stubPKCS10Request", id="stub-garbage-refused-naming-the-field"),
        pytest.param(lambda: {"stubPKCS10Request": _tampered_stub()}, INVALID_KEY, "self-signature does not verify", id="stub-bad-self-signature-refused"),
        pytest.param(lambda: {"stubPKCS10Request": b64(stub_der(ec.generate_private_key(ec.SECP256K1())))}, INVALID_KEY, "spec.stubPKCS10Request publicKey", id="stub-secp256k1-refused-by-the-strict-reader"),
        pytest.param(lambda: {"pkixPublicKey": b64(b"\x30\x00"), "proofOfPossession": b64(b"p")}, INVALID_KEY, "not a DER SubjectPublicKeyInfo", id="pkix-garbage-refused"),
        pytest.param(lambda: {"pkixPublicKey": b64(spki(cached_key("ecdsa-p256").public_key()) + b"\x00"), "proofOfPossession": b64(b"p")}, INVALID_KEY, "", id="pkix-trailing-byte-refused"),
        pytest.param(lambda: {"pkixPublicKey": _compressed_point(), "proofOfPossession": b64(b"p")}, INVALID_KEY, "", id="pkix-compressed-point-refused-not-canonical"),
    ],
)  # fmt: skip
def test_pod_key_refusals(spec: Any, reason: str, says: str) -> None:
    result = pod_key(spec())
    assert isinstance(result, Refusal), result
    assert result.reason == reason
    assert says in result.message
    assert "spec.request" not in result.message


# --- key floor and pod key types -----------------------------------------------------


def _public(kind: str) -> Any:
    if kind == "secp256k1":
        return ec.generate_private_key(ec.SECP256K1()).public_key()
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate().public_key()
    if kind == "x25519":
        return x25519.X25519PrivateKey.generate().public_key()
    return cached_key(kind).public_key()


@pytest.mark.parametrize(
    ("form", "kind"),
    [
        pytest.param("stub", "rsa-2048", id="rsa2048-stub-not-a-pod-key-type"),
        pytest.param("pkix", "rsa-2048", id="rsa2048-pkix-not-a-pod-key-type"),
        pytest.param("stub", "rsa-2048-e3", id="rsa-exponent-3-below-the-floor"),
        pytest.param("pkix", "rsa-1024", id="rsa1024-below-the-floor"),
        pytest.param("pkix", "secp256k1", id="secp256k1-below-the-floor"),
        pytest.param("pkix", "ed448", id="ed448-below-the-floor"),
        pytest.param("pkix", "x25519", id="x25519-cannot-sign-below-the-floor"),
    ],
)
def test_keys_outside_the_pod_key_types_are_unsupported_key_type(
    ca: CaBundle, form: str, kind: str
) -> None:
    private: Any = cached_key(kind) if form == "stub" else None
    spec = stub_spec(private) if private is not None else pkix_spec(_public(kind))
    result = refused(ca, key_of(spec))
    assert result.reason == UNSUPPORTED_KEY_TYPE
    assert "ECDSAP256" in result.message  # says what would work


# --- the leaf ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ca_key_type", "hash_name"),
    [
        pytest.param("ecdsa-p256", "sha256", id="p256-ca-signs-sha256"),
        pytest.param("ecdsa-p384", "sha384", id="p384-ca-signs-sha384"),
        pytest.param("rsa-2048", "sha256", id="rsa-ca-signs-sha256"),
        pytest.param("ed25519", None, id="ed25519-ca-signs-pure-ed25519"),
    ],
)
def test_hash_is_chosen_by_the_ca_key(ca_key_type: CaKeyType, hash_name: str | None) -> None:
    own = make_ca(f"Pod CA {ca_key_type}", key_type=ca_key_type)
    bundle = load_ca(own.cert_pem, own.key_pem, now=NOW)
    leaf = issued(bundle).certificate
    algorithm = leaf.signature_hash_algorithm
    assert (algorithm.name if algorithm else None) == hash_name
    leaf.verify_directly_issued_by(own.cert)


@pytest.mark.parametrize("key_type", KUBELET_KEY_TYPES)
def test_leaf_shape_is_a_pod_leaf_never_a_ca(ca: CaBundle, key_type: KeyType) -> None:
    private = cached_key(key_type)
    leaf = issued(ca, key_of(stub_spec(private)), dns_names=(DNS, "web"), uris=(URI,)).certificate

    assert leaf.subject == x509.Name([])
    assert leaf.issuer == ca.subject
    bc = ext(leaf, x509.BasicConstraints)
    assert (bc.critical, bc.value.ca) == (True, False)
    san = ext(leaf, x509.SubjectAlternativeName)
    assert san.critical, "the subject is empty, so the SANs are critical (RFC 5280 4.2.1.6)"
    assert list(san.value) == [
        x509.DNSName(DNS),
        x509.DNSName("web"),
        x509.UniformResourceIdentifier(URI),
    ]
    ku = ext(leaf, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert ku.value.key_encipherment is isinstance(private, rsa.RSAPrivateKey)
    assert not ku.value.key_cert_sign
    assert not ku.value.crl_sign
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    assert ext(leaf, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        private.public_key()
    )
    assert ext(leaf, x509.AuthorityKeyIdentifier).value == ca.authority_key_identifier
    assert [e.oid for e in leaf.extensions] == [
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ]
    assert 0 < leaf.serial_number < 2**159


def test_serials_are_random(ca: CaBundle) -> None:
    serials = {issued(ca).serial_number for _ in range(20)}
    assert len(serials) == 20


def test_chain_is_the_leaf_then_the_ca_chain(ca_under_root: CaBundle, intermediate: Ca) -> None:
    result = issued(ca_under_root)
    chain = x509.load_pem_x509_certificates(result.chain_pem)
    assert chain == [result.certificate, intermediate.cert]
    assert result.chain_pem.endswith(ca_under_root.chain_pem)


@pytest.mark.parametrize(
    ("dns_names", "uris", "reason"),
    [
        pytest.param((), (), "NoIdentity", id="no-names-refused-an-empty-subject-needs-sans"),
        pytest.param(("a..b",), (), "InvalidDNSName", id="empty-label-refused-as-the-apiserver-does"),
        pytest.param((".a.b",), (), "InvalidDNSName", id="leading-dot-refused"),
        pytest.param(("a.b.",), (URI,), "InvalidDNSName", id="trailing-dot-refused"),
        pytest.param(("",), (URI,), "InvalidDNSName", id="empty-dns-name-refused"),
        pytest.param(("bücher.example",), (), "SigningFailed", id="non-ascii-dns-name-refused-not-raised"),
    ],
)  # fmt: skip
def test_names_the_apiserver_would_reject_are_refused(
    ca: CaBundle, dns_names: tuple[str, ...], uris: tuple[str, ...], reason: str
) -> None:
    assert refused(ca, dns_names=dns_names, uris=uris).reason == reason


def test_uris_alone_are_enough(ca: CaBundle) -> None:
    leaf = issued(ca, dns_names=(), uris=(URI,)).certificate
    assert list(ext(leaf, x509.SubjectAlternativeName).value) == [
        x509.UniformResourceIdentifier(URI)
    ]


# --- times --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(NOW, id="whole-second-clock"),
        pytest.param(NOW + timedelta(microseconds=999_999), id="sub-second-clock-truncated"),
        pytest.param(
            (NOW + timedelta(microseconds=1)).astimezone(timezone(timedelta(hours=2))),
            id="non-utc-clock-reported-in-utc",
        ),
    ],
)
def test_times_are_whole_seconds_and_status_equals_the_leaf(ca: CaBundle, now: datetime) -> None:
    result = issued(ca, now=now)
    leaf = result.certificate
    for moment in (result.not_before, result.not_after, result.begin_refresh_at):
        assert moment.microsecond == 0
        assert moment.utcoffset() == timedelta(0)
    assert result.not_before == leaf.not_valid_before_utc == NOW - POD_BACKDATE
    assert result.issued_at == NOW
    assert result.not_after == leaf.not_valid_after_utc
    status = status_for(result)
    assert parse_time(status["notBefore"]) == leaf.not_valid_before_utc
    assert parse_time(status["notAfter"]) == leaf.not_valid_after_utc
    assert parse_time(status["beginRefreshAt"]) == result.begin_refresh_at


def test_naive_clock_is_a_programming_error(ca: CaBundle) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        issue(ca, now=NOW.replace(tzinfo=None))


# --- lifetime -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_expiration_seconds", "max_lifetime", "signer_max", "lifetime"),
    [
        pytest.param(86400, None, 30 * DAY, DAY, id="max-expiration-seconds-caps-and-equal-is-allowed"),
        pytest.param(7200, None, 30 * DAY, 2 * HOUR, id="shorter-max-expiration-seconds-honoured"),
        pytest.param(86400, 3 * HOUR, 30 * DAY, 3 * HOUR, id="policy-max-lifetime-caps"),
        pytest.param(7_862_400, None, 2 * DAY, 2 * DAY, id="signer-max-caps"),
        pytest.param(7_862_400, 5 * DAY, 2 * DAY, 2 * DAY, id="smallest-cap-wins"),
        pytest.param(3600, None, 30 * DAY, HOUR, id="exactly-one-hour-is-allowed"),
        pytest.param(86400, 2 * HOUR + timedelta(microseconds=500_000), 30 * DAY, 2 * HOUR, id="fractional-cap-truncated-to-whole-seconds"),
    ],
)  # fmt: skip
def test_lifetime_is_the_smallest_cap(
    ca: CaBundle,
    max_expiration_seconds: int,
    max_lifetime: timedelta | None,
    signer_max: timedelta,
    lifetime: timedelta,
) -> None:
    result = issued(
        ca,
        max_expiration_seconds=max_expiration_seconds,
        max_lifetime=max_lifetime,
        signer_max=signer_max,
    )
    assert result.not_after - result.not_before == lifetime
    assert not result.cut_to_ca
    assert MIN_LIFETIME <= lifetime <= timedelta(seconds=max_expiration_seconds)


@pytest.mark.parametrize(
    ("max_expiration_seconds", "max_lifetime", "signer_max", "says"),
    [
        pytest.param(3599, None, 30 * DAY, "spec.maxExpirationSeconds 3599 is outside [3600, 7862400]", id="max-expiration-seconds-below-one-hour-refused"),
        pytest.param(86400, 30 * timedelta(minutes=1), 30 * DAY, "maxLifetime (30m)", id="policy-cap-below-one-hour-refused-not-stretched"),
        pytest.param(86400, None, 59 * timedelta(minutes=1), "signer's maximum lifetime (59m)", id="signer-max-below-one-hour-refused"),
    ],
)  # fmt: skip
def test_caps_below_one_hour_are_refused(
    ca: CaBundle,
    max_expiration_seconds: int,
    max_lifetime: timedelta | None,
    signer_max: timedelta,
    says: str,
) -> None:
    result = refused(
        ca,
        max_expiration_seconds=max_expiration_seconds,
        max_lifetime=max_lifetime,
        signer_max=signer_max,
    )
    assert result.reason == "LifetimeTooShort"
    assert says in result.message


def test_a_max_expiration_the_apiserver_never_allows_is_refused_not_raised(ca: CaBundle) -> None:
    result = refused(ca, max_expiration_seconds=10**18)  # version skew or a hostile API
    assert result.reason == "InvalidRequest"
    assert "outside [3600, 7862400]" in result.message


@pytest.mark.parametrize(
    ("ca_left", "outcome"),
    [
        pytest.param(5 * HOUR, "cut", id="leaf-cut-to-the-ca-not-after"),
        pytest.param(HOUR, "cut", id="exactly-one-hour-left-is-enough"),
        pytest.param(HOUR - timedelta(seconds=1), "CAExpiresSoon", id="under-one-hour-left-refused"),
        pytest.param(2 * DAY, "whole", id="no-cut-when-the-ca-outlives-the-leaf"),
    ],
)  # fmt: skip
def test_not_after_is_cut_to_the_ca(ca_left: timedelta, outcome: str) -> None:
    short = make_ca("Short Pod CA", not_after=NOW + ca_left)
    bundle = load_ca(short.cert_pem, short.key_pem, now=NOW)
    result = issue(bundle)
    if outcome == "CAExpiresSoon":
        assert isinstance(result, Refusal)
        assert result.reason == outcome
        return
    assert isinstance(result, PodIssued), result
    assert result.cut_to_ca is (outcome == "cut")
    want = short.cert.not_valid_after_utc if outcome == "cut" else NOW - POD_BACKDATE + DAY
    assert result.not_after == result.certificate.not_valid_after_utc == want
    assert result.not_before + REFRESH_MARGIN <= result.begin_refresh_at
    assert result.begin_refresh_at <= result.not_after - REFRESH_MARGIN


def test_expired_ca_refused(ca: CaBundle) -> None:
    assert refused(ca, now=ca.not_after).reason == "CAExpired"


def test_not_yet_valid_ca_refused() -> None:
    future = make_ca("Future Pod CA", not_before=NOW + HOUR)
    bundle = load_ca(future.cert_pem, future.key_pem, now=NOW + 2 * HOUR)
    assert refused(bundle, now=NOW).reason == "CANotYetValid"


def test_backdate_never_precedes_a_fresh_ca() -> None:
    fresh = make_ca("Fresh Pod CA", not_before=NOW - timedelta(seconds=20))
    bundle = load_ca(fresh.cert_pem, fresh.key_pem, now=NOW)
    result = issue(bundle)
    assert isinstance(result, PodIssued), result
    assert result.not_before == fresh.cert.not_valid_before_utc == NOW - timedelta(seconds=20)


# --- beginRefreshAt ------------------------------------------------------------------


UIDS = [f"pod-{i:04d}-{i * 7919:08x}" for i in range(1000)]


def test_refresh_fractions_spread_over_half_to_three_quarters() -> None:
    fractions = [refresh_fraction(uid) for uid in UIDS]
    assert all(0.5 <= f < 0.75 for f in fractions)
    assert len(set(fractions)) == len(UIDS)
    assert min(fractions) < 0.51
    assert max(fractions) > 0.74
    quarters = [
        sum(1 for f in fractions if 0.5 + q / 16 <= f < 0.5 + (q + 1) / 16) for q in range(4)
    ]
    assert all(150 < n < 350 for n in quarters), quarters


def test_refresh_fraction_is_deterministic_per_pod() -> None:
    assert refresh_fraction(POD_UID) == refresh_fraction(POD_UID)
    assert refresh_fraction(POD_UID) != refresh_fraction(POD_UID + "x")


@pytest.mark.parametrize(
    "lifetime",
    [
        pytest.param(HOUR, id="one-hour"),
        pytest.param(HOUR + timedelta(seconds=1), id="odd-seconds"),
        pytest.param(DAY, id="one-day"),
        pytest.param(timedelta(seconds=7_862_400), id="ninety-one-days"),
    ],
)
def test_begin_refresh_at_is_the_fraction_within_the_apiserver_window(
    lifetime: timedelta,
) -> None:
    for uid in UIDS:
        at = begin_refresh_at(NOW, NOW + lifetime, uid)
        assert at.microsecond == 0
        assert NOW + REFRESH_MARGIN <= at <= NOW + lifetime - REFRESH_MARGIN
        offset = (at - NOW).total_seconds()
        expected = lifetime.total_seconds() * refresh_fraction(uid)
        assert expected - 1 < offset <= expected


def test_begin_refresh_at_is_clamped_to_the_window() -> None:
    # 21 minutes: a window of [+10 m, +11 m] that most fractions overshoot.
    not_after = NOW + timedelta(minutes=21)
    ats = {begin_refresh_at(NOW, not_after, uid) for uid in UIDS}
    assert min(ats) >= NOW + REFRESH_MARGIN
    assert max(ats) == not_after - REFRESH_MARGIN


def test_issued_begin_refresh_at_follows_the_pod_uid(ca: CaBundle) -> None:
    first = issued(ca, pod_uid="a")
    again = issued(ca, pod_uid="a")
    other = issued(ca, pod_uid="b")
    assert first.begin_refresh_at == again.begin_refresh_at
    assert first.begin_refresh_at != other.begin_refresh_at
    assert first.begin_refresh_at == begin_refresh_at(first.not_before, first.not_after, "a")


# --- status bodies --------------------------------------------------------------------


def test_issued_status_has_exactly_the_fields_the_apiserver_checks(
    ca_under_root: CaBundle,
) -> None:
    result = issued(ca_under_root)
    status = status_for(result)
    assert set(status) == {
        "conditions",
        "certificateChain",
        "notBefore",
        "beginRefreshAt",
        "notAfter",
    }
    assert isinstance(status["certificateChain"], str)
    assert status["certificateChain"].encode() == result.chain_pem
    assert status["certificateChain"].startswith("-----BEGIN CERTIFICATE-----")
    (condition,) = status["conditions"]
    assert set(condition) == {"type", "status", "reason", "message", "lastTransitionTime"}
    assert condition["type"] == "Issued"
    assert condition["status"] == "True"
    assert condition["reason"] == "Issued"
    assert condition["message"]
    assert parse_time(condition["lastTransitionTime"]) == result.issued_at
    assert status["notBefore"] == "2030-06-01T11:59:00Z", "backdated 1 minute"
    assert status["notAfter"] == "2030-06-02T11:59:00Z"


def test_issued_status_takes_a_reason_and_message(ca: CaBundle) -> None:
    (condition,) = status_for(issued(ca), reason="PolicyKnativePods", message="m")["conditions"]
    assert (condition["reason"], condition["message"]) == ("PolicyKnativePods", "m")


@pytest.mark.parametrize(
    ("build", "kind"),
    [
        pytest.param(denied_status, "Denied", id="denied"),
        pytest.param(failed_status, "Failed", id="failed"),
    ],
)
def test_terminal_status_is_one_condition_and_nothing_else(build: Any, kind: str) -> None:
    status = build("UnsupportedKeyType", "use ECDSAP256", NOW + timedelta(microseconds=5))
    assert status == {
        "conditions": [
            {
                "type": kind,
                "status": "True",
                "reason": "UnsupportedKeyType",
                "message": "use ECDSAP256",
                "lastTransitionTime": "2030-06-01T12:00:00Z",
            }
        ]
    }


@pytest.mark.parametrize(
    "reason",
    [
        pytest.param("", id="empty"),
        pytest.param("Has space", id="space"),
        pytest.param("1Leading", id="leading-digit"),
        pytest.param("Trailing:", id="trailing-colon"),
    ],
)
def test_invalid_condition_reason_is_a_programming_error(reason: str) -> None:
    with pytest.raises(ValueError, match="condition reason"):
        denied_status(reason, "m", NOW)


def test_long_message_is_bounded_to_what_the_apiserver_accepts() -> None:
    (condition,) = failed_status("SigningFailed", "é" * 40_000, NOW)["conditions"]
    assert len(condition["message"].encode()) <= 32 * 1024
    assert condition["message"].endswith("...")


def test_rfc3339_is_utc_whole_seconds_with_z() -> None:
    moment = datetime(2030, 6, 1, 14, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2030-06-01T12:00:00Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        rfc3339(moment.replace(tzinfo=None))


def test_status_round_trips_through_json(ca: CaBundle) -> None:
    status = status_for(issued(ca))
    assert json.loads(json.dumps(status)) == status
