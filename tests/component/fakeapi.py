"""An in-memory stand-in for the CSR endpoints, for fast reconcile tests.

It keeps the rules the reconciler relies on (resourceVersion conflicts,
Approved/Denied exclusive, certificate immutable) and can inject faults. The
real apiserver is exercised in tests/e2e; this only makes faults cheap.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from signer.kube.errors import ApiError, Conflict, ServerError, status_error
from signer.reactor.state import RawCsr
from tests.data.csrs import build_csr_pem


def make_raw(
    name: str,
    *,
    signer: str = "csr-signer.dev/cluster-local",
    username: str = "system:serviceaccount:team-a:app",
    dns_names: tuple[str, ...] = ("web.team-a.svc",),
    usages: tuple[str, ...] = ("digital signature", "key encipherment", "server auth"),
    conditions: tuple[str, ...] = (),
    pem: bytes | None = None,
) -> RawCsr:
    sa_ns = username.split(":")[2] if username.startswith("system:serviceaccount:") else None
    groups = ["system:authenticated"] + (
        [f"system:serviceaccounts:{sa_ns}", "system:serviceaccounts"] if sa_ns else []
    )
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "1",
            "creationTimestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "spec": {
            "request": base64.b64encode(pem or build_csr_pem(dns_names=list(dns_names))).decode(),
            "signerName": signer,
            "usages": list(usages),
            "username": username,
            "groups": groups,
        },
        "status": {
            "conditions": [{"type": t, "status": "True", "reason": "Test"} for t in conditions]
        },
    }


@dataclass
class FakeCsrApi:
    objects: dict[str, RawCsr] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    writes: list[tuple[str, str]] = field(default_factory=list)
    fail_next: list[ApiError] = field(default_factory=list)
    """Errors to raise from the next writes, in order."""
    during_event: Any = None
    """Called while an Event is written: another actor's change lands mid-reconcile."""
    reads: int = 0
    """GETs so far (the cost of re-reading objects)."""
    max_object_bytes: int | None = None
    """Like etcd's request size limit: a write that makes the object larger fails."""

    def add(self, raw: RawCsr) -> RawCsr:
        self.objects[raw["metadata"]["name"]] = copy.deepcopy(raw)
        return copy.deepcopy(raw)

    def mutate(self, name: str, condition: str) -> None:
        """Someone else (a human) changes the object: bumps resourceVersion."""
        obj = self.objects[name]
        obj["status"]["conditions"].append({"type": condition, "status": "True", "reason": "Human"})
        obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)

    async def get(self, name: str) -> RawCsr | None:
        self.reads += 1
        obj = self.objects.get(name)
        return copy.deepcopy(obj) if obj else None

    def _write(self, verb: str, raw: RawCsr, change: Any) -> RawCsr:
        if self.fail_next:
            raise self.fail_next.pop(0)
        name = raw["metadata"]["name"]
        stored = self.objects[name]
        if stored["metadata"]["resourceVersion"] != raw["metadata"]["resourceVersion"]:
            raise Conflict("409 Conflict: the object has been modified", 409)
        candidate = copy.deepcopy(stored)
        change(candidate)
        size = len(json.dumps(candidate))
        if self.max_object_bytes is not None and size > self.max_object_bytes:
            raise status_error(500, json.dumps({"message": "etcdserver: request is too large"}))
        change(stored)
        stored["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1)
        self.writes.append((verb, name))
        return copy.deepcopy(stored)

    def _condition(self, type_: str, reason: str, message: str) -> Any:
        def change(obj: RawCsr) -> None:
            types = {c["type"] for c in obj["status"]["conditions"]}
            if {"Approved", "Denied"} & types and type_ in ("Approved", "Denied"):
                raise ApiError("422 Invalid: Approved and Denied are exclusive", 422)
            obj["status"]["conditions"].append(
                {"type": type_, "status": "True", "reason": reason, "message": message}
            )

        return change

    async def approve(self, raw: RawCsr, reason: str, message: str) -> RawCsr:
        return self._write("approve", raw, self._condition("Approved", reason, message))

    async def deny(self, raw: RawCsr, reason: str, message: str) -> RawCsr:
        return self._write("deny", raw, self._condition("Denied", reason, message))

    async def fail(self, raw: RawCsr, reason: str, message: str) -> RawCsr:
        return self._write("fail", raw, self._condition("Failed", reason, message))

    async def upload_certificate(self, raw: RawCsr, chain_pem: bytes) -> RawCsr:
        def change(obj: RawCsr) -> None:
            if obj["status"].get("certificate"):
                raise ApiError("422 Invalid: certificate is immutable", 422)
            obj["status"]["certificate"] = base64.b64encode(chain_pem).decode()

        return self._write("sign", raw, change)

    async def event(
        self, raw: RawCsr, type_: str, reason: str, message: str, *, once: bool = False
    ) -> None:
        if once and any(e[:2] == (raw["metadata"]["name"], reason) for e in self.events):
            return  # the real API answers AlreadyExists to the same derived name
        self.events.append((raw["metadata"]["name"], reason, message))
        if self.during_event is not None:
            self.during_event()


class RecordingMetrics:
    """Records calls as tuples; per-request metrics carry their `kind` second."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def decision(self, signer: str, outcome: object, policy: str | None, *, kind: str) -> None:
        self.calls.append(("decision", kind, str(outcome), policy))

    def issued(self, signer: str, *, kind: str) -> None:
        self.calls.append(("issued", kind))

    def request_unreadable(self, signer: str, reason: str) -> None:
        self.calls.append(("request_unreadable", reason))

    def signing_failed(self, signer: str, reason: str, *, kind: str) -> None:
        self.calls.append(("signing_failed", kind, reason))

    def observe_latency(self, signer: str, seconds: float, *, kind: str) -> None:
        self.calls.append(("latency", kind))

    def api_error(self, kind: str, verb: str) -> None:
        self.calls.append(("api_error", kind))


__all__ = ["FakeCsrApi", "RecordingMetrics", "ServerError", "make_raw"]
