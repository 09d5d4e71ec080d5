"""`celRules`: load-time checks at file:line, the variables, and evaluation failing closed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from signer.models import KeyInfo, Outcome, PodRequest
from signer.policy import PolicyLoadError, decide, decide_pod, load_policies
from signer.policy.celrules import MAX_EXPRESSION_LENGTH, MAX_LIST_ITEMS, MAX_RULES
from tests.data.csrs import csr_request
from tests.unit.policy.conftest import TEST_SIGNER, one_policy

SA = "system:serviceaccount:shop:web"


def cel_policy(*rules: str | dict[str, Any], **fields: Any) -> Any:
    """One policy for TEST_SIGNER with these celRules (a string is an expression)."""
    fields.setdefault(
        "allowed",
        {
            "dnsNames": ["{label}.{namespace}.svc", "{label}.example"],
            "ipRanges": ["10.0.0.0/8"],
            "uris": ["spiffe://td/{label}"],
            "emails": ["{label}@example.com"],
            "subject": {"organizations": ["{label}"]},
        },
    )
    return one_policy(
        celRules=[r if isinstance(r, dict) else {"expression": r} for r in rules], **fields
    )


def request(**kwargs: Any) -> Any:
    fields: dict[str, Any] = {
        "signer_name": TEST_SIGNER,
        "username": SA,
        "dns_names": ["web.shop.svc"],
    }
    fields.update(kwargs)
    return csr_request(**fields)


# Every documented variable, as a rule that is true for `FULL` and only for it.
VARIABLES = [
    "request.kind == 'CSR'",
    "request.dnsNames == ['web.shop.svc', 'a.example']",
    "request.ipAddresses == ['10.1.2.3']",
    "request.uris == ['spiffe://td/web']",
    "request.emails == ['ops@example.com']",
    "request.commonName == 'web.shop.svc'",
    "request.organizations == ['acme']",
    "request.usages == ['digital signature', 'server auth']",
    "request.key.algorithm == 'ECDSA' && request.key.size == 384 && request.key.curve == 'P-384'",
    "request.key == {'algorithm': 'ECDSA', 'size': 384, 'curve': 'P-384'}",
    "request.key.size == 384",
    "request.expirationSeconds == 3600",
    "requester.username == 'system:serviceaccount:shop:web'",
    "'system:serviceaccounts:shop' in requester.groups && 'admins' in requester.groups",
    "requester.namespace == 'shop' && requester.serviceAccount == 'web'",
    "requester.namespaceLabels == {'team': 'payments'}",
]
FULL: dict[str, Any] = {
    "dns_names": ["web.shop.svc", "a.example"],
    "ip_addresses": ["10.1.2.3"],
    "uris": ["spiffe://td/web"],
    "emails": ["ops@example.com"],
    "common_name": "web.shop.svc",
    "organizations": ["acme"],
    "usages": ("digital signature", "server auth"),
    "key_type": "ecdsa-p384",
    "expiration_seconds": 3600,
    "groups": (
        "system:serviceaccounts",
        "system:serviceaccounts:shop",
        "system:authenticated",
        "admins",
    ),
}


@pytest.mark.parametrize("expression", VARIABLES)
def test_each_variable_holds_the_documented_value(expression: str) -> None:
    policies = cel_policy(expression)
    decision = decide(request(**FULL), policies, namespace_labels={"team": "payments"})
    assert decision.outcome is Outcome.APPROVE, decision.reasons


def test_defaults_when_the_request_sets_nothing() -> None:
    """No CN, no expiration, no labels known, not a ServiceAccount: empty values, not errors."""
    policies = one_policy(
        requesters={"usernames": ["alice"]},
        celRules=[
            {
                "expression": "request.commonName == '' && request.expirationSeconds == 0 "
                "&& requester.namespace == '' && requester.serviceAccount == '' "
                "&& requester.namespaceLabels == {} && request.key.algorithm == 'RSA' "
                "&& request.key.curve == '' && request.key.size == 2048"
            }
        ],
        allowed={"dnsNames": ["x.example"]},
    )
    decision = decide(
        request(username="alice", dns_names=["x.example"], key_type="rsa-2048"), policies
    )
    assert decision.outcome is Outcome.APPROVE, decision.reasons


@pytest.mark.parametrize(
    ("rule", "labels", "reason"),
    [
        pytest.param(
            {"expression": "request.dnsNames.all(n, n.endsWith('.example'))", "message": "x"},
            None,
            "test: celRules[0]: x",
            id="a-false-rule-is-a-violation-with-its-message",
        ),
        pytest.param(
            "size(request.dnsNames) > 5",
            None,
            'test: celRules[0]: "size(request.dnsNames) > 5" is false',
            id="without-a-message-the-reason-quotes-the-expression",
        ),
        pytest.param(
            "requester.namespaceLabels['team'] == 'payments'",
            {},
            "test: celRules[0]: could not be evaluated: ",
            id="a-rule-that-fails-at-run-time-denies",
        ),
        pytest.param(
            "requester.namespaceLabels['team'] == 'payments'",
            {"team": "payments"},
            None,
            id="the-same-rule-with-the-label-approves",
        ),
    ],
)
def test_a_rule_that_is_not_true_denies_in_the_usual_reason_format(
    rule: str | dict[str, Any], labels: dict[str, str] | None, reason: str | None
) -> None:
    decision = decide(request(), cel_policy(rule), namespace_labels=labels)
    if reason is None:
        assert decision.outcome is Outcome.APPROVE
    else:
        assert decision.outcome is Outcome.DENY
        assert len(decision.reasons) == 1
        assert decision.reasons[0].startswith(reason)


def test_cel_violations_come_after_the_field_checks_in_rule_order() -> None:
    policies = cel_policy("false == true", {"expression": "1 == 2", "message": "second"})
    decision = decide(request(dns_names=["web.other.svc"]), policies)
    assert decision.reasons == (
        'test: spec.request dnsNames: "web.other.svc" is not allowed for requester namespace "shop"',
        'test: celRules[0]: "false == true" is false',
        "test: celRules[1]: second",
    )


@pytest.mark.parametrize(
    ("rule", "evaluated"),
    [
        pytest.param("size(request.dnsNames) > 0", False, id="a-rule-reading-the-long-list"),
        pytest.param("request['dnsNames'].size() > 0", False, id="a-rule-reading-all-fields"),
        pytest.param("requester.namespace == 'shop'", True, id="a-rule-reading-other-fields"),
    ],
)
def test_a_list_longer_than_rules_see_denies_the_rules_that_read_it(
    rule: str, evaluated: bool
) -> None:
    names = [f"n{i}.example" for i in range(MAX_LIST_ITEMS + 1)]
    policies = cel_policy(rule, allowed={"dnsNames": ["{label}.example"], "maxDnsNames": 1000})
    decision = decide(request(dns_names=names), policies)
    if evaluated:
        assert decision.outcome is Outcome.APPROVE
    else:
        assert decision.reasons == (
            f"test: celRules[0]: not evaluated: request.dnsNames has {MAX_LIST_ITEMS + 1} "
            f"values; CEL rules see requests with at most {MAX_LIST_ITEMS}",
        )


@pytest.mark.parametrize(
    ("expression", "reads"),
    [
        pytest.param(
            "request.dnsNames.all(n, n.endsWith('.' + requester.namespace))",
            {"request.dnsNames", "requester.namespace"},
            id="fields-read-by-name",
        ),
        pytest.param("request.key.size >= 256", {"request.key.size"}, id="one-part-of-the-key"),
        pytest.param("request.key == dyn({})", {"request.key"}, id="the-whole-key"),
        pytest.param("request['dnsNames'].size() > 0", {"request"}, id="indexing-reads-it-all"),
        pytest.param(
            "request.commonName == 'requester.groups'",
            {"request.commonName"},
            id="names-in-strings-are-not-reads",
        ),
    ],
)
def test_a_rule_reads_only_what_it_names(expression: str, reads: set[str]) -> None:
    from signer.policy.celrules import compile_expression

    assert compile_expression(expression).reads == reads


def test_a_later_policy_sees_the_fields_its_rules_read() -> None:
    """The CEL context is built for the first policy's rules and widened for the next."""
    doc = {
        "name": "first",
        "signerNames": [TEST_SIGNER],
        "requesters": {"serviceAccounts": [{"namespaces": ["{label}"]}]},
        "allowed": {"dnsNames": ["{label}.{namespace}.svc"]},
        "celRules": [{"expression": "requester.namespace == 'elsewhere'"}],
    }
    second = {
        **doc,
        "name": "second",
        "celRules": [
            {"expression": "request.dnsNames == ['web.shop.svc'] && request.kind == 'CSR'"}
        ],
    }
    from signer.policy import PolicySet
    from signer.policy.schema import PolicyDocument

    policies = PolicySet.of(PolicyDocument.model_validate({"policies": [doc, second]}).policies)
    decision = decide(request(), policies)
    assert (decision.outcome, decision.policy) == (Outcome.APPROVE, "second")


