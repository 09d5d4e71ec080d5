"""A real kube-apiserver + etcd on loopback, for tests, benchmarks and `local up`.

Why real: the behaviour csr-signer depends on (RBAC on `signers`, the
`/approval` and `/status` subresource rules, identity fields the apiserver
sets in `spec.username`, the Node authorizer and NodeRestriction on the
PodCertificateRequests a node creates) lives in the apiserver; a fake would
only encode our own assumptions.

Identities:
- client certificates from a throwaway client CA: CN is the username, O the
  groups (`system:masters` for the admin); any user and groups on demand;
- ServiceAccounts: real tokens from the TokenRequest API, signed with a key
  the apiserver was started with (see `csr_signer_dev.identities`).

Processes are started in their own session through `setpriv --pdeathsig
KILL`, so they die with the Python thread that started them even on SIGKILL
of that process; `stop()` (also run by `atexit` and the context manager)
terminates the apiserver before etcd and removes the temporary directory.
(Not `preexec_fn=prctl(...)`: that makes CPython run at-fork hooks in the
child, and OpenTelemetry's hook starts threads there, which deadlocks.)
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import yaml

from csr_signer_dev import settings
from csr_signer_dev.binaries import Binaries, resolve
from csr_signer_dev.certs import KeyPair, LocalCA, service_account_key

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
FEATURE_GATES = (
    "ClusterTrustBundle=true,ClusterTrustBundleProjection=true,PodCertificateRequest=true"
)
RUNTIME_CONFIG = "certificates.k8s.io/v1beta1=true"
AUTHORIZATION_MODE = "Node,RBAC"
"""The Node authorizer lets `system:node:<name>` create PodCertificateRequests, as kubelets
do; RBAC covers every other identity (the Node authorizer has no opinion on them)."""
ENABLE_ADMISSION_PLUGINS = "NodeRestriction"
"""Added to the apiserver's default-on admission plugins (none is disabled): it checks a
node's PodCertificateRequests against the real Node, Pod and ServiceAccount."""
ADMIN_USER = "csr-signer-admin"
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"
"""The `kubernetes` Service's ClusterIP: the first address of SERVICE_CIDR."""


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the message carries the log tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent_prefix() -> list[str]:
    """`setpriv --pdeathsig KILL --` where util-linux has it, else nothing."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def apiserver_argv(
    binary: Path,
    *,
    etcd_url: str,
    port: int,
    workdir: Path,
    pki: Path,
    serving_cert: Path,
    serving_key: Path,
    node_ip: str | None = None,
) -> list[str]:
    """The kube-apiserver command line; `pki` holds client-ca.crt, sa.key and sa.pub.

    With `node_ip` (a local node will run Pods) it listens on every address and
    advertises `node_ip`, so the `kubernetes` Service leads Pods to it, and it
    reaches kubelets on their InternalIP with its own client certificate
    (`pki`/kubelet-client.crt, .key) for logs and exec.
    """
    node = (
        [
            f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
        ]
        if node_ip
        else []
    )
    return [
        str(binary),
        f"--etcd-servers={etcd_url}",
        f"--bind-address={'0.0.0.0' if node_ip else '127.0.0.1'}",  # noqa: S104 - a node's Pods
        f"--advertise-address={node_ip or '127.0.0.1'}",
        *node,
        f"--secure-port={port}",
        f"--cert-dir={workdir / 'apiserver-certs'}",
        f"--tls-cert-file={serving_cert}",
        f"--tls-private-key-file={serving_key}",
        f"--client-ca-file={pki / 'client-ca.crt'}",
        f"--authorization-mode={AUTHORIZATION_MODE}",
        f"--enable-admission-plugins={ENABLE_ADMISSION_PLUGINS}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        f"--runtime-config={RUNTIME_CONFIG}",
        f"--feature-gates={FEATURE_GATES}",
        "--profiling=false",
        "--v=0",
    ]


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to authenticate: a client certificate or a bearer token."""

    username: str
    cert_file: Path | None = None
    key_file: Path | None = None
    token: str | None = None


