"""A controller SIGKILLed while it answers a batch of PodCertificateRequests, then restarted.

A PCR gets exactly one terminal status, written once through `/status`, then one Event;
a kubelet waits for it and a Failed PCR fails its pod for good. So a crash must cost
nothing but time: the restarted controller relists, answers every PCR the dead one left
unanswered, never rewrites an answered one (the apiserver would refuse a second terminal
condition, and a re-issue would log a second Event), and a status write cut off mid-flight
either landed whole or not at all.

`csr-signer run` is a separate process here (as in test_resilience.py for CSRs), so the
SIGKILL is a real crash: no shutdown, writes and Events cut off wherever they were. The
batch is created in bursts, as a node starting pods would, and the kill is sent as soon as
a watch sees the second burst being issued, so it lands while the controller has requests
in flight and while later bursts are still to come (they arrive while it is down).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store
from csr_signer_dev.controlplane import ControlPlane, free_port
from csr_signer_dev.identities import ensure_namespace
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from signer.kube.watching import Handlers, list_and_watch
from tests.e2e.conftest import ClientFactory
from tests.e2e.kube import (
    KNATIVE,
    Installed,
    grant,
    install,
    ready,
    spawn_controller,
    wait_until,
)
from tests.e2e.pcrs import TERMINAL, certs, create_pcr, json_of, pcr_body

T = TypeVar("T")

BATCH = 60
BURST = 10
"""PCRs created together, one burst a second: pods a node starts at about the same time."""
DENY_EVERY = 5
"""Every 5th PCR asks (by annotation) for another namespace's name: Denied PolicyViolation,
so the batch's terminal statuses are not all alike."""
KILL_AFTER_ISSUED = 12
"""Issued PCRs the watch has seen when the kill is sent: 8 are in the first burst, so
this is in the middle of the second."""
WORKERS = 8
"""The controller's concurrent reconciles: at most this many answers in flight at the kill."""
FOREIGN_NAME = {"csr-signer.dev/dns-names": "kn-user-someone-else"}


class Controller:
    """`csr-signer run` for the knative signer as a child process, one log per start."""

    def __init__(self, installed: Installed, logdir: Path) -> None:
        self.installed = installed
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, port: int) -> subprocess.Popen[bytes]:
        proc = spawn_controller(
            self.installed,
            self.log_path(len(self.procs)),
            f"--signer-name={KNATIVE}",
            f"--metrics-address=127.0.0.1:{port}",
            # No Lease: the restart answers at once instead of waiting out the
            # dead process's lease; the crash is what is under test.
            "--no-leader-elect",
            f"--workers={WORKERS}",
        )
        self.procs.append(proc)
        return proc

    def log_path(self, index: int) -> Path:
        return self.logdir / f"controller-{index}.log"

    def log(self, index: int) -> str:
        return self.log_path(index).read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest_asyncio.fixture(loop_scope="session")
