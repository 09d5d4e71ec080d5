"""What the end-to-end benchmarks share: how the controller is started, and its memory.

Every benchmark runs `csr-signer run` as a subprocess against the local control plane that
`csr_signer_dev.session.prepare` sets up, with the environment cleaned of CSR_SIGNER_*
variables so that a developer's shell cannot change what is measured.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from csr_signer_dev import session


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
