"""PodCertificateRequests next to CSRs for the same signer, end to end on the local control plane.

A PCR is answered with one write (its whole status, certificate included, through
`/status`), a CSR with two (the Approved condition, then the certificate), each followed
by one Event. The same controller, policy file and CA sign both, so measuring the two
side by side on one apiserver shows what the second write and the CSR's heavier path cost,
and catches a PCR path that got slower than the CSR one it is meant to beat.

Both kinds go to `csr-signer.dev/knative-internal` and get the same name, `kn-user-demo`:

- PCRs are created as the kubelet would, by a node's identity (`system:node:bench-node`,
  a client certificate) for real Pods of ServiceAccount `demo/app` bound to that node,
  with an empty self-signed stub CSR (`tests/e2e/pcrs.py` builds the bodies); the
  bundled `knative-system-internal` policy's `podCertificate` section issues them (when
  the local apiserver runs NodeRestriction, each create also pays its checks, as on a
  real cluster);
- CSRs are created by ServiceAccount `demo/app` itself (a token), asking for
  `kn-user-demo`, which the same policy allows a ServiceAccount of `demo`.

Figures, each measured in every run, runs interleaved (PCR, CSR, then CSR, PCR, ...) so
that drift on a shared 2-core machine and any order effect hit both kinds alike. Every
measurement starts its own controller process (as `bench_controller.py` does), warms it
up with 50 requests, then:

1. throughput: N requests (default 500) created as fast as C concurrent clients (default
   16) can, from the first create to the last certificate a watch saw;
2. latency at a fixed offered load (default 100/s for 10 s): p50 and p99 from the moment
   the create call returned to the moment a watch saw the certificate.

The medians over runs, with their spread, and the ratios PCR/CSR are printed; the
targets in `benchmarks/targets.py` (PCR throughput at least the CSR one, PCR p99 under a
second) decide the exit status.

    .venv/bin/python benchmarks/bench_pcrs.py [--runs 3] [--count 500] [--rate 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import functools
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from csr_signer_dev import session
from csr_signer_dev.controlplane import ControlPlane
from csr_signer_dev.identities import api_client, serviceaccount_credentials
from kubernetes_asyncio import client

from benchmarks.harness import controller_argv, controller_env
from benchmarks.targets import (
    PCR_CSR_THROUGHPUT_RATIO,
    PCR_LATENCY_P99_MS,
    Target,
    spread,
    verdict,
)
from signer.config import KNATIVE_SIGNER
from signer.kube.client import as_body, read_json
from signer.kube.errors import ApiError, Forbidden, ServerError
from signer.kube.watching import Handlers, list_and_watch
from tests.e2e.pcrs import pcr_body

SIGNER = KNATIVE_SIGNER
NAMESPACE = session.DEMO_NAMESPACE
SERVICEACCOUNT = "app"
"""`session.prepare` lets demo/app create CSRs; its pods ask for PCRs."""
DNS_NAME = f"kn-user-{NAMESPACE}"
NODE = "bench-node"
NODE_USER = f"system:node:{NODE}"
POOL = 64
"""Distinct keys (and request bodies) per kind: key generation stays out of the timing."""
WARM_UP = 50
PCR, CSR = "PCR", "CSR"

Create = Callable[[str, int], Awaitable[None]]
"""Create request `name`, the `i`-th of its batch (which body from the pool)."""


def pcr_issued(raw: dict[str, Any]) -> bool:
    """An Issued condition with its chain: what the kubelet waits for."""
    status = raw.get("status") or {}
    return bool(status.get("certificateChain")) and any(
        c.get("type") == "Issued" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def csr_issued(raw: dict[str, Any]) -> bool:
    return bool((raw.get("status") or {}).get("certificate"))


@dataclass
class Observer:
    """Records, per request name, when its create returned and when a watch saw it issued."""

    kind: str
    is_issued: Callable[[dict[str, Any]], bool]
    created: dict[str, float] = field(default_factory=dict)
    issued: dict[str, float] = field(default_factory=dict)

    def _see(self, raw: dict[str, Any]) -> None:
        name = raw["metadata"]["name"]
        if name not in self.issued and self.is_issued(raw):
            self.issued[name] = time.monotonic()

    def handlers(self) -> Handlers:
        def on_list(items: list[dict[str, Any]]) -> None:
            for item in items:
                self._see(item)

        return Handlers(on_list=on_list, on_event=lambda _kind, raw: self._see(raw))

    async def wait_all(self, names: list[str], timeout: float, controller: Controller) -> None:
        """Until every name is issued; fails at once if the controller died."""
        deadline = time.monotonic() + timeout
        while not all(n in self.issued for n in names):
            controller.check()
            if time.monotonic() > deadline:
                missing = [n for n in names if n not in self.issued]
                raise TimeoutError(f"{len(missing)} {self.kind}s not issued, e.g. {missing[:3]}")
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Controller:
    """A `csr-signer run` process and the file its stderr goes to."""

    proc: subprocess.Popen[bytes]
    log: Path

    def check(self) -> None:
        """Raise with the log's tail if the process exited: a benchmark must not wait for a
        dead controller until its timeout."""
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the controller exited ({self.proc.returncode}):\n{tail}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass(frozen=True)
class Kubelet:
    """The real objects the node's PCRs name (JSON, as the apiserver returned them)."""

    node: dict[str, Any]
    serviceaccount: dict[str, Any]
    pods: list[dict[str, Any]]


