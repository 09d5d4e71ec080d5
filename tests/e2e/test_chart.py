"""The Helm chart against the real apiserver: it lints, applies, and its RBAC is exactly enough.

Two releases are rendered with the pinned helm and applied with
``kubectl apply --server-side`` (no pods run: the control plane has no nodes):
``chart-e2e`` with the chart's default values (a CA Secret per signer name,
brought by the test), and ``chart-custom`` with other signer names, one of them
with a CA of its own (``signerCAs``), other trust-bundle namespaces, and
``ca.create`` generating both CAs. Each has its
own namespace and a release name other than ``csr-signer``, so its
cluster-scoped objects (``<release>-csr-signer``) never collide with
deploy/rbac.yaml, which tests/e2e/test_controller.py applies in the same cluster.

The RBAC proof uses real calls with a token of the release's ServiceAccount
(TokenRequest API), one table row per permission: what the controller needs
succeeds, and each nearby thing it must not do is refused with 403 by the
apiserver's own authorizer and admission (``attest`` on ClusterTrustBundles).
The controller may read each CA Secret its release uses and no other Secret:
not another one in its namespace, not another release's CAs.

Objects whose names are shared across the session (the default release's
ClusterTrustBundle and Knative ConfigMap names, used by test_trust.py too)
are only ever created if absent and deleted only if this module created them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from csr_signer_dev.controlplane import ControlPlane
from csr_signer_dev.helm import helm, helm_path, render_manifests, resolve_helm, template
from csr_signer_dev.identities import api_client, ensure_namespace, serviceaccount_credentials
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from signer.config import DEFAULT_SIGNER_NAMES, KNATIVE_SIGNER
from signer.pki.ca import generate_root
from signer.pki.podcerts import denied_status
from signer.trust import cluster_trust_bundle_name
from tests.data.csrs import build_csr_pem, self_signed_pem
from tests.e2e.kube import condition, create_csr, revoke_csr_creators
from tests.e2e.pcrs import create_pcr, pcr_body, read_pcr

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "chart" / "csr-signer"
OTHER_SIGNER = "example.com/other"

# A cold machine builds helm (~100 s on 2 cores) in the first test's setup.
pytestmark = pytest.mark.timeout(120 if helm_path().is_file() else 1200)


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    values: dict[str, Any] = field(default_factory=dict)
    signer_names: tuple[str, ...] = DEFAULT_SIGNER_NAMES
    trust_namespaces: tuple[str, ...] = ("knative-serving",)
    ca_secrets: tuple[str, ...] = ("csr-signer-ca", "csr-signer-knative-ca")
    """Every CA Secret the release uses (one per signer name here)."""
    signer_cas: str = "csr-signer.dev/knative-internal=chart-e2e/csr-signer-knative-ca"
    """The CSR_SIGNER_SIGNER_CAS the Deployment should carry."""
    configmap: str = "csr-signer-trust-bundle"

    @property
    def fullname(self) -> str:
        return f"{self.name}-csr-signer"

    @property
    def lease(self) -> str:
        return str(self.values.get("leaderElection", {}).get("leaseName") or self.fullname)


DEFAULTS = Release("chart-e2e", "chart-e2e")
CUSTOM = Release(
    "chart-custom",
    "chart-custom",
    values={
        "signerNames": ["chart.e2e.example/internal", "chart.e2e.example/edge"],
        "ca": {"create": True, "secretName": "custom-ca"},
        # "" drops the default entry: knative-internal is not served here.
        "signerCAs": {KNATIVE_SIGNER: "", "chart.e2e.example/edge": "custom-edge-ca"},
        "leaderElection": {"leaseName": "custom-lease"},
        "trustBundle": {
            "namespaces": ["chart-trust-a", "chart-trust-b"],
            "configMapName": "ca-bundle",
            "signer": "chart.e2e.example/edge",
        },
        "replicaCount": 3,
    },
    signer_names=("chart.e2e.example/internal", "chart.e2e.example/edge"),
    trust_namespaces=("chart-trust-a", "chart-trust-b"),
    ca_secrets=("custom-ca", "custom-edge-ca"),
    signer_cas="chart.e2e.example/edge=chart-custom/custom-edge-ca",
    configmap="ca-bundle",
)
RELEASES = [pytest.param(DEFAULTS, id="default-values"), pytest.param(CUSTOM, id="custom-values")]


def other_release(release: Release) -> Release:
    return CUSTOM if release is DEFAULTS else DEFAULTS


@pytest.fixture(scope="module")
def helm_binary() -> Path:
    return resolve_helm()


def values_file(tmp: Path, release: Release) -> list[str]:
    if not release.values:
        return []
    path = tmp / f"{release.name}.yaml"
    path.write_text(yaml.safe_dump(release.values))
    return ["--values", str(path)]


def apply(cp: ControlPlane, manifest: str, *extra: str) -> str:
    proc = cp.kubectl(
        "apply",
        "--server-side",
        "--field-manager=chart-e2e",
        *extra,
        "-f",
        "-",
        input=manifest.encode(),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


@dataclass
class Installed:
    release: Release
    sa: client.ApiClient
    """The release ServiceAccount's own client (a TokenRequest token)."""
    admin: client.ApiClient


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def installed(
    control_plane: ControlPlane, admin_api: client.ApiClient, helm_binary: Path
) -> AsyncIterator[dict[str, Installed]]:
    """Both releases rendered, applied server-side, with a client per ServiceAccount."""
    result: dict[str, Installed] = {}
    for release in (DEFAULTS, CUSTOM):
        for namespace in (release.namespace, *release.trust_namespaces):
            await ensure_namespace(admin_api, namespace)
        manifest = template(
            CHART,
            release=release.name,
            namespace=release.namespace,
            values=release.values,
            helm_binary=helm_binary,
        )
        apply(control_plane, manifest)
        creds = await serviceaccount_credentials(admin_api, release.namespace, release.fullname)
        result[release.name] = Installed(release, await api_client(control_plane, creds), admin_api)
        # What the chart forbids must not depend on other modules' grants.
        await revoke_csr_creators(admin_api, (release.namespace, release.fullname))
    core = client.CoreV1Api(admin_api)
    for body in (
        # The default release brings its own CA Secrets (the documented path), and
        # each namespace holds a Secret the controller must not see.
        *(secret(name, DEFAULTS.namespace) for name in DEFAULTS.ca_secrets),
        secret("not-the-ca", DEFAULTS.namespace),
        secret("not-the-ca", CUSTOM.namespace),
    ):
        await core.create_namespaced_secret(body.metadata.namespace, body)
    yield result
    for item in result.values():
        await item.sa.close()


