"""`csr-signer policy test`: the suite format, its errors, its output and exit status."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from signer.cli import main
from signer.commands.suites import derived_groups
from signer.policy import bundled_policies_dir, load_policies
from signer.policy.loader import policy_files

REPO = Path(__file__).resolve().parents[3]
BUNDLED_TESTS = REPO / "policies" / "tests"
KNATIVE = "csr-signer.dev/knative-internal"
SHOP = "system:serviceaccount:shop:default"


def case(name: str = "t", expect: str = "approve", **csr: Any) -> dict[str, Any]:
    """A `csr:` test for the knative-internal signer; `csr` overrides its fields."""
    fields: dict[str, Any] = {
        "signerName": KNATIVE,
        "username": SHOP,
        "dnsNames": ["kn-user-shop"],
        "usages": ["digital signature", "key encipherment", "server auth"],
    }
    fields.update(csr)
    return {"name": name, "csr": fields, "expect": expect}


def suite(path: Path, *tests: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"tests": list(tests)}, sort_keys=False))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["policy", "test", *args])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def test_the_bundled_suite_passes_and_covers_every_bundled_policy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, lines, err = run(capsys, str(BUNDLED_TESTS))
    assert (code, err) == (0, "")
    assert len(lines) == 1
    assert lines[0].endswith(" passed, 0 failed")
    # Every policy is named by an approving test, and each outcome is exercised.
    text = "\n".join(p.read_text() for p in BUNDLED_TESTS.glob("*.yaml"))
    for policy in load_policies(bundled_policies_dir()).policies:
        assert f"{policy.name}: approved" in text, policy.name
    for outcome in ("approve", "deny", "abstain"):
        assert f"expect: {outcome}" in text
    assert "request: recorded/" in text


def test_the_policy_loader_never_reads_the_test_directory() -> None:
    assert [p.name for p in policy_files(REPO / "policies")] == [
        "cluster-local.yaml",
        "knative-internal.yaml",
    ]


@pytest.mark.parametrize(
    ("test", "passes"),
    [
        pytest.param(case(expect="approve"), True, id="the-expected-outcome-passes"),
        pytest.param(case(expect="deny"), False, id="another-outcome-fails"),
        pytest.param(
            {**case(expect="approve"), "reasonContains": "knative-system-internal: approved"},
            True,
            id="reason-contains-matches-a-substring-of-a-reason",
        ),
        pytest.param(
            {**case(expect="approve"), "reasonContains": "knative-system-components"},
            False,
            id="the-right-outcome-with-the-wrong-reason-fails",
        ),
        pytest.param(
            case(expect="deny", dnsNames=["kn-user-billing"]),
            True,
            id="a-denial-can-be-expected",
        ),
        pytest.param(
            case(expect="abstain", username="alice"), True, id="an-abstention-can-be-expected"
        ),
        pytest.param(
            case(expect="deny", usages=["server auth", "frobnicate"]),
            True,
            id="an-unknown-usage-reaches-the-policy-which-denies-it",
        ),
        pytest.param(
            case(expect="approve", key="RSA-3072", commonName="kn-user-shop"),
            True,
            id="key-type-and-subject-are-built-into-the-request",
        ),
        pytest.param(
            case(expect="deny", ipAddresses=["10.1.2.3"], emails=["a@b.c"], uris=["spiffe://x"]),
            True,
            id="every-kind-of-san-is-built-into-the-request",
        ),
    ],
)
def test_a_test_passes_only_when_outcome_and_reason_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], test: dict[str, Any], passes: bool
) -> None:
    code, lines, _ = run(capsys, str(suite(tmp_path / "t.yaml", test)))
    assert code == (0 if passes else 1)
    assert lines[-1] == ("1 passed, 0 failed" if passes else "0 passed, 1 failed")
    assert len(lines) == (1 if passes else 2)


def test_a_failing_test_prints_where_what_was_expected_and_what_was_decided(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = suite(
        tmp_path / "t.yaml",
        case("ok"),
        case("wrong namespace", expect="approve", dnsNames=["kn-user-billing"]),
    )
    code, lines, _ = run(capsys, str(path))
    assert code == 1
    assert lines == [
        f"{path}:13: wrong namespace: expected approve; decided deny (policy "
        "knative-system-internal): knative-system-internal: spec.request dnsNames: "
        '"kn-user-billing" is not allowed for requester namespace "shop"',
        "1 passed, 1 failed",
    ]


def test_a_recorded_request_is_read_relative_to_the_test_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    for name in ("csr-shop-kn-routing.yaml", "pcr-shop.json"):
        (recorded / name).write_bytes((BUNDLED_TESTS / "recorded" / name).read_bytes())
    path = suite(
        tmp_path / "t.yaml",
        {"name": "csr", "request": "recorded/csr-shop-kn-routing.yaml", "expect": "deny"},
        {"name": "pcr", "request": "recorded/pcr-shop.json", "expect": "approve"},
    )
    assert run(capsys, str(path))[:2] == (0, ["2 passed, 0 failed"])


def test_a_pcr_is_decided_by_decide_pod(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The recorded PCR names no policy with a podCertificate section here: NoPolicy."""
    policies = tmp_path / "policies"
    policies.mkdir()
    text = (REPO / "policies" / "knative-internal.yaml").read_text()
    (policies / "k.yaml").write_text(yaml.safe_dump(_without_pod_certificate(yaml.safe_load(text))))
    path = suite(
        tmp_path / "t.yaml",
        {
            "name": "pcr",
            "request": str(BUNDLED_TESTS / "recorded" / "pcr-shop.json"),
            "expect": "deny",
            "reasonContains": "NoPolicy: ",
        },
    )
    assert run(capsys, "--policies", str(policies), str(path))[:2] == (0, ["1 passed, 0 failed"])


