"""A real node beside the local control plane: containerd, kubelet, kube-proxy, scheduler, KCM.

Why: the chart's Deployment, probes, PDB and leader election between two Pods,
and the kubelet's own PodCertificateRequests, only exist on a node. Everything
here comes from package registries: the Kubernetes binaries from the Go module
proxy (`nodebinaries`, the control plane's release), containerd 1.6, runc and
the CNI plugins from Debian, the pause image built locally (`image.pause_image`).

What this machine needs (each setting below says why):
- containerd with `restrict_oom_score_adj = true`: lowering oom_score_adj is
  not permitted here, and every sandbox fails without it;
- kubelet with `failCgroupV1: false` (hybrid cgroup v1 layout), `cgroupDriver:
  cgroupfs` (no systemd), `cgroupsPerQOS: false` and `enforceNodeAllocatable: []`
  (no cgroup hierarchy of its own), `failSwapOn: false`, `maxOpenFiles` within
  the host's hard limit, eviction and image GC off (a shared, busy disk);
- the apiserver listening on the node's address (`ControlPlane(node_ip=...)`),
  so kube-proxy's `kubernetes` Service rules lead Pods to it.

Identity is real: the kubelet authenticates as `system:node:<name>` with a
client certificate from the control plane's client CA, so the Node authorizer
and NodeRestriction apply; kube-scheduler, kube-controller-manager and
kube-proxy use their built-in identities and default RBAC.

`stop()` tears down everything it made: Pods (deleted through the API so the
kubelet releases their sandboxes), processes (kubelet, kube-proxy and its
iptables rules, scheduler, controller-manager, containerd and its shims),
mounts under the work directory, the Pods' network namespaces and the bridge.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

import yaml

from csr_signer_dev import image
from csr_signer_dev.controlplane import (
    FEATURE_GATES,
    SERVICE_CIDR,
    ControlPlane,
    ControlPlaneError,
    Credentials,
)
from csr_signer_dev.gobuild import say

POD_CIDR = "10.244.0.0/24"
"""The Pods' private range (host-local IPAM on the bridge)."""
BRIDGE = "csrsigner0"
CNI_BIN = Path("/usr/lib/cni")
"""Debian's containernetworking-plugins."""
CNI_CACHE = Path("/var/lib/cni")
HOST_LOCK = Path("/run/lock/csr-signer-node.lock")
"""One local node per host at a time: the bridge, the Pod range and the iptables chains
the kubelet and kube-proxy write are host-wide."""
KUBELET_CHAINS = (
    ("filter", ("-D", "INPUT", "-j", "KUBE-FIREWALL")),
    ("filter", ("-D", "OUTPUT", "-j", "KUBE-FIREWALL")),
    ("filter", ("-F", "KUBE-FIREWALL")),
    ("filter", ("-X", "KUBE-FIREWALL")),
    ("filter", ("-X", "KUBE-KUBELET-CANARY")),
    ("nat", ("-X", "KUBE-KUBELET-CANARY")),
    ("mangle", ("-X", "KUBE-KUBELET-CANARY")),
    ("mangle", ("-X", "KUBE-IPTABLES-HINT")),
)
"""What the kubelet adds to the host's iptables and never removes (kube-proxy's own rules
go with `kube-proxy --cleanup`)."""
DEBIAN_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iptables", "conntrack")
KUBELET_GATES = dict(gate.split("=") for gate in FEATURE_GATES.split(","))


class NodeError(ControlPlaneError):
    """The node could not start; the message carries the log tail."""


def node_ip() -> str:
    """This host's primary address: the source of its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("203.0.113.1", 9))  # TEST-NET-3: routed by the default route
        address: str = probe.getsockname()[0]
    if address.startswith("127."):
        raise NodeError("no non-loopback address: Pods could not reach the apiserver")
    return address


def containerd_config(workdir: Path) -> str:
    """containerd 1.6 (CRI) on private root, state and socket under `workdir`."""
    return f"""\
version = 2
root = "{workdir}/containerd/root"
state = "{workdir}/containerd/state"
[grpc]
  address = "{workdir}/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{workdir}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image.PAUSE_IMAGE}"
  # Lowering oom_score_adj is not permitted here: without this every sandbox fails.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        # runc's state under the work directory too, so teardown finds every container.
        Root = "{workdir}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{workdir}/cni"
