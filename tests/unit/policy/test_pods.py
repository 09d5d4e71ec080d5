"""PodCertificateRequests through `decide_pod()`: what a pod gets, and why it is denied.

Policies here are inline YAML validated by the real schema. Requests come from
`pod()`: ServiceAccount `team-a:web`, an ECDSA P-256 key, no annotations, for
signer `example.com/pods`; a row states only what it changes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from signer.models import Decision, KeyInfo, Outcome, PodGrant, PodRequest
from signer.policy import decide_pod, denied_reason
from signer.policy.pods import DNS_NAMES_ANNOTATION, URIS_ANNOTATION
from tests.unit.policy.conftest import TEST_SIGNER, one_policy, policy_set

APPROVE, DENY, ABSTAIN = Outcome.APPROVE, Outcome.DENY, Outcome.ABSTAIN
PODS = "example.com/pods"
P256 = KeyInfo("ecdsa", 256, curve="secp256r1")
ED25519 = KeyInfo("ed25519", 256)
RSA3072 = KeyInfo("rsa", 3072, exponent=65537)
DNS_FIELD = f"spec.unverifiedUserAnnotations {DNS_NAMES_ANNOTATION}"
URI_FIELD = f"spec.unverifiedUserAnnotations {URIS_ANNOTATION}"

MESH = policy_set("""
signers:
  - name: example.com/closed     # governed, but no policy serves pods
policies:
  - name: mesh
    signerNames: [example.com/pods]
    requesters:
      serviceAccounts:
        - namespaces: ["team-{label}"]
    podCertificate:
      dnsNames: ["kn-user-{namespace}", "{serviceaccount}.{namespace}.svc"]
      uris: ["spiffe://{clusterDomain}/ns/{namespace}/sa/{serviceaccount}"]
    allowed:
      dnsNames: ["{label}.{namespace}.svc", "{label}.{namespace}.svc.{clusterDomain}"]
      uris: ["spiffe://{clusterDomain}/ns/{namespace}/sa/{serviceaccount}/{label}"]
      maxDnsNames: 3
      keys:
        - {algorithm: ECDSA, curves: [P-256, P-384]}
        - {algorithm: Ed25519}
    maxLifetime: 24h
  - name: csr-only
    signerNames: [example.com/pods]
    requesters:
      groups: ["system:serviceaccounts:ops"]
    allowed:
      dnsNames: ["{label}.ops.svc"]
