"""The system under test: the control plane, two controller replicas, toxiproxy between.

Installed as an operator would (`deploy/rbac.yaml`, a CA Secret per signer name, the
bundled policies copied into a directory the harness can swap), and the controllers run
as real `python -m signer run` processes under the csr-signer ServiceAccount's token,
with leader election on deploy/rbac.yaml's Lease. Their kubeconfig points at toxiproxy,
which forwards to the apiserver: every fault on that path hits only the controllers; the
load and the audit talk to the apiserver directly.

The harness reads who leads (`csr_signer_leader`) from each replica's metrics port (a
fresh one per start), not from the apiserver, which may be the thing that is down.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from signer.kube.client import as_body
from signer.pki.ca import ca_secret_manifest, generate_root
from signer.policy import bundled_policies_dir

from csr_signer_dev.chaos.audit import History
from csr_signer_dev.chaos.requests import BARE_LINE, CLUSTER_LOCAL, KNATIVE
from csr_signer_dev.chaos.toxiproxy import Toxiproxy
from csr_signer_dev.controlplane import ControlPlane, free_port
from csr_signer_dev.identities import serviceaccount_credentials
from csr_signer_dev.settings import CHECKOUT

NAMESPACE = "csr-signer"
LEASE = "csr-signer"
SECRETS = {CLUSTER_LOCAL: "csr-signer-ca", KNATIVE: "csr-signer-knative-ca"}
"""Signer name -> its CA Secret (the two deploy/rbac.yaml lets the controller read)."""
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 8, 5, 1
"""Leader election settings of the replicas, in seconds (failover is measured against them)."""
PROXY = "apiserver"
_METRIC = re.compile(r"^(csr_signer_leader|csr_signer_certificates_issued_total)\S*\s+(\S+)$")


@dataclass
class Replica:
    """One `csr-signer run` process; `start` again after it exits (same log).

    Each start takes a fresh metrics port: while a replica is down, its old port is an
    ordinary ephemeral port any connection on the machine may take (seen once: the
    restarted replica could not bind it)."""

    identity: str
    argv: Callable[[int], list[str]]
    """The command line for a metrics port."""
    log_path: Path
    metrics_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    expected_exit: bool = False
    """Set when the harness signals it, so the monitor tells a crash from a fault."""
    rss_peak_kib: int = 0
    starts: int = 0

    def start(self) -> None:
        self.metrics_port = free_port()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv(self.metrics_port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={k: v for k, v in os.environ.items() if not k.startswith("CSR_SIGNER_")},
                start_new_session=True,
            )
        self.expected_exit = False
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        if self.alive():
            assert self.proc is not None
            self.expected_exit = True
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.alive():
            self.send(signal.SIGKILL)
            self.wait(10)

    def leads(self) -> bool:
        """Whether its /metrics says it holds the Lease (False when it does not answer)."""
        return self.metrics().get("csr_signer_leader", 0.0) == 1.0

    def metrics(self) -> dict[str, float]:
        if not self.alive():
            return {}
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                text = resp.read().decode()
        except OSError:
            return {}
        values: dict[str, float] = {}
        for line in text.splitlines():
            found = _METRIC.match(line)
            if found:
                values[found.group(1)] = values.get(found.group(1), 0.0) + float(found.group(2))
        return values

    def rss_kib(self) -> int:
        """VmRSS of the process now (0 if gone); keeps the peak."""
        if not self.alive():
            return 0
        assert self.proc is not None
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        rss = int(found.group(1)) if found else 0
        self.rss_peak_kib = max(self.rss_peak_kib, rss)
        return rss

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Cluster:
    cp: ControlPlane
    toxi: Toxiproxy
    workdir: Path
    policy_dir: Path
    replicas: list[Replica] = field(default_factory=list)
    ca_data: dict[str, dict[str, str]] = field(default_factory=dict)
    """Signer name -> the data of the CA Secret in force (to restore after a fault)."""
    ca_history: dict[str, History[bytes]] = field(default_factory=dict)
    policy_history: History[str] = field(default_factory=History)
    policy_version: str = "v1"

    def leader(self) -> Replica | None:
        return next((r for r in self.replicas if r.leads()), None)

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()
        self.toxi.stop()


def write_policies(directory: Path, version: str) -> None:
    """Policy set `version` ("v1" bundled, "v2" without the bare name, "invalid") in place,
    one atomic rename per file, as a ConfigMap volume update does."""
    for source in sorted(bundled_policies_dir().glob("*.yaml")):
        text = source.read_text()
        if source.name == "cluster-local.yaml":
            if BARE_LINE not in text:
                raise RuntimeError(f"{source}: the line policy v2 removes is gone: {BARE_LINE!r}")
            if version == "v2":
                text = text.replace(BARE_LINE, "")
            elif version == "invalid":
                text = text.replace("whenNoPolicyApplies: abstain", "whenNoPolicyApplies: maybe")
        scratch = directory / f".{source.name}.tmp"
        scratch.write_text(text)
        scratch.replace(directory / source.name)


def replica_argv(
    identity: str, kubeconfig: Path, policy_dir: Path, port: int, *, log_level: str
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "signer",
        "run",
        f"--kubeconfig={kubeconfig}",
        f"--policies={policy_dir}",
        f"--ca-secret={NAMESPACE}/{SECRETS[CLUSTER_LOCAL]}",
        f"--signer-ca={KNATIVE}={NAMESPACE}/{SECRETS[KNATIVE]}",
        f"--identity={identity}",
        f"--metrics-address=127.0.0.1:{port}",
        "--leader-elect",
        f"--leader-elect-lease-name={LEASE}",
        f"--leader-elect-lease-namespace={NAMESPACE}",
        f"--leader-elect-lease-duration={LEASE_DURATION}",
        f"--leader-elect-renew-deadline={RENEW_DEADLINE}",
        f"--leader-elect-retry-period={RETRY_PERIOD}",
        "--policy-reload-interval=1",
        "--workers=8",
        "--log-format=text",
        f"--log-level={log_level}",
    ]


def ca_secret_data(common_name: str) -> tuple[bytes, dict[str, str]]:
    cert, key = generate_root(common_name, "ecdsa-p256", 30, dt.datetime.now(dt.UTC))
    manifest = ca_secret_manifest("x", NAMESPACE, cert, key)
    return cert, dict(manifest["data"])


async def put_ca(admin: client.ApiClient, signer: str, data: dict[str, str]) -> None:
    """Create or replace the CA Secret of `signer` with `data` (base64 values)."""
    core = client.CoreV1Api(admin)
    name = SECRETS[signer]
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "type": "kubernetes.io/tls",
        "data": data,
    }
    try:
        await core.create_namespaced_secret(NAMESPACE, as_body(body))
    except ApiException as exc:
        if exc.status != 409:
            raise
        await core.replace_namespaced_secret(name, NAMESPACE, as_body(body))


async def install(
    cp: ControlPlane,
    admin: client.ApiClient,
    toxi: Toxiproxy,
    workdir: Path,
    *,
    log_level: str = "INFO",
) -> Cluster:
    """RBAC, CA Secrets, policies v1, a controller token behind the proxy; no replicas yet."""
    applied = cp.kubectl("apply", "-f", str(CHECKOUT / "deploy" / "rbac.yaml"))
    if applied.returncode != 0:
        raise RuntimeError(f"kubectl apply deploy/rbac.yaml: {applied.stderr.decode()}")
    policy_dir = workdir / "policies"
    policy_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(cp, toxi, workdir, policy_dir)
    write_policies(policy_dir, "v1")
    cluster.policy_history.set(time.time(), "v1")
    for signer in SECRETS:
        cert, data = ca_secret_data(f"chaos {signer} CA 1")
        await put_ca(admin, signer, data)
        cluster.ca_data[signer] = data
        cluster.ca_history[signer] = History([(time.time(), cert)])
    creds = await serviceaccount_credentials(
        admin, NAMESPACE, "csr-signer", expiration_seconds=24 * 3600
    )
    proxy_port = toxi.proxy(PROXY, f"127.0.0.1:{cp.port}")
    kubeconfig = yaml.safe_load(cp.kubeconfig(creds).read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy_port}"
    proxied = workdir / "controller-kubeconfig.yaml"
    proxied.touch(mode=0o600)
    proxied.write_text(yaml.safe_dump(kubeconfig))
    for identity in ("chaos-a", "chaos-b"):
        argv = functools.partial(replica_argv, identity, proxied, policy_dir, log_level=log_level)
        cluster.replicas.append(Replica(identity, argv, workdir / f"{identity}.log"))
    return cluster


def copy_logs(cluster: Cluster, destination: Path) -> None:
    """Keep the controllers' and control plane's logs after the workdir is removed."""
    destination.mkdir(parents=True, exist_ok=True)
    for path in [*cluster.workdir.glob("*.log"), *cluster.cp.workdir.glob("*.log")]:
        shutil.copy(path, destination / path.name)
