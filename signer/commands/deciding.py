"""One offline decision path for every command that re-decides a request.

`policy check`, `policy test` (and anything else that answers "what would the
controller do with this object?") go through `decide_document`, which calls the
controller's own `decide()` for a CertificateSigningRequest and `decide_pod()` for
a PodCertificateRequest. Keeping this in one place is what guarantees the
commands cannot disagree with each other, or with the controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from signer.commands.inputs import POD_KIND, parse_csr_manifest, parse_pod_manifest
from signer.models import CsrRequest, Decision, Outcome, PodGrant, Refusal
from signer.pki.podcerts import UNSUPPORTED_KEY_TYPE
from signer.policy import PolicySet, decide, decide_pod, denied_reason


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


CSR_KIND = "CertificateSigningRequest"


def decide_document(
    doc: dict[str, Any], source: str, policies: PolicySet, *, cluster_domain: str
) -> Verdict:
    """The controller's decision on a manifest; raises CliError when it is unusable."""
    if doc.get("kind") == POD_KIND:
        request = parse_pod_manifest(doc, source)
        if isinstance(request, Refusal):
            # The controller Denies a key it cannot read with this reason, before any policy.
            decision = Decision(
                Outcome.DENY, reasons=(f"{UNSUPPORTED_KEY_TYPE}: {request.message}",)
            )
            return Verdict(POD_KIND, decision, None, UNSUPPORTED_KEY_TYPE)
        decision, grant = decide_pod(request, policies, cluster_domain=cluster_domain)
        reason = denied_reason(decision) if decision.outcome is Outcome.DENY else None
        return Verdict(POD_KIND, decision, grant, reason)
    return decide_csr(parse_csr_manifest(doc, source), policies, cluster_domain=cluster_domain)


def decide_csr(request: CsrRequest, policies: PolicySet, *, cluster_domain: str) -> Verdict:
    """`decide()` on a CSR already read, as a Verdict."""
    return Verdict(CSR_KIND, decide(request, policies, cluster_domain=cluster_domain))