@dataclass(frozen=True)
class Kind:
    """One kind of request: how to create one, and the watch that sees it issued."""

    name: str
    create: Create
    observer: Observer


def csr_creator(api: client.ApiClient) -> Create:
    """CSRs for `kn-user-demo`, from a pool of keys, as ServiceAccount demo/app."""
    requests = []
    for _ in range(POOL):
        key = ec.generate_private_key(ec.SECP256R1())
        pem = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(DNS_NAME)]), False)
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )
        requests.append(base64.b64encode(pem).decode())
    certs = client.CertificatesV1Api(api)

    async def create(name: str, i: int) -> None:
        body = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {
                "request": requests[i % POOL],
                "signerName": SIGNER,
                "usages": ["digital signature", "key encipherment", "server auth"],
            },
        }
        await read_json(
            certs.create_certificate_signing_request(as_body(body), _preload_content=False)
        )

    return create


def pcr_creator(api: client.ApiClient, kubelet: Kubelet) -> Create:
    """PCRs as the node sends them, for its pods in turn, from a pool of keys."""
    bodies = [
        pcr_body(
            "template",
            signer=SIGNER,
            key=ec.generate_private_key(ec.SECP256R1()),
            node=kubelet.node,
            pod=kubelet.pods[i % len(kubelet.pods)],
            serviceaccount=kubelet.serviceaccount,
        )
        for i in range(POOL)
    ]
    certs = client.CertificatesV1beta1Api(api)

    async def create(name: str, i: int) -> None:
        body = {**bodies[i % POOL], "metadata": {"name": name}}
        await read_json(
            certs.create_namespaced_pod_certificate_request(
                NAMESPACE, as_body(body), _preload_content=False
            )
        )

    return create


async def created(kind: Kind, name: str, i: int) -> None:
    await kind.create(name, i)
    kind.observer.created[name] = time.monotonic()


async def burst(
    kind: Kind,
    prefix: str,
    count: int,
    concurrency: int,
    controller: Controller,
) -> float:
    """Requests per second, first create to last issued, with `concurrency` clients."""
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    queue = list(reversed(list(enumerate(names))))
    start = time.monotonic()

    async def creator() -> None:
        while queue:
            i, name = queue.pop()
            await created(kind, name, i)

    await asyncio.gather(*(creator() for _ in range(concurrency)))
    await kind.observer.wait_all(names, 600, controller)
    return count / (max(kind.observer.issued[n] for n in names) - start)


async def paced(
    kind: Kind,
    prefix: str,
    rate: float,
    seconds: float,
    controller: Controller,
) -> tuple[float, float]:
    """(p50, p99) in seconds, create returned -> issued seen, at `rate` creates per second."""
    names = [f"{prefix}-{i:05d}" for i in range(int(rate * seconds))]
    start = time.monotonic()
    tasks = []
    for i, name in enumerate(names):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(created(kind, name, i)))
    await asyncio.gather(*tasks)
    await kind.observer.wait_all(names, 120, controller)
    observed = kind.observer
    latencies = sorted(observed.issued[n] - observed.created[n] for n in names)
    p99 = latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)]
    return statistics.median(latencies), p99


