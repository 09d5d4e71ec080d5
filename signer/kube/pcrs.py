"""PodCertificateRequest discovery, reads and writes: `/status` and Events.

The same rules as `signer.kube.csrs`: objects travel as JSON dicts, and every write
sends the object we decided on, resourceVersion included (the apiserver refuses an
unconditional PUT of a PCR anyway), so a concurrent writer surfaces as `Conflict`.

A PCR's status is all-or-nothing (docs/design/podcertificaterequests.md, section 3):
one terminal condition, written once through `/status`; `write_status` replaces the
whole status with the body `signer.pki.podcerts` built.

**Which version.** PCRs are `certificates.k8s.io/v1beta1` in 1.35 and 1.36, behind a
feature gate and runtime-config that are off by default, and `v1` is planned for GA.
The generated client knows only v1beta1, so the calls here are plain REST paths built
from the version discovery reports (`served_version`, preferring v1); the objects are
JSON either way. `watch_pcrs` re-asks discovery every relist period, so an API that is
switched on, upgraded to v1 or switched off is followed without a restart.

Events go to `default`, as for CSRs, with the PCR named in the message but no
`involvedObject.namespace`: the apiserver requires an Event about a namespaced
object to live in that object's namespace, and writing Events in every namespace
would need `create` on events cluster-wide. The kubelet already reports a Denied or
Failed condition on the pod itself, where the pod's owner looks.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes_asyncio import client

from signer.kube.client import as_body, read_json
from signer.kube.errors import ApiError, NotFound, NotServed, classify
from signer.kube.events import COMPONENT, EVENT_NAMESPACE, EventRecorder
from signer.kube.watching import Backoff, Handlers, list_and_watch

log = logging.getLogger(__name__)
GROUP = "certificates.k8s.io"
VERSIONS = ("v1", "v1beta1")
"""The versions we can serve, preferred first."""
RESOURCE = "podcertificaterequests"
KIND = "PodCertificateRequest"

RawPcr = dict[str, Any]
"""A certificates.k8s.io PodCertificateRequest (v1beta1 or v1) as JSON."""

_QUERY = {
    "limit": "limit",
    "_continue": "continue",
    "field_selector": "fieldSelector",
    "label_selector": "labelSelector",
    "resource_version": "resourceVersion",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "timeout_seconds": "timeoutSeconds",
    "watch": "watch",
}
"""The generated list methods' keyword arguments (which `signer.kube.watching` passes)
and their query names."""


async def _call(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: Sequence[tuple[str, Any]] = (),
    request_timeout: float | None = None,
) -> Any:
    """One REST call through the client's auth and TLS; the raw response (not preloaded)."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return await api.call_api(
        path,
        method,
        {},
        list(query),
        headers,
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _request_timeout=request_timeout,
    )


async def _get_json(api: client.ApiClient, path: str) -> dict[str, Any] | None:
    try:
        return await read_json(_call(api, "GET", path))
    except NotFound:
        return None


async def served_version(api: client.ApiClient) -> str | None:
    """The preferred version in `VERSIONS` that serves PCRs with `/status`, or None."""
    group = await _get_json(api, f"/apis/{GROUP}")
    offered = {v.get("version") for v in (group or {}).get("versions") or []}
    for version in VERSIONS:
        if version not in offered:
            continue
        resources = await _get_json(api, f"/apis/{GROUP}/{version}")
        names = {r.get("name") for r in (resources or {}).get("resources") or []}
        if {RESOURCE, f"{RESOURCE}/status"} <= names:
            return version
    return None


class PcrClient:
    """The signer's only way to change a PodCertificateRequest.

    `version` is set by `watch_pcrs` before any PCR reaches the reconciler: every PCR
    the reconciler sees came from a watch on that version.
    """

    def __init__(
        self, api: client.ApiClient, *, identity: str = COMPONENT, version: str = "v1beta1"
    ) -> None:
        self._api = api
        self.version = version
        self._events = EventRecorder(api, identity=identity)

    def _path(self, namespace: str, name: str, sub: str = "") -> str:
        path = f"/apis/{GROUP}/{self.version}/namespaces/{namespace}/{RESOURCE}/{name}"
        return f"{path}/{sub}" if sub else path

    async def get(self, namespace: str, name: str) -> RawPcr | None:
        return await _get_json(self._api, self._path(namespace, name))

    async def write_status(self, raw: RawPcr, status: dict[str, Any]) -> RawPcr:
        """PUT /status: `raw` (with its resourceVersion) carrying exactly `status`."""
        body = copy.deepcopy(raw)
        body["status"] = status
        metadata = raw["metadata"]
        path = self._path(metadata["namespace"], metadata["name"], "status")
        return await read_json(_call(self._api, "PUT", path, body=as_body(body)))

    async def event(self, raw: RawPcr, type_: str, reason: str, message: str) -> None:
        """Best effort: an Event that cannot be written is logged, never fatal."""
        metadata = raw.get("metadata") or {}
        where = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
        await self._events.record(
            raw,
            api_version=str(raw.get("apiVersion") or f"{GROUP}/{self.version}"),
            kind=KIND,
            type_=type_,
            reason=reason,
            message=f"PodCertificateRequest {where}: {message}",
            name_prefix=f"pcr.{metadata.get('namespace', 'ns')}.",
        )


