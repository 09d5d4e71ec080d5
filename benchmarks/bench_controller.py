"""End-to-end figures on the local control plane (a benchmark, not a timed test).

Two controllers are measured against the same real kube-apiserver + etcd:
`csr-signer run`, and the null controller (`null_controller.py`). The null
controller is a **same-stack baseline**: the same Python client, watch, queue
and writes (approval, certificate, one Event each), but no policy and no
crypto. The ratio ours/null is therefore the cost of deciding and signing on
top of our own API plumbing. It is *not* the apiserver's limit and says
nothing about other implementations; comparing with kube-controller-manager is
the job of a separate benchmark.

Figures, each measured in every run, runs interleaved (null, ours, null, ours,
...) so that drift on a shared 2-core machine hits both alike:

1. throughput: N CSRs (default 1,000) created as fast as C concurrent clients
   can, created-to-issued;
2. latency at a fixed offered load (default 50 CSRs/s for 20 s): p50 and p99
   from the moment the create call returned to the moment a watch saw the
   certificate;
3. memory (once, after the runs): RSS of the controller process holding 10,000 CSRs
   left Pending for a human (the backlog a controller must keep in memory), and again
   after a restart that lists them all.

The medians over runs are held against the targets in `benchmarks/targets.py`;
the exit status is 1 when one is missed.

    .venv/bin/python benchmarks/bench_controller.py [--runs 3] [--csrs 1000] [--rss-csrs 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from csr_signer_dev import session
from csr_signer_dev.controlplane import ControlPlane, free_port
from csr_signer_dev.identities import api_client, serviceaccount_credentials
from kubernetes_asyncio import client

from benchmarks.harness import controller_argv, controller_env, rss_mib
from benchmarks.targets import CONTROLLER_RATIO, LATENCY_P99_MS, RSS_MB, Target, spread, verdict
from signer.kube.client import as_body
from signer.kube.watching import Handlers, list_and_watch

SIGNER = "csr-signer.dev/cluster-local"
HERE = Path(__file__).resolve().parent


def csr_pems(count: int) -> list[str]:
    pems = []
    for i in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        names = [f"svc{i}.demo.svc", f"svc{i}.demo.svc.cluster.local"]
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
            .sign(key, hashes.SHA256())
        )
        pems.append(base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode())
    return pems


class Observer:
    """Watches CSRs and records when each one got its certificate."""

    def __init__(self) -> None:
        self.issued: dict[str, float] = {}
        self.created: dict[str, float] = {}

    def _see(self, raw: dict[str, Any]) -> None:
        name = raw["metadata"]["name"]
        if (raw.get("status") or {}).get("certificate") and name not in self.issued:
            self.issued[name] = time.monotonic()

    def handlers(self) -> Handlers:
        return Handlers(
            on_list=lambda items: [self._see(i) for i in items] and None,
            on_event=lambda kind, raw: self._see(raw),
        )

    async def wait_all(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(n in self.issued for n in names):
            if time.monotonic() > deadline:
                missing = [n for n in names if n not in self.issued]
                raise TimeoutError(f"{len(missing)} CSRs not issued, e.g. {missing[:3]}")
            await asyncio.sleep(0.05)


def csr_body(name: str, pem: str) -> dict[str, Any]:
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": pem,
            "signerName": SIGNER,
            "usages": ["digital signature", "key encipherment", "server auth"],
        },
    }


async def create(api: client.ApiClient, name: str, pem: str, observer: Observer) -> None:
    body = csr_body(name, pem)
    await client.CertificatesV1Api(api).create_certificate_signing_request(as_body(body))
    observer.created[name] = time.monotonic()


async def burst(
    api: client.ApiClient,
    prefix: str,
    count: int,
    concurrency: int,
    pems: list[str],
    observer: Observer,
) -> float:
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    queue = list(reversed(names))
    start = time.monotonic()

    async def creator() -> None:
        while queue:
            name = queue.pop()
            await create(api, name, pems[hash(name) % len(pems)], observer)

    await asyncio.gather(*(creator() for _ in range(concurrency)))
    await observer.wait_all(names, timeout=600)
    elapsed = max(observer.issued[n] for n in names) - start
    return count / elapsed


async def paced(
    api: client.ApiClient,
    prefix: str,
    rate: float,
    seconds: float,
    pems: list[str],
    observer: Observer,
) -> tuple[float, float]:
    count = int(rate * seconds)
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    start = time.monotonic()
    tasks = []
    for i, name in enumerate(names):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(create(api, name, pems[i % len(pems)], observer)))
    await asyncio.gather(*tasks)
    await observer.wait_all(names, timeout=120)
    latencies = sorted(observer.issued[n] - observer.created[n] for n in names)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return p50, p99


def start_controller(
    mode: str, prepared: session.Prepared, workers: int, *, port: int = 0
) -> subprocess.Popen[bytes]:
    env = controller_env()
    if mode == "null":
        argv = [
            sys.executable,
            str(HERE / "null_controller.py"),
            str(prepared.controller_kubeconfig),
            SIGNER,
            str(workers),
        ]
    else:
        argv = controller_argv(
            prepared, SIGNER, port=port, extra=(f"--workers={workers}", "--log-level=WARNING")
        )
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def measure(
    mode: str,
    run: int,
    args: argparse.Namespace,
    prepared: session.Prepared,
    api: client.ApiClient,
    pems: list[str],
    observer: Observer,
) -> dict[str, float]:
    """One run of one controller: warm-up, burst throughput, paced latency."""
    proc = start_controller(mode, prepared, args.workers)
    try:
        await asyncio.sleep(3)
        prefix = f"{mode}-{run}"
        await burst(api, f"{prefix}-warm", 50, args.concurrency, pems, observer)
        throughput = await burst(
            api, f"{prefix}-burst", args.csrs, args.concurrency, pems, observer
        )
        p50, p99 = await paced(api, f"{prefix}-paced", args.rate, args.seconds, pems, observer)
    finally:
        stop(proc)
    print(
        f"run {run} {mode:>10}: {throughput:7.1f} CSRs/s created-to-issued "
        f"({args.csrs} CSRs, {args.concurrency} clients); at {args.rate:.0f}/s offered: "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
        flush=True,
    )
    return {"throughput": throughput, "p50": p50 * 1000, "p99": p99 * 1000}


async def decisions(port: int, outcome: str) -> float:
    """csr_signer_decisions_total for `outcome`, summed, from the controller's /metrics."""
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
        except aiohttp.ClientError:
            return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("csr_signer_decisions_total{") and f'outcome="{outcome}"' in line
    )


