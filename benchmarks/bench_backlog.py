"""A 10,000-CSR pending backlog and a 10,000-CSR burst on top of it (a benchmark).

The RSS figure of `bench_controller.py` is taken after everything was issued, when the
controller's cache (pending CSRs only) is nearly empty. This one holds the cache full:

1. `--pending` CSRs (default 10,000) created by the admin, a user no policy covers, so
   they stay Pending for a human; once the controller has judged every one of them
   (`csr_signer_decisions_total{outcome="abstain"}`), its RSS with the backlog held;
2. then `--burst` CSRs (default 10,000) from a ServiceAccount the policy approves, created
   as fast as `--concurrency` clients can: the time from the first create to the last
   certificate seen by a watch, and the RSS again, the backlog still held;
3. a restart: the time until the relisted backlog is judged again, and the RSS.

    .venv/bin/python benchmarks/bench_backlog.py [--pending 10000] [--burst 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from csr_signer_dev import session
from csr_signer_dev.controlplane import ControlPlane, free_port
from csr_signer_dev.identities import api_client, serviceaccount_credentials
from kubernetes_asyncio import client

from benchmarks.bench_controller import SIGNER, burst, create, csr_pems
from benchmarks.harness import (
    Observer,
    controller_argv,
    controller_env,
    rss_mib,
    stop,
    watch_issued,
)
from benchmarks.targets import BACKLOG_RSS_MB, Target, verdict

_ABSTAIN = re.compile(r'^csr_signer_decisions_total\{[^}]*outcome="abstain"[^}]*\}\s+(\S+)$')


def abstained(port: int) -> float:
    """How many decisions were `abstain` so far, from the controller's /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    return sum(float(m.group(1)) for m in map(_ABSTAIN.match, text.splitlines()) if m)


async def pending_backlog(
    admin: client.ApiClient, count: int, concurrency: int, pems: list[str], port: int
) -> float:
    """Create `count` CSRs as the admin; seconds until the controller judged them all."""
    observer = Observer()  # only its `created` times; these are never issued
    queue = [f"pending-{i:05d}" for i in range(count)]
    start = time.monotonic()

    async def creator() -> None:
        while queue:
            name = queue.pop()
            await create(admin, name, pems[hash(name) % len(pems)], observer)

    await asyncio.gather(*(creator() for _ in range(concurrency)))
    while await asyncio.to_thread(abstained, port) < count:
        if time.monotonic() - start > 900:
            raise TimeoutError("the controller did not judge the whole backlog in 15 minutes")
        await asyncio.sleep(0.5)
    return time.monotonic() - start


def start(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, env=controller_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def main(args: argparse.Namespace) -> int:
    with ControlPlane() as cp:
        prepared = await session.prepare(cp, now=dt.datetime.now(dt.UTC))
        admin = await api_client(cp)
        admin.configuration.connection_pool_maxsize = args.concurrency * 2
        creds = await serviceaccount_credentials(admin, session.DEMO_NAMESPACE, "app")
        api = await api_client(cp, creds)
        api.configuration.connection_pool_maxsize = args.concurrency * 2
        observer, watch = watch_issued(admin, SIGNER)
        pems = csr_pems(64)
        port = free_port()
        argv = controller_argv(
            prepared,
            SIGNER,
            port=port,
            extra=(f"--workers={args.workers}", "--log-level=WARNING"),
        )
        proc = start(argv)
        try:
            await asyncio.sleep(3)
            judged = await pending_backlog(admin, args.pending, args.concurrency, pems, port)
            await asyncio.sleep(2)
            held, peak = rss_mib(proc.pid)
            print(
                f"{args.pending} pending CSRs created and judged in {judged:.0f}s; "
                f"RSS with them held: {held:.0f} MB (peak {peak:.0f})",
                flush=True,
            )
            rate = await burst(api, "burst", args.burst, args.concurrency, pems, observer)
            after, peak = rss_mib(proc.pid)
            print(
                f"{args.burst}-CSR burst on top: drained in {args.burst / rate:.0f}s "
                f"({rate:.0f} CSRs/s created-to-issued); RSS after: {after:.0f} MB "
                f"(peak {peak:.0f}), the backlog still held",
                flush=True,
            )
        finally:
            stop(proc)
        # 3. A restart: the relist brings the whole backlog back, and every CSR in it is
        # decided again (no new Pending Event: their names derive from the UIDs).
        proc = start(argv)
        try:
            started = time.monotonic()
            while await asyncio.to_thread(abstained, port) < args.pending:
                if time.monotonic() - started > 900:
                    raise TimeoutError("the restarted controller did not judge the backlog")
                await asyncio.sleep(0.5)
            await asyncio.sleep(2)
            restarted, peak = rss_mib(proc.pid)
            print(
                f"restart: the backlog relisted and judged in {time.monotonic() - started:.0f}s; "
                f"RSS {restarted:.0f} MB (peak {peak:.0f})",
                flush=True,
            )
        finally:
            stop(proc)
            watch.cancel()
            await api.close()
            await admin.close()
    return verdict(
        [
            Target(f"RSS with {args.pending} CSRs pending", held, BACKLOG_RSS_MB, "MB"),
            Target(
                f"RSS after a {args.burst}-CSR burst, backlog held", after, BACKLOG_RSS_MB, "MB"
            ),
            Target("RSS after a restart that relists the backlog", restarted, BACKLOG_RSS_MB, "MB"),
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, default=10000)
    parser.add_argument("--burst", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="0: adaptive (the default)")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
