"""Reads for the review commands (`policy explain`, `policy diff --from-cluster`).

Everything here is a read through the user's kubeconfig, as raw JSON, exactly
the objects the controller decides on. Nothing writes. A PodCertificateRequest
API that is not served reads as "no PCRs", and a namespace the user may not
read as "labels unknown": the commands say so rather than fail.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from signer.kube.client import read_json
from signer.kube.errors import Forbidden, NotFound
from signer.kube.events import EVENT_NAMESPACE
from signer.kube.namespaces import list_function as namespace_list_function
from signer.kube.watching import list_all

Raw = dict[str, Any]


async def read_csr(api: client.ApiClient, name: str) -> Raw:
    certs = client.CertificatesV1Api(api)
    return await read_json(certs.read_certificate_signing_request(name, _preload_content=False))


async def read_pcr(api: client.ApiClient, namespace: str, name: str) -> Raw:
    certs = client.CertificatesV1beta1Api(api)
    return await read_json(
        certs.read_namespaced_pod_certificate_request(name, namespace, _preload_content=False)
    )


async def events_about(api: client.ApiClient, uid: str) -> list[Raw]:
    """The Events the controller recorded about the object with `uid` (all in `default`),
    oldest first."""
    core = client.CoreV1Api(api)
    items, _ = await list_all(
        lambda **kw: core.list_namespaced_event(EVENT_NAMESPACE, **kw),
        field_selector=f"involvedObject.uid={uid}",
    )
    return sorted(items, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


async def namespace_labels(api: client.ApiClient, name: str) -> dict[str, str] | None:
    """One namespace's labels (metadata only); None when absent or not readable."""
    try:
        items, _ = await list_all(
            namespace_list_function(api), field_selector=f"metadata.name={name}"
        )
    except (NotFound, Forbidden):
        return None
    if not items:
        return None
    return dict((items[0].get("metadata") or {}).get("labels") or {})


async def all_namespace_labels(api: client.ApiClient) -> dict[str, dict[str, str]]:
    """Every namespace's labels, from the same metadata-only list the controller uses."""
    items, _ = await list_all(namespace_list_function(api))
    return {
        str(item["metadata"]["name"]): dict(item["metadata"].get("labels") or {})
        for item in items
        if (item.get("metadata") or {}).get("name")
    }


async def configmap_files(api: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    """A ConfigMap's data: file name -> content (the policies ConfigMap's layout)."""
    core = client.CoreV1Api(api)
    raw = await read_json(core.read_namespaced_config_map(name, namespace, _preload_content=False))
    data = raw.get("data") or {}
    return {str(k): str(v) for k, v in data.items()}


async def all_requests(api: client.ApiClient) -> list[Raw]:
    """Every CSR, then every PodCertificateRequest (none when that API is not served)."""
    certs = client.CertificatesV1Api(api)
    csrs, _ = await list_all(certs.list_certificate_signing_request)
    for csr in csrs:
        csr.setdefault("kind", "CertificateSigningRequest")
    beta = client.CertificatesV1beta1Api(api)
    try:
        pcrs, _ = await list_all(beta.list_pod_certificate_request_for_all_namespaces)
    except (NotFound, Forbidden):
        pcrs = []  # the beta API is not served (or not to this user): no PCRs to decide
    for pcr in pcrs:
        pcr.setdefault("kind", "PodCertificateRequest")
    return [*csrs, *pcrs]
