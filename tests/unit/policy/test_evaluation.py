"""Schema features the bundled policies do not use, through `decide()`.

Policies here are inline YAML validated by the real schema; requests come
from tests.data.csrs with ServiceAccount `team-a:web` unless a row says so.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID, ObjectIdentifier

from signer.models import Outcome
from signer.policy import PolicySet, decide
from tests.data.csrs import cached_key, csr_request, sa_username
from tests.unit.policy.conftest import TEST_SIGNER, one_policy, policy_set

APPROVE, DENY, ABSTAIN = Outcome.APPROVE, Outcome.DENY, Outcome.ABSTAIN
TEAM_A = sa_username("team-a", "web")


def req(**kwargs: Any) -> Any:
    kwargs.setdefault("signer_name", TEST_SIGNER)
    kwargs.setdefault("username", TEAM_A)
    kwargs.setdefault("dns_names", [])
    return csr_request(**kwargs)


SAN_CASES = [
    pytest.param(
        {"allowed": {"ipRanges": ["10.0.0.0/8", "fd00::/8"]}},
        {"ip_addresses": ["10.1.2.3", "fd00::1"]},
        APPROVE,
        None,
        id="ips-inside-allowed-ranges",
    ),
    pytest.param(
        {"allowed": {"ipRanges": ["10.0.0.0/8"]}},
        {"ip_addresses": ["192.168.0.1"]},
        DENY,
        'spec.request ipAddresses: "192.168.0.1" is not in an allowed range',
        id="ip-outside-allowed-ranges",
    ),
    pytest.param(
        {"allowed": {"ipRanges": ["10.0.0.0/8"]}},
        {"ip_addresses": ["::ffff:10.1.2.3"]},
        DENY,
        'spec.request ipAddresses: "::ffff:',
        id="ipv4-mapped-ipv6-is-not-the-ipv4-address",
    ),
    pytest.param(
        {"allowed": {"uris": ["spiffe://{clusterDomain}/ns/{namespace}/sa/{serviceaccount}"]}},
        {"uris": ["spiffe://cluster.local/ns/team-a/sa/web"]},
        APPROVE,
        None,
        id="spiffe-id-of-the-requesting-serviceaccount",
    ),
    pytest.param(
        {"allowed": {"uris": ["spiffe://{clusterDomain}/ns/{namespace}/sa/{serviceaccount}"]}},
        {"uris": ["spiffe://cluster.local/ns/team-a/sa/admin"]},
        DENY,
        'spec.request uris: "spiffe://cluster.local/ns/team-a/sa/admin" is not allowed '
        'for requester namespace "team-a"',
        id="spiffe-id-of-another-serviceaccount",
    ),
    pytest.param(
        {"allowed": {"emails": ["{serviceaccount}@{namespace}.example.com"]}},
        {"emails": ["web@team-a.example.com"]},
        APPROVE,
        None,
        id="email-of-the-requester",
    ),
    pytest.param(
        {"allowed": {"emails": ["{serviceaccount}@{namespace}.example.com"]}},
        {"emails": ["web@team-b.example.com"]},
        DENY,
        '"web@team-b.example.com" is not allowed',
        id="email-of-another-namespace",
    ),
    pytest.param(
        {"allowed": {"dnsNames": ["{label}.{namespace}.svc"]}},
        {"dns_names": ["web.team-a.svc", "web.team-b.svc", "web.team-b.svc"]},
        DENY,
        '"web.team-b.svc" is not allowed',
        id="duplicate-names-are-reported-once",
    ),
]

SUBJECT_CASES = [
    pytest.param(
        {"allowed": {"subject": {"organizations": ["{namespace}"]}}},
        {"organizations": ["team-a"]},
        APPROVE,
        None,
        id="organization-pattern-bound-to-namespace",
    ),
    pytest.param(
        {"allowed": {"subject": {"organizations": ["{namespace}"]}}},
        {"organizations": ["system:masters"]},
        DENY,
        'spec.request subject: O "system:masters" is not allowed',
        id="organization-not-allowed",
    ),
    pytest.param(
        {"allowed": {"dnsNames": ["a.example.com"], "subject": {"commonName": "Empty"}}},
        {"dns_names": ["a.example.com"], "common_name": "a.example.com"},
        DENY,
        'spec.request subject: CN "a.example.com" is not allowed: CN must be empty',
        id="cn-must-be-empty",
    ),
    pytest.param(
        {"allowed": {"dnsNames": ["a.example.com"], "subject": {"commonName": "DNSName"}}},
        {"dns_names": ["a.example.com"]},
        DENY,
        "spec.request subject: CN is required and must be one of the requested DNS names",
        id="cn-required",
    ),
    pytest.param(
        {"allowed": {"dnsNames": ["a.example.com"], "subject": {"commonName": "DNSName"}}},
        {"dns_names": ["a.example.com"], "common_name": "a.example.com"},
        APPROVE,
        None,
        id="cn-one-of-the-dns-names",
    ),
    pytest.param(
        {"allowed": {"dnsNames": ["a.example.com"]}},
        {
            "dns_names": ["a.example.com"],
            "common_name": "a.example.com",
            "extra_subject": [x509.NameAttribute(NameOID.COMMON_NAME, "b.example.com")],
        },
        DENY,
        "spec.request subject: 2 CN attributes; at most one is allowed",
        id="at-most-one-cn",
    ),
    pytest.param(
        {},
        {"extra_subject": [x509.NameAttribute(NameOID.COUNTRY_NAME, "XX")]},
        DENY,
        "spec.request subject: attribute C is not allowed",
        id="no-other-subject-attributes",
    ),
    pytest.param(
        {},
        {"common_name": "evil\nsecond line"},
        DENY,
        'CN "evil\\nsecond line" must be empty',
        id="request-values-are-quoted-on-one-line",
    ),
]

KEY_AND_USAGE_CASES = [
    pytest.param(
        {"allowed": {"keys": [{"algorithm": "RSA", "minSize": 2048, "maxSize": 2048}]}},
        {"key_type": "rsa-3072"},
        DENY,
        "spec.request publicKey: RSA 3072 is not allowed (allowed: RSA >= 2048 and <= 2048 bits)",
        id="rsa-above-max-size",
    ),
    pytest.param(
        {"allowed": {"keys": [{"algorithm": "RSA"}]}},
        {"key_type": "rsa-2048-e3"},
        DENY,
        "spec.request publicKey: RSA 2048 with e=3 is not allowed (allowed: RSA >= 2048 bits)",
        id="rsa-exponent-3-is-denied-by-default",
    ),
    pytest.param(
        {"allowed": {"keys": [{"algorithm": "RSA", "publicExponent": 65537}]}},
        {"key_type": "rsa-2048"},
        APPROVE,
        None,
        id="rsa-exponent-65537-written-out-is-allowed",
    ),
    pytest.param(
        {"allowed": {"keys": [{"algorithm": "ECDSA", "curves": ["P-384"]}]}},
        {"key_type": "ecdsa-p256"},
        DENY,
        "ECDSA P-256 is not allowed (allowed: ECDSA P-384)",
        id="curve-not-listed",
    ),
    pytest.param(
        {"allowed": {"keys": [{"algorithm": "Ed25519"}]}},
        {"key_type": "ed25519"},
        APPROVE,
        None,
        id="ed25519-listed",
    ),
    pytest.param(
        {"required": {"usages": ["server auth", "client auth"]}},
        {"usages": ("server auth",)},
        DENY,
        'spec.usages: "client auth" is required',
        id="every-required-usage-must-be-requested",
    ),
    pytest.param(
        {"allowed": {"usages": ["digital signature", "client auth"]}},
        {"usages": ("digital signature", "server auth")},
        DENY,
        'spec.usages: "server auth" is not allowed',
        id="usage-not-in-allowed-list",
    ),
    pytest.param(
        {},
        {"usages": ("server auth", "server auth")},
        APPROVE,
        None,
        id="repeated-usage-is-not-a-violation",
    ),
]


@pytest.mark.parametrize(
    ("policy", "request_kwargs", "outcome", "reason"),
    SAN_CASES + SUBJECT_CASES + KEY_AND_USAGE_CASES,
)
def test_policy_rule(
    policy: dict[str, Any], request_kwargs: dict[str, Any], outcome: Outcome, reason: str | None
) -> None:
    decision = decide(req(**request_kwargs), one_policy(**policy))
    assert decision.outcome is outcome, decision.reasons
    if reason is not None:
        assert any(reason in r for r in decision.reasons), decision.reasons
        assert len(decision.reasons) == len(set(decision.reasons))


REQUESTER_POLICIES = policy_set(
    """
