"""Crashes, restarts and two replicas: `csr-signer run` as real processes.

Each controller here is a separate `python -m signer run` process holding its
ServiceAccount token, so SIGKILL is a real crash (no Lease release, writes cut
off mid-flight) and leader election is between real processes.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from csr_signer_dev.controlplane import ControlPlane
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.data.csrs import build_csr_pem
from tests.e2e.conftest import ClientFactory
from tests.e2e.kube import (
    NAMESPACE,
    Installed,
    create_csr,
    install,
    spawn_controller,
    types,
    wait_until,
)

LEASE = "csr-signer"
SIGNER = "csr-signer.dev/cluster-local"


class Replicas:
    """Starts and stops controller processes; kills leftovers at teardown."""

    def __init__(self, installed: Installed, logdir: Path) -> None:
        self.installed = installed
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, identity: str) -> subprocess.Popen[bytes]:
        proc = spawn_controller(
            self.installed,
            self.logdir / f"{identity}.log",
            f"--identity={identity}",
            "--metrics-address=127.0.0.1:0",
            "--leader-elect",
            f"--leader-elect-lease-name={LEASE}",
            f"--leader-elect-lease-namespace={NAMESPACE}",
            "--leader-elect-lease-duration=4",
            "--leader-elect-renew-deadline=3",
            "--leader-elect-retry-period=1",
            "--workers=8",
        )
        self.procs[identity] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    def log(self, identity: str) -> str:
        return (self.logdir / f"{identity}.log").read_text(errors="replace")


@pytest_asyncio.fixture(loop_scope="session")
async def replicas(
    control_plane: ControlPlane, admin_api: client.ApiClient, tmp_path: Path
) -> AsyncIterator[Replicas]:
    (tmp_path / "policies").mkdir()
    installed = await install(control_plane, admin_api, tmp_path / "policies")
    group = Replicas(installed, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


async def lease_holder(admin: client.ApiClient) -> str:
    try:
        lease = await client.CoordinationV1Api(admin).read_namespaced_lease(LEASE, NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return ""
        raise
    return str(lease.spec.holder_identity or "")


async def csrs_by_prefix(
    admin: client.ApiClient, prefix: str
) -> list[client.V1CertificateSigningRequest]:
    listed = await client.CertificatesV1Api(admin).list_certificate_signing_request()
    return [c for c in listed.items if c.metadata.name.startswith(prefix)]


def is_final(csr: client.V1CertificateSigningRequest) -> bool:
    return bool(csr.status.certificate) or bool({"Denied", "Failed"} & set(types(csr)))


async def issued_events(
    admin: client.ApiClient, prefix: str, reason: str = "Issued"
) -> dict[str, int]:
    events = await client.CoreV1Api(admin).list_namespaced_event("default")
    counts: dict[str, int] = {}
    for event in events.items:
        name = event.involved_object.name or ""
        if event.reason == reason and name.startswith(prefix):
            counts[name] = counts.get(name, 0) + 1
    return counts


async def create_batch(
    requester: client.ApiClient, prefix: str, count: int, *, deny_every: int = 4
) -> set[str]:
    """`count` CSRs from team-a, every `deny_every`-th asking for another namespace's name."""
    pem_ok = build_csr_pem(dns_names=["web.team-a.svc"])
    pem_bad = build_csr_pem(dns_names=["web.team-b.svc"])
    denied: set[str] = set()
    sem = asyncio.Semaphore(20)

    async def one(i: int) -> None:
        name = f"{prefix}{i:04d}"
        bad = i % deny_every == 0
        if bad:
            denied.add(name)
        async with sem:
            await create_csr(requester, name, pem_bad if bad else pem_ok, signer_name=SIGNER)

    await asyncio.gather(*(one(i) for i in range(count)))
    return denied


