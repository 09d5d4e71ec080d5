"""`policy test` suites: the test file format, reading it with lines, and running it.

A policy change ships with tests, as with `opa test` or `kyverno test`. A test
names a request and the decision it must get:

```yaml
tests:
  - name: a workload gets kn-user-<its namespace>
    csr:                                   # built on the fly: no keys or PEM to keep
      signerName: csr-signer.dev/knative-internal
      username: system:serviceaccount:shop:default
      dnsNames: [kn-user-shop]
      usages: [digital signature, key encipherment, server auth]
      key: ECDSA-P256
    expect: approve
  - name: a recorded request
    request: recorded/kn-routing.yaml      # a CSR or PCR manifest, relative to this file
    expect: deny
    reasonContains: kn-routing
```

The format is a contract with users (docs/policies.md, "Testing a change"):
unknown fields are errors, and a malformed file is reported `file:line: field:
problem` by the policy loader's own YAML reading, with its limits. Files are
read and every request is built (`prepare`) before anything is decided, so a
broken suite never reports a partial result. Deciding goes through
`signer.commands.deciding`, the path `policy check` uses, so a test and a check
of the same request cannot disagree.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from signer.commands import CliError
from signer.commands.deciding import (
    NamespaceLabels,
    Verdict,
    decide_csr,
    decide_document,
    no_labels,
)
from signer.commands.inputs import POD_KIND, load_document, parse_csr_manifest, parse_pod_manifest
from signer.models import (
    AUTHENTICATED_GROUP,
    SERVICEACCOUNTS_GROUP,
    CsrRequest,
    Requester,
)
from signer.pki.requests import KEY_TYPES, KeyCache, RequestBuildError, RequestSpec, build_request
from signer.policy import PolicySet, Problem
from signer.policy.loader import (
    MAX_FILE_BYTES,
    POLICY_SUFFIXES,
    YamlDocument,
    read_yaml_documents,
)
from signer.policy.schema import LabelKey, LabelValue

Expect = Literal["approve", "deny", "abstain"]
KeyName = Literal["RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384", "Ed25519"]
assert set(get_args(KeyName)) == set(KEY_TYPES)


def _not_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


NonEmptyStr = Annotated[StrictStr, AfterValidator(_not_empty)]
Strs = tuple[StrictStr, ...]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
    )


class CsrCase(_Model):
    """A CertificateSigningRequest to build: who asks, for what, with which key."""

    signer_name: NonEmptyStr
    username: NonEmptyStr
    """As the apiserver records it; a ServiceAccount's groups are derived from it."""
    groups: Strs = ()
    """Added to the derived groups (the apiserver adds those for every token)."""
    dns_names: Strs = ()
    ip_addresses: Strs = ()
    uris: Strs = ()
    emails: Strs = ()
    common_name: StrictStr | None = None
    organizations: Strs = ()
    usages: Strs
    """spec.usages, as written: an unknown usage is the policy's to refuse."""
    key: KeyName = "ECDSA-P256"
    expiration_seconds: StrictInt | None = Field(default=None, ge=600)
    """spec.expirationSeconds; the apiserver refuses less than 600."""


class TestCase(_Model):
    """One test: a request (built or recorded) and the decision it must get."""

    name: NonEmptyStr
    csr: CsrCase | None = None
    request: NonEmptyStr | None = None
    """A recorded CSR or PCR manifest (YAML or JSON), relative to the test file."""
    expect: Expect
    reason_contains: NonEmptyStr | None = None
    """A substring that at least one of the decision's reasons must contain."""
    namespace_labels: dict[LabelKey, LabelValue] | None = None
    """The labels of the requester's namespace (default: `--namespace-labels`, else unknown)."""

    @model_validator(mode="after")
    def _one_request(self) -> TestCase:
        if (self.csr is None) == (self.request is None):
            raise ValueError("give exactly one of csr: (built) and request: (a recorded manifest)")
        return self


@dataclass(frozen=True, slots=True)
class Prepared:
    """A test ready to decide: every file read, every request built and parsed."""

    file: str
    line: int
    case: TestCase
    csr: CsrRequest | None
    """The built request, for a `csr:` test."""
    document: dict[str, Any] | None
    """The recorded manifest, for a `request:` test."""
    source: str
    """Where the request came from, for messages: the test's file:line or the manifest."""