""")


def pod(**overrides: Any) -> PodRequest:
    fields: dict[str, Any] = {
        "signer_name": PODS,
        "namespace": "team-a",
        "service_account": "web",
        "pod_name": "web-0",
        "pod_uid": "0f0e0d0c-0000-4000-8000-000000000001",
        "node_name": "node-1",
        "key": P256,
        "annotations": {},
        "max_expiration_seconds": 86400,
    }
    fields.update(overrides)
    return PodRequest(**fields)


def dns(value: str) -> dict[str, Any]:
    return {"annotations": {DNS_NAMES_ANNOTATION: value}}


def grant(dns_names: tuple[str, ...], uris: tuple[str, ...] = ()) -> PodGrant:
    return PodGrant(dns_names=dns_names, uris=uris, max_lifetime=timedelta(hours=24), policy="mesh")


WEB_URI = "spiffe://cluster.local/ns/team-a/sa/web"
WEB = grant(("kn-user-team-a", "web.team-a.svc"), (WEB_URI,))
TEAM_A = 'requester namespace "team-a"'

CASES = [
    # --- what a pod is granted --------------------------------------------
    pytest.param(
        {},
        APPROVE,
        WEB,
        id="pod-gets-the-names-its-policy-renders-for-its-namespace-and-serviceaccount",
    ),
    pytest.param(
        {"service_account": "web.v2"},
        APPROVE,
        grant(("kn-user-team-a",)),
        id="dotted-serviceaccount-gets-nothing-from-serviceaccount-patterns",
    ),
    pytest.param(
        {"service_account": "a" * 64},
        APPROVE,
        grant(("kn-user-team-a",), ("spiffe://cluster.local/ns/team-a/sa/" + "a" * 64,)),
        id="serviceaccount-too-long-for-a-dns-label-gets-no-dns-name-from-it",
    ),
    # --- names the pod asks for in its annotations -----------------------------
    pytest.param(
        dns("db.team-a.svc,db.team-a.svc.cluster.local"),
        APPROVE,
        grant(
            ("kn-user-team-a", "web.team-a.svc", "db.team-a.svc", "db.team-a.svc.cluster.local"),
            (WEB_URI,),
        ),
        id="allowed-annotation-names-are-added-after-the-granted-ones",
    ),
    pytest.param(
        dns(" web.team-a.svc ,, kn-user-team-a, db.team-a.svc,db.team-a.svc "),
        APPROVE,
        grant(("kn-user-team-a", "web.team-a.svc", "db.team-a.svc"), (WEB_URI,)),
        id="annotation-items-are-trimmed-and-each-name-is-issued-once",
    ),
    pytest.param(
        dns("kn-user-team-a"),
        APPROVE,
        WEB,
        id="asking-for-a-granted-name-is-no-violation-even-if-allowed-does-not-list-it",
    ),
    pytest.param(
        dns("db.team-b.svc"),
        DENY,
        (f'mesh: {DNS_FIELD}: "db.team-b.svc" is not allowed for {TEAM_A}',),
        id="another-namespaces-service-name-via-annotation-is-denied",
    ),
    pytest.param(
        dns("kn-user-team-b"),
        DENY,
        (f'mesh: {DNS_FIELD}: "kn-user-team-b" is not allowed for {TEAM_A}',),
        id="another-namespaces-kn-user-name-via-annotation-is-denied",
    ),
    pytest.param(
        dns("a.team-a.svc,b.team-a.svc,c.team-a.svc,d.team-a.svc"),
        DENY,
        (f"mesh: {DNS_FIELD}: 4 DNS names requested, at most 3 allowed",),
        id="annotation-names-count-against-max-dns-names",
    ),
    pytest.param(
        {"annotations": {URIS_ANNOTATION: WEB_URI + "/admin"}},
        APPROVE,
        grant(("kn-user-team-a", "web.team-a.svc"), (WEB_URI, WEB_URI + "/admin")),
        id="allowed-annotation-uri-is-added",
    ),
    pytest.param(
        {"annotations": {URIS_ANNOTATION: "spiffe://cluster.local/ns/team-a/sa/db/x"}},
        DENY,
        (
            f'mesh: {URI_FIELD}: "spiffe://cluster.local/ns/team-a/sa/db/x" '
            f"is not allowed for {TEAM_A}",
        ),
        id="another-serviceaccounts-uri-via-annotation-is-denied",
    ),
    # --- annotation keys ---------------------------------------------------------
    pytest.param(
        {"annotations": {"example.com/flavour": "x", DNS_NAMES_ANNOTATION: "db.team-a.svc"}},
        DENY,
        (
            "InvalidUnverifiedUserAnnotations: spec.unverifiedUserAnnotations: key "
            '"example.com/flavour" is not understood by this signer (it understands '
            '"csr-signer.dev/dns-names", "csr-signer.dev/uris")',
        ),
        id="unknown-annotation-key-is-denied-naming-the-key",
    ),
    pytest.param(
        {"annotations": {"CSR-Signer.dev/dns-names": "db.team-a.svc"}},
        DENY,
        (
            'InvalidUnverifiedUserAnnotations: spec.unverifiedUserAnnotations: key "CSR-Signer'
            '.dev/dns-names" is not understood by this signer (it understands '
            '"csr-signer.dev/dns-names", "csr-signer.dev/uris")',
        ),
        id="annotation-keys-are-exact-not-case-folded",
    ),
    pytest.param(
        {"signer_name": "example.com/other", "annotations": {"example.com/x": "y"}},
        ABSTAIN,
        ('no policy governs signer "example.com/other"',),
        id="ungoverned-signer-abstains-whatever-the-request-holds",
    ),
    # --- no policy serves the pod -------------------------------------------------
    pytest.param(
        {"namespace": "default"},
        DENY,
        (
            'NoPolicy: no policy for signer "example.com/pods" issues pod certificates to '
            'ServiceAccount "web" in namespace "default"',
        ),
        id="no-policy-applies-is-a-denial-not-pending",
    ),
    pytest.param(
        {"namespace": "ops"},
        DENY,
        (
            'NoPolicy: no policy for signer "example.com/pods" issues pod certificates to '
            'ServiceAccount "web" in namespace "ops" '
            "(policy csr-only applies, but has no podCertificate section)",
        ),
        id="policy-without-pod-certificate-does-not-serve-pods",
    ),
    pytest.param(
        {"signer_name": "example.com/closed"},
        DENY,
        (
            'NoPolicy: no policy for signer "example.com/closed" issues pod certificates to '
            'ServiceAccount "web" in namespace "team-a"',
        ),
        id="signer-governed-only-by-its-settings-denies",
    ),
    # --- keys ------------------------------------------------------------------
    pytest.param({"key": ED25519}, APPROVE, WEB, id="key-in-the-policys-keys-is-allowed"),
    pytest.param(
        {"key": RSA3072},
        DENY,
        (
            "UnsupportedKeyType: mesh: publicKey: RSA 3072 is not allowed (allowed: "
            "ECDSA P-256/P-384, Ed25519); set the pod's podCertificate keyType to one of "
            "ECDSAP256, ECDSAP384, ED25519",
        ),
        id="key-outside-the-policys-keys-is-unsupported-naming-the-keytypes-to-use",
    ),
    pytest.param(
        {"key": KeyInfo("ecdsa", 521, curve="secp521r1")},
        DENY,
        (
            "UnsupportedKeyType: mesh: publicKey: ECDSA P-521 is not allowed (allowed: "
            "ECDSA P-256/P-384, Ed25519); set the pod's podCertificate keyType to one of "
            "ECDSAP256, ECDSAP384, ED25519",
        ),
        id="ecdsa-p521-is-not-in-the-policy",
    ),
    pytest.param(
        {"key": KeyInfo("rsa", 3072, exponent=3)},
        DENY,
        (
            "UnsupportedKeyType: publicKey: the request's key is refused: "
            "RSA public exponent 3 is not 65537",
        ),
        id="key-below-the-floor-is-unsupported-whatever-the-policy",
    ),
    pytest.param(
        {"key": KeyInfo("ed448", 456)},
        DENY,
        (
            "UnsupportedKeyType: publicKey: the request's Ed448 key is not supported (the "
            "floor is RSA >= 2048 bits with e=65537, ECDSA P-256/P-384/P-521, or Ed25519)",
        ),
        id="unsupported-algorithm-is-unsupported-key-type",
    ),
    pytest.param(
        {"key": RSA3072, **dns("db.team-b.svc")},
        DENY,
        (
            f'mesh: {DNS_FIELD}: "db.team-b.svc" is not allowed for {TEAM_A}',
            "UnsupportedKeyType: mesh: publicKey: RSA 3072 is not allowed (allowed: "
            "ECDSA P-256/P-384, Ed25519); set the pod's podCertificate keyType to one of "
            "ECDSAP256, ECDSAP384, ED25519",
        ),
        id="every-violation-is-reported-names-before-the-key",
    ),
]


@pytest.mark.parametrize(("overrides", "outcome", "expected"), CASES)
def test_pod_certificate_rule(
    overrides: dict[str, Any], outcome: Outcome, expected: PodGrant | tuple[str, ...]
) -> None:
    decision, granted = decide_pod(pod(**overrides), MESH)
    assert decision.outcome is outcome, decision.reasons
    if outcome is APPROVE:
        assert granted == expected
        assert decision.policy == "mesh"
    else:
        assert granted is None, "only an approval grants anything"
        assert decision.reasons == expected


def test_approval_message_names_what_will_be_issued() -> None:
    decision, _ = decide_pod(pod(), MESH)
    assert decision.reasons == (
        'mesh: approved: issues DNS ["kn-user-team-a", "web.team-a.svc"]; '
        'URI ["spiffe://cluster.local/ns/team-a/sa/web"]',
    )


def test_spiffe_uri_uses_the_configured_cluster_domain() -> None:
    _, granted = decide_pod(pod(), MESH, cluster_domain="corp.example")
    assert granted is not None
    assert granted.uris == ("spiffe://corp.example/ns/team-a/sa/web",)


def test_policy_that_renders_no_name_and_is_asked_for_none_denies() -> None:
    policies = one_policy(podCertificate={"uris": ["spiffe://{clusterDomain}/sa/{serviceaccount}"]})
    decision, granted = decide_pod(pod(signer_name=TEST_SIGNER, service_account="web.v2"), policies)
    assert granted is None
    assert decision.reasons == (
        "test: podCertificate: no name to issue: no pattern renders a name for ServiceAccount "
        '"web.v2" and the pod\'s annotations request none ({serviceaccount} renders nothing '
        "for a ServiceAccount name with a dot)",
    )


def test_empty_pod_certificate_issues_only_the_allowed_names_a_pod_asks_for() -> None:
    policies = one_policy(podCertificate={}, allowed={"dnsNames": ["{label}.{namespace}.svc"]})
    _, granted = decide_pod(pod(signer_name=TEST_SIGNER, **dns("db.team-a.svc")), policies)
    assert granted == PodGrant(
        dns_names=("db.team-a.svc",), uris=(), max_lifetime=None, policy="test"
    )


def test_hostile_annotation_costs_bounded_reasons() -> None:
    names = ",".join(f"n{i}.evil.com" for i in range(10_000))
    decision, _ = decide_pod(pod(**dns(names)), MESH)
    assert decision.outcome is DENY
    assert decision.reasons[0] == f"mesh: {DNS_FIELD}: 10000 DNS names requested, at most 3 allowed"
    assert len(decision.reasons) == 1 + 20 + 1
    assert decision.reasons[-1] == (
        f"mesh: {DNS_FIELD}: more values are not allowed (only the first 20 are listed)"
    )


def test_unknown_annotation_keys_are_listed_in_order_and_bounded() -> None:
    annotations = {f"example.com/k{i:02}": "" for i in range(25)}
    decision, _ = decide_pod(pod(annotations=annotations), MESH)
    assert len(decision.reasons) == 21
    assert '"example.com/k00"' in decision.reasons[0]
    assert '"example.com/k19"' in decision.reasons[19]
    assert decision.reasons[20] == (
        "InvalidUnverifiedUserAnnotations: spec.unverifiedUserAnnotations: "
        "5 more keys are not understood"
    )


TWO = policy_set("""
policies:
  - name: strict
    signerNames: [example.com/pods]
    requesters: {serviceAccounts: [{namespaces: ["{label}"]}]}
    podCertificate: {dnsNames: ["strict-{namespace}"]}
    allowed:
      keys: [{algorithm: Ed25519}]
  - name: broad
    signerNames: [example.com/pods]
    requesters: {serviceAccounts: [{namespaces: ["{label}"]}]}
    podCertificate: {dnsNames: ["broad-{namespace}"]}
    allowed:
      dnsNames: ["{label}.{namespace}.svc"]
      keys: [{algorithm: ECDSA, curves: [P-256]}]
