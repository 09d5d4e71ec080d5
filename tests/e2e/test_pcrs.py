"""PodCertificateRequests end to end, on the real apiserver, as a kubelet would ask.

The admin creates a Node, a ServiceAccount and a Pod bound to that node; the PCR is
created by the node's own identity (`system:node:<name>` in `system:nodes`), with an
empty self-signed stub CSR, as the kubelet does. The apiserver then validates the
status we write (leaf key = request key, times = the leaf's, refresh window).

The local apiserver runs `--authorization-mode=Node,RBAC` with the NodeRestriction
admission plugin, as a cluster serving PCRs should: the node needs no RBAC grant (the
Node authorizer lets it create PCRs), and NodeRestriction admits a PCR only when its
node, pod and ServiceAccount names and UIDs are the real objects' and the pod is bound
to the requesting node (the controller trusts the namespace and serviceAccountName
because of it). Its UID and existence checks read informer caches and answer lag with
a retryable 500, so creates go through `until_admitted`.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store
from csr_signer_dev.controlplane import ControlPlane
from csr_signer_dev.identities import ensure_namespace
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.e2e.conftest import ClientFactory
from tests.e2e.kube import CLUSTER_LOCAL, KNATIVE, install, running_controller
from tests.e2e.pcrs import (
    certs,
    condition_of,
    create_pcr,
    json_of,
    pcr_body,
    until_admitted,
    wait_decided,
)


@dataclass(frozen=True)
class PodOnANode:
    """The real objects a kubelet's PCR names, as the apiserver returned them (JSON)."""

    node: dict[str, Any]
    serviceaccount: dict[str, Any]
    pod: dict[str, Any]

    def pcr(self, name: str, **fields: Any) -> dict[str, Any]:
        """A PCR for this pod, as its node's kubelet would send it."""
        return pcr_body(
            name, node=self.node, pod=self.pod, serviceaccount=self.serviceaccount, **fields
        )


async def create_node(admin: client.ApiClient, name: str) -> dict[str, Any]:
    core = client.CoreV1Api(admin)
    return await json_of(core.create_node({"metadata": {"name": name}}, _preload_content=False))


async def pod_on_a_node(
    admin: client.ApiClient, namespace: str, node: str, serviceaccount: str
) -> PodOnANode:
    """A new Node, a ServiceAccount and a Pod `web` of it bound to that node."""
    core = client.CoreV1Api(admin)
    await ensure_namespace(admin, namespace)
    node_obj = await create_node(admin, node)
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
    return PodOnANode(node_obj, sa, pod)


async def kubelet_of(client_as: ClientFactory, node: str) -> client.ApiClient:
    """A client as the node itself: `system:node:<node>` in `system:nodes`, no RBAC grant."""
    return await client_as(user=f"system:node:{node}", groups=("system:nodes",))


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
    namespace = f"pcr-{unique}"
    scheduled = await pod_on_a_node(admin_api, namespace, node, "web")
    kubelet = await kubelet_of(client_as, node)

    async with running_controller(control_plane, installed):
        keys = []
        for i, (_rule, signer, curve, annotations, _expected) in enumerate(CASES):
            key = ec.generate_private_key(curve)
            body = scheduled.pcr(f"req-{i}", signer=signer, key=key, annotations=annotations)
            await until_admitted(lambda body=body: create_pcr(kubelet, namespace, body))
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


@pytest.mark.parametrize(
    ("claimed_node", "message"),
    [
        pytest.param(
            "own",
            'pod "{namespace}/web" is not running on node "{own}" named in the'
            " PodCertificateRequest",
            id="naming-itself-refused-pod-not-bound-to-it",
        ),
        pytest.param(
            "other",
            'PodCertificateRequest.Spec.NodeName="{other}", which is not the requesting'
            ' node "{own}"',
            id="naming-the-pods-node-refused-not-the-requesting-node",
        ),
    ],
)
async def test_node_restriction_refuses_a_pcr_for_a_pod_on_another_node(
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    unique: str,
    claimed_node: str,
    message: str,
) -> None:
    """NodeRestriction is live: a node cannot get a certificate for another node's pod,
    whichever node it names; every UID in the request is real, so only the binding fails."""
    namespace = f"pcr-nr-{unique}"
    own = await create_node(admin_api, f"node-a-{unique}")
    theirs = await pod_on_a_node(admin_api, namespace, f"node-b-{unique}", "web")
    kubelet = await kubelet_of(client_as, own["metadata"]["name"])
    node = own if claimed_node == "own" else theirs.node
    body = pcr_body(
        "stolen",
        signer=KNATIVE,
        key=ec.generate_private_key(ec.SECP256R1()),
        node=node,
        pod=theirs.pod,
        serviceaccount=theirs.serviceaccount,
    )

    with pytest.raises(ApiException) as refused:
        await until_admitted(lambda: create_pcr(kubelet, namespace, body))

    assert refused.value.status == 403
    status = json.loads(refused.value.body or "{}")
    assert status["reason"] == "Forbidden"
    expected = message.format(
        namespace=namespace, own=own["metadata"]["name"], other=theirs.node["metadata"]["name"]
    )
    assert status["message"] == (
        f'podcertificaterequests.certificates.k8s.io "stolen" is forbidden: {expected}'
    )
    with pytest.raises(ApiException) as missing:  # nothing was stored
        await certs(admin_api).read_namespaced_pod_certificate_request("stolen", namespace)
    assert missing.value.status == 404