@dataclass(frozen=True, slots=True)
class Result:
    test: Prepared
    verdict: Verdict
    failure: str | None
    """Why the test failed; None when it passed."""
    seconds: float

    @property
    def passed(self) -> bool:
        return self.failure is None


class SuiteError(Exception):
    """The suite is malformed: every problem, as `file:line: field: problem`."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def test_files(paths: Iterable[Path]) -> list[tuple[Path, bool]]:
    """Each file to read, and whether it was named (True) or found in a directory.

    A directory is searched recursively for `*.yaml`/`*.yml`, skipping dot
    files and directories; only found files that hold `tests:` are suites, so
    recorded manifests can sit next to them.
    """
    out: list[tuple[Path, bool]] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in POLICY_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            out += [(p, False) for p in found]
        elif path.is_file():
            out.append((path, True))
        else:
            raise CliError(f"{path}: no such file or directory")
    return out


def prepare(paths: Iterable[Path], keys: KeyCache) -> list[Prepared]:
    """Every test in `paths`, ready to decide; raises SuiteError listing every problem."""
    problems: list[Problem] = []
    prepared: list[Prepared] = []
    seen_suite = False
    for path, named in test_files(paths):
        before = len(problems)
        documents = _read(path, problems)
        if len(problems) > before:
            continue  # unreadable: reported, whether or not it was meant as a suite
        suites = [d for d in documents if "tests" in d.data]
        if not suites:
            if named:
                problems.append(Problem(str(path), None, "tests", "required field is missing"))
            continue
        seen_suite = True
        for document in suites:
            prepared += _prepare_document(path, document, keys, problems)
    if not problems and not seen_suite:
        where = ", ".join(str(p) for p in paths)
        problems.append(Problem(where, None, "", "no test files (*.yaml, *.yml with tests:)"))
    if problems:
        raise SuiteError(problems)
    return prepared


def _prepare_document(
    path: Path, document: YamlDocument, keys: KeyCache, problems: list[Problem]
) -> list[Prepared]:
    """The document's tests; each is validated on its own, so one bad test hides no other."""
    extra = sorted(set(document.data) - {"tests"})
    for key in extra:
        problems.append(document.problem((key,), "unknown field"))
    cases = document.data["tests"]
    if not isinstance(cases, list) or not cases:
        problems.append(document.problem(("tests",), "must be a non-empty list of tests"))
        return []
    out: list[Prepared] = []
    names: dict[str, int] = {}
    for index, raw in enumerate(cases):
        line, _ = document.locate(("tests", index))
        try:
            case = TestCase.model_validate(raw)
        except ValidationError as exc:
            problems.extend(document.problems(exc, ("tests", index)))
            continue
        if case.name in names:
            message = f"duplicate test name {case.name!r} (first at line {names[case.name]})"
            problems.append(document.problem(("tests", index, "name"), message))
            continue
        names[case.name] = line
        test = _prepare_case(
            path,
            line=line,
            index=index,
            case=case,
            document=document,
            keys=keys,
            problems=problems,
        )
        if test is not None:
            out.append(test)
    return out


def run(
    tests: Sequence[Prepared],
    policies: PolicySet,
    *,
    cluster_domain: str,
    namespace_labels: NamespaceLabels = no_labels,
) -> list[Result]:
    """Decide every test's request and compare with what it expects (no I/O)."""
    results: list[Result] = []
    for test in tests:
        started = time.perf_counter()
        own = test.case.namespace_labels
        labels = namespace_labels if own is None else (lambda _ns, own=own: own)
        if test.csr is not None:
            verdict = decide_csr(
                test.csr, policies, cluster_domain=cluster_domain, namespace_labels=labels
            )
        else:
            assert test.document is not None
            verdict = decide_document(
                test.document,
                test.source,
                policies,
                cluster_domain=cluster_domain,
                namespace_labels=labels,
            )
        seconds = time.perf_counter() - started
        results.append(Result(test, verdict, _failure(test.case, verdict), seconds))
    return results