def secret(name: str, namespace: str) -> client.V1Secret:
    cert, key = generate_root(f"{name} root", "ecdsa-p256", 30, dt.datetime.now(dt.UTC))
    return client.V1Secret(
        type="kubernetes.io/tls",
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        data={
            "tls.crt": base64.b64encode(cert).decode(),
            "tls.key": base64.b64encode(key).decode(),
        },
    )


# -- lint and apply ---------------------------------------------------------------------


@pytest.mark.parametrize("release", RELEASES)
def test_helm_lint_strict(helm_binary: Path, tmp_path: Path, release: Release) -> None:
    out = helm(
        "lint", "--strict", str(CHART), *values_file(tmp_path, release), helm_binary=helm_binary
    )
    assert "0 chart(s) failed" in out


def rendered(helm_binary: Path, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The default release rendered with `values`, by kind."""
    manifest = template(
        CHART, release="render", namespace="render", values=values, helm_binary=helm_binary
    )
    return {d["kind"]: d for d in yaml.safe_load_all(manifest) if d}


@pytest.mark.parametrize(
    ("enabled", "rules", "env"),
    [
        pytest.param(True, 2, "true", id="pcr-rules-and-watch-on-by-default"),
        pytest.param(False, 0, "false", id="pod-certificates-off-drops-the-pcr-rules-and-watch"),
    ],
)
def test_pod_certificates_value_gates_the_pcr_rbac(
    helm_binary: Path, enabled: bool, rules: int, env: str
) -> None:
    values = {} if enabled else {"podCertificates": {"enabled": False}}
    objects = rendered(helm_binary, values)
    pcr_rules = [
        r
        for r in objects["ClusterRole"]["rules"]
        if any(res.startswith("podcertificaterequests") for res in r["resources"])
    ]
    assert len(pcr_rules) == rules
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    variables = {e["name"]: e.get("value") for e in container["env"]}
    assert variables["CSR_SIGNER_POD_CERTIFICATES"] == env


@pytest.mark.parametrize("release", RELEASES)
async def test_rendered_chart_is_accepted_by_the_apiserver(
    installed: dict[str, Installed], release: Release
) -> None:
    """Server-side apply validated every object against the real API schema."""
    admin = installed[release.name].admin
    deployment = await client.AppsV1Api(admin).read_namespaced_deployment(
        release.fullname, release.namespace
    )
    assert deployment.spec.replicas == release.values.get("replicaCount", 2)
    container = deployment.spec.template.spec.containers[0]
    env = {e.name: e.value for e in container.env}
    assert env["CSR_SIGNER_SIGNER_NAMES"] == ",".join(release.signer_names)
    assert env["CSR_SIGNER_SIGNER_CAS"] == release.signer_cas
    assert env["CSR_SIGNER_LEASE_NAMESPACE"] == release.namespace
    assert container.security_context.read_only_root_filesystem is True
    pdb = await client.PolicyV1Api(admin).read_namespaced_pod_disruption_budget(
        release.fullname, release.namespace
    )
    assert pdb.spec.max_unavailable == 1
    await client.NetworkingV1Api(admin).read_namespaced_network_policy(
        release.fullname, release.namespace
    )
    await client.CoreV1Api(admin).read_namespaced_config_map(
        f"{release.fullname}-policies", release.namespace
    )
    certificates = set()
    for name in release.ca_secrets:
        ca = await client.CoreV1Api(admin).read_namespaced_secret(name, release.namespace)
        assert ca.type == "kubernetes.io/tls"
        certificates.add(ca.data["tls.crt"])
    assert len(certificates) == len(release.ca_secrets), "a CA of its own per Secret"


async def test_manifests_yaml_is_accepted_by_the_apiserver(
    control_plane: ControlPlane, admin_api: client.ApiClient, helm_binary: Path
) -> None:
    """deploy/manifests.yaml (checked in sync elsewhere) validates; dry run, so it
    cannot disturb deploy/rbac.yaml's objects of the same names."""
    await ensure_namespace(admin_api, "csr-signer")
    await ensure_namespace(admin_api, "knative-serving")
    manifest = (REPO / "deploy" / "manifests.yaml").read_text()
    assert manifest == render_manifests(CHART, helm_binary=helm_binary)
    out = apply(control_plane, manifest, "--dry-run=server", "--force-conflicts")
    assert "deployment.apps/csr-signer serverside-applied (server dry run)" in out


# -- RBAC, call by call ------------------------------------------------------------------


@dataclass
class Ctx:
    release: Release
    sa: client.ApiClient
    admin: client.ApiClient
    unique: str

    @property
    def signer(self) -> str:
        return self.release.signer_names[0]


Action = Callable[[Ctx], Awaitable[object]]


def certs(api: client.ApiClient) -> client.CertificatesV1Api:
    return client.CertificatesV1Api(api)


async def admin_csr(ctx: Ctx, signer: str, *, approved: bool = False) -> str:
    name = f"chart-{ctx.unique}-{abs(hash((signer, approved))) % 10**6}"
    await create_csr(
        ctx.admin, name, build_csr_pem(dns_names=["web.chart.svc"]), signer_name=signer
    )
    if approved:
        csr = await certs(ctx.admin).read_certificate_signing_request(name)
        csr.status.conditions = [condition("Approved", "ChartE2E")]
        await certs(ctx.admin).replace_certificate_signing_request_approval(name, csr)
    return name


async def approve(ctx: Ctx, signer: str) -> None:
    name = await admin_csr(ctx, signer)
    csr = await certs(ctx.sa).read_certificate_signing_request(name)
    csr.status.conditions = [condition("Approved", "ChartE2E", "approved by the chart's SA")]
    await certs(ctx.sa).replace_certificate_signing_request_approval(name, csr)


async def sign(ctx: Ctx, signer: str) -> None:
    name = await admin_csr(ctx, signer, approved=True)
    csr = await certs(ctx.sa).read_certificate_signing_request(name)
    csr.status.certificate = base64.b64encode(self_signed_pem()).decode()
    await certs(ctx.sa).replace_certificate_signing_request_status(name, csr)


async def update_csr(ctx: Ctx) -> None:
    name = await admin_csr(ctx, ctx.signer)
    csr = await certs(ctx.sa).read_certificate_signing_request(name)
    csr.metadata.labels = {"touched": "yes"}
    await certs(ctx.sa).replace_certificate_signing_request(name, csr)


async def patch_csr(ctx: Ctx) -> None:
    name = await admin_csr(ctx, ctx.signer)
    await certs(ctx.sa).patch_certificate_signing_request(
        name, {"metadata": {"labels": {"touched": "yes"}}}
    )


async def delete_csr(ctx: Ctx) -> None:
    name = await admin_csr(ctx, ctx.signer)
    await certs(ctx.sa).delete_certificate_signing_request(name)


PCR_NAMESPACE = "default"


async def admin_pcr(ctx: Ctx, signer: str) -> dict[str, Any]:
    """A PCR created by the admin (RBAC create is all a non-node user needs)."""
    name = f"chart-{ctx.unique}-{abs(hash(signer)) % 10**6}"
    key = ec.generate_private_key(ec.SECP256R1())
    await create_pcr(ctx.admin, PCR_NAMESPACE, pcr_body(name, signer=signer, key=key))
    return await read_pcr(ctx.admin, PCR_NAMESPACE, name)


async def deny_pcr(ctx: Ctx, signer: str) -> None:
    """The chart's SA writes a Denied status: `update` on /status plus `sign` for the signer."""
    pcr = await admin_pcr(ctx, signer)
    pcr["status"] = denied_status("ChartE2E", "RBAC check", dt.datetime.now(dt.UTC))
    await client.CertificatesV1beta1Api(ctx.sa).replace_namespaced_pod_certificate_request_status(
        pcr["metadata"]["name"], PCR_NAMESPACE, pcr
    )


async def update_pcr(ctx: Ctx) -> None:
    pcr = await admin_pcr(ctx, ctx.signer)
    pcr["metadata"]["labels"] = {"touched": "yes"}
    await client.CertificatesV1beta1Api(ctx.sa).replace_namespaced_pod_certificate_request(
        pcr["metadata"]["name"], PCR_NAMESPACE, pcr
    )


async def delete_pcr(ctx: Ctx) -> None:
    pcr = await admin_pcr(ctx, ctx.signer)
    await client.CertificatesV1beta1Api(ctx.sa).delete_namespaced_pod_certificate_request(
        pcr["metadata"]["name"], PCR_NAMESPACE
    )


async def lease_round_trip(ctx: Ctx) -> None:
    coordination = client.CoordinationV1Api(ctx.sa)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name=ctx.release.lease),
        spec=client.V1LeaseSpec(holder_identity="chart-e2e", lease_duration_seconds=15),
    )
    await coordination.create_namespaced_lease(ctx.release.namespace, body)
    lease = await coordination.read_namespaced_lease(ctx.release.lease, ctx.release.namespace)
    lease.spec.holder_identity = "chart-e2e-2"
    await coordination.replace_namespaced_lease(ctx.release.lease, ctx.release.namespace, lease)