signers:
  - name: example.com/strict
    whenNoPolicyApplies: deny
  - name: example.com/closed
    whenNoPolicyApplies: deny
policies:
  - name: by-username
    signerNames: [example.com/test, example.com/strict]
    requesters: {usernames: [alice]}
    allowed: {dnsNames: [alice.example.com]}
  - name: by-group
    signerNames: [example.com/test]
    requesters: {groups: [ops]}
    allowed: {dnsNames: [ops.example.com, "{namespace}.example.com"]}
  - name: by-sa-name
    signerNames: [example.com/test]
    requesters:
      serviceAccounts:
        - namespaces: ["team-{label}"]
          names: [web, "api-{label}"]
    allowed: {dnsNames: ["{serviceaccount}.{namespace}.example.com"]}
"""
)


@pytest.mark.parametrize(
    ("who", "dns", "outcome", "reason"),
    [
        pytest.param(
            (TEST_SIGNER, "alice", ()), "alice.example.com", APPROVE, "by-username", id="username"
        ),
        pytest.param(
            (TEST_SIGNER, "bob", ("ops",)), "ops.example.com", APPROVE, "by-group", id="group"
        ),
        pytest.param(
            (TEST_SIGNER, "bob", ("ops",)),
            "team-a.example.com",
            DENY,
            '"team-a.example.com" is not allowed for requester "bob"',
            id="namespace-placeholder-never-matches-a-non-serviceaccount",
        ),
        pytest.param(
            (TEST_SIGNER, sa_username("team-a", "api-v1"), None),
            "api-v1.team-a.example.com",
            APPROVE,
            "by-sa-name",
            id="serviceaccount-name-pattern",
        ),
        pytest.param(
            (TEST_SIGNER, sa_username("team-a", "db"), None),
            "db.team-a.example.com",
            ABSTAIN,
            'applies to requester "system:serviceaccount:team-a:db"',
            id="serviceaccount-name-not-selected",
        ),
        pytest.param(
            (TEST_SIGNER, sa_username("other", "web"), None),
            "web.other.example.com",
            ABSTAIN,
            "no policy",
            id="namespace-pattern-not-matched",
        ),
        pytest.param(
            ("example.com/strict", "bob", ()),
            "bob.example.com",
            DENY,
            'no policy for signer "example.com/strict" applies to requester "bob" '
            "and the signer's whenNoPolicyApplies is deny",
            id="when-no-policy-applies-deny-turns-abstain-into-deny",
        ),
        pytest.param(
            ("example.com/closed", "alice", ()),
            "alice.example.com",
            DENY,
            "whenNoPolicyApplies is deny",
            id="signer-with-settings-and-no-policy-is-governed-and-denies",
        ),
    ],
)
def test_who_a_policy_applies_to(
    who: tuple[str, str, tuple[str, ...] | None], dns: str, outcome: Outcome, reason: str
) -> None:
    """`who` is (signer name, spec.username, spec.groups or None for SA defaults)."""
    signer_name, username, groups = who
    request = req(signer_name=signer_name, username=username, groups=groups, dns_names=[dns])
    decision = decide(request, REQUESTER_POLICIES)
    assert decision.outcome is outcome, decision.reasons
    if outcome is APPROVE:
        assert decision.policy == reason
    else:
        assert any(reason in r for r in decision.reasons), decision.reasons


def test_closed_signer_denies_unparseable_requests_too() -> None:
    decision = decide(req(signer_name="example.com/closed", pem=b"junk"), REQUESTER_POLICIES)
    assert decision.outcome is DENY


SEVERAL = policy_set(
    """
