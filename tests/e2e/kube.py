"""Small helpers for e2e tests: RBAC grants and CSR objects through the real API."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
from csr_signer_dev.controlplane import ControlPlane, Credentials, free_port
from csr_signer_dev.identities import api_client, serviceaccount_credentials
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from signer.app import run_app
from signer.config import Settings
from signer.pki.ca import ca_secret_manifest, generate_root
from signer.policy import bundled_policies_dir


async def grant(
    admin: client.ApiClient,
    name: str,
    rules: list[dict[str, Any]],
    *,
    users: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
    serviceaccounts: tuple[tuple[str, str], ...] = (),
) -> None:
    """A ClusterRole with `rules`, bound to the given subjects (create or replace)."""
    rbac = client.RbacAuthorizationV1Api(admin)
    role = client.V1ClusterRole(
        metadata=client.V1ObjectMeta(name=name),
        rules=[client.V1PolicyRule(**r) for r in rules],
    )
    subjects = [
        client.RbacV1Subject(kind="User", name=u, api_group="rbac.authorization.k8s.io")
        for u in users
    ]
    subjects += [
        client.RbacV1Subject(kind="Group", name=g, api_group="rbac.authorization.k8s.io")
        for g in groups
    ]
    subjects += [
        client.RbacV1Subject(kind="ServiceAccount", name=n, namespace=ns)
        for ns, n in serviceaccounts
    ]
    binding = client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=name),
        role_ref=client.V1RoleRef(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=name
        ),
        subjects=subjects,
    )
    for create, replace, body in (
        (rbac.create_cluster_role, rbac.replace_cluster_role, role),
        (rbac.create_cluster_role_binding, rbac.replace_cluster_role_binding, binding),
    ):
        try:
            await create(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            await replace(name, body)


T = TypeVar("T")

CSR_CREATORS = "e2e-csr-creators"
"""The grant `install` makes: any authenticated identity may create CSRs."""
CSR_CREATOR_RULES: list[dict[str, Any]] = [
    {
        "api_groups": ["certificates.k8s.io"],
        "resources": ["certificatesigningrequests"],
        "verbs": ["create", "get", "list", "watch"],
    }
]


async def create_csr(
    api: client.ApiClient,
    name: str,
    pem: bytes,
    *,
    signer_name: str,
    usages: tuple[str, ...] = ("digital signature", "key encipherment", "server auth"),
    expiration_seconds: int | None = None,
    wait_for_rbac: bool = True,
) -> client.V1CertificateSigningRequest:
    """Create a CSR as `api`; by default a 403 is retried while RBAC propagates."""
    body = client.V1CertificateSigningRequest(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1CertificateSigningRequestSpec(
            request=base64.b64encode(pem).decode(),
            signer_name=signer_name,
            usages=list(usages),
            expiration_seconds=expiration_seconds,
        ),
    )
    certs = client.CertificatesV1Api(api)
    if not wait_for_rbac:
        return await certs.create_certificate_signing_request(body)
    return await after_rbac_propagates(lambda: certs.create_certificate_signing_request(body))


def condition(
    type_: str, reason: str, message: str = ""
) -> client.V1CertificateSigningRequestCondition:
    now = dt.datetime.now(dt.UTC)
    return client.V1CertificateSigningRequestCondition(
        type=type_,
        status="True",
        reason=reason,
        message=message,
        last_update_time=now,
        last_transition_time=now,
    )


async def revoke_csr_creators(admin: client.ApiClient, serviceaccount: tuple[str, str]) -> None:
    """Undo `install`'s grant (every ServiceAccount may create CSRs) until the next `install`.

    For tests that prove what a ServiceAccount may NOT do: the grant would otherwise make
    their result depend on which test module ran first. Waits until the apiserver's
    authorizer (updated asynchronously) refuses `serviceaccount`.
    """
    rbac = client.RbacAuthorizationV1Api(admin)
    try:
        await rbac.delete_cluster_role_binding(CSR_CREATORS)
    except ApiException as exc:
        if exc.status != 404:
            raise
    namespace, name = serviceaccount
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{namespace}:{name}",
            groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
            resource_attributes=client.V1ResourceAttributes(
                group="certificates.k8s.io", resource="certificatesigningrequests", verb="create"
            ),
        )
    )
    authz = client.AuthorizationV1Api(admin)

    async def revoked() -> bool:
        answer = await authz.create_subject_access_review(review)
        return not answer.status.allowed

    await wait_until(revoked, what=f"{CSR_CREATORS} revoked")


async def after_rbac_propagates(call: Callable[[], Awaitable[T]], *, timeout: float = 15.0) -> T:
    """Retry `call` while it is 403: the apiserver's RBAC cache catches up asynchronously."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await call()
        except ApiException as exc:
            if exc.status != 403 or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.1)


# -- the controller's prerequisites, as an operator would install them -------------------

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "csr-signer"
CA_SECRET = "csr-signer-ca"


CLUSTER_LOCAL = "csr-signer.dev/cluster-local"
KNATIVE = "csr-signer.dev/knative-internal"


@dataclass(frozen=True)
class Controller:
    """A running controller: its own client (its ServiceAccount token) and metrics port."""

    api: client.ApiClient
    metrics_port: int


@dataclass(frozen=True)
class Installed:
    creds: Credentials
    """The controller ServiceAccount's token (deploy/rbac.yaml applies to it)."""
    kubeconfig: Path
    ca_pem: bytes
    ca_key_pem: bytes
    policy_dir: Path


