"""Trust distribution against the real apiserver: ClusterTrustBundles, Knative ConfigMaps,
and a CA rotation without downtime, with the controller under deploy/rbac.yaml.

Isolation from tests/e2e/test_controller.py (same session, same cluster): this
module's controller keeps its CA Secret and Lease in its own namespace
`trust-e2e` (Secret `trust-e2e-ca`, Lease `trust-e2e`, identity
`trust-e2e-controller`). deploy/rbac.yaml's Role only lets the ServiceAccount
read the Secret `csr-signer-ca` and the Lease `csr-signer` in `csr-signer`, so
the fixture adds a Role in `trust-e2e` mirroring it for the new names, instead
of reusing those names. Two controllers can therefore never share a Lease or
a CA, whatever order (or overlap) the modules run in. What they do share are
the ClusterTrustBundle names, fixed per signer: this module's controller
adopts bundles the other left behind (instance label `csr-signer`), which is
the documented adoption rule, and every assertion here waits for *this*
controller's content. The stale-cleanup test drives a `TrustPublisher`
directly with its own signer names, namespaces and instance label, so it
cannot race the running controller's periodic re-sync.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from csr_signer_dev.controlplane import ControlPlane
from csr_signer_dev.identities import ensure_namespace
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from signer.kube.errors import ApiError
from signer.kube.trust import SyncResult, TrustPublisher
from signer.pki.ca import generate_root
from signer.trust import (
    CONFIG_MAP,
    INSTANCE_LABEL,
    KNATIVE_TRUST_LABEL,
    MANAGED_BY_LABEL,
    ObjectKey,
    TrustTargets,
    cluster_trust_bundle_name,
)
from tests.data.csrs import build_csr_pem
from tests.e2e.conftest import ClientFactory
from tests.e2e.kube import (
    ca_secret,
    create_csr,
    grant,
    install,
    put_secret,
    running_controller,
    types,
    wait_final,
    wait_until,
)

CLUSTER_LOCAL = "csr-signer.dev/cluster-local"
KNATIVE = "csr-signer.dev/knative-internal"
SIGNERS = (CLUSTER_LOCAL, KNATIVE)
SA = ("csr-signer", "csr-signer")
NAMESPACE = "trust-e2e"
CA_SECRET = "trust-e2e-ca"
LEASE = "trust-e2e"
TRUST_NAMESPACE = "knative-serving"
CONFIGMAP = "csr-signer-trust-bundle"
RESYNC_SECONDS = 10


@dataclass
class Running:
    api: client.ApiClient
    """The controller ServiceAccount's own client."""
    ca1: tuple[bytes, bytes]


def tls_secret(
    cert_pem: bytes, key_pem: bytes, *, ca_crt: bytes | None = None, next_ca: bytes | None = None
) -> dict[str, Any]:
    return ca_secret(
        cert_pem,
        key_pem,
        name=CA_SECRET,
        namespace=NAMESPACE,
        roots_pem=ca_crt,
        next_ca_pem=next_ca,
    )