def _without_pod_certificate(doc: dict[str, Any]) -> dict[str, Any]:
    for policy in doc["policies"]:
        policy.pop("podCertificate", None)
    return doc


MALFORMED = [
    pytest.param(
        "tests:\n  - name: a\n    csr:\n      signerName: x\n      username: u\n"
        "      dnsName: [a]\n      usages: []\n    expect: approve\n",
        ["t.yaml:6: tests[0].csr.dnsName: unknown field"],
        id="a-misspelt-field-is-an-error-at-its-line",
    ),
    pytest.param(
        "tests:\n  - name: a\n    csr:\n      signerName: x\n      username: u\n"
        "      usages: []\n      key: RSA-1024\n    expect: approve\n",
        [
            "t.yaml:7: tests[0].csr.key: Input should be 'RSA-2048', 'RSA-3072', 'RSA-4096', "
            "'ECDSA-P256', 'ECDSA-P384' or 'Ed25519'"
        ],
        id="an-unknown-key-type-lists-the-known-ones",
    ),
    pytest.param(
        "tests:\n  - name: a\n    request: r.yaml\n    expect: approved\n",
        ["t.yaml:4: tests[0].expect: Input should be 'approve', 'deny' or 'abstain'"],
        id="expect-is-approve-deny-or-abstain",
    ),
    pytest.param(
        "tests:\n  - name: a\n    expect: deny\n",
        ["t.yaml:2: tests[0]: give exactly one of csr: (built) and request: (a recorded manifest)"],
        id="a-test-needs-a-request",
    ),
    pytest.param(
        "tests:\n  - name: a\n    request: missing.yaml\n    expect: deny\n",
        ["t.yaml:3: tests[0].request: cannot read {dir}/missing.yaml: No such file or directory"],
        id="a-missing-recorded-request-is-an-error-at-its-line",
    ),
    pytest.param(
        "tests:\n  - name: a\n    request: t.yaml\n    expect: deny\n",
        ["t.yaml:3: tests[0].request: {dir}/t.yaml: spec is missing"],
        id="a-recorded-request-that-is-no-manifest-is-an-error",
    ),
    pytest.param(
        "tests:\n  - name: a\n    csr:\n      signerName: x\n      username: u\n"
        "      ipAddresses: [10.0.0.300]\n      usages: []\n    expect: deny\n",
        ["t.yaml:6: tests[0].csr.ipAddresses: '10.0.0.300' is not an IP address"],
        id="a-value-no-request-can-carry-is-an-error",
    ),
    pytest.param(
        "tests:\n  - name: a\n    csr:\n      signerName: x\n      username: u\n"
        "      dnsNames: [bücher.example]\n      usages: []\n    expect: deny\n",
        [
            "t.yaml:6: tests[0].csr.dnsNames: 'bücher.example' is not ASCII; write the A-label (xn--) form"
        ],
        id="a-unicode-dns-name-asks-for-its-a-label",
    ),
    pytest.param(
        "tests:\n  - name: a\n    request: r.yaml\n    expect: deny\n"
        "  - name: a\n    request: r.yaml\n    expect: deny\n",
        ["t.yaml:5: tests[1].name: duplicate test name 'a' (first at line 2)"],
        id="test-names-are-unique-in-a-file",
    ),
    pytest.param(
        "tests:\n  - name: a\n    request: r.yaml\n    expect: deny\n    expect: approve\n",
        ["t.yaml:5: duplicate key 'expect'"],
        id="duplicate-keys-are-errors-as-in-policy-files",
    ),
    pytest.param(
        "tests: []\n",
        ["t.yaml:1: tests: must be a non-empty list of tests"],
        id="an-empty-suite-is-an-error",
    ),
    pytest.param(
        "test:\n  - name: a\n",
        ["t.yaml: tests: required field is missing"],
        id="a-named-file-without-tests-is-an-error",
    ),
    pytest.param(
        "tests:\n  - name: a\n    csr: {signerName: x, username: u, usages: [1]}\n"
        "    expect: deny\n",
        ["t.yaml:3: tests[0].csr.usages[0]: Input should be a valid string"],
        id="values-are-not-coerced",
    ),
    pytest.param(
        "tests:\n  - [\n",
        None,
        id="invalid-yaml-is-an-error-with-its-line",
    ),
]