async def install(cp: ControlPlane, admin: client.ApiClient, policy_dir: Path) -> Installed:
    """deploy/rbac.yaml, a CA Secret, a copy of the bundled policies, a controller token."""
    applied = cp.kubectl("apply", "-f", str(REPO / "deploy" / "rbac.yaml"))
    assert applied.returncode == 0, applied.stderr.decode()
    await grant(
        admin,
        CSR_CREATORS,
        CSR_CREATOR_RULES,
        groups=("system:serviceaccounts", "system:authenticated"),
    )
    cert_pem, key_pem = generate_root("e2e root", "ecdsa-p256", 30, dt.datetime.now(dt.UTC))
    await put_secret(admin, ca_secret(cert_pem, key_pem))
    for path in bundled_policies_dir().glob("*.yaml"):
        shutil.copy(path, policy_dir / path.name)
    creds = await serviceaccount_credentials(admin, NAMESPACE, "csr-signer")
    return Installed(creds, cp.kubeconfig(creds), cert_pem, key_pem, policy_dir)


def ca_secret(
    cert_pem: bytes,
    key_pem: bytes,
    *,
    name: str = CA_SECRET,
    namespace: str = NAMESPACE,
    roots_pem: bytes | None = None,
    next_ca_pem: bytes | None = None,
) -> dict[str, Any]:
    """A CA Secret as an operator writes it (`signer.pki.ca.ca_secret_manifest`)."""
    return ca_secret_manifest(
        name, namespace, cert_pem, key_pem, roots_pem=roots_pem, next_ca_pem=next_ca_pem
    )


async def put_secret(admin: client.ApiClient, body: dict[str, Any]) -> None:
    """Create or replace a Secret (its name and namespace come from `body`)."""
    core = client.CoreV1Api(admin)
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    try:
        await core.create_namespaced_secret(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        await core.replace_namespaced_secret(name, namespace, body)


def spawn_controller(installed: Installed, log_path: Path, *flags: str) -> subprocess.Popen[bytes]:
    """`csr-signer run` as a child process under `installed`'s token, its output in `log_path`.

    For tests that kill the process (SIGKILL mid-batch, failover); the environment is
    cleaned of CSR_SIGNER_* so a developer's shell cannot change the run.
    """
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "signer",
                "run",
                f"--kubeconfig={installed.kubeconfig}",
                f"--policies={installed.policy_dir}",
                f"--ca-secret={NAMESPACE}/{CA_SECRET}",
                *flags,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("CSR_SIGNER_")},
        )


@asynccontextmanager
async def running_controller(
    cp: ControlPlane, installed: Installed, **settings: Any
) -> AsyncIterator[Controller]:
    """The controller in-process under `installed`'s token, ready, stopped cleanly after.

    The defaults are what every e2e wants (deploy/rbac.yaml's Secret and Lease, the
    policy copy, fast policy reloads); `settings` overrides or adds any field.
    """
    port = free_port()
    values: dict[str, Any] = {
        "kubeconfig": installed.kubeconfig,
        "signer_names": (CLUSTER_LOCAL, KNATIVE),
        "policy_dir": installed.policy_dir,
        "ca_secret_namespace": NAMESPACE,
        "ca_secret_name": CA_SECRET,
        "leader_elect": True,
        "lease_namespace": NAMESPACE,
        "metrics_address": f"127.0.0.1:{port}",
        "policy_reload_seconds": 0.2,
        "max_duration_seconds": 7 * 24 * 3600,
        "default_duration_seconds": 24 * 3600,
        "workers": 4,
        "identity": "e2e-controller",
    }
    stop = asyncio.Event()
    task = asyncio.create_task(run_app(Settings(**{**values, **settings}), stop=stop))
    api: client.ApiClient | None = None
    try:
        await wait_until(lambda: ready(port), what="controller ready", timeout=30, task=task)
        api = await api_client(cp, installed.creds)
        yield Controller(api=api, metrics_port=port)
    finally:
        stop.set()
        assert await asyncio.wait_for(task, timeout=30) == 0
        if api is not None:
            await api.close()


async def ready(port: int) -> bool:
    def get() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    return await asyncio.to_thread(get)


async def wait_until(
    predicate: Callable[[], Awaitable[Any]],
    *,
    what: str,
    timeout: float = 20,
    task: asyncio.Task[Any] | None = None,
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if task is not None and task.done():
            raise AssertionError(f"controller exited while waiting for {what}: {task.result()}")
        if result := await predicate():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def read_csr(admin: client.ApiClient, name: str) -> client.V1CertificateSigningRequest:
    return await client.CertificatesV1Api(admin).read_certificate_signing_request(name)


def types(csr: client.V1CertificateSigningRequest) -> list[str]:
    return [c.type for c in (csr.status.conditions or [])]


async def wait_final(admin: client.ApiClient, name: str) -> client.V1CertificateSigningRequest:
    async def final() -> client.V1CertificateSigningRequest | None:
        csr = await read_csr(admin, name)
        done = csr.status.certificate or {"Denied", "Failed"} & set(types(csr))
        return csr if done else None

    result: client.V1CertificateSigningRequest = await wait_until(final, what=f"{name} final")
    return result


def leaf_and_verify(csr: client.V1CertificateSigningRequest, ca_pem: bytes) -> x509.Certificate:
    """The issued chain verifies as a TLS server certificate for its first DNS name."""
    chain = x509.load_pem_x509_certificates(base64.b64decode(csr.status.certificate))
    leaf = chain[0]
    dns = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    store = Store([x509.load_pem_x509_certificate(ca_pem)])
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(dt.datetime.now(dt.UTC))
        .build_server_verifier(x509.DNSName(dns.get_values_for_type(x509.DNSName)[0]))
    )
    verifier.verify(leaf, chain[1:])
    return leaf