def test_pcr_rules_see_kind_pcr_and_the_names_the_pod_asks_for() -> None:
    policies = one_policy(
        podCertificate={"dnsNames": ["{serviceaccount}.{namespace}.svc"]},
        allowed={"dnsNames": ["{label}.{namespace}.svc"]},
        celRules=[
            {
                "expression": "request.kind == 'PCR' && request.dnsNames == ['api.shop.svc'] "
                "&& request.key.algorithm == 'Ed25519' && request.expirationSeconds == 7200 "
                "&& requester.serviceAccount == 'web' && requester.namespaceLabels.env == 'prod'"
            }
        ],
    )
    pcr = PodRequest(
        signer_name=TEST_SIGNER,
        namespace="shop",
        service_account="web",
        pod_name="web-0",
        pod_uid="u",
        node_name="n",
        key=KeyInfo("ed25519", 256),
        annotations={"csr-signer.dev/dns-names": "api.shop.svc"},
        max_expiration_seconds=7200,
    )
    decision, grant = decide_pod(pcr, policies, namespace_labels={"env": "prod"})
    assert decision.outcome is Outcome.APPROVE, decision.reasons
    decision, grant = decide_pod(pcr, policies, namespace_labels={"env": "dev"})
    assert (decision.outcome, grant) == (Outcome.DENY, None)
    assert decision.reasons[0].startswith("test: celRules[0]: ")


