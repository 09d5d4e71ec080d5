"""What the reconciler knows about one CSR, read from the raw API object.

The kube layer hands us the object as JSON (a dict, as the apiserver sent
it); we read it here, once, into a frozen value. Reading is pure and total:
a malformed object yields a state whose `problem` says what is wrong, so the
reconciler can fail the CSR with a message instead of crashing.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from signer.models import CsrRequest, Requester

RawCsr = dict[str, Any]
"""A certificates.k8s.io/v1 CertificateSigningRequest as JSON."""


@dataclass(frozen=True, slots=True)
class CsrState:
    name: str
    resource_version: str
    request: CsrRequest
    created: dt.datetime | None
    approved: bool
    denied: bool
    failed: bool
    issued: bool
    problem: str | None = None
    """Set when spec could not be read (e.g. spec.request is not base64)."""
    raw: RawCsr = field(repr=False, compare=False, default_factory=dict)

    @property
    def final(self) -> bool:
        """Nothing more will ever be done to this CSR by a signer."""
        return self.issued or self.denied or self.failed


def condition_types(raw: RawCsr) -> set[str]:
    conditions = (raw.get("status") or {}).get("conditions") or []
    return {
        str(c.get("type"))
        for c in conditions
        if isinstance(c, dict) and str(c.get("status", "True")) == "True"
    }


SA_PREFIX = "system:serviceaccount:"


def requester_lane(raw: RawCsr | None) -> str:
    """The fairness lane of a CSR: its ServiceAccount's namespace, else its username.

    A namespace, not a ServiceAccount: a tenant owns its namespace and could
    create ServiceAccounts at will to get more lanes; it cannot create namespaces.
    """
    username = str(((raw or {}).get("spec") or {}).get("username") or "")
    if username.startswith(SA_PREFIX):
        return "namespace:" + username[len(SA_PREFIX) :].split(":", 1)[0]
    return "user:" + username


def is_final(raw: RawCsr) -> bool:
    types = condition_types(raw)
    return bool((raw.get("status") or {}).get("certificate")) or bool(types & {"Denied", "Failed"})


def read_state(raw: RawCsr) -> CsrState:
    metadata = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    types = condition_types(raw)
    problem = None
    try:
        request_pem = base64.b64decode(spec.get("request") or "", validate=True)
    except (binascii.Error, ValueError):
        request_pem, problem = b"", "spec.request is not base64"
    expiration = spec.get("expirationSeconds")
    created = None
    stamp = metadata.get("creationTimestamp")
    if isinstance(stamp, str):
        try:
            created = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            created = None
    return CsrState(
        name=str(metadata.get("name", "")),
        resource_version=str(metadata.get("resourceVersion", "")),
        request=CsrRequest(
            name=str(metadata.get("name", "")),
            signer_name=str(spec.get("signerName", "")),
            request=request_pem,
            requester=Requester(
                username=str(spec.get("username", "")),
                groups=tuple(str(g) for g in spec.get("groups") or ()),
                uid=str(spec.get("uid", "")),
            ),
            usages=tuple(str(u) for u in spec.get("usages") or ()),
            expiration_seconds=int(expiration) if isinstance(expiration, int) else None,
        ),
        created=created,
        approved="Approved" in types,
        denied="Denied" in types,
        failed="Failed" in types,
        issued=bool(status.get("certificate")),
        problem=problem,
        raw=raw,
    )
