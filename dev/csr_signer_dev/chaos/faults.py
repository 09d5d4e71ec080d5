"""Each fault kind of `schedule.KINDS`: inject it, hold it, undo it, say what happened.

Faults run one at a time. Those that take something away always give it back in a
`finally` (SIGCONT, restart, toxic removed, Secret restored), so an exception in the
harness cannot leave the cluster stopped. What a fault changes that the audit must
know (a new CA, another policy version) goes into the cluster's histories at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from csr_signer_dev.chaos.cluster import (
    LEASE,
    NAMESPACE,
    PROXY,
    SECRETS,
    Cluster,
    Replica,
    ca_secret_data,
    put_ca,
    write_policies,
)
from csr_signer_dev.chaos.load import Load
from csr_signer_dev.chaos.requests import CLUSTER_LOCAL, HOSTILE_KINDS
from csr_signer_dev.chaos.schedule import Fault

T = TypeVar("T")
TERM_GRACE = 30.0
"""Seconds a replica may take to exit after SIGTERM (it waits up to 20 s for in-flight
reconciles) before the harness reports it and SIGKILLs it."""


@dataclass
class Injected:
    """One fault as it happened: when (unix time), and what the harness saw."""

    fault: Fault
    started: float
    ended: float = 0.0
    failover: float | None = None
    """Seconds from the signal to the other replica reporting it leads."""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def retrying(call: Callable[[], Awaitable[T]], *, within: float = 120.0) -> T:
    """`call` until it succeeds: the admin's own calls right after an apiserver fault."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await asyncio.wait_for(call(), timeout=15)
        except ApiException as exc:
            if (exc.status or 0) < 500 and exc.status not in (0, 429):
                raise
            if time.monotonic() > deadline:
                raise
        except Exception:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.5)


