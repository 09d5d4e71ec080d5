"""csr-signer against kube-controller-manager, per CSR and per CPU (a benchmark, not a test).

Both products run on the same kind of control plane (real kube-apiserver + etcd from the
dev harness), a fresh one per run, runs interleaved (kcm, kcm at QPS 1000, csr-signer,
then again) so drift on a shared machine hits all alike. kube-controller-manager is the
node's (`csr_signer_dev.nodebinaries`: built from the Go module proxy at the pinned release
and cached like the control plane; `make test` builds it anyway), and runs only
`--controllers=csrapproving,csrsigning`.

Workloads, each `--csrs` ECDSA P-256 CSRs from `--clients` concurrent clients:
- **sign-only**: the client approves each CSR itself (through /approval), the product signs.
  kcm signs `kubernetes.io/kube-apiserver-client`; csr-signer signs its cluster-local signer
  (created by the admin, whom no policy approves: csr-signer may write its one Pending Event
  before the client's approval lands, a cost kcm does not have).
- **approve+sign**: the product approves and signs. kcm approves node client certificates
  (`kubernetes.io/kube-apiserver-client-kubelet`, CN system:node:*, O system:nodes, the
  requester allowed `certificatesigningrequests/nodeclient`), csr-signer by its bundled
  cluster-local policy (`<svc>.demo.svc` for ServiceAccount demo/app).
Then a paced phase offers `--rate` approve+sign CSRs/s for `--seconds` for latency.

Figures: median CSRs/s (first create to last certificate seen by a watch), p50/p99
latency (create, or approval for sign-only, to certificate seen), the controller's CPU-ms
per CSR (utime+stime from /proc, not wall time) and RSS, and the apiserver's and etcd's
CPU-ms per CSR (where the rest of the machine's time goes). Exits 1 if a target is missed.

    .venv/bin/python benchmarks/bench_vs_kcm.py [--runs 3] [--csrs 2000] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from csr_signer_dev import nodebinaries, session, settings
from csr_signer_dev.controlplane import ControlPlane
from csr_signer_dev.identities import api_client, serviceaccount_credentials
from kubernetes_asyncio import client

from benchmarks.harness import (
    controller_argv,
    controller_env,
    rss_mib,
    stop,
    watch_issued,
)
from benchmarks.targets import (
    CPU_MS_PER_CSR,
    KCM_LATENCY_P99_MS,
    KCM_RATIO,
    RSS_MB,
    Target,
    spread,
    verdict,
)
from signer.kube.client import as_body
from signer.pki.ca import generate_root

OUR_SIGNER = "csr-signer.dev/cluster-local"
KCM_SIGN = "kubernetes.io/kube-apiserver-client"
KCM_APPROVE = "kubernetes.io/kube-apiserver-client-kubelet"
PRODUCTS = ("kcm", "kcm-qps1000", "csr-signer")
WORKLOADS = ("sign-only", "approve+sign")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def child_pid(pid: int) -> int:
    """The first child of `pid` (the controller that py-spy started)."""
    return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])


def cpu_ms(pid: int) -> float:
    """utime + stime of `pid` so far, in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK


@dataclass(frozen=True)
class Shape:
    """What one (product, workload) CSR looks like."""

    signer: str
    usages: tuple[str, ...]
    subject: Callable[[int], x509.Name]
    dns: bool
    approve: bool
    """The client approves (sign-only); it then also creates the CSR as the admin, whom no
    csr-signer policy approves (left Pending, so the approvals never race)."""


def shape(product: str, workload: str) -> Shape:
    approve = workload == "sign-only"
    if product == "csr-signer":
        return Shape(
            OUR_SIGNER,
            ("digital signature", "key encipherment", "server auth"),
            lambda _i: x509.Name([]),
            dns=True,
            approve=approve,
        )
    if approve:
        return Shape(
            KCM_SIGN,
            ("digital signature", "client auth"),
            lambda i: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bench-{i}")]),
            dns=False,
            approve=True,
        )
    return Shape(
        KCM_APPROVE,
        ("digital signature", "client auth"),
        lambda i: x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:bench-{i}"),
            ]
        ),
        dns=False,
        approve=False,
    )


KEYS = [ec.generate_private_key(ec.SECP256R1()) for _ in range(32)]


def request_pem(s: Shape, i: int) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(s.subject(i))
    if s.dns:
        names = [f"svc{i}.demo.svc", f"svc{i}.demo.svc.cluster.local"]
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    csr = builder.sign(KEYS[i % len(KEYS)], hashes.SHA256())
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


@dataclass
class Clients:
    requester: client.ApiClient
    admin: client.ApiClient
    started: dict[str, float] = field(default_factory=dict)
    """CSR name -> when its latency clock started (create, or approval)."""

    async def submit(self, s: Shape, name: str, i: int) -> None:
        body = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"request": request_pem(s, i), "signerName": s.signer, "usages": s.usages},
        }
        certs = client.CertificatesV1Api(self.admin if s.approve else self.requester)
        created = await certs.create_certificate_signing_request(as_body(body))
        if not s.approve:
            self.started[name] = time.monotonic()
            return
        created.status.conditions = [
            client.V1CertificateSigningRequestCondition(
                type="Approved", status="True", reason="Bench", message="approved by the client"
            )
        ]
        admin = client.CertificatesV1Api(self.admin)
        await admin.replace_certificate_signing_request_approval(name, created)
        self.started[name] = time.monotonic()


