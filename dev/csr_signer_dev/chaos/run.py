"""`csr-signer local chaos`: the whole run, from the printed schedule to the last line.

1. print the seed, the replay command and the schedule;
2. start the control plane, toxiproxy, install, start two replicas and the load;
3. inject the faults one by one (each undone before the gap and the next);
4. stop the load, wait until every request that must be decided is, audit the
   apiserver's records (`audit.audit`), print the figures and, last,
   ``chaos: F faults injected, N requests, L lost, D double-issued, O out-of-policy``.

The exit status is 0 exactly when L, D and O are all 0.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from csr_signer_dev import binaries, settings
from csr_signer_dev.chaos import audit as auditing
from csr_signer_dev.chaos.cluster import (
    LEASE_DURATION,
    RENEW_DEADLINE,
    RETRY_PERIOD,
    Cluster,
    copy_logs,
    install,
)
from csr_signer_dev.chaos.faults import Injected, Injector, retrying, wait_for
from csr_signer_dev.chaos.load import Load, make_requesters
from csr_signer_dev.chaos.requests import PREFIX, parse_name
from csr_signer_dev.chaos.schedule import Fault, make_schedule, replay_command
from csr_signer_dev.chaos.toxiproxy import Toxiproxy, resolve_toxiproxy
from csr_signer_dev.controlplane import ControlPlane
from csr_signer_dev.identities import api_client

GRACE = 45.0
"""Seconds an old CA or policy may still be used after its replacement (see audit)."""
DRAIN_TIMEOUT = 180.0
UNDECIDED_KINDS = frozenset({"human", "foreign"})
"""Kinds nothing may decide: not waited for when draining."""


@dataclass(frozen=True)
class Options:
    seed: int
    faults: int
    rate: float = 4.0
    requesters: int = 8
    gap: tuple[float, float] = (4.0, 10.0)
    max_stall: float = 30.0
    logs: Path | None = None
    only: frozenset[str] | None = None
    log_level: str = "INFO"
    """The replicas' --log-level (DEBUG to chase a finding)."""


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(options: Options) -> int:
    return asyncio.run(_run(options))


async def _run(options: Options) -> int:
    schedule = make_schedule(
        options.seed,
        options.faults,
        gap=options.gap,
        max_stall=options.max_stall,
        only=options.only,
    )
    replay = replay_command(options.seed, options.faults, options.only)
    print(f"chaos: seed {options.seed}, {options.faults} faults", flush=True)
    print(f"chaos: replay with `{replay}`", flush=True)
    for fault in schedule:
        print(f"  {fault.describe()}")
    dev = settings.from_environment()
    found, toxiproxy_binary = await asyncio.gather(
        asyncio.to_thread(binaries.resolve, dev), asyncio.to_thread(resolve_toxiproxy, dev)
    )
    workdir = Path(tempfile.mkdtemp(prefix=f"csr-signer-chaos-{options.seed}-"))
    cp = ControlPlane(found)
    await asyncio.to_thread(cp.start)
    toxi = Toxiproxy(toxiproxy_binary, workdir / "toxiproxy.log")
    admin = await api_client(cp)
    cluster: Cluster | None = None
    try:
        cluster = await install(cp, admin, toxi, workdir, log_level=options.log_level)
        return await _with_cluster(options, schedule, cluster, admin)
    finally:
        if cluster is not None:
            cluster.stop()
            copy_logs(cluster, options.logs or workdir / "logs")
            say(f"logs: {options.logs or workdir / 'logs'}")
        else:
            toxi.stop()
        await admin.close()
        await asyncio.to_thread(cp.stop)


