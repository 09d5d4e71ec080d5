"""What the end-to-end benchmarks share: how the controller is started, and its memory.

Every benchmark runs `csr-signer run` as a subprocess against the local control plane that
`csr_signer_dev.session.prepare` sets up, with the environment cleaned of CSR_SIGNER_*
variables so that a developer's shell cannot change what is measured.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from csr_signer_dev import session
from kubernetes_asyncio import client

from signer.kube.watching import Handlers, list_and_watch


def controller_argv(
    prepared: session.Prepared, signer: str, *, port: int, extra: Sequence[str] = ()
) -> list[str]:
    """`python -m signer run` for one signer, without leader election."""
    return [
        sys.executable,
        "-m",
        "signer",
        "run",
        f"--kubeconfig={prepared.controller_kubeconfig}",
        f"--ca-secret={session.NAMESPACE}/{session.CA_SECRET}",
        f"--signer-name={signer}",
        f"--metrics-address=127.0.0.1:{port}",
        "--no-leader-elect",
        *extra,
    ]


def controller_env() -> dict[str, str]:
    """This process's environment without CSR_SIGNER_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CSR_SIGNER_")}


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MiB: resident now, and the peak so far."""
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


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


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def watch_issued(
    admin: client.ApiClient, signer: str | None = None
) -> tuple[Observer, asyncio.Task[None]]:
    """An Observer fed by a watch on CSRs (of `signer`, or all), and the watch's task."""
    observer = Observer()
    selectors = {"field_selector": f"spec.signerName={signer}"} if signer else {}
    task = asyncio.create_task(
        list_and_watch(
            client.CertificatesV1Api(admin).list_certificate_signing_request,
            observer.handlers(),
            **selectors,
        )
    )
    return observer, task