async def event_in(ctx: Ctx, namespace: str) -> None:
    await client.CoreV1Api(ctx.sa).create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name="chart-e2e-"),
            involved_object=client.V1ObjectReference(
                api_version="certificates.k8s.io/v1",
                kind="CertificateSigningRequest",
                name=f"chart-{ctx.unique}",
            ),
            reason="ChartE2E",
            message="RBAC check",
            type="Normal",
        ),
    )


def trust_bundle(name: str, signer: str) -> client.V1beta1ClusterTrustBundle:
    cert, _ = generate_root("chart e2e trust", "ecdsa-p256", 30, dt.datetime.now(dt.UTC))
    return client.V1beta1ClusterTrustBundle(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1beta1ClusterTrustBundleSpec(signer_name=signer, trust_bundle=cert.decode()),
    )


async def publish_cluster_trust_bundle(ctx: Ctx) -> None:
    """create (attest), get, update, delete: only what this call created is deleted."""
    api = client.CertificatesV1beta1Api(ctx.sa)
    name = cluster_trust_bundle_name(ctx.signer)
    try:
        await api.create_cluster_trust_bundle(trust_bundle(name, ctx.signer))
    except ApiException as exc:
        if exc.status != 409:
            raise
        await api.read_cluster_trust_bundle(name)  # someone else's: read only
        return
    bundle = await api.read_cluster_trust_bundle(name)
    bundle.metadata.labels = {"chart-e2e": "updated"}
    await api.replace_cluster_trust_bundle(name, bundle)
    await api.delete_cluster_trust_bundle(name)


