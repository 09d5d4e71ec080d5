"""The corpus: every class of request on which Go and cryptography disagreed.

For each file in tests/data/x509corpus (see its README): parse_csr refuses it
with the message shown, and Go's crypto/x509 sees what the row says, which is
why accepting it would have been wrong. Regenerate the files with
`python -m tests.x509diff.make_corpus`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from signer.pki.parsing import CsrParseError, parse_csr
from tests.x509diff.goview import GoView, GoX509

CORPUS = Path(__file__).parents[1] / "data" / "x509corpus"

pytestmark = pytest.mark.timeout(600)  # the first test may build gox509


@dataclass(frozen=True)
class GoSees:
    """What Go's ParseCertificateRequest + CheckSignature make of a request."""

    stores: bool
    """True: it parses and its signature verifies, so the apiserver stores it."""
    error: str = ""
    """When it does not: part of Go's parse or signature error."""
    dns: list[str] | None = None
    ips: list[str] | None = None
    uris: list[str] | None = None
    cn: str | None = None
    subject_types: list[str] = field(default_factory=list)
    """Go's type for each subject value, when it matters ("string", "asn1.BitString", ...)."""

    def check(self, go: GoView) -> None:
        assert go.accepted == self.stores, go
        if self.error:
            assert self.error in (go.error or go.sig_error)
        for got, want in ((go.dns, self.dns), (go.ips, self.ips), (go.uris, self.uris)):
            if want is not None:
                assert got == want
        if self.cn is not None:
            assert go.cn == self.cn
        if self.subject_types:
            assert [kind for _, kind, _ in go.subject] == self.subject_types


