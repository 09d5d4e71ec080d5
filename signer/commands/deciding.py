"""One offline decision path for every command that re-decides a request.

`policy check`, `policy test` (and anything else that answers "what would the
controller do with this object?") go through `decide_document`, which calls the
controller's own `decide()` for a CertificateSigningRequest and `judge_pcr()` (the PCR
reconciler's first step) for a PodCertificateRequest. Keeping this in one place is what guarantees the
commands cannot disagree with each other, or with the controller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signer.commands import CliError
from signer.commands.inputs import POD_KIND, parse_csr_manifest, parse_pod_manifest
from signer.models import CsrRequest, Decision, PodGrant
from signer.policy import PolicyLoadError, PolicySet, decide, load_policies
from signer.reactor.pods import PodVerdict, judge_pcr


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision on one object, with what a PodCertificateRequest adds to it."""

    kind: str
    """`CertificateSigningRequest` or `PodCertificateRequest`."""
    decision: Decision
    grant: PodGrant | None = None
    """The names an approved PodCertificateRequest would be issued."""
    denied_reason: str | None = None
    """The Denied condition's reason the controller would write for a PCR."""
    pod: PodVerdict | None = None
    """For a PCR: the controller's own verdict (`judge_pcr`), key included."""


CSR_KIND = "CertificateSigningRequest"

NamespaceLabels = Callable[[str], Mapping[str, str] | None]
"""A namespace's labels, None when unknown (as the controller's namespace watch answers)."""


def load_policy_dir(directory: Path) -> PolicySet:
    """The policies in `directory`, or a CliError naming the first problem.

    One message for every command: the first problem, and how many more.
    """
    try:
        return load_policies(directory)
    except PolicyLoadError as exc:
        count = len(exc.problems)
        more = f" (and {count - 1} more; run `csr-signer policy lint {directory}`)"
        raise CliError(f"invalid policies: {exc.problems[0]}{more if count > 1 else ''}") from None


def no_labels(_namespace: str) -> Mapping[str, str] | None:
    """Every namespace unknown: `namespaceSelector`s select nobody."""
    return None


def decide_document(
    doc: dict[str, Any],
    source: str,
    policies: PolicySet,
    *,
    cluster_domain: str,
    namespace_labels: NamespaceLabels = no_labels,
) -> Verdict:
    """The controller's decision on a manifest; raises CliError when it is unusable."""
    if doc.get("kind") == POD_KIND:
        parse_pod_manifest(doc, source)  # a manifest we cannot read is a CliError
        namespace = str((doc.get("metadata") or {}).get("namespace") or "")
        # The controller's own steps, in its order: an ungoverned signer abstains before
        # the key is read; an unreadable key is Denied UnsupportedKeyType before policy.
        pod = judge_pcr(
            doc,
            policies,
            cluster_domain=cluster_domain,
            namespace_labels=namespace_labels(namespace),
        )
        return Verdict(POD_KIND, pod.decision, pod.grant, pod.denied_reason, pod)
    return decide_csr(
        parse_csr_manifest(doc, source),
        policies,
        cluster_domain=cluster_domain,
        namespace_labels=namespace_labels,
    )


def decide_csr(
    request: CsrRequest,
    policies: PolicySet,
    *,
    cluster_domain: str,
    namespace_labels: NamespaceLabels = no_labels,
) -> Verdict:
    """`decide()` on a CSR already read, as a Verdict."""
    sa = request.requester.serviceaccount
    labels = namespace_labels(sa.namespace) if sa is not None else None
    return Verdict(
        CSR_KIND,
        decide(request, policies, cluster_domain=cluster_domain, namespace_labels=labels),
    )


def parse_namespace_labels(values: list[str]) -> dict[str, dict[str, str]]:
    """`--namespace-labels` values (`ns=k=v,ns=k2=v2,other=`) -> namespace -> labels.

    `ns=` alone makes a namespace known with no labels. Raises ValueError naming
    the item that is neither form.
    """
    out: dict[str, dict[str, str]] = {}
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            namespace, first, label = item.partition("=")
            key, equals, label_value = label.partition("=")
            if not namespace or not first or (label and (not key or not equals)):
                raise ValueError(f"{item!r} is not NAMESPACE=KEY=VALUE (or NAMESPACE= for none)")
            labels = out.setdefault(namespace, {})
            if label:
                labels[key] = label_value
    return out
