"""spec.usages -> KeyUsage / ExtendedKeyUsage, as kube-controller-manager maps them."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from signer.models import Refusal, Usage
from signer.pki.usages import MappedUsages, map_usages

KU_FIELDS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def ku_bits(ku: x509.KeyUsage | None) -> set[str]:
    if ku is None:
        return set()
    bits = {f for f in KU_FIELDS if getattr(ku, f)}
    if ku.key_agreement:
        bits |= {f for f in ("encipher_only", "decipher_only") if getattr(ku, f)}
    return bits


def ekus(eku: x509.ExtendedKeyUsage | None) -> list[str]:
    return [] if eku is None else [oid.dotted_string for oid in eku]


@pytest.mark.parametrize(
    ("usages", "want_ku", "want_eku"),
    [
        pytest.param(["signing"], {"digital_signature"}, [], id="signing-is-digital-signature"),
        pytest.param(["digital signature"], {"digital_signature"}, [], id="digital-signature"),
        pytest.param(["content commitment"], {"content_commitment"}, [], id="content-commitment"),
        pytest.param(["key encipherment"], {"key_encipherment"}, [], id="key-encipherment"),
        pytest.param(["key agreement"], {"key_agreement"}, [], id="key-agreement"),
        pytest.param(["data encipherment"], {"data_encipherment"}, [], id="data-encipherment"),
        pytest.param(
            ["key agreement", "encipher only"],
            {"key_agreement", "encipher_only"},
            [],
            id="encipher-only-with-key-agreement",
        ),
        pytest.param(
            ["key agreement", "decipher only"],
            {"key_agreement", "decipher_only"},
            [],
            id="decipher-only-with-key-agreement",
        ),
        pytest.param(["any"], set(), ["2.5.29.37.0"], id="any-extended-key-usage"),
        pytest.param(["server auth"], set(), ["1.3.6.1.5.5.7.3.1"], id="server-auth"),
        pytest.param(["client auth"], set(), ["1.3.6.1.5.5.7.3.2"], id="client-auth"),
        pytest.param(["code signing"], set(), ["1.3.6.1.5.5.7.3.3"], id="code-signing"),
        pytest.param(["email protection"], set(), ["1.3.6.1.5.5.7.3.4"], id="email-protection"),
        pytest.param(["s/mime"], set(), ["1.3.6.1.5.5.7.3.4"], id="smime-is-email-protection"),
        pytest.param(["ipsec end system"], set(), ["1.3.6.1.5.5.7.3.5"], id="ipsec-end-system"),
        pytest.param(["ipsec tunnel"], set(), ["1.3.6.1.5.5.7.3.6"], id="ipsec-tunnel"),
        pytest.param(["ipsec user"], set(), ["1.3.6.1.5.5.7.3.7"], id="ipsec-user"),
        pytest.param(["timestamping"], set(), ["1.3.6.1.5.5.7.3.8"], id="timestamping"),
        pytest.param(["ocsp signing"], set(), ["1.3.6.1.5.5.7.3.9"], id="ocsp-signing"),
        pytest.param(["microsoft sgc"], set(), ["1.3.6.1.4.1.311.10.3.3"], id="microsoft-sgc"),
        pytest.param(["netscape sgc"], set(), ["2.16.840.1.113730.4.1"], id="netscape-sgc"),
        pytest.param(
            ["digital signature", "key encipherment", "server auth"],
            {"digital_signature", "key_encipherment"},
            ["1.3.6.1.5.5.7.3.1"],
            id="kubelet-serving-set",
        ),
        pytest.param(
            ["client auth", "server auth", "any"],
            set(),
            ["2.5.29.37.0", "1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"],
            id="ekus-ordered-as-go-constants-not-as-requested",
        ),
        pytest.param(
            ["s/mime", "email protection", "signing", "digital signature"],
            {"digital_signature"},
            ["1.3.6.1.5.5.7.3.4"],
            id="synonyms-collapse-to-one-bit-and-one-oid",
        ),
        pytest.param([], set(), [], id="no-usages-no-extensions"),
    ],
)
def test_usages_map_like_kube_controller_manager(
    usages: list[str], want_ku: set[str], want_eku: list[str]
) -> None:
    got = map_usages(usages)
    assert isinstance(got, MappedUsages)
    assert ku_bits(got.key_usage) == want_ku
    assert ekus(got.extended_key_usage) == want_eku


def test_no_bits_means_no_key_usage_extension() -> None:
    got = map_usages(["server auth"])
    assert isinstance(got, MappedUsages)
    assert got.key_usage is None


def test_every_api_usage_value_is_known_or_refused_deliberately() -> None:
    for usage in Usage:
        got = map_usages([usage.value])
        if isinstance(got, Refusal):
            assert got.reason in {"ForbiddenUsage", "InvalidUsage"}, usage


@pytest.mark.parametrize(
    ("usages", "reason", "fragment"),
    [
        pytest.param(["server auth", "bogus"], "UnknownUsage", "'bogus'", id="unknown-usage"),
        pytest.param(
            ["Server Auth"], "UnknownUsage", "'Server Auth'", id="usages-are-case-sensitive"
        ),
        pytest.param(["cert sign"], "ForbiddenUsage", "'cert sign'", id="cert-sign-is-refused"),
        pytest.param(["crl sign"], "ForbiddenUsage", "'crl sign'", id="crl-sign-is-refused"),
        pytest.param(
            ["digital signature", "cert sign", "crl sign"],
            "ForbiddenUsage",
            "'cert sign', 'crl sign'",
            id="every-ca-usage-is-named",
        ),
        pytest.param(
            ["bogus", "cert sign"], "UnknownUsage", "'bogus'", id="unknown-reported-before-ca-usage"
        ),
        pytest.param(
            ["encipher only"],
            "InvalidUsage",
            "key agreement",
            id="encipher-only-needs-key-agreement",
        ),
        pytest.param(
            ["decipher only"],
            "InvalidUsage",
            "key agreement",
            id="decipher-only-needs-key-agreement",
        ),
    ],
)
def test_usages_that_cannot_be_honoured_are_refusals(
    usages: list[str], reason: str, fragment: str
) -> None:
    got = map_usages(usages)
    assert isinstance(got, Refusal)
    assert got.reason == reason
    assert fragment in got.message


def test_usage_oids_are_the_standard_ones() -> None:
    got = map_usages(["server auth", "client auth", "ocsp signing"])
    assert isinstance(got, MappedUsages)
    assert got.extended_key_usage == x509.ExtendedKeyUsage(
        [
            ExtendedKeyUsageOID.SERVER_AUTH,
            ExtendedKeyUsageOID.CLIENT_AUTH,
            ObjectIdentifier("1.3.6.1.5.5.7.3.9"),
        ]
    )