def failure_line(result: Result) -> str:
    """One line for a failing test: where, its name, what was expected, what was decided."""
    test = result.test
    reasons = result.verdict.decision.summary() or "no reason"
    return f"{test.file}:{test.line}: {test.case.name}: {outcome(result)}: {reasons}"


def outcome(result: Result) -> str:
    """`expected X; decided Y (policy P)`, or `decided Y` for a test that passed."""
    decision = result.verdict.decision
    decided = f"decided {decision.outcome.value}"
    if decision.policy:
        decided += f" (policy {decision.policy})"
    return decided if result.failure is None else f"{result.failure}; {decided}"


def summary_line(results: Sequence[Result]) -> str:
    failed = sum(not r.passed for r in results)
    return f"{len(results) - failed} passed, {failed} failed"


def _failure(case: TestCase, verdict: Verdict) -> str | None:
    decision = verdict.decision
    wanted = case.reason_contains
    if decision.outcome.value != case.expect:
        return f"expected {case.expect}"
    if wanted is not None and not any(wanted in reason for reason in decision.reasons):
        return f"expected {case.expect} with a reason containing {wanted!r}"
    return None


def _read(path: Path, problems: list[Problem]) -> list[YamlDocument]:
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        problems.append(Problem(str(path), None, "", f"cannot read: {exc.strerror or exc}"))
        return []
    if len(data) > MAX_FILE_BYTES:
        problems.append(Problem(str(path), None, "", "larger than 1 MiB, the limit for a file"))
        return []
    return read_yaml_documents(str(path), data, problems, expected="a mapping with tests:")


def _prepare_case(
    path: Path,
    *,
    line: int,
    index: int,
    case: TestCase,
    document: YamlDocument,
    keys: KeyCache,
    problems: list[Problem],
) -> Prepared | None:
    file = str(path)
    if case.csr is not None:
        try:
            csr = _build_csr(case.csr, keys)
        except RequestBuildError as exc:
            problems.append(document.problem(("tests", index, "csr", exc.field), exc.message))
            return None
        return Prepared(file, line, case, csr, None, f"{file}:{line}")
    assert case.request is not None
    manifest = path.parent / case.request
    try:
        doc = _read_manifest(manifest)
    except CliError as exc:
        problems.append(document.problem(("tests", index, "request"), str(exc)))
        return None
    return Prepared(file, line, case, None, doc, str(manifest))


def _read_manifest(manifest: Path) -> dict[str, Any]:
    """The recorded manifest, checked as `decide_document` will read it (CliError if not)."""
    source = str(manifest)
    try:
        with manifest.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise CliError(f"{source}: larger than 1 MiB")
    doc = load_document(data, source)
    if doc.get("kind") == POD_KIND:
        parse_pod_manifest(doc, source)
    else:
        parse_csr_manifest(doc, source)
    return doc


def _build_csr(case: CsrCase, keys: KeyCache) -> CsrRequest:
    spec = RequestSpec(
        common_name=case.common_name,
        organizations=case.organizations,
        dns_names=case.dns_names,
        ip_addresses=case.ip_addresses,
        uris=case.uris,
        emails=case.emails,
    )
    pem = build_request(spec, keys.key(case.key))
    return CsrRequest(
        name="",
        signer_name=case.signer_name,
        request=pem,
        requester=Requester(
            username=case.username, groups=derived_groups(case.username, case.groups)
        ),
        usages=case.usages,
        expiration_seconds=case.expiration_seconds,
    )


def derived_groups(username: str, extra: Sequence[str]) -> tuple[str, ...]:
    """The groups the apiserver records for `username`'s token, then `extra`, each once.

    A ServiceAccount (`system:serviceaccount:NS:NAME`) is in `system:serviceaccounts`
    and `system:serviceaccounts:NS`; every authenticated user is in
    `system:authenticated`.
    """
    derived: list[str] = []
    sa = Requester(username=username).serviceaccount
    if sa is not None:
        derived += [SERVICEACCOUNTS_GROUP, f"{SERVICEACCOUNTS_GROUP}:{sa.namespace}"]
    derived.append(AUTHENTICATED_GROUP)
    return tuple(dict.fromkeys((*derived, *extra)))