def start_controller(prepared: session.Prepared, workers: int, log: Path) -> Controller:
    """`csr-signer run` for the knative signer only, with its own CA Secret."""
    extra = [f"--signer-ca={value}" for value in session.signer_cas((SIGNER,))]
    argv = controller_argv(
        prepared,
        SIGNER,
        port=0,
        extra=(*extra, f"--workers={workers}", "--log-level=WARNING"),
    )
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=controller_env(), stdout=subprocess.DEVNULL, stderr=out)
    return Controller(proc, log)


async def check_issuer(admin: client.ApiClient, prepared: session.Prepared) -> None:
    """Both kinds were signed by the knative signer's own CA (`--signer-ca`), not by the
    `--ca-secret` fallback: otherwise the comparison would not be about one signer."""
    ca = x509.load_pem_x509_certificate(prepared.ca_certs[session.KNATIVE_CA_SECRET].read_bytes())
    pcr = await read_json(
        client.CertificatesV1beta1Api(admin).read_namespaced_pod_certificate_request(
            "pcr-probe", NAMESPACE, _preload_content=False
        )
    )
    csr = await read_json(
        client.CertificatesV1Api(admin).read_certificate_signing_request(
            "csr-probe", _preload_content=False
        )
    )
    for chain in (
        pcr["status"]["certificateChain"].encode(),
        base64.b64decode(csr["status"]["certificate"]),
    ):
        x509.load_pem_x509_certificates(chain)[0].verify_directly_issued_by(ca)


