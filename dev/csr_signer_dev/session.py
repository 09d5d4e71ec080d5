"""The local run mode: control plane + CA Secret + RBAC + the controller.

What `make run` / `csr-signer local run` does on a fresh machine, in order:
start kube-apiserver + etcd, apply `deploy/rbac.yaml`, create a CA Secret per
signer name (`ca init`: csr-signer-ca for cluster-local, csr-signer-knative-ca
for knative-internal, the two Secrets deploy/rbac.yaml lets the controller
read), mint a token for the controller's ServiceAccount (so it runs under
exactly the RBAC we ship), prepare a demo requester and two sample CSRs, print
how to use them, then run the controller until Ctrl-C.
"""

from __future__ import annotations

import base64
import datetime as dt
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from signer.config import KNATIVE_SIGNER
from signer.kube.client import as_body
from signer.pki.ca import ca_secret_manifest, generate_root

from csr_signer_dev.controlplane import ControlPlane
from csr_signer_dev.identities import api_client, serviceaccount_credentials
from csr_signer_dev.settings import CHECKOUT

REPO_DEPLOY = CHECKOUT / "deploy"
NAMESPACE = "csr-signer"
SERVICEACCOUNT = "csr-signer"
CA_SECRET = "csr-signer-ca"  # noqa: S105 - a Secret name
"""--ca-secret: the CA of every signer name without its own (cluster-local)."""
KNATIVE_CA_SECRET = "csr-signer-knative-ca"  # noqa: S105 - a Secret name
SIGNER_CA_SECRETS = {KNATIVE_SIGNER: KNATIVE_CA_SECRET}
"""--signer-ca: the signer names with a CA Secret of their own."""
DEMO_NAMESPACE = "demo"


@dataclass(frozen=True, slots=True)
class Prepared:
    controller_kubeconfig: Path
    requester_kubeconfig: Path
    admin_kubeconfig: Path
    samples: dict[str, Path]
    ca_certs: dict[str, Path]
    """CA Secret name -> its certificate (PEM) in the control plane's workdir."""


def signer_cas(signer_names: tuple[str, ...]) -> list[str]:
    """``--signer-ca`` values (``SIGNER=NAMESPACE/NAME``) for the served signers that
    have a local CA Secret of their own; the others sign with `CA_SECRET`."""
    return [
        f"{signer}={NAMESPACE}/{secret}"
        for signer, secret in SIGNER_CA_SECRETS.items()
        if signer in signer_names
    ]


def rbac_manifest() -> Path:
    path = REPO_DEPLOY / "rbac.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the local mode from a source checkout")
    return path


async def prepare(cp: ControlPlane, *, now: dt.datetime) -> Prepared:
    applied = cp.kubectl("apply", "-f", str(rbac_manifest()))
    if applied.returncode != 0:
        raise RuntimeError(f"kubectl apply deploy/rbac.yaml failed: {applied.stderr.decode()}")
    admin = await api_client(cp)
    ca_certs: dict[str, Path] = {}
    try:
        for secret_name, common_name in (
            (CA_SECRET, "csr-signer local cluster-local CA"),
            (KNATIVE_CA_SECRET, "csr-signer local knative-internal CA"),
        ):
            ca_certs[secret_name] = await _create_ca_secret(
                admin, secret_name, common_name, cp.workdir, now
            )
        controller = await serviceaccount_credentials(
            admin, NAMESPACE, SERVICEACCOUNT, expiration_seconds=24 * 3600
        )
        requester = await serviceaccount_credentials(
            admin, DEMO_NAMESPACE, "app", expiration_seconds=24 * 3600
        )
        await _allow_csr_creation(admin, DEMO_NAMESPACE, "app")
    finally:
        await admin.close()
    return Prepared(
        controller_kubeconfig=cp.kubeconfig(controller),
        requester_kubeconfig=cp.kubeconfig(requester),
        admin_kubeconfig=cp.kubeconfig(),
        samples=_write_samples(cp.workdir / "samples"),
        ca_certs=ca_certs,
    )


