"""Loading policy files: all or nothing, every problem located by file, line, field."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from signer.policy import PolicyLoadError, Problem, load_policies, loader
from signer.policy.loader import fingerprint
from signer.policy.schema import PolicyDocument

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
            policy(
                "      dnsNames: [a.example.com]\n",
                extra='    podCertificate:\n      dnsNames: [kn-routing, "kn-user-{label}"]\n',
            ),
            "p.yaml:8: policies[0].podCertificate.dnsNames[1]: {label} cannot be used in "
            "podCertificate pattern 'kn-user-{label}': these names are generated for the pod, "
            "not matched, so only {namespace}, {serviceaccount}, {clusterDomain} can be used "
            "(to let pods ask for names, list patterns under allowed instead)",
            id="label-in-pod-certificate-is-an-error-because-those-names-are-generated",
        ),
        pytest.param(
            policy(
                "      dnsNames: [a.example.com]\n",
                extra='    podCertificate:\n      uris:\n        - "spiffe://{clusterDomain}/{label}"\n',
            ),
            "p.yaml:9: policies[0].podCertificate.uris[0]: {label} cannot be used in "
            "podCertificate pattern 'spiffe://{clusterDomain}/{label}': these names are "
            "generated for the pod, not matched, so only {namespace}, {serviceaccount}, "
            "{clusterDomain} can be used (to let pods ask for names, list patterns under "
            "allowed instead)",
            id="label-in-pod-certificate-uri-is-an-error-too",
        ),
        pytest.param(
            policy(
                "      dnsNames: [a.example.com]\n",
                extra='    podCertificate:\n      dnsNames: ["{nmespace}.svc"]\n',
            ),
            "p.yaml:8: policies[0].podCertificate.dnsNames[0]: unknown placeholder {nmespace} "
            "in DNS name pattern '{nmespace}.svc' (known: {namespace}, {serviceaccount}, "
            "{clusterDomain})",
            id="pod-certificate-patterns-are-validated-and-list-only-bound-placeholders",
        ),
        pytest.param(
            policy(
                "      dnsNames: [a.example.com]\n", extra="    podCertificate:\n      dns: [a]\n"
            ),
            "p.yaml:8: policies[0].podCertificate.dns: unknown field",
            id="misspelt-pod-certificate-field",
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


# -- hostile or broken files: every failure is a located Problem, found quickly -------------

NESTED_TOO_DEEP = f"nested more than {loader.MAX_DEPTH} levels deep"
FILE_NODES = f"more than {loader.MAX_FILE_NODES:,} YAML nodes in one file"
DIRECTORY_NODES = f"more than {loader.MAX_DIRECTORY_NODES:,} YAML nodes in the policy directory"
NUMBER_TOO_LONG = f"number too long (over {loader.MAX_NUMBER_LENGTH} characters)"


def laughs(width: int = 10, levels: int = 6) -> str:
    """One "billion laughs" document: each anchor repeats the previous one `width` times."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "---\n" + "\n".join(lines) + "\n"


