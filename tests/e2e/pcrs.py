"""PodCertificateRequests on the real apiserver: bodies as a kubelet sends them, and reads.

Bodies and reads are plain JSON (`_preload_content=False`), as the controller handles
them: the test sees exactly what the apiserver stored.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from kubernetes_asyncio import client

from tests.e2e.kube import wait_until

TERMINAL = frozenset({"Issued", "Denied", "Failed"})


def stub_csr(key: Any) -> str:
    """base64 of an empty, self-signed DER PKCS#10 request: what the kubelet sends."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = None
    elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        algorithm = hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA512()
    else:
        algorithm = hashes.SHA256()
    der = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, algorithm)
        .public_bytes(serialization.Encoding.DER)
    )
    return base64.b64encode(der).decode()


def pcr_body(
    name: str,
    *,
    signer: str,
    key: Any,
    pod: dict[str, Any] | None = None,
    node_uid: str = "node-uid",
    sa_uid: str = "sa-uid",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A PCR for `pod` (a Pod as JSON; None: made-up identities, for RBAC checks)."""
    spec = (pod or {}).get("spec") or {}
    metadata = (pod or {}).get("metadata") or {}
    body: dict[str, Any] = {
        "apiVersion": "certificates.k8s.io/v1beta1",
        "kind": "PodCertificateRequest",
        "metadata": {"name": name},
        "spec": {
            "signerName": signer,
            "podName": metadata.get("name", "pod"),
            "podUID": metadata.get("uid", "pod-uid"),
            "serviceAccountName": spec.get("serviceAccountName", "default"),
            "serviceAccountUID": sa_uid,
            "nodeName": spec.get("nodeName", "node"),
            "nodeUID": node_uid,
            "maxExpirationSeconds": 86400,
            "stubPKCS10Request": stub_csr(key),
        },
    }
    if annotations:
        body["spec"]["unverifiedUserAnnotations"] = annotations
    return body


def certs(api: client.ApiClient) -> client.CertificatesV1beta1Api:
    return client.CertificatesV1beta1Api(api)


async def json_of(call: Any) -> dict[str, Any]:
    response = await call
    try:
        data: dict[str, Any] = json.loads(await response.read())
    finally:
        response.release()
    return data


async def create_pcr(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    await certs(api).create_namespaced_pod_certificate_request(namespace, body)


async def read_pcr(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return await json_of(
        certs(api).read_namespaced_pod_certificate_request(name, namespace, _preload_content=False)
    )


def condition_of(pcr: dict[str, Any]) -> dict[str, Any] | None:
    for c in (pcr.get("status") or {}).get("conditions") or []:
        if c.get("type") in TERMINAL and c.get("status") == "True":
            return dict(c)
    return None


async def wait_decided(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    async def decided() -> dict[str, Any] | None:
        pcr = await read_pcr(api, namespace, name)
        return pcr if condition_of(pcr) else None

    result: dict[str, Any] = await wait_until(decided, what=f"PCR {namespace}/{name} decided")
    return result
