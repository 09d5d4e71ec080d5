"""`policy explain` and `policy diff`: why a live object got its decision, and what a
policy change would change.

Both decide with `signer.commands.deciding`, the path `policy check` and
`policy test` use (the controller's own `decide()` / `decide_pod()`), on the raw
objects read through the user's kubeconfig (`signer.kube.reading`).

- `explain NAME` prints what the policies decide now, and why, next to what
  the controller recorded on the object (its conditions and Events), and says
  whether the two agree.
- `diff --old DIR --new DIR` decides each request (manifest files, or every
  CSR and PCR in the cluster) under both policy sets and lists each one whose
  decision or reasons change: the review of a policy pull request. Exit 0 when
  nothing changes, 1 when something does (as `diff`), 2 when it could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from signer.commands import CliError
from signer.commands.deciding import (
    CSR_KIND,
    Verdict,
    decide_document,
    load_policy_dir,
    parse_namespace_labels,
)
from signer.commands.inputs import POD_KIND, load_document, read_source
from signer.kube.client import make_api_client
from signer.kube.errors import ApiError
from signer.kube.reading import (
    all_namespace_labels,
    all_requests,
    configmap_files,
    events_about,
    namespace_labels,
    read_csr,
    read_pcr,
)
from signer.models import Outcome, Requester
from signer.policy import PolicySet, bundled_policies_dir

RECORDED = {"Approved": "approve", "Issued": "approve", "Denied": "deny", "Failed": "failed"}
"""A recorded condition -> the outcome it stands for (Failed: approved, not issued)."""


def add_parsers(commands: argparse._SubParsersAction[Any], common: Any) -> None:
    """Register `explain` and `diff` under `policy`; `common(parser)` adds the shared flags."""
    explain = commands.add_parser(
        "explain",
        help="why a live CSR or PCR got its decision: the policies now vs what was recorded",
        description="Read a CertificateSigningRequest (NAME) or a PodCertificateRequest "
        "(NAMESPACE/NAME, with --kind pcr) through the kubeconfig; print what the policies "
        "decide now and why, next to the conditions and Events the controller recorded.",
    )
    explain.add_argument("name", metavar="NAME")
    explain.add_argument("--kind", choices=("csr", "pcr"), default="csr")
    source = explain.add_mutually_exclusive_group()
    source.add_argument("--policies", type=Path, default=None, metavar="DIR")
    source.add_argument(
        "--from-configmap",
        default=None,
        metavar="NS/NAME",
        help="the policies in a ConfigMap (as the chart mounts them)",
    )
    explain.add_argument("--kubeconfig", type=Path, default=None, metavar="PATH")
    common(explain)
    explain.set_defaults(func=explain_command)

    diff = commands.add_parser(
        "diff",
        help="the requests whose decision or reasons change between two policy sets",
        description="Decide each request (manifest FILES, which may be Lists, or with "
        "--from-cluster every CSR and PCR in the cluster) under --old and --new policies "
        "and list each whose decision or reasons change. Exits 0 when none does, 1 when "
        "one does, 2 when it cannot run.",
    )
    diff.add_argument("files", metavar="FILE", nargs="*")
    diff.add_argument("--old", type=Path, required=True, metavar="DIR")
    diff.add_argument("--new", type=Path, required=True, metavar="DIR")
    diff.add_argument(
        "--from-cluster",
        action="store_true",
        help="also every CSR and PCR in the cluster (and its namespaces' labels)",
    )
    diff.add_argument("--kubeconfig", type=Path, default=None, metavar="PATH")
    common(diff)
    diff.set_defaults(func=diff_command)


# -- explain ---------------------------------------------------------------------------


def explain_command(args: argparse.Namespace) -> int:
    if args.kind == "pcr" and args.name.count("/") != 1:
        raise CliError("a PodCertificateRequest is named NAMESPACE/NAME")
    lines = asyncio.run(_explain(args))
    print("\n".join(lines))
    return 0


async def _explain(args: argparse.Namespace) -> list[str]:
    api = await _client(args.kubeconfig)
    try:
        if args.from_configmap:
            policies = await _configmap_policies(api, args.from_configmap)
            where = f"configmap {args.from_configmap}"
        else:
            directory = args.policies or bundled_policies_dir()
            policies = load_policy_dir(directory)
            where = str(directory)
        try:
            if args.kind == "pcr":
                namespace, name = args.name.split("/")
                raw = await read_pcr(api, namespace, name)
                raw.setdefault("kind", POD_KIND)
            else:
                raw = await read_csr(api, args.name)
                raw.setdefault("kind", CSR_KIND)
        except ApiError as exc:
            raise CliError(f"cannot read {args.kind} {args.name}: {exc}") from None
        namespace = _requester_namespace(raw)
        labels = await namespace_labels(api, namespace) if namespace else None
        given = _flag_labels(args)
        if namespace and namespace in given:
            labels = given[namespace]
        uid = str((raw.get("metadata") or {}).get("uid") or "")
        events = await events_about(api, uid) if uid else []
    finally:
        await api.close()
    verdict = decide_document(
        raw,
        f"{args.kind}/{args.name}",
        policies,
        cluster_domain=args.cluster_domain,
        namespace_labels=lambda ns: labels if ns == namespace else None,
    )
    return _explanation(
        raw, verdict, events=events, where=where, namespace=namespace, labels=labels
    )


def _explanation(
    raw: dict[str, Any],
    verdict: Verdict,
    *,
    events: list[dict[str, Any]],
    where: str,
    namespace: str | None,
    labels: Mapping[str, str] | None,
) -> list[str]:
    spec = raw.get("spec") or {}
    kind = "pcr" if verdict.kind == POD_KIND else "csr"
    metadata = raw.get("metadata") or {}
    name = metadata.get("name", "")
    if kind == "pcr":
        name = f"{metadata.get('namespace', '')}/{name}"
        who = f"system:serviceaccount:{metadata.get('namespace')}:{spec.get('serviceAccountName')}"
    else:
        who = str(spec.get("username", ""))
    lines = [f"{kind}/{name}: signer {spec.get('signerName')}, requester {who}"]
    if namespace:
        shown = (
            "unknown (namespace not found or not readable)"
            if labels is None
            else ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "none"
        )
        lines.append(f"namespace {namespace} labels: {shown}")
    decision = verdict.decision
    head = f"now ({where}): {decision.outcome.value}"
    if decision.policy:
        head += f" (policy {decision.policy})"
    lines.append(head)
    lines += [f"  - {reason}" for reason in decision.reasons]
    if verdict.grant is not None:
        lines += [f"  issues dnsName: {n}" for n in verdict.grant.dns_names]
        lines += [f"  issues uri: {u}" for u in verdict.grant.uris]
    conditions = (raw.get("status") or {}).get("conditions") or []
    lines.append("recorded:" if conditions else "recorded: no condition (pending)")
    for c in conditions:
        when = c.get("lastUpdateTime") or c.get("lastTransitionTime")
        line = f"  {c.get('type')} {c.get('reason', '')}: {c.get('message', '')}"
        lines.append(f"{line} ({when})" if when else line)
    lines.append("events:" if events else "events: none")
    for e in events:
        when = e.get("lastTimestamp") or e.get("eventTime")
        line = f"  {e.get('type')} {e.get('reason')}: {e.get('message', '')}"
        lines.append(f"{line} ({when})" if when else line)
    lines.append(_agreement(conditions, decision.outcome))
    return lines


def _agreement(conditions: list[dict[str, Any]], now: Outcome) -> str:
    recorded = [RECORDED[c["type"]] for c in conditions if c.get("type") in RECORDED]
    if not recorded:
        if now is Outcome.ABSTAIN:
            return "agrees: nothing recorded, and the policies leave it to a human"
        return f"differs: nothing recorded yet, the policies now {now.value}"
    decided = "deny" if "deny" in recorded else "approve"
    if decided == now.value:
        return f"agrees: recorded {decided}, the policies now {now.value}"
    return f"differs: recorded {decided}, the policies now {now.value}"


# -- diff -------------------------------------------------------------------------------


def diff_command(args: argparse.Namespace) -> int:
    if not args.files and not args.from_cluster:
        raise CliError("give manifest FILEs, --from-cluster, or both")
    old, new = load_policy_dir(args.old), load_policy_dir(args.new)
    documents = [item for path in args.files for item in _documents(path)]
    labels = _flag_labels(args)
    if args.from_cluster:
        live, cluster_labels = asyncio.run(_cluster(args.kubeconfig))
        documents += [(f"{_kind(raw)}/{_name(raw)}", raw) for raw in live]
        labels = {**cluster_labels, **labels}
    changed = 0
    for source, doc in documents:
        before = decide_document(
            doc, source, old, cluster_domain=args.cluster_domain, namespace_labels=labels.get
        )
        after = decide_document(
            doc, source, new, cluster_domain=args.cluster_domain, namespace_labels=labels.get
        )
        lines = _difference(source, before, after)
        if lines:
            changed += 1
            print("\n".join(lines))
    print(f"{len(documents)} requests, {changed} changed")
    return 1 if changed else 0


def _difference(source: str, before: Verdict, after: Verdict) -> list[str]:
    a, b = before.decision, after.decision
    if (a.outcome, a.policy, a.reasons) == (b.outcome, b.policy, b.reasons):
        return []
    lines = [f"{source}: {_outcome(before)} -> {_outcome(after)}"]
    lines += [f"  - {r}" for r in a.reasons if r not in b.reasons]
    lines += [f"  + {r}" for r in b.reasons if r not in a.reasons]
    return lines


def _outcome(verdict: Verdict) -> str:
    decision = verdict.decision
    return (
        f"{decision.outcome.value} (policy {decision.policy})"
        if decision.policy
        else (decision.outcome.value)
    )


def _documents(path: str) -> list[tuple[str, dict[str, Any]]]:
    """The requests in a manifest file: one object, or the items of a List."""
    doc = load_document(read_source(path), path)
    if doc.get("kind") == "List" or isinstance(doc.get("items"), list):
        items = [i for i in doc.get("items") or [] if isinstance(i, dict)]
        return [(f"{path}: {_kind(i)}/{_name(i)}", i) for i in items]
    return [(path, doc)]


async def _cluster(kubeconfig: Path | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    api = await _client(kubeconfig)
    try:
        return await all_requests(api), await all_namespace_labels(api)
    except ApiError as exc:
        raise CliError(f"cannot list requests: {exc}") from None
    finally:
        await api.close()


# -- shared -----------------------------------------------------------------------------


async def _client(kubeconfig: Path | None) -> Any:
    try:
        return await make_api_client(kubeconfig)
    except Exception as exc:  # no kubeconfig, a broken one: one line, not a traceback
        raise CliError(f"cannot load the kubeconfig: {exc}") from None


async def _configmap_policies(api: Any, ref: str) -> PolicySet:
    namespace, _, name = ref.partition("/")
    if not namespace or not name:
        raise CliError("--from-configmap is NAMESPACE/NAME")
    try:
        files = await configmap_files(api, namespace, name)
    except ApiError as exc:
        raise CliError(f"cannot read configmap {ref}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="csr-signer-policies-") as tmp:
        for file_name, content in files.items():
            if "/" in file_name or file_name.startswith("."):
                continue
            (Path(tmp) / file_name).write_text(content)
        return load_policy_dir(Path(tmp))


def _flag_labels(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    try:
        return parse_namespace_labels(args.namespace_labels)
    except ValueError as exc:
        raise CliError(f"--namespace-labels: {exc}") from None


def _requester_namespace(raw: dict[str, Any]) -> str | None:
    if raw.get("kind") == POD_KIND:
        return str((raw.get("metadata") or {}).get("namespace") or "") or None
    sa = Requester(username=str((raw.get("spec") or {}).get("username", ""))).serviceaccount
    return sa.namespace if sa else None


def _kind(raw: dict[str, Any]) -> str:
    return "pcr" if raw.get("kind") == POD_KIND else "csr"


def _name(raw: dict[str, Any]) -> str:
    metadata = raw.get("metadata") or {}
    name = str(metadata.get("name", ""))
    return f"{metadata['namespace']}/{name}" if metadata.get("namespace") else name
