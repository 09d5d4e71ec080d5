"""`csr-signer ca init` and `csr-signer sign`: files in, PEM out, one-line errors."""

from __future__ import annotations

import base64
import io
import json
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from signer.cli import main
from signer.pki.ca import load_ca_from_secret_data
from tests.data.csrs import build_csr_pem, csr_manifest, csr_request
from tests.unit.pki.builders import make_ca

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def ca_files(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "ca.crt", tmp_path / "ca.key"
    assert (
        main(
            [
                "ca",
                "init",
                "--common-name",
                "CLI CA",
                "--out-cert",
                str(cert),
                "--out-key",
                str(key),
            ]
        )
        == 0
    )
    return cert, key


def sign_args(ca_files: tuple[Path, Path], *extra: str) -> list[str]:
    cert, key = ca_files
    return ["sign", "--ca-cert", str(cert), "--ca-key", str(key), *extra]


def leaf_of(out: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(out.encode())[0]


def ekus(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


# --- ca init -----------------------------------------------------------------


def test_ca_init_writes_cert_and_a_private_key_file(ca_files: tuple[Path, Path]) -> None:
    cert, key = ca_files
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(cert.read_bytes())
    assert ca.subject.rfc4514_string() == "CN=CLI CA"
    assert b"BEGIN PRIVATE KEY" in key.read_bytes()


def test_ca_init_never_overwrites(
    ca_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = ca_files
    before = key.read_bytes()
    status = main(
        ["ca", "init", "--common-name", "Again", "--out-cert", str(cert), "--out-key", str(key)]
    )
    assert status == 2
    assert "already exists" in capsys.readouterr().err
    assert key.read_bytes() == before


@pytest.mark.parametrize("key_type", ["ecdsa-p384", "rsa-2048", "ed25519"])
def test_ca_init_key_types(tmp_path: Path, key_type: str) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    args = ["ca", "init", "--common-name", "K", "--key-type", key_type, "--days", "2"]
    assert main([*args, "--out-cert", str(cert), "--out-key", str(key)]) == 0
    ca = x509.load_pem_x509_certificate(cert.read_bytes())
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert 2 * 86400 <= lifetime.total_seconds() <= 2 * 86400 + 3600


def test_ca_init_secret_manifest_loads_as_a_ca(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "ca",
                "init",
                "--common-name",
                "Secret CA",
                "--secret",
                "signer-ca",
                "--namespace",
                "csr-signer",
            ]
        )
        == 0
    )
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["type"] == "kubernetes.io/tls"
    assert doc["metadata"] == {"name": "signer-ca", "namespace": "csr-signer"}
    data = {k: base64.b64decode(v) for k, v in doc["data"].items()}
    ca = load_ca_from_secret_data(data, now=datetime.now(UTC))
    assert ca.subject.rfc4514_string() == "CN=Secret CA"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["--common-name", "X"], "either --out-cert", id="needs-a-destination"),
        pytest.param(["--common-name", "X", "--out-cert", "c", "--secret", "s", "--namespace", "n"], "either --out-cert", id="files-and-secret-exclude-each-other"),
        pytest.param(["--common-name", "X", "--out-cert", "c"], "go together", id="cert-needs-key"),
        pytest.param(["--common-name", "X", "--secret", "s"], "go together", id="secret-needs-namespace"),
        pytest.param(["--common-name", "X", "--secret", "s", "--namespace", "n", "--days", "0"], "--days", id="days-must-be-positive"),
        pytest.param(["--common-name", " ", "--secret", "s", "--namespace", "n"], "--common-name", id="common-name-must-not-be-blank"),
    ],
)  # fmt: skip
def test_ca_init_bad_arguments_are_one_line_errors(
    args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ca", "init", *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert err.count("\n") == 1


# --- sign --------------------------------------------------------------------


def test_sign_bare_pem_uses_default_serving_usages(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "web.csr"
    src.write_bytes(build_csr_pem(common_name="web"))
    assert main(sign_args(ca_files, str(src))) == 0
    leaf = leaf_of(capsys.readouterr().out)
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature
    assert ku.key_encipherment
    assert ekus(leaf) == [ExtendedKeyUsageOID.SERVER_AUTH]
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_files[0].read_bytes()))