@pytest.mark.parametrize(("text", "expected"), MALFORMED)
def test_a_malformed_test_file_exits_2_with_file_line_field_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: list[str] | None
) -> None:
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(_recorded_csr()))
    (tmp_path / "t.yaml").write_text(text)
    code, lines, err = run(capsys, str(tmp_path / "t.yaml"))
    assert (code, lines) == (2, [])
    problems = [line.removeprefix(f"{tmp_path}/") for line in err.splitlines()]
    if expected is None:
        assert len(problems) == 1
        assert problems[0].startswith("t.yaml:3: invalid YAML")
    else:
        assert problems == [p.format(dir=tmp_path) for p in expected]


def _recorded_csr() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(
        (BUNDLED_TESTS / "recorded" / "csr-shop-kn-routing.yaml").read_text()
    )
    return doc


def test_a_directory_is_searched_recursively_and_files_without_tests_are_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sub").mkdir()
    suite(tmp_path / "a.yaml", case("one"))
    suite(tmp_path / "sub" / "b.yml", case("two"), case("three", expect="deny"))
    (tmp_path / "sub" / "recorded.yaml").write_text(yaml.safe_dump(_recorded_csr()))
    (tmp_path / ".hidden.yaml").write_text("not: [valid")
    code, lines, _ = run(capsys, str(tmp_path))
    assert code == 1
    assert lines[-1] == "2 passed, 1 failed"


def test_a_directory_without_suites_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "recorded.yaml").write_text(yaml.safe_dump(_recorded_csr()))
    code, _, err = run(capsys, str(tmp_path))
    assert code == 2
    assert err == f"{tmp_path}: no test files (*.yaml, *.yml with tests:)\n"


def test_invalid_policies_exit_2_before_any_test_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "bad.yaml").write_text("policies: [{name: x}]\n")
    suite(tmp_path / "t.yaml", case())
    assert (
        main(["policy", "test", "--policies", str(tmp_path / "p"), str(tmp_path / "t.yaml")]) == 2
    )


def test_junit_xml_has_a_testcase_per_test_and_a_failure_per_failing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = suite(tmp_path / "t.yaml", case("ok"), case("bad", expect="abstain"))
    report = tmp_path / "junit.xml"
    code, _, _ = run(capsys, "--junit", str(report), str(path))
    assert code == 1
    root = ET.fromstring(report.read_bytes())
    assert (root.tag, root.get("tests"), root.get("failures")) == ("testsuites", "2", "1")
    (testsuite,) = root
    assert testsuite.get("name") == str(path)
    cases = {c.get("name"): c for c in testsuite.iter("testcase")}
    assert set(cases) == {"ok", "bad"}
    assert cases["ok"].find("failure") is None
    failure = cases["bad"].find("failure")
    assert failure is not None
    assert failure.get("message") == "expected abstain"
    assert (failure.text or "").startswith(
        "expected abstain; decided approve (policy knative-system-internal)\n"
    )
    assert cases["bad"].get("line") == "13"


