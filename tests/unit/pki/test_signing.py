"""Issuing leaf certificates: lifetime, extensions, usages, key types, chains, refusals."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from signer.models import CsrView, Refusal
from signer.pki.ca import CA_KEY_USAGE, CaBundle, CaKeyType, load_ca
from signer.pki.parsing import parse_csr
from signer.pki.signing import Issued, SigningLimits, issue
from tests.data.csrs import KeyType, build_csr_pem
from tests.unit.pki.builders import NOW, Ca, make_ca, pem

SERVING = ("digital signature", "key encipherment", "server auth")
LIMITS = SigningLimits(max_duration=timedelta(days=30), default_duration=timedelta(days=7))
MINUTE = timedelta(minutes=1)


@pytest.fixture(scope="module")
def root() -> Ca:
    return make_ca("Signing Root")


@pytest.fixture(scope="module")
def ca(root: Ca) -> CaBundle:
    return load_ca(root.cert_pem, root.key_pem, now=NOW)


def csr(**kwargs: Any) -> CsrView:
    return parse_csr(build_csr_pem(**kwargs))


def sign(
    ca: CaBundle,
    view: CsrView | None = None,
    *,
    usages: tuple[str, ...] = SERVING,
    requested: int | None = None,
    now: datetime = NOW,
    limits: SigningLimits = LIMITS,
) -> Issued:
    result = issue(
        view or csr(common_name="web"),
        ca,
        usages=usages,
        now=now,
        requested_seconds=requested,
        limits=limits,
    )
    assert isinstance(result, Issued), result
    return result


def ext(cert: x509.Certificate, cls: type[Any]) -> x509.Extension[Any]:
    return cert.extensions.get_extension_for_class(cls)


def verify_server(
    leaf: x509.Certificate, roots: list[x509.Certificate], chain: list[x509.Certificate]
) -> None:
    verifier = (
        PolicyBuilder()
        .store(Store(roots))
        .time(NOW)
        .build_server_verifier(x509.DNSName("web.default.svc"))
    )
    verifier.verify(leaf, chain)


# --- lifetime ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "limits", "want_not_after"),
    [
        pytest.param(None, LIMITS, NOW - 5 * MINUTE + timedelta(days=7), id="no-request-gets-the-default"),
        pytest.param(86400, LIMITS, NOW - 5 * MINUTE + timedelta(days=1), id="request-within-max-is-honoured"),
        pytest.param(60 * 86400, LIMITS, NOW - 5 * MINUTE + timedelta(days=30), id="request-above-max-is-shortened"),
        pytest.param(600, LIMITS, NOW + 10 * MINUTE, id="ten-minutes-short-lived-keeps-full-window"),
        pytest.param(60, LIMITS, NOW + 10 * MINUTE, id="request-below-ten-minutes-is-raised-to-ten"),
        pytest.param(0, LIMITS, NOW + 10 * MINUTE, id="zero-is-raised-to-ten-minutes"),
        pytest.param(8 * 3600 - 1, LIMITS, NOW + timedelta(hours=8) - timedelta(seconds=1), id="under-eight-hours-is-not-backdated"),
        pytest.param(8 * 3600, LIMITS, NOW - 5 * MINUTE + timedelta(hours=8), id="eight-hours-and-up-window-equals-lifetime"),
        pytest.param(
            None,
            SigningLimits(max_duration=timedelta(days=30), default_duration=timedelta(days=90)),
            NOW - 5 * MINUTE + timedelta(days=30),
            id="default-above-max-is-shortened",
        ),
    ],
)  # fmt: skip
def test_lifetime_is_clamped_like_kube_controller_manager(
    ca: CaBundle, requested: int | None, limits: SigningLimits, want_not_after: datetime
) -> None:
    issued = sign(ca, requested=requested, limits=limits)
    cert = issued.certificate
    assert cert.not_valid_before_utc == NOW - 5 * MINUTE
    assert cert.not_valid_after_utc == want_not_after
    assert (issued.not_before, issued.not_after) == (
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
    )
    assert not issued.cut_to_ca


def test_sub_second_clock_is_truncated_to_what_the_certificate_says(ca: CaBundle) -> None:
    issued = sign(ca, now=NOW + timedelta(microseconds=999_999))
    assert issued.not_before == issued.certificate.not_valid_before_utc == NOW - 5 * MINUTE


@pytest.mark.parametrize(
    ("ca_left", "requested", "cut"),
    [
        pytest.param(timedelta(days=2), 7 * 86400, True, id="leaf-never-outlives-the-ca"),
        pytest.param(timedelta(minutes=3), 600, True, id="even-below-ten-minutes-the-ca-cut-wins"),
        pytest.param(
            timedelta(days=8), 7 * 86400, False, id="no-cut-when-the-ca-outlives-the-leaf"
        ),
    ],
)
def test_not_after_is_cut_to_the_ca(ca_left: timedelta, requested: int, cut: bool) -> None:
    short = make_ca("Short CA", not_after=NOW + ca_left)
    bundle = load_ca(short.cert_pem, short.key_pem, now=NOW)
    issued = sign(bundle, requested=requested)
    assert issued.cut_to_ca is cut
    if cut:
        assert issued.certificate.not_valid_after_utc == short.cert.not_valid_after_utc
    else:
        assert issued.certificate.not_valid_after_utc < short.cert.not_valid_after_utc


def test_not_after_is_cut_to_the_earliest_ca_in_the_chain() -> None:
    short_root = make_ca("Short Root", not_after=NOW + timedelta(days=1))
    long_inter = make_ca("Long Intermediate", issuer=short_root)
    bundle = load_ca(long_inter.cert_pem, long_inter.key_pem, short_root.cert_pem, now=NOW)
    issued = sign(bundle)
    assert issued.certificate.not_valid_after_utc == short_root.cert.not_valid_after_utc


@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        pytest.param(timedelta(0), "CAExpired", id="ca-expiring-now-refuses"),
        pytest.param(timedelta(days=1), "CAExpired", id="expired-ca-refuses"),
    ],
)
def test_expired_ca_refuses_to_sign(ca: CaBundle, offset: timedelta, reason: str) -> None:
    now = ca.not_after + offset
    result = issue(csr(), ca, usages=SERVING, now=now, requested_seconds=None, limits=LIMITS)
    assert isinstance(result, Refusal)
    assert result.reason == reason
    assert ca.identity in result.message


def test_ca_not_yet_valid_refuses_to_sign(ca: CaBundle) -> None:
    result = issue(
        csr(),
        ca,
        usages=SERVING,
        now=ca.not_before - timedelta(seconds=1),
        requested_seconds=None,
        limits=LIMITS,
    )
    assert isinstance(result, Refusal)
    assert result.reason == "CANotYetValid"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        pytest.param({"max_duration": timedelta(minutes=9), "default_duration": timedelta(minutes=9)}, "max_duration", id="max-below-ten-minutes-is-a-config-error"),
        pytest.param({"max_duration": timedelta(days=1), "default_duration": timedelta(0)}, "default_duration", id="zero-default-is-a-config-error"),
    ],
)  # fmt: skip
def test_nonsense_limits_fail_at_construction(kwargs: dict[str, timedelta], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        SigningLimits(**kwargs)


# --- what goes into the certificate -------------------------------------------


def test_subject_and_sans_are_copied(ca: CaBundle) -> None:
    view = csr(
        common_name="web",
        organizations=["Example"],
        extra_subject=[x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Platform")],
        dns_names=["web.default.svc", "web"],
        ip_addresses=["10.0.0.1", "fd00::1"],
        uris=["spiffe://cluster.local/ns/default/sa/web"],
        emails=["web@example.com"],
    )
    cert = sign(ca, view).certificate
    assert cert.subject == view.csr.subject
    assert cert.issuer == ca.subject
    san = ext(cert, x509.SubjectAlternativeName)
    assert not san.critical
    assert san.value.get_values_for_type(x509.DNSName) == ["web.default.svc", "web"]
    assert san.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.1"),
        ipaddress.ip_address("fd00::1"),
    ]
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/default/sa/web"
    ]
    assert san.value.get_values_for_type(x509.RFC822Name) == ["web@example.com"]


def test_san_is_critical_when_the_subject_is_empty(ca: CaBundle) -> None:
    cert = sign(ca, csr(common_name=None)).certificate
    assert cert.subject == x509.Name([])
    assert ext(cert, x509.SubjectAlternativeName).critical


def test_no_subject_and_no_sans_is_refused(ca: CaBundle) -> None:
    result = issue(
        csr(common_name=None, dns_names=[]),
        ca,
        usages=SERVING,
        now=NOW,
        requested_seconds=None,
        limits=LIMITS,
    )
    assert isinstance(result, Refusal)
    assert result.reason == "NoIdentity"


def test_san_kinds_we_never_issue_are_dropped(ca: CaBundle) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web")]))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("web.default.svc"),
                    x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x01a"),
                    x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    view = parse_csr(request.public_bytes(serialization.Encoding.PEM))
    assert view.other_sans
    san = ext(sign(ca, view).certificate, x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName("web.default.svc")]


def test_no_sans_means_no_san_extension(ca: CaBundle) -> None:
    cert = sign(ca, csr(common_name="system:node:n1", dns_names=[])).certificate
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, x509.SubjectAlternativeName)


@pytest.mark.parametrize(
    "csr_kwargs",
    [
        pytest.param({"request_ca": True}, id="requested-ca-true-still-yields-a-leaf"),
        pytest.param({"extra_extensions": [CA_KEY_USAGE]}, id="requested-key-cert-sign-is-dropped"),
        pytest.param(
            {"extra_extensions": [x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING])]},
            id="requested-eku-is-replaced-by-spec-usages",
        ),
        pytest.param({"extra_extensions": [x509.OCSPNoCheck()]}, id="unrelated-extension-is-dropped"),
        pytest.param(
            {
                "request_ca": True,
                "extra_extensions": [
                    CA_KEY_USAGE,
                    x509.NameConstraints(permitted_subtrees=[x509.DNSName("evil")], excluded_subtrees=None),
                ],
            },
            id="all-requested-extensions-dropped-together",
        ),
    ],
)  # fmt: skip
def test_requested_extensions_are_dropped(ca: CaBundle, csr_kwargs: dict[str, Any]) -> None:
    view = csr(common_name="web", **csr_kwargs)
    cert = sign(ca, view).certificate
    assert {e.oid for e in cert.extensions} == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    }
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca is False
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical
    assert not ku.value.key_cert_sign
    assert not ku.value.crl_sign
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_usages_become_key_usage_and_eku(ca: CaBundle) -> None:
    cert = sign(ca, usages=("signing", "client auth", "server auth")).certificate
    ku = ext(cert, x509.KeyUsage).value
    assert ku.digital_signature
    assert not ku.key_encipherment
    eku = ext(cert, x509.ExtendedKeyUsage)
    assert not eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def test_key_identifiers_link_leaf_to_ca(ca: CaBundle, root: Ca) -> None:
    view = csr(common_name="web")
    cert = sign(ca, view).certificate
    ski = ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(view.csr.public_key())
    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    root_ski = ext(root.cert, x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest


def test_serials_are_random_positive_and_wide(ca: CaBundle) -> None:
    view = csr(common_name="web")
    serials = [sign(ca, view).serial_number for _ in range(64)]
    assert len(set(serials)) == len(serials)
    assert all(0 < s < 2**159 for s in serials)
    # 64 draws of >= 64 random bits: a narrower serial would show here.
    assert max(s.bit_length() for s in serials) > 128


def test_output_is_pem_certificates_only(ca: CaBundle) -> None:
    out = sign(ca).certificate_pem
    assert out.startswith(b"-----BEGIN CERTIFICATE-----\n")
    assert out.count(b"-----BEGIN ") == out.count(b"-----BEGIN CERTIFICATE-----") == 1
    assert b"Proc-Type" not in out


# --- refusals are values ------------------------------------------------------


@pytest.mark.parametrize(
    ("usages", "reason"),
    [
        pytest.param(("server auth", "bogus"), "UnknownUsage", id="unknown-usage-refuses"),
        pytest.param(("digital signature", "cert sign"), "ForbiddenUsage", id="cert-sign-refuses"),
        pytest.param(("crl sign",), "ForbiddenUsage", id="crl-sign-refuses"),
        pytest.param(("encipher only",), "InvalidUsage", id="encipher-only-alone-refuses"),
    ],
)
def test_usage_refusals_come_back_as_values(
    ca: CaBundle, usages: tuple[str, ...], reason: str
) -> None:
    view = csr(common_name="web")
    kwargs: dict[str, Any] = {
        "usages": usages,
        "now": NOW,
        "requested_seconds": None,
        "limits": LIMITS,
    }
    result = issue(view, ca, **kwargs)
    assert isinstance(result, Refusal)
    assert result.reason == reason


# --- the key floor and usages apply to every signature ------------------------------


@pytest.mark.parametrize(
    ("key_type", "usages", "reason", "says"),
    [
        pytest.param("rsa-1024", SERVING, "WeakKey", "1024 bits", id="rsa-1024-is-never-signed"),
        pytest.param(
            "rsa-2048-e3", SERVING, "WeakKey", "exponent 3 is not 65537", id="rsa-e3-never-signed"
        ),
        pytest.param("ecdsa-p256", (), "NoUsages", "spec.usages is empty", id="no-usages-refused"),
    ],
)
def test_floor_refusals_come_back_as_values(
    ca: CaBundle, key_type: KeyType, usages: tuple[str, ...], reason: str, says: str
) -> None:
    result = issue(
        csr(common_name="web", key_type=key_type),
        ca,
        usages=usages,
        now=NOW,
        requested_seconds=None,
        limits=LIMITS,
    )
    assert isinstance(result, Refusal)
    assert result.reason == reason
    assert says in result.message


# --- key types, chains, verification -------------------------------------------

KEY_TYPES: list[CaKeyType] = ["rsa-2048", "ecdsa-p256", "ecdsa-p384", "ed25519"]
WANT_SIG_HASH: dict[str, type] = {
    "rsa-2048": hashes.SHA256,
    "ecdsa-p256": hashes.SHA256,
    "ecdsa-p384": hashes.SHA384,
    "ed25519": type(None),
}


@pytest.mark.parametrize("leaf_type", KEY_TYPES, ids=lambda t: f"leaf-{t}")
@pytest.mark.parametrize("ca_type", KEY_TYPES, ids=lambda t: f"ca-{t}")
def test_every_key_type_signs_and_is_signed(ca_type: CaKeyType, leaf_type: KeyType) -> None:
    root = make_ca(f"Root {ca_type}", key_type=ca_type)
    bundle = load_ca(root.cert_pem, root.key_pem, now=NOW)
    cert = sign(bundle, csr(common_name="web", key_type=leaf_type)).certificate
    assert isinstance(cert.signature_hash_algorithm, WANT_SIG_HASH[ca_type])
    cert.verify_directly_issued_by(root.cert)
    if ca_type == "ed25519":
        # cryptography's Web PKI profile forbids Ed25519 CAs; openssl checks those below.
        return
    verify_server(cert, [root.cert], [])


def test_client_certificate_verifies_for_client_auth(ca: CaBundle, root: Ca) -> None:
    view = csr(common_name="alice", dns_names=[], emails=["alice@example.com"])
    cert = sign(ca, view, usages=("digital signature", "client auth")).certificate
    verifier = PolicyBuilder().store(Store([root.cert])).time(NOW).build_client_verifier()
    verified = verifier.verify(cert, [])
    assert verified.chain[0] == cert


def test_signing_intermediate_follows_the_leaf_and_the_chain_verifies() -> None:
    root = make_ca("Chain Root")
    inter = make_ca("Chain Intermediate", issuer=root)
    bundle = load_ca(inter.cert_pem, inter.key_pem, root.cert_pem, now=NOW)
    out = x509.load_pem_x509_certificates(sign(bundle).certificate_pem)
    assert [c.subject.rfc4514_string() for c in out] == ["CN=web", "CN=Chain Intermediate"]
    verify_server(out[0], [root.cert], out[1:])


def test_chain_is_leaf_then_signing_ca_then_intermediates_without_root() -> None:
    root = make_ca("Three Root")
    inter = make_ca("Three Intermediate", issuer=root)
    issuing = make_ca("Three Issuing", issuer=inter)
    bundle = load_ca(pem(issuing.cert, inter.cert), issuing.key_pem, root.cert_pem, now=NOW)
    out = x509.load_pem_x509_certificates(sign(bundle).certificate_pem)
    assert [c.subject.rfc4514_string() for c in out] == [
        "CN=web",
        "CN=Three Issuing",
        "CN=Three Intermediate",
    ]
    verify_server(out[0], [root.cert], out[1:])


def test_rotation_signs_with_the_active_ca_and_verifies_with_the_bundle() -> None:
    active = make_ca("Active Root")
    nxt = make_ca("Next Root")
    bundle = load_ca(active.cert_pem, active.key_pem, None, nxt.cert_pem, now=NOW)
    cert = sign(bundle).certificate
    assert cert.issuer == active.cert.subject
    trusted = x509.load_pem_x509_certificates(bundle.trust_bundle_pem())
    verify_server(cert, trusted, [])
    with pytest.raises(x509.verification.VerificationError):
        verify_server(cert, [nxt.cert], [])


OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


@pytest.mark.skipif(not Path(OPENSSL).exists(), reason="openssl is not installed")
@pytest.mark.parametrize(
    ("ca_type", "with_intermediate"),
    [
        pytest.param("ecdsa-p256", True, id="p256-root-intermediate-leaf"),
        pytest.param("rsa-2048", False, id="rsa-root-leaf"),
        pytest.param("ecdsa-p384", True, id="p384-root-intermediate-leaf"),
        pytest.param("ed25519", True, id="ed25519-root-intermediate-leaf"),
    ],
)
def test_openssl_verifies_the_chain(
    tmp_path: Path, ca_type: CaKeyType, with_intermediate: bool
) -> None:
    root = make_ca(f"OpenSSL Root {ca_type}", key_type=ca_type)
    signer = (
        make_ca(f"OpenSSL Inter {ca_type}", key_type=ca_type, issuer=root)
        if with_intermediate
        else root
    )
    roots_pem = root.cert_pem if with_intermediate else None
    bundle = load_ca(signer.cert_pem, signer.key_pem, roots_pem, now=NOW)
    out = x509.load_pem_x509_certificates(sign(bundle).certificate_pem)
    (tmp_path / "root.pem").write_bytes(bundle.trust_bundle_pem())
    (tmp_path / "leaf.pem").write_bytes(pem(out[0]))
    untrusted = out[1:]
    assert len(untrusted) == (1 if with_intermediate else 0)
    cmd = [OPENSSL, "verify", "-attime", str(int(NOW.timestamp())), "-purpose", "sslserver"]
    cmd += ["-CAfile", str(tmp_path / "root.pem")]
    if untrusted:
        (tmp_path / "chain.pem").write_bytes(pem(*untrusted))
        cmd += ["-untrusted", str(tmp_path / "chain.pem")]
    cmd.append(str(tmp_path / "leaf.pem"))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith(": OK")