def report_log(log: Path) -> None:
    """The controllers ran at WARNING: any line they wrote may explain a slow figure."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    print(f"controller log: {len(lines)} lines at WARNING or above", flush=True)
    for line in lines[:5]:
        print(f"  {line[:300]}")


async def measure(
    kind: Kind, run: int, args: argparse.Namespace, prepared: session.Prepared, log: Path
) -> dict[str, float]:
    """One run of one kind, on a fresh controller: warm-up, burst, paced latency."""
    controller = start_controller(prepared, args.workers, log)
    try:
        prefix = f"{kind.name.lower()}-{run}"
        await burst(kind, f"{prefix}-warm", WARM_UP, args.concurrency, controller)
        throughput = await burst(kind, f"{prefix}-burst", args.count, args.concurrency, controller)
        p50, p99 = await paced(kind, f"{prefix}-paced", args.rate, args.seconds, controller)
    finally:
        controller.stop()
    print(
        f"run {run} {kind.name}: {throughput:6.1f}/s created-to-issued "
        f"({args.count}, {args.concurrency} clients); at {args.rate:.0f}/s offered: "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
        flush=True,
    )
    return {"throughput": throughput, "p50": p50 * 1000, "p99": p99 * 1000}


async def kubelet_setup(admin: client.ApiClient, pods: int) -> Kubelet:
    """A Node and `pods` Pods of demo/app bound to it: what NodeRestriction (when the
    apiserver runs it) checks a node's PCR against. The node's identity is also granted
    `create` on PCRs through RBAC, which an apiserver without the Node authorizer needs
    and one with it does not mind."""
    core = client.CoreV1Api(admin)
    rbac = client.RbacAuthorizationV1Api(admin)
    name = "bench-pcr-creator"
    role = {
        "metadata": {"name": name},
        "rules": [
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["podcertificaterequests"],
                "verbs": ["create"],
            }
        ],
    }
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "User", "name": NODE_USER, "apiGroup": "rbac.authorization.k8s.io"}],
    }
    await read_json(rbac.create_cluster_role(as_body(role), _preload_content=False))
    await read_json(rbac.create_cluster_role_binding(as_body(binding), _preload_content=False))
    node = await read_json(
        core.create_node(as_body({"metadata": {"name": NODE}}), _preload_content=False)
    )
    serviceaccount = await read_json(
        core.read_namespaced_service_account(SERVICEACCOUNT, NAMESPACE, _preload_content=False)
    )
    bound = [
        await read_json(
            core.create_namespaced_pod(
                NAMESPACE,
                as_body(
                    {
                        "metadata": {"name": f"bench-{i:02d}"},
                        "spec": {
                            "nodeName": NODE,
                            "serviceAccountName": SERVICEACCOUNT,
                            "automountServiceAccountToken": False,
                            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
                        },
                    }
                ),
                _preload_content=False,
            )
        )
        for i in range(pods)
    ]
    return Kubelet(node, serviceaccount, bound)


async def until_admitted(call: Callable[[], Awaitable[None]], timeout: float = 15) -> None:
    """Retry `call` while it is refused for now: a fresh RBAC grant propagates
    asynchronously (403), and NodeRestriction answers informer-cache lag on the new Node
    and Pods with a 500."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await call()
            return
        except ApiError as exc:
            if not isinstance(exc, Forbidden | ServerError) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def main(args: argparse.Namespace) -> int:
    with ControlPlane() as cp, tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "controller.log"
        prepared = await session.prepare(cp, now=dt.datetime.now(dt.UTC))
        admin = await api_client(cp)
        sa_api = await api_client(
            cp, await serviceaccount_credentials(admin, NAMESPACE, SERVICEACCOUNT)
        )
        node_api = await api_client(cp, cp.client_credentials(NODE_USER, ("system:nodes",)))
        for api in (sa_api, node_api):
            api.configuration.connection_pool_maxsize = args.concurrency * 2
        kubelet = await kubelet_setup(admin, args.concurrency)
        kinds = {
            PCR: Kind(PCR, pcr_creator(node_api, kubelet), Observer(PCR, pcr_issued)),
            CSR: Kind(CSR, csr_creator(sa_api), Observer(CSR, csr_issued)),
        }
        # Both identities may create before anything is timed (the probes are issued
        # during the first warm-up).
        for kind in kinds.values():
            await until_admitted(functools.partial(created, kind, f"{kind.name.lower()}-probe", 0))
        selector = f"spec.signerName={SIGNER}"
        certs_v1, certs_beta = client.CertificatesV1Api(admin), client.CertificatesV1beta1Api(admin)
        watches = [
            asyncio.create_task(
                list_and_watch(
                    certs_beta.list_pod_certificate_request_for_all_namespaces,
                    kinds[PCR].observer.handlers(),
                    field_selector=selector,
                )
            ),
            asyncio.create_task(
                list_and_watch(
                    certs_v1.list_certificate_signing_request,
                    kinds[CSR].observer.handlers(),
                    field_selector=selector,
                )
            ),
        ]
        results: dict[str, list[dict[str, float]]] = {PCR: [], CSR: []}
        try:
            for run in range(1, args.runs + 1):
                order = (PCR, CSR) if run % 2 else (CSR, PCR)
                for name in order:
                    results[name].append(await measure(kinds[name], run, args, prepared, log))
            await check_issuer(admin, prepared)
        finally:
            for watch in watches:
                watch.cancel()
            await asyncio.gather(*watches, return_exceptions=True)
            for api in (sa_api, node_api, admin):
                await api.close()
            report_log(log)

    def figures(kind: str, key: str) -> list[float]:
        return [r[key] for r in results[kind]]

    def median(kind: str, key: str) -> float:
        return statistics.median(figures(kind, key))

    for name in (PCR, CSR):
        print(
            f"{name} over {args.runs} runs: /s {spread(figures(name, 'throughput'))}; "
            f"p50 ms {spread(figures(name, 'p50'))}; p99 ms {spread(figures(name, 'p99'))}"
        )
    ratios = {key: median(PCR, key) / median(CSR, key) for key in ("throughput", "p50", "p99")}
    print(
        f"PCR/CSR (medians): throughput {ratios['throughput']:.2f}x, "
        f"p50 {ratios['p50']:.2f}x, p99 {ratios['p99']:.2f}x"
    )
    return verdict(
        [
            Target(
                "throughput ratio PCR/CSR (same signer)",
                ratios["throughput"],
                PCR_CSR_THROUGHPUT_RATIO,
                "",
                True,
            ),
            Target(
                f"PCR p99 at {args.rate:.0f}/s offered",
                median(PCR, "p99"),
                PCR_LATENCY_P99_MS,
                "ms",
            ),
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per kind")
    parser.add_argument("--count", type=int, default=500, help="requests per throughput burst")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent creating clients")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rate", type=float, default=100.0, help="offered load, requests/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the paced load")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