async def trust_configmap_round_trip(ctx: Ctx) -> None:
    core = client.CoreV1Api(ctx.sa)
    namespace, name = ctx.release.trust_namespaces[-1], ctx.release.configmap
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"ca.crt": "x"})
    try:
        await core.create_namespaced_config_map(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        await core.read_namespaced_config_map(name, namespace)
        return
    current = await core.read_namespaced_config_map(name, namespace)
    current.data = {"ca.crt": "y"}
    await core.replace_namespaced_config_map(name, namespace, current)
    await core.delete_namespaced_config_map(name, namespace)


def core(ctx: Ctx) -> client.CoreV1Api:
    return client.CoreV1Api(ctx.sa)


async def read_each_ca_secret(ctx: Ctx) -> None:
    for name in ctx.release.ca_secrets:
        await core(ctx).read_namespaced_secret(name, ctx.release.namespace)


async def list_each_ca_secret(ctx: Ctx) -> None:
    for name in ctx.release.ca_secrets:
        found = await core(ctx).list_namespaced_secret(
            ctx.release.namespace, field_selector=f"metadata.name={name}"
        )
        assert [item.metadata.name for item in found.items] == [name]


async def read_secrets_all_refused(ctx: Ctx, namespace: str, names: tuple[str, ...]) -> None:
    """Read each Secret; every read must be refused alike. Raises the first refusal."""
    refusals: list[ApiException] = []
    for name in names:
        try:
            await core(ctx).read_namespaced_secret(name, namespace)
        except ApiException as exc:
            refusals.append(exc)
        else:
            raise AssertionError(f"reading Secret {namespace}/{name} was allowed")
    assert {exc.status for exc in refusals} == {403}
    raise refusals[0]


ALLOWED: list[tuple[str, Action]] = [
    (
        "lists-csrs-of-its-signer",
        lambda c: certs(c.sa).list_certificate_signing_request(
            field_selector=f"spec.signerName={c.signer}"
        ),
    ),
    ("approves-csrs-of-its-signer", lambda c: approve(c, c.signer)),
    ("approves-csrs-of-its-second-signer", lambda c: approve(c, c.release.signer_names[1])),
    ("signs-approved-csrs-of-its-signer", lambda c: sign(c, c.signer)),
    ("reads-each-of-its-ca-secrets", read_each_ca_secret),
    ("lists-each-of-its-ca-secrets-by-field-selector", list_each_ca_secret),
    ("creates-reads-and-renews-its-lease", lease_round_trip),
    ("creates-events-in-default", lambda c: event_in(c, "default")),
    ("publishes-a-cluster-trust-bundle-for-its-signer", publish_cluster_trust_bundle),
    (
        "lists-cluster-trust-bundles",
        lambda c: client.CertificatesV1beta1Api(c.sa).list_cluster_trust_bundle(),
    ),
    ("writes-its-trust-configmap-in-a-trust-namespace", trust_configmap_round_trip),
    (
        "lists-pcrs-of-its-signer-in-all-namespaces",
        lambda c: client.CertificatesV1beta1Api(
            c.sa
        ).list_pod_certificate_request_for_all_namespaces(
            field_selector=f"spec.signerName={c.signer}"
        ),
    ),
    ("writes-the-status-of-pcrs-of-its-signer", lambda c: deny_pcr(c, c.signer)),
    ("lists-namespaces-for-their-labels", lambda c: core(c).list_namespace(limit=1)),
]

FORBIDDEN: list[tuple[str, str, Action]] = [
    # (rule, a fragment of the apiserver's refusal that names the permission, call)
    (
        "cannot-get-a-namespace-only-list-and-watch",
        'cannot get resource "namespaces"',
        lambda c: core(c).read_namespace("default"),
    ),
    (
        "cannot-label-a-namespace",
        'cannot patch resource "namespaces"',
        lambda c: core(c).patch_namespace("default", {"metadata": {"labels": {"x": "y"}}}),
    ),
    (
        "cannot-approve-another-signer",
        'not permitted to approve requests with signerName "example.com/other"',
        lambda c: approve(c, OTHER_SIGNER),
    ),
    (
        "cannot-sign-another-signer",
        'not permitted to sign requests with signerName "example.com/other"',
        lambda c: sign(c, OTHER_SIGNER),
    ),
    (
        "cannot-update-a-csr-itself",
        'cannot update resource "certificatesigningrequests"',
        update_csr,
    ),
    ("cannot-patch-a-csr", 'cannot patch resource "certificatesigningrequests"', patch_csr),
    ("cannot-delete-a-csr", 'cannot delete resource "certificatesigningrequests"', delete_csr),
    (
        "cannot-create-a-csr",
        'cannot create resource "certificatesigningrequests"',
        lambda c: create_csr(
            c.sa, f"sa-{c.unique}", build_csr_pem(), signer_name=c.signer, wait_for_rbac=False
        ),
    ),
    (
        "cannot-update-a-pcr-itself",
        'cannot update resource "podcertificaterequests"',
        update_pcr,
    ),
    (
        "cannot-delete-a-pcr",
        'cannot delete resource "podcertificaterequests"',
        delete_pcr,
    ),
    (
        "cannot-create-a-pcr",
        'cannot create resource "podcertificaterequests"',
        lambda c: create_pcr(
            c.sa,
            PCR_NAMESPACE,
            pcr_body(
                f"sa-{c.unique}", signer=c.signer, key=ec.generate_private_key(ec.SECP256R1())
            ),
        ),
    ),
    (
        "cannot-read-another-secret-in-its-namespace",
        'cannot get resource "secrets"',
        lambda c: core(c).read_namespaced_secret("not-the-ca", c.release.namespace),
    ),
    (
        "cannot-list-secrets-in-its-namespace",
        'cannot list resource "secrets"',
        lambda c: core(c).list_namespaced_secret(c.release.namespace),
    ),
    (
        "cannot-read-its-ca-secret-names-in-another-namespace",
        'cannot get resource "secrets"',
        lambda c: read_secrets_all_refused(c, "default", c.release.ca_secrets),
    ),
    (
        "cannot-read-another-releases-ca-secrets",
        'cannot get resource "secrets"',
        lambda c: read_secrets_all_refused(
            c, other_release(c.release).namespace, other_release(c.release).ca_secrets
        ),
    ),
    (
        "cannot-read-another-releases-ca-secret-names-in-its-namespace",
        'cannot get resource "secrets"',
        lambda c: read_secrets_all_refused(
            c, c.release.namespace, other_release(c.release).ca_secrets
        ),
    ),
    (
        "cannot-read-another-lease",
        'cannot get resource "leases"',
        lambda c: client.CoordinationV1Api(c.sa).read_namespaced_lease(
            "someone-elses", c.release.namespace
        ),
    ),
    (
        "cannot-create-events-in-its-own-namespace",
        'cannot create resource "events"',
        lambda c: event_in(c, c.release.namespace),
    ),
    (
        "cannot-attest-a-cluster-trust-bundle-for-another-signer",
        "attest",
        lambda c: client.CertificatesV1beta1Api(c.sa).create_cluster_trust_bundle(
            trust_bundle(cluster_trust_bundle_name(OTHER_SIGNER), OTHER_SIGNER)
        ),
    ),
    # Reading any ClusterTrustBundle is allowed to every ServiceAccount by the
    # bootstrap role system:cluster-trust-bundle-discovery (bundles are public);
    # writing one outside our names is what must be refused.
    (
        "cannot-delete-another-cluster-trust-bundle",
        'cannot delete resource "clustertrustbundles"',
        lambda c: client.CertificatesV1beta1Api(c.sa).delete_cluster_trust_bundle(
            cluster_trust_bundle_name(OTHER_SIGNER)
        ),
    ),
    (
        "cannot-read-other-configmaps-in-a-trust-namespace",
        'cannot get resource "configmaps"',
        lambda c: core(c).read_namespaced_config_map(
            "config-network", c.release.trust_namespaces[0]
        ),
    ),
    (
        "cannot-list-configmaps-in-a-trust-namespace",
        'cannot list resource "configmaps"',
        lambda c: core(c).list_namespaced_config_map(c.release.trust_namespaces[0]),
    ),
    (
        "cannot-create-configmaps-outside-trust-namespaces",
        'cannot create resource "configmaps"',
        lambda c: core(c).create_namespaced_config_map(
            c.release.namespace,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name=c.release.configmap)),
        ),
    ),
]


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize(("action"), [pytest.param(a, id=i) for i, a in ALLOWED])
async def test_chart_rbac_allows(
    installed: dict[str, Installed], unique: str, release: Release, action: Action
) -> None:
    item = installed[release.name]
    await action(Ctx(release, item.sa, item.admin, unique))


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize(("why", "action"), [pytest.param(w, a, id=i) for i, w, a in FORBIDDEN])
async def test_chart_rbac_forbids(
    installed: dict[str, Installed], unique: str, release: Release, why: str, action: Action
) -> None:
    """403 for the permission named in `why`, not for some earlier step of the call."""
    item = installed[release.name]
    with pytest.raises(ApiException) as refused:
        await action(Ctx(release, item.sa, item.admin, unique))
    assert refused.value.status == 403, refused.value.body
    assert why in json.loads(refused.value.body or "{}").get("message", "")


@pytest.mark.parametrize("release", RELEASES)
async def test_chart_rbac_cannot_write_the_status_of_another_signers_pcr(
    installed: dict[str, Installed], unique: str, release: Release
) -> None:
    """The apiserver's `sign` check on a PCR's status answers 422 (FieldValueForbidden on
    spec.signerName), not 403: the refusal must name `sign` for the other signer."""
    item = installed[release.name]
    with pytest.raises(ApiException) as refused:
        await deny_pcr(Ctx(release, item.sa, item.admin, unique), OTHER_SIGNER)
    assert refused.value.status == 422, refused.value.body
    message = json.loads(refused.value.body or "{}").get("message", "")
    assert f'not permitted to "sign" for signer "{OTHER_SIGNER}"' in message
