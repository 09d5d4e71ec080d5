"""PodCertificateRequests end to end, on the real apiserver, as a kubelet would ask.

The admin creates a Node, a ServiceAccount and a Pod bound to that node; the PCR is
created by the node's own identity (`system:node:<name>` in `system:nodes`), with an
empty self-signed stub CSR, as the kubelet does. The apiserver then validates the
status we write (leaf key = request key, times = the leaf's, refresh window).

The local apiserver runs `--authorization-mode=RBAC` without the Node authorizer or
NodeRestriction, so the node identity is granted `create` on podcertificaterequests
here, and the apiserver does not cross-check the PCR against the Pod: NodeRestriction
is not exercised (the controller trusts the namespace and serviceAccountName it does).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store
from csr_signer_dev.controlplane import ControlPlane
from csr_signer_dev.identities import ensure_namespace
from kubernetes_asyncio import client

from tests.e2e.conftest import ClientFactory
from tests.e2e.kube import (
    CLUSTER_LOCAL,
    KNATIVE,
    after_rbac_propagates,
    grant,
    install,
    running_controller,
)
from tests.e2e.pcrs import condition_of, create_pcr, json_of, pcr_body, wait_decided


async def pod_on_a_node(
    admin: client.ApiClient, namespace: str, node: str, serviceaccount: str
) -> tuple[dict[str, Any], str, str]:
    """(Pod, node UID, ServiceAccount UID): the objects a kubelet's PCR names."""
    core = client.CoreV1Api(admin)
    await ensure_namespace(admin, namespace)
    node_obj = await json_of(core.create_node({"metadata": {"name": node}}, _preload_content=False))
    sa = await json_of(
        core.create_namespaced_service_account(
            namespace, {"metadata": {"name": serviceaccount}}, _preload_content=False
        )
    )
    pod = await json_of(
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": "web"},
                "spec": {
                    "nodeName": node,
                    "serviceAccountName": serviceaccount,
                    "automountServiceAccountToken": False,
                    "containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}],
                },
            },
            _preload_content=False,
        )
    )
    return pod, node_obj["metadata"]["uid"], sa["metadata"]["uid"]


def verify(chain_pem: str, ca_pem: bytes, dns_name: str, at: dt.datetime) -> x509.Certificate:
    chain = x509.load_pem_x509_certificates(chain_pem.encode())
    verifier = (
        PolicyBuilder()
        .store(Store([x509.load_pem_x509_certificate(ca_pem)]))
        .time(at)
        .build_server_verifier(x509.DNSName(dns_name))
    )
    verifier.verify(chain[0], chain[1:])
    return chain[0]


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


Case = tuple[str, str, ec.EllipticCurve, dict[str, str] | None, tuple[str, str]]
CASES: list[Case] = [
    # (rule, signer, key curve, unverifiedUserAnnotations, (condition, reason))
    ("own-namespace-issued", KNATIVE, ec.SECP256R1(), None, ("Issued", "Issued")),
    (
        "another-namespaces-name-by-annotation-denied",
        KNATIVE,
        ec.SECP256R1(),
        {"csr-signer.dev/dns-names": "kn-user-someone-else"},
        ("Denied", "PolicyViolation"),
    ),
    (
        "key-the-policy-excludes-denied-unsupported-key-type",
        KNATIVE,
        ec.SECP521R1(),  # the apiserver accepts P-521; the knative policy's keys do not
        None,
        ("Denied", "UnsupportedKeyType"),
    ),
    (
        "no-podcertificate-policy-covers-the-pod-denied-nopolicy",
        CLUSTER_LOCAL,  # governed, but none of its policies has a podCertificate section
        ec.SECP256R1(),
        None,
        ("Denied", "NoPolicy"),
    ),
]
"""One pod, one PCR per rule: the decision table on the real apiserver, in one session."""


async def test_pod_certificate_requests_from_a_node(
    control_plane: ControlPlane,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    tmp_path: Path,
    unique: str,
) -> None:
    installed = await install(control_plane, admin_api, tmp_path)
    node = f"node-{unique}"
    node_user = f"system:node:{node}"
    await grant(
        admin_api,
        f"e2e-pcr-creator-{unique}",
        [
            {
                "api_groups": ["certificates.k8s.io"],
                "resources": ["podcertificaterequests"],
                "verbs": ["create"],
            }
        ],
        users=(node_user,),
    )
    namespace = f"pcr-{unique}"
    pod, node_uid, sa_uid = await pod_on_a_node(admin_api, namespace, node, "web")
    kubelet = await client_as(user=node_user, groups=("system:nodes",))

    async with running_controller(control_plane, installed):
        keys = []
        for i, (_rule, signer, curve, annotations, _expected) in enumerate(CASES):
            key = ec.generate_private_key(curve)
            body = pcr_body(
                f"req-{i}",
                signer=signer,
                key=key,
                pod=pod,
                node_uid=node_uid,
                sa_uid=sa_uid,
                annotations=annotations,
            )
            # Retried while the fresh grant propagates through the RBAC cache.
            await after_rbac_propagates(lambda body=body: create_pcr(kubelet, namespace, body))
            keys.append(key)
        decided = [await wait_decided(admin_api, namespace, f"req-{i}") for i in range(len(CASES))]

    for (rule, *_, expected), key, pcr in zip(CASES, keys, decided, strict=True):
        got = condition_of(pcr)
        assert got is not None
        assert (got["type"], got["reason"]) == expected, (rule, got)
        if got["type"] != "Issued":
            assert set(pcr["status"]) == {"conditions"}, rule  # no chain or times
            continue
        status = pcr["status"]
        not_before = parse_time(status["notBefore"])
        leaf = verify(
            status["certificateChain"], installed.ca_pem, f"kn-user-{namespace}", not_before
        )
        assert leaf.public_key() == key.public_key()
        assert leaf.not_valid_before_utc == not_before
        assert leaf.not_valid_after_utc == parse_time(status["notAfter"])
        refresh = parse_time(status["beginRefreshAt"])
        assert not_before + dt.timedelta(minutes=10) <= refresh
        assert refresh <= leaf.not_valid_after_utc - dt.timedelta(minutes=10)
