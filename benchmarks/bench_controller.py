"""End-to-end figures on the local control plane (a benchmark, not a timed test).

Prints, for `csr-signer run` and for the null controller (same API writes, no
policy, no crypto: the apiserver's own limit, see null_controller.py):

1. throughput: N CSRs (default 1,000) created as fast as C concurrent clients
   can, created-to-issued; the ratio ours/null (target >= 0.8);
2. latency at a fixed offered load (default 50 CSRs/s for 20 s): p50 and p99
   from the moment the create call returned to the moment a watch saw the
   certificate (target p99 < 1 s);
3. memory: RSS of the controller process with 10,000 CSRs in the cluster,
   after it issued them all, and again after a restart that lists them all
   (target < 150 MB).

    .venv/bin/python benchmarks/bench_controller.py [--csrs 1000] [--rss-csrs 10000]
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


async def create(api: client.ApiClient, name: str, pem: str, observer: Observer) -> None:
    body = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": pem,
            "signerName": SIGNER,
            "usages": ["digital signature", "key encipherment", "server auth"],
        },
    }
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
    mode: str, prepared: session.Prepared, workers: int
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSR_SIGNER_")}
    if mode == "null":
        argv = [
            sys.executable,
            str(HERE / "null_controller.py"),
            str(prepared.controller_kubeconfig),
            SIGNER,
            str(workers),
        ]
    else:
        argv = [
            sys.executable,
            "-m",
            "signer",
            "run",
            f"--kubeconfig={prepared.controller_kubeconfig}",
            f"--ca-secret={session.NAMESPACE}/{session.CA_SECRET}",
            f"--signer-name={SIGNER}",
            f"--workers={workers}",
            "--metrics-address=127.0.0.1:0",
            "--no-leader-elect",
            "--log-level=WARNING",
        ]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def main(args: argparse.Namespace) -> None:
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
        results: dict[str, dict[str, float]] = {}
        for mode in ("null", "csr-signer"):
            proc = start_controller(mode, prepared, args.workers)
            await asyncio.sleep(3)
            # warm-up, then the measured runs
            await burst(api, f"{mode}-warm", 50, args.concurrency, pems, observer)
            throughput = await burst(
                api, f"{mode}-burst", args.csrs, args.concurrency, pems, observer
            )
            p50, p99 = await paced(api, f"{mode}-paced", args.rate, args.seconds, pems, observer)
            results[mode] = {"throughput": throughput, "p50": p50, "p99": p99}
            print(
                f"{mode:>11}: {throughput:7.1f} CSRs/s created-to-issued ({args.csrs} CSRs, {args.concurrency} clients); "
                f"at {args.rate:.0f}/s offered: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
                flush=True,
            )
            if mode == "csr-signer" and args.rss_csrs:
                await burst(api, "rss", args.rss_csrs, args.concurrency, pems, observer)
                now, peak = rss_mb(proc.pid)
                print(
                    f"{'':>11}  RSS with {args.rss_csrs + args.csrs + 50 + int(args.rate * args.seconds)} CSRs in the cluster, after issuing: "
                    f"{now:.0f} MB (peak {peak:.0f} MB)",
                    flush=True,
                )
                stop(proc)
                proc = start_controller(mode, prepared, args.workers)
                await asyncio.sleep(8)
                now, peak = rss_mb(proc.pid)
                print(
                    f"{'':>11}  RSS after a restart that listed them all: {now:.0f} MB (peak {peak:.0f} MB)",
                    flush=True,
                )
            stop(proc)
        ratio = results["csr-signer"]["throughput"] / results["null"]["throughput"]
        print(f"throughput ratio csr-signer/null: {ratio:.2f} (target >= 0.80)")
        print(
            f"p99 at {args.rate:.0f}/s: {results['csr-signer']['p99'] * 1000:.0f} ms (target < 1000 ms)"
        )
        watch.cancel()
        await api.close()
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--csrs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rss-csrs", type=int, default=10000)
    asyncio.run(main(parser.parse_args()))
