"""The README's main command, `csr-signer local run`, as a user runs it.

Starts it as a process, follows the instructions it prints (kubectl as the
demo ServiceAccount), sees the CSR approved and issued, then Ctrl-C: it must
exit cleanly and leave no kube-apiserver or etcd behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from csr_signer_dev.controlplane import ControlPlane


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not printed; output so far:\n{''.join(seen)}")


def _children_alive(pid: int) -> list[str]:
    out = subprocess.run(
        ["ps", "-eo", "ppid=,pid=,comm="], capture_output=True, text=True, check=True
    )
    return [
        line
        for line in out.stdout.splitlines()
        if line.split()[0] == str(pid) and line.split()[2] in ("etcd", "kube-apiserver")
    ]


def test_local_run_issues_the_sample_csr_and_stops_cleanly_on_ctrl_c(
    control_plane: ControlPlane,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSR_SIGNER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "signer", "local", "run", "--metrics-address=127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        printed = _read_until(proc, "Ctrl-C stops", timeout=120)
        create = re.search(r"kubectl --kubeconfig (\S+) create -f (\S+approved\.yaml)", printed)
        admin = re.search(r"export KUBECONFIG=(\S+)", printed)
        assert create and admin, printed
        kubectl = str(control_plane.binaries.kubectl)
        made = subprocess.run(
            [kubectl, f"--kubeconfig={create[1]}", "create", "-f", create[2], "-o", "name"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert made.returncode == 0, made.stderr
        name = made.stdout.strip().split("/")[-1]
        deadline = time.monotonic() + 30
        csr: dict[str, object] = {}
        while time.monotonic() < deadline:
            got = subprocess.run(
                [kubectl, f"--kubeconfig={admin[1]}", "get", "csr", name, "-o", "json"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            )
            csr = json.loads(got.stdout)
            if csr.get("status", {}).get("certificate"):  # type: ignore[union-attr]
                break
            time.sleep(0.2)
        conditions = [c["type"] for c in csr["status"]["conditions"]]  # type: ignore[index]
        assert conditions == ["Approved"]
        assert csr["status"]["certificate"]  # type: ignore[index]
        workdir = Path(admin[1]).parents[1]
        assert workdir.exists()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert _children_alive(proc.pid) == []
        assert not workdir.exists(), "the control plane's temporary directory is removed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