def list_function(api: client.ApiClient, version: str) -> Callable[..., Any]:
    """A `list_and_watch` list function for PCRs of `version` in all namespaces.

    It takes the generated list methods' keyword arguments. A 404 raises `NotServed`
    (the API was switched off under us), which ends `list_and_watch`.
    """
    path = f"/apis/{GROUP}/{version}/{RESOURCE}"

    async def list_pcrs(**kwargs: Any) -> Any:
        query = [(_QUERY[k], v) for k, v in kwargs.items() if k in _QUERY and v is not None]
        try:
            response = await _call(
                api, "GET", path, query=query, request_timeout=kwargs.get("_request_timeout")
            )
        except Exception as exc:
            error = classify(exc)
            if isinstance(error, NotFound):
                raise NotServed(f"{GROUP}/{version} {RESOURCE} are not served", 404) from exc
            raise error from exc
        if response.status == 404:
            response.release()
            raise NotServed(f"{GROUP}/{version} {RESOURCE} are not served", 404)
        return response

    return list_pcrs


async def watch_pcrs(
    api: client.ApiClient,
    *,
    signers: Sequence[str],
    handlers: Callable[[str], Handlers],
    writer: PcrClient,
    timeout_seconds: int,
    recheck_seconds: float,
    backoff: Backoff | None = None,
) -> None:
    """Forever: discover the served version, watch each signer's PCRs on it, and ask
    discovery again every `recheck_seconds` (or at once when the version disappears).

    While no version is served it logs once and waits; discovery errors back off.
    CSR signing never waits for any of this.
    """
    backoff = backoff or Backoff()
    warned = False
    while True:
        try:
            version = await served_version(api)
        except ApiError as exc:
            delay = backoff.next()
            log.warning("PCR discovery: %s; retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            continue
        backoff.reset()
        if version is None:
            if not warned:
                warned = True
                log.warning(
                    "%s %s are not served; PodCertificateRequests are not signed until "
                    "they are (checked every %gs; --no-pod-certificates silences this)",
                    GROUP,
                    RESOURCE,
                    recheck_seconds,
                )
            await asyncio.sleep(recheck_seconds)
            continue
        warned = False
        writer.version = version
        log.info("watching %s/%s %s", GROUP, version, RESOURCE)
        await _watch_while_served(
            api,
            version,
            signers=signers,
            handlers=handlers,
            timeout_seconds=timeout_seconds,
            recheck_seconds=recheck_seconds,
        )


async def _watch_while_served(
    api: client.ApiClient,
    version: str,
    *,
    signers: Sequence[str],
    handlers: Callable[[str], Handlers],
    timeout_seconds: int,
    recheck_seconds: float,
) -> None:
    """Watch every signer's PCRs on `version` until discovery prefers another version
    (asked every `recheck_seconds`) or the version stops being served (a 404)."""
    list_fn = list_function(api, version)
    tasks = [
        asyncio.create_task(
            list_and_watch(
                list_fn,
                handlers(signer),
                timeout_seconds=timeout_seconds,
                field_selector=f"spec.signerName={signer}",
            ),
            name=f"watch pcrs {signer}",
        )
        for signer in signers
    ]
    try:
        while True:
            done, _ = await asyncio.wait(
                tasks, timeout=recheck_seconds, return_when=asyncio.FIRST_EXCEPTION
            )
            for task in done:  # list_and_watch only ever ends by raising
                exc = task.exception()
                if not isinstance(exc, NotServed):
                    raise exc or RuntimeError("a PCR watch ended")
                log.warning("%s; asking discovery again", exc)
                return
            try:
                now = await served_version(api)
            except ApiError as exc:
                log.info("PCR discovery: %s; still watching %s", exc, version)
                continue
            if now != version:
                log.warning("discovery now offers %s %s; switching", now, RESOURCE)
                return
    finally:
        for task in tasks:
            task.cancel()
        # Outcomes were handled above; this only waits for the cancellations.
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = [
    "EVENT_NAMESPACE",
    "GROUP",
    "VERSIONS",
    "NotServed",
    "PcrClient",
    "RawPcr",
    "list_function",
    "served_version",
    "watch_pcrs",
]
