"""`serviceAccounts[].namespaceSelector`: Kubernetes label selector semantics, fail closed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from signer.models import Outcome
from signer.policy import decide
from signer.policy.matching import selects
from signer.policy.schema import LabelSelector
from tests.data.csrs import csr_request
from tests.unit.policy.conftest import TEST_SIGNER, one_policy

PROD = {"env": "prod", "team": "payments"}


def selector(**fields: Any) -> LabelSelector:
    return LabelSelector.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "labels", "selected"),
    [
        pytest.param({}, {}, True, id="an-empty-selector-selects-everything"),
        pytest.param({"matchLabels": {"env": "prod"}}, PROD, True, id="match-labels-equal"),
        pytest.param({"matchLabels": {"env": "dev"}}, PROD, False, id="match-labels-other-value"),
        pytest.param({"matchLabels": {"owner": "x"}}, PROD, False, id="match-labels-missing-key"),
        pytest.param(
            {"matchLabels": {"env": "prod", "team": "search"}},
            PROD,
            False,
            id="every-match-label-must-hold",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev", "prod"]}]},
            PROD,
            True,
            id="in-one-of-the-values",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "owner", "operator": "In", "values": ["x"]}]},
            PROD,
            False,
            id="in-needs-the-key",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
            PROD,
            False,
            id="not-in-refuses-a-listed-value",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "owner", "operator": "NotIn", "values": ["x"]}]},
            PROD,
            True,
            id="not-in-matches-a-missing-key",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
            PROD,
            True,
            id="exists",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]},
            PROD,
            False,
            id="does-not-exist",
        ),
        pytest.param(
            {
                "matchLabels": {"env": "prod"},
                "matchExpressions": [{"key": "team", "operator": "In", "values": ["search"]}],
            },
            PROD,
            False,
            id="labels-and-expressions-are-anded",
        ),
    ],
)
def test_label_selectors_have_the_kubernetes_semantics(
    fields: dict[str, Any], labels: dict[str, str], selected: bool
) -> None:
    assert selects(selector(**fields), labels) is selected


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "In"}]},
            "values must not be empty for operator In",
            id="in-without-values",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "Exists", "values": ["a"]}]},
            "values must be empty for operator Exists",
            id="exists-with-values",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "Equals", "values": ["a"]}]},
            "Input should be 'In', 'NotIn', 'Exists' or 'DoesNotExist'",
            id="an-unknown-operator",
        ),
        pytest.param(
            {"matchLabels": {"-bad": "x"}}, "is not a valid label key", id="a-bad-label-key"
        ),
        pytest.param(
            {"matchLabels": {"Example.com/team": "x"}},
            "is not a valid label key",
            id="an-upper-case-prefix",
        ),
        pytest.param(
            {"matchLabels": {"team": "a b"}}, "is not a valid label value", id="a-bad-label-value"
        ),
        pytest.param({"matchLabel": {"team": "a"}}, "Extra inputs", id="a-misspelt-field"),
    ],
)
def test_an_invalid_selector_is_a_load_error(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        selector(**fields)


def test_valid_keys_and_values() -> None:
    selects(selector(matchLabels={"example.com/team": "a_b.c-d", "kubernetes.io/x": ""}), {})


POLICY = one_policy(
    requesters={
        "serviceAccounts": [
            {
                "namespaces": ["{label}"],
                "namespaceSelector": {"matchLabels": {"env": "prod"}},
            }
        ]
    },
    allowed={"dnsNames": ["{label}.{namespace}.svc"]},
)


@pytest.mark.parametrize(
    ("labels", "outcome"),
    [
        pytest.param({"env": "prod"}, Outcome.APPROVE, id="a-selected-namespace-is-covered"),
        pytest.param({"env": "dev"}, Outcome.ABSTAIN, id="another-namespace-is-not"),
        pytest.param(None, Outcome.ABSTAIN, id="unknown-labels-never-select"),
    ],
)
def test_the_selector_decides_whether_the_policy_applies(
    labels: dict[str, str] | None, outcome: Outcome
) -> None:
    request = csr_request(
        signer_name=TEST_SIGNER,
        username="system:serviceaccount:shop:web",
        dns_names=["web.shop.svc"],
    )
    assert decide(request, POLICY, namespace_labels=labels).outcome is outcome