policies:
  - name: narrow
    signerNames: [example.com/test]
    requesters: {serviceAccounts: [{namespaces: [team-a]}]}
    allowed: {dnsNames: [a.example.com]}
    maxLifetime: 24h
  - name: broad
    signerNames: [example.com/test, example.com/other]
    requesters: {serviceAccounts: [{namespaces: ["{label}"]}]}
    allowed: {dnsNames: [a.example.com, b.example.com]}
    maxLifetime: 90d
"""
)


@pytest.mark.parametrize(
    ("dns", "outcome", "policy", "reasons"),
    [
        pytest.param(
            ["a.example.com"], APPROVE, "narrow", 1, id="first-approving-policy-in-load-order"
        ),
        pytest.param(["b.example.com"], APPROVE, "broad", 1, id="any-approving-policy-approves"),
        pytest.param(["c.example.com"], DENY, None, 2, id="deny-lists-reasons-of-every-policy"),
    ],
)
def test_several_policies_apply(
    dns: list[str], outcome: Outcome, policy: str | None, reasons: int
) -> None:
    decision = decide(req(dns_names=dns), SEVERAL)
    assert (decision.outcome, decision.policy, len(decision.reasons)) == (outcome, policy, reasons)
    if outcome is DENY:
        assert [r.split(":")[0] for r in decision.reasons] == ["narrow", "broad"]


@pytest.mark.parametrize(
    ("signer_name", "policy", "expected"),
    [
        pytest.param(TEST_SIGNER, "narrow", timedelta(hours=24), id="policy-cap"),
        pytest.param(TEST_SIGNER, "broad", timedelta(days=90), id="other-policy-cap"),
        pytest.param("example.com/other", "narrow", None, id="policy-not-for-that-signer"),
        pytest.param(TEST_SIGNER, "gone", None, id="unknown-policy"),
        pytest.param(TEST_SIGNER, None, None, id="no-policy-human-approved"),
    ],
)
def test_max_lifetime_for_the_signer(
    signer_name: str, policy: str | None, expected: timedelta | None
) -> None:
    assert SEVERAL.max_lifetime(signer_name, policy) == expected


def test_a_longer_requested_lifetime_is_not_a_reason_to_deny() -> None:
    decision = decide(req(dns_names=["a.example.com"], expiration_seconds=10**8), SEVERAL)
    assert decision.outcome is APPROVE


def test_policy_set_index() -> None:
    assert SEVERAL.signer_names == {TEST_SIGNER, "example.com/other"}
    assert [p.name for p in SEVERAL.policies_for("example.com/other")] == ["broad"]
    assert SEVERAL.policy("narrow") is SEVERAL.policies[0]
    assert SEVERAL.policy("gone") is None
    with pytest.raises(ValueError, match="duplicate policy name"):
        PolicySet.of([*SEVERAL.policies, SEVERAL.policies[0]])


def test_other_san_kinds_are_never_allowed() -> None:
    key = cached_key("ecdsa-p256")
    sans = x509.SubjectAlternativeName(
        [
            x509.DNSName("a.example.com"),
            x509.OtherName(ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x05admin"),
            x509.RegisteredID(ObjectIdentifier("1.2.3.4")),
        ]
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(sans, critical=False)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    pem = csr.public_bytes(serialization.Encoding.PEM)
    decision = decide(req(pem=pem), one_policy(allowed={"dnsNames": ["a.example.com"]}))
    assert decision.reasons == (
        'test: spec.request subjectAltNames: "otherName:1.3.6.1.4.1.311.20.2.3" '
        "is not a kind of name this signer issues",
        'test: spec.request subjectAltNames: "registeredID:1.2.3.4" '
        "is not a kind of name this signer issues",
    )


def test_long_request_values_are_truncated_in_reasons() -> None:
    uri = "https://example.com/" + "x" * 300
    decision = decide(req(uris=[uri]), one_policy())
    assert decision.reasons == (
        f'test: spec.request uris: "{uri[:256]}"... is not allowed for requester namespace "team-a"',
    )


# --- bounded work: maxDnsNames and the violation cap -------------------------------------

MANY = [f"n{i}.team-a.svc" for i in range(150)]
ANY_LABEL_IN_NS = {"dnsNames": ["{label}.{namespace}.svc"]}


@pytest.mark.parametrize(
    ("policies", "names", "outcome", "reason"),
    [
        pytest.param(
            one_policy(allowed=ANY_LABEL_IN_NS),
            MANY[:100],
            APPROVE,
            None,
            id="up-to-the-default-100-names-is-fine",
        ),
        pytest.param(
            one_policy(allowed=ANY_LABEL_IN_NS),
            MANY,
            DENY,
            "test: spec.request dnsNames: 150 DNS names requested, at most 100 allowed",
            id="over-the-default-100-names-is-denied",
        ),
        pytest.param(
            one_policy(allowed={**ANY_LABEL_IN_NS, "maxDnsNames": 2}),
            MANY[:3],
            DENY,
            "3 DNS names requested, at most 2 allowed",
            id="a-policy-sets-its-own-maximum",
        ),
        pytest.param(
            policy_set(
                f"""
