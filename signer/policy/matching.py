"""Which policies apply to a request: by signer name, then by requester. Pure.

A policy that does not apply says nothing about the request; only policies
that apply can approve or deny it. Identity comes only from spec.username and
spec.groups: a malformed ServiceAccount username (`system:serviceaccount:a`,
`system:serviceaccount:a:b:c`, an empty part) is not a ServiceAccount, so
ServiceAccount selectors never match it.
"""

from __future__ import annotations

from signer.models import Requester, ServiceAccountRef
from signer.policy.policyset import PolicySet
from signer.policy.schema import Policy, Requesters


def applies_to(requesters: Requesters, requester: Requester, sa: ServiceAccountRef | None) -> bool:
    """Whether any selector matches; `sa` is `requester.serviceaccount`, computed once."""
    if sa is not None:
        for selector in requesters.service_accounts:
            if not any(p.matches(sa.namespace) for p in selector.namespaces):
                continue
            if selector.names is None or any(p.matches(sa.name) for p in selector.names):
                return True
    if requester.username in requesters.usernames:
        return True
    return any(group in requesters.groups for group in requester.groups)


def applicable(policies: PolicySet, signer_name: str, requester: Requester) -> tuple[Policy, ...]:
    """Policies governing `signer_name` that apply to `requester`, in load order."""
    sa = requester.serviceaccount
    return tuple(
        policy
        for policy in policies.policies_for(signer_name)
        if applies_to(policy.requesters, requester, sa)
    )