async def role_for_controller(
    admin: client.ApiClient, namespace: str, name: str, rules: list[dict[str, Any]]
) -> None:
    """A Role in `namespace` bound to the controller's ServiceAccount (create or replace)."""
    rbac = client.RbacAuthorizationV1Api(admin)
    await ensure_namespace(admin, namespace)
    role = {"metadata": {"name": name, "namespace": namespace}, "rules": rules}
    binding = {
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "namespace": SA[0], "name": SA[1]}],
    }
    for create, replace, body in (
        (rbac.create_namespaced_role, rbac.replace_namespaced_role, role),
        (rbac.create_namespaced_role_binding, rbac.replace_namespaced_role_binding, binding),
    ):
        try:
            await create(namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            await replace(name, namespace, body)


def configmap_rules(name: str) -> list[dict[str, Any]]:
    """What deploy/rbac.yaml grants in knative-serving, for another ConfigMap name."""
    return [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [name],
            "verbs": ["get", "update", "delete"],
        },
    ]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def controller(
    control_plane: ControlPlane,
    admin_api: client.ApiClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Running]:
    installed = await install(control_plane, admin_api, tmp_path_factory.mktemp("policies"))
    await role_for_controller(
        admin_api,
        NAMESPACE,
        "csr-signer-trust-e2e",
        [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": [CA_SECRET],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": [LEASE],
                "verbs": ["get", "update"],
            },
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        ],
    )
    ca1 = generate_root("trust e2e CA1", "ecdsa-p256", 30, dt.datetime.now(dt.UTC))
    await put_secret(admin_api, tls_secret(*ca1))
    async with running_controller(
        control_plane,
        installed,
        signer_names=SIGNERS,
        ca_secret_namespace=NAMESPACE,
        ca_secret_name=CA_SECRET,
        lease_namespace=NAMESPACE,
        lease_name=LEASE,
        identity="trust-e2e-controller",
        resync_seconds=RESYNC_SECONDS,
        trust_bundle_namespaces=(TRUST_NAMESPACE,),
    ) as running:
        yield Running(api=running.api, ca1=ca1)


# -- reading back what was published -------------------------------------------------------


async def read_bundle(admin: client.ApiClient, signer: str) -> Any:
    return await client.CertificatesV1beta1Api(admin).read_cluster_trust_bundle(
        cluster_trust_bundle_name(signer)
    )


async def read_configmap(admin: client.ApiClient, namespace: str, name: str) -> Any:
    return await client.CoreV1Api(admin).read_namespaced_config_map(name, namespace)


