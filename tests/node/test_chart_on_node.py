"""The chart installed with Helm onto a real node: its Pods run, lead, issue, and hand over.

Values set only the image (the one `make image` builds, imported into the node's
containerd) and its pull policy: everything else is the chart as users get it.
Proves what rendering alone cannot: two controller Pods from our image run
under the chart's securityContext, one holds the Lease, a CSR is issued, the
kubelet's probes hit /readyz and /healthz, and deleting the leader hands the
Lease to the other Pod, which goes on issuing. A Pod with a `podCertificate`
projected volume gets its key and chain from the kubelet, and checks the chain
against the signer's ClusterTrustBundle from inside the Pod.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from csr_signer_dev import image
from csr_signer_dev.controlplane import Credentials
from csr_signer_dev.helm import helm
from csr_signer_dev.node import Node

from signer.pki.ca import generate_root
from tests.data.csrs import build_csr_pem
from tests.e2e.kube import CLUSTER_LOCAL, KNATIVE, ca_secret

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "chart" / "csr-signer"
NAMESPACE = "csr-signer"
RELEASE = "csr-signer"
SELECTOR = "app.kubernetes.io/name=csr-signer"
REQUESTER = "web"


def kubectl(
    cluster: Node, *args: str, stdin: bytes | None = None, creds: Credentials | None = None
) -> str:
    proc = cluster.cp.kubectl(*args, input=stdin, creds=creds)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr.decode()}"
    return proc.stdout.decode()


def get(cluster: Node, *args: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(kubectl(cluster, "get", *args, "-o", "json"))
    return value


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def ready_pods(cluster: Node) -> list[str]:
    pods = get(cluster, "pods", "-n", NAMESPACE, "-l", SELECTOR)["items"]
    return sorted(
        p["metadata"]["name"]
        for p in pods
        if p["metadata"].get("deletionTimestamp") is None
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", [])
        )
    )


def lease_holder(cluster: Node) -> str:
    return str(get(cluster, "lease", "-n", NAMESPACE, f"{RELEASE}")["spec"].get("holderIdentity"))


@pytest.fixture(scope="module")
def release(
    cluster: Node, controller_image: tuple[image.Engine, image.Built]
) -> Iterator[dict[str, bytes]]:
    """The CA Secrets (one per signer), then `helm install` with image values only."""
    _engine, built = controller_image
    repository, tag = built.name.rsplit(":", 1)
    cas: dict[str, bytes] = {}
    for namespace in (NAMESPACE, "knative-serving"):
        kubectl(cluster, "create", "namespace", namespace)
    now = dt.datetime.now(dt.UTC)
    for secret, signer in (("csr-signer-ca", CLUSTER_LOCAL), ("csr-signer-knative-ca", KNATIVE)):
        cert, key = generate_root(f"node e2e {secret}", "ecdsa-p256", 30, now)
        body = yaml.safe_dump(ca_secret(cert, key, name=secret, namespace=NAMESPACE))
        kubectl(cluster, "apply", "-f", "-", stdin=body.encode())
        cas[signer] = cert
    # The requester: a ServiceAccount allowed to create CSRs, as an app would be.
    kubectl(cluster, "create", "serviceaccount", REQUESTER, "-n", NAMESPACE)
    kubectl(
        cluster,
        "create",
        "clusterrole",
        REQUESTER,
        "--verb=create,get",
        "--resource=certificatesigningrequests",
    )
    kubectl(
        cluster,
        "create",
        "clusterrolebinding",
        REQUESTER,
        f"--clusterrole={REQUESTER}",
        f"--serviceaccount={NAMESPACE}:{REQUESTER}",
    )
    kubeconfig = cluster.cp.kubeconfig()
    helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kubeconfig",
        str(kubeconfig),
        "--set",
        f"image.repository={repository}",
        "--set",
        f"image.tag={tag}",
        "--set",
        "image.pullPolicy=Never",
        "--wait",
        "--timeout",
        "5m",
        timeout=400,
    )
    yield cas
    helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--kubeconfig", str(kubeconfig))


def issue_csr(cluster: Node, name: str, ca_pem: bytes) -> x509.Certificate:
    """A ServiceAccount's conforming CSR, created with its own token; the issued leaf."""
    token = kubectl(cluster, "create", "token", REQUESTER, "-n", NAMESPACE).strip()
    requester = Credentials(f"system:serviceaccount:{NAMESPACE}:{REQUESTER}", token=token)
    manifest = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64.b64encode(build_csr_pem(dns_names=[f"web.{NAMESPACE}.svc"])).decode(),
            "signerName": CLUSTER_LOCAL,
            "usages": ["digital signature", "key encipherment", "server auth"],
        },
    }
    kubectl(cluster, "create", "-f", "-", stdin=json.dumps(manifest).encode(), creds=requester)

    def issued() -> str | None:
        csr = get(cluster, "csr", name)
        return csr.get("status", {}).get("certificate")

    try:
        certificate = wait_for(issued, f"CSR {name} issued", timeout=60)
    except AssertionError as exc:
        status = get(cluster, "csr", name).get("status")
        raise AssertionError(f"{exc}: {status}") from exc
    chain = x509.load_pem_x509_certificates(base64.b64decode(certificate))
    ca = x509.load_pem_x509_certificate(ca_pem)
    assert chain[0].issuer == ca.subject
    chain[0].verify_directly_issued_by(ca)
    return chain[0]


