"""`csr-signer local ...`: the local control plane for development.

`local up` starts a real kube-apiserver + etcd on loopback (building the
binaries on first use), prints an admin kubeconfig, and runs until Ctrl-C or
SIGTERM, then stops everything it started. `local build` only fills the cache.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from signer.cli_flags import add_arguments
from signer.commands import CliError
from signer.config import ConfigError, load_settings
from signer.local import binaries
from signer.local.controlplane import ControlPlane, ControlPlaneError
from signer.logs import configure_logging


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    local = sub.add_parser("local", help="a real local control plane for development and tests")
    group = local.add_subparsers(dest="local_command", required=True, metavar="COMMAND")
    up = group.add_parser("up", help="start kube-apiserver + etcd on loopback until interrupted")
    up.add_argument("--kubeconfig-out", type=Path, help="also write the admin kubeconfig here")
    up.set_defaults(func=cmd_up)
    build = group.add_parser("build", help="build (or find) the pinned control-plane binaries")
    build.set_defaults(func=cmd_build)
    run = group.add_parser(
        "run",
        help="control plane + CA Secret + RBAC + the controller, with a demo; until Ctrl-C",
    )
    add_arguments(run)
    run.set_defaults(func=cmd_run)


def cmd_build(_args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        found = binaries.resolve()
    except binaries.BinariesError as exc:
        raise CliError(str(exc)) from exc
    print(f"kube-apiserver: {found.kube_apiserver}")
    print(f"etcd:           {found.etcd}")
    print(f"kubectl:        {found.kubectl}")
    print(f"cache size:     {binaries.cache_size_bytes() / 1e6:.0f} MB")
    print(f"took:           {time.monotonic() - started:.1f}s")
    return 0


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop.wait(1.0):
        pass


def start_control_plane() -> ControlPlane:
    try:
        cp = ControlPlane(binaries.resolve())
        cp.start()
    except (binaries.BinariesError, ControlPlaneError) as exc:
        raise CliError(str(exc).splitlines()[0]) from exc
    return cp


def cmd_up(args: argparse.Namespace) -> int:
    cp = start_control_plane()
    try:
        kubeconfig = cp.kubeconfig(path=args.kubeconfig_out)
        print(f"control plane ready in {cp.started_seconds:.1f}s at {cp.url}")
        print(f"kubeconfig: {kubeconfig}")
        print(f"  export KUBECONFIG={kubeconfig}")
        print(f"  {cp.binaries.kubectl} get csr")
        print("Ctrl-C to stop.", flush=True)
        sys.stdout.flush()
        wait_for_signal()
    finally:
        cp.stop()
    print("stopped.")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """The README's main-job command: everything local, until Ctrl-C."""
    import asyncio
    import datetime as dt

    from signer.app import run_app
    from signer.local import session

    cp = start_control_plane()
    try:
        prepared = asyncio.run(session.prepare(cp, now=dt.datetime.now(dt.UTC)))
        args.kubeconfig = prepared.controller_kubeconfig
        args.ca_secret = f"{session.NAMESPACE}/{session.CA_SECRET}"
        if args.metrics_address is None:
            args.metrics_address = "127.0.0.1:8080"
        try:
            settings = load_settings(args)
        except ConfigError as exc:
            raise CliError(str(exc)) from exc
        configure_logging(settings)
        print(session.instructions(cp, prepared, settings.metrics_address), flush=True)
        return asyncio.run(run_app(settings))
    finally:
        cp.stop()