async def wait_for(predicate: Callable[[], bool], within: float) -> float | None:
    """Seconds until `predicate()` (polled in a thread every 0.1 s), None on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await asyncio.to_thread(predicate):
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    return None


class Injector:
    def __init__(self, cluster: Cluster, load: Load, admin: client.ApiClient) -> None:
        self.cluster = cluster
        self.load = load
        self.admin = admin

    async def inject(self, fault: Fault) -> Injected:
        handler = getattr(self, "_" + fault.kind.replace("-", "_"))
        record = Injected(fault, time.time())
        try:
            await handler(fault, record)
        except Exception as exc:
            record.problems.append(f"harness: {type(exc).__name__}: {exc}")
        record.ended = time.time()
        return record

    # -- the controllers ---------------------------------------------------------------

    async def _roles(self, record: Injected) -> tuple[Replica, Replica] | None:
        """(leader, standby) once someone leads and both run; None after 60 s."""
        replicas = self.cluster.replicas

        def settled() -> bool:
            return all(r.alive() for r in replicas) and self.cluster.leader() is not None

        if await wait_for(settled, 60) is None:
            record.problems.append("no leader with both replicas up within 60 s")
            return None
        leader = await asyncio.to_thread(self.cluster.leader)
        if leader is None:
            return None
        return leader, next(r for r in replicas if r is not leader)

    async def _signal(self, fault: Fault, record: Injected, sig: signal.Signals) -> None:
        roles = await self._roles(record)
        if roles is None:
            return
        leader, standby = roles
        victim, other = (leader, standby) if fault.kind.endswith("leader") else (standby, leader)
        record.started = time.time()
        victim.send(sig)
        code = await asyncio.to_thread(victim.wait, TERM_GRACE)
        if sig == signal.SIGTERM:
            exited = time.time() - record.started
            if code is None:
                holder = await self._lease_holder()
                record.problems.append(
                    f"{victim.identity} still running {exited:.0f}s after SIGTERM (Lease "
                    f"holder: {holder or 'none'}); SIGKILLed"
                )
                victim.send(signal.SIGKILL)
                await asyncio.to_thread(victim.wait, 30.0)
            elif code != 0:
                record.problems.append(f"{victim.identity} exited {code} on SIGTERM (want 0)")
            else:
                record.notes.append(f"exited 0 in {exited:.1f}s")
                holder = await self._lease_holder()
                if holder == victim.identity:
                    record.problems.append(f"{victim.identity} left the Lease held after SIGTERM")
        if victim is leader:
            if await wait_for(other.leads, 60) is None:
                record.problems.append(f"{other.identity} did not lead within 60 s")
            else:
                record.failover = time.time() - record.started
        await asyncio.sleep(1)
        victim.start()

    async def _lease_holder(self) -> str:
        lease = await retrying(
            lambda: client.CoordinationV1Api(self.admin).read_namespaced_lease(LEASE, NAMESPACE)
        )
        return str(lease.spec.holder_identity or "")

    async def _kill_leader(self, fault: Fault, record: Injected) -> None:
        await self._signal(fault, record, signal.SIGKILL)

    async def _kill_standby(self, fault: Fault, record: Injected) -> None:
        await self._signal(fault, record, signal.SIGKILL)

    async def _term_leader(self, fault: Fault, record: Injected) -> None:
        await self._signal(fault, record, signal.SIGTERM)

    async def _term_standby(self, fault: Fault, record: Injected) -> None:
        await self._signal(fault, record, signal.SIGTERM)

    # -- the control plane -------------------------------------------------------------

    async def _restart(self, name: str, fault: Fault, record: Injected) -> None:
        cp = self.cluster.cp
        await asyncio.to_thread(cp.kill, name)
        try:
            await asyncio.sleep(fault.hold)
        finally:
            took = await asyncio.to_thread(cp.restart, name)
        record.notes.append(f"{name} serving {took:.1f}s after restart")

    async def _apiserver_restart(self, fault: Fault, record: Injected) -> None:
        await self._restart("kube-apiserver", fault, record)

    async def _etcd_restart(self, fault: Fault, record: Injected) -> None:
        await self._restart("etcd", fault, record)

    async def _apiserver_stall(self, fault: Fault, record: Injected) -> None:
        proc = self.cluster.cp.process("kube-apiserver")
        proc.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(fault.hold)
        finally:
            proc.send_signal(signal.SIGCONT)

    async def _etcd_compact(self, fault: Fault, record: Injected) -> None:
        """Compact at the current revision, then cut the controllers' connections so their
        watches come back with resourceVersions from before the compaction."""
        base = f"http://127.0.0.1:{self.cluster.cp.etcd_port}/v3/kv"

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            request = urllib.request.Request(  # noqa: S310 - loopback
                f"{base}/{path}", data=json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
                data: dict[str, Any] = json.loads(resp.read())
                return data

        key = base64.b64encode(b"/registry").decode()
        header = (await asyncio.to_thread(post, "range", {"key": key, "limit": 1}))["header"]
        revision = int(header["revision"])
        await asyncio.to_thread(post, "compaction", {"revision": revision, "physical": True})
        record.notes.append(f"compacted at revision {revision}")
        await asyncio.to_thread(self.cluster.toxi.set_enabled, PROXY, False)
        await asyncio.sleep(1)
        await asyncio.to_thread(self.cluster.toxi.set_enabled, PROXY, True)

    # -- the network between controllers and apiserver --------------------------------

    async def _toxic(self, fault: Fault, type_: str, **attributes: int) -> None:
        toxi = self.cluster.toxi
        await asyncio.to_thread(toxi.add_toxic, PROXY, fault.kind, type_, **attributes)
        try:
            await asyncio.sleep(fault.hold)
        finally:
            await asyncio.to_thread(toxi.remove_toxic, PROXY, fault.kind)

    async def _proxy_latency(self, fault: Fault, record: Injected) -> None:
        latency = 300 + int(fault.hold * 997) % 1200
        record.notes.append(f"latency {latency} ms")
        await self._toxic(fault, "latency", latency=latency, jitter=200)

    async def _proxy_timeout(self, fault: Fault, record: Injected) -> None:
        await self._toxic(fault, "timeout", timeout=3000)

    async def _proxy_blackhole(self, fault: Fault, record: Injected) -> None:
        """toxiproxy's `timeout` toxic with timeout 0 drops what the apiserver sends and
        does not close: requests in flight get no answer on an open connection, as in a
        partition without RST. Shorter than the renew deadline, so the leader keeps
        leading. (toxiproxy cuts those connections when the toxic is removed: the
        replicas see "Response payload is not completed", so this cannot leave a
        connection half-open for good.)"""
        await self._toxic(fault, "timeout", timeout=0)

    async def _proxy_reset(self, fault: Fault, record: Injected) -> None:
        await self._toxic(fault, "reset_peer", timeout=0)

    # -- inputs: the CA and the policies -----------------------------------------------

    async def _put_ca(self, signer: str, data: dict[str, str]) -> None:
        await retrying(lambda: put_ca(self.admin, signer, data))

    async def _ca_delete(self, fault: Fault, record: Injected) -> None:
        core = client.CoreV1Api(self.admin)
        await retrying(lambda: core.delete_namespaced_secret(SECRETS[CLUSTER_LOCAL], NAMESPACE))
        try:
            await asyncio.sleep(fault.hold)
        finally:
            await self._put_ca(CLUSTER_LOCAL, self.cluster.ca_data[CLUSTER_LOCAL])

    async def _ca_corrupt(self, fault: Fault, record: Injected) -> None:
        broken = dict(self.cluster.ca_data[CLUSTER_LOCAL])
        broken["tls.key"] = base64.b64encode(b"-----BEGIN PRIVATE KEY-----\ngarbage\n").decode()
        await self._put_ca(CLUSTER_LOCAL, broken)
        try:
            await asyncio.sleep(fault.hold)
        finally:
            await self._put_ca(CLUSTER_LOCAL, self.cluster.ca_data[CLUSTER_LOCAL])

    async def _ca_replace(self, fault: Fault, record: Injected) -> None:
        generation = len(self.cluster.ca_history[CLUSTER_LOCAL].entries) + 1
        cert, data = ca_secret_data(f"chaos {CLUSTER_LOCAL} CA {generation}")
        # In force from before the write: a replica may load it before the call returns.
        self.cluster.ca_history[CLUSTER_LOCAL].set(time.time(), cert)
        self.cluster.ca_data[CLUSTER_LOCAL] = data
        await self._put_ca(CLUSTER_LOCAL, data)
        record.notes.append(f"CA generation {generation}")

    async def _policy_swap(self, fault: Fault, record: Injected) -> None:
        cluster = self.cluster
        write_policies(cluster.policy_dir, "invalid")
        await asyncio.sleep(fault.hold)
        cluster.policy_version = "v2" if cluster.policy_version == "v1" else "v1"
        cluster.policy_history.set(time.time(), cluster.policy_version)
        write_policies(cluster.policy_dir, cluster.policy_version)
        record.notes.append(f"policy {cluster.policy_version} in force")

    async def _hostile_burst(self, fault: Fault, record: Injected) -> None:
        requesters = self.load.requesters
        kinds = [HOSTILE_KINDS[i % len(HOSTILE_KINDS)] for i in range(24)]
        await asyncio.gather(
            *(self.load.create(requesters[i % len(requesters)], k) for i, k in enumerate(kinds))
        )
        record.notes.append(f"{len(kinds)} hostile requests")
