"""Which policies apply to a request: by signer name, then by requester. Pure.

A policy that does not apply says nothing about the request; only policies
that apply can approve or deny it. Identity comes only from spec.username and
spec.groups: a malformed ServiceAccount username (`system:serviceaccount:a`,
`system:serviceaccount:a:b:c`, an empty part) is not a ServiceAccount, so
ServiceAccount selectors never match it.
"""

from __future__ import annotations

from collections.abc import Mapping

from signer.models import Requester, ServiceAccountRef
from signer.policy.policyset import PolicySet
from signer.policy.schema import LabelSelector, Policy, Requesters

Labels = Mapping[str, str]


def applies_to(
    requesters: Requesters,
    requester: Requester,
    sa: ServiceAccountRef | None,
    namespace_labels: Labels | None = None,
) -> bool:
    """Whether any selector matches; `sa` is `requester.serviceaccount`, computed once.

    `namespace_labels` are the labels of `sa`'s namespace, None when unknown: a
    selector with a `namespaceSelector` then does not match (whatever its
    operators), so an unknown namespace never widens who a policy covers.
    """
    if sa is not None:
        for selector in requesters.service_accounts:
            if not any(p.matches(sa.namespace) for p in selector.namespaces):
                continue
            if selector.names is not None and not any(p.matches(sa.name) for p in selector.names):
                continue
            if selector.namespace_selector is None or (
                namespace_labels is not None
                and selects(selector.namespace_selector, namespace_labels)
            ):
                return True
    if requester.username in requesters.usernames:
        return True
    return any(group in requesters.groups for group in requester.groups)


def selects(selector: LabelSelector, labels: Labels) -> bool:
    """Kubernetes label selector semantics (apimachinery `labels.Selector.Matches`).

    Every `matchLabels` pair must be present; `In` needs the key with one of the
    values, `NotIn` matches a missing key or another value, `Exists` and
    `DoesNotExist` test the key only. An empty selector matches everything.
    """
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for requirement in selector.match_expressions:
        present = requirement.key in labels
        op = requirement.operator
        if op == "In":
            ok = present and labels[requirement.key] in requirement.values
        elif op == "NotIn":
            ok = not present or labels[requirement.key] not in requirement.values
        elif op == "Exists":
            ok = present
        else:
            ok = not present
        if not ok:
            return False
    return True


def applicable(
    policies: PolicySet,
    signer_name: str,
    requester: Requester,
    namespace_labels: Labels | None = None,
) -> tuple[Policy, ...]:
    """Policies governing `signer_name` that apply to `requester`, in load order."""
    sa = requester.serviceaccount
    return tuple(
        policy
        for policy in policies.policies_for(signer_name)
        if applies_to(policy.requesters, requester, sa, namespace_labels)
    )