class ControlPlane:
    """etcd + kube-apiserver in a temporary directory on free loopback ports."""

    def __init__(
        self,
        binaries: Binaries | None = None,
        *,
        workdir: Path | None = None,
        node_ip: str | None = None,
    ) -> None:
        """`binaries` defaults to those `settings.from_environment()` resolves (maybe a build).

        `node_ip`: serve Pods of a local node (`csr_signer_dev.node`) on that address.
        """
        self.binaries = binaries or resolve(settings.from_environment())
        self.node_ip = node_ip
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="csr-signer-cp-"))
        self._procs: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []
        self._argv: dict[str, list[str]] = {}
        self._client_ca = LocalCA("csr-signer-local-client-ca")
        self._serving_ca = LocalCA("csr-signer-local-serving-ca")
        self._client_creds: dict[tuple[str, tuple[str, ...]], Credentials] = {}
        self.port = 0
        self.etcd_port = 0
        self.started_seconds = 0.0
        self.ca_file = self.workdir / "serving-ca.crt"

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        """Start etcd then the apiserver; on any failure, stop what was started."""
        atexit.register(self.stop)
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        started = time.monotonic()
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        self.ca_file.write_bytes(self._serving_ca.cert_pem)
        (pki / "client-ca.crt").write_bytes(self._client_ca.cert_pem)
        serving_cert, serving_key = self._serving_ca.issue(
            "kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=("127.0.0.1", SERVICE_IP, *((self.node_ip,) if self.node_ip else ())),
            server=True,
        ).write(pki, "serving")
        if self.node_ip:
            self._client_ca.issue(
                "kube-apiserver-kubelet-client", organizations=("system:masters",)
            ).write(pki, "kubelet-client")
        sa_private, sa_public = service_account_key()
        (pki / "sa.key").touch(mode=0o600)
        (pki / "sa.key").write_bytes(sa_private)
        (pki / "sa.pub").write_bytes(sa_public)

        self.etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait(lambda: self._http_ok(f"{etcd_url}/health"), "etcd", timeout, started)

        self.port = free_port()
        self._spawn(
            "kube-apiserver",
            apiserver_argv(
                self.binaries.kube_apiserver,
                etcd_url=etcd_url,
                port=self.port,
                workdir=self.workdir,
                pki=pki,
                serving_cert=serving_cert,
                serving_key=serving_key,
                node_ip=self.node_ip,
            ),
        )
        admin = self.client_credentials(ADMIN_USER, ("system:masters",))
        self._wait(lambda: self._https_ok("/readyz", admin), "kube-apiserver", timeout, started)
        # The bootstrap controller creates `default` shortly after readiness.
        self._wait(
            lambda: self._https_ok("/api/v1/namespaces/default", admin),
            "namespace default",
            timeout,
            started,
        )
        self.started_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Terminate apiserver then etcd (reverse start order); idempotent."""
        atexit.unregister(self.stop)
        for _name, proc, log in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            log.close()
        self._procs.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def pids(self) -> dict[str, int]:
        """Process id of each running component ("etcd", "kube-apiserver"): benchmarks read
        their CPU time from /proc."""
        return {name: proc.pid for name, proc, _log in self._procs if proc.poll() is None}

    # -- faults (the chaos suite): the same processes, killed, stalled, restarted ---------

    def process(self, name: str) -> subprocess.Popen[bytes]:
        """The running `etcd` or `kube-apiserver` process."""
        for proc_name, proc, _log in self._procs:
            if proc_name == name:
                return proc
        raise ControlPlaneError(f"no process {name}")

    def kill(self, name: str) -> None:
        """SIGKILL `name` and reap it: a crash, no graceful shutdown."""
        proc = self.process(name)
        proc.kill()
        proc.wait(timeout=30)

    def restart(self, name: str, timeout: float = 90.0) -> float:
        """Start `name` again with its first command line (same ports, same data) after
        `kill`; wait until it serves. Returns the seconds it took to serve."""
        started = time.monotonic()
        index = next(i for i, (n, _p, _l) in enumerate(self._procs) if n == name)
        _name, old, log = self._procs[index]
        if old.poll() is None:
            raise ControlPlaneError(f"{name} is still running")
        log.close()
        self._procs[index] = (name, *self._popen(name, self._argv[name], mode="ab"))
        if name == "etcd":
            url = f"http://127.0.0.1:{self.etcd_port}/health"
            self._wait(lambda: self._http_ok(url), "etcd", timeout, started)
        else:
            admin = self.admin
            self._wait(lambda: self._https_ok("/readyz", admin), name, timeout, started)
        return time.monotonic() - started

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._argv[name] = argv
        self._procs.append((name, *self._popen(name, argv, mode="wb")))

    def _popen(
        self, name: str, argv: list[str], *, mode: str
    ) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
        log = (self.workdir / f"{name}.log").open(mode)
        proc = subprocess.Popen(
            [*_die_with_parent_prefix(), *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.workdir,
        )
        return proc, log

    def _wait(self, ready: object, what: str, timeout: float, started: float) -> None:
        assert callable(ready)
        while time.monotonic() - started < timeout:
            for name, proc, _log in self._procs:
                if proc.poll() is not None:
                    raise ControlPlaneError(
                        f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}"
                    )
            if ready():
                return
            time.sleep(0.1)
        raise ControlPlaneError(
            f"{what} not ready after {timeout:.0f}s:\n{self.log_tail('kube-apiserver')}"
        )

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def ssl_context(self, creds: Credentials | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if creds is not None and creds.cert_file and creds.key_file:
            ctx.load_cert_chain(str(creds.cert_file), str(creds.key_file))
        return ctx

    def _https_ok(self, path: str, creds: Credentials) -> bool:
        try:
            with urllib.request.urlopen(  # noqa: S310 - loopback
                self.url + path, timeout=2, context=self.ssl_context(creds)
            ) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    @property
    def pki(self) -> Path:
        """client-ca.crt, sa.key, sa.pub, the serving and kubelet-client pairs."""
        return self.workdir / "pki"

    # -- identities ------------------------------------------------------------------

    def client_credentials(self, username: str, groups: tuple[str, ...] = ()) -> Credentials:
        """A client certificate that authenticates as `username` in `groups`."""
        key = (username, groups)
        if key not in self._client_creds:
            pair: KeyPair = self._client_ca.issue(username, organizations=groups)
            directory = self.workdir / "clients"
            directory.mkdir(exist_ok=True)
            stem = f"client-{len(self._client_creds)}"
            cert, keyfile = pair.write(directory, stem)
            self._client_creds[key] = Credentials(username, cert_file=cert, key_file=keyfile)
        return self._client_creds[key]

    @property
    def admin(self) -> Credentials:
        return self.client_credentials(ADMIN_USER, ("system:masters",))

    def kubeconfig(self, creds: Credentials | None = None, *, path: Path | None = None) -> Path:
        """Write a kubeconfig for `creds` (the admin by default) and return its path."""
        creds = creds or self.admin
        user: dict[str, str] = {}
        if creds.token is not None:
            user["token"] = creds.token
        else:
            assert creds.cert_file is not None
            assert creds.key_file is not None
            user["client-certificate"] = str(creds.cert_file)
            user["client-key"] = str(creds.key_file)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": creds.username, "user": user}],
            "contexts": [
                {"name": "local", "context": {"cluster": "local", "user": creds.username}}
            ],
            "current-context": "local",
        }
        if path is None:
            directory = self.workdir / "kubeconfigs"
            directory.mkdir(exist_ok=True)
            safe = "".join(c if c.isalnum() else "-" for c in creds.username)
            path = directory / f"{safe}-{abs(hash((creds.username, creds.token))) % 10**8}.yaml"
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(config))
        return path

    def kubectl(
        self, *args: str, creds: Credentials | None = None, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the pinned kubectl against this control plane (admin by default)."""
        if self.binaries.kubectl is None:
            raise ControlPlaneError("no kubectl binary in the resolved binaries")
        # A clean environment: the developer's KUBECONFIG, ~/.kube cache and
        # proxy settings must not change what a test sees.
        env = {"PATH": os.defpath, "HOME": str(self.workdir)}
        return subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig(creds)}", *args],
            input=input,
            capture_output=True,
            env=env,
            check=False,
            timeout=60,
        )
