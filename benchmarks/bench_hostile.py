"""Hostile input cannot stall, crash or exhaust the controller (a benchmark, not a test).

Tenants choose what they put in a CSR, and the apiserver stores objects up to etcd's
1.5 MiB. Before the request caps (``--max-request-bytes``, ``--max-sans``, policies'
``maxDnsNames``), the off-loop parsing of large requests, the fair queue, the cache that
sheds ``spec.request`` of CSRs left for a human, list pages sized by bytes and one Pending
Event per CSR, this machine reproduced: 40 approved CSRs of 1.3 MB -> 316 MB RSS; a
restart relisting 60 denied 1.2 MB CSRs -> 381 MB peak (the chart's limit is 256 Mi);
a 1.5 MB CSR with 190,000 short SANs blocked the event loop 4-6 s and ``/healthz`` timed
out; fifteen of them delayed another namespace's CSR by 81 s instead of 0.3 s; and with
10,500 pending CSRs every resync re-emitted 10.5k Pending Events.

On one fresh local control plane (kube-apiserver + etcd), with the controller run as
a subprocess under the RBAC we ship, this measures:

1. memory (RSS and peak, VmHWM, of the controller process):
   a. after 100 pending CSRs of the largest request we accept (``spec.request`` PEM just
      under the 64 KiB cap, RSA-2048, long DNS names, fewer than ``--max-sans``) from a
      human user, so they stay Pending;
   b. after 40 CSRs of ~1.3 MB (40,000 names like ``a12345.team-x.svc``, from a
      ServiceAccount in ``team-x``): over the cap, Denied unread;
   c. after a restart whose relist holds 60 Denied ~1.2 MB CSRs (and the pending ones):
      the peak is the relist's.
   Each peak is its step's own: VmHWM is reset through ``/proc/PID/clear_refs`` when a
   step starts in a process already running. Step 2 adds RSS and peak during its flood.
2. event-loop blocking: ``/healthz`` polled every 50 ms (1 s timeout, a fresh connection
   each time, from a separate process so that our own JSON work cannot skew it) while 15
   worst-case CSRs (~190,000 short SANs, as large as the apiserver accepts) from
   namespace ``flood`` are processed: max and p99 latency, and timeouts;
3. an innocent CSR under that flood: one ``web.demo.svc`` CSR from ServiceAccount
   ``demo/app``, created right after the 15, approved by the bundled policy: seconds
   from its create call returning to a watch seeing its certificate;
4. Events per resync: P pending human CSRs (``--pending``, 1,000 by default to keep the
   run short; the regression was at 10,500), the controller at ``--resync-period=10s``:
   ``Pending`` Events for them once all are decided and again after two more resyncs.
   One per CSR in total and 0 per resync is the target; the per-resync figure is what
   scales with the backlog.

Targets are in `benchmarks/targets.py`; the exit status is 1 when one is missed.

    .venv/bin/python benchmarks/bench_hostile.py [--pending 1000] [--scale 1.0]

``--scale 0.1`` shrinks every count and size (sizes stay over the request cap), for a
quick smoke run. ``--worst-relist 50`` adds a restart whose relist holds 50 Denied
worst-case CSRs (~2 MB each as JSON, the most etcd stores): a 50-object page of
those would be ~100 MB; pages are sized by bytes (about 8 MB) for this case.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from csr_signer_dev import session
from csr_signer_dev.controlplane import ControlPlane, free_port
from csr_signer_dev.identities import api_client, serviceaccount_credentials
from kubernetes_asyncio import client

from benchmarks.harness import controller_argv, controller_env, rss_mib
from benchmarks.targets import (
    HEALTHZ_P99_MS,
    HEALTHZ_TIMEOUTS,
    HOSTILE_RSS_MIB,
    INNOCENT_ISSUE_SECONDS,
    PENDING_EVENTS_PER_RESYNC,
    Target,
    verdict,
)
from signer.config import Settings
from signer.kube.client import as_body, read_json
from signer.kube.watching import Handlers, list_and_watch

SIGNER = "csr-signer.dev/cluster-local"
UNSERVED_SIGNER = "example.com/size-probe"
"""For probing what the apiserver accepts without giving the controller any work."""
USAGES = ["digital signature", "key encipherment", "server auth"]
HUMAN = "bench-human"
BIG_NAMESPACE = "team-x"
FLOOD_NAMESPACE = "flood"
INNOCENT_NAMESPACE = session.DEMO_NAMESPACE
MAX_REQUEST_BYTES: int = Settings.model_fields["max_request_bytes"].default
"""The controller's default --max-request-bytes (of decoded spec.request, i.e. PEM)."""
MAX_SANS: int = Settings.model_fields["max_sans"].default
"""The controller's default --max-sans."""
RESYNC_SECONDS = 10
CONCURRENCY = 16
HEALTHZ_INTERVAL = 0.05
HEALTHZ_TIMEOUT = 1.0
ROOT = Path(__file__).resolve().parents[1]
PEM_OVERHEAD = len(b"-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n")


