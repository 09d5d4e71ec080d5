"""decide(): the one pure entry point from a CSR to approve, deny or abstain.

The order of questions is the contract (docs/policies.md, "How a decision is
made"):

1. Does any policy govern the signer name? No: abstain. Another signer's CSRs
   are none of our business, whatever they contain.
2. Is spec.request a PKCS#10 request with a valid self-signature? No: deny.
3. Which policies apply to the requester? None: abstain, or deny if the
   signer's settings say `whenNoPolicyApplies: deny`.
4. Evaluate each applicable policy, in load order: the first that finds no
   violation approves; if none does, deny with every violation of every
   applicable policy, in that order.
"""

from __future__ import annotations

from collections.abc import Mapping

from signer.models import CsrRequest, CsrView, Decision, Outcome
from signer.pki.parsing import CsrParseError, parse_csr
from signer.policy.evaluation import RequestFacts, Violation, evaluate, quote
from signer.policy.matching import applicable
from signer.policy.policyset import PolicySet

DEFAULT_CLUSTER_DOMAIN = "cluster.local"


def decide(
    request: CsrRequest,
    policies: PolicySet,
    *,
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN,
    parsed: CsrView | None = None,
    namespace_labels: Mapping[str, str] | None = None,
) -> Decision:
    """Approve, deny or abstain on `request`, with every reason; never raises for a bad CSR.

    `parsed` is `parse_csr(request.request)` when the caller already has it (the
    controller parses once for deciding and signing); it is trusted as is.
    `namespace_labels` are the labels of the requester's namespace, None when
    they are unknown (not a ServiceAccount, or a namespace not seen).
    """
    signer_name = request.signer_name
    if not policies.governs(signer_name):
        return Decision(
            Outcome.ABSTAIN, reasons=(f"no policy governs signer {quote(signer_name)}",)
        )
    try:
        csr = parsed if parsed is not None else parse_csr(request.request)
    except CsrParseError as exc:
        message = str(exc)
        if not message.startswith("spec.request"):
            message = f"spec.request: {message}"
        return Decision(Outcome.DENY, reasons=(message,))

    candidates = applicable(policies, signer_name, request.requester, namespace_labels)
    if not candidates:
        outcome = policies.when_no_policy_applies(signer_name)
        reason = (
            f"no policy for signer {quote(signer_name)} applies to "
            f"requester {quote(request.requester.username)}"
        )
        if outcome is Outcome.DENY:
            reason += " and the signer's whenNoPolicyApplies is deny"
        return Decision(outcome, reasons=(reason,))

    facts = RequestFacts.of(
        request,
        csr,
        cluster_domain=cluster_domain,
        max_dns_names=policies.max_dns_names(signer_name),
        namespace_labels=namespace_labels,
    )
    violations: list[Violation] = []
    for policy in candidates:
        found = evaluate(policy, facts)
        if not found:
            return Decision(
                Outcome.APPROVE,
                policy=policy.name,
                reasons=(f"{policy.name}: approved: every requested value is allowed",),
            )
        violations.extend(found)
    return Decision(
        Outcome.DENY,
        # Naming one policy is only honest when exactly one was in play.
        policy=candidates[0].name if len(candidates) == 1 else None,
        reasons=tuple(str(v) for v in violations),
    )