def test_two_pods_from_our_image_run_and_one_holds_the_lease(
    cluster: Node, release: dict[str, bytes]
) -> None:
    pods = wait_for(
        lambda: ready_pods(cluster) if len(ready_pods(cluster)) == 2 else None, "2 Ready"
    )
    assert wait_for(lambda: lease_holder(cluster) in pods, "a Pod holds the Lease")
    for pod in get(cluster, "pods", "-n", NAMESPACE, "-l", SELECTOR)["items"]:
        (container,) = pod["spec"]["containers"]
        assert container["image"].startswith("localhost/csr-signer:")
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0


def test_the_pdb_counts_both_pods_and_allows_one_disruption(
    cluster: Node, release: dict[str, bytes]
) -> None:
    """kube-controller-manager's disruption controller reads the chart's PDB as in a cluster."""

    def counted() -> dict[str, Any] | None:
        status = get(cluster, "pdb", "-n", NAMESPACE, RELEASE).get("status", {})
        return status if status.get("currentHealthy") == 2 else None

    status = wait_for(counted, "the PDB to count two healthy Pods", timeout=60)
    assert status["disruptionsAllowed"] == 1


def test_the_leader_issues_a_csr(cluster: Node, release: dict[str, bytes]) -> None:
    leaf = issue_csr(cluster, "node-e2e-first", release[CLUSTER_LOCAL])
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [f"web.{NAMESPACE}.svc"]


def test_probes_hit_readyz_and_healthz(cluster: Node, release: dict[str, bytes]) -> None:
    """The kubelet's probes passed (Ready, no restarts); both endpoints answer through the
    apiserver's proxy to the Pod's metrics port, as the kubelet reaches them."""
    pod = ready_pods(cluster)[0]
    spec = get(cluster, "pod", "-n", NAMESPACE, pod)["spec"]["containers"][0]
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (port,) = (p["containerPort"] for p in spec["ports"] if p["name"] == "metrics")
    for path in ("readyz", "healthz"):
        answer = kubectl(
            cluster,
            "get",
            "--raw",
            f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}:{port}/proxy/{path}",
        )
        assert answer.strip(), path


def test_readiness_follows_readyz_when_the_ca_secret_goes_away(
    cluster: Node, release: dict[str, bytes]
) -> None:
    """Without its CA a replica's /readyz says 503: the kubelet's readiness probe takes both
    Pods out (an Unhealthy Event says so) and liveness restarts nothing; back when it returns."""
    secret = get(cluster, "secret", "-n", NAMESPACE, "csr-signer-ca")
    for field in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        secret["metadata"].pop(field, None)
    kubectl(cluster, "delete", "secret", "-n", NAMESPACE, "csr-signer-ca")
    try:
        wait_for(lambda: not ready_pods(cluster), "both Pods NotReady without their CA", 90)
        events = get(cluster, "events", "-n", NAMESPACE, "--field-selector", "reason=Unhealthy")
        messages = [e["message"] for e in events["items"]]
        assert any("Readiness probe failed" in m and "503" in m for m in messages), messages
    finally:
        kubectl(cluster, "create", "-f", "-", stdin=json.dumps(secret).encode())
    wait_for(lambda: len(ready_pods(cluster)) == 2, "both Pods Ready with the CA back", 90)
    for pod in get(cluster, "pods", "-n", NAMESPACE, "-l", SELECTOR)["items"]:
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0