# -- requests -------------------------------------------------------------------------


def _base36(i: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        i, r = divmod(i, 36)
        out = digits[r] + out
        if i == 0:
            return out


def _san_der_bytes(name: str) -> int:
    """A DNSName's size inside GeneralNames: tag, length (1 or 2 bytes), the name."""
    return len(name) + (2 if len(name) < 128 else 3)


class Requests:
    """CSR PEMs of chosen sizes, all signed with one RSA-2048 key (made once)."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def pem(self, names: Sequence[str]) -> bytes:
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        return csr.public_bytes(serialization.Encoding.PEM)

    def sized(self, pem_bytes: int, name: Callable[[int], str], max_names: int = 10**7) -> bytes:
        """The largest request of names `name(0)`, `name(1)`, ... whose PEM fits `pem_bytes`."""
        first = name(0)
        base = len(self._der(first)) - _san_der_bytes(first)
        der_budget = (pem_bytes - PEM_OVERHEAD) * 48 // 65 - base - 8  # 8: length headers
        names: list[str] = []
        used = 0
        while len(names) < max_names:
            candidate = name(len(names))
            size = _san_der_bytes(candidate)
            if used + size > der_budget:
                break
            names.append(candidate)
            used += size
        pem = self.pem(names)
        while len(pem) > pem_bytes:
            del names[-max(1, len(names) // 200) :]
            pem = self.pem(names)
        return pem

    def _der(self, name: str) -> bytes:
        pem = self.pem([name])
        return x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)


def long_name(i: int) -> str:
    """A 250-character DNS name of four 60-character labels (a label may have 63)."""
    head = f"n{i:04d}-".ljust(60, "x")
    return ".".join([head, "y" * 60, "z" * 60, "team-x.svc".rjust(60, "w")])


def team_name(i: int) -> str:
    return f"a{i:05d}.{BIG_NAMESPACE}.svc"


def sans(pem: bytes) -> int:
    ext = x509.load_pem_x509_csr(pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    return len(ext.value)


def request_b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode()


def mb(pem: bytes) -> str:
    return f"{len(request_b64(pem)) / 1e6:.2f} MB"


def describe(pem: bytes) -> str:
    return f"spec.request {mb(pem)} (PEM {len(pem):,} bytes, {sans(pem):,} SANs)"


def small_pem(names: Sequence[str]) -> bytes:
    """A typical request: a fresh P-256 key, a few names."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_body(name: str, pem: bytes, signer: str = SIGNER) -> dict[str, Any]:
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": request_b64(pem), "signerName": signer, "usages": USAGES},
    }


async def create(api: client.ApiClient, name: str, pem: bytes, signer: str = SIGNER) -> None:
    # The response (the whole object, up to 2 MB) is not turned into models.
    await read_json(
        client.CertificatesV1Api(api).create_certificate_signing_request(
            as_body(csr_body(name, pem, signer)), _preload_content=False
        )
    )


async def create_many(
    api: client.ApiClient, names: Sequence[str], pem_of: Callable[[int], bytes]
) -> None:
    """Create `names` with `CONCURRENCY` concurrent clients."""
    queue = list(reversed(list(enumerate(names))))

    async def creator() -> None:
        while queue:
            i, name = queue.pop()
            await create(api, name, pem_of(i))

    await asyncio.gather(*(creator() for _ in range(CONCURRENCY)))


async def delete_all(admin: client.ApiClient, names: Sequence[str]) -> None:
    certs = client.CertificatesV1Api(admin)
    for name in names:
        await read_json(certs.delete_certificate_signing_request(name, _preload_content=False))