async def test_killed_mid_batch_then_restarted_every_csr_is_decided_and_issued_once(
    replicas: Replicas, admin_api: client.ApiClient, client_as: ClientFactory, unique: str
) -> None:
    prefix = f"batch-{unique}-"
    first = replicas.start(f"first-{unique}")
    await wait_until(
        lambda: _holder_is(admin_api, f"first-{unique}"), what="first leads", timeout=30
    )
    requester = await client_as(serviceaccount=("team-a", "batch"))
    creating = asyncio.create_task(create_batch(requester, prefix, 200))

    async def some_done() -> bool:
        done = [c for c in await csrs_by_prefix(admin_api, prefix) if is_final(c)]
        return len(done) >= 40

    await wait_until(some_done, what="40 CSRs final", timeout=60)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    denied = await creating
    done_at_kill = len([c for c in await csrs_by_prefix(admin_api, prefix) if is_final(c)])
    assert done_at_kill < 200, "the kill must land mid-batch"

    replicas.start(f"second-{unique}")

    async def all_done() -> bool:
        csrs = await csrs_by_prefix(admin_api, prefix)
        return len(csrs) == 200 and all(is_final(c) for c in csrs)

    await wait_until(all_done, what="all 200 final", timeout=120)
    csrs = await csrs_by_prefix(admin_api, prefix)
    for csr in csrs:
        name = csr.metadata.name
        if name in denied:
            assert types(csr) == ["Denied"], name
            assert csr.status.certificate is None, name
        else:
            assert types(csr) == ["Approved"], f"{name}: {types(csr)}"
            assert csr.status.certificate, name
    events = await issued_events(admin_api, prefix)
    assert all(count == 1 for count in events.values()), {k: v for k, v in events.items() if v != 1}
    assert "Traceback" not in replicas.log(f"second-{unique}")


async def _holder_is(admin: client.ApiClient, identity: str) -> bool:
    return await lease_holder(admin) == identity


async def test_two_replicas_one_leads_and_the_standby_takes_over_when_it_dies(
    replicas: Replicas, admin_api: client.ApiClient, client_as: ClientFactory, unique: str
) -> None:
    a, b = f"a-{unique}", f"b-{unique}"
    replicas.start(a)
    replicas.start(b)

    async def someone_leads() -> str:
        holder = await lease_holder(admin_api)
        return holder if holder in (a, b) else ""

    leader = await wait_until(someone_leads, what="a leader", timeout=30)
    standby = b if leader == a else a
    requester = await client_as(serviceaccount=("team-a", "pair"))
    await create_batch(requester, f"pair1-{unique}-", 20)

    async def batch_done(prefix: str) -> bool:
        csrs = await csrs_by_prefix(admin_api, prefix)
        return len(csrs) == 20 and all(is_final(c) for c in csrs)

    await wait_until(lambda: batch_done(f"pair1-{unique}-"), what="first batch", timeout=60)
    assert "became leader" not in replicas.log(standby), "only one replica leads"

    replicas.procs[leader].send_signal(signal.SIGKILL)
    replicas.procs[leader].wait(timeout=10)
    await create_batch(requester, f"pair2-{unique}-", 20)
    await wait_until(lambda: batch_done(f"pair2-{unique}-"), what="second batch", timeout=60)
    assert await lease_holder(admin_api) == standby

    # SIGTERM: finish in-flight work, release the Lease, exit 0.
    replicas.procs[standby].send_signal(signal.SIGTERM)
    assert replicas.procs[standby].wait(timeout=30) == 0
    assert await lease_holder(admin_api) == ""


async def test_a_restart_does_not_repeat_the_pending_event_of_a_csr_left_for_a_human(
    replicas: Replicas, admin_api: client.ApiClient, client_as: ClientFactory, unique: str
) -> None:
    """The Pending note is in memory; the Event's name, derived from the CSR's UID, is not."""
    prefix = f"human-{unique}-"
    human = await client_as(user=f"carol-{unique}", groups=("devs",))
    pem = build_csr_pem(dns_names=["web.team-a.svc"])
    for i in range(5):
        await create_csr(human, f"{prefix}{i}", pem, signer_name=SIGNER)
    for run in ("before", "after"):
        identity = f"{run}-{unique}"
        proc = replicas.start(identity)

        async def decided(identity: str = identity) -> bool:
            """Each CSR left Pending by this process (its log says so)."""
            log = replicas.log(identity)
            return all(f"{prefix}{i}: pending" in log for i in range(5))

        await wait_until(decided, what=f"5 CSRs left pending ({run} the restart)", timeout=60)
        await asyncio.sleep(1)  # the Events follow the decisions
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    events = await issued_events(admin_api, prefix, "Pending")
    assert events == {f"{prefix}{i}": 1 for i in range(5)}
    assert "could not record event" not in replicas.log(f"after-{unique}")
