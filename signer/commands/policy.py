"""`csr-signer policy check|lint`: test policy changes before they ship.

`check` answers "what would the controller do with this CSR, and why?" with
the same `decide()` the controller runs (for a PodCertificateRequest manifest, the
same `decide_pod()`, and the names the certificate would carry); `lint` validates policy files the way
the controller loads them. Both are offline: no cluster needed.

Exit status is about the command, not the verdict: `check` exits 0 whenever
it reached a decision (approve, deny or abstain), so scripts read the verdict
from the output; it exits 2 with one line on stderr when the input or the
policies are unusable. `lint` exits 1 when it found problems.
"""

from __future__ import annotations

import argparse
import json
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
from signer.models import Decision, Outcome, PodGrant, Refusal, is_dns1123_subdomain
from signer.pki.podcerts import UNSUPPORTED_KEY_TYPE
from signer.policy import (
    DEFAULT_CLUSTER_DOMAIN,
    PolicyLoadError,
    PolicySet,
    bundled_policies_dir,
    decide,
    decide_pod,
    denied_reason,
    load_policies,
)


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
    """A PCR: the decision, the Denied reason the controller would write, the names."""
    request = parse_pod_manifest(doc, source)
    grant: PodGrant | None = None
    if isinstance(request, Refusal):
        decision = Decision(Outcome.DENY, reasons=(f"{UNSUPPORTED_KEY_TYPE}: {request.message}",))
        reason: str | None = UNSUPPORTED_KEY_TYPE
    else:
        decision, grant = decide_pod(request, policies, cluster_domain=args.cluster_domain)
        reason = denied_reason(decision) if decision.outcome is Outcome.DENY else None
    if args.output == "json":
        out = json.loads(_render_json(decision))
        out["deniedReason"] = reason
        out["dnsNames"] = list(grant.dns_names) if grant else []
        out["uris"] = list(grant.uris) if grant else []
        print(json.dumps(out, indent=2))
        return 0
    lines = [_render_text(decision)]
    if reason is not None:
        lines.append(f"denied reason: {reason}")
    if grant is not None:
        lines.append("issues:")
        lines += [f"  dnsName: {name}" for name in grant.dns_names]
        lines += [f"  uri: {uri}" for uri in grant.uris]
    print("\n".join(lines))
    return 0


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