def common_names(pem_text: str) -> list[str]:
    return [
        str(c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
        for c in x509.load_pem_x509_certificates(pem_text.encode())
    ]


async def published(admin: client.ApiClient) -> dict[str, list[str]]:
    """Where each consumer looks -> the CAs it finds there (common names, in order)."""
    found: dict[str, list[str]] = {}
    for signer in SIGNERS:
        try:
            bundle = await read_bundle(admin, signer)
            found[signer] = common_names(bundle.spec.trust_bundle)
        except ApiException as exc:
            if exc.status != 404:
                raise
            found[signer] = []
    try:
        configmap = await read_configmap(admin, TRUST_NAMESPACE, CONFIGMAP)
        found[TRUST_NAMESPACE] = common_names(configmap.data["ca.crt"])
    except ApiException as exc:
        if exc.status != 404:
            raise
        found[TRUST_NAMESPACE] = []
    return found


async def wait_published(admin: client.ApiClient, expected: list[str], what: str) -> None:
    want = dict.fromkeys([*SIGNERS, TRUST_NAMESPACE], expected)
    last: dict[str, list[str]] = {}

    async def check() -> bool:
        nonlocal last
        last = await published(admin)
        return last == want

    try:
        await wait_until(check, what=what, timeout=RESYNC_SECONDS * 3)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; published: {last}") from None


async def trust_bundle_pem(admin: client.ApiClient) -> bytes:
    """What a Knative component would load: the ConfigMap's PEM, read from the apiserver."""
    configmap = await read_configmap(admin, TRUST_NAMESPACE, CONFIGMAP)
    data: str = configmap.data["ca.crt"]
    return data.encode()


def verifies(chain_b64: str, bundle_pem: bytes) -> bool:
    """Does the issued chain verify, as a TLS server, against these trust anchors?"""
    chain = x509.load_pem_x509_certificates(base64.b64decode(chain_b64))
    dns = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    verifier = (
        PolicyBuilder()
        .store(Store(x509.load_pem_x509_certificates(bundle_pem)))
        .time(dt.datetime.now(dt.UTC))
        .build_server_verifier(x509.DNSName(dns.get_values_for_type(x509.DNSName)[0]))
    )
    try:
        verifier.verify(chain[0], chain[1:])
    except VerificationError:
        return False
    return True


async def issue(admin: client.ApiClient, client_as: ClientFactory, name: str) -> str:
    """A real CSR through the running controller; returns the issued chain (base64 PEM)."""
    requester = await client_as(serviceaccount=("team-a", "app"))
    await create_csr(
        requester, name, build_csr_pem(dns_names=["web.team-a.svc"]), signer_name=CLUSTER_LOCAL
    )
    csr = await wait_final(admin, name)
    assert types(csr) == ["Approved"]
    chain: str = csr.status.certificate
    return chain


def issuer_of(chain_b64: str) -> str:
    leaf = x509.load_pem_x509_certificates(base64.b64decode(chain_b64))[0]
    return str(leaf.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


# -- the tests -----------------------------------------------------------------------------


async def test_bundles_are_linked_to_each_signer_and_labeled_for_their_consumers(
    controller: Running, admin_api: client.ApiClient
) -> None:
    await put_secret(admin_api, tls_secret(*controller.ca1))
    await wait_published(admin_api, ["trust e2e CA1"], "CA1 published")
    for signer in SIGNERS:
        bundle = await read_bundle(admin_api, signer)
        assert bundle.metadata.name == signer.replace("/", ":") + ":bundle"
        assert bundle.spec.signer_name == signer
        assert bundle.metadata.labels[MANAGED_BY_LABEL] == "csr-signer"
        assert bundle.metadata.labels[INSTANCE_LABEL] == NAMESPACE
    configmap = await read_configmap(admin_api, TRUST_NAMESPACE, CONFIGMAP)
    assert configmap.metadata.labels[KNATIVE_TRUST_LABEL] == "true"
    assert configmap.metadata.labels[MANAGED_BY_LABEL] == "csr-signer"
    assert set(configmap.data) == {"ca.crt"}


async def test_ca_rotation_without_downtime(
    controller: Running,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    unique: str,
) -> None:
    """Knative's recipe: publish the next CA, switch, keep the old root for a grace period."""
    ca1_cert, ca1_key = controller.ca1
    ca2_cert, ca2_key = generate_root("trust e2e CA2", "ecdsa-p384", 30, dt.datetime.now(dt.UTC))

    # 1. CA1 signs and is the only trust anchor.
    await put_secret(admin_api, tls_secret(ca1_cert, ca1_key))
    await wait_published(admin_api, ["trust e2e CA1"], "step 1: CA1 only")
    leaf1 = await issue(admin_api, client_as, f"rot1-{unique}")
    assert issuer_of(leaf1) == "trust e2e CA1"
    assert verifies(leaf1, await trust_bundle_pem(admin_api))

    # 2. CA2 is announced as next-ca.crt: trusted everywhere before it signs anything.
    await put_secret(admin_api, tls_secret(ca1_cert, ca1_key, next_ca=ca2_cert))
    await wait_published(admin_api, ["trust e2e CA1", "trust e2e CA2"], "step 2: CA1 + CA2")
    leaf2 = await issue(admin_api, client_as, f"rot2-{unique}")
    assert issuer_of(leaf2) == "trust e2e CA1", "the next CA is published, never used"

    # 3. Switch: CA2 signs; ca.crt keeps CA1 so its certificates still verify.
    await put_secret(admin_api, tls_secret(ca2_cert, ca2_key, ca_crt=ca2_cert + ca1_cert))
    await wait_published(admin_api, ["trust e2e CA2", "trust e2e CA1"], "step 3: switched")
    leaf3 = await issue(admin_api, client_as, f"rot3-{unique}")
    assert issuer_of(leaf3) == "trust e2e CA2"
    bundle = await trust_bundle_pem(admin_api)
    assert verifies(leaf3, bundle), "new certificates chain to CA2"
    assert verifies(leaf1, bundle) and verifies(leaf2, bundle), "CA1's certificates still work"
    assert not verifies(leaf3, ca1_cert) and verifies(leaf3, ca2_cert)

    # 4. After the grace period (the longest CA1 leaf has expired), CA1 leaves the bundles.
    await put_secret(admin_api, tls_secret(ca2_cert, ca2_key, ca_crt=ca2_cert))
    await wait_published(admin_api, ["trust e2e CA2"], "step 4: CA2 only")
    bundle = await trust_bundle_pem(admin_api)
    assert verifies(leaf3, bundle)
    assert not verifies(leaf1, bundle), "CA1 is no longer trusted: wait out its leaves first"


async def test_drift_is_repaired_by_the_periodic_resync(
    controller: Running, admin_api: client.ApiClient
) -> None:
    await put_secret(admin_api, tls_secret(*controller.ca1))
    await wait_published(admin_api, ["trust e2e CA1"], "CA1 published")
    intruder, _ = generate_root("intruder", "ecdsa-p256", 1, dt.datetime.now(dt.UTC))
    bundle = await read_bundle(admin_api, KNATIVE)
    bundle.spec.trust_bundle = intruder.decode()
    await client.CertificatesV1beta1Api(admin_api).replace_cluster_trust_bundle(
        bundle.metadata.name, bundle
    )
    await client.CoreV1Api(admin_api).delete_namespaced_config_map(CONFIGMAP, TRUST_NAMESPACE)
    drifted = await published(admin_api)
    assert drifted[KNATIVE] == ["intruder"] and drifted[TRUST_NAMESPACE] == []
    await wait_published(admin_api, ["trust e2e CA1"], "drift repaired")


async def test_controller_may_attest_only_its_own_signers(controller: Running, unique: str) -> None:
    ca, _ = controller.ca1
    body = {
        "apiVersion": "certificates.k8s.io/v1beta1",
        "kind": "ClusterTrustBundle",
        "metadata": {"name": f"example.com:other:{unique}"},
        "spec": {"signerName": "example.com/other", "trustBundle": ca.decode()},
    }
    with pytest.raises(ApiException) as forbidden:
        await client.CertificatesV1beta1Api(controller.api).create_cluster_trust_bundle(body)
    assert forbidden.value.status == 403
    assert "attest" in forbidden.value.body


KNATIVE_CONFIG = {
    "metadata": {"name": "config-network", "namespace": TRUST_NAMESPACE},
    "data": {"ingress-class": "kourier.ingress.networking.knative.dev"},
}


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda core: core.list_namespaced_config_map(TRUST_NAMESPACE),
            id="cannot-list-configmaps-in-a-trust-namespace",
        ),
        pytest.param(
            lambda core: core.replace_namespaced_config_map(
                "config-network", TRUST_NAMESPACE, KNATIVE_CONFIG
            ),
            id="cannot-update-knatives-own-configmaps",
        ),
        pytest.param(
            lambda core: core.delete_namespaced_config_map("config-network", TRUST_NAMESPACE),
            id="cannot-delete-knatives-own-configmaps",
        ),
    ],
)
async def test_controller_reaches_only_its_own_configmap(
    controller: Running,
    admin_api: client.ApiClient,
    call: Callable[[client.CoreV1Api], Awaitable[Any]],
) -> None:
    try:
        await client.CoreV1Api(admin_api).create_namespaced_config_map(
            TRUST_NAMESPACE, KNATIVE_CONFIG
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    with pytest.raises(ApiException) as forbidden:
        await call(client.CoreV1Api(controller.api))
    assert forbidden.value.status == 403


STALE_SIGNERS = ("e2e-stale.csr-signer.dev/one", "e2e-stale.csr-signer.dev/two")
STALE_NAMESPACES = ("trust-e2e-a", "trust-e2e-b")
STALE_CONFIGMAP = "trust-e2e-stale"


async def test_stale_bundles_and_configmaps_are_removed_but_not_another_installations(
    controller: Running, admin_api: client.ApiClient
) -> None:
    """Publish for two signers and two namespaces, then for one of each: the rest goes."""
    other_signer = "e2e-stale.csr-signer.dev/three"
    await grant(
        admin_api,
        "e2e-trust-stale",
        [
            {
                "api_groups": ["certificates.k8s.io"],
                "resources": ["signers"],
                "resource_names": list(STALE_SIGNERS),
                "verbs": ["attest"],
            },
            {
                "api_groups": ["certificates.k8s.io"],
                "resources": ["clustertrustbundles"],
                "resource_names": [cluster_trust_bundle_name(s) for s in STALE_SIGNERS],
                "verbs": ["get", "update", "delete"],
            },
        ],
        serviceaccounts=(SA,),
    )
    for namespace in STALE_NAMESPACES:
        await role_for_controller(
            admin_api, namespace, "csr-signer-trust-stale", configmap_rules(STALE_CONFIGMAP)
        )
    ctbs = client.CertificatesV1beta1Api(admin_api)
    ca, _ = controller.ca1
    someone_elses = {
        "metadata": {
            "name": cluster_trust_bundle_name(other_signer),
            "labels": {MANAGED_BY_LABEL: "csr-signer", INSTANCE_LABEL: "someone-else"},
        },
        "spec": {"signerName": other_signer, "trustBundle": ca.decode()},
    }
    try:
        await ctbs.create_cluster_trust_bundle(someone_elses)
    except ApiException as exc:
        if exc.status != 409:
            raise

    def publisher(signers: tuple[str, ...], namespaces: tuple[str, ...]) -> TrustPublisher:
        targets = TrustTargets(
            signer_names=signers,
            namespaces=namespaces,
            configmap_name=STALE_CONFIGMAP,
            configmap_key="ca.crt",
            instance="trust-e2e-stale",
            configmap_signer=signers[0],
        )
        return TrustPublisher(controller.api, targets=targets)

    async def synced(p: TrustPublisher) -> SyncResult | None:
        """A clean sync, retried while the new RBAC propagates to the apiserver's cache."""
        try:
            result = await p.sync(dict.fromkeys(p.targets.signer_names, ca))
        except ApiError:
            return None
        return result if result.ok else None

    try:
        first = await wait_until(
            lambda: synced(publisher(STALE_SIGNERS, STALE_NAMESPACES)), what="first publish"
        )
        assert {c.action for c in first.applied} <= {"create", "update"}
        for signer in STALE_SIGNERS:
            assert (await ctbs.read_cluster_trust_bundle(cluster_trust_bundle_name(signer))).spec
        for namespace in STALE_NAMESPACES:
            assert await read_configmap(admin_api, namespace, STALE_CONFIGMAP)

        second: SyncResult = await wait_until(
            lambda: synced(publisher(STALE_SIGNERS[:1], STALE_NAMESPACES[:1])),
            what="second publish",
        )
        deleted = sorted(str(c.key) for c in second.applied if c.action == "delete")
        assert deleted == [
            f"ClusterTrustBundle {cluster_trust_bundle_name(STALE_SIGNERS[1])}",
            str(ObjectKey(CONFIG_MAP, STALE_NAMESPACES[1], STALE_CONFIGMAP)),
        ]
        with pytest.raises(ApiException) as gone:
            await ctbs.read_cluster_trust_bundle(cluster_trust_bundle_name(STALE_SIGNERS[1]))
        assert gone.value.status == 404
        with pytest.raises(ApiException) as gone:
            await read_configmap(admin_api, STALE_NAMESPACES[1], STALE_CONFIGMAP)
        assert gone.value.status == 404
        assert await ctbs.read_cluster_trust_bundle(cluster_trust_bundle_name(STALE_SIGNERS[0]))
        assert await read_configmap(admin_api, STALE_NAMESPACES[0], STALE_CONFIGMAP)
        kept = await ctbs.read_cluster_trust_bundle(cluster_trust_bundle_name(other_signer))
        assert kept.metadata.labels[INSTANCE_LABEL] == "someone-else"
    finally:
        for name in [cluster_trust_bundle_name(s) for s in (*STALE_SIGNERS, other_signer)]:
            try:
                await ctbs.delete_cluster_trust_bundle(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