def test_deleting_the_leader_pod_hands_the_lease_to_the_other(
    cluster: Node, release: dict[str, bytes]
) -> None:
    leader = wait_for(
        lambda: lease_holder(cluster) in ready_pods(cluster) and lease_holder(cluster), "a leader"
    )
    (standby,) = [p for p in ready_pods(cluster) if p != leader]
    kubectl(cluster, "delete", "pod", "-n", NAMESPACE, leader, "--wait=false")
    assert wait_for(
        lambda: lease_holder(cluster) == standby, f"{standby} takes the Lease", timeout=90
    )
    issue_csr(cluster, "node-e2e-after-handover", release[CLUSTER_LOCAL])
    # The Deployment replaces the deleted Pod: two Ready again.
    wait_for(lambda: len(ready_pods(cluster)) == 2, "the replacement Ready", timeout=180)


POD_CHECK = """\
import pathlib, sys, datetime as dt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store

mounted = pathlib.Path("/var/run/pod-cert")
bundle = (mounted / "credentialbundle.pem").read_bytes()
key = serialization.load_pem_private_key(bundle, password=None)
chain = x509.load_pem_x509_certificates(bundle)
trust = x509.load_pem_x509_certificates((mounted / "trust.pem").read_bytes())
name = sys.argv[1]
verifier = (
    PolicyBuilder().store(Store(trust)).time(dt.datetime.now(dt.UTC))
    .build_server_verifier(x509.DNSName(name))
)
verifier.verify(chain[0], chain[1:])
assert chain[0].public_key().public_numbers() == key.public_key().public_numbers()
print("verified", name, "against", len(trust), "trust anchors")
"""


def test_a_pod_certificate_volume_is_issued_and_verifies_against_the_trust_bundle(
    cluster: Node,
    release: dict[str, bytes],
    controller_image: tuple[image.Engine, image.Built],
) -> None:
    """The kubelet asks (a PodCertificateRequest), csr-signer signs, the kubelet mounts the key
    and chain; inside the Pod they verify against the ClusterTrustBundle projection."""
    _engine, built = controller_image
    namespace = "pod-certs"
    kubectl(cluster, "create", "namespace", namespace)
    wait_for(
        lambda: (
            cluster.cp.kubectl("get", "serviceaccount", "default", "-n", namespace).returncode == 0
        ),
        "the namespace's default ServiceAccount",
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pod-cert", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "check",
                    "image": built.name,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", POD_CHECK, f"kn-user-{namespace}"],
                    "volumeMounts": [
                        {"name": "creds", "mountPath": "/var/run/pod-cert", "readOnly": True}
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "creds",
                    "projected": {
                        "sources": [
                            {
                                "podCertificate": {
                                    "signerName": KNATIVE,
                                    "keyType": "ECDSAP256",
                                    "credentialBundlePath": "credentialbundle.pem",
                                }
                            },
                            {
                                "clusterTrustBundle": {
                                    "signerName": KNATIVE,
                                    "labelSelector": {},
                                    "path": "trust.pem",
                                }
                            },
                        ]
                    },
                }
            ],
        },
    }
    kubectl(cluster, "create", "-f", "-", stdin=json.dumps(pod).encode())

    def finished() -> str | None:
        phase = get(cluster, "pod", "-n", namespace, "pod-cert")["status"].get("phase")
        return phase if phase in {"Succeeded", "Failed"} else None

    phase = wait_for(finished, "the pod-certificate Pod to finish", timeout=180)
    logs = kubectl(cluster, "logs", "-n", namespace, "pod-cert")
    assert phase == "Succeeded", logs
    assert f"verified kn-user-{namespace}" in logs
    pcrs = get(cluster, "podcertificaterequests", "-n", namespace)["items"]
    assert pcrs, "the kubelet created no PodCertificateRequest"
    assert pcrs[0]["spec"]["nodeName"] == cluster.name