async def burst(clients: Clients, s: Shape, prefix: str, count: int, width: int) -> float:
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    todo = list(enumerate(names))
    todo.reverse()
    start = time.monotonic()

    async def worker() -> None:
        while todo:
            i, name = todo.pop()
            await clients.submit(s, name, i)

    await asyncio.gather(*(worker() for _ in range(width)))
    return start


async def paced(clients: Clients, s: Shape, prefix: str, rate: float, seconds: float) -> list[str]:
    names = [f"{prefix}-{i:05d}" for i in range(int(rate * seconds))]
    start = time.monotonic()
    tasks = []
    for i, name in enumerate(names):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(clients.submit(s, name, i)))
    await asyncio.gather(*tasks)
    return names


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_product(
    product: str,
    cp: ControlPlane,
    prepared: session.Prepared,
    kcm: Path,
    profile: Path | None = None,
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    log = (cp.workdir / f"{product}.log").open("wb")
    if product == "csr-signer":
        argv = controller_argv(prepared, OUR_SIGNER, port=0, extra=("--log-level=WARNING", *extra))
        if profile is not None:  # py-spy samples; its own CPU is not the controller's
            py_spy = Path(sys.executable).with_name("py-spy")
            fmt = "raw" if profile.suffix == ".txt" else "flamegraph"
            argv = [str(py_spy), "record", "-o", str(profile), f"--format={fmt}", "--", *argv]
        return subprocess.Popen(argv, env=controller_env(), stdout=log, stderr=log)
    cert, key = generate_root("bench kcm CA", "ecdsa-p256", 30, dt.datetime.now(dt.UTC))
    (cp.workdir / "kcm-ca.crt").write_bytes(cert)
    (cp.workdir / "kcm-ca.key").write_bytes(key)
    argv = [
        str(kcm),
        f"--kubeconfig={prepared.admin_kubeconfig}",
        "--controllers=csrapproving,csrsigning",
        f"--cluster-signing-cert-file={cp.workdir / 'kcm-ca.crt'}",
        f"--cluster-signing-key-file={cp.workdir / 'kcm-ca.key'}",
        "--leader-elect=false",
        "--secure-port=0",
        "--use-service-account-credentials=false",
    ]
    if product == "kcm-qps1000":
        argv += ["--kube-api-qps=1000", "--kube-api-burst=1000"]
    return subprocess.Popen(argv, stdout=log, stderr=log)


async def allow_node_client_csrs(admin: client.ApiClient) -> None:
    """What kcm's approver asks (SubjectAccessReview) before approving a node client CSR."""
    rbac = client.RbacAuthorizationV1Api(admin)
    await rbac.create_cluster_role(
        as_body(
            {
                "metadata": {"name": "bench-nodeclient"},
                "rules": [
                    {
                        "apiGroups": ["certificates.k8s.io"],
                        "resources": ["certificatesigningrequests/nodeclient"],
                        "verbs": ["create"],
                    }
                ],
            }
        )
    )
    await rbac.create_cluster_role_binding(
        as_body(
            {
                "metadata": {"name": "bench-nodeclient"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "bench-nodeclient",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "app", "namespace": session.DEMO_NAMESPACE}
                ],
            }
        )
    )