async def _create_ca_secret(
    admin: client.ApiClient, name: str, common_name: str, workdir: Path, now: dt.datetime
) -> Path:
    """A fresh self-signed CA in Secret `NAMESPACE`/`name` (kept if it already exists);
    returns where its certificate was written."""
    cert_pem, key_pem = generate_root(common_name, "ecdsa-p256", 30, now)
    secret = ca_secret_manifest(name, NAMESPACE, cert_pem, key_pem)
    try:
        await client.CoreV1Api(admin).create_namespaced_secret(NAMESPACE, as_body(secret))
    except ApiException as exc:
        if exc.status != 409:
            raise
        existing = await client.CoreV1Api(admin).read_namespaced_secret(name, NAMESPACE)
        cert_pem = base64.b64decode(existing.data["tls.crt"])
    path = workdir / f"{name}.crt"
    path.write_bytes(cert_pem)
    return path


async def _allow_csr_creation(admin: client.ApiClient, namespace: str, name: str) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    role: dict[str, Any] = {
        "metadata": {"name": "demo-csr-requester"},
        "rules": [
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests"],
                "verbs": ["create", "get", "list", "watch"],
            }
        ],
    }
    binding: dict[str, Any] = {
        "metadata": {"name": "demo-csr-requester"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "demo-csr-requester",
        },
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    for create, body in (
        (rbac.create_cluster_role, role),
        (rbac.create_cluster_role_binding, binding),
    ):
        try:
            await create(as_body(body))
        except ApiException as exc:
            if exc.status != 409:
                raise


def _sample_csr_pem(dns_names: list[str]) -> bytes:
    """A throwaway key and request (the key is discarded: this is only a demo)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns_names]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def _write_samples(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    samples = {
        "approved": ["web.demo.svc", "web.demo.svc.cluster.local"],
        "denied": ["web.kube-system.svc"],
    }
    paths: dict[str, Path] = {}
    for kind, names in samples.items():
        manifest = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"generateName": f"demo-{kind}-"},
            "spec": {
                "request": base64.b64encode(_sample_csr_pem(names)).decode(),
                "signerName": "csr-signer.dev/cluster-local",
                "usages": ["digital signature", "key encipherment", "server auth"],
                "expirationSeconds": 86400,
            },
        }
        paths[kind] = directory / f"{kind}.yaml"
        paths[kind].write_text(yaml.safe_dump(manifest))
    return paths


def instructions(cp: ControlPlane, prepared: Prepared, metrics_address: str) -> str:
    kubectl = cp.binaries.kubectl
    return textwrap.dedent(
        f"""
        csr-signer is running against a local control plane at {cp.url}

          export KUBECONFIG={prepared.admin_kubeconfig}
          alias kubectl={kubectl}

        Submit a CSR as ServiceAccount demo/app (auto-approved and issued by policy):
          kubectl --kubeconfig {prepared.requester_kubeconfig} create -f {prepared.samples["approved"]}
        ...and one the cluster-local policy denies (another namespace's name):
          kubectl --kubeconfig {prepared.requester_kubeconfig} create -f {prepared.samples["denied"]}
        A CSR from a human (you, the admin) stays Pending for you to decide:
          kubectl create -f {prepared.samples["approved"]}
          kubectl certificate approve <name>    # or: kubectl certificate deny <name>

        Watch them:   kubectl get csr -w
        Why:          kubectl get events -n default
        Certificate:  kubectl get csr <name> -o jsonpath='{{.status.certificate}}' | base64 -d
        CAs:          csr-signer.dev/cluster-local    {prepared.ca_certs[CA_SECRET]}
                      csr-signer.dev/knative-internal {prepared.ca_certs[KNATIVE_CA_SECRET]}
        Metrics:      http://{metrics_address}/metrics (/readyz, /healthz)

        Ctrl-C stops the controller and the control plane.
        """
    )
