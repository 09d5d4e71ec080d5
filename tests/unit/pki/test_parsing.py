"""parse_csr: what it reads, and every way it refuses a request (with the message).

A request is accepted only when Go's crypto/x509 (the apiserver, kubectl) and
we read it the same way; tests/x509diff checks that claim against Go itself.
Here each refusal is pinned to its message, and each accepted oddity to what
we read. Requests are built by hand (tests/x509diff/csr_build) and validly
self-signed unless the row is about the signature; builders are lambdas so
keys are made when a test runs, not when tests are collected.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from ipaddress import ip_address

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signer.models import KeyInfo
from signer.pki import der, parsing
from signer.pki.parsing import CsrParseError, parse_csr
from tests.x509diff import csr_build as b
from tests.x509diff import der_build as d

Build = Callable[[], bytes]

WEB = b.extension_request(b.san(b.dns("web.team-a.svc")))
UTF8, PRINTABLE, IA5, BMP = d.UTF8_STRING, d.PRINTABLE_STRING, d.IA5_STRING, d.BMP_STRING


def with_san(*names: bytes) -> bytes:
    return b.request(attributes=[b.extension_request(b.san(*names))])


def with_subject(*rdns: list[bytes]) -> bytes:
    return b.request(subject=b.name(*rdns), attributes=[WEB])


def attr(oid: str, value: bytes) -> list[bytes]:
    """An RDN of one attribute."""
    return [b.atv(oid, value)]


def spki(algorithm: bytes, key: bytes) -> bytes:
    return d.seq(algorithm, d.bits(key))


def rsa_spki(n: int, e: int) -> bytes:
    algorithm = d.seq(d.oid("1.2.840.113549.1.1.1"), d.null())
    return spki(algorithm, d.seq(d.integer(n), d.integer(e)))


def p256_point(form: PublicFormat = PublicFormat.UncompressedPoint) -> bytes:
    return b.key("ecdsa-p256").public_key().public_bytes(Encoding.X962, form)


def replace_signature(request: bytes, signature: bytes) -> bytes:
    """The same request with another signature BIT STRING."""
    tbs, algorithm, _ = der.read_one(request).children()
    return d.seq(tbs.raw, algorithm.raw, signature)


def refused(build: Build) -> str:
    with pytest.raises(CsrParseError) as caught:
        parse_csr(build())
    return str(caught.value)


# --- framing: PEM and DER ----------------------------------------------------------

FRAMING = [
    pytest.param(lambda: b"  \n", "spec.request is empty", id="empty-is-refused"),
    pytest.param(
        lambda: b.pem(b.request()) + b.pem(b.request()),
        "spec.request must hold exactly one PEM block, found 2",
        id="two-pem-blocks-are-refused",
    ),
    pytest.param(
        lambda: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "spec.request PEM block is not a CERTIFICATE REQUEST",
        id="certificate-block-is-refused",
    ),
    pytest.param(
        lambda: (
            b"-----BEGIN CERTIFICATE REQUEST-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n"
            b"-----END CERTIFICATE REQUEST-----\n"
        ),
        "spec.request PEM block is malformed (headers, or a bad END line)",
        id="pem-headers-are-refused",
    ),
    pytest.param(
        lambda: b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE-----\n",
        "spec.request PEM block is malformed (headers, or a bad END line)",
        id="mismatched-end-line-is-refused",
    ),
    pytest.param(
        lambda: b"-----BEGIN CERTIFICATE REQUEST-----\nAAA\n-----END CERTIFICATE REQUEST-----\n",
        "spec.request PEM block is not valid base64: Incorrect padding",
        id="bad-base64-is-refused",
    ),
    pytest.param(
        lambda: b"not a csr", "spec.request is neither PEM nor DER PKCS#10", id="garbage-is-refused"
    ),
    pytest.param(
        lambda: b.request() + b"\x00",
        "spec.request is not a valid PKCS#10 request: 1 trailing bytes after the element",
        id="trailing-bytes-are-refused",
    ),
    pytest.param(
        lambda: b.request()[:-1],
        "is truncated",
        id="truncated-der-is-refused",
    ),
    pytest.param(
        lambda: b"\x30\x80" + b.request()[2:] + b"\x00\x00",
        "spec.request is not a valid PKCS#10 request: indefinite length is not DER",
        id="indefinite-length-is-refused",
    ),
    pytest.param(
        lambda: b"\x30\x83\x00" + b.request()[2:],
        "spec.request is not a valid PKCS#10 request: length is not minimally encoded",
        id="non-minimal-length-is-refused",
    ),
    pytest.param(
        lambda: d.seq(d.tlv(0x3F, b"")),
        "spec.request is not a valid PKCS#10 request: high tag number form (0x3f)",
        id="high-tag-number-form-is-refused",
    ),
    pytest.param(
        lambda: b.request(
            subject=d.seq(d.tlv(0x31, d.seq(d.tlv(0x06, b"\x55\x80\x04"), d.string(UTF8, "x"))))
        ),
        "spec.request is not a valid PKCS#10 request: OBJECT IDENTIFIER arc is not minimally encoded",
        id="non-minimal-oid-arc-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr("1.2.4294967296.1", d.string(UTF8, "x"))),
        "spec.request is not a valid PKCS#10 request: OBJECT IDENTIFIER arc above 2^31-1, "
        "which Go refuses",
        id="oid-arc-above-int32-is-refused",
    ),
    pytest.param(
        lambda: b.request(
            attributes=[
                b.extension_request(
                    d.seq(d.oid(b.SAN), d.tlv(d.BOOLEAN, b"\x01"), d.octets(d.seq()))
                )
            ]
        ),
        "spec.request is not a valid PKCS#10 request: BOOLEAN must be 0x00 or 0xFF",
        id="boolean-other-than-00-or-ff-is-refused",
    ),
    pytest.param(
        lambda: replace_signature(b.request(), d.bits(b"\x30\x00", unused=1)),
        "spec.request is not a valid PKCS#10 request: BIT STRING has unused bits",
        id="signature-with-unused-bits-is-refused",
    ),
]


@pytest.mark.parametrize(("build", "message"), FRAMING)
def test_framing_refusals(build: Build, message: str) -> None:
    assert message in refused(build)


def test_der_is_read_as_given_even_when_it_ends_in_a_whitespace_byte() -> None:
    """Stripping DER as if it were text would cut a signature ending in 0x0a or 0x20."""
    der = next(
        candidate
        for i in range(2000)
        if (candidate := b.request(subject=b.cn(f"web-{i}")))[-1] in b" \t\n\r\x0b\x0c"
    )
    assert parse_csr(der).common_name is not None


# --- version, subject ----------------------------------------------------------------

SUBJECT = [
    pytest.param(
        lambda: b.request(version=1, attributes=[WEB]),
        "spec.request version: 1 is not 0 (v1), the only PKCS#10 version; "
        "cryptography refuses it and Kubernetes would ignore it",
        id="version-1-is-refused",
    ),
    pytest.param(
        lambda: b.request(version=d.tlv(d.INTEGER, b"\x00\x00")),
        "spec.request is not a valid PKCS#10 request: INTEGER is empty or not minimally encoded",
        id="non-minimal-version-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr(b.CN, d.bits(b"web"))),
        "spec.request subject: CN is encoded as BIT STRING; only UTF8String, PrintableString, "
        "IA5String and BMPString values read the same in Kubernetes and here",
        id="bit-string-value-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr(b.CN, d.string(d.VISIBLE_STRING, "web"))),
        "spec.request subject: CN is encoded as VisibleString",
        id="visible-string-value-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr(b.ORG, d.string(d.UNIVERSAL_STRING, "team"))),
        "spec.request subject: O is encoded as UniversalString",
        id="universal-string-value-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr(b.CN, d.string(d.T61_STRING, "web"))),
        "spec.request subject: CN is encoded as T61String",
        id="t61-string-value-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr(b.SERIAL, d.string(d.NUMERIC_STRING, "42"))),
        "spec.request subject: serialNumber is encoded as NumericString",
        id="numeric-string-value-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr(b.CN, d.octets(b"web"))),
        "spec.request subject: CN is encoded as OCTET STRING",
        id="octet-string-value-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr("1.2.3.4", d.integer(7))),
        "spec.request subject: 1.2.3.4 is encoded as INTEGER",
        id="integer-value-of-an-unnamed-type-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr(b.CN, d.tlv(UTF8, b"\xffweb"))),
        "spec.request subject: CN is not a valid UTF8String: 'utf-8' codec can't decode byte 0xff",
        id="invalid-utf8-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr(b.CN, d.string(PRINTABLE, "*.web"))),
        "spec.request subject: CN is not a valid PrintableString: "
        "it has characters outside the PrintableString alphabet",
        id="printable-string-with-asterisk-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr(b.CN, d.string(IA5, "wéb"))),
        "spec.request subject: CN is not a valid IA5String: "
        "it has a non-ASCII byte, which Kubernetes refuses",
        id="non-ascii-ia5-string-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr(b.CN, d.string(BMP, "web\x00"))),
        "spec.request subject: CN is not a valid BMPString: it ends in NUL, which Kubernetes strips",
        id="bmp-string-ending-in-nul-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr(b.CN, d.string(BMP, "web\ufdd0"))),
        "spec.request subject: CN is not a valid BMPString: "
        "it has a surrogate or a noncharacter, which Kubernetes refuses",
        id="bmp-string-noncharacter-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr(b.CN, d.string(BMP, "web\U0001f600"))),
        "it has a surrogate or a noncharacter, which Kubernetes refuses",
        id="bmp-string-surrogate-pair-is-refused",
    ),
    pytest.param(
        lambda: with_subject(attr(b.CN, d.tlv(BMP, b"\x00w\x00"))),
        "spec.request subject: CN is not a valid BMPString: 'utf-16-be' codec can't decode",
        id="odd-length-bmp-string-is-refused",
    ),
    pytest.param(
        lambda: with_subject([], attr(b.CN, d.string(UTF8, "web"))),
        "spec.request subject: an empty RDN (Kubernetes skips it, we cannot)",
        id="empty-rdn-is-refused",
    ),
    pytest.param(
        lambda: with_subject(
            [b.atv(b.CN, d.string(UTF8, "web")), b.atv(b.ORG, d.string(UTF8, "team-a"))]
        ),
        "spec.request subject: a multi-valued RDN (2 attributes in one set); "
        "one attribute per RDN is accepted",
        id="multi-valued-rdn-is-refused",
    ),
    pytest.param(
        lambda: with_subject(
            attr(b.CN, d.string(UTF8, "kn-routing")), attr(b.CN, d.string(UTF8, "web"))
        ),
        "spec.request subject: 2 CN attributes; at most one is allowed "
        "(Kubernetes reads the last one, we would read the first)",
        id="two-cns-are-refused",
    ),
    pytest.param(
        lambda: with_subject(
            attr(b.SERIAL, d.string(PRINTABLE, "1")), attr(b.SERIAL, d.string(PRINTABLE, "2"))
        ),
        "spec.request subject: 2 serialNumber attributes; at most one is allowed",
        id="two-serial-numbers-are-refused",
    ),
]


@pytest.mark.parametrize(("build", "message"), SUBJECT)
def test_version_and_subject_refusals(build: Build, message: str) -> None:
    assert message in refused(build)


# --- attributes and extensions --------------------------------------------------------

CHALLENGE = b.attribute(b.CHALLENGE_PASSWORD, d.string(UTF8, "pw"))
ATTRIBUTES = [
    pytest.param(
        lambda: b.request(
            attributes=[
                b.extension_request(b.san(b.dns("kn-routing")), oid=b.MS_EXTENSION_REQUEST),
                WEB,
            ],
            sort_attributes=False,
        ),
        "spec.request attributes: Microsoft's extensionRequest (1.3.6.1.4.1.311.2.1.14) is not "
        "read by Kubernetes; request extensions under 1.2.840.113549.1.9.14 only",
        id="ms-oid-extension-request-is-refused",
    ),
    pytest.param(
        lambda: b.request(
            attributes=[b.extension_request(b.extension(b.BASIC_CONSTRAINTS, d.seq())), WEB]
        ),
        "spec.request attributes: 2 extensionRequest attributes; Kubernetes merges them and "
        "we would read one, so exactly one is accepted",
        id="two-extension-requests-are-refused",
    ),
    pytest.param(
        lambda: b.request(
            attributes=[
                b.attribute(
                    b.EXTENSION_REQUEST, d.seq(b.san(b.dns("a.svc"))), d.seq(b.san(b.dns("b.svc")))
                )
            ]
        ),
        "spec.request attributes: the extensionRequest has 2 values; exactly one is accepted",
        id="extension-request-with-two-values-is-refused",
    ),
    pytest.param(
        lambda: b.request(attributes=[b.attribute(b.EXTENSION_REQUEST)]),
        "spec.request attributes: the extensionRequest has 0 values; exactly one is accepted",
        id="extension-request-without-values-is-refused",
    ),
    pytest.param(
        lambda: b.request(attributes=[WEB, CHALLENGE], sort_attributes=False),
        "spec.request attributes: the attributes are not in DER (sorted) order",
        id="unsorted-attributes-are-refused",
    ),
    pytest.param(
        lambda: b.request(
            attributes=[
                b.attribute(b.CHALLENGE_PASSWORD, d.string(UTF8, "pw2"), d.string(UTF8, "pw"))
            ]
        ),
        "spec.request attributes: the values of attribute 1.2.840.113549.1.9.7 are not in DER "
        "(sorted) order",
        id="unsorted-attribute-values-are-refused",
    ),
    pytest.param(
        lambda: b.request(
            attributes=[b.extension_request(b.san(b.dns("web.svc"), critical=False))]
        ),
        "spec.request extensions: 2.5.29.17 spells out critical=FALSE, which DER omits",
        id="explicit-non-critical-flag-is-refused",
    ),
    pytest.param(
        lambda: b.request(
            attributes=[b.extension_request(b.san(b.dns("a.svc")), b.san(b.dns("b.svc")))]
        ),
        "spec.request extensions: 2.5.29.17 is requested more than once",
        id="repeated-extension-is-refused",
    ),
]


@pytest.mark.parametrize(("build", "message"), ATTRIBUTES)
def test_attribute_and_extension_refusals(build: Build, message: str) -> None:
    assert message in refused(build)


# --- subjectAltName ---------------------------------------------------------------------

SANS = [
    pytest.param(
        lambda: b.request(
            attributes=[
                b.extension_request(b.extension(b.SAN, b.general_names(b.dns("a.svc")) + d.null()))
            ]
        ),
        "spec.request subjectAltNames: the extension cannot be decoded: "
        "2 trailing bytes after the element",
        id="trailing-bytes-after-the-names-are-refused",
    ),
    pytest.param(
        lambda: with_san(d.string(IA5, "a.svc")),
        "spec.request subjectAltNames: an entry with tag 0x16 is not a GeneralName",
        id="universal-tag-entry-is-refused",
    ),
    pytest.param(
        lambda: with_san(d.context(2, d.string(IA5, "a.svc"), constructed=True)),
        "spec.request subjectAltNames: entry [2] is encoded in the wrong form",
        id="constructed-dns-name-is-refused",
    ),
    pytest.param(
        lambda: with_san(d.context(3, d.seq(), constructed=True)),
        "spec.request subjectAltNames: x400Address and ediPartyName are not supported",
        id="x400-address-is-refused",
    ),
    pytest.param(
        lambda: with_san(d.context(5, d.seq(), constructed=True)),
        "spec.request subjectAltNames: x400Address and ediPartyName are not supported",
        id="edi-party-name-is-refused",
    ),
    pytest.param(
        lambda: with_san(d.context(4, b.name(attr(b.CN, d.bits(b"x"))), constructed=True)),
        "spec.request subjectAltNames directoryName: CN is encoded as BIT STRING",
        id="bit-string-in-a-directory-name-is-refused",
    ),
    pytest.param(
        lambda: with_san(b.dns("bücher.example")),
        'spec.request dnsNames: "b\\u00fccher.example" is not ASCII, which Kubernetes refuses',
        id="non-ascii-dns-name-is-refused",
    ),
    pytest.param(
        lambda: with_san(b.email("ü@team-a.svc")),
        'spec.request emailAddresses: "\\u00fc@team-a.svc" is not ASCII, which Kubernetes refuses',
        id="non-ascii-email-is-refused",
    ),
    pytest.param(
        lambda: with_san(b.uri("spiffe://bücher/x")),
        'spec.request uris: "spiffe://b\\u00fccher/x" is not ASCII, which Kubernetes refuses',
        id="non-ascii-uri-is-refused",
    ),
    pytest.param(
        lambda: with_san(b.ip(b"\x0a\x00\x00\x01\x00")),
        "spec.request ipAddresses: 5 bytes is neither IPv4 (4) nor IPv6 (16)",
        id="five-byte-ip-is-refused",
    ),
    pytest.param(
        lambda: with_san(b.ip(bytes(10) + b"\xff\xff\x0a\x00\x00\x01")),
        'spec.request ipAddresses: "::ffff:a00:1" is IPv4-mapped; Kubernetes reads it as 10.0.0.1',
        id="ipv4-mapped-ipv6-is-refused",
    ),
]

URIS_GO_CHANGES_OR_REFUSES = [
    pytest.param("SPIFFE://cluster.local/ns/a", id="upper-case-scheme-go-lower-cases"),
    pytest.param("spiffe://cluster.local/ns/a#", id="empty-fragment-go-drops"),
    pytest.param("spiffe://cluster.local/a#b#c", id="second-hash-go-escapes"),
    pytest.param("https://a b/", id="space-in-host-go-refuses"),
    pytest.param("https://h/a b", id="space-in-path-go-escapes"),
    pytest.param("https://h/a\\b", id="backslash-go-escapes"),
    pytest.param("https://h/%zz", id="bad-escape-go-refuses"),
    pytest.param("https://a..b/", id="empty-host-label-go-refuses"),
    pytest.param("https://a./", id="trailing-dot-host-go-refuses"),
    pytest.param("https://h:port/", id="port-letters-go-refuses"),
    pytest.param("https://u@h/", id="user-info-is-refused"),
    pytest.param("https://[::1]/", id="ip-literal-is-refused"),
    pytest.param("https://", id="empty-authority-go-drops"),
    pytest.param("rel/path", id="missing-scheme-is-refused"),
    pytest.param("https://h/a\x00b", id="nul-go-refuses"),
]


@pytest.mark.parametrize(("build", "message"), SANS)
def test_subject_alt_name_refusals(build: Build, message: str) -> None:
    assert message in refused(build)


@pytest.mark.parametrize("uri", URIS_GO_CHANGES_OR_REFUSES)
def test_uris_go_would_change_or_refuse_are_refused(uri: str) -> None:
    message = refused(lambda: with_san(b.uri(uri)))
    assert message.startswith("spec.request uris: ")
    assert "is not a URI Kubernetes reads back unchanged" in message


# --- keys and signatures ------------------------------------------------------------------

KEYS = [
    pytest.param(
        lambda: b.request(key_kind="ed448", attributes=[WEB]),
        "spec.request publicKey: Ed448 keys cannot be verified by Kubernetes "
        "(RSA, ECDSA and Ed25519 can)",
        id="ed448-key-is-refused",
    ),
    pytest.param(
        lambda: b.request(key_kind="dsa-2048", attributes=[WEB]),
        "spec.request publicKey: DSA keys cannot be verified by Kubernetes",
        id="dsa-key-is-refused",
    ),
    pytest.param(
        lambda: b.request(
            key_kind="ed25519",
            public_key_info=x25519.X25519PrivateKey.generate()
            .public_key()
            .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
        ),
        "spec.request publicKey: X25519 keys cannot be verified by Kubernetes",
        id="x25519-key-is-refused",
    ),
    pytest.param(
        lambda: b.request(public_key_info=spki(d.seq(d.oid("1.2.3.4")), b"\x00")),
        "spec.request publicKey: algorithm 1.2.3.4 is not supported",
        id="unknown-key-algorithm-is-refused",
    ),
    pytest.param(
        lambda: b.request(key_kind="ecdsa-secp256k1", attributes=[WEB]),
        "spec.request publicKey: ECDSA curve 1.3.132.0.10 is not supported by Kubernetes "
        "(P-224, P-256, P-384 and P-521 are)",
        id="secp256k1-key-is-refused",
    ),
    pytest.param(
        lambda: b.request(
            public_key_info=spki(
                d.seq(d.oid("1.2.840.10045.2.1"), d.oid("1.2.840.10045.3.1.7")),
                p256_point(PublicFormat.CompressedPoint),
            )
        ),
        "spec.request publicKey: the ECDSA point is not uncompressed, the only form Kubernetes reads",
        id="compressed-ec-point-is-refused",
    ),
    pytest.param(
        lambda: b.request(
            public_key_info=spki(d.seq(d.oid("1.2.840.10045.2.1"), d.seq()), p256_point())
        ),
        "spec.request publicKey: ECDSA curve explicit is not supported by Kubernetes",
        id="explicit-curve-parameters-are-refused",
    ),
    pytest.param(
        lambda: b.request(
            key_kind="rsa-2048",
            public_key_info=spki(
                d.seq(d.oid("1.2.840.113549.1.1.1")), d.seq(d.integer(3), d.integer(3))
            ),
        ),
        "spec.request publicKey: the RSA algorithm parameters are not NULL",
        id="rsa-key-without-null-parameters-is-refused",
    ),
    pytest.param(
        lambda: b.request(
            key_kind="ed25519",
            public_key_info=spki(
                d.seq(d.oid("1.3.101.112"), d.null()),
                ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw(),
            ),
        ),
        "spec.request publicKey: the Ed25519 key has algorithm parameters",
        id="ed25519-key-with-parameters-is-refused",
    ),
    pytest.param(
        lambda: b.request(
            key_kind="rsa-2048", public_key_info=rsa_spki((1 << 2047) + 1, 2**31 + 1)
        ),
        "spec.request publicKey: RSA exponent 2147483649 is not odd and between 3 and 2^31-1, "
        "which Kubernetes requires",
        id="rsa-exponent-above-int32-is-refused",
    ),
    pytest.param(
        lambda: b.request(key_kind="rsa-2048", public_key_info=rsa_spki((1 << 2047) + 1, 65536)),
        "spec.request publicKey: RSA exponent 65536 is not odd",
        id="even-rsa-exponent-is-refused",
    ),
    pytest.param(
        lambda: b.request(key_kind="rsa-2048", public_key_info=rsa_spki((1 << 511) + 1, 65537)),
        "spec.request publicKey: a 512-bit RSA key is below Kubernetes' 1024-bit minimum",
        id="rsa-key-below-1024-bits-is-refused",
    ),
]

SIGNATURES = [
    pytest.param(
        lambda: b.request(key_kind="rsa-2048", sig_alg="md5-rsa"),
        "spec.request signature: md5WithRSAEncryption; MD5 and SHA-1 signatures are not accepted",
        id="md5-is-refused",
    ),
    pytest.param(
        lambda: b.request(key_kind="rsa-2048", sig_alg="sha1-rsa"),
        "spec.request signature: sha1WithRSAEncryption; MD5 and SHA-1 signatures are not accepted",
        id="sha1-is-refused",
    ),
    pytest.param(
        lambda: b.request(sig_alg="ecdsa-sha1"),
        "spec.request signature: ecdsa-with-SHA1; MD5 and SHA-1 signatures are not accepted",
        id="ecdsa-sha1-is-refused",
    ),
    pytest.param(
        lambda: b.request(key_kind="ed25519", sig_alg="ed448"),
        "spec.request signature: algorithm 1.3.101.113 is not one Kubernetes verifies "
        "(RSA PKCS#1 v1.5 or PSS with SHA-2, ECDSA with SHA-2, Ed25519)",
        id="unknown-signature-algorithm-is-refused",
    ),
    pytest.param(
        lambda: b.request(key_kind="rsa-2048", sig_alg="pss-sha256-salt20"),
        "spec.request signature: RSASSA-PSS with parameters Kubernetes does not verify "
        "(it wants SHA-2, MGF1 with that hash, salt = hash size)",
        id="pss-with-a-20-byte-salt-is-refused",
    ),
    pytest.param(
        lambda: b.request(sig_params="null"),
        "spec.request signature: ecdsa-with-SHA256 with parameters Kubernetes does not verify",
        id="ecdsa-with-null-parameters-is-refused",
    ),
    pytest.param(
        lambda: b.request(key_kind="ed25519", sig_params="null"),
        "spec.request signature: Ed25519 with parameters Kubernetes does not verify",
        id="ed25519-with-parameters-is-refused",
    ),
    pytest.param(
        lambda: b.request(key_kind="ecdsa-p256", sig_alg="sha256-rsa"),
        "spec.request signature: sha256WithRSAEncryption does not match the request's key",
        id="signature-algorithm-of-another-key-type-is-refused",
    ),
    pytest.param(
        lambda: b.request(signer=lambda tbs: bytes(64)),
        "the request's self-signature does not verify",
        id="ecdsa-signature-that-is-not-der-does-not-verify",
    ),
    pytest.param(
        lambda: b.request(tamper=True),
        "the request's self-signature does not verify",
        id="tampered-signature-is-refused",
    ),
]


@pytest.mark.parametrize(("build", "message"), KEYS + SIGNATURES)
def test_key_and_signature_refusals(build: Build, message: str) -> None:
    assert message in refused(build)


# --- the two readings must agree, and nothing but CsrParseError escapes -----------------


def test_a_subject_the_two_readings_decode_differently_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = parsing._text
    monkeypatch.setattr(parsing, "_text", lambda value, what: real(value, what).upper())
    assert refused(b.request) == (
        "spec.request subject: cryptography and the strict reading disagree"
    )


def test_names_the_two_readings_decode_differently_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parsing, "_uri", lambda uri: uri.upper())
    assert refused(lambda: with_san(b.uri("spiffe://cluster.local/a"))) == (
        "spec.request subjectAltNames: cryptography and the strict reading disagree"
    )


def test_any_other_exception_becomes_a_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(data: bytes) -> x509.CertificateSigningRequest:
        raise TypeError("oid must be X500_UNIQUE_IDENTIFIER for BitString type.")

    monkeypatch.setattr(x509, "load_der_x509_csr", explode)
    assert refused(b.request) == (
        "spec.request cannot be decoded: TypeError: "
        "oid must be X500_UNIQUE_IDENTIFIER for BitString type."
    )


# --- what is accepted, and read as Go reads it -------------------------------------------

ACCEPTED_SUBJECTS = [
    pytest.param(PRINTABLE, "web-1 (a)", id="printable-string"),
    pytest.param(IA5, "web@team-a", id="ia5-string"),
    pytest.param(BMP, "wéb☃", id="bmp-string"),
    pytest.param(UTF8, "wéb \U0001f600", id="utf8-string-beyond-the-bmp"),
    pytest.param(UTF8, "evil\nsecond line", id="control-characters-are-left-to-policy"),
    pytest.param(UTF8, "system:node:" + "n" * 80, id="cn-over-64-bytes-like-a-kubelet's"),
    pytest.param(UTF8, "", id="empty-cn"),
]


@pytest.mark.parametrize(("tag", "text"), ACCEPTED_SUBJECTS)
def test_string_subject_values_are_read_as_text(tag: int, text: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cryptography's length warning must not leak
        view = parse_csr(b.pem(b.request(subject=b.cn(text, tag))))
    assert [(a.oid, a.name, a.value) for a in view.subject] == [("2.5.4.3", "CN", text)]


def test_a_three_letter_country_is_read_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        view = parse_csr(with_subject(attr(b.COUNTRY, d.string(PRINTABLE, "USA"))))
    assert [(a.name, a.value) for a in view.subject] == [("C", "USA")]


def test_names_are_read_as_written() -> None:
    view = parse_csr(
        with_san(
            b.dns("web.team-a.svc"),
            b.dns("xn--bcher-kva.example"),
            b.dns("a\x00b.svc"),  # Go reads the NUL too; policy decides
            b.ip(b"\x0a\x00\x00\x01"),
            b.ip(b"\xfd" + bytes(14) + b"\x01"),
            b.uri("spiffe://cluster.local/ns/a/sa/b"),
            b.uri("urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"),
            b.uri("https://h:8443/p%2Fq?x=1&y#frag"),
            b.email("ops@team-a.svc"),
            d.context(8, d.oid_body("1.2.3.4"), constructed=False),
        )
    )
    assert view.dns_names == ("web.team-a.svc", "xn--bcher-kva.example", "a\x00b.svc")
    assert view.ip_addresses == (ip_address("10.0.0.1"), ip_address("fd00::1"))
    assert view.uris == (
        "spiffe://cluster.local/ns/a/sa/b",
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
        "https://h:8443/p%2Fq?x=1&y#frag",
    )
    assert view.emails == ("ops@team-a.svc",)
    assert view.other_sans == ("registeredID:1.2.3.4",)


KEYS_ACCEPTED = [
    pytest.param("ecdsa-p224", None, KeyInfo("ecdsa", 224, curve="secp224r1"), id="p224"),
    pytest.param("ecdsa-p384", None, KeyInfo("ecdsa", 384, curve="secp384r1"), id="p384"),
    pytest.param("ecdsa-p521", "ecdsa-sha512", KeyInfo("ecdsa", 521, curve="secp521r1"), id="p521"),
    pytest.param("ed25519", None, KeyInfo("ed25519", 256), id="ed25519"),
    pytest.param("rsa-1024", None, KeyInfo("rsa", 1024, exponent=65537), id="rsa-1024"),
    pytest.param("rsa-2048-e3", None, KeyInfo("rsa", 2048, exponent=3), id="rsa-e3"),
    pytest.param("rsa-2048", "pss-sha256", KeyInfo("rsa", 2048, exponent=65537), id="rsa-pss"),
    pytest.param("rsa-3072", "pss-sha512", KeyInfo("rsa", 3072, exponent=65537), id="rsa-pss-512"),
]


@pytest.mark.parametrize(("kind", "sig_alg", "key"), KEYS_ACCEPTED)
def test_keys_go_verifies_are_read(kind: b.KeyKind, sig_alg: b.SigAlg | None, key: KeyInfo) -> None:
    """Weak ones too: the key floor (pki.keys) refuses those when signing, with its own reason."""
    assert parse_csr(b.request(key_kind=kind, sig_alg=sig_alg)).key == key


def test_rsa_signature_algorithm_without_null_parameters_is_read() -> None:
    assert parse_csr(b.request(key_kind="rsa-2048", sig_params="absent")).key.algorithm == "rsa"


def test_other_attributes_and_a_legacy_pem_header_are_read() -> None:
    der = b.request(attributes=[CHALLENGE, WEB, b.attribute("1.2.3.9", d.string(PRINTABLE, "x"))])
    legacy = b.pem(der).replace(b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST")
    assert parse_csr(legacy).dns_names == ("web.team-a.svc",)


def test_no_attributes_and_an_empty_extension_request_read_as_no_names() -> None:
    for attributes in ([], [b.extension_request()]):
        view = parse_csr(b.request(attributes=attributes))
        assert (view.dns_names, view.ip_addresses, view.uris, view.emails) == ((), (), (), ())
