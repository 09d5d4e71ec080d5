"""Events about our decisions, written to `default` (best effort, never fatal).

CSRs are cluster-scoped, and Events about cluster-scoped objects go to `default`, as
kube-controller-manager's do. PodCertificateRequests are namespaced, but an Event about a
namespaced object must live in that object's namespace, which would need `create` on
Events in every namespace; so theirs go to `default` too, naming the PCR in the message.
An Event that cannot be written is logged: it must never fail a decision already made.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from typing import Any

from kubernetes_asyncio import client

from signer.kube.client import as_body, read_json
from signer.kube.errors import ApiError, Conflict

log = logging.getLogger(__name__)
EVENT_NAMESPACE = "default"
COMPONENT = "csr-signer"
MESSAGE_LIMIT = 1024
"""The apiserver's limit on an Event's message."""


class EventRecorder:
    """Writes one `v1` Event per call, about the object `raw` (JSON) of `api_version`/`kind`."""

    def __init__(self, api: client.ApiClient, *, identity: str = COMPONENT) -> None:
        self._core = client.CoreV1Api(api)
        self._identity = identity

    async def record(
        self,
        raw: dict[str, Any],
        *,
        api_version: str,
        kind: str,
        type_: str,
        reason: str,
        message: str,
        name_prefix: str = "",
        once: bool = False,
    ) -> None:
        """`once`: at most one Event with this reason per object, even across restarts: its
        name is derived from the object's UID, and AlreadyExists means it was recorded
        (until the apiserver's --event-ttl, 1 h by default, expires it)."""
        metadata = raw.get("metadata") or {}
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # Cut to leave room for the suffix; a cut may end in "-" or ".", which a name may not.
        base = f"{name_prefix}{metadata.get('name', kind.lower())}"[:230].rstrip("-.")
        if once:
            digest = hashlib.sha256(str(metadata.get("uid", "")).encode()).hexdigest()[:16]
            suffix = f"{reason.lower()}.{digest}"
        else:
            suffix = secrets.token_hex(8)
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{base}.{suffix}", "namespace": EVENT_NAMESPACE},
            "involvedObject": {
                "apiVersion": api_version,
                "kind": kind,
                "name": metadata.get("name"),
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:MESSAGE_LIMIT],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._identity,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await read_json(
                self._core.create_namespaced_event(
                    EVENT_NAMESPACE, as_body(event), _preload_content=False
                )
            )
        except ApiError as exc:
            if once and isinstance(exc, Conflict):  # AlreadyExists: recorded before
                log.debug("event %s on %s was recorded already", reason, base)
                return
            log.warning("could not record event %s on %s: %s", reason, base, exc)
