"""The bundled policies (policies/*.yaml), rule by rule, through `decide()`.

Each row is one rule of issue #3 or one way around it a requester might try.
Requests default to a valid cluster-local one from `default:web`
(tests.data.csrs.csr_request); a row states only what it changes.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from signer.models import KeyInfo, Outcome, PodRequest
from signer.policy import PolicySet, decide, decide_pod
from tests.data.csrs import csr_request, sa_username
from tests.unit.policy.conftest import CLUSTER_LOCAL, KNATIVE

APPROVE, DENY, ABSTAIN = Outcome.APPROVE, Outcome.DENY, Outcome.ABSTAIN
SYSTEM_NAMESPACES = ("knative-serving", "kourier-system", "istio-system")


def kn(namespace: str, *dns_names: str, **kwargs: Any) -> dict[str, Any]:
    """A knative-internal request from ServiceAccount `namespace:controller`."""
    return {
        "signer_name": KNATIVE,
        "username": sa_username(namespace, "controller"),
        "dns_names": list(dns_names),
        **kwargs,
    }


def cl(namespace: str, *dns_names: str, **kwargs: Any) -> dict[str, Any]:
    """A cluster-local request from ServiceAccount `namespace:web`."""
    return {
        "signer_name": CLUSTER_LOCAL,
        "username": sa_username(namespace, "web"),
        "dns_names": list(dns_names),
        **kwargs,
    }


KNATIVE_CASES = [
    # --- system requesters -------------------------------------------------
    *(
        pytest.param(
            kn(ns, "kn-routing", "data-plane.knative.dev", "kn-user-anything"),
            APPROVE,
            "knative-system-components",
            id=f"sa-in-{ns}-may-request-every-knative-name",
        )
        for ns in SYSTEM_NAMESPACES
    ),
    pytest.param(
        kn("knative-serving", "kn-user-" + "a" * 63),
        APPROVE,
        "knative-system-components",
        id="system-sa-may-request-kn-user-of-a-63-character-namespace",
    ),
    pytest.param(
        kn("knative-serving", "kn-user-"),
        DENY,
        'dnsNames: "kn-user-" is not allowed',
        id="kn-user-needs-a-namespace-name",
    ),
    pytest.param(
        kn("knative-serving", "kn-user-a.b"),
        DENY,
        '"kn-user-a.b" is not allowed',
        id="kn-user-placeholder-is-one-label-not-a-domain",
    ),
    pytest.param(
        kn("knative-serving", "kn-routing", "example.com"),
        DENY,
        'knative-system-components: spec.request dnsNames: "example.com" is not allowed',
        id="system-sa-may-not-request-other-names",
    ),
    # --- other ServiceAccounts ----------------------------------------------
    pytest.param(
        kn("default", "kn-user-default"),
        APPROVE,
        "knative-system-internal",
        id="sa-may-request-kn-user-of-its-own-namespace",
    ),
    pytest.param(
        kn("default", "kn-user-other"),
        DENY,
        'knative-system-internal: spec.request dnsNames: "kn-user-other" '
        'is not allowed for requester namespace "default"',
        id="sa-may-not-request-kn-user-of-another-namespace",
    ),
    pytest.param(
        kn("default", "kn-routing"),
        DENY,
        '"kn-routing" is not allowed for requester namespace "default"',
        id="sa-in-other-namespace-may-not-request-kn-routing",
    ),
    pytest.param(
        kn("default", "data-plane.knative.dev"),
        DENY,
        '"data-plane.knative.dev" is not allowed',
        id="sa-in-other-namespace-may-not-request-data-plane",
    ),
    pytest.param(
        kn("default-x", "kn-user-default"),
        DENY,
        '"kn-user-default" is not allowed for requester namespace "default-x"',
        id="namespace-with-suffix-may-not-request-the-prefix-namespace",
    ),
    pytest.param(
        kn("default", "kn-user-default-x"),
        DENY,
        '"kn-user-default-x" is not allowed',
        id="namespace-may-not-request-a-longer-namespace-name",
    ),
    pytest.param(
        kn("x-default", "kn-user-default"),
        DENY,
        '"kn-user-default" is not allowed',
        id="namespace-with-prefix-may-not-request-the-suffix-namespace",
    ),
    pytest.param(
        kn("knative-serving-evil", "kn-routing"),
        DENY,
        '"kn-routing" is not allowed for requester namespace "knative-serving-evil"',
        id="system-namespace-name-with-suffix-is-not-a-system-namespace",
    ),
    pytest.param(
        kn("evil-knative-serving", "kn-routing"),
        DENY,
        '"kn-routing" is not allowed',
        id="system-namespace-name-with-prefix-is-not-a-system-namespace",
    ),
    pytest.param(
        {
            **kn("default", "kn-routing"),
            "username": "alice",
            "groups": ("system:serviceaccounts", "system:serviceaccounts:knative-serving"),
        },
        ABSTAIN,
        'applies to requester "alice"',
        id="serviceaccount-groups-without-a-serviceaccount-username-do-not-apply",
    ),
    # --- names that look right but are not ---------------------------------
    pytest.param(
        kn("knative-serving", "kn-routing."),
        DENY,
        '"kn-routing."',
        id="trailing-dot-name-is-not-allowed",
    ),
    pytest.param(
        kn("knative-serving", "KN-ROUTING"),
        DENY,
        '"KN-ROUTING"',
        id="upper-case-name-is-not-allowed",
    ),
    pytest.param(
        kn("knative-serving", "*.knative.dev"),
        DENY,
        '"*.knative.dev"',
        id="wildcard-name-is-not-allowed",
    ),
    pytest.param(
        kn("default", "kn-user-*"), DENY, '"kn-user-*"', id="wildcard-kn-user-is-not-allowed"
    ),
    pytest.param(
        kn("knative-serving", "kn-routing.evil.com"),
        DENY,
        '"kn-routing.evil.com"',
        id="allowed-name-as-a-prefix-of-another-domain",
    ),
    # --- requesters the policies do not cover ------------------------------
    pytest.param(
        {**kn("default", "kn-user-default"), "username": "alice"},
        ABSTAIN,
        'no policy for signer "csr-signer.dev/knative-internal" applies to requester "alice"',
        id="user-requester-no-policy-applies",
    ),
    *(
        pytest.param(
            {**kn("default", "kn-user-default"), "username": username},
            ABSTAIN,
            "no policy",
            id=f"malformed-sa-username-{label}-is-not-a-serviceaccount",
        )
        for label, username in [
            ("without-name", "system:serviceaccount:default"),
            ("with-extra-part", "system:serviceaccount:a:b:c"),
            ("with-empty-namespace", "system:serviceaccount::x"),
            ("with-empty-name", "system:serviceaccount:default:"),
            ("with-upper-case-namespace", "system:serviceaccount:Default:x"),
            ("with-trailing-space", "system:serviceaccount:default:web "),
        ]
    ),
]

CLUSTER_LOCAL_CASES = [
    pytest.param(
        cl("default", "web.default", "web.default.svc", "web.default.svc.cluster.local"),
        APPROVE,
        "cluster-local-services",
        id="sa-may-request-the-three-service-names-in-its-namespace",
    ),
    pytest.param(
        cl("default", "db.default.svc", "cache.default.svc"),
        APPROVE,
        "cluster-local-services",
        id="sa-may-request-several-services-in-its-namespace",
    ),
    pytest.param(
        cl("default", "web.other.svc"),
        DENY,
        '"web.other.svc" is not allowed for requester namespace "default"',
        id="sa-may-not-request-a-service-in-another-namespace",
    ),
    pytest.param(
        cl("default-x", "web.default.svc"),
        DENY,
        '"web.default.svc" is not allowed for requester namespace "default-x"',
        id="namespace-with-suffix-may-not-request-the-prefix-namespace",
    ),
    pytest.param(
        cl("default", "web.default-x.svc"),
        DENY,
        '"web.default-x.svc"',
        id="namespace-may-not-request-a-longer-namespace",
    ),
    pytest.param(
        cl("default", "a.web.default.svc"),
        DENY,
        '"a.web.default.svc"',
        id="service-is-one-label-not-several",
    ),
    pytest.param(
        cl("default", "default.svc"), DENY, '"default.svc"', id="service-label-is-required"
    ),
    pytest.param(
        cl("default", "a" * 64 + ".default.svc"),
        DENY,
        "is not allowed",
        id="service-label-is-at-most-63-characters",
    ),
    pytest.param(
        cl("default", "a" * 63 + ".default.svc"),
        APPROVE,
        "cluster-local-services",
        id="service-label-of-63-characters-is-allowed",
    ),
    pytest.param(
        cl("default", "-web.default.svc"), DENY, '"-web', id="service-label-must-start-alphanumeric"
    ),
    pytest.param(
        cl("default", "web_1.default.svc"), DENY, '"web_1', id="service-label-has-no-underscore"
    ),
    pytest.param(
        cl("default", "*.default.svc"),
        DENY,
        '"*.default.svc"',
        id="wildcard-service-is-not-allowed",
    ),
    pytest.param(
        cl("default", "web.default.svc."),
        DENY,
        '"web.default.svc."',
        id="trailing-dot-is-not-allowed",
    ),
    pytest.param(
        cl("default", "Web.default.svc"), DENY, '"Web.default.svc"', id="upper-case-is-not-allowed"
    ),
    pytest.param(
        cl("default", "web.default.svc.cluster.local.evil.com"),
        DENY,
        '"web.default.svc.cluster.local.evil.com"',
        id="cluster-domain-is-a-suffix-not-a-prefix",
    ),
    pytest.param(
        cl("default", "web.default.svc.example.org"),
        DENY,
        '"web.default.svc.example.org"',
        id="other-cluster-domain-is-not-allowed-by-default",
    ),
    pytest.param(
        cl("default"),
        DENY,
        "cluster-local-services: spec.request dnsNames: at least 1 DNS name required, found 0",
        id="at-least-one-dns-name",
    ),
    # --- DNS SANs only -------------------------------------------------------
    pytest.param(
        cl("default", "web.default.svc", ip_addresses=["10.0.0.1"]),
        DENY,
        'spec.request ipAddresses: "10.0.0.1" is not in an allowed range',
        id="ip-sans-are-not-allowed",
    ),
    pytest.param(
        cl("default", "web.default.svc", uris=["spiffe://cluster.local/ns/default/sa/web"]),
        DENY,
        'spec.request uris: "spiffe://cluster.local/ns/default/sa/web" is not allowed',
        id="uri-sans-are-not-allowed",
    ),
    pytest.param(
        cl("default", "web.default.svc", emails=["web@default.svc"]),
        DENY,
        'spec.request emailAddresses: "web@default.svc" is not allowed',
        id="email-sans-are-not-allowed",
    ),
    # --- subject -------------------------------------------------------------
    pytest.param(
        cl("default", "web.default.svc", common_name="web.default.svc"),
        APPROVE,
        "cluster-local-services",
        id="cn-may-be-one-of-the-dns-names",
    ),
    pytest.param(
        cl("default", "web.default.svc", common_name="admin"),
        DENY,
        'spec.request subject: CN "admin" must be empty or one of the requested DNS names',
        id="cn-must-be-one-of-the-dns-names",
    ),
    pytest.param(
        cl("default", "web.default.svc", organizations=["system:masters"]),
        DENY,
        'spec.request subject: O "system:masters" is not allowed',
        id="organizations-are-not-allowed",
    ),
    pytest.param(
        cl("default", "web.default.svc", extra_subject=["OU"]),
        DENY,
        "spec.request subject: attribute OU is not allowed",
        id="other-subject-attributes-are-not-allowed",
    ),
    # --- keys ----------------------------------------------------------------
    pytest.param(
        cl("default", "web.default.svc", key_type="rsa-1024"),
        DENY,
        "spec.request publicKey: RSA 1024 is not allowed "
        "(allowed: RSA >= 2048 bits, ECDSA P-256/P-384, Ed25519)",
        id="rsa-1024-is-too-weak",
    ),
    *(
        pytest.param(
            cl("default", "web.default.svc", key_type=key_type),
            APPROVE,
            "cluster-local-services",
            id=f"{key_type}-is-allowed",
        )
        for key_type in ("rsa-2048", "rsa-3072", "ecdsa-p256", "ecdsa-p384", "ed25519")
    ),
    pytest.param(
        cl("default", "web.default.svc", key_type="ecdsa-p521"),
        DENY,
        "spec.request publicKey: ECDSA P-521 is not allowed",
        id="ecdsa-p521-is-not-allowed",
    ),
    # --- usages --------------------------------------------------------------
    pytest.param(
        cl("default", "web.default.svc", usages=("client auth",)),
        APPROVE,
        "cluster-local-services",
        id="client-auth-alone-is-enough",
    ),
    pytest.param(
        cl("default", "web.default.svc", usages=("digital signature", "server auth", "cert sign")),
        DENY,
        'spec.usages: "cert sign" is not allowed',
        id="ca-usage-cert-sign-is-not-allowed",
    ),
    pytest.param(
        cl("default", "web.default.svc", usages=("server auth", "code signing")),
        DENY,
        'spec.usages: "code signing" is not allowed',
        id="usages-outside-the-tls-set-are-not-allowed",
    ),
    pytest.param(
        cl("default", "web.default.svc", usages=("digital signature", "key encipherment")),
        DENY,
        'spec.usages: one of "server auth", "client auth" is required',
        id="server-auth-or-client-auth-is-required",
    ),
    pytest.param(
        cl("default", "web.default.svc", usages=("server auth", "bogus")),
        DENY,
        'spec.usages: "bogus" is not a known usage',
        id="unknown-usage-is-reported",
    ),
    # --- not a CA ------------------------------------------------------------
    pytest.param(
        cl("default", "web.default.svc", request_ca=True),
        DENY,
        "spec.request basicConstraints: requests a CA certificate",
        id="ca-request-is-denied",
    ),
]


def _request(row: dict[str, Any]) -> Any:
    """csr_request(**row), with `extra_subject` given as short names (OU, C)."""
    row = dict(row)
    extra = {"OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "C": NameOID.COUNTRY_NAME}
    if "extra_subject" in row:
        row["extra_subject"] = [
            x509.NameAttribute(extra[n], "XX" if n == "C" else "eng") for n in row["extra_subject"]
        ]
    return csr_request(**row)


@pytest.mark.parametrize(("row", "outcome", "expected"), KNATIVE_CASES + CLUSTER_LOCAL_CASES)
def test_bundled_policy_rule(
    bundled: PolicySet, row: dict[str, Any], outcome: Outcome, expected: str
) -> None:
    decision = decide(_request(row), bundled)
    assert decision.outcome is outcome, decision.reasons
    if outcome is APPROVE:
        assert decision.policy == expected
        assert decision.reasons == (f"{expected}: approved: every requested value is allowed",)
    else:
        assert any(expected in reason for reason in decision.reasons), decision.reasons


@pytest.mark.parametrize(
    ("cluster_domain", "name", "outcome"),
    [
        pytest.param(
            "example.org",
            "web.default.svc.example.org",
            APPROVE,
            id="configured-cluster-domain-is-allowed",
        ),
        pytest.param(
            "example.org",
            "web.default.svc.cluster.local",
            DENY,
            id="configured-domain-replaces-cluster-local",
        ),
        pytest.param(
            "cluster.local",
            "web.default.svc.cluster.local",
            APPROVE,
            id="cluster-local-is-the-default",
        ),
    ],
)
def test_cluster_domain_comes_from_configuration(
    bundled: PolicySet, cluster_domain: str, name: str, outcome: Outcome
) -> None:
    decision = decide(csr_request(dns_names=[name]), bundled, cluster_domain=cluster_domain)
    assert decision.outcome is outcome, decision.reasons


def test_every_violation_is_reported_in_a_fixed_order(bundled: PolicySet) -> None:
    request = csr_request(
        usages=("cert sign", "digital signature"),
        dns_names=["web.other.svc", "web.default.svc", "Web.default.svc"],
        ip_addresses=["10.0.0.1"],
        uris=["spiffe://x"],
        emails=["a@b.c"],
        common_name="admin",
        organizations=["system:masters"],
        key_type="rsa-1024",
        request_ca=True,
    )
    decision = decide(request, bundled)
    assert decision.outcome is DENY
    assert decision.policy == "cluster-local-services"
    p = "cluster-local-services: "
    assert decision.reasons == (
        p
        + 'spec.request dnsNames: "web.other.svc" is not allowed for requester namespace "default"',
        p
        + 'spec.request dnsNames: "Web.default.svc" is not allowed for requester namespace "default"',
        p + 'spec.request ipAddresses: "10.0.0.1" is not in an allowed range',
        p + 'spec.request uris: "spiffe://x" is not allowed for requester namespace "default"',
        p + 'spec.request emailAddresses: "a@b.c" is not allowed for requester namespace "default"',
        p + 'spec.request subject: O "system:masters" is not allowed',
        p + 'spec.request subject: CN "admin" must be empty or one of the requested DNS names',
        p + "spec.request basicConstraints: requests a CA certificate (CA:TRUE); "
        "CA certificates are never issued",
        p + "spec.request publicKey: RSA 1024 is not allowed "
        "(allowed: RSA >= 2048 bits, ECDSA P-256/P-384, Ed25519)",
        p + 'spec.usages: "cert sign" is not allowed',
        p + 'spec.usages: one of "server auth", "client auth" is required',
    )
    assert decide(request, bundled) == decision


def test_several_applicable_policies_deny_with_all_reasons_in_load_order(
    bundled: PolicySet,
) -> None:
    decision = decide(csr_request(**kn("knative-serving", "kn-routing", "evil.com")), bundled)
    assert decision.outcome is DENY
    assert decision.policy is None
    assert decision.reasons == (
        'knative-system-components: spec.request dnsNames: "evil.com" is not allowed '
        'for requester namespace "knative-serving"',
        'knative-system-internal: spec.request dnsNames: "kn-routing" is not allowed '
        'for requester namespace "knative-serving"',
        'knative-system-internal: spec.request dnsNames: "evil.com" is not allowed '
        'for requester namespace "knative-serving"',
    )


@pytest.mark.parametrize(
    ("signer_name", "pem", "outcome", "reason"),
    [
        pytest.param(
            CLUSTER_LOCAL,
            b"not a csr",
            DENY,
            "spec.request is neither PEM nor DER PKCS#10",
            id="garbage-request-is-denied-by-a-governed-signer",
        ),
        pytest.param(
            CLUSTER_LOCAL, b"", DENY, "spec.request is empty", id="empty-request-is-denied"
        ),
        pytest.param(
            CLUSTER_LOCAL,
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            DENY,
            "spec.request is not a valid PKCS#10 request",
            id="truncated-pem-is-denied",
        ),
        pytest.param(
            CLUSTER_LOCAL,
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            DENY,
            "not a CERTIFICATE REQUEST",
            id="certificate-instead-of-request-is-denied",
        ),
        pytest.param(
            "example.com/other",
            b"not a csr",
            ABSTAIN,
            'no policy governs signer "example.com/other"',
            id="garbage-for-an-ungoverned-signer-is-none-of-our-business",
        ),
        pytest.param(
            "kubernetes.io/kube-apiserver-client",
            None,
            ABSTAIN,
            "no policy governs signer",
            id="valid-request-for-an-ungoverned-signer-abstains",
        ),
    ],
)
def test_unusable_requests_and_ungoverned_signers(
    bundled: PolicySet, signer_name: str, pem: bytes | None, outcome: Outcome, reason: str
) -> None:
    decision = decide(csr_request(signer_name=signer_name, pem=pem), bundled)
    assert decision.outcome is outcome
    assert decision.policy is None
    assert len(decision.reasons) == 1
    assert reason in decision.reasons[0]


def test_tampered_signature_is_denied(bundled: PolicySet) -> None:
    decision = decide(csr_request(tamper=True), bundled)
    assert decision.outcome is DENY
    assert decision.reasons == ("spec.request: the request's self-signature does not verify",)


def test_bundled_set_governs_both_signers_and_abstains_by_default(bundled: PolicySet) -> None:
    assert bundled.signer_names == {KNATIVE, CLUSTER_LOCAL}
    assert bundled.when_no_policy_applies(KNATIVE) is ABSTAIN
    assert bundled.when_no_policy_applies(CLUSTER_LOCAL) is ABSTAIN


def pcr(namespace: str, service_account: str = "web", **overrides: Any) -> PodRequest:
    """A PodCertificateRequest for the knative-internal signer from `namespace:web`."""
    fields: dict[str, Any] = {
        "signer_name": KNATIVE,
        "namespace": namespace,
        "service_account": service_account,
        "pod_name": "web-0",
        "pod_uid": "uid-1",
        "node_name": "node-1",
        "key": KeyInfo("ecdsa", 256, curve="secp256r1"),
    }
    fields.update(overrides)
    return PodRequest(**fields)


@pytest.mark.parametrize(
    ("request_", "outcome", "expected"),
    [
        pytest.param(
            pcr("default"),
            APPROVE,
            ("kn-user-default",),
            id="pod-gets-kn-user-of-its-own-namespace",
        ),
        pytest.param(
            pcr("knative-serving", "controller"),
            APPROVE,
            ("kn-user-knative-serving",),
            id="knative-component-pod-gets-kn-user-of-its-namespace-only",
        ),
        pytest.param(
            pcr("default", "web.v2"),
            APPROVE,
            ("kn-user-default",),
            id="dotted-serviceaccount-still-gets-its-namespace-name",
        ),
        pytest.param(
            pcr("default", annotations={"csr-signer.dev/dns-names": "kn-routing"}),
            DENY,
            "knative-system-internal: spec.unverifiedUserAnnotations csr-signer.dev/dns-names: "
            '"kn-routing" is not allowed for requester namespace "default"',
            id="pod-may-not-ask-for-kn-routing",
        ),
        pytest.param(
            pcr("knative-serving", annotations={"csr-signer.dev/dns-names": "kn-routing"}),
            DENY,
            '"kn-routing" is not allowed for requester namespace "knative-serving"',
            id="not-even-a-knative-pod-the-components-policy-serves-no-pods",
        ),
        pytest.param(
            pcr("default", key=KeyInfo("ecdsa", 521, curve="secp521r1")),
            DENY,
            "UnsupportedKeyType: knative-system-internal: publicKey: ECDSA P-521 is not allowed",
            id="ecdsa-p521-key-type-is-unsupported",
        ),
        pytest.param(
            pcr("default", signer_name=CLUSTER_LOCAL),
            DENY,
            'NoPolicy: no policy for signer "csr-signer.dev/cluster-local" issues pod '
            'certificates to ServiceAccount "web" in namespace "default" '
            "(policy cluster-local-services applies, but has no podCertificate section)",
            id="cluster-local-serves-no-pods",
        ),
    ],
)
def test_bundled_policy_pod_certificates(
    bundled: PolicySet, request_: PodRequest, outcome: Outcome, expected: tuple[str, ...] | str
) -> None:
    decision, grant = decide_pod(request_, bundled)
    assert decision.outcome is outcome, decision.reasons
    if outcome is APPROVE:
        assert decision.policy == "knative-system-internal"
        assert grant is not None
        assert (grant.dns_names, grant.uris) == (expected, ())
    else:
        assert grant is None
        assert any(str(expected) in reason for reason in decision.reasons), decision.reasons