# -- observing --------------------------------------------------------------------------


@dataclass
class Outcome:
    state: str
    """"issued", "denied" or "failed"."""
    message: str
    at: float


class Observer:
    """Watches CSRs and records when each one reached a final state, and which."""

    def __init__(self) -> None:
        self.final: dict[str, Outcome] = {}

    def _see(self, raw: dict[str, Any]) -> None:
        name = raw["metadata"]["name"]
        if name in self.final:
            return
        status = raw.get("status") or {}
        if status.get("certificate"):
            self.final[name] = Outcome("issued", "", time.monotonic())
            return
        for condition in status.get("conditions") or []:
            if condition.get("type") in ("Denied", "Failed"):
                state = str(condition["type"]).lower()
                message = str(condition.get("message", ""))
                self.final[name] = Outcome(state, message, time.monotonic())
                return

    def handlers(self) -> Handlers:
        def on_list(items: list[dict[str, Any]]) -> None:
            for item in items:
                self._see(item)

        return Handlers(on_list=on_list, on_event=lambda _kind, raw: self._see(raw))

    def watch(self, admin: client.ApiClient, field_selector: str) -> asyncio.Task[None]:
        return asyncio.create_task(
            list_and_watch(
                client.CertificatesV1Api(admin).list_certificate_signing_request,
                self.handlers(),
                field_selector=field_selector,
            )
        )

    async def wait_final(self, names: Sequence[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(n in self.final for n in names):
            if time.monotonic() > deadline:
                missing = [n for n in names if n not in self.final]
                raise TimeoutError(f"{len(missing)} CSRs not final, e.g. {missing[:3]}")
            await asyncio.sleep(0.1)

    def tally(self, names: Sequence[str]) -> str:
        states: dict[str, int] = {}
        for name in names:
            outcome = self.final.get(name)
            state = outcome.state if outcome else "pending"
            if outcome and "--max-request-bytes" in outcome.message:
                state += " (request cap)"
            states[state] = states.get(state, 0) + 1
        return ", ".join(f"{count} {state}" for state, count in sorted(states.items()))


async def pending_events(admin: client.ApiClient, prefix: str) -> int:
    """`Pending` Events (namespace default) about CSRs whose name starts with `prefix`."""
    core = client.CoreV1Api(admin)
    count, token = 0, None
    while True:
        kwargs: dict[str, Any] = {"_continue": token} if token else {}
        page = await read_json(
            core.list_namespaced_event(
                "default",
                field_selector="involvedObject.kind=CertificateSigningRequest,reason=Pending",
                limit=500,
                _preload_content=False,
                **kwargs,
            )
        )
        count += sum(
            1
            for event in page.get("items") or []
            if str((event.get("involvedObject") or {}).get("name", "")).startswith(prefix)
        )
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return count


# -- the controller process ---------------------------------------------------------------


class Controller:
    """`csr-signer run` as a subprocess, its log in the control plane's workdir."""

    def __init__(
        self, prepared: session.Prepared, log_path: Path, log_level: str = "WARNING"
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        env = controller_env()
        argv = controller_argv(
            prepared,
            SIGNER,
            port=self.port,
            extra=(
                f"--log-level={log_level}",
                "--log-format=text",
                f"--resync-period={RESYNC_SECONDS}s",
            ),
        )
        self._log: TextIO = log_path.open("a")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def memory_mib(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MiB: resident now, and the peak since start or `reset_peak`."""
        self.check_alive()
        return rss_mib(self.proc.pid)

    def reset_peak(self) -> None:
        """Start VmHWM afresh (Linux >= 4.0), so the next peak is the next step's own."""
        self.check_alive()
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        except OSError as exc:
            print(f"  (cannot reset the peak, it stays the process's: {exc})", flush=True)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"the controller exited with {self.proc.returncode}:\n{tail}")

    async def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                self.check_alive()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{self.url}/readyz", timeout=_timeout(2)) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"the controller was not ready after {timeout:.0f}s")

    async def wait_idle(self, settle: float = 2.0, timeout: float = 180) -> None:
        """Until the work queue has stayed empty for `settle` seconds."""
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                self.check_alive()
                depth = await self._queue_depth(http)
                now = time.monotonic()
                if depth == 0:
                    idle_since = idle_since or now
                    if now - idle_since >= settle:
                        return
                else:
                    idle_since = None
                await asyncio.sleep(0.25)
        raise TimeoutError(f"the controller's queue did not drain in {timeout:.0f}s")

    async def _queue_depth(self, http: aiohttp.ClientSession) -> float | None:
        try:
            async with http.get(f"{self.url}/metrics", timeout=_timeout(5)) as resp:
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            return None
        match = re.search(r"^csr_signer_queue_depth(?:\{[^}]*\})? (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)


# -- /healthz poller (a separate process) -------------------------------------------------


def poll_healthz(url: str) -> None:
    """Poll `url` every HEALTHZ_INTERVAL until SIGTERM; print latencies (null: failed)."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    samples: list[float | None] = []
    while not stopping:
        start = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=HEALTHZ_TIMEOUT) as resp:
                resp.read()
            samples.append(time.monotonic() - start)
        except (urllib.error.URLError, OSError):
            samples.append(None)
        time.sleep(max(0.0, HEALTHZ_INTERVAL - (time.monotonic() - start)))
    print(json.dumps(samples))


class HealthzProbe:
    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--poll-healthz", url], stdout=subprocess.PIPE
        )

    def finish(self) -> list[float | None]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        samples: list[float | None] = json.loads(out)
        return samples


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the phases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Counts and sizes at `--scale` (sizes stay over the request cap)."""

    scale: float
    pending_max: int
    big_b: int
    big_c: int
    flood: int
    pending: int
    worst_relist: int

    @classmethod
    def of(cls, args: argparse.Namespace) -> Plan:
        scale = float(args.scale)

        def n(count: int) -> int:
            return max(1, round(count * scale))

        worst = n(args.worst_relist) if args.worst_relist else 0
        return cls(scale, n(100), n(40), n(60), n(15), int(args.pending), worst)

    def request_bytes(self, megabytes: float) -> int:
        """A spec.request (base64) of `megabytes` at scale, as PEM bytes."""
        over_the_cap = MAX_REQUEST_BYTES * 4 // 3 * 11 // 10
        return max(over_the_cap, int(megabytes * 1e6 * self.scale)) * 3 // 4


@dataclass
class Clients:
    admin: client.ApiClient
    human: client.ApiClient
    team: client.ApiClient
    flood: client.ApiClient
    innocent: client.ApiClient

    async def close(self) -> None:
        for api in (self.admin, self.human, self.team, self.flood, self.innocent):
            await api.close()


async def clients(cp: ControlPlane) -> Clients:
    admin = await api_client(cp)
    rbac = client.RbacAuthorizationV1Api(admin)
    role = {
        "metadata": {"name": "bench-hostile-csr-requester"},
        "rules": [
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests"],
                "verbs": ["create", "get", "list", "watch"],
            }
        ],
    }
    subjects: list[dict[str, str]] = [
        {"kind": "User", "name": HUMAN, "apiGroup": "rbac.authorization.k8s.io"}
    ]
    subjects += [
        {"kind": "ServiceAccount", "name": "app", "namespace": ns}
        for ns in (BIG_NAMESPACE, FLOOD_NAMESPACE, INNOCENT_NAMESPACE)
    ]
    binding = {
        "metadata": {"name": "bench-hostile-csr-requester"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "bench-hostile-csr-requester",
        },
        "subjects": subjects,
    }
    await rbac.create_cluster_role(as_body(role))
    await rbac.create_cluster_role_binding(as_body(binding))

    async def sa(namespace: str) -> client.ApiClient:
        creds = await serviceaccount_credentials(admin, namespace, "app")
        sa_api: client.ApiClient = await api_client(cp, creds)
        return sa_api

    made = Clients(
        admin=admin,
        human=await api_client(cp, cp.client_credentials(HUMAN, ("bench-humans",))),
        team=await sa(BIG_NAMESPACE),
        flood=await sa(FLOOD_NAMESPACE),
        innocent=await sa(INNOCENT_NAMESPACE),
    )
    for api in (made.human, made.team, made.flood):
        api.configuration.connection_pool_maxsize = CONCURRENCY * 2
    return made


@dataclass
class Memory:
    what: str
    rss: float
    peak: float

    def line(self) -> str:
        return f"memory {self.what}: RSS {self.rss:.0f} MiB, peak (VmHWM) {self.peak:.0f} MiB"


async def memory_phases(
    plan: Plan,
    api: Clients,
    requests: Requests,
    observer: Observer,
    prepared: session.Prepared,
    workdir: Path,
) -> tuple[list[Memory], Controller]:
    """1a, 1b, 1c; returns the figures and the restarted controller, still running."""
    figures: list[Memory] = []
    max_pem = requests.sized(MAX_REQUEST_BYTES, long_name, max_names=MAX_SANS)
    b_pem = requests.sized(plan.request_bytes(1.3), team_name)
    c_pem = requests.sized(plan.request_bytes(1.2), team_name)
    print(f"largest accepted request: {describe(max_pem)}", flush=True)
    print(f"over-the-cap requests: {describe(b_pem)}; {describe(c_pem)}", flush=True)

    first = Controller(prepared, workdir / "controller-1.log")
    try:
        await first.wait_ready()
        # (a) the largest requests we accept, from a human: left Pending.
        names = [f"max-{i:04d}" for i in range(plan.pending_max)]
        await create_many(api.human, names, lambda _i: max_pem)
        deadline = time.monotonic() + 180
        while await pending_events(api.admin, "max-") < len(names):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        await first.wait_idle()
        events = await pending_events(api.admin, "max-")
        print(
            f"  {plan.pending_max} max-size human CSRs: {observer.tally(names)}; "
            f"{events} Pending Events",
            flush=True,
        )
        figures.append(
            Memory(f"after {plan.pending_max} pending max-size CSRs", *first.memory_mib())
        )
        print(figures[-1].line(), flush=True)

        # (b) over the cap, from a ServiceAccount whose namespace the names are in.
        first.reset_peak()
        b_names = [f"big-b-{i:03d}" for i in range(plan.big_b)]
        await create_many(api.team, b_names, lambda _i: b_pem)
        await observer.wait_final(b_names, timeout=300)
        await first.wait_idle()
        print(f"  {plan.big_b} CSRs over the cap: {observer.tally(b_names)}", flush=True)
        figures.append(Memory(f"after {plan.big_b} CSRs of {mb(b_pem)}", *first.memory_mib()))
        print(figures[-1].line(), flush=True)

        # (c) 60 of ~1.2 MB, Denied; the 1.3 MB ones deleted, so the relist holds these.
        c_names = [f"big-c-{i:03d}" for i in range(plan.big_c)]
        await create_many(api.team, c_names, lambda _i: c_pem)
        await observer.wait_final(c_names, timeout=300)
        print(f"  {plan.big_c} CSRs over the cap: {observer.tally(c_names)}", flush=True)
        await delete_all(api.admin, b_names)
        await first.wait_idle()
    finally:
        first.stop()

    second = Controller(prepared, workdir / "controller-2.log")
    try:
        await second.wait_ready()
        await second.wait_idle()
    except BaseException:
        second.stop()
        raise
    figures.append(
        Memory(
            f"after a restart relisting {plan.big_c} Denied CSRs of {mb(c_pem)} "
            f"(+{plan.pending_max} pending)",
            *second.memory_mib(),
        )
    )
    print(figures[-1].line(), flush=True)
    events = await pending_events(api.admin, "max-")
    print(
        f"  Pending Events for the {plan.pending_max} max-size CSRs after one restart: {events} "
        "(the note is in memory: a restart emits one more per pending CSR)",
        flush=True,
    )
    return figures, second


async def acceptable_flood_pem(plan: Plan, api: Clients, requests: Requests) -> bytes:
    """~190,000 short SANs (at scale), fewer until the apiserver stores the object."""
    count = max(2_000, round(190_000 * plan.scale))
    for attempt in range(12):
        pem = requests.pem([_base36(i) for i in range(count)])
        name = f"size-probe-{attempt}"
        try:
            await create(api.admin, name, pem, signer=UNSERVED_SIGNER)
        except Exception as exc:  # 413, or 500 "etcdserver: request is too large"
            print(f"  the apiserver refused {describe(pem)}: {str(exc).splitlines()[0][:120]}")
            count = count * 9 // 10
            continue
        await delete_all(api.admin, [name])
        return pem
    raise RuntimeError("the apiserver refused every worst-case request size tried")


@dataclass
class FloodFigures:
    healthz_p99_ms: float
    healthz_max_ms: float
    healthz_failures: int
    healthz_samples: int
    innocent_seconds: float
    request: bytes
    """The worst-case request the apiserver accepted."""


async def flood_phase(
    plan: Plan, api: Clients, requests: Requests, observer: Observer, controller: Controller
) -> FloodFigures:
    """2 and 3: /healthz under 15 worst-case CSRs, and another namespace's CSR meanwhile."""
    pem = await acceptable_flood_pem(plan, api, requests)
    print(f"worst-case request: {describe(pem)}", flush=True)
    names = [f"flood-{i:03d}" for i in range(plan.flood)]
    innocent = f"innocent-web-{INNOCENT_NAMESPACE}"
    own = Observer()
    own_watch = own.watch(api.admin, f"metadata.name={innocent}")
    await asyncio.sleep(1)
    controller.reset_peak()
    probe = HealthzProbe(f"{controller.url}/healthz")
    try:
        await asyncio.sleep(1)  # a baseline before the flood
        await create_many(api.flood, names, lambda _i: pem)
        start = time.monotonic()
        await create(api.innocent, innocent, small_pem([f"web.{INNOCENT_NAMESPACE}.svc"]))
        created = time.monotonic()
        try:
            await own.wait_final([innocent], timeout=60)
            innocent_seconds = own.final[innocent].at - created
            state = own.final[innocent].state
        except TimeoutError:
            innocent_seconds, state = 60.0, "not final after 60 s"
        print(
            f"  innocent CSR {innocent}: {state}, {innocent_seconds:.2f} s create->issued "
            f"(its create call took {created - start:.2f} s)",
            flush=True,
        )
        await observer.wait_final(names, timeout=300)
        await asyncio.sleep(2)
    finally:
        samples = probe.finish()
        own_watch.cancel()
    print(f"  {plan.flood} worst-case CSRs: {observer.tally(names)}", flush=True)
    ok = [s * 1000 for s in samples if s is not None]
    return FloodFigures(
        healthz_p99_ms=percentile(ok, 0.99) if ok else float("inf"),
        healthz_max_ms=max(ok) if ok else float("inf"),
        healthz_failures=sum(1 for s in samples if s is None),
        healthz_samples=len(samples),
        innocent_seconds=innocent_seconds,
        request=pem,
    )


async def worst_relist_phase(
    plan: Plan,
    api: Clients,
    observer: Observer,
    controller: Controller,
    pem: bytes,
    prepared: session.Prepared,
    workdir: Path,
) -> tuple[Memory, Controller]:
    """Optional (--worst-relist N): a restart whose relist holds N Denied worst-case CSRs
    (the flood's and more). Returns the figure and the restarted controller."""
    names = [f"flood-{i:03d}" for i in range(plan.flood, plan.worst_relist)]
    await create_many(api.flood, names, lambda _i: pem)
    await observer.wait_final(names, timeout=300)
    await controller.wait_idle()
    controller.stop()
    restarted = Controller(prepared, workdir / "controller-3.log")
    try:
        await restarted.wait_ready()
        await restarted.wait_idle()
    except BaseException:
        restarted.stop()
        raise
    relisted = max(plan.flood, plan.worst_relist)
    what = f"after a restart relisting {relisted} Denied worst-case CSRs of {mb(pem)}"
    figure = Memory(what, *restarted.memory_mib())
    print(figure.line(), flush=True)
    return figure, restarted


async def events_phase(plan: Plan, api: Clients, controller: Controller) -> tuple[int, int]:
    """4: Pending Events for P human CSRs once decided, and after two more resyncs."""
    pems = [small_pem([f"web{i}.{INNOCENT_NAMESPACE}.svc"]) for i in range(16)]
    names = [f"pending-{i:05d}" for i in range(plan.pending)]
    started = time.monotonic()
    await create_many(api.human, names, lambda i: pems[i % len(pems)])
    print(
        f"  created {plan.pending} pending CSRs in {time.monotonic() - started:.1f} s", flush=True
    )
    deadline = time.monotonic() + max(120.0, plan.pending / 20)
    while (decided := await pending_events(api.admin, "pending-")) < plan.pending:
        if time.monotonic() > deadline:
            print(f"  only {decided} of {plan.pending} had their Pending Event in time")
            break
        await asyncio.sleep(1)
    await controller.wait_idle()
    decided = await pending_events(api.admin, "pending-")
    print(
        f"  {decided} Pending Events once all were decided; waiting for two resyncs "
        f"({2 * RESYNC_SECONDS + 5} s)",
        flush=True,
    )
    await asyncio.sleep(2 * RESYNC_SECONDS + 5)
    await controller.wait_idle()
    controller.check_alive()
    return decided, await pending_events(api.admin, "pending-")


async def main(args: argparse.Namespace) -> int:
    plan = Plan.of(args)
    began = time.monotonic()
    requests = Requests()
    with ControlPlane() as cp:
        prepared = await session.prepare(cp, now=dt.datetime.now(dt.UTC))
        api = await clients(cp)
        observer = Observer()
        watch = observer.watch(api.admin, f"spec.signerName={SIGNER}")
        controller: Controller | None = None
        try:
            print("1. memory", flush=True)
            memory, controller = await memory_phases(
                plan, api, requests, observer, prepared, cp.workdir
            )
            print("2-3. worst-case flood: /healthz, and an innocent CSR", flush=True)
            flood = await flood_phase(plan, api, requests, observer, controller)
            after_flood = Memory("during the worst-case flood", *controller.memory_mib())
            print(after_flood.line(), flush=True)
            print(
                f"  /healthz every {HEALTHZ_INTERVAL * 1000:.0f} ms: {flood.healthz_samples} "
                f"polls, p99 {flood.healthz_p99_ms:.0f} ms, max {flood.healthz_max_ms:.0f} ms, "
                f"{flood.healthz_failures} failed or timed out (> {HEALTHZ_TIMEOUT:.0f} s)",
                flush=True,
            )
            memory.append(after_flood)
            if plan.worst_relist:
                print("2b. restart after the worst case", flush=True)
                worst, controller = await worst_relist_phase(
                    plan, api, observer, controller, flood.request, prepared, cp.workdir
                )
                memory.append(worst)
            print(
                f"4. Pending Events: {plan.pending} pending human CSRs, resync every "
                f"{RESYNC_SECONDS} s (the regression was at 10,500 pending: 10.5k Events "
                "per resync; the figure per resync is what matters)",
                flush=True,
            )
            decided, later = await events_phase(plan, api, controller)
        finally:
            if controller is not None:
                controller.stop()
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
            await api.close()
    per_resync = (later - decided) / 2
    print(
        f"  Pending Events for {plan.pending} CSRs: {decided} once decided, {later} after two "
        f"more resyncs ({per_resync:.0f} per resync)"
    )
    print(f"total {time.monotonic() - began:.0f} s at scale {plan.scale:g}")
    targets = [Target(f"RSS {m.what}", m.rss, HOSTILE_RSS_MIB, "MiB") for m in memory]
    targets += [Target(f"peak RSS {m.what}", m.peak, HOSTILE_RSS_MIB, "MiB") for m in memory]
    targets += [
        Target(
            "/healthz p99 under the worst-case flood", flood.healthz_p99_ms, HEALTHZ_P99_MS, "ms"
        ),
        Target("/healthz polls failed or over 1 s", flood.healthz_failures, HEALTHZ_TIMEOUTS),
        Target(
            "innocent CSR create->issued under the flood",
            flood.innocent_seconds,
            INNOCENT_ISSUE_SECONDS,
            "s",
        ),
        Target(
            f"Pending Events beyond one per CSR ({plan.pending} CSRs)", abs(later - plan.pending), 0
        ),
        Target("Pending Events per resync", per_resync, PENDING_EVENTS_PER_RESYNC),
    ]
    return verdict(targets)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pending", type=int, default=1000, help="pending human CSRs for the Events figure"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="shrink counts and sizes (smoke runs: 0.1)"
    )
    parser.add_argument(
        "--worst-relist",
        type=int,
        default=0,
        metavar="N",
        help="also restart with N Denied worst-case CSRs to relist (off by default; try 50)",
    )
    parser.add_argument("--poll-healthz", metavar="URL", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.poll_healthz:
        poll_healthz(parsed.poll_healthz)
        raise SystemExit(0)
    raise SystemExit(asyncio.run(main(parsed)))