WEB = ["web.team-a.svc"]
ROWS = [
    (
        "ms-oid-extension-request-is-refused",
        "Microsoft's extensionRequest (1.3.6.1.4.1.311.2.1.14) is not read by Kubernetes",
        GoSees(stores=True, dns=WEB),
    ),
    (
        "two-extension-requests-are-refused",
        "2 extensionRequest attributes; Kubernetes merges them",
        GoSees(stores=True, dns=WEB),
    ),
    (
        "extension-request-with-two-values-is-refused",
        "the extensionRequest has 2 values",
        GoSees(stores=True, dns=["kn-routing"]),
    ),
    (
        "repeated-extension-is-refused",
        "extensions: 2.5.29.17 is requested more than once",
        GoSees(stores=False, error="duplicate requested extensions"),
    ),
    (
        "explicit-non-critical-flag-is-refused",
        "2.5.29.17 spells out critical=FALSE",
        GoSees(stores=True, dns=WEB),
    ),
    (
        "unsorted-attributes-are-refused",
        "the attributes are not in DER (sorted) order",
        GoSees(stores=True, dns=WEB),
    ),
    (
        "version-1-is-refused",
        "spec.request version: 1 is not 0 (v1)",
        GoSees(stores=True, dns=WEB, cn="web"),
    ),
    (
        "bit-string-cn-is-refused",
        "subject: CN is encoded as BIT STRING",
        GoSees(stores=True, cn="", subject_types=["asn1.BitString"]),
    ),
    (
        "bit-string-in-san-directory-name-is-refused",
        "subjectAltNames directoryName: CN is encoded as BIT STRING",
        GoSees(stores=True, dns=WEB),
    ),
    (
        "visible-string-cn-is-refused",
        "subject: CN is encoded as VisibleString",
        GoSees(stores=True, cn="", subject_types=["<nil>"]),
    ),
    (
        "octet-string-cn-is-refused",
        "subject: CN is encoded as OCTET STRING",
        GoSees(stores=True, cn="", subject_types=["[]uint8"]),
    ),
    (
        "t61-string-cn-is-refused",
        "subject: CN is encoded as T61String",
        GoSees(stores=True, cn="wéb"),
    ),
    (
        "bmp-string-trailing-nul-is-refused",
        "CN is not a valid BMPString: it ends in NUL",
        GoSees(stores=True, cn="web"),
    ),
    (
        "bmp-string-noncharacter-is-refused",
        "CN is not a valid BMPString: it has a surrogate or a noncharacter",
        GoSees(stores=False, error="invalid BMPString"),
    ),
    (
        "bmp-string-surrogate-pair-is-refused",
        "CN is not a valid BMPString: it has a surrogate or a noncharacter",
        GoSees(stores=False, error="invalid BMPString"),
    ),
    (
        "ia5-string-non-ascii-cn-is-refused",
        "CN is not a valid IA5String: it has a non-ASCII byte",
        GoSees(stores=False, error="IA5String contains invalid character"),
    ),
    (
        "printable-string-asterisk-is-refused",
        "CN is not a valid PrintableString",
        GoSees(stores=True, cn="*.web"),
    ),
    (
        "two-cns-are-refused",
        "subject: 2 CN attributes; at most one is allowed",
        GoSees(stores=True, cn="web", subject_types=["string", "string"]),
    ),
    (
        "multi-valued-rdn-is-refused",
        "subject: a multi-valued RDN (2 attributes in one set)",
        GoSees(stores=True, cn="web", subject_types=["string", "string"]),
    ),
    (
        "empty-rdn-is-refused",
        "subject: an empty RDN",
        GoSees(stores=True, cn="web", subject_types=["string"]),
    ),
    (
        "oid-arc-above-int32-is-refused",
        "OBJECT IDENTIFIER arc above 2^31-1",
        GoSees(stores=False, error="base 128 integer too large"),
    ),
    (
        "non-ascii-dns-name-is-refused",
        'dnsNames: "b\\u00fccher.example" is not ASCII',
        GoSees(stores=False, error="SAN dNSName is malformed"),
    ),
    (
        "non-ascii-email-is-refused",
        'emailAddresses: "\\u00fc@team-a.svc" is not ASCII',
        GoSees(stores=False, error="SAN rfc822Name is malformed"),
    ),
    (
        "uri-go-rewrites-is-refused",
        'uris: "SPIFFE://cluster.local/ns/a" is not a URI Kubernetes reads back unchanged',
        GoSees(stores=True, uris=["spiffe://cluster.local/ns/a"]),
    ),
    (
        "uri-empty-fragment-is-refused",
        'uris: "spiffe://cluster.local/ns/a#" is not a URI Kubernetes reads back unchanged',
        GoSees(stores=True, uris=["spiffe://cluster.local/ns/a"]),
    ),
    (
        "uri-go-rejects-is-refused",
        'uris: "https://a b/" is not a URI Kubernetes reads back unchanged',
        GoSees(stores=False, error="cannot parse URI"),
    ),
    (
        "ipv4-mapped-ipv6-is-refused",
        'ipAddresses: "::ffff:a00:1" is IPv4-mapped; Kubernetes reads it as 10.0.0.1',
        GoSees(stores=True, ips=["10.0.0.1"]),
    ),
    (
        "five-byte-ip-is-refused",
        "ipAddresses: 5 bytes is neither IPv4 (4) nor IPv6 (16)",
        GoSees(stores=False, error="IP address of length 5"),
    ),
    (
        "san-with-trailing-bytes-is-refused",
        "subjectAltNames: the extension cannot be decoded",
        GoSees(stores=True, dns=WEB),
    ),
    (
        "constructed-dns-name-is-refused",
        "subjectAltNames: entry [2] is encoded in the wrong form",
        GoSees(stores=True, dns=WEB),
    ),
    (
        "x400-address-is-refused",
        "x400Address and ediPartyName are not supported",
        GoSees(stores=True, dns=WEB),
    ),
    (
        "ed448-key-is-refused",
        "publicKey: Ed448 keys cannot be verified by Kubernetes",
        GoSees(stores=False, error="algorithm unimplemented"),
    ),
    (
        "dsa-key-is-refused",
        "publicKey: DSA keys cannot be verified by Kubernetes",
        GoSees(stores=False, error="algorithm unimplemented"),
    ),
    (
        "secp256k1-key-is-refused",
        "publicKey: ECDSA curve 1.3.132.0.10 is not supported",
        GoSees(stores=False, error="unsupported elliptic curve"),
    ),
    (
        "compressed-ec-point-is-refused",
        "publicKey: the ECDSA point is not uncompressed",
        GoSees(stores=False, error="invalid uncompressed public key"),
    ),
    (
        "rsa-key-without-null-parameters-is-refused",
        "publicKey: the RSA algorithm parameters are not NULL",
        GoSees(stores=False, error="RSA key missing NULL parameters"),
    ),
    (
        "rsa-exponent-above-int32-is-refused",
        "is not odd and between 3 and 2^31-1, which Kubernetes requires",
        GoSees(stores=False, error="public exponent too large"),
    ),
    (
        "pss-with-20-byte-salt-is-refused",
        "signature: RSASSA-PSS with parameters Kubernetes does not verify",
        GoSees(stores=False, error="algorithm unimplemented"),
    ),
    (
        "sha1-signature-is-refused",
        "signature: sha1WithRSAEncryption; MD5 and SHA-1 signatures are not accepted",
        GoSees(stores=True, dns=WEB),
    ),
    (
        "md5-signature-is-refused",
        "signature: md5WithRSAEncryption; MD5 and SHA-1",
        GoSees(stores=False, error="insecure algorithm MD5-RSA"),
    ),
    (
        "ecdsa-signature-with-null-parameters-is-refused",
        "signature: ecdsa-with-SHA256 with parameters Kubernetes does not verify",
        GoSees(stores=True, dns=WEB),
    ),
]


def der_of(pem: bytes) -> bytes:
    return base64.b64decode(b"".join(pem.strip().splitlines()[1:-1]))


def test_every_corpus_file_has_a_row() -> None:
    assert sorted(p.stem for p in CORPUS.glob("*.pem")) == sorted(row[0] for row in ROWS)


@pytest.mark.parametrize(
    ("name", "refusal", "go_sees"), [pytest.param(*row, id=row[0]) for row in ROWS]
)
def test_corpus_request(gox509: GoX509, name: str, refusal: str, go_sees: GoSees) -> None:
    pem = (CORPUS / f"{name}.pem").read_bytes()
    with pytest.raises(CsrParseError) as refused:
        parse_csr(pem)
    assert refusal in str(refused.value)
    go_sees.check(gox509.view(der_of(pem)))
