"""`csr-signer policy check|lint|test`: test policy changes before they ship.

`check` answers "what would the controller do with this CSR, and why?" with
the same `decide()` the controller runs (for a PodCertificateRequest manifest, the
controller's own `judge_pcr()`, the names the certificate would carry and a dry issuance
with a throwaway CA); `lint` validates policy files the way the controller loads them.
Both are offline: no cluster needed.

Exit status is about the command, not the verdict: `check` exits 0 whenever
it reached a decision (approve, deny or abstain), so scripts read the verdict
from the output; it exits 2 with one line on stderr when the input or the
policies are unusable. `lint` exits 1 when it found problems. `test` runs
suites (`signer.commands.suites`): exit 0 when every test passed, 1 when one
failed, 2 when a test file or the policies are unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from signer.commands import CliError, review, suites
from signer.commands.deciding import (
    Verdict,
    decide_document,
    load_policy_dir,
    parse_namespace_labels,
)
from signer.commands.inputs import POD_KIND, is_pem_csr, load_document, read_source
from signer.commands.junit import junit_xml
from signer.durations import parse_duration
from signer.models import Decision, Refusal, is_dns1123_subdomain
from signer.pki.ca import generate_root, load_ca
from signer.pki.podcerts import rfc3339
from signer.pki.requests import KeyCache
from signer.policy import (
    DEFAULT_CLUSTER_DOMAIN,
    PolicyLoadError,
    bundled_policies_dir,
    load_policies,
)
from signer.reactor.pods import PodVerdict, issue_for


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """Register `policy check` and `policy lint`."""
    group = sub.add_parser("policy", help="test and validate approval policies")
    commands = group.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="show the decision and every reason for a CSR or PCR manifest",
        description="Decide on a CertificateSigningRequest or a PodCertificateRequest "
        "(YAML or JSON, as `kubectl get csr|pcr NAME -o yaml` prints it) without a "
        "cluster; for a PodCertificateRequest also the names it would be issued. "
        "Exits 0 whatever the decision.",
    )
    check.add_argument("file", metavar="FILE", help="the CSR or PCR manifest, or - for stdin")
    check.add_argument(
        "--policies",
        type=Path,
        default=None,
        metavar="DIR",
        help="policy directory (default: the bundled policies)",
    )
    check.add_argument(
        "--cluster-domain",
        default=DEFAULT_CLUSTER_DOMAIN,
        help="value of {clusterDomain} in patterns (default: %(default)s)",
    )
    check.add_argument(
        "--max-duration",
        default="365d",
        metavar="DURATION",
        help="the controller's --max-duration, which caps a pod certificate's lifetime "
        "(default: %(default)s, the controller's default)",
    )
    check.add_argument("--output", choices=("text", "json"), default="text")
    _namespace_labels_flag(check)
    check.set_defaults(func=check_command)

    lint = commands.add_parser(
        "lint",
        help="validate policy files; print file:line: field: problem",
        description="Validate every policy file in DIR as the controller would "
        "load it. Exits 1 if there is any problem.",
    )
    lint.add_argument("directory", metavar="DIR", type=Path, nargs="?", default=None)
    lint.set_defaults(func=lint_command)

    test = commands.add_parser(
        "test",
        help="run policy test suites: each request must get the decision it expects",
        description="Run every test in PATH (a test file, or a directory searched for "
        "*.yaml/*.yml files holding tests:). Prints one line per failing test, then "
        "'N passed, M failed'. Exits 0 when every test passed, 1 when one failed, 2 when "
        "a test file or the policies are unusable.",
    )
    test.add_argument("paths", metavar="PATH", type=Path, nargs="+")
    test.add_argument(
        "--policies",
        type=Path,
        default=None,
        metavar="DIR",
        help="policy directory (default: the bundled policies)",
    )
    test.add_argument(
        "--cluster-domain",
        default=DEFAULT_CLUSTER_DOMAIN,
        help="value of {clusterDomain} in patterns (default: %(default)s)",
    )
    test.add_argument(
        "--junit", type=Path, default=None, metavar="FILE", help="also write JUnit XML to FILE"
    )
    _namespace_labels_flag(test)
    test.set_defaults(func=test_command)

    review.add_parsers(commands, _review_flags)


def _review_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster-domain",
        default=DEFAULT_CLUSTER_DOMAIN,
        help="value of {clusterDomain} in patterns (default: %(default)s)",
    )
    _namespace_labels_flag(parser)


def _namespace_labels_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace-labels",
        action="append",
        default=[],
        metavar="NS=KEY=VALUE,...",
        help="labels of the requesters' namespaces, for namespaceSelectors and CEL "
        "(repeatable; NS= for a namespace without labels; unlisted namespaces are unknown, "
        "as a namespace the controller has not seen)",
    )


def namespace_labels(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    try:
        return parse_namespace_labels(args.namespace_labels)
    except ValueError as exc:
        raise CliError(f"--namespace-labels: {exc}") from None


def check_command(args: argparse.Namespace) -> int:
    if not is_dns1123_subdomain(args.cluster_domain):
        raise CliError(f"--cluster-domain {args.cluster_domain!r} is not a lowercase DNS name")
    directory: Path = args.policies or bundled_policies_dir()
    policies = load_policy_dir(directory)
    data = read_source(args.file)
    source = "<stdin>" if args.file == "-" else args.file
    if is_pem_csr(data):
        raise CliError(
            f"{source}: a bare PEM CSR has no signer name or requester; "
            "pass the CertificateSigningRequest manifest (kubectl get csr NAME -o yaml)"
        )
    doc = load_document(data, source)
    labels = namespace_labels(args)
    verdict = decide_document(
        doc, source, policies, cluster_domain=args.cluster_domain, namespace_labels=labels.get
    )
    issuance: dict[str, str] = {}
    if verdict.pod is not None and verdict.pod.grant is not None:
        issuance = _dry_issue(verdict.pod, _max_duration(args.max_duration))
    print(_render(verdict, args.output, issuance))
    return 0


def _render(verdict: Verdict, output: str, issuance: dict[str, str] | None = None) -> str:
    """A CSR's decision; for a PCR also the Denied reason, the names it would carry and
    the dry issuance (`_dry_issue`)."""
    decision, grant = verdict.decision, verdict.grant
    if verdict.kind != POD_KIND:
        return _render_json(decision) if output == "json" else _render_text(decision)
    if output == "json":
        out = json.loads(_render_json(decision))
        out["deniedReason"] = verdict.denied_reason
        out["dnsNames"] = list(grant.dns_names) if grant else []
        out["uris"] = list(grant.uris) if grant else []
        out["issuance"] = issuance or None
        return json.dumps(out, indent=2)
    lines = [_render_text(decision)]
    if verdict.denied_reason is not None:
        lines.append(f"denied reason: {verdict.denied_reason}")
    if grant is not None:
        lines.append("issues:")
        lines += [f"  dnsName: {name}" for name in grant.dns_names]
        lines += [f"  uri: {uri}" for uri in grant.uris]
    issuance = issuance or {}
    if "refused" in issuance:
        lines.append(f"issuance refused ({issuance['refused']}): {issuance['message']}")
    else:
        lines += [f"  {field}: {value}" for field, value in issuance.items()]
    return "\n".join(lines)


def _max_duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise CliError(f"--max-duration: {exc}") from None


def _dry_issue(verdict: PodVerdict, max_duration: timedelta) -> dict[str, str]:
    """Sign with a throwaway CA (valid 10 years, so it never shortens the lifetime): the
    lifetime and refresh time the pod would get, or why issuance would fail."""
    now = datetime.now(UTC)
    cert, key = generate_root("csr-signer policy check (throwaway)", "ecdsa-p256", 3650, now)
    issued = issue_for(verdict, load_ca(cert, key, now=now), now=now, signer_max=max_duration)
    if isinstance(issued, Refusal):
        return {"refused": issued.reason, "message": issued.message}
    return {
        "notBefore": rfc3339(issued.not_before),
        "beginRefreshAt": rfc3339(issued.begin_refresh_at),
        "notAfter": rfc3339(issued.not_after),
    }


def test_command(args: argparse.Namespace) -> int:
    if not is_dns1123_subdomain(args.cluster_domain):
        raise CliError(f"--cluster-domain {args.cluster_domain!r} is not a lowercase DNS name")
    policies = load_policy_dir(args.policies or bundled_policies_dir())
    namespace_labels(args)  # a bad flag is exit 2 before any work
    try:
        tests = suites.prepare(args.paths, KeyCache())
    except suites.SuiteError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    results = suites.run(
        tests,
        policies,
        cluster_domain=args.cluster_domain,
        namespace_labels=namespace_labels(args).get,
    )
    for result in results:
        if not result.passed:
            print(suites.failure_line(result))
    print(suites.summary_line(results))
    if args.junit is not None:
        try:
            args.junit.write_bytes(junit_xml(results))
        except OSError as exc:
            raise CliError(f"cannot write {args.junit}: {exc.strerror or exc}") from None
    return 0 if all(r.passed for r in results) else 1


def lint_command(args: argparse.Namespace) -> int:
    directory: Path = args.directory or bundled_policies_dir()
    try:
        policies = load_policies(directory)
    except PolicyLoadError as exc:
        for problem in exc.problems:
            print(problem)
        count = len(exc.problems)
        print(f"{count} problem{'s' if count != 1 else ''} in {directory}")
        return 1
    print(
        f"{directory}: OK, {len(policies.policies)} policies "
        f"for {len(policies.signer_names)} signers"
    )
    return 0


def _render_text(decision: Decision) -> str:
    head = f"decision: {decision.outcome.value}"
    if decision.policy:
        head += f" (policy {decision.policy})"
    return "\n".join([head, *(f"  - {reason}" for reason in decision.reasons)])


def _render_json(decision: Decision) -> str:
    return json.dumps(
        {
            "decision": decision.outcome.value,
            "policy": decision.policy,
            "reasons": list(decision.reasons),
        },
        indent=2,
    )