async def controller(
    control_plane: ControlPlane, admin_api: client.ApiClient, tmp_path: Path
) -> AsyncIterator[Controller]:
    (tmp_path / "policies").mkdir()
    installed = await install(control_plane, admin_api, tmp_path / "policies")
    processes = Controller(installed, tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


async def started(controller: Controller) -> subprocess.Popen[bytes]:
    """A new controller process, once it reports ready."""
    port = free_port()
    proc = controller.start(port)

    async def up() -> bool:
        assert proc.poll() is None, controller.log(len(controller.procs) - 1)
        return await ready(port)

    await wait_until(up, what="controller ready", timeout=60)
    return proc


async def admitted(call: Callable[[], Awaitable[T]], *, timeout: float = 15.0) -> T:
    """Retry `call` while the apiserver refuses it for now: a 403 while a fresh RBAC grant
    propagates, a 5xx while NodeRestriction's informers have not seen the new Pod yet."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await call()
        except ApiException as exc:
            status = exc.status or 0
            if status != 403 and status < 500:
                raise
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.1)


async def pods_on_a_node(
    admin: client.ApiClient, namespace: str, node: str, count: int
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(Node, ServiceAccount, Pods): `count` Pods of ServiceAccount `web` bound to a new
    Node, as JSON, for PCRs whose every identity field is a real object's."""
    core = client.CoreV1Api(admin)
    await ensure_namespace(admin, namespace)
    node_obj = await json_of(core.create_node({"metadata": {"name": node}}, _preload_content=False))
    sa = await json_of(
        core.create_namespaced_service_account(
            namespace, {"metadata": {"name": "web"}}, _preload_content=False
        )
    )
    sem = asyncio.Semaphore(10)

    async def pod(i: int) -> dict[str, Any]:
        body = {
            "metadata": {"name": f"web-{i:02d}"},
            "spec": {
                "nodeName": node,
                "serviceAccountName": "web",
                "automountServiceAccountToken": False,
                "containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}],
            },
        }
        async with sem:
            return await json_of(
                core.create_namespaced_pod(namespace, body, _preload_content=False)
            )

    return node_obj, sa, list(await asyncio.gather(*(pod(i) for i in range(count))))


async def list_pcrs(admin: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    listed = await json_of(
        certs(admin).list_namespaced_pod_certificate_request(namespace, _preload_content=False)
    )
    items: list[dict[str, Any]] = listed.get("items") or []
    return items


def terminal(pcr: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for c in (pcr.get("status") or {}).get("conditions") or []
        if c.get("type") in TERMINAL and c.get("status") == "True"
    ]


def issued(pcr: dict[str, Any]) -> bool:
    return any(c["type"] == "Issued" for c in terminal(pcr))


def verified_leaf(chain_pem: str, ca_pem: bytes, dns_name: str) -> x509.Certificate:
    """The chain's leaf, once it verified against the CA as a server certificate for
    `dns_name` (raises otherwise)."""
    chain = x509.load_pem_x509_certificates(chain_pem.encode())
    verifier = (
        PolicyBuilder()
        .store(Store([x509.load_pem_x509_certificate(ca_pem)]))
        .time(dt.datetime.now(dt.UTC))
        .build_server_verifier(x509.DNSName(dns_name))
    )
    verifier.verify(chain[0], chain[1:])
    return chain[0]


async def issued_events(admin: client.ApiClient) -> dict[str, int]:
    """Issued Events about PodCertificateRequests in `default`, counted by the PCR's UID
    (the Event's name is made unique with random bytes, so only the UID identifies it)."""
    events = await json_of(
        client.CoreV1Api(admin).list_namespaced_event(
            "default",
            field_selector="involvedObject.kind=PodCertificateRequest,reason=Issued",
            _preload_content=False,
        )
    )
    counts: dict[str, int] = {}
    for event in events.get("items") or []:
        uid = str((event.get("involvedObject") or {}).get("uid") or "")
        counts[uid] = counts.get(uid, 0) + 1
    return counts


async def test_killed_mid_batch_then_restarted_every_pcr_is_answered_once(
    controller: Controller, admin_api: client.ApiClient, client_as: ClientFactory, unique: str
) -> None:
    namespace, node = f"pcr-kill-{unique}", f"node-{unique}"
    node_obj, sa, pods = await pods_on_a_node(admin_api, namespace, node, BATCH)
    node_user = f"system:node:{node}"
    # Only an apiserver without the Node authorizer needs this; with it, it changes nothing.
    await grant(
        admin_api,
        f"e2e-pcr-kill-{unique}",
        [
            {
                "api_groups": ["certificates.k8s.io"],
                "resources": ["podcertificaterequests"],
                "verbs": ["create"],
            }
        ],
        users=(node_user,),
    )
    kubelet = await client_as(user=node_user, groups=("system:nodes",))
    keys = [
        ec.generate_private_key(ec.SECP256R1() if i % 2 else ec.SECP384R1()) for i in range(BATCH)
    ]
    foreign = {f"req-{i:02d}" for i in range(BATCH) if i % DENY_EVERY == 0}

    seen_issued: set[str] = set()
    enough = asyncio.Event()

    def see(raw: dict[str, Any]) -> None:
        if issued(raw):
            seen_issued.add(raw["metadata"]["name"])
            if len(seen_issued) >= KILL_AFTER_ISSUED:
                enough.set()

    def see_all(items: list[dict[str, Any]]) -> None:
        for item in items:
            see(item)

    watch = asyncio.create_task(
        list_and_watch(
            functools.partial(certs(admin_api).list_namespaced_pod_certificate_request, namespace),
            Handlers(on_list=see_all, on_event=lambda _kind, raw: see(raw)),
        )
    )

    async def create(i: int) -> None:
        name = f"req-{i:02d}"
        body = pcr_body(
            name,
            signer=KNATIVE,
            key=keys[i],
            node=node_obj,
            pod=pods[i],
            serviceaccount=sa,
            annotations=FOREIGN_NAME if name in foreign else None,
        )
        await admitted(lambda: create_pcr(kubelet, namespace, body))

    bursts_sent = 0

    async def create_batch() -> None:
        nonlocal bursts_sent
        loop = asyncio.get_running_loop()
        start = loop.time()
        for b in range(BATCH // BURST):
            await asyncio.sleep(max(0.0, start + b - loop.time()))
            await asyncio.gather(*(create(i) for i in range(b * BURST, (b + 1) * BURST)))
            bursts_sent += 1

    try:
        first = await started(controller)
        creating = asyncio.create_task(create_batch())
        await asyncio.wait_for(enough.wait(), timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        bursts_at_kill = bursts_sent
        at_kill = await list_pcrs(admin_api, namespace)
        issued_at_kill = sum(issued(p) for p in at_kill)
        assert 0 < issued_at_kill < BATCH - len(foreign), "the kill must land mid-batch"
        assert bursts_at_kill < BATCH // BURST, "later bursts must arrive while it is down"
        await creating

        await started(controller)

        async def all_final() -> bool:
            pcrs = await list_pcrs(admin_api, namespace)
            return len(pcrs) == BATCH and all(terminal(p) for p in pcrs)

        await wait_until(all_final, what=f"all {BATCH} PCRs answered", timeout=60)
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch

    pcrs = {p["metadata"]["name"]: p for p in await list_pcrs(admin_api, namespace)}
    assert len(pcrs) == BATCH
    for i, key in enumerate(keys):
        name = f"req-{i:02d}"
        pcr = pcrs[name]
        conditions = terminal(pcr)
        assert len(conditions) == 1, (name, conditions)
        (condition,) = conditions
        if name in foreign:
            assert (condition["type"], condition["reason"]) == ("Denied", "PolicyViolation"), name
            assert "certificateChain" not in pcr["status"], name
            continue
        assert (condition["type"], condition["reason"]) == ("Issued", "Issued"), (name, condition)
        leaf = verified_leaf(
            pcr["status"]["certificateChain"], controller.installed.ca_pem, f"kn-user-{namespace}"
        )
        assert leaf.public_key() == key.public_key(), name

    events = await issued_events(admin_api)
    ours = {pcr["metadata"]["uid"]: name for name, pcr in pcrs.items()}
    counts = {name: events.get(uid, 0) for uid, name in ours.items()}
    assert all(n <= 1 for n in counts.values()), {k: n for k, n in counts.items() if n > 1}
    # An Event is lost only when the kill fell between a status write and its Event.
    issued_names = [n for n in pcrs if n not in foreign]
    assert sum(counts[n] for n in issued_names) >= len(issued_names) - WORKERS, counts
    assert "Traceback" not in controller.log(1)
