"""`csr-signer policy check|lint`: exit status, output formats, one-line errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from signer.cli import main
from tests.data.csrs import build_csr_pem, csr_manifest, csr_request, sa_username

REPO = Path(__file__).resolve().parents[3]
INVALID = REPO / "tests" / "data" / "policies" / "invalid"
KNATIVE = "csr-signer.dev/knative-internal"


def manifest_file(tmp_path: Path, fmt: str = "yaml", **kwargs: Any) -> Path:
    doc = csr_manifest(csr_request(**kwargs))
    path = tmp_path / f"csr.{fmt}"
    path.write_text(json.dumps(doc) if fmt == "json" else yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param(
            {},
            {
                "decision": "approve",
                "policy": "cluster-local-services",
                "reasons": ["cluster-local-services: approved: every requested value is allowed"],
            },
            id="approve-names-the-policy",
        ),
        pytest.param(
            {"signer_name": KNATIVE, "dns_names": ["kn-user-other"]},
            {
                "decision": "deny",
                "policy": "knative-system-internal",
                "reasons": [
                    'knative-system-internal: spec.request dnsNames: "kn-user-other" is not '
                    'allowed for requester namespace "default"'
                ],
            },
            id="deny-lists-the-violation",
        ),
        pytest.param(
            {"username": "alice"},
            {
                "decision": "abstain",
                "policy": None,
                "reasons": [
                    'no policy for signer "csr-signer.dev/cluster-local" applies to requester "alice"'
                ],
            },
            id="abstain-for-a-requester-no-policy-covers",
        ),
    ],
)
def test_check_json_output_exits_0_whatever_the_decision(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kwargs: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    path = manifest_file(tmp_path, **kwargs)
    assert main(["policy", "check", "--output", "json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == expected


def test_check_text_output_prints_decision_and_every_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest_file(tmp_path, "json", dns_names=["web.other.svc"], key_type="rsa-1024")
    assert main(["policy", "check", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "decision: deny (policy cluster-local-services)",
        '  - cluster-local-services: spec.request dnsNames: "web.other.svc" is not allowed '
        'for requester namespace "default"',
        "  - cluster-local-services: spec.request publicKey: RSA 1024 is not allowed "
        "(allowed: RSA >= 2048 bits, ECDSA P-256/P-384, Ed25519)",
    ]


def test_check_reads_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = manifest_file(tmp_path).read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["policy", "check", "-"]) == 0
    assert capsys.readouterr().out.startswith("decision: approve")


@pytest.mark.parametrize(
    ("args", "dns", "decision"),
    [
        pytest.param(
            ["--cluster-domain", "corp.example"],
            "web.default.svc.corp.example",
            "approve",
            id="configured",
        ),
        pytest.param([], "web.default.svc.corp.example", "deny", id="default-is-cluster-local"),
    ],
)
def test_check_cluster_domain_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], dns: str, decision: str
) -> None:
    path = manifest_file(tmp_path, dns_names=[dns])
    assert main(["policy", "check", "--output", "json", *args, str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] == decision


def test_check_with_a_policies_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text(
        "signers:\n  - name: csr-signer.dev/cluster-local\n    whenNoPolicyApplies: deny\n"
    )
    path = manifest_file(tmp_path)
    assert (
        main(["policy", "check", "--policies", str(policies), "--output", "json", str(path)]) == 0
    )
    assert json.loads(capsys.readouterr().out)["decision"] == "deny"


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        pytest.param(
            lambda d: ["policy", "check", str(d / "missing.yaml")],
            "cannot read",
            id="unreadable-input",
        ),
        pytest.param(
            lambda d: ["policy", "check", str(d / "garbage.yaml")],
            "not valid YAML or JSON",
            id="garbage-input",
        ),
        pytest.param(
            lambda d: ["policy", "check", str(d / "csr.pem")],
            "a bare PEM CSR has no signer name or requester",
            id="bare-pem-input",
        ),
        pytest.param(
            lambda d: ["policy", "check", "--policies", str(INVALID), str(d / "csr.yaml")],
            "invalid policies: ",
            id="invalid-policies",
        ),
        pytest.param(
            lambda d: ["policy", "check", "--policies", str(d / "nope"), str(d / "csr.yaml")],
            "not a directory",
            id="missing-policies-directory",
        ),
        pytest.param(
            lambda d: ["policy", "check", "--cluster-domain", "Bad_Domain", str(d / "csr.yaml")],
            "--cluster-domain 'Bad_Domain' is not a lowercase DNS name",
            id="invalid-cluster-domain",
        ),
    ],
)
def test_check_errors_are_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_args: Any, message: str
) -> None:
    manifest_file(tmp_path)
    (tmp_path / "garbage.yaml").write_text("{{{: [")
    (tmp_path / "csr.pem").write_bytes(build_csr_pem())
    assert main(make_args(tmp_path)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("csr-signer: error: ")
    assert message in lines[0]


def test_lint_bundled_policies_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "lint"]) == 0
    assert "OK, 3 policies for 2 signers" in capsys.readouterr().out


def test_lint_reports_every_problem_as_file_line_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "lint", str(INVALID)]) == 1
    broken, duplicate = INVALID / "broken.yaml", INVALID / "duplicate.yaml"
    assert capsys.readouterr().out.splitlines() == [
        f"{broken}:7: policies[0].requesters.serviceAccounts[0].namespaces[0]: unknown "
        "placeholder {namespace} in namespace pattern '{namespace}' (known: {label})",
        f"{broken}:10: policies[0].allowed.dnsNames[0]: unknown placeholder {{nmespace}} in DNS "
        "name pattern '{label}.{nmespace}.svc' (known: {namespace}, {serviceaccount}, "
        "{clusterDomain}, {label})",
        f"{broken}:11: policies[0].allowed.usages[1]: unknown usage 'serverauth' "
        "(certificates.k8s.io/v1 usages, e.g. 'server auth')",
        f"{broken}:12: policies[0].maxLifetime: 'forever' is not a duration such as 24h, "
        "90d or 1h30m",
        f"{duplicate}:3: policies[0].name: duplicate policy name 'broken' "
        f"(first defined at {broken}:3)",
        f"5 problems in {INVALID}",
    ]


def test_lint_validates_pod_certificate_sections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pods.yaml").write_text(
        "policies:\n"
        "  - name: pods\n"
        "    signerNames: [example.com/pods]\n"
        '    requesters: {serviceAccounts: [{namespaces: ["{label}"]}]}\n'
        "    podCertificate:\n"
        '      dnsNames: ["{label}.{namespace}.svc"]\n'
        "      emails: [a@b.c]\n"
    )
    assert main(["policy", "lint", str(tmp_path)]) == 1
    path = tmp_path / "pods.yaml"
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:6: policies[0].podCertificate.dnsNames[0]: {{label}} cannot be used in "
        "podCertificate pattern '{label}.{namespace}.svc': these names are generated for the "
        "pod, not matched, so only {namespace}, {serviceaccount}, {clusterDomain} can be used "
        "(to let pods ask for names, list patterns under allowed instead)",
        f"{path}:7: policies[0].podCertificate.emails: unknown field",
        f"2 problems in {tmp_path}",
    ]


def test_python_m_signer_exits_2_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "signer", "policy", "check", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("csr-signer: error: cannot read ")


def test_check_requester_identity_comes_from_spec_username(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest_file(
        tmp_path,
        signer_name=KNATIVE,
        username=sa_username("knative-serving"),
        dns_names=["kn-routing"],
    )
    assert main(["policy", "check", "--output", "json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["policy"] == "knative-system-components"


HOSTILE_POLICY_FILES = {
    "brackets.yaml": "[" * 2048,
    "digits.yaml": "policies: " + "9" * 5000 + "\n",
    "laughs.yaml": "".join(
        "---\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 6))
        for _ in range(150)
    ),
    "scalar.yaml": "just a string\n",
}


@pytest.fixture
def hostile_policies(tmp_path: Path) -> Path:
    directory = tmp_path / "hostile"
    directory.mkdir()
    for name, text in HOSTILE_POLICY_FILES.items():
        (directory / name).write_text(text)
    return directory


@pytest.mark.timeout(10)
def test_lint_reports_hostile_files_as_problems_not_tracebacks(
    hostile_policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "lint", str(hostile_policies)]) == 1
    captured = capsys.readouterr()
    assert captured.err == ""
    assert [line.removeprefix(f"{hostile_policies}/") for line in captured.out.splitlines()] == [
        "brackets.yaml:1: nested more than 64 levels deep",
        "digits.yaml:1: policies: number too long (over 20 characters)",
        "digits.yaml:1: policies: Input should be a valid tuple",
        "laughs.yaml:6: more than 50,000 YAML nodes in one file "
        "(an alias counts as every node it repeats)",
        "scalar.yaml:1: a document must be a mapping with signers: and policies:",
        f"5 problems in {hostile_policies}",
    ]


@pytest.mark.timeout(10)
def test_check_with_hostile_policies_is_one_line_with_exit_2(
    tmp_path: Path, hostile_policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest_file(tmp_path)
    assert main(["policy", "check", "--policies", str(hostile_policies), str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"csr-signer: error: invalid policies: {hostile_policies}/brackets.yaml:1: nested more "
        f"than 64 levels deep (and 4 more; run `csr-signer policy lint {hostile_policies}`)\n"
    )
