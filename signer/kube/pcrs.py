"""PodCertificateRequest reads and writes (certificates.k8s.io/v1beta1): `/status` and Events.

The same rules as `signer.kube.csrs`: objects travel as JSON dicts, and every write
sends the object we decided on, resourceVersion included (the apiserver refuses an
unconditional PUT of a PCR anyway), so a concurrent writer surfaces as `Conflict`.

A PCR's status is all-or-nothing (docs/design/podcertificaterequests.md, section 3):
one terminal condition, written once through `/status`; `write_status` replaces the
whole status with the body `signer.pki.podcerts` built.

Events go to `default`, as for CSRs, with the PCR named in the message but no
`involvedObject.namespace`: the apiserver requires an Event about a namespaced
object to live in that object's namespace, and writing Events in every namespace
would need `create` on events cluster-wide. The kubelet already reports a Denied or
Failed condition on the pod itself, where the pod's owner looks.

The beta API may not be served (the feature gate and runtime-config are off by
default in 1.36): `list_function` returns a list function that, on 404, logs once
and then parks forever, so the controller's other watches are not disturbed.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes_asyncio import client

from signer.kube.client import as_body, read_json
from signer.kube.errors import NotFound, classify
from signer.kube.events import COMPONENT, EVENT_NAMESPACE, EventRecorder

log = logging.getLogger(__name__)
API_VERSION = "certificates.k8s.io/v1beta1"
KIND = "PodCertificateRequest"

RawPcr = dict[str, Any]
"""A certificates.k8s.io/v1beta1 PodCertificateRequest as JSON."""


class PcrClient:
    """The signer's only way to change a PodCertificateRequest."""

    def __init__(self, api: client.ApiClient, *, identity: str = COMPONENT) -> None:
        self._certs = client.CertificatesV1beta1Api(api)
        self._core = client.CoreV1Api(api)
        self._events = EventRecorder(api, identity=identity)

    async def get(self, namespace: str, name: str) -> RawPcr | None:
        try:
            return await read_json(
                self._certs.read_namespaced_pod_certificate_request(
                    name, namespace, _preload_content=False
                )
            )
        except NotFound:
            return None

    async def write_status(self, raw: RawPcr, status: dict[str, Any]) -> RawPcr:
        """PUT /status: `raw` (with its resourceVersion) carrying exactly `status`."""
        body = copy.deepcopy(raw)
        body["status"] = status
        metadata = raw["metadata"]
        return await read_json(
            self._certs.replace_namespaced_pod_certificate_request_status(
                metadata["name"], metadata["namespace"], as_body(body), _preload_content=False
            )
        )

    async def event(self, raw: RawPcr, type_: str, reason: str, message: str) -> None:
        """Best effort: an Event that cannot be written is logged, never fatal."""
        metadata = raw.get("metadata") or {}
        where = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
        await self._events.record(
            raw,
            api_version=API_VERSION,
            kind=KIND,
            type_=type_,
            reason=reason,
            message=f"PodCertificateRequest {where}: {message}",
            name_prefix=f"pcr.{metadata.get('namespace', 'ns')}.",
        )


def list_function(
    api: client.ApiClient, *, park: Callable[[], Awaitable[None]] | None = None
) -> Callable[..., Awaitable[Any]]:
    """The `list_and_watch` list function for PCRs in all namespaces.

    Call it with `field_selector=f"spec.signerName={name}"`. When the API is not
    served (404), it logs once and awaits `park` (default: forever) instead of
    raising, so the watch loop neither spins nor takes the controller down.
    """
    certs = client.CertificatesV1beta1Api(api)
    warned = False

    async def forever() -> None:
        await asyncio.Event().wait()

    async def list_pcrs(**kwargs: Any) -> Any:
        nonlocal warned
        try:
            response: Any = await certs.list_pod_certificate_request_for_all_namespaces(**kwargs)
        except Exception as exc:
            error = classify(exc)
            if not isinstance(error, NotFound):
                raise error from exc
        else:
            if getattr(response, "status", 200) != 404:
                return response
            response.release()
        if not warned:
            warned = True
            log.warning(
                "%s podcertificaterequests are not served; PodCertificateRequests are "
                "not signed (set --no-pod-certificates to silence)",
                API_VERSION,
            )
        await (park or forever)()
        raise NotFound(f"{API_VERSION} podcertificaterequests are not served", 404)

    return list_pcrs


__all__ = ["API_VERSION", "EVENT_NAMESPACE", "PcrClient", "RawPcr", "list_function"]
