"""Shared fixtures: the bundled policies and small policy builders."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from signer.policy import PolicySet, bundled_policies_dir, load_policies
from signer.policy.schema import PolicyDocument

KNATIVE = "csr-signer.dev/knative-internal"
CLUSTER_LOCAL = "csr-signer.dev/cluster-local"
TEST_SIGNER = "example.com/test"


@pytest.fixture(scope="session")
def bundled() -> PolicySet:
    return load_policies(bundled_policies_dir())


def policy_set(text: str) -> PolicySet:
    """A PolicySet from inline YAML, validated by the real schema (no file I/O)."""
    doc = PolicyDocument.model_validate(yaml.safe_load(text))
    return PolicySet.of(doc.policies, doc.signers)


def one_policy(**fields: Any) -> PolicySet:
    """One policy for TEST_SIGNER applying to every ServiceAccount; fields override."""
    policy: dict[str, Any] = {
        "name": "test",
        "signerNames": [TEST_SIGNER],
        "requesters": {"serviceAccounts": [{"namespaces": ["{label}"]}]},
    }
    policy.update(fields)
    doc = PolicyDocument.model_validate({"policies": [policy]})
    return PolicySet.of(doc.policies, doc.signers)