"""


def cni_config(workdir: Path) -> dict[str, object]:
    """A bridge with host-local IPAM on POD_CIDR; the bridge is the Pods' gateway."""
    return {
        "cniVersion": "0.4.0",
        "name": "csr-signer-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(workdir / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(workdir: Path, *, client_ca: Path, port: int, healthz: int) -> dict[str, object]:
    """KubeletConfiguration for this machine (see the module docstring for each setting)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "maxOpenFiles": hard if hard != resource.RLIM_INFINITY else 1_000_000,
        "evictionHard": {},
        "evictionSoft": {},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "containerRuntimeEndpoint": f"unix://{workdir}/containerd.sock",
        "address": "0.0.0.0",  # noqa: S104 - the apiserver reaches it on the node's InternalIP
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "featureGates": {k: v == "true" for k, v in KUBELET_GATES.items()},
        "resolvConf": "/etc/resolv.conf",
        "localStorageCapacityIsolation": False,
        "serializeImagePulls": False,
        "registerNode": True,
    }


class Node:
    """One node (this host) for `cp`, running Pods from images imported into its containerd."""

    def __init__(
        self,
        cp: ControlPlane,
        binaries: Path,
        engine: image.Engine,
        images: tuple[str, ...],
        *,
        name: str | None = None,
    ) -> None:
        if cp.node_ip is None:
            raise NodeError("the control plane must be started with node_ip= to serve a node")
        self.cp = cp
        self.binaries = binaries
        self.engine = engine
        self.images = images
        self.name = name or socket.gethostname()
        self.workdir = Path(tempfile.mkdtemp(prefix="csr-signer-node-", dir="/var/tmp"))
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._netns_before: set[str] = set()
        self._cni_cache_existed = True
        self._host_lock: IO[str] | None = None
        self.ready_seconds = 0.0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        """Start everything, after any other node on this host has stopped; Ready or raise."""
        HOST_LOCK.parent.mkdir(parents=True, exist_ok=True)
        self._host_lock = HOST_LOCK.open("a")
        try:
            fcntl.flock(self._host_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another local node on this host to stop ({HOST_LOCK})")
            fcntl.flock(self._host_lock, fcntl.LOCK_EX)
        started = time.monotonic()
        try:
            self._start(timeout, started)
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - started

    def _start(self, timeout: float, started: float) -> None:
        cp, work = self.cp, self.workdir
        self._netns_before = _netns()
        self._cni_cache_existed = CNI_CACHE.exists()
        (work / "cni").mkdir(parents=True)
        (work / "cni" / "10-csr-signer.conflist").write_text(json.dumps(cni_config(work)))
        (work / "containerd.toml").write_text(containerd_config(work))
        self._spawn("containerd", ["containerd", "--config", str(work / "containerd.toml")])
        self._wait((work / "containerd.sock").exists, "containerd", timeout, started)
        pause = image.pause_image(self.engine, self.binaries / "pause")
        for name in (pause, *self.images):
            archive = image.save_docker_archive(self.engine, name, work / "import.tar")
            self._ctr("images", "import", str(archive))
            archive.unlink()

        kubelet_port, healthz = _free_port(), _free_port()
        config = kubelet_config(
            work, client_ca=cp.pki / "client-ca.crt", port=kubelet_port, healthz=healthz
        )
        (work / "kubelet.yaml").write_text(yaml.safe_dump(config))
        node_creds = cp.client_credentials(f"system:node:{self.name}", ("system:nodes",))
        self._spawn(
            "kubelet",
            [
                str(self.binaries / "kubelet"),
                f"--config={work / 'kubelet.yaml'}",
                f"--kubeconfig={self._kubeconfig('kubelet', node_creds)}",
                f"--root-dir={work / 'kubelet'}",
                f"--cert-dir={work / 'kubelet-pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={cp.node_ip}",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-proxy",
            [
                str(self.binaries / "kube-proxy"),
                f"--kubeconfig={self._kubeconfig('kube-proxy', cp.client_credentials('system:kube-proxy'))}",
                f"--hostname-override={self.name}",
                f"--cluster-cidr={POD_CIDR}",
                "--proxy-mode=iptables",
                "--conntrack-max-per-core=0",  # leave the host's conntrack table alone
                f"--metrics-bind-address=127.0.0.1:{_free_port()}",
                f"--healthz-bind-address=127.0.0.1:{_free_port()}",
            ],
        )
        scheduler = cp.client_credentials("system:kube-scheduler")
        self._spawn(
            "kube-scheduler",
            [
                str(self.binaries / "kube-scheduler"),
                f"--kubeconfig={self._kubeconfig('kube-scheduler', scheduler)}",
                "--leader-elect=false",
                "--secure-port=0",
            ],
        )
        kcm = cp.client_credentials("system:kube-controller-manager")
        self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries / "kube-controller-manager"),
                f"--kubeconfig={self._kubeconfig('kube-controller-manager', kcm)}",
                "--leader-elect=false",
                "--secure-port=0",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={cp.pki / 'sa.key'}",
                f"--root-ca-file={cp.ca_file}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # csr-signer signs its own signer names; kube's signer is not needed here.
                "--controllers=*,-csrsigning",
                f"--feature-gates={FEATURE_GATES}",
            ],
        )
        self._wait(self._node_ready, f"node {self.name} Ready", timeout, started)

    def _node_ready(self) -> bool:
        proc = self.cp.kubectl(
            "get",
            "node",
            self.name,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        )
        return proc.returncode == 0 and proc.stdout.decode().strip() == "True"

    def stop(self) -> None:
        """Everything `start` made, in reverse; idempotent and best effort."""
        if self._procs and self._running("kubelet"):
            # Deleting the Pods lets the kubelet stop their sandboxes properly (CNI DEL).
            self.cp.kubectl(
                "delete",
                "pods",
                "--all",
                "--all-namespaces",
                "--grace-period=0",
                "--force",
                "--wait=false",
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self._ctr_quiet("tasks", "ls", "-q"):
                time.sleep(0.5)
        for name, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            if name == "kube-proxy":
                subprocess.run(
                    [str(self.binaries / "kube-proxy"), "--cleanup"],
                    capture_output=True,
                    check=False,
                    timeout=60,
                )
        self._procs.clear()
        _delete_containers(self.workdir / "runc" / "k8s.io")
        _kill_shims(self.workdir)
        _unmount_under(self.workdir)
        for netns in _netns() - self._netns_before:
            subprocess.run(["ip", "netns", "delete", netns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)
        _remove_kubelet_chains()
        if not self._cni_cache_existed:
            # libcni's result cache (one file per sandbox, removed on CNI DEL).
            with contextlib.suppress(OSError):
                (CNI_CACHE / "results").rmdir()
                CNI_CACHE.rmdir()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self._host_lock is not None:
            fcntl.flock(self._host_lock, fcntl.LOCK_UN)
            self._host_lock.close()
            self._host_lock = None

    # -- helpers -----------------------------------------------------------------------

    def _kubeconfig(self, name: str, creds: Credentials) -> Path:
        return self.cp.kubeconfig(creds, path=self.workdir / f"{name}.kubeconfig")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._procs.append((name, proc))

    def _running(self, name: str) -> bool:
        return any(n == name and p.poll() is None for n, p in self._procs)

    def _ctr(self, *args: str) -> str:
        return image.run(
            ["ctr", "--address", str(self.workdir / "containerd.sock"), "-n", "k8s.io", *args],
            timeout=600,
        )

    def _ctr_quiet(self, *args: str) -> str:
        proc = subprocess.run(
            ["ctr", "--address", str(self.workdir / "containerd.sock"), "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def _wait(self, ready: object, what: str, timeout: float, started: float) -> None:
        assert callable(ready)
        while time.monotonic() - started < timeout:
            for name, proc in self._procs:
                if proc.poll() is not None:
                    raise NodeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            if ready():
                return
            time.sleep(0.2)
        raise NodeError(f"{what} not ready after {timeout:.0f}s:\n{self.log_tail('kubelet')}")

    def log_tail(self, name: str, lines: int = 25) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def ensure_node_packages(*, log: bool = True) -> None:
    """containerd, runc, the CNI plugins, iptables and conntrack from Debian, when missing."""
    missing = [
        pkg
        for pkg, probe in zip(
            DEBIAN_PACKAGES,
            ("containerd", "runc", str(CNI_BIN / "bridge"), "iptables", "conntrack"),
            strict=True,
        )
        if not (Path(probe).exists() if probe.startswith("/") else shutil.which(probe))
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        raise NodeError(f"a node needs root and {', '.join(missing)}")
    if log:
        say(f"installing {' '.join(missing)} from Debian packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    image.run(["apt-get", "update", "-qq"], env=env)
    image.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))  # noqa: S104 - probing a port the kubelet binds on all addresses
        port: int = sock.getsockname()[1]
        return port


def _remove_kubelet_chains() -> None:
    for binary in ("iptables", "ip6tables"):
        if shutil.which(binary) is None:
            continue
        for table, rule in KUBELET_CHAINS:
            subprocess.run(
                [binary, "-w", "-t", table, *rule], capture_output=True, check=False, timeout=60
            )


def _netns() -> set[str]:
    directory = Path("/var/run/netns")
    return {p.name for p in directory.iterdir()} if directory.is_dir() else set()


def _delete_containers(runc_root: Path) -> None:
    """Force-delete (SIGKILL, then remove) every container runc still knows under `runc_root`."""
    if not runc_root.is_dir():
        return
    listed = subprocess.run(
        ["runc", "--root", str(runc_root), "list", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    for container in listed.stdout.split():
        subprocess.run(
            ["runc", "--root", str(runc_root), "delete", "--force", container],
            capture_output=True,
            check=False,
            timeout=60,
        )


def _kill_shims(workdir: Path) -> None:
    """containerd's shims outlive it; ours name our socket on their command line."""
    marker = str(workdir).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline and marker in cmdline:
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGKILL)


def _unmount_under(workdir: Path) -> None:
    """Every mount point below `workdir` (and the kubelet's), deepest first."""
    points: list[str] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(str(workdir) + "/"):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