def nested_flow(depth: int, inner: str = "x") -> str:
    return "[" * (depth - 1) + inner + "]" * (depth - 1)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            "[" * 2048,
            f"p.yaml:1: {NESTED_TOO_DEEP}",
            id="2KB-of-nested-brackets-is-refused-at-the-depth-limit-not-a-RecursionError",
        ),
        pytest.param(
            "- " * 2000 + "x\n",
            f"p.yaml:1: {NESTED_TOO_DEEP}",
            id="deep-block-sequences-are-refused-at-the-depth-limit",
        ),
        pytest.param(
            "".join(" " * i + "a:\n" for i in range(200)) + " " * 200 + "a: b\n",
            f"p.yaml:64: {NESTED_TOO_DEEP}",
            id="deep-block-mappings-are-refused-at-the-line-that-passes-the-limit",
        ),
        pytest.param(
            f"a: &a {nested_flow(40)}\nb: {nested_flow(40, '*a')}\n",
            f"p.yaml:2: {NESTED_TOO_DEEP} once aliases are expanded",
            id="depth-counts-what-an-alias-splices-in",
        ),
        pytest.param(
            policy(
                "      keys:\n        - algorithm: RSA\n          minSize: " + "9" * 5000 + "\n"
            ),
            f"p.yaml:10: policies[0].allowed.keys[0].minSize: {NUMBER_TOO_LONG}",
            id="5000-digit-integer-is-too-long-not-a-ValueError",
        ),
        pytest.param(
            'policies: !!int "' + "9" * 5000 + '"\n',
            f"p.yaml:1: policies: {NUMBER_TOO_LONG}",
            id="explicitly-tagged-integer-is-checked-too",
        ),
        pytest.param(
            "policies: 0x" + "f" * 5000 + "\n",
            f"p.yaml:1: policies: {NUMBER_TOO_LONG}",
            id="hex-integer-is-checked-too",
        ),
        pytest.param(
            "policies: " + "9" * 5000 + ".5e+10\n",
            f"p.yaml:1: policies: {NUMBER_TOO_LONG}",
            id="huge-float-is-too-long",
        ),
        pytest.param(
            "".join(laughs() for _ in range(150)),  # 50 KB
            f"p.yaml:6: {FILE_NODES} (an alias counts as every node it repeats)",
            id="150-billion-laughs-documents-stop-at-the-first-alias-over-the-file-limit",
        ),
        pytest.param(b"", "p.yaml: the file holds no YAML document", id="empty-file-is-a-problem"),
        pytest.param(
            "just a string\n",
            "p.yaml:1: a document must be a mapping with signers: and policies:",
            id="a-scalar-document-is-not-a-policy-document",
        ),
        pytest.param(
            b"policies: caf\xe9\n", "p.yaml: not UTF-8 text", id="latin-1-file-is-not-utf8"
        ),
        pytest.param(
            "policies: *nowhere\n",
            "p.yaml:1: invalid YAML: found undefined alias 'nowhere'",
            id="undefined-alias-is-invalid-yaml",
        ),
        pytest.param(
            "policies: \x00\n",
            "p.yaml: invalid YAML: unacceptable character #x0000: special characters are not "
            'allowed\n  in "<unicode string>", position 10',
            id="control-character-is-invalid-yaml",
        ),
    ],
)
def test_hostile_file_is_a_located_problem(
    tmp_path: Path, content: str | bytes, expected: str
) -> None:
    path = tmp_path / "p.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert expected in problems_of(tmp_path)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("content", "refused"),
    [
        pytest.param(
            f"policies: {nested_flow(loader.MAX_DEPTH - 1)}\n",
            "nested more than",
            id="nesting-at-the-depth-limit-is-not-refused-for-depth",
        ),
        pytest.param(
            "policies: " + "1" * loader.MAX_NUMBER_LENGTH + "\n",
            "number too long",
            id="a-number-at-the-length-limit-is-not-refused-for-length",
        ),
        pytest.param(
            "".join(laughs(width=10, levels=4) for _ in range(4)),
            "YAML nodes",
            id="aliases-within-the-node-limits-still-work",
        ),
    ],
)
def test_limits_are_inclusive(tmp_path: Path, content: str, refused: str) -> None:
    write(tmp_path, {"p.yaml": content})
    assert not [p for p in problems_of(tmp_path) if refused in p]


def test_anchors_and_aliases_within_limits_load(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "p.yaml": GOOD.replace('["{label}"]', '&ns ["{label}"]') + "  - name: other\n"
            "    signerNames: [example.com/test]\n"
            "    requesters:\n"
            "      serviceAccounts:\n"
            "        - namespaces: *ns\n"
        },
    )
    assert [p.name for p in load_policies(tmp_path).policies] == ["good", "other"]


def _many_files(count: int, text: str) -> Callable[[Path], None]:
    def make(directory: Path) -> None:
        for i in range(count):
            (directory / f"p{i:02}.yaml").write_text(text)

    return make