async def _with_cluster(
    options: Options, schedule: list[Fault], cluster: Cluster, admin: client.ApiClient
) -> int:
    started = time.monotonic()
    for replica in cluster.replicas:
        replica.start()
    requesters = await make_requesters(cluster.cp, admin, options.requesters)
    mix = random.Random(options.seed)  # noqa: S311 - a load mix, not a secret
    load = Load(cluster.cp, admin, requesters, mix, options.rate)
    if await wait_for(lambda: cluster.leader() is not None, 90) is None:
        raise RuntimeError("no replica became leader within 90 s")
    stop = asyncio.Event()
    crashes: list[str] = []
    issued: list[float] = []
    loading = asyncio.create_task(load.run(stop))
    monitoring = asyncio.create_task(_monitor(cluster, crashes, issued))
    injector = Injector(cluster, load, admin)
    injected: list[Injected] = []
    try:
        say(
            f"ready in {time.monotonic() - started:.0f}s; load {options.rate}/s from "
            f"{options.requesters} requesters"
        )
        await asyncio.sleep(5)
        for fault in schedule:
            record = await injector.inject(fault)
            injected.append(record)
            extra = "; ".join(record.notes + [f"PROBLEM {p}" for p in record.problems])
            failover = f" failover {record.failover:.1f}s" if record.failover is not None else ""
            say(
                f"{fault.describe()} done in {record.ended - record.started:.1f}s{failover}"
                f"{' (' + extra + ')' if extra else ''}"
            )
            await asyncio.sleep(fault.gap)
    finally:
        stop.set()
        await asyncio.gather(loading, return_exceptions=True)
    say(
        f"load stopped: created {sum(load.created.values())}, refused by the apiserver "
        f"{sum(load.rejected.values())} {dict(load.rejected)}, create retries {load.retries}"
    )
    drained = await _drain(admin)
    say(f"drained in {drained:.0f}s" if drained >= 0 else "PROBLEM not drained in time")
    rss_end = {r.identity: r.rss_kib() for r in cluster.replicas}
    monitoring.cancel()
    await asyncio.gather(monitoring, return_exceptions=True)
    csrs, pcrs, events = await _records(admin)
    result = auditing.audit(
        csrs,
        pcrs,
        events,
        ca=cluster.ca_history,
        policy=cluster.policy_history,
        grace=GRACE,
    )
    for requester in requesters:
        await requester.serviceaccount.close()
        await requester.kubelet.close()
    _report(result, injected, cluster, crashes, rss_end, issued)
    lost, double, oop = (
        result.count(auditing.LOST),
        result.count(auditing.DOUBLE),
        result.count(auditing.OUT_OF_POLICY),
    )
    say(f"total {time.monotonic() - started:.0f}s")
    print(
        f"chaos: {len(injected)} faults injected, {result.requests} requests, "
        f"{lost} lost, {double} double-issued, {oop} out-of-policy",
        flush=True,
    )
    return 1 if lost or double or oop else 0


async def _monitor(cluster: Cluster, crashes: list[str], issued: list[float]) -> None:
    """Every 0.5 s: note when a replica's `csr_signer_certificates_issued_total` grew (the
    certificate was written), sample RSS, and restart a replica that exited on its own (a
    crash, or LeadershipLost) saying why. Replicas the harness signalled are restarted by
    their fault."""
    counted: dict[tuple[str, int], float] = {}
    while True:
        for replica in cluster.replicas:
            replica.rss_kib()
            metrics = await asyncio.to_thread(replica.metrics)
            total = metrics.get("csr_signer_certificates_issued_total")
            if total is not None:
                key = (replica.identity, replica.starts)
                if total > counted.get(key, 0.0):
                    issued.append(time.time())
                counted[key] = total
            if replica.proc is not None and not replica.alive() and not replica.expected_exit:
                tail = replica.log_tail(5)
                why = "lost lease" if "lost lease" in tail else "crash"
                crashes.append(f"{replica.identity} exited {replica.proc.returncode} ({why})")
                say(f"{replica.identity} exited {replica.proc.returncode} ({why}); restarting")
                if why == "crash":
                    print(tail, flush=True)
                replica.start()
        await asyncio.sleep(0.5)


def _open(raw: dict[str, Any], pcr: bool) -> bool:
    named = parse_name(raw["metadata"]["name"])
    if named is None or named.kind in UNDECIDED_KINDS:
        return False
    status = raw.get("status") or {}
    types = {c.get("type") for c in status.get("conditions") or []}
    if pcr:
        return not types
    return not status.get("certificate") and not types & {"Denied", "Failed"}


