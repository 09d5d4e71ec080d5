"""CA material: loading, validation errors, rotation, publishing, bootstrapping."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from signer.pki.ca import (
    CA_KEY_TYPES,
    CaBundle,
    CaError,
    CaKeyType,
    CaLabels,
    generate_root,
    load_ca,
    load_ca_from_secret_data,
)
from tests.unit.pki.builders import NOW, Ca, make_ca, pem


def certs_in(bundle_pem: bytes) -> list[str]:
    return [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(bundle_pem)]


@pytest.fixture(scope="module")
def root() -> Ca:
    return make_ca("Root")


@pytest.fixture(scope="module")
def intermediate(root: Ca) -> Ca:
    return make_ca("Intermediate", issuer=root)


# --- loading good material ---------------------------------------------------


def test_self_signed_ca_is_its_own_published_root(root: Ca) -> None:
    ca = load_ca(root.cert_pem, root.key_pem, now=NOW)
    assert ca.certificate == root.cert
    assert ca.intermediates == ()
    assert certs_in(ca.trust_bundle_pem()) == ["CN=Root"]
    assert ca.chain_pem == b""
    assert ca.not_after == root.cert.not_valid_after_utc


def test_intermediate_signs_and_is_sent_root_is_published(root: Ca, intermediate: Ca) -> None:
    ca = load_ca(intermediate.cert_pem, intermediate.key_pem, root.cert_pem, now=NOW)
    assert ca.certificate == intermediate.cert
    assert ca.intermediates == ()
    assert ca.chain_pem == intermediate.cert_pem, "clients holding only the root need it"
    assert certs_in(ca.trust_bundle_pem()) == ["CN=Root"]


def test_chain_in_tls_crt_keeps_its_order(root: Ca, intermediate: Ca) -> None:
    issuing = make_ca("Issuing", issuer=intermediate)
    ca = load_ca(pem(issuing.cert, intermediate.cert), issuing.key_pem, root.cert_pem, now=NOW)
    assert ca.intermediates == (intermediate.cert,)
    assert ca.chain_pem == pem(issuing.cert, intermediate.cert)


def test_root_appended_to_tls_crt_is_published_not_sent(root: Ca, intermediate: Ca) -> None:
    ca = load_ca(pem(intermediate.cert, root.cert), intermediate.key_pem, now=NOW)
    assert ca.intermediates == ()
    assert ca.chain_pem == intermediate.cert_pem
    assert certs_in(ca.trust_bundle_pem()) == ["CN=Root"]


def test_not_after_is_the_earliest_along_the_chain(root: Ca) -> None:
    short_root = make_ca("ShortRoot", not_after=NOW + timedelta(days=30))
    long_intermediate = make_ca(
        "LongIntermediate", issuer=short_root, not_after=NOW + timedelta(days=300)
    )
    ca = load_ca(
        long_intermediate.cert_pem, long_intermediate.key_pem, short_root.cert_pem, now=NOW
    )
    assert ca.not_after == short_root.cert.not_valid_after_utc


def test_secret_data_loads_with_the_tls_secret_keys(root: Ca, intermediate: Ca) -> None:
    ca = load_ca_from_secret_data(
        {
            "tls.crt": intermediate.cert_pem,
            "tls.key": intermediate.key_pem,
            "ca.crt": root.cert_pem,
        },
        now=NOW,
    )
    assert ca.certificate == intermediate.cert
    assert certs_in(ca.trust_bundle_pem()) == ["CN=Root"]


@pytest.mark.parametrize(
    ("key_type", "want_hash"),
    [
        pytest.param("rsa-2048", hashes.SHA256, id="rsa-signs-with-sha256"),
        pytest.param("ecdsa-p256", hashes.SHA256, id="p256-signs-with-sha256"),
        pytest.param("ecdsa-p384", hashes.SHA384, id="p384-signs-with-sha384"),
        pytest.param("ed25519", None, id="ed25519-signs-without-prehash"),
    ],
)
def test_hash_is_chosen_by_the_ca_key(key_type: CaKeyType, want_hash: type | None) -> None:
    root = make_ca(f"Hash {key_type}", key_type=key_type)
    ca = load_ca(root.cert_pem, root.key_pem, now=NOW)
    if want_hash is None:
        assert ca.hash_algorithm is None
    else:
        assert isinstance(ca.hash_algorithm, want_hash)


def test_aki_reuses_the_ca_ski_when_present(root: Ca) -> None:
    ca = load_ca(root.cert_pem, root.key_pem, now=NOW)
    ski = root.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ca.authority_key_identifier.key_identifier == ski.digest


def test_aki_is_derived_from_the_key_when_the_ca_has_no_ski() -> None:
    bare = make_ca("NoSki", with_ski=False)
    ca = load_ca(bare.cert_pem, bare.key_pem, now=NOW)
    assert ca.authority_key_identifier.key_identifier == (
        x509.SubjectKeyIdentifier.from_public_key(bare.key.public_key()).digest
    )


# --- validation errors -------------------------------------------------------


def _case(name: str) -> tuple[bytes, bytes, bytes | None, bytes | None]:
    """(tls.crt, tls.key, ca.crt, next-ca.crt) for one broken configuration."""
    root = make_ca("Root")
    other = make_ca("Other")
    inter = make_ca("Intermediate", issuer=root)
    if name == "key-mismatch":
        return root.cert_pem, other.key_pem, None, None
    if name == "not-a-ca":
        leafish = make_ca("Leafish", is_ca=False)
        return leafish.cert_pem, leafish.key_pem, None, None
    if name == "no-key-cert-sign":
        weak = make_ca("Weak", key_cert_sign=False)
        return weak.cert_pem, weak.key_pem, None, None
    if name == "expired":
        old = make_ca("Old", not_after=NOW - timedelta(seconds=1))
        return old.cert_pem, old.key_pem, None, None
    if name == "not-yet-valid":
        young = make_ca("Young", not_before=NOW + timedelta(hours=1))
        return young.cert_pem, young.key_pem, None, None
    if name == "expired-intermediate":
        old = make_ca("OldIntermediate", issuer=root, not_after=NOW - timedelta(days=1))
        issuing = make_ca("Issuing2", issuer=old)
        return pem(issuing.cert, old.cert), issuing.key_pem, root.cert_pem, None
    if name == "expired-root":
        old_root = make_ca("OldRoot", not_after=NOW - timedelta(days=1))
        child = make_ca("Child", issuer=old_root)
        return child.cert_pem, child.key_pem, old_root.cert_pem, None
    if name == "chain-out-of-order":
        issuing = make_ca("Issuing", issuer=inter)
        stray = make_ca("Stray", issuer=other)
        return pem(issuing.cert, stray.cert), issuing.key_pem, root.cert_pem, None
    if name == "root-missing":
        return inter.cert_pem, inter.key_pem, None, None
    if name == "ca-crt-lacks-anchor":
        return inter.cert_pem, inter.key_pem, other.cert_pem, None
    if name == "ca-crt-lacks-self-signed-ca":
        return root.cert_pem, root.key_pem, other.cert_pem, None
    if name == "garbage-cert":
        return b"not a certificate", root.key_pem, None, None
    if name == "garbage-key":
        return (
            root.cert_pem,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            None,
            None,
        )
    if name == "encrypted-key":
        encrypted = root.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        return root.cert_pem, encrypted, None, None
    if name == "key-in-cert-field":
        return root.cert_pem + root.key_pem, root.key_pem, None, None
    if name == "next-not-a-ca":
        return root.cert_pem, root.key_pem, None, make_ca("NextLeafish", is_ca=False).cert_pem
    if name == "next-expired":
        stale = make_ca("Stale", not_after=NOW - timedelta(days=1))
        return root.cert_pem, root.key_pem, None, stale.cert_pem
    raise AssertionError(name)


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        pytest.param("key-mismatch", "tls.key does not match the certificate in tls.crt", id="key-must-match-cert"),
        pytest.param("not-a-ca", "is not a CA certificate", id="cert-must-be-a-ca"),
        pytest.param("no-key-cert-sign", "lacks keyCertSign", id="ca-must-have-key-cert-sign"),
        pytest.param("expired", "expired at", id="ca-must-not-be-expired"),
        pytest.param("not-yet-valid", "is not valid before", id="ca-must-be-valid-already"),
        pytest.param("expired-intermediate", "certificate 2 (CN=OldIntermediate) expired", id="intermediates-must-not-be-expired"),
        pytest.param("expired-root", "root CN=OldRoot expired", id="anchor-root-must-not-be-expired"),
        pytest.param("chain-out-of-order", "is not issued by the certificate after it", id="chain-must-link-up"),
        pytest.param("root-missing", "which is not in tls.crt or ca.crt", id="chain-must-end-at-a-root"),
        pytest.param("ca-crt-lacks-anchor", "which is not in ca.crt", id="ca-crt-must-hold-the-anchor"),
        pytest.param("ca-crt-lacks-self-signed-ca", "ca.crt does not contain the self-signed CA", id="ca-crt-must-hold-a-self-signed-signer"),
        pytest.param("garbage-cert", "tls.crt is not PEM-encoded X.509", id="cert-must-parse"),
        pytest.param("garbage-key", "tls.key is not a PEM-encoded private key", id="key-must-parse"),
        pytest.param("encrypted-key", "tls.key is encrypted", id="key-must-be-unencrypted"),
        pytest.param("key-in-cert-field", "tls.crt contains a private key", id="keys-never-go-in-cert-fields"),
        pytest.param("next-not-a-ca", "next-ca.crt (CN=NextLeafish) is not a CA", id="next-must-be-a-ca"),
        pytest.param("next-expired", "next-ca.crt (CN=Stale) expired", id="next-must-not-be-expired"),
    ],
)  # fmt: skip
def test_bad_ca_material_is_a_clear_ca_error(case: str, fragment: str) -> None:
    cert, key, roots, nxt = _case(case)
    with pytest.raises(CaError) as err:
        load_ca(cert, key, roots, nxt, now=NOW)
    assert fragment in str(err.value)
    assert "PRIVATE KEY" not in str(err.value)


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        pytest.param(rsa.generate_private_key(65537, 1024), "at least 2048", id="rsa-below-2048-refused"),
        pytest.param(ec.generate_private_key(ec.SECP521R1()), "use P-256 or P-384", id="p521-refused"),
    ],
)  # fmt: skip
def test_weak_or_unsupported_ca_keys_are_refused(key: object, fragment: str) -> None:
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    root = make_ca("Root")
    with pytest.raises(CaError, match=fragment):
        load_ca(root.cert_pem, key_pem, now=NOW)


@pytest.mark.parametrize("missing", ["tls.crt", "tls.key"])
def test_secret_without_cert_or_key_is_refused(root: Ca, missing: str) -> None:
    data = {"tls.crt": root.cert_pem, "tls.key": root.key_pem}
    del data[missing]
    with pytest.raises(CaError, match=f"the CA Secret has no {missing}"):
        load_ca_from_secret_data(data, now=NOW)


def test_errors_name_the_files_the_cli_was_given(root: Ca) -> None:
    other = make_ca("Other")
    labels = CaLabels(cert="/etc/ca/ca.pem", key="/etc/ca/ca-key.pem")
    with pytest.raises(
        CaError,
        match=re.escape("/etc/ca/ca-key.pem does not match the certificate in /etc/ca/ca.pem"),
    ):
        load_ca(root.cert_pem, other.key_pem, now=NOW, labels=labels)


def test_naive_clock_is_a_programming_error(root: Ca) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        load_ca(root.cert_pem, root.key_pem, now=NOW.replace(tzinfo=None))


# --- rotation ----------------------------------------------------------------


def test_next_ca_is_published_beside_the_active_root(root: Ca) -> None:
    nxt = make_ca("Next Root")
    ca = load_ca_from_secret_data(
        {"tls.crt": root.cert_pem, "tls.key": root.key_pem, "next-ca.crt": nxt.cert_pem}, now=NOW
    )
    assert certs_in(ca.trust_bundle_pem()) == ["CN=Root", "CN=Next Root"]
    assert ca.certificate == root.cert, "the active CA signs, the next one is only published"
    assert ca.next_cas == (nxt.cert,)


def test_next_ca_may_be_not_yet_valid(root: Ca) -> None:
    nxt = make_ca("Future Root", not_before=NOW + timedelta(days=7))
    ca = load_ca(root.cert_pem, root.key_pem, None, nxt.cert_pem, now=NOW)
    assert certs_in(ca.trust_bundle_pem()) == ["CN=Root", "CN=Future Root"]


def test_after_the_switch_both_roots_stay_published(root: Ca) -> None:
    new = make_ca("New Root")
    ca = load_ca(new.cert_pem, new.key_pem, pem(new.cert, root.cert), now=NOW)
    assert certs_in(ca.trust_bundle_pem()) == ["CN=New Root", "CN=Root"]


def test_trust_bundle_lists_each_certificate_once(root: Ca) -> None:
    ca = load_ca(root.cert_pem, root.key_pem, root.cert_pem, root.cert_pem, now=NOW)
    assert certs_in(ca.trust_bundle_pem()) == ["CN=Root"]


# --- logging never shows key material ----------------------------------------


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ecdsa-p384", "rsa-2048", "ed25519"])
def test_repr_and_identity_never_show_key_material(key_type: CaKeyType) -> None:
    root = make_ca(f"Repr {key_type}", key_type=key_type)
    ca = load_ca(root.cert_pem, root.key_pem, now=NOW)
    key_body = b"".join(root.key_pem.splitlines()[1:-1]).decode()
    for text in (repr(ca), str(ca), ca.identity, f"{ca}", repr([ca])):
        assert key_body[:40] not in text
        assert "PRIVATE" not in text
        assert "key=" not in text
    assert ca.identity.startswith(f"CN=Repr {key_type} sha256:")
    assert ca.fingerprint == root.cert.fingerprint(hashes.SHA256()).hex()


# --- bootstrapping -----------------------------------------------------------


@pytest.mark.parametrize("key_type", CA_KEY_TYPES)
def test_generated_root_is_a_valid_signing_ca(key_type: CaKeyType) -> None:
    cert_pem, key_pem = generate_root("Bootstrap CA", key_type, 30, NOW)
    ca = load_ca(cert_pem, key_pem, now=NOW)
    cert = ca.certificate
    assert cert.subject == cert.issuer
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).critical
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert cert.not_valid_after_utc == NOW + timedelta(days=30)
    assert cert.not_valid_before_utc < NOW, "backdated for clock skew"
    assert b"BEGIN PRIVATE KEY" in key_pem, "PKCS#8, unencrypted"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        pytest.param({"common_name": ""}, "common_name", id="empty-common-name-refused"),
        pytest.param({"days": 0}, "days", id="zero-days-refused"),
        pytest.param(
            {"key_type": "dsa-1024"}, "unsupported key type", id="unknown-key-type-refused"
        ),
    ],
)
def test_generate_root_rejects_nonsense(kwargs: dict[str, object], fragment: str) -> None:
    args: dict[str, object] = {"common_name": "CA", "key_type": "ecdsa-p256", "days": 1, "now": NOW}
    args.update(kwargs)
    with pytest.raises(ValueError, match=fragment):
        generate_root(**args)  # type: ignore[arg-type]


def test_bundle_is_immutable(root: Ca) -> None:
    ca = load_ca(root.cert_pem, root.key_pem, now=NOW)
    with pytest.raises(AttributeError):
        ca.not_after = NOW  # type: ignore[misc]
    assert isinstance(ca, CaBundle)
