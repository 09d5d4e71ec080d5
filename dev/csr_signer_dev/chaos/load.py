"""The steady load: many requesters creating CSRs and PCRs while faults happen.

Requester `i` is ServiceAccount `chaos-<i>/app` (CSRs), the admin for CSRs left for a
human, and the kubelet of node `chaos-node-<i>` (PCRs for its pod `chaos-<i>/web`). Each
requester creates one request every `requesters / rate` seconds on average, its kind
drawn from `LOAD_MIX` with a generator seeded from the run's seed.

A create that fails because the apiserver is down or stalled is retried under the same
name until it succeeds or 409 says an earlier attempt already stored it; the audit reads
what was stored, so an answer lost on the way back loses nothing. A refusal (4xx) is
final and counted: that is the apiserver rejecting garbage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from signer.kube.client import as_body

from csr_signer_dev.chaos.requests import (
    LOAD_MIX,
    csr_body,
    namespace,
    pcr_body,
    request_name,
)
from csr_signer_dev.controlplane import ControlPlane
from csr_signer_dev.identities import api_client, ensure_namespace, serviceaccount_credentials

RETRY_FOR = 120.0
"""Seconds a create is retried through outages (the longest fault is far shorter)."""


@dataclass
class Requester:
    index: int
    serviceaccount: client.ApiClient
    kubelet: client.ApiClient
    pod: dict[str, Any]
    node: dict[str, Any]
    account: dict[str, Any]


@dataclass
class Load:
    cp: ControlPlane
    admin: client.ApiClient
    requesters: list[Requester]
    rng: random.Random
    rate: float
    created: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    """Kind -> creates the apiserver refused (4xx), e.g. garbage requests."""
    retries: int = 0
    _seq: int = 0

    def next_name(self, kind: str, requester: int) -> str:
        self._seq += 1
        return request_name(kind, requester, self._seq)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._requester(r, stop) for r in self.requesters))

    async def _requester(self, requester: Requester, stop: asyncio.Event) -> None:
        period = len(self.requesters) / self.rate
        kinds = [k for k, _w in LOAD_MIX]
        weights = [w for _k, w in LOAD_MIX]
        while not stop.is_set():
            kind = self.rng.choices(kinds, weights)[0]
            await self.create(requester, kind)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.rng.uniform(0.5, 1.5) * period)

    async def create(self, requester: Requester, kind: str) -> None:
        name = self.next_name(kind, requester.index)
        if kind == "pcr":
            body = pcr_body(name, requester.node, requester.pod, requester.account)
            api = client.CertificatesV1beta1Api(requester.kubelet)
            ns = namespace(requester.index)

            async def call() -> Any:
                return await api.create_namespaced_pod_certificate_request(ns, as_body(body))

        else:
            csr = csr_body(name, kind, requester.index, len(self.requesters))
            who = self.admin if kind == "human" else requester.serviceaccount
            certs = client.CertificatesV1Api(who)

            async def call() -> Any:
                return await certs.create_certificate_signing_request(as_body(csr))

        if await self._with_retries(call, kind):
            self.created[kind] += 1

    async def _with_retries(self, call: Any, kind: str) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_FOR
        while True:
            try:
                await asyncio.wait_for(call(), timeout=20)
                return True
            except ApiException as exc:
                status = exc.status or 0
                if status == 409:
                    return True
                # 500: NodeRestriction's informer lag; 429/5xx: overload or an outage.
                if status < 500 and status not in (429, 0, 403):
                    self.rejected[kind] += 1
                    return False
            except (OSError, TimeoutError):
                pass
            except Exception as exc:  # aiohttp's errors: the apiserver is away
                if "aiohttp" not in type(exc).__module__:
                    raise
            if loop.time() > deadline:
                self.rejected[f"{kind}:gave-up"] += 1
                return False
            self.retries += 1
            await asyncio.sleep(0.5)


async def _json(call: Any) -> dict[str, Any]:
    response = await call
    try:
        data: dict[str, Any] = json.loads(await response.read())
    finally:
        response.release()
    return data


async def make_requesters(cp: ControlPlane, admin: client.ApiClient, count: int) -> list[Requester]:
    """Namespaces, ServiceAccounts (allowed to create CSRs), nodes and pods for PCRs."""
    rbac = client.RbacAuthorizationV1Api(admin)
    role = {
        "metadata": {"name": "chaos-csr-requesters"},
        "rules": [
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests"],
                "verbs": ["create", "get"],
            }
        ],
    }
    binding = {
        "metadata": {"name": "chaos-csr-requesters"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "chaos-csr-requesters",
        },
        "subjects": [
            {
                "kind": "Group",
                "name": "system:serviceaccounts",
                "apiGroup": "rbac.authorization.k8s.io",
            }
        ],
    }
    await rbac.create_cluster_role(as_body(role))
    await rbac.create_cluster_role_binding(as_body(binding))
    core = client.CoreV1Api(admin)
    requesters = []
    for i in range(count):
        ns = namespace(i)
        await ensure_namespace(admin, ns)
        creds = await serviceaccount_credentials(admin, ns, "app", expiration_seconds=24 * 3600)
        account = await _json(
            core.read_namespaced_service_account("app", ns, _preload_content=False)
        )
        node_name = f"chaos-node-{i}"
        node = await _json(
            core.create_node(as_body({"metadata": {"name": node_name}}), _preload_content=False)
        )
        pod = await _json(
            core.create_namespaced_pod(
                ns,
                as_body(
                    {
                        "metadata": {"name": "web"},
                        "spec": {
                            "nodeName": node_name,
                            "serviceAccountName": "app",
                            "automountServiceAccountToken": False,
                            "containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}],
                        },
                    }
                ),
                _preload_content=False,
            )
        )
        kubelet = await api_client(
            cp, cp.client_credentials(f"system:node:{node_name}", ("system:nodes",))
        )
        requesters.append(Requester(i, await api_client(cp, creds), kubelet, pod, node, account))
    return requesters