LOAD_ERRORS = [
    pytest.param("request.dnsNames.all(n,", "does not compile: ", id="a-syntax-error"),
    pytest.param(
        "request.commonName",
        "must be a boolean expression; it evaluates to a string",
        id="a-string-is-not-a-boolean",
    ),
    pytest.param(
        "size(request.dnsNames)",
        "must be a boolean expression; it evaluates to an int",
        id="an-int-is-not-a-boolean",
    ),
    pytest.param(
        "request.dnsNames.map(n, n + '.x')",
        "must be a boolean expression; it evaluates to a list",
        id="a-list-is-not-a-boolean",
    ),
    pytest.param("reqest.kind == 'CSR'", "unknown variable 'reqest'", id="a-misspelt-variable"),
    pytest.param(
        "request.dnsName.size() > 0",
        "request has no field 'dnsName' (its fields: kind, dnsNames,",
        id="a-misspelt-request-field",
    ),
    pytest.param(
        "requester.labels.team == 'a'",
        "requester has no field 'labels'",
        id="a-misspelt-requester-field",
    ),
    pytest.param(
        "request.key.bits >= 2048", "request.key has no field 'bits'", id="a-misspelt-key-field"
    ),
    pytest.param(
        "requester.username.split(':').size() == 4",
        "unknown function 'split'",
        id="a-function-the-library-lacks",
    ),
    pytest.param(
        "request.dnsNames.all(n, requester.groups.exists(g, n == g))",
        "a macro (all, exists, exists_one, map, filter) inside another macro's body",
        id="a-macro-inside-a-macro",
    ),
    pytest.param(
        "request.dnsNames.all(n, n.matches(requester.namespace))",
        "matches() takes a string literal pattern",
        id="a-pattern-from-the-request",
    ),
    pytest.param(
        "request.commonName.matches('[')", "matches('['): ", id="an-invalid-regular-expression"
    ),
    pytest.param("  ", "the expression is empty", id="an-empty-expression"),
    pytest.param(
        "true && " * 200 + "true",
        f"the expression is 1604 characters; at most {MAX_EXPRESSION_LENGTH} are allowed",
        id="a-too-long-expression",
    ),
]


@pytest.mark.parametrize(("expression", "problem"), LOAD_ERRORS)
def test_a_bad_expression_is_a_load_error_at_its_file_and_line(
    tmp_path: Path, expression: str, problem: str
) -> None:
    doc = {
        "policies": [
            {
                "name": "p",
                "signerNames": [TEST_SIGNER],
                "requesters": {"usernames": ["a"]},
                "celRules": [{"expression": "true"}, {"expression": expression}],
            }
        ]
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, width=10_000))
    with pytest.raises(PolicyLoadError) as caught:
        load_policies(tmp_path)
    (found,) = caught.value.problems
    assert found.field == "policies[0].celRules[1].expression"
    assert found.line == 10
    assert found.message.startswith(problem), found.message


@pytest.mark.parametrize(
    "expression",
    [
        pytest.param("request.commonName != '.all(x, y.all(z,'", id="macro-text-in-a-string"),
        pytest.param(
            'request.commonName == r\'request.nope\' || """x\\"""" != \'\'',
            id="raw-and-triple-quoted-strings",
        ),
        pytest.param(
            "request.dnsNames.all(n, n.matches('^[a-z0-9.-]+$')) && "
            "request.uris.exists(u, u.startsWith('spiffe://'))",
            id="macros-side-by-side-with-a-literal-pattern",
        ),
        pytest.param("has(requester.namespaceLabels.team)", id="has-on-a-label"),
        pytest.param("type(request.dnsNames) == list", id="type-names"),
        pytest.param("requester.namespaceLabels['team'] == 'a'", id="fails-only-on-some-input"),
    ],
)
def test_expressions_the_checks_must_not_refuse(expression: str) -> None:
    cel_policy(expression)


def test_at_most_max_rules_per_policy(tmp_path: Path) -> None:
    doc = {
        "policies": [
            {
                "name": "p",
                "signerNames": [TEST_SIGNER],
                "requesters": {"usernames": ["a"]},
                "celRules": [{"expression": "true"}] * (MAX_RULES + 1),
            }
        ]
    }
    (tmp_path / "p.yaml").write_text(json.dumps(doc))
    with pytest.raises(PolicyLoadError) as caught:
        load_policies(tmp_path)
    (found,) = caught.value.problems
    assert found.field == "policies[0].celRules"
    assert f"at most {MAX_RULES} items" in found.message


def test_a_message_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be one line"):
        cel_policy({"expression": "true", "message": "a\nb"})
