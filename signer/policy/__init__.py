"""The policy engine: which CSRs are approved, denied or left to a human.

Pure: nothing here talks to the API (import-linter enforces it), and only
`loader` touches files. The controller calls:

- `load_policies(directory) -> PolicySet`, at start and on every change of the
  policy files; `PolicyLoadError` lists every problem with file and line;
- `decide(request, policies, cluster_domain=...) -> Decision`, per CSR;
- `decide_pod(request, policies, cluster_domain=...) -> (Decision, PodGrant | None)`,
  per PodCertificateRequest, and `denied_reason(decision)` for its Denied condition.
"""

from signer.policy.decide import DEFAULT_CLUSTER_DOMAIN, decide
from signer.policy.loader import PolicyLoadError, Problem, bundled_policies_dir, load_policies
from signer.policy.pods import decide_pod, denied_reason
from signer.policy.policyset import PolicySet

__all__ = [
    "DEFAULT_CLUSTER_DOMAIN",
    "PolicyLoadError",
    "PolicySet",
    "Problem",
    "bundled_policies_dir",
    "decide",
    "decide_pod",
    "denied_reason",
    "load_policies",
]