signers:
  - name: {TEST_SIGNER}
    maxDnsNames: 200
policies:
  - name: test
    signerNames: [{TEST_SIGNER}]
    requesters: {{serviceAccounts: [{{namespaces: ["{{label}}"]}}]}}
    allowed: {{dnsNames: ["{{label}}.{{namespace}}.svc"]}}
"""
            ),
            MANY,
            APPROVE,
            None,
            id="the-signer-settings-raise-the-default",
        ),
    ],
)
def test_max_dns_names(
    policies: PolicySet, names: list[str], outcome: Outcome, reason: str | None
) -> None:
    decision = decide(req(dns_names=names), policies)
    assert decision.outcome is outcome, decision.reasons[:3]
    if reason is not None:
        assert any(reason in r for r in decision.reasons)


def test_violations_per_field_are_bounded() -> None:
    names = [f"bad{i}.elsewhere.svc" for i in range(5000)]
    policies = one_policy(allowed={**ANY_LABEL_IN_NS, "maxDnsNames": 10_000})
    decision = decide(req(dns_names=names), policies)
    assert decision.outcome is DENY
    assert len(decision.reasons) == 21
    assert decision.reasons[-1] == (
        "test: spec.request dnsNames: more values are not allowed (only the first 20 are listed)"
    )
