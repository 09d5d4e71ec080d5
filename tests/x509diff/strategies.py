"""Hypothesis strategies for PKCS#10 requests, mostly well-formed, often not.

Each request is drawn as its parts (subject RDNs, attributes, extensions, SAN
entries, key, signature algorithm, version) with a small chance of each odd
encoding the differential test is about: BIT STRING and other non-string
subject values, multi-valued and empty RDNs, duplicate CNs, BMP/IA5/T61
strings, extensionRequest under Microsoft's OID or twice or with two values,
duplicate and explicitly non-critical extensions, SAN names that are long,
IDNA, non-ASCII or carry NUL, URIs Go rewrites or rejects, IPs of the wrong
length or IPv4-mapped, every key kind, weak/mismatched/PSS signatures, version
1, and deliberately broken signatures. Most draws stay valid, so most checks
compare two full views rather than two refusals.

Hypothesis favours the bounds of a range, so "rarely" is a middle value of a
range and "mostly" puts the usual value at both ends of the choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import strategies as st

from tests.x509diff import csr_build as b
from tests.x509diff import der_build as d

T = TypeVar("T")


@cache
def _sampled(choices: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(choices)


def mostly(usual: T, *odd: T, weight: int = 8) -> st.SearchStrategy[T]:
    """`usual`, or now and then one of `odd` (cached: building strategies is not free)."""
    strategy: st.SearchStrategy[T] = _sampled((usual,) * weight + odd + (usual,) * weight)
    return strategy


@cache
def _range(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


def rarely(draw: st.DrawFn, one_in: int) -> bool:
    return draw(_range(0, 2 * one_in)) == one_in


_PLAIN = "abcdefghijklmnopqrstuvwxyz0123456789-."
_ODD_CHARS = " '()+,/:=?*&@_\"#%\\<>[]{}|~!$;ABCZ\x00\x01\n\x7féü☃\ufffd\ufffe\uffff\ufdd0\u200b\U0001f600\ud800"


_PLAIN_TEXT = st.text(alphabet=_PLAIN, min_size=1, max_size=12)
_ODD_TEXT = st.text(alphabet=st.sampled_from(_PLAIN + _ODD_CHARS), max_size=12)


@st.composite
def texts(draw: st.DrawFn) -> str:
    kind = draw(mostly("plain", "odd", "long", "empty", weight=3))
    if kind == "plain":
        return draw(_PLAIN_TEXT)
    if kind == "odd":
        return draw(_ODD_TEXT)
    if kind == "long":
        n = draw(_range(60, 300))
        return ("a" * 62 + ".") * (n // 63) + "b" * (n % 63)
    return ""


_STRING_TAGS = [d.UTF8_STRING, d.PRINTABLE_STRING, d.IA5_STRING, d.BMP_STRING]
_ODD_TAGS = [d.T61_STRING, d.NUMERIC_STRING, d.VISIBLE_STRING, d.UNIVERSAL_STRING]
_NON_STRINGS = [d.BIT_STRING, d.INTEGER, d.OCTET_STRING]
_TAGS = mostly(d.UTF8_STRING, *_STRING_TAGS * 6, *_ODD_TAGS, *_NON_STRINGS, weight=20)
"""Mostly UTF8String, often another string type, about one in twelve something else."""


@st.composite
def subject_values(draw: st.DrawFn) -> bytes:
    tag = draw(_TAGS)
    text = draw(_TEXTS)
    raw = text.encode("utf-8", "surrogatepass")
    if tag == d.BIT_STRING:
        return d.bits(raw)
    if tag == d.INTEGER:
        return d.integer(len(text))
    if tag == d.OCTET_STRING:
        return d.octets(raw)
    if tag in (d.PRINTABLE_STRING, d.IA5_STRING, d.NUMERIC_STRING) and draw(st.booleans()):
        keep = "0123456789 " if tag == d.NUMERIC_STRING else _PLAIN + " '()+,/:=?"
        text = "".join(c for c in text if c in keep)
    return d.string(tag, text)


_SUBJECT_OIDS = [
    b.CN,
    b.ORG,
    b.OU,
    b.COUNTRY,
    b.SERIAL,
    b.UID,
    b.EMAIL_ADDRESS,
    b.UNIQUE_ID,
    "1.2.3.4",
    "2.5.4.97",
]


@st.composite
def names(draw: st.DrawFn, max_rdns: int = 3) -> bytes:
    rdns: list[list[bytes]] = []
    for _ in range(draw(_range(0, max_rdns))):
        size = draw(mostly(1, 0, 2, 3, weight=30))
        rdns.append(
            [
                b.atv(draw(mostly(b.CN, *_SUBJECT_OIDS, weight=1)), draw(_SUBJECT_VALUES))
                for _ in range(size)
            ]
        )
    if rarely(draw, 40):
        rdns.insert(0, [b.atv("1.2.4294967296.1", d.string(d.UTF8_STRING, "x"))])
    return b.name(*rdns)


_ODD_HOSTS = [
    "*.team-a.svc",
    "xn--bcher-kva.example",
    "bücher.example",
    "web.team-a.svc.",
    "WEB.Team-A.svc",
    "under_score.svc",
    "a..b",
    "",
    "web\x00.evil.com",
    "a" * 64 + ".svc",
    ("a" * 63 + ".") * 4 + "svc",
    "web.team-a.svc\n",
    "web team",
]


_LABELS = st.lists(st.text(alphabet="abcxyz0189-", min_size=1, max_size=10), min_size=1, max_size=4)


@st.composite
def hostnames(draw: st.DrawFn) -> str:
    if rarely(draw, 3):
        return draw(mostly(*_ODD_HOSTS, weight=1))
    return ".".join(draw(_LABELS))


_URI_SCHEMES = ["spiffe", "https", "urn", "a+b.c-d", "HTTP", "Spiffe", "1x", ""]
_URI_HOSTS = [
    "cluster.local",
    "team-a.svc",
    "h:8443",
    "A.B",
    "a..b",
    "a.",
    "u@h",
    "[::1]",
    "h:port",
    "h:",
    "ex%41mple",
    "h!$&'()*+,;=",
    "bücher.de",
    "",
]
_URI_PIECES = [
    *"abcXYZ019-._~!$&'()*+,;=:@",
    *["%41", "%2f", "%2F", "%zz", "%", " ", "#", "\\", '"', "<", "[", "]", "{", "|"],
    *["é", "\x00", "?", "/"],
]
_URI_SEGMENTS = st.lists(st.sampled_from(_URI_PIECES), max_size=6).map("".join)
_URI_PATHS = st.lists(_URI_SEGMENTS, max_size=3)


@st.composite
def uris(draw: st.DrawFn) -> str:
    scheme = draw(mostly("spiffe", *_URI_SCHEMES, weight=3))
    if draw(st.booleans()) or draw(st.booleans()):
        head = f"{scheme}://{draw(mostly('cluster.local', *_URI_HOSTS, weight=4))}"
    else:
        head = f"{scheme}:{draw(mostly('', '/', '//', 'x:y', weight=1))}"
    path = "".join("/" + s for s in draw(_URI_PATHS))
    query = "?" + draw(_URI_SEGMENTS) if rarely(draw, 2) else ""
    fragment = "#" + draw(_URI_SEGMENTS) if rarely(draw, 2) else ""
    return head + path + query + fragment


@cache
def _octets(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


@st.composite
def ips(draw: st.DrawFn) -> bytes:
    kind = draw(mostly("v4", "v6", "v6", "v4-mapped", "wrong-length", weight=2))
    if kind == "v4":
        return draw(_octets(4))
    if kind == "v6":
        return b"\xfd" + draw(_octets(15))
    if kind == "v4-mapped":
        return bytes(10) + b"\xff\xff" + draw(_octets(4))
    return bytes(draw(mostly(0, 5, 8, 32, weight=1)))


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


_OTHER_NAMES = [
    d.context(
        0,
        d.oid("1.3.6.1.4.1.311.20.2.3")
        + d.context(0, d.string(d.UTF8_STRING, "u@x"), constructed=True),
        constructed=True,
    ),
    d.context(8, d.oid_body("1.2.3.4"), constructed=False),
    d.context(3, d.seq(), constructed=True),  # x400Address
    d.context(5, d.seq(), constructed=True),  # ediPartyName
    d.context(2, d.string(d.IA5_STRING, "nested.svc"), constructed=True),
    d.context(7, d.octets(bytes(4)), constructed=True),
    d.string(d.IA5_STRING, "universal.svc"),
]


_TEXTS = texts()
_SUBJECT_VALUES = subject_values()
_NAMES = names()
_DIRECTORY_NAMES = names(max_rdns=2)
_HOSTNAMES = hostnames()
_URIS = uris()
_IPS = ips()


@st.composite
def general_names(draw: st.DrawFn) -> bytes:
    kind = draw(mostly("dns", "dns", "ip", "uri", "uri", "email", "dirName", weight=3))
    if rarely(draw, 25):
        return draw(mostly(*_OTHER_NAMES, weight=1))
    if kind == "dns":
        return b.dns(_raw(draw(_HOSTNAMES)))
    if kind == "ip":
        return b.ip(draw(_IPS))
    if kind == "uri":
        return b.uri(_raw(draw(_URIS)))
    if kind == "email":
        local = draw(mostly("ops", "a.b+c", "", "ü", "a\x00b"))
        return b.email(_raw(f"{local}@{draw(_HOSTNAMES)}"))
    return d.context(4, draw(_DIRECTORY_NAMES), constructed=True)


_GENERAL_NAME_LISTS = st.lists(general_names(), max_size=5)


_CRITICAL = mostly(None, True, False, weight=15)
_OTHER_EXTENSIONS = {
    "ca": (b.BASIC_CONSTRAINTS, d.seq(d.boolean(True))),
    "key-usage": (b.KEY_USAGE, d.bits(b"\xa0", unused=5)),
    "foreign": ("1.2.3.4.5", d.octets(b"foreign")),
}
_EXTRA_EXTENSIONS = mostly(
    (),
    ("ca",),
    ("key-usage",),
    ("foreign",),
    ("ca", "key-usage", "foreign"),
    ("no-san",),
    ("no-san", "ca"),
    ("san-trailing-bytes",),
    ("duplicate",),
    ("ca", "duplicate"),
    weight=10,
)
"""Which extensions besides a SAN (one draw: every draw costs time)."""


@st.composite
def extensions(draw: st.DrawFn) -> list[bytes]:
    out: list[bytes] = []
    extras = draw(_EXTRA_EXTENSIONS)
    if "no-san" not in extras:
        value = b.general_names(*draw(_GENERAL_NAME_LISTS))
        if "san-trailing-bytes" in extras:
            value += d.null()
        out.append(b.extension(b.SAN, value, draw(_CRITICAL)))
    for extra in extras:
        if extra in _OTHER_EXTENSIONS:
            oid, value = _OTHER_EXTENSIONS[extra]
            out.append(b.extension(oid, value, draw(_CRITICAL)))
    if out and "duplicate" in extras:
        out.append(out[draw(_range(0, len(out) - 1))])  # requested twice
    return list(draw(st.permutations(out)))


def _odd_attributes(exts: list[bytes]) -> list[bytes]:
    """Attributes that, next to the usual extensionRequest, make a request ambiguous or odd."""
    return [
        b.extension_request(b.san(b.dns("kn-routing")), oid=b.MS_EXTENSION_REQUEST),
        b.extension_request(b.san(b.dns("other.svc"))),
        b.extension_request(b.extension(b.BASIC_CONSTRAINTS, d.seq())),
        b.attribute(b.EXTENSION_REQUEST),
        b.attribute(b.EXTENSION_REQUEST, d.seq(*exts), d.seq()),
        b.attribute(b.CHALLENGE_PASSWORD, d.string(d.UTF8_STRING, "pw")),
        b.attribute("1.2.3.9", d.string(d.PRINTABLE_STRING, "x")),
        d.seq(d.oid(b.EXTENSION_REQUEST), d.set_of([d.seq()]), d.null()),
    ]


_EXTENSIONS = extensions()


@st.composite
def attributes(draw: st.DrawFn) -> list[bytes]:
    exts = draw(_EXTENSIONS)
    out = [] if rarely(draw, 8) else [b.extension_request(*exts)]
    for _ in range(draw(mostly(0, 1, 2, weight=12))):
        other = draw(mostly(*_odd_attributes(exts), weight=1))
        out.insert(draw(_range(0, len(out))), other)
    return out


_ATTRIBUTES = attributes()
_CURVE_OIDS = {
    "secp224r1": "1.3.132.0.33",
    "secp256r1": "1.2.840.10045.3.1.7",
    "secp384r1": "1.3.132.0.34",
    "secp521r1": "1.3.132.0.35",
    "secp256k1": "1.3.132.0.10",
}


def _odd_public_key_info(private: b.PrivateKey) -> bytes | None:
    """The key in a form Go refuses and cryptography reads, if there is one."""
    public = private.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        point = public.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
        algorithm = d.seq(d.oid("1.2.840.10045.2.1"), d.oid(_CURVE_OIDS[public.curve.name]))
        return d.seq(algorithm, d.bits(point))
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        algorithm = d.seq(d.oid("1.2.840.113549.1.1.1"))  # without the NULL parameters
        return d.seq(algorithm, d.bits(d.seq(d.integer(numbers.n), d.integer(numbers.e))))
    return None


@dataclass(frozen=True)
class Case:
    """One generated request and how to hand it to parse_csr."""

    der: bytes
    as_pem: bool


_REQUEST_ODDITIES = mostly(
    "",
    "no-sig-params",
    "null-sig-params",
    "version=1",
    "version=2",
    "version=-1",
    "version=256",
    "odd-key",
    "unsorted-attributes",
    "tampered",
    "tampered",
    weight=30,
)
"""At most one request-level oddity per request (one draw)."""


@st.composite
def requests(draw: st.DrawFn) -> Case:
    kind = draw(mostly("ecdsa-p256", *b.KEY_KINDS, "ed25519", "rsa-2048", weight=10))
    if rarely(draw, 8):
        sig_alg = draw(mostly(*b.SIG_ALGS, weight=1))
    else:
        sig_alg = draw(mostly(*b.usual_sig_algs(kind), weight=1))
    if kind == "rsa-1024" and sig_alg == "pss-sha512":
        sig_alg = "pss-sha256"  # a 1024-bit key is too short for PSS with SHA-512
    index = draw(_range(0, 1))
    odd = draw(_REQUEST_ODDITIES)
    der = b.request(
        subject=draw(_NAMES),
        attributes=draw(_ATTRIBUTES),
        key_kind=kind,
        key_index=index,
        sig_alg=sig_alg,
        sig_params="absent"
        if odd == "no-sig-params"
        else "null"
        if odd == "null-sig-params"
        else "default",
        version=int(odd[8:]) if odd.startswith("version=") else 0,
        public_key_info=_odd_public_key_info(b.key(kind, index)) if odd == "odd-key" else None,
        sort_attributes=odd != "unsorted-attributes",
        tamper=odd == "tampered",
    )
    return Case(der=der, as_pem=draw(st.booleans()))