@pytest.mark.parametrize(
    ("username", "extra", "groups"),
    [
        pytest.param(
            SHOP,
            (),
            ("system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"),
            id="a-serviceaccount-is-in-its-namespace-group",
        ),
        pytest.param(
            "alice", ("admins",), ("system:authenticated", "admins"), id="a-user-is-authenticated"
        ),
        pytest.param(
            "system:serviceaccount:shop",
            ("system:authenticated",),
            ("system:authenticated",),
            id="a-malformed-sa-is-a-user-and-groups-are-listed-once",
        ),
    ],
)
def test_serviceaccount_groups_are_derived_as_the_apiserver_does(
    username: str, extra: tuple[str, ...], groups: tuple[str, ...]
) -> None:
    assert derived_groups(username, extra) == groups


def test_a_built_request_is_a_real_pkcs10_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`policy check` on the same CSR, as a manifest, decides the same way."""
    from signer.commands.suites import prepare
    from signer.pki.requests import KeyCache

    path = suite(tmp_path / "t.yaml", case(key="Ed25519"))
    (test,) = prepare([path], KeyCache())
    assert test.csr is not None
    manifest = {
        "kind": "CertificateSigningRequest",
        "spec": {
            "request": base64.b64encode(test.csr.request).decode(),
            "signerName": KNATIVE,
            "username": SHOP,
            "usages": list(test.csr.usages),
        },
    }
    (tmp_path / "csr.json").write_text(json.dumps(manifest))
    assert main(["policy", "check", "--output", "json", str(tmp_path / "csr.json")]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] == "approve"


SELECTIVE = """
policies:
  - name: prod-only
    signerNames: [csr-signer.dev/knative-internal]
    requesters:
      serviceAccounts:
        - namespaces: ["{label}"]
          namespaceSelector:
            matchLabels: {env: prod}
    allowed:
      dnsNames: ["kn-user-{namespace}"]
    celRules:
      - expression: "requester.namespaceLabels['team'] == 'payments'"
        message: only the payments team
"""


@pytest.mark.parametrize(
    ("flags", "test_labels", "outcome"),
    [
        pytest.param([], None, "abstain", id="unknown-namespace-labels-select-nobody"),
        pytest.param(
            ["--namespace-labels", "shop=env=prod,shop=team=payments"],
            None,
            "approve",
            id="the-flag-gives-the-labels",
        ),
        pytest.param(
            ["--namespace-labels", "shop=env=prod", "--namespace-labels", "shop=team=search"],
            None,
            "deny",
            id="the-flag-repeats-and-cel-sees-the-labels",
        ),
        pytest.param(
            ["--namespace-labels", "shop=env=dev"],
            {"env": "prod", "team": "payments"},
            "approve",
            id="a-tests-own-labels-win",
        ),
        pytest.param(
            ["--namespace-labels", "other=env=prod,shop="],
            None,
            "abstain",
            id="another-namespaces-labels-do-not-count",
        ),
    ],
)
def test_namespace_labels_come_from_the_test_or_the_flag(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    test_labels: dict[str, str] | None,
    outcome: str,
) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "p.yaml").write_text(SELECTIVE)
    test = case(expect=outcome)
    if test_labels is not None:
        test["namespaceLabels"] = test_labels
    path = suite(tmp_path / "t.yaml", test)
    code, lines, err = run(capsys, "--policies", str(tmp_path / "p"), *flags, str(path))
    assert (code, lines, err) == (0, ["1 passed, 0 failed"], "")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("shop", id="no-equals"),
        pytest.param("shop=env", id="no-value-part"),
        pytest.param("=env=prod", id="no-namespace"),
        pytest.param("shop==prod", id="no-key"),
    ],
)
def test_a_malformed_namespace_labels_flag_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    path = suite(tmp_path / "t.yaml", case())
    code, lines, err = run(capsys, "--namespace-labels", value, str(path))
    assert (code, lines) == (2, [])
    assert "--namespace-labels: " in err


def test_policy_check_takes_namespace_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "p.yaml").write_text(SELECTIVE)
    manifest = BUNDLED_TESTS / "recorded" / "csr-shop-kn-routing.yaml"
    args = ["policy", "check", "--output", "json", "--policies", str(tmp_path / "p")]
    assert main([*args, str(manifest)]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] == "abstain"
    labels = ["--namespace-labels", "shop=env=prod,shop=team=payments"]
    assert main([*args, *labels, str(manifest)]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] == "deny"  # kn-routing is asked for