async def one_run(product: str, run: int, args: argparse.Namespace, kcm: Path) -> dict[str, Any]:
    """A fresh control plane, the product, both workloads, then the paced phase."""
    result: dict[str, Any] = {}
    with ControlPlane() as cp:
        prepared = await session.prepare(cp, now=dt.datetime.now(dt.UTC))
        admin = await api_client(cp)
        await allow_node_client_csrs(admin)
        creds = await serviceaccount_credentials(admin, session.DEMO_NAMESPACE, "app")
        requester = await api_client(cp, creds)
        for api in (admin, requester):
            api.configuration.connection_pool_maxsize = args.clients * 2
        observer, watch = watch_issued(admin)
        clients = Clients(requester, admin)
        server_pids = cp.pids()
        proc = start_product(product, cp, prepared, kcm, args.profile, tuple(args.csr_signer_arg))
        pid = proc.pid
        try:
            await asyncio.sleep(3)
            if args.profile is not None and product == "csr-signer":  # py-spy's child
                pid = child_pid(pid)
            warm = shape(product, "approve+sign")
            await burst(clients, warm, "warm", 50, args.clients)
            await observer.wait_all([f"warm-{i:05d}" for i in range(50)], 120)
            for workload in WORKLOADS:
                s = shape(product, workload)
                prefix = workload.replace("+", "-")
                names = [f"{prefix}-{i:05d}" for i in range(args.csrs)]
                before = {n: cpu_ms(p) for n, p in {**server_pids, "ctl": pid}.items()}
                start = await burst(clients, s, prefix, args.csrs, args.clients)
                await observer.wait_all(names, 900)
                after = {n: cpu_ms(p) for n, p in {**server_pids, "ctl": pid}.items()}
                elapsed = max(observer.issued[n] for n in names) - start
                latencies = [observer.issued[n] - clients.started[n] for n in names]
                result[workload] = {
                    "rate": args.csrs / elapsed,
                    "p50": statistics.median(latencies) * 1000,
                    "p99": percentile(latencies, 0.99) * 1000,
                    **{f"cpu_{n}": (after[n] - before[n]) / args.csrs for n in after},
                }
            names = await paced(
                clients, shape(product, "approve+sign"), "paced", args.rate, args.seconds
            )
            await observer.wait_all(names, 300)
            latencies = [observer.issued[n] - clients.started[n] for n in names]
            result["paced_p99"] = percentile(latencies, 0.99) * 1000
            result["rss"] = rss_mib(pid)[0]
        finally:
            if pid != proc.pid:  # py-spy writes its profile when the controller exits
                os.kill(pid, signal.SIGTERM)
                await asyncio.to_thread(proc.wait, 120)
            stop(proc)
            watch.cancel()
            await requester.close()
            await admin.close()
    for workload in WORKLOADS:
        r = result[workload]
        print(
            f"run {run} {product:>11} {workload:>12}: {r['rate']:6.1f} CSRs/s, "
            f"p50 {r['p50']:6.0f} ms, p99 {r['p99']:6.0f} ms, controller CPU "
            f"{r['cpu_ctl']:5.2f} ms/CSR (apiserver {r['cpu_kube-apiserver']:5.2f}, "
            f"etcd {r['cpu_etcd']:5.2f})",
            flush=True,
        )
    print(
        f"run {run} {product:>11}: p99 {result['paced_p99']:.0f} ms at {args.rate:.0f}/s "
        f"offered; RSS {result['rss']:.0f} MB",
        flush=True,
    )
    return result


async def main(args: argparse.Namespace) -> int:
    kcm = nodebinaries.resolve(settings.from_environment()) / "kube-controller-manager"
    results: dict[str, list[dict[str, Any]]] = {p: [] for p in args.products}
    for run in range(1, args.runs + 1):
        for product in args.products:
            results[product].append(await one_run(product, run, args, kcm))

    def med(product: str, workload: str, key: str) -> float:
        return statistics.median(r[workload][key] for r in results[product])

    print()
    print("| workload | " + " | ".join(args.products) + " |")
    print("|---|" + "---|" * len(args.products))
    for workload in WORKLOADS:
        for key, label in (("rate", "CSRs/s"), ("p99", "p99 ms"), ("cpu_ctl", "CPU ms/CSR")):
            cells = [spread([r[workload][key] for r in results[p]]) for p in args.products]
            print(f"| {workload} {label} | " + " | ".join(cells) + " |")
    if not {"kcm", "kcm-qps1000", "csr-signer"} <= set(args.products):
        return 0
    for workload in WORKLOADS:
        ours = med("csr-signer", workload, "rate")
        print(
            f"{workload}: csr-signer/kcm {ours / med('kcm', workload, 'rate'):.2f}x at kcm's "
            f"defaults, {ours / med('kcm-qps1000', workload, 'rate'):.2f}x at QPS 1000"
        )
    paced_p99 = statistics.median(r["paced_p99"] for r in results["csr-signer"])
    rss = statistics.median(r["rss"] for r in results["csr-signer"])
    return verdict(
        [
            Target(
                "approve+sign CSRs/s, csr-signer/kcm at QPS 1000",
                med("csr-signer", "approve+sign", "rate")
                / med("kcm-qps1000", "approve+sign", "rate"),
                KCM_RATIO,
                "x",
                True,
            ),
            Target(
                "controller CPU per approved-and-signed CSR",
                med("csr-signer", "approve+sign", "cpu_ctl"),
                CPU_MS_PER_CSR,
                "ms",
            ),
            Target(
                f"p99 create->issued at {args.rate:.0f}/s offered",
                paced_p99,
                KCM_LATENCY_P99_MS,
                "ms",
            ),
            Target(
                "RSS after the runs (the 10,000 pending backlog: bench_backlog.py)",
                rss,
                RSS_MB,
                "MB",
            ),
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--csrs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--products", nargs="+", choices=PRODUCTS, default=list(PRODUCTS))
    parser.add_argument(
        "--csr-signer-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra `csr-signer run` argument, e.g. --csr-signer-arg=--workers=32 "
        "(the targets are for the defaults)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="FILE",
        help="run csr-signer under py-spy: a flame graph (.svg) or collapsed stacks (.txt); "
        "the CPU figures then include no sampling cost but the run is slower",
    )
    raise SystemExit(asyncio.run(main(parser.parse_args())))
