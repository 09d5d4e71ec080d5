"""CSR reads and writes: `/approval`, `/status`, and Events on the CSR.

Every write sends the object we decided on, resourceVersion included, so a
concurrent change (a human's `kubectl certificate deny`, another replica)
surfaces as `Conflict` instead of being overwritten. Objects travel as JSON
dicts end to end: no model (de)serialization on the hot path, and the watch
cache holds plain data.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import logging

from kubernetes_asyncio import client

from signer.kube.client import as_body, read_json
from signer.kube.errors import NotFound
from signer.kube.events import COMPONENT, EventRecorder
from signer.reactor.state import RawCsr

log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CsrClient:
    """The signer's only way to change a CSR."""

    def __init__(self, api: client.ApiClient, *, identity: str = COMPONENT) -> None:
        self._certs = client.CertificatesV1Api(api)
        self._core = client.CoreV1Api(api)
        self._events = EventRecorder(api, identity=identity)

    async def get(self, name: str) -> RawCsr | None:
        try:
            return await read_json(
                self._certs.read_certificate_signing_request(name, _preload_content=False)
            )
        except NotFound:
            return None

    async def _set_condition(self, raw: RawCsr, type_: str, reason: str, message: str) -> RawCsr:
        body = copy.deepcopy(raw)
        status = body.setdefault("status", {})
        now = _now()
        status.setdefault("conditions", []).append(
            {
                "type": type_,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            }
        )
        name = raw["metadata"]["name"]
        if type_ in ("Approved", "Denied"):
            call = self._certs.replace_certificate_signing_request_approval(
                name, as_body(body), _preload_content=False
            )
        else:
            call = self._certs.replace_certificate_signing_request_status(
                name, as_body(body), _preload_content=False
            )
        return await read_json(call)

    async def approve(self, raw: RawCsr, reason: str, message: str) -> RawCsr:
        return await self._set_condition(raw, "Approved", reason, message)

    async def deny(self, raw: RawCsr, reason: str, message: str) -> RawCsr:
        return await self._set_condition(raw, "Denied", reason, message)

    async def fail(self, raw: RawCsr, reason: str, message: str) -> RawCsr:
        """A Failed condition through /status (needs no `sign` permission)."""
        return await self._set_condition(raw, "Failed", reason, message)

    async def upload_certificate(self, raw: RawCsr, chain_pem: bytes) -> RawCsr:
        body = copy.deepcopy(raw)
        body.setdefault("status", {})["certificate"] = base64.b64encode(chain_pem).decode()
        return await read_json(
            self._certs.replace_certificate_signing_request_status(
                raw["metadata"]["name"], as_body(body), _preload_content=False
            )
        )

    async def event(
        self, raw: RawCsr, type_: str, reason: str, message: str, *, once: bool = False
    ) -> None:
        """Best effort: an Event that cannot be written is logged, never fatal. `once`: at
        most one per CSR and reason, across restarts (`EventRecorder.record`)."""
        await self._events.record(
            raw,
            api_version="certificates.k8s.io/v1",
            kind="CertificateSigningRequest",
            type_=type_,
            reason=reason,
            message=message,
            once=once,
        )