async def wait_decided(port: int, count: int, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while await decisions(port, "abstain") < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the controller did not decide {count} pending CSRs")
        await asyncio.sleep(1)


async def memory(
    args: argparse.Namespace,
    prepared: session.Prepared,
    admin: client.ApiClient,
    pems: list[str],
) -> tuple[float, float]:
    """RSS (MB) holding `--rss-csrs` CSRs left Pending for a human (created by the admin,
    whom no policy approves), and again after a restart that lists them all."""
    port = free_port()
    proc = start_controller("csr-signer", prepared, args.workers, port=port)
    try:
        await asyncio.sleep(3)
        names = [f"pending-{i:05d}" for i in range(args.rss_csrs)]
        todo = list(reversed(names))
        certs = client.CertificatesV1Api(admin)

        async def creator() -> None:
            while todo:
                body = csr_body(todo.pop(), pems[len(todo) % len(pems)])
                await certs.create_certificate_signing_request(as_body(body))

        await asyncio.gather(*(creator() for _ in range(args.concurrency)))
        await wait_decided(port, args.rss_csrs)
        held, peak = rss_mib(proc.pid)
        print(f"RSS holding {args.rss_csrs} pending CSRs: {held:.0f} MB (peak {peak:.0f})")
    finally:
        stop(proc)
    proc = start_controller("csr-signer", prepared, args.workers, port=port)
    try:
        await wait_decided(port, args.rss_csrs)
        after_restart, peak = rss_mib(proc.pid)
        print(f"RSS after a restart that listed them all: {after_restart:.0f} MB (peak {peak:.0f})")
    finally:
        stop(proc)
    return held, after_restart


async def main(args: argparse.Namespace) -> int:
    with ControlPlane() as cp:
        prepared = await session.prepare(cp, now=dt.datetime.now(dt.UTC))
        # Created as a ServiceAccount, so the cluster-local policy approves them.
        admin = await api_client(cp)
        creds = await serviceaccount_credentials(admin, session.DEMO_NAMESPACE, "app")
        api = await api_client(cp, creds)
        api.configuration.connection_pool_maxsize = args.concurrency * 2
        observer = Observer()
        watch = asyncio.create_task(
            list_and_watch(
                client.CertificatesV1Api(admin).list_certificate_signing_request,
                observer.handlers(),
                field_selector=f"spec.signerName={SIGNER}",
            )
        )
        pems = csr_pems(64)
        results: dict[str, list[dict[str, float]]] = {"null": [], "csr-signer": []}
        for run in range(1, args.runs + 1):
            for mode, runs in results.items():
                runs.append(await measure(mode, run, args, prepared, api, pems, observer))
        rss = await memory(args, prepared, admin, pems) if args.rss_csrs else None
        watch.cancel()
        await api.close()
        await admin.close()

    def figures(mode: str, key: str) -> list[float]:
        return [r[key] for r in results[mode]]

    for mode in results:
        print(
            f"{mode:>10} over {args.runs} runs: CSRs/s {spread(figures(mode, 'throughput'))}; "
            f"p99 ms {spread(figures(mode, 'p99'))}"
        )
    ours = statistics.median(figures("csr-signer", "throughput"))
    null = statistics.median(figures("null", "throughput"))
    targets = [
        Target(
            "throughput ratio csr-signer/null (same stack)", ours / null, CONTROLLER_RATIO, "", True
        ),
        Target(
            f"p99 at {args.rate:.0f}/s offered",
            statistics.median(figures("csr-signer", "p99")),
            LATENCY_P99_MS,
            "ms",
        ),
    ]
    if rss is not None:
        targets += [
            Target(f"RSS holding {args.rss_csrs} pending CSRs", rss[0], RSS_MB, "MB"),
            Target("RSS after a restart", rss[1], RSS_MB, "MB"),
        ]
    return verdict(targets)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per controller")
    parser.add_argument("--csrs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rss-csrs", type=int, default=10000)
    raise SystemExit(asyncio.run(main(parser.parse_args())))