def _big_files(count: int, size: int) -> Callable[[Path], None]:
    def make(directory: Path) -> None:
        for i in range(count):
            (directory / f"p{i:02}.yaml").write_bytes(b"#" * (size - 1) + b"\n")

    return make


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(
            _big_files(1, loader.MAX_FILE_BYTES + 1),
            ["p00.yaml: larger than 1 MiB, the limit for one policy file"],
            id="a-file-over-the-byte-limit-is-refused-before-parsing",
        ),
        pytest.param(
            _big_files(3, loader.MAX_FILE_BYTES * 9 // 10),
            [
                ": the policy files total more than 2 MiB, the limit for a directory "
                "(passed at p02.yaml)"
            ],
            id="a-directory-over-the-byte-limit-is-refused-before-parsing",
        ),
        pytest.param(
            _many_files(loader.MAX_FILES + 1, ""),
            [f": {loader.MAX_FILES + 1} policy files, more than the limit of {loader.MAX_FILES}"],
            id="too-many-files-are-refused-before-reading",
        ),
        pytest.param(
            _many_files(10, "".join(laughs() for _ in range(15))),
            [
                f"p00.yaml:6: {FILE_NODES} (an alias counts as every node it repeats)",
                f"p01.yaml:6: {FILE_NODES} (an alias counts as every node it repeats)",
                f"p02.yaml:5: {DIRECTORY_NODES} (an alias counts as every node it repeats); "
                "later files were not read",
            ],
            id="150-billion-laughs-documents-over-10-files-stop-at-the-directory-limit",
        ),
    ],
)
def test_hostile_directory_is_refused_quickly(
    tmp_path: Path, make: Callable[[Path], None], expected: list[str]
) -> None:
    make(tmp_path)
    assert [p.removeprefix(str(tmp_path)) for p in problems_of(tmp_path)] == expected


@pytest.mark.timeout(10)
def test_node_limit_is_shared_by_the_files_of_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each file is under the per-file limit; together they pass the directory's.

    The limits are lowered so the test composes 1,000 nodes, not 100,000.
    """
    monkeypatch.setattr(loader, "MAX_FILE_NODES", 500)
    monkeypatch.setattr(loader, "MAX_DIRECTORY_NODES", 1_000)
    items = ", ".join(["x"] * 400)
    _many_files(5, f"policies: [{items}]\n")(tmp_path)
    problems = problems_of(tmp_path)
    assert problems[-1] == (
        "p02.yaml:1: more than 1,000 YAML nodes in the policy directory "
        "(an alias counts as every node it repeats); later files were not read"
    )
    assert not [p for p in problems if p.startswith(("p03", "p04"))]


@pytest.mark.parametrize(
    ("exception", "message"),
    [
        pytest.param(RecursionError(), "nested too deeply (RecursionError)", id="recursion"),
        pytest.param(MemoryError(), "out of memory (MemoryError)", id="memory"),
        pytest.param(ValueError("secret detail"), "unexpected ValueError", id="anything-else"),
    ],
)
def test_safety_net_turns_any_exception_into_a_problem_naming_its_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exception: Exception, message: str
) -> None:
    def boom(*_args: object, **_kwargs: object) -> object:
        raise exception

    write(tmp_path, {"a.yaml": GOOD, "b.yaml": "policies: [1]\n"})
    monkeypatch.setattr(PolicyDocument, "model_validate", boom)
    assert problems_of(tmp_path) == [
        f"a.yaml: cannot load: {message}",
        f"b.yaml: cannot load: {message}",
    ]


def test_safety_net_covers_the_directory_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(_directory: Path) -> list[Path]:
        raise RuntimeError("bug")

    monkeypatch.setattr(loader, "policy_files", boom)
    assert problems_of(tmp_path) == [f"{tmp_path}: cannot load: unexpected RuntimeError"]


def test_fingerprint_reads_no_more_than_the_loader(tmp_path: Path) -> None:
    """Past the byte limit, content cannot change the outcome, so it is not read."""
    big = b"#" * (loader.MAX_FILE_BYTES + 10)
    (tmp_path / "p.yaml").write_bytes(big)
    before = fingerprint(tmp_path)
    (tmp_path / "p.yaml").write_bytes(big[:-1] + b"x")
    assert fingerprint(tmp_path) == before
    (tmp_path / "p.yaml").write_bytes(b"#\n")
    assert fingerprint(tmp_path) != before


def test_a_pod_certificate_policy_cannot_cap_lifetimes_below_one_hour(tmp_path: Path) -> None:
    text = policy(
        '      dnsNames: ["kn-user-{namespace}"]\n',
        extra='    maxLifetime: 30m\n    podCertificate:\n      dnsNames: ["kn-user-{namespace}"]\n',
    )
    problems = problems_of(write(tmp_path, {"p.yaml": text}))
    assert any("maxLifetime is under 1h" in p for p in problems), problems