async def _drain(admin: client.ApiClient) -> float:
    """Seconds until no load request awaits a decision or a certificate; -1 on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_TIMEOUT:
        csrs, pcrs, _ = await _records(admin, events=False)
        if not any(_open(c, False) for c in csrs) and not any(_open(p, True) for p in pcrs):
            return time.monotonic() - started
        await asyncio.sleep(2)
    return -1.0


async def _list(call: Any) -> list[dict[str, Any]]:
    """Every item of a paginated list call (raw JSON), retried through hiccups."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": 500, "_preload_content": False}
        if token:
            kwargs["_continue"] = token

        async def page(kw: dict[str, Any] = kwargs) -> dict[str, Any]:
            response = await call(**kw)
            try:
                data: dict[str, Any] = json.loads(await response.read())
            finally:
                response.release()
            return data

        data = await retrying(page)
        items += data.get("items") or []
        token = (data.get("metadata") or {}).get("continue")
        if not token:
            return items


async def _records(
    admin: client.ApiClient, *, events: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    certs = client.CertificatesV1Api(admin)
    csrs = [
        c
        for c in await _list(certs.list_certificate_signing_request)
        if c["metadata"]["name"].startswith(PREFIX + "-")
    ]
    beta = client.CertificatesV1beta1Api(admin)
    pcrs = await _list(beta.list_pod_certificate_request_for_all_namespaces)
    listed: list[dict[str, Any]] = []
    if events:
        core = client.CoreV1Api(admin)
        listed = await _list(lambda **kw: core.list_namespaced_event("default", **kw))
    return csrs, pcrs, listed


def _report(  # noqa: PLR0917 - the figures of one run, printed once
    result: auditing.AuditResult,
    injected: list[Injected],
    cluster: Cluster,
    crashes: list[str],
    rss_end: dict[str, int],
    issued: list[float],
) -> None:
    recovery: dict[str, list[float]] = defaultdict(list)
    after_undo: dict[str, list[float]] = defaultdict(list)
    unrecovered: Counter[str] = Counter()
    for record in injected:
        kind = record.fault.kind
        at = bisect.bisect_left(issued, record.started)
        undone = bisect.bisect_left(issued, record.ended)
        if undone < len(issued):
            recovery[kind].append(issued[at] - record.started)
            after_undo[kind].append(issued[undone] - record.ended)
        else:
            unrecovered[kind] += 1
    kinds = Counter(r.fault.kind for r in injected)
    print(
        "\nnext certificate written (seen in the replicas' metrics), seconds after the fault"
        " was injected | after it was undone"
    )
    print("  fault kind          count   injected p50    max |  undone p50    max")
    for kind in sorted(kinds):
        columns = "".join(
            f"{statistics.median(times):11.1f} {max(times):6.1f}" if times else f"{'-':>18}"
            for times in (recovery.get(kind, []), after_undo.get(kind, []))
        )
        never = f"  ({unrecovered[kind]} with no issuance after)" if unrecovered[kind] else ""
        print(f"  {kind:18} {kinds[kind]:5}  {columns[:18]} | {columns[18:]}{never}")
    for kind in ("kill-leader", "term-leader"):
        failovers = [r.failover for r in injected if r.fault.kind == kind and r.failover]
        if failovers:
            print(
                f"leader failover after {kind} ({len(failovers)}): "
                f"p50 {percentile(failovers, 0.5):.1f}s p99 {percentile(failovers, 0.99):.1f}s "
                f"max {max(failovers):.1f}s (lease {LEASE_DURATION}s, renew deadline "
                f"{RENEW_DEADLINE}s, retry {RETRY_PERIOD}s)"
            )
    for replica in cluster.replicas:
        print(
            f"RSS {replica.identity}: peak {replica.rss_peak_kib / 1024:.0f} MiB, "
            f"at the end {rss_end.get(replica.identity, 0) / 1024:.0f} MiB, "
            f"{replica.starts} starts"
        )
    outcomes = ", ".join(f"{k}:{o}={n}" for (k, o), n in sorted(result.outcomes.items()))
    print(f"outcomes: {outcomes}")
    print(f"controller exits not caused by a fault: {len(crashes)} {Counter(crashes)}")
    problems = [f"#{r.fault.index:02d} {r.fault.kind}: {p}" for r in injected for p in r.problems]
    for problem in problems:
        print(f"PROBLEM {problem}")
    if result.missing_events:
        print(
            f"issued without an Issued Event: {len(result.missing_events)} "
            f"(e.g. {result.missing_events[:3]})"
        )
    for finding in result.findings[:30]:
        print(f"{finding.category}: {finding.name}: {finding.detail}")
    if len(result.findings) > 30:
        print(f"... and {len(result.findings) - 30} more findings")
    sys.stdout.flush()