def test_sign_bare_pem_with_usage_flags(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "client.csr"
    src.write_bytes(build_csr_pem(common_name="alice"))
    assert (
        main(
            sign_args(ca_files, "--usage", "digital signature", "--usage", "client auth", str(src))
        )
        == 0
    )
    assert ekus(leaf_of(capsys.readouterr().out)) == [ExtendedKeyUsageOID.CLIENT_AUTH]


@pytest.mark.parametrize(
    "encode", [json.dumps, yaml.safe_dump], ids=["json-manifest", "yaml-manifest"]
)
def test_sign_manifest_takes_usages_and_expiration_from_its_spec(
    ca_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    encode: object,
) -> None:
    req = csr_request(
        usages=("digital signature", "client auth"), expiration_seconds=3600, common_name="alice"
    )
    src = tmp_path / "csr.manifest"
    assert callable(encode)
    src.write_text(encode(csr_manifest(req)))
    assert main(sign_args(ca_files, str(src))) == 0
    leaf = leaf_of(capsys.readouterr().out)
    assert ekus(leaf) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(seconds=3600 + 300)


def test_sign_max_duration_shortens_the_request(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = csr_request(expiration_seconds=86400 * 30)
    src = tmp_path / "csr.yaml"
    src.write_text(yaml.safe_dump(csr_manifest(req)))
    assert main(sign_args(ca_files, "--max-duration", "86400", str(src))) == 0
    leaf = leaf_of(capsys.readouterr().out)
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds() == 86400


def test_sign_reads_stdin(
    ca_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(build_csr_pem(common_name="piped")))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(sign_args(ca_files, "-")) == 0
    assert leaf_of(capsys.readouterr().out).subject.rfc4514_string() == "CN=piped"


def test_sign_with_intermediate_prints_the_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    root = make_ca(
        "CLI Root",
        not_before=now.replace(year=now.year - 1),
        not_after=now.replace(year=now.year + 1),
    )
    inter = make_ca(
        "CLI Intermediate",
        issuer=root,
        not_before=root.cert.not_valid_before_utc,
        not_after=root.cert.not_valid_after_utc,
    )
    (tmp_path / "inter.crt").write_bytes(inter.cert_pem)
    (tmp_path / "inter.key").write_bytes(inter.key_pem)
    (tmp_path / "root.crt").write_bytes(root.cert_pem)
    (tmp_path / "web.csr").write_bytes(build_csr_pem(common_name="web"))
    args = [
        "sign",
        "--ca-cert",
        str(tmp_path / "inter.crt"),
        "--ca-key",
        str(tmp_path / "inter.key"),
    ]
    assert main([*args, "--ca-roots", str(tmp_path / "root.crt"), str(tmp_path / "web.csr")]) == 0
    out = x509.load_pem_x509_certificates(capsys.readouterr().out.encode())
    assert [c.subject.rfc4514_string() for c in out] == ["CN=web", "CN=CLI Intermediate"]


def _bad_input(name: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{name}.in"
    if name == "missing-file":
        return path
    if name == "garbage":
        path.write_bytes(b"\x00\x01 not yaml: [")
    elif name == "not-a-csr-pem":
        path.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    elif name == "tampered-csr":
        path.write_bytes(build_csr_pem(common_name="x", tamper=True))
    elif name == "unknown-usage":
        path.write_text(yaml.safe_dump(csr_manifest(csr_request(usages=("server auth", "bogus")))))
    elif name == "cert-sign-usage":
        path.write_text(yaml.safe_dump(csr_manifest(csr_request(usages=("cert sign",)))))
    elif name == "wrong-kind":
        path.write_text(yaml.safe_dump({"kind": "Pod", "spec": {}}))
    return path


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        pytest.param("missing-file", "cannot read", id="missing-input-file"),
        pytest.param("garbage", "", id="garbage-input"),
        pytest.param("not-a-csr-pem", "not a CERTIFICATE REQUEST", id="pem-of-the-wrong-type"),
        pytest.param("tampered-csr", "does not verify", id="bad-self-signature"),
        pytest.param("unknown-usage", "refused to sign (UnknownUsage)", id="unknown-usage-refused"),
        pytest.param("cert-sign-usage", "refused to sign (ForbiddenUsage)", id="ca-usage-refused"),
        pytest.param(
            "wrong-kind", "expected CertificateSigningRequest", id="manifest-of-another-kind"
        ),
    ],
)
def test_sign_bad_input_is_a_one_line_error(
    ca_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    fragment: str,
) -> None:
    assert main(sign_args(ca_files, str(_bad_input(case, tmp_path)))) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("csr-signer: error: ")
    assert fragment in captured.err
    assert captured.err.count("\n") == 1


def test_sign_usage_flag_with_a_manifest_is_an_error(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "csr.yaml"
    src.write_text(yaml.safe_dump(csr_manifest(csr_request())))
    assert main(sign_args(ca_files, "--usage", "client auth", str(src))) == 2
    assert "--usage is for bare PEM CSRs" in capsys.readouterr().err


def test_sign_with_mismatched_ca_key_is_an_error(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other_cert, other_key = tmp_path / "o.crt", tmp_path / "o.key"
    assert (
        main(
            [
                "ca",
                "init",
                "--common-name",
                "Other",
                "--out-cert",
                str(other_cert),
                "--out-key",
                str(other_key),
            ]
        )
        == 0
    )
    src = tmp_path / "web.csr"
    src.write_bytes(build_csr_pem())
    assert main(["sign", "--ca-cert", str(ca_files[0]), "--ca-key", str(other_key), str(src)]) == 2
    err = capsys.readouterr().err
    assert f"{other_key} does not match the certificate in {ca_files[0]}" in err
    assert "PRIVATE KEY" not in err


def test_sign_max_duration_below_ten_minutes_is_an_error(
    ca_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(sign_args(ca_files, "--max-duration", "60", "-")) == 2
    assert "--max-duration must be at least 600" in capsys.readouterr().err


def test_python_m_signer_sign_bad_input_exits_nonzero_without_traceback(
    ca_files: tuple[Path, Path], tmp_path: Path
) -> None:
    src = tmp_path / "bad.csr"
    src.write_bytes(
        b"-----BEGIN CERTIFICATE REQUEST-----\nnot base64!\n-----END CERTIFICATE REQUEST-----\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "signer", *sign_args(ca_files, str(src))],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("csr-signer: error: ")
    assert proc.stderr.count("\n") == 1
