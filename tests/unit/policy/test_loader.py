"""Loading policy files: all or nothing, every problem located by file, line, field."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from signer.policy import PolicyLoadError, Problem, load_policies
from signer.policy.loader import fingerprint

GOOD = """\
policies:
  - name: good
    signerNames: [example.com/test]
    requesters:
      serviceAccounts:
        - namespaces: ["{label}"]
    allowed:
      dnsNames: ["{label}.{namespace}.svc"]
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(PolicyLoadError) as info:
        load_policies(directory)
    return [str(p).removeprefix(f"{directory}/") for p in info.value.problems]


def policy(allowed: str = "", extra: str = "") -> str:
    """A one-policy file whose line 8 onwards is `allowed:` then `extra`."""
    return (
        "policies:\n"
        "  - name: p\n"
        "    signerNames: [example.com/test]\n"
        "    requesters:\n"
        "      serviceAccounts:\n"
        '        - namespaces: ["{label}"]\n'
        f"{extra}"
        "    allowed:\n"
        f"{allowed}"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            policy(
                '      dnsNames:\n        - a.example.com\n        - b.example.com\n        - "{nmespace}.svc"\n'
            ),
            "p.yaml:11: policies[0].allowed.dnsNames[2]: unknown placeholder {nmespace} in DNS "
            "name pattern '{nmespace}.svc' (known: {namespace}, {serviceaccount}, "
            "{clusterDomain}, {label})",
            id="unknown-placeholder-names-file-line-and-list-index",
        ),
        pytest.param(
            policy("      dnsNames: ['*.example.com']\n"),
            "p.yaml:8: policies[0].allowed.dnsNames[0]: "
            "wildcards are not supported in DNS name pattern '*.example.com'",
            id="wildcard-pattern",
        ),
        pytest.param(
            policy("      dnsName: [a.example.com]\n"),
            "p.yaml:8: policies[0].allowed.dnsName: unknown field",
            id="misspelt-field-is-an-error-not-ignored",
        ),
        pytest.param(
            "policies:\n  - name: p\n    signerNames: [example.com/test]\n",
            "p.yaml:2: policies[0].requesters: required field is missing",
            id="missing-field-located-at-its-parent",
        ),
        pytest.param(
            policy("      usages: [server auth, sever auth]\n"),
            "p.yaml:8: policies[0].allowed.usages[1]: unknown usage 'sever auth' "
            "(certificates.k8s.io/v1 usages, e.g. 'server auth')",
            id="unknown-usage",
        ),
        pytest.param(
            policy("      usages: [server auth, cert sign]\n"),
            "p.yaml:7: policies[0].allowed: usages ['cert sign'] are for CAs; "
            "this signer never issues CA certificates",
            id="ca-usages-cannot-be-allowed",
        ),
        pytest.param(
            policy("      keys:\n        - algorithm: RSA\n          minSize: 1024\n"),
            "p.yaml:10: policies[0].allowed.keys[0].minSize: "
            "Input should be greater than or equal to 2048",
            id="weak-rsa-minimum",
        ),
        pytest.param(
            policy("      keys:\n        - algorithm: RSA\n          publicExponent: 3\n"),
            "p.yaml:10: policies[0].allowed.keys[0].publicExponent: Input should be 65537",
            id="rsa-exponent-other-than-65537-is-a-load-error",
        ),
        pytest.param(
            policy("      keys:\n        - algorithm: DSA\n"),
            "p.yaml:9: policies[0].allowed.keys[0]: Input tag 'DSA' found using 'algorithm' "
            "does not match any of the expected tags: 'RSA', 'ECDSA', 'Ed25519'",
            id="unknown-key-algorithm",
        ),
        pytest.param(
            policy("      ipRanges: [10.0.0.1/8]\n"),
            "p.yaml:8: policies[0].allowed.ipRanges[0]: "
            "not a CIDR range: 10.0.0.1/8 has host bits set",
            id="ip-range-with-host-bits",
        ),
        pytest.param(
            policy("      dnsNames: [a.example.com]\n", extra="    maxLifetime: 5m\n"),
            "p.yaml:7: policies[0].maxLifetime: '5m' is shorter than the 10m minimum "
            "Kubernetes accepts",
            id="lifetime-below-kubernetes-minimum",
        ),
        pytest.param(
            policy("      dnsNames: [a.example.com]\n", extra="    maxLifetime: 1 day\n"),
            "p.yaml:7: policies[0].maxLifetime: '1 day' is not a duration such as 24h, 90d "
            "or 1h30m",
            id="lifetime-syntax",
        ),
        pytest.param(
            policy("      dnsNames: [a.example.com]\n", extra="    maxLifetime: 10m0.5s\n"),
            "p.yaml:7: policies[0].maxLifetime: '10m0.5s' is not a whole number of seconds",
            id="lifetime-whole-seconds-because-expiration-seconds-is-an-integer",
        ),
        pytest.param(
            policy("      dnsNames: [a.example.com]\n      dnsNames: [b.example.com]\n"),
            "p.yaml:9: duplicate key 'dnsNames'",
            id="duplicate-key-is-an-error-not-an-override",
        ),
        pytest.param(
            policy("      dnsNames: [a.example.com\n"),
            "p.yaml:9: invalid YAML: while parsing a flow sequence: expected ',' or ']', "
            "but got '<stream end>'",
            id="yaml-syntax-error",
        ),
        pytest.param(
            policy('      dnsNames: [a.example.com]\n    required: {usages: ["code signing"]}\n'),
            "p.yaml:2: policies[0]: required.usages ['code signing'] are not in allowed.usages",
            id="unsatisfiable-required-usage",
        ),
        pytest.param(
            policy("      usages: [server auth]\n    required: {minDnsNames: 1}\n"),
            "p.yaml:2: policies[0]: required.minDnsNames needs at least one allowed.dnsNames "
            "pattern",
            id="required-dns-name-that-nothing-allows",
        ),
        pytest.param(
            "policies:\n  - name: p\n    signerNames: [example.com/test]\n    requesters: {}\n",
            "p.yaml:4: policies[0].requesters: "
            "selects nobody: list serviceAccounts, usernames or groups",
            id="policy-that-applies-to-nobody",
        ),
        pytest.param(
            "policies:\n  - name: P_1\n    signerNames: [test]\n    requesters: {usernames: [a]}\n",
            "p.yaml:2: policies[0].name: 'P_1' is not a valid policy name (a DNS-1123 label)",
            id="policy-name-syntax",
        ),
        pytest.param(
            "signers:\n  - name: example.com/x\n    whenNoPolicyApplies: reject\n",
            "p.yaml:3: signers[0].whenNoPolicyApplies: Input should be 'abstain' or 'deny'",
            id="when-no-policy-applies-values",
        ),
        pytest.param(
            "- name: p\n",
            "p.yaml:1: a document must be a mapping with signers: and policies:",
            id="document-must-be-a-mapping",
        ),
        pytest.param(
            "policies: []\n",
            "p.yaml:1: the document defines no policies or signers",
            id="empty-document",
        ),
        pytest.param("# nothing\n", "p.yaml: the file holds no YAML document", id="empty-file"),
        pytest.param(
            "policies:\n  - <<: {name: p}\n",
            "p.yaml:2: merge keys (<<) are not supported: write the fields out",
            id="merge-keys-are-refused",
        ),
        pytest.param(
            "policies:\n  - !!python/object:os.system {}\n",
            "p.yaml:2: unsupported tag 'tag:yaml.org,2002:python/object:os.system'",
            id="python-tags-are-refused",
        ),
        pytest.param(
            "policies: &loop\n  - *loop\n", "p.yaml:1: recursive alias", id="recursive-alias"
        ),
        pytest.param(
            policy('      dnsNames: [!!binary "YQ=="]\n'),
            "p.yaml:8: policies[0].allowed.dnsNames[0]: must be a string (a DNS name pattern)",
            id="non-string-pattern",
        ),
    ],
)
def test_invalid_file_reports_file_line_field(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path, {"p.yaml": text})
    assert expected in problems_of(tmp_path)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_bytes(b"\xff\xfe")
    assert problems_of(tmp_path) == ["p.yaml: not UTF-8 text"]


