"""`csr-signer policy check|lint`: test policy changes before they ship.

`check` answers "what would the controller do with this CSR, and why?" with
the same `decide()` the controller runs (for a PodCertificateRequest manifest, the
controller's own `judge_pcr()`, the names the certificate would carry and a dry issuance
with a throwaway CA); `lint` validates policy files the way the controller loads them. Both are offline: no cluster needed.

Exit status is about the command, not the verdict: `check` exits 0 whenever
it reached a decision (approve, deny or abstain), so scripts read the verdict
from the output; it exits 2 with one line on stderr when the input or the
policies are unusable. `lint` exits 1 when it found problems.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from signer.commands import CliError
from signer.commands.inputs import (
    POD_KIND,
    is_pem_csr,
    load_document,
    parse_csr_manifest,
    parse_pod_manifest,
    read_source,
)
from signer.durations import parse_duration
from signer.models import Decision, Refusal, is_dns1123_subdomain
from signer.pki.ca import generate_root, load_ca
from signer.pki.podcerts import rfc3339
from signer.policy import (
    DEFAULT_CLUSTER_DOMAIN,
    PolicyLoadError,
    PolicySet,
    bundled_policies_dir,
    decide,
    load_policies,
)
from signer.reactor.pods import PodVerdict, issue_for, judge_pcr


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
    check.set_defaults(func=check_command)

    lint = commands.add_parser(
        "lint",
        help="validate policy files; print file:line: field: problem",
        description="Validate every policy file in DIR as the controller would "
        "load it. Exits 1 if there is any problem.",
    )
    lint.add_argument("directory", metavar="DIR", type=Path, nargs="?", default=None)
    lint.set_defaults(func=lint_command)


def check_command(args: argparse.Namespace) -> int:
    if not is_dns1123_subdomain(args.cluster_domain):
        raise CliError(f"--cluster-domain {args.cluster_domain!r} is not a lowercase DNS name")
    directory: Path = args.policies or bundled_policies_dir()
    policies = _load(directory)
    data = read_source(args.file)
    source = "<stdin>" if args.file == "-" else args.file
    if is_pem_csr(data):
        raise CliError(
            f"{source}: a bare PEM CSR has no signer name or requester; "
            "pass the CertificateSigningRequest manifest (kubectl get csr NAME -o yaml)"
        )
    doc = load_document(data, source)
    if doc.get("kind") == POD_KIND:
        return _check_pod(doc, source, policies, args)
    request = parse_csr_manifest(doc, source)
    decision = decide(request, policies, cluster_domain=args.cluster_domain)
    print(_render_json(decision) if args.output == "json" else _render_text(decision))
    return 0


def _check_pod(doc: dict[str, Any], source: str, policies: PolicySet, args: Any) -> int:
    """A PCR: the controller's verdict (`judge_pcr`), the Denied reason it would write,
    the names, and a dry issuance with a throwaway CA: the lifetime the pod would get, or
    why issuance would fail (LifetimeTooShort, a key under the floor)."""
    parse_pod_manifest(doc, source)  # a manifest we cannot read is an input error (exit 2)
    verdict = judge_pcr(doc, policies, cluster_domain=args.cluster_domain)
    grant = verdict.grant
    issuance: dict[str, str] = {}
    if grant is not None:
        issuance = _dry_issue(verdict, _max_duration(args.max_duration))
    if args.output == "json":
        out = json.loads(_render_json(verdict.decision))
        out["deniedReason"] = verdict.denied_reason
        out["dnsNames"] = list(grant.dns_names) if grant else []
        out["uris"] = list(grant.uris) if grant else []
        out["issuance"] = issuance or None
        print(json.dumps(out, indent=2))
        return 0
    lines = [_render_text(verdict.decision)]
    if verdict.denied_reason is not None:
        lines.append(f"denied reason: {verdict.denied_reason}")
    if grant is not None:
        lines.append("issues:")
        lines += [f"  dnsName: {name}" for name in grant.dns_names]
        lines += [f"  uri: {uri}" for uri in grant.uris]
        if "refused" in issuance:
            lines.append(f"issuance refused ({issuance['refused']}): {issuance['message']}")
        else:
            lines += [f"  {field}: {value}" for field, value in issuance.items()]
    print("\n".join(lines))
    return 0


def _max_duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise CliError(f"--max-duration: {exc}") from None


def _dry_issue(verdict: PodVerdict, max_duration: timedelta) -> dict[str, str]:
    """Sign with a throwaway CA (valid 10 years, so it never shortens the lifetime)."""
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


def _load(directory: Path) -> PolicySet:
    try:
        return load_policies(directory)
    except PolicyLoadError as exc:
        count = len(exc.problems)
        more = f" (and {count - 1} more; run `csr-signer policy lint {directory}`)"
        raise CliError(f"invalid policies: {exc.problems[0]}{more if count > 1 else ''}") from None


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