""")


@pytest.mark.parametrize(
    ("overrides", "policy", "names"),
    [
        pytest.param({"key": ED25519}, "strict", ("strict-team-a",), id="first-that-approves-wins"),
        pytest.param(
            {"key": P256},
            "broad",
            ("broad-team-a",),
            id="a-later-policy-approves-when-an-earlier-one-denies",
        ),
        pytest.param(
            {"key": P256, **dns("db.team-a.svc")},
            "broad",
            ("broad-team-a", "db.team-a.svc"),
            id="the-grant-is-the-approving-policys-alone",
        ),
    ],
)
def test_first_approving_policy_wins(
    overrides: dict[str, Any], policy: str, names: tuple[str, ...]
) -> None:
    decision, granted = decide_pod(pod(**overrides), TWO)
    assert decision.outcome is APPROVE
    assert decision.policy == policy
    assert granted == PodGrant(dns_names=names, uris=(), max_lifetime=None, policy=policy)


def test_every_policy_denies_with_every_reason_in_load_order() -> None:
    decision, granted = decide_pod(pod(key=RSA3072, **dns("db.team-a.svc")), TWO)
    assert granted is None
    assert decision.policy is None, "no single policy is to blame"
    assert decision.reasons == (
        f'strict: {DNS_FIELD}: "db.team-a.svc" is not allowed for {TEAM_A}',
        "UnsupportedKeyType: strict: publicKey: RSA 3072 is not allowed (allowed: Ed25519); "
        "set the pod's podCertificate keyType to ED25519",
        "UnsupportedKeyType: broad: publicKey: RSA 3072 is not allowed (allowed: ECDSA P-256); "
        "set the pod's podCertificate keyType to ECDSAP256",
    )


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        pytest.param(("NoPolicy: no policy ...",), "NoPolicy", id="no-policy"),
        pytest.param(
            ("UnsupportedKeyType: a: publicKey: x", "UnsupportedKeyType: b: publicKey: y"),
            "UnsupportedKeyType",
            id="key-refused-by-every-policy",
        ),
        pytest.param(
            ("InvalidUnverifiedUserAnnotations: spec.unverifiedUserAnnotations: key",),
            "InvalidUnverifiedUserAnnotations",
            id="unknown-annotation-key",
        ),
        pytest.param(
            ("a: spec.unverifiedUserAnnotations x: y", "UnsupportedKeyType: b: publicKey: z"),
            "PolicyViolation",
            id="key-and-something-else-is-not-only-a-key-problem",
        ),
        pytest.param(
            ("a: spec.unverifiedUserAnnotations x: y",), "PolicyViolation", id="name-refused"
        ),
    ],
)
def test_denied_condition_reason(reasons: tuple[str, ...], expected: str) -> None:
    assert denied_reason(Decision(DENY, reasons=reasons)) == expected


def test_decision_is_deterministic() -> None:
    request = pod(key=RSA3072, **dns("db.team-b.svc,x.team-a.svc"))
    assert decide_pod(request, MESH) == decide_pod(request, MESH)
