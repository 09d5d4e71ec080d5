"""`build_request`: what a `policy test` case names is what the parser reads back."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from signer.pki.parsing import parse_csr
from signer.pki.requests import KEY_TYPES, KeyCache, RequestBuildError, RequestSpec, build_request

KEYS = KeyCache()


@pytest.mark.parametrize(
    ("key_type", "algorithm", "size", "curve"),
    [
        pytest.param("RSA-2048", "rsa", 2048, None, id="RSA-2048"),
        pytest.param("RSA-3072", "rsa", 3072, None, id="RSA-3072"),
        pytest.param("RSA-4096", "rsa", 4096, None, id="RSA-4096"),
        pytest.param("ECDSA-P256", "ecdsa", 256, "secp256r1", id="ECDSA-P256"),
        pytest.param("ECDSA-P384", "ecdsa", 384, "secp384r1", id="ECDSA-P384"),
        pytest.param("Ed25519", "ed25519", 256, None, id="Ed25519"),
    ],
)
def test_each_key_type_is_the_key_the_parser_reports(
    key_type: str, algorithm: str, size: int, curve: str | None
) -> None:
    view = parse_csr(build_request(RequestSpec(dns_names=["a.example"]), KEYS.key(key_type)))
    assert (view.key.algorithm, view.key.size, view.key.curve) == (algorithm, size, curve)


def test_every_documented_key_type_is_tested() -> None:
    assert set(KEY_TYPES) == {
        "RSA-2048",
        "RSA-3072",
        "RSA-4096",
        "ECDSA-P256",
        "ECDSA-P384",
        "Ed25519",
    }


def test_names_and_subject_are_carried_in_order() -> None:
    spec = RequestSpec(
        common_name="web",
        organizations=("acme",),
        dns_names=("b.example", "a.example"),
        ip_addresses=("10.0.0.1", "::1"),
        uris=("spiffe://td/ns/a",),
        emails=("a@example.com",),
    )
    view = parse_csr(build_request(spec, KEYS.key("ECDSA-P256")))
    assert [(a.name, a.value) for a in view.subject] == [("CN", "web"), ("O", "acme")]
    assert view.dns_names == ("b.example", "a.example")
    assert view.ip_addresses == (ip_address("10.0.0.1"), ip_address("::1"))
    assert (view.uris, view.emails) == (("spiffe://td/ns/a",), ("a@example.com",))


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param(RequestSpec(dns_names=("bücher.de",)), "dnsNames", id="unicode-dns-name"),
        pytest.param(RequestSpec(emails=("ü@x.de",)), "emails", id="unicode-email"),
        pytest.param(RequestSpec(ip_addresses=("10.0.0",)), "ipAddresses", id="not-an-ip"),
        pytest.param(RequestSpec(common_name=""), "subject", id="empty-common-name"),
    ],
)
def test_a_value_no_request_can_carry_names_its_field(spec: RequestSpec, field: str) -> None:
    with pytest.raises(RequestBuildError) as caught:
        build_request(spec, KEYS.key("ECDSA-P256"))
    assert caught.value.field == field