def test_every_problem_in_every_file_is_reported_and_nothing_loads(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": GOOD,
            "b.yaml": policy("      dnsNames: ['{x}']\n      emails: [nope]\n"),
            "c.yml": "policies: [1]\n",
        },
    )
    assert problems_of(tmp_path) == [
        "b.yaml:8: policies[0].allowed.dnsNames[0]: unknown placeholder {x} in DNS name "
        "pattern '{x}' (known: {namespace}, {serviceaccount}, {clusterDomain}, {label})",
        "b.yaml:9: policies[0].allowed.emails[0]: email pattern 'nope' must be "
        "local-part@lowercase.domain",
        "c.yml:1: policies[0]: Input should be a valid dictionary or instance of Policy",
    ]


def test_duplicate_policy_names_across_files(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": GOOD, "b.yaml": "# second\n" + GOOD})
    assert problems_of(tmp_path) == [
        f"b.yaml:3: policies[0].name: duplicate policy name 'good' "
        f"(first defined at {tmp_path}/a.yaml:2)"
    ]


def test_duplicate_signer_settings_across_files(tmp_path: Path) -> None:
    settings = "signers:\n  - name: example.com/test\n"
    write(tmp_path, {"a.yaml": settings, "b.yaml": settings})
    assert problems_of(tmp_path) == [
        f"b.yaml:2: signers[0].name: duplicate settings for signer 'example.com/test' "
        f"(first defined at {tmp_path}/a.yaml:2)"
    ]


def test_multi_document_files_and_file_order(tmp_path: Path) -> None:
    second = GOOD.replace("name: good", "name: second")
    write(
        tmp_path,
        {
            "b.yaml": GOOD,
            "a.yaml": second
            + "---\nsigners:\n  - name: example.com/test\n    whenNoPolicyApplies: deny\n",
            ".hidden.yaml": "not: valid",
            "README.md": "ignored",
        },
    )
    policies = load_policies(tmp_path)
    assert [p.name for p in policies.policies] == ["second", "good"]
    assert policies.origins == {"second": f"{tmp_path}/a.yaml:2", "good": f"{tmp_path}/b.yaml:2"}
    assert policies.signers["example.com/test"].when_no_policy_applies == "deny"


@pytest.mark.parametrize(
    ("written", "lifetime"),
    [
        pytest.param("720h", timedelta(days=30), id="units-as-in-every-duration"),
        pytest.param("1.5h", timedelta(minutes=90), id="fractions-that-make-whole-seconds"),
        pytest.param("3600", timedelta(hours=1), id="a-bare-number-is-seconds"),
    ],
)
def test_max_lifetime_uses_the_shared_duration_grammar(
    tmp_path: Path, written: str, lifetime: timedelta
) -> None:
    """Only the grammar is shared (tests/unit/test_durations.py); the 10m floor is the policy's."""
    write(
        tmp_path,
        {"p.yaml": policy("      dnsNames: [a.example.com]\n", f"    maxLifetime: {written}\n")},
    )
    assert load_policies(tmp_path).policies[0].max_lifetime == lifetime


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda d: d / "missing", "missing: not a directory", id="missing-directory"),
        pytest.param(lambda d: d, ": no policy files (*.yaml, *.yml)", id="empty-directory"),
    ],
)
def test_directory_problems(tmp_path: Path, make: object, expected: str) -> None:
    assert callable(make)
    directory = make(tmp_path)
    with pytest.raises(PolicyLoadError) as info:
        load_policies(directory)
    assert str(info.value).endswith(expected)


@pytest.mark.parametrize(
    ("problem", "text"),
    [
        pytest.param(
            Problem("a.yaml", 3, "policies[0].name", "bad"),
            "a.yaml:3: policies[0].name: bad",
            id="full",
        ),
        pytest.param(Problem("a.yaml", 3, "", "bad"), "a.yaml:3: bad", id="no-field"),
        pytest.param(Problem("a.yaml", None, "", "bad"), "a.yaml: bad", id="whole-file"),
    ],
)
def test_problem_format(problem: Problem, text: str) -> None:
    assert str(problem) == text
    assert str(PolicyLoadError([problem, problem])) == f"{text}\n{text}"


def test_fingerprint_covers_exactly_the_files_the_loader_reads(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": GOOD})
    before = fingerprint(tmp_path)
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", {"ignored.yaml": "not: read"})
    write(tmp_path, {".hidden.yaml": "not: read", "notes.txt": "not read"})
    assert fingerprint(tmp_path) == before, "files the loader skips must not trigger a reload"
    write(tmp_path, {"b.yml": GOOD.replace("good", "other")})
    assert fingerprint(tmp_path) != before
