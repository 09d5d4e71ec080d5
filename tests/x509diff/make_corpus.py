"""Write tests/data/x509corpus: one PEM per way Go and cryptography disagreed.

    .venv/bin/python -m tests.x509diff.make_corpus

Each request is validly self-signed unless its point is the signature. The
files are committed; rerunning makes new keys (so new bytes) for the same
cases. test_corpus.py holds what parse_csr and Go must say about each.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.x509diff import csr_build as b
from tests.x509diff import der_build as d

CORPUS_DIR = Path(__file__).parents[1] / "data" / "x509corpus"

_WEB = b.extension_request(b.san(b.dns("web.team-a.svc")))


def _compressed_point() -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    point = (
        b.key("ecdsa-p256").public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    )
    algorithm = d.seq(d.oid("1.2.840.10045.2.1"), d.oid("1.2.840.10045.3.1.7"))
    return b.request(public_key_info=d.seq(algorithm, d.bits(point)), attributes=[_WEB])


def _rsa_without_null() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import rsa

    public = b.key("rsa-2048").public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    n = public.public_numbers()
    spki = d.seq(
        d.seq(d.oid("1.2.840.113549.1.1.1")), d.bits(d.seq(d.integer(n.n), d.integer(n.e)))
    )
    return b.request(key_kind="rsa-2048", public_key_info=spki, attributes=[_WEB])


CASES: list[tuple[str, str, Callable[[], bytes]]] = [
    (
        "ms-oid-extension-request-is-refused",
        "Microsoft-OID extensionRequest (kn-routing) before the standard one (web.team-a.svc): "
        "cryptography reads kn-routing, Go and kubectl web.team-a.svc",
        lambda: b.request(
            attributes=[
                b.extension_request(b.san(b.dns("kn-routing")), oid=b.MS_EXTENSION_REQUEST),
                _WEB,
            ],
            sort_attributes=False,
        ),
    ),
    (
        "two-extension-requests-are-refused",
        "two standard extensionRequest attributes (BasicConstraints, then the SAN): Go merges "
        "them and sees the SAN, cryptography reads only the first",
        lambda: b.request(
            attributes=[b.extension_request(b.extension(b.BASIC_CONSTRAINTS, d.seq())), _WEB]
        ),
    ),
    (
        "extension-request-with-two-values-is-refused",
        "one extensionRequest with two values: Go reads the first (kn-routing), cryptography refuses",
        lambda: b.request(
            attributes=[
                b.attribute(
                    b.EXTENSION_REQUEST,
                    d.seq(b.san(b.dns("kn-routing"))),
                    d.seq(b.san(b.dns("web.team-a.svc"))),
                )
            ]
        ),
    ),
    (
        "repeated-extension-is-refused",
        "the SAN extension twice in one extensionRequest",
        lambda: b.request(
            attributes=[b.extension_request(b.san(b.dns("a.svc")), b.san(b.dns("b.svc")))]
        ),
    ),
    (
        "explicit-non-critical-flag-is-refused",
        "critical=FALSE spelled out (not DER): Go reads the SAN, cryptography refuses",
        lambda: b.request(
            attributes=[b.extension_request(b.san(b.dns("web.team-a.svc"), critical=False))]
        ),
    ),
    (
        "unsorted-attributes-are-refused",
        "attributes SET not in DER order: Go reads it, cryptography refuses",
        lambda: b.request(
            attributes=[_WEB, b.attribute(b.CHALLENGE_PASSWORD, d.string(d.UTF8_STRING, "pw"))],
            sort_attributes=False,
        ),
    ),
    (
        "version-1-is-refused",
        "version 1 (v2): the apiserver stores it, cryptography raises InvalidVersion",
        lambda: b.request(version=1, attributes=[_WEB]),
    ),
    (
        "bit-string-cn-is-refused",
        "CN encoded as a BIT STRING: Go has no CN, cryptography raises TypeError",
        lambda: b.request(subject=b.name([b.atv(b.CN, d.bits(b"web"))]), attributes=[_WEB]),
    ),
    (
        "bit-string-in-san-directory-name-is-refused",
        "a SAN directoryName whose CN is a BIT STRING: Go ignores it, cryptography raises TypeError",
        lambda: b.request(
            attributes=[
                b.extension_request(
                    b.san(
                        b.dns("web.team-a.svc"),
                        d.context(4, b.name([b.atv(b.CN, d.bits(b"x"))]), constructed=True),
                    )
                )
            ]
        ),
    ),
    (
        "visible-string-cn-is-refused",
        "CN as a VisibleString: Go has no CN (nil value), cryptography reads 'web'",
        lambda: b.request(subject=b.cn("web", d.VISIBLE_STRING), attributes=[_WEB]),
    ),
    (
        "octet-string-cn-is-refused",
        "CN as an OCTET STRING: Go sees bytes, cryptography the text 'web'",
        lambda: b.request(subject=b.name([b.atv(b.CN, d.octets(b"web"))]), attributes=[_WEB]),
    ),
    (
        "t61-string-cn-is-refused",
        "CN as a T61String with a Latin-1 byte: Go decodes it, cryptography refuses",
        lambda: b.request(subject=b.cn("wéb", d.T61_STRING), attributes=[_WEB]),
    ),
    (
        "bmp-string-trailing-nul-is-refused",
        "BMPString CN 'web\\0': Go strips the NUL, cryptography keeps it",
        lambda: b.request(subject=b.cn("web\x00", d.BMP_STRING), attributes=[_WEB]),
    ),
    (
        "bmp-string-noncharacter-is-refused",
        "BMPString CN with U+FFFF: Go refuses the request, cryptography reads it",
        lambda: b.request(subject=b.cn("web\uffff", d.BMP_STRING), attributes=[_WEB]),
    ),
    (
        "bmp-string-surrogate-pair-is-refused",
        "BMPString CN with a surrogate pair: Go refuses the request, cryptography decodes U+1F600",
        lambda: b.request(subject=b.cn("web\U0001f600", d.BMP_STRING), attributes=[_WEB]),
    ),
    (
        "ia5-string-non-ascii-cn-is-refused",
        "IA5String CN with a UTF-8 'é': Go refuses the request, cryptography reads 'wéb'",
        lambda: b.request(subject=b.cn("wéb", d.IA5_STRING), attributes=[_WEB]),
    ),
    (
        "printable-string-asterisk-is-refused",
        "PrintableString CN '*.web': Go allows '*', cryptography refuses",
        lambda: b.request(subject=b.cn("*.web", d.PRINTABLE_STRING), attributes=[_WEB]),
    ),
    (
        "two-cns-are-refused",
        "two CN RDNs 'kn-routing' then 'web': Go's CommonName (kubectl, approvers) is the last, "
        "ours the first",
        lambda: b.request(
            subject=b.name(
                [b.atv(b.CN, d.string(d.UTF8_STRING, "kn-routing"))],
                [b.atv(b.CN, d.string(d.UTF8_STRING, "web"))],
            ),
            attributes=[_WEB],
        ),
    ),
    (
        "multi-valued-rdn-is-refused",
        "CN=web+O=team-a in one RDN: its order is undefined and our flat subject cannot show it",
        lambda: b.request(
            subject=b.name(
                [
                    b.atv(b.CN, d.string(d.UTF8_STRING, "web")),
                    b.atv(b.ORG, d.string(d.UTF8_STRING, "team-a")),
                ]
            ),
            attributes=[_WEB],
        ),
    ),
    (
        "empty-rdn-is-refused",
        "an empty RDN before CN=web: Go skips it, cryptography raises ValueError",
        lambda: b.request(
            subject=b.name([], [b.atv(b.CN, d.string(d.UTF8_STRING, "web"))]), attributes=[_WEB]
        ),
    ),
    (
        "oid-arc-above-int32-is-refused",
        "a subject attribute type 1.2.4294967296.1: Go refuses the request, cryptography reads it",
        lambda: b.request(
            subject=b.name([b.atv("1.2.4294967296.1", d.string(d.UTF8_STRING, "x"))]),
            attributes=[_WEB],
        ),
    ),
    (
        "non-ascii-dns-name-is-refused",
        "dNSName 'bücher.example' in UTF-8: Go refuses the request, cryptography reads it",
        lambda: b.request(attributes=[b.extension_request(b.san(b.dns("bücher.example")))]),
    ),
    (
        "non-ascii-email-is-refused",
        "rfc822Name 'ü@team-a.svc': Go refuses the request, cryptography reads it",
        lambda: b.request(attributes=[b.extension_request(b.san(b.email("ü@team-a.svc")))]),
    ),
    (
        "uri-go-rewrites-is-refused",
        "URI 'SPIFFE://cluster.local/ns/a': Go lower-cases the scheme, cryptography does not",
        lambda: b.request(
            attributes=[b.extension_request(b.san(b.uri("SPIFFE://cluster.local/ns/a")))]
        ),
    ),
    (
        "uri-empty-fragment-is-refused",
        "URI 'spiffe://cluster.local/ns/a#': Go drops the empty fragment",
        lambda: b.request(
            attributes=[b.extension_request(b.san(b.uri("spiffe://cluster.local/ns/a#")))]
        ),
    ),
    (
        "uri-go-rejects-is-refused",
        "URI 'https://a b/': Go refuses the request, cryptography reads it",
        lambda: b.request(attributes=[b.extension_request(b.san(b.uri("https://a b/")))]),
    ),
    (
        "ipv4-mapped-ipv6-is-refused",
        "iPAddress ::ffff:10.0.0.1: Go (and kubectl) show 10.0.0.1, cryptography an IPv6 address",
        lambda: b.request(
            attributes=[b.extension_request(b.san(b.ip(bytes(10) + b"\xff\xff\x0a\x00\x00\x01")))]
        ),
    ),
    (
        "five-byte-ip-is-refused",
        "a 5-byte iPAddress: Go refuses the request, cryptography raises ValueError",
        lambda: b.request(attributes=[b.extension_request(b.san(b.ip(b"\x0a\x00\x00\x01\x00")))]),
    ),
    (
        "san-with-trailing-bytes-is-refused",
        "bytes after the GeneralNames SEQUENCE: Go ignores them, cryptography refuses",
        lambda: b.request(
            attributes=[
                b.extension_request(
                    b.extension(b.SAN, b.general_names(b.dns("web.team-a.svc")) + d.null())
                )
            ]
        ),
    ),
    (
        "constructed-dns-name-is-refused",
        "a constructed [2] dNSName: Go silently drops it, cryptography refuses",
        lambda: b.request(
            attributes=[
                b.extension_request(
                    b.san(
                        b.dns("web.team-a.svc"),
                        d.context(2, d.string(d.IA5_STRING, "kn-routing"), constructed=True),
                    )
                )
            ]
        ),
    ),
    (
        "x400-address-is-refused",
        "an x400Address SAN: Go ignores it, cryptography raises UnsupportedGeneralNameType",
        lambda: b.request(
            attributes=[
                b.extension_request(
                    b.san(b.dns("web.team-a.svc"), d.context(3, d.seq(), constructed=True))
                )
            ]
        ),
    ),
    (
        "ed448-key-is-refused",
        "an Ed448 key: cryptography verifies it, Go cannot (the apiserver refuses it)",
        lambda: b.request(key_kind="ed448", attributes=[_WEB]),
    ),
    (
        "dsa-key-is-refused",
        "a DSA key: cryptography verifies it, Go's CheckSignature cannot",
        lambda: b.request(key_kind="dsa-2048", attributes=[_WEB]),
    ),
    (
        "secp256k1-key-is-refused",
        "an ECDSA secp256k1 key: cryptography verifies it, Go does not know the curve",
        lambda: b.request(key_kind="ecdsa-secp256k1", attributes=[_WEB]),
    ),
    (
        "compressed-ec-point-is-refused",
        "a compressed P-256 point: cryptography reads it, Go refuses the key",
        _compressed_point,
    ),
    (
        "rsa-key-without-null-parameters-is-refused",
        "rsaEncryption without NULL parameters: cryptography reads it, Go refuses the key",
        _rsa_without_null,
    ),
    (
        "rsa-exponent-above-int32-is-refused",
        "an RSA public exponent just above 2^31: cryptography verifies, Go refuses to",
        lambda: b.request(key_kind="rsa-2048-e2^31+", attributes=[_WEB]),
    ),
    (
        "pss-with-20-byte-salt-is-refused",
        "RSASSA-PSS SHA-256 with a 20-byte salt: cryptography verifies, Go calls it unknown",
        lambda: b.request(key_kind="rsa-2048", sig_alg="pss-sha256-salt20", attributes=[_WEB]),
    ),
    (
        "sha1-signature-is-refused",
        "sha1WithRSAEncryption: Go accepts SHA-1 on requests, cryptography does not verify it",
        lambda: b.request(key_kind="rsa-2048", sig_alg="sha1-rsa", attributes=[_WEB]),
    ),
    (
        "md5-signature-is-refused",
        "md5WithRSAEncryption: refused by both, now with a message saying why",
        lambda: b.request(key_kind="rsa-2048", sig_alg="md5-rsa", attributes=[_WEB]),
    ),
    (
        "ecdsa-signature-with-null-parameters-is-refused",
        "ecdsa-with-SHA256 with NULL parameters: Go verifies it, cryptography refuses to load it",
        lambda: b.request(sig_params="null", attributes=[_WEB]),
    ),
]


def main() -> None:
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    lines = [
        "# x509corpus: requests on which Go's crypto/x509 and `cryptography` disagreed",
        "",
        "Written by `python -m tests.x509diff.make_corpus`; checked by",
        "tests/x509diff/test_corpus.py (what parse_csr and Go say about each).",
        "",
    ]
    for name, why, build in CASES:
        (CORPUS_DIR / f"{name}.pem").write_bytes(b.pem(build()))
        lines.append(f"- `{name}.pem`: {why}")
    (CORPUS_DIR / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
