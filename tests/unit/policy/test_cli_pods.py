"""`csr-signer policy check` on a PodCertificateRequest manifest: decision, reason, names."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.cli import main

KNATIVE = "csr-signer.dev/knative-internal"
CLUSTER_LOCAL = "csr-signer.dev/cluster-local"


def stub(curve: ec.EllipticCurve) -> str:
    key = ec.generate_private_key(curve)
    der = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    return base64.b64encode(der).decode()


def pcr_file(
    tmp_path: Path,
    *,
    signer: str = KNATIVE,
    curve: ec.EllipticCurve | None = None,
    annotations: dict[str, str] | None = None,
    **metadata: Any,
) -> Path:
    """As `kubectl get pcr -o yaml` prints one a 1.36 kubelet made."""
    doc = {
        "apiVersion": "certificates.k8s.io/v1beta1",
        "kind": "PodCertificateRequest",
        "metadata": {"name": "req-abc", "namespace": "shop", **metadata},
        "spec": {
            "signerName": signer,
            "podName": "web-0",
            "podUID": "pod-uid",
            "serviceAccountName": "web",
            "serviceAccountUID": "sa-uid",
            "nodeName": "node-1",
            "nodeUID": "node-uid",
            "maxExpirationSeconds": 86400,
            "stubPKCS10Request": stub(curve or ec.SECP256R1()),
            "pkixPublicKey": None,
            "proofOfPossession": None,
            **({"unverifiedUserAnnotations": annotations} if annotations else {}),
        },
    }
    path = tmp_path / "pcr.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("kwargs", "decision", "reason", "dns_names"),
    [
        pytest.param({}, "approve", None, ["kn-user-shop"], id="approve-prints-the-issued-names"),
        pytest.param(
            {"annotations": {"csr-signer.dev/dns-names": "kn-user-other"}},
            "deny",
            "PolicyViolation",
            [],
            id="another-namespaces-name-is-denied",
        ),
        pytest.param(
            {"curve": ec.SECP521R1()},
            "deny",
            "UnsupportedKeyType",
            [],
            id="key-outside-policy-is-unsupported-key-type",
        ),
        pytest.param(
            {"signer": CLUSTER_LOCAL}, "deny", "NoPolicy", [], id="no-podcertificate-policy"
        ),
        pytest.param(
            {"signer": "example.com/other"}, "abstain", None, [], id="ungoverned-signer-abstains"
        ),
    ],
)
def test_check_pcr_json(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kwargs: dict[str, Any],
    decision: str,
    reason: str | None,
    dns_names: list[str],
) -> None:
    path = pcr_file(tmp_path, **kwargs)
    assert main(["policy", "check", "--output", "json", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["decision"], out["deniedReason"], out["dnsNames"]) == (decision, reason, dns_names)


def test_check_pcr_text_lists_the_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(pcr_file(tmp_path))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "decision: approve (policy knative-system-internal)"
    assert lines[2:4] == ["issues:", "  dnsName: kn-user-shop"]
    assert [line.split(":")[0] for line in lines[4:]] == [
        "  notBefore",
        "  beginRefreshAt",
        "  notAfter",
    ]


def test_check_pcr_unreadable_key_is_denied_as_the_controller_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = pcr_file(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["stubPKCS10Request"] = base64.b64encode(b"not a csr").decode()
    path.write_text(yaml.safe_dump(doc))
    assert main(["policy", "check", "--output", "json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["deniedReason"] == "UnsupportedKeyType"


def test_check_pcr_without_namespace_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = pcr_file(tmp_path)
    doc = yaml.safe_load(path.read_text())
    del doc["metadata"]["namespace"]
    path.write_text(yaml.safe_dump(doc))
    assert main(["policy", "check", str(path)]) == 2
    assert "metadata.namespace is missing" in capsys.readouterr().err


def test_check_pcr_of_an_ungoverned_signer_abstains_before_reading_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The controller's order: a signer no policy governs is not ours to deny."""
    path = pcr_file(tmp_path, signer="example.com/other")
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["stubPKCS10Request"] = base64.b64encode(b"not a csr").decode()
    path.write_text(yaml.safe_dump(doc))
    assert main(["policy", "check", "--output", "json", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["decision"], out["deniedReason"], out["issuance"]) == ("abstain", None, None)


HOUR = 3600


@pytest.mark.parametrize(
    ("max_duration", "lifetime", "refused"),
    [
        pytest.param("365d", 24 * HOUR, None, id="max-expiration-seconds-sets-the-lifetime"),
        pytest.param("2h", 2 * HOUR, None, id="the-controllers-max-duration-caps-it"),
        pytest.param("30m", None, "LifetimeTooShort", id="a-cap-under-one-hour-would-fail"),
    ],
)
def test_check_pcr_dry_issuance_shows_the_lifetime_or_the_failure(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    max_duration: str,
    lifetime: int | None,
    refused: str | None,
) -> None:
    args = ["policy", "check", "--output", "json", "--max-duration", max_duration]
    assert main([*args, str(pcr_file(tmp_path))]) == 0
    issuance = json.loads(capsys.readouterr().out)["issuance"]
    assert issuance.get("refused") == refused
    if lifetime is not None:
        not_before = dt.datetime.fromisoformat(issuance["notBefore"])
        not_after = dt.datetime.fromisoformat(issuance["notAfter"])
        refresh = dt.datetime.fromisoformat(issuance["beginRefreshAt"])
        assert (not_after - not_before).total_seconds() == lifetime
        assert not_before < refresh < not_after


def test_check_pcr_bad_max_duration_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "check", "--max-duration", "soon", str(pcr_file(tmp_path))]) == 2
    assert "--max-duration" in capsys.readouterr().err
