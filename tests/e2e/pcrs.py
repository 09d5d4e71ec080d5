"""PodCertificateRequests on the real apiserver: bodies as a kubelet sends them, and reads.

Bodies and reads are plain JSON (`_preload_content=False`), as the controller handles
them: the test sees exactly what the apiserver stored.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.e2e.kube import wait_until

TERMINAL = frozenset({"Issued", "Denied", "Failed"})
T = TypeVar("T")


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
    node: dict[str, Any] | None = None,
    pod: dict[str, Any] | None = None,
    serviceaccount: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A PCR as a kubelet sends it, naming `node`, `pod` and `serviceaccount` (as JSON).

    Every identity field NodeRestriction checks (nodeName/nodeUID, podName/podUID,
    serviceAccountName/serviceAccountUID) comes from the real object's metadata; an
    object not given gets made-up values, which only a non-node creator (nothing
    cross-checked, RBAC `create` suffices) gets past the apiserver with.
    """

    def meta(obj: dict[str, Any] | None, field: str, made_up: str) -> str:
        value: str = ((obj or {}).get("metadata") or {}).get(field, made_up)
        return value

    body: dict[str, Any] = {
        "apiVersion": "certificates.k8s.io/v1beta1",
        "kind": "PodCertificateRequest",
        "metadata": {"name": name},
        "spec": {
            "signerName": signer,
            "podName": meta(pod, "name", "pod"),
            "podUID": meta(pod, "uid", "pod-uid"),
            "serviceAccountName": meta(serviceaccount, "name", "default"),
            "serviceAccountUID": meta(serviceaccount, "uid", "sa-uid"),
            "nodeName": meta(node, "name", "node"),
            "nodeUID": meta(node, "uid", "node-uid"),
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


async def until_admitted(call: Callable[[], Awaitable[T]], *, timeout: float = 15.0) -> T:
    """Retry `call` while it fails with a 5xx: NodeRestriction reads the Node, Pod and
    ServiceAccount from informer caches and answers a missing object or a UID mismatch
    (maybe cache lag) with a plain error, a 500 InternalError; its refusals are 403s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await call()
        except ApiException as exc:
            if (exc.status or 0) < 500 or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.1)


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
