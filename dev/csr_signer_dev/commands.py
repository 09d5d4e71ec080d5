"""`csr-signer local ...`: the development harness on the command line.

Registered as the `local` group of the `csr_signer.commands` entry point (see
dev/pyproject.toml), so `signer.cli` offers it only where this package is
installed: in a source checkout after `make install`, never in the image.

- `local up` starts a real kube-apiserver + etcd on loopback (building the
  binaries on first use), prints an admin kubeconfig, and runs until Ctrl-C or
  SIGTERM, then stops everything it started;
- `local run` adds a CA Secret per signer name, RBAC, a demo and the controller itself;
- `local build` only fills the cache with kube-apiserver, etcd and kubectl;
- `local helm build` does the same for the pinned helm, and
  `local helm manifests [--write]` renders deploy/manifests.yaml with it;
  `--write` first copies policies/*.yaml into the chart (its files/policies/);
- `local image build` builds the Dockerfile with buildah on the stand-in base,
  smoke-runs it and exports an OCI archive (`make image`); `local image lock`
  regenerates the hash-pinned requirements/*.txt it installs from (`make lock`).

The environment is read once per command (`settings.from_environment()`) and
passed down from here.
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
from signer.logs import configure_logging

from csr_signer_dev import (
    binaries,
    gobuild,
    helm,
    image,
    node,
    nodebinaries,
    pylock,
    settings,
)
from csr_signer_dev.controlplane import ControlPlane, ControlPlaneError


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """The `csr_signer.commands` entry point: add `local` and its subcommands."""
    local = sub.add_parser(
        "local", help="development harness: a real local control plane, pinned tool builds"
    )
    group = local.add_subparsers(dest="local_command", required=True, metavar="COMMAND")
    up = group.add_parser("up", help="start kube-apiserver + etcd on loopback until interrupted")
    up.add_argument("--kubeconfig-out", type=Path, help="also write the admin kubeconfig here")
    up.add_argument(
        "--node",
        action="store_true",
        help="also a real node (root): containerd, kubelet, kube-proxy, scheduler, "
        "controller-manager, with the image (`make image`) imported",
    )
    up.set_defaults(func=cmd_up)
    build = group.add_parser("build", help="build (or find) the pinned control-plane binaries")
    build.add_argument(
        "--node",
        action="store_true",
        help="also a node's: kubelet, kube-scheduler, kube-controller-manager, kube-proxy, pause",
    )
    build.set_defaults(func=cmd_build)
    run = group.add_parser(
        "run",
        help="control plane + CA Secrets + RBAC + the controller, with a demo; until Ctrl-C",
    )
    add_arguments(run)
    run.set_defaults(func=cmd_run)

    chaos = group.add_parser(
        "chaos",
        help="faults from a seeded schedule against two replicas under load; audit at the end",
    )
    chaos.add_argument("--seed", type=int, help="schedule seed (default: random, printed)")
    chaos.add_argument("--faults", type=int, default=50, help="faults to inject (default 50)")
    chaos.add_argument("--rate", type=float, default=4.0, help="requests per second (default 4)")
    chaos.add_argument("--requesters", type=int, default=8, help="requesters (default 8)")
    chaos.add_argument(
        "--max-stall", type=float, default=30.0, help="longest apiserver SIGSTOP, s (default 30)"
    )
    chaos.add_argument("--logs", type=Path, help="copy the processes' logs here at the end")
    chaos.add_argument(
        "--controller-log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING"),
        help="the replicas' --log-level (default INFO)",
    )
    chaos.add_argument(
        "--only",
        help="comma-separated fault kinds to draw from (default: all; docs/chaos.md)",
    )
    chaos.set_defaults(func=cmd_chaos)

    helm_parser = group.add_parser("helm", help="the pinned helm and what the repo renders with it")
    helm_group = helm_parser.add_subparsers(dest="helm_command", required=True, metavar="COMMAND")
    helm_build = helm_group.add_parser(
        "build", help=f"build (or find) helm {helm.HELM_VERSION}; print its path"
    )
    helm_build.set_defaults(func=cmd_helm_build)
    manifests = helm_group.add_parser(
        "manifests",
        help="render deploy/manifests.yaml from deploy/chart/csr-signer "
        "(--write: also copy policies/*.yaml into the chart first)",
    )
    manifests.add_argument(
        "--repo",
        type=Path,
        default=settings.CHECKOUT,
        help="repository root (default: the checkout this package is installed from)",
    )
    manifests.add_argument(
        "--write",
        action="store_true",
        help="copy policies/*.yaml to the chart's files/policies/, then write the file "
        "instead of printing it",
    )
    manifests.set_defaults(func=cmd_helm_manifests)

    image_parser = group.add_parser(
        "image", help="the controller image: built with buildah from the unchanged Dockerfile"
    )
    image_group = image_parser.add_subparsers(
        dest="image_command", required=True, metavar="COMMAND"
    )
    image_build = image_group.add_parser(
        "build",
        help="install the tools (Debian packages), build the Dockerfile on the stand-in base, "
        "smoke-run the image read-only as UID 65532 with no network, export an OCI archive",
    )
    image_build.add_argument(
        "--repo", type=Path, default=settings.CHECKOUT, help="repository root (its Dockerfile)"
    )
    image_build.add_argument(
        "--archive",
        type=Path,
        help="OCI archive to write (default: build/csr-signer-<tag>.oci.tar)",
    )
    image_build.set_defaults(func=cmd_image_build)
    image_lock = image_group.add_parser(
        "lock",
        help=f"regenerate {pylock.RUNTIME_LOCK} and {pylock.BUILD_LOCK} "
        f"(pip-compile --generate-hashes, pip-tools {pylock.PIP_TOOLS_VERSION})",
    )
    image_lock.add_argument("--repo", type=Path, default=settings.CHECKOUT, help="repository root")
    image_lock.set_defaults(func=cmd_image_lock)


def cmd_build(args: argparse.Namespace) -> int:
    dev = settings.from_environment()
    started = time.monotonic()
    try:
        found = binaries.resolve(dev)
        node = nodebinaries.resolve(dev) if args.node else None
    except gobuild.BuildError as exc:
        raise CliError(str(exc)) from exc
    print(f"kube-apiserver: {found.kube_apiserver}")
    print(f"etcd:           {found.etcd}")
    print(f"kubectl:        {found.kubectl}")
    print(f"cache size:     {gobuild.size_bytes(binaries.cache_entry(dev)) / 1e6:.0f} MB")
    if node is not None:
        print(f"node binaries:  {node} ({', '.join(nodebinaries.NAMES)})")
        print(f"node size:      {gobuild.size_bytes(node) / 1e6:.0f} MB")
    print(f"took:           {time.monotonic() - started:.1f}s")
    return 0


def cmd_helm_build(_args: argparse.Namespace) -> int:
    try:
        print(helm.resolve_helm(settings.from_environment()))
    except gobuild.BuildError as exc:
        raise CliError(str(exc)) from exc
    return 0


def cmd_helm_manifests(args: argparse.Namespace) -> int:
    """Render deploy/manifests.yaml; with --write, sync the chart's policies first.

    The policies are copied before rendering because the manifests' ConfigMap
    is made from the chart's copy. Without --write nothing is written, so the
    output reflects the chart as it is.
    """
    try:
        if args.write:
            for name in helm.sync_chart_policies(args.repo):
                print(f"updated {helm.CHART_POLICIES / name}", file=sys.stderr)
        binary = helm.resolve_helm(settings.from_environment())
        text = helm.render_manifests(
            args.repo / "deploy" / "chart" / "csr-signer", helm_binary=binary
        )
    except (gobuild.BuildError, helm.HelmError, OSError) as exc:
        raise CliError(str(exc)) from exc
    if args.write:
        (args.repo / "deploy" / "manifests.yaml").write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_image_build(args: argparse.Namespace) -> int:
    """`make image`: build, smoke-run, export; print size, layers and timings."""
    dev = settings.from_environment()
    engine = image.Engine.for_settings(dev)
    try:
        built = image.build(engine, dev, repo=args.repo)
        smoke_started = time.monotonic()
        passed = image.smoke(engine, built.name)
        smoke_seconds = time.monotonic() - smoke_started
        archive = image.export_oci(
            engine, built.name, args.archive or image.default_archive(args.repo)
        )
    except gobuild.BuildError as exc:
        raise CliError(str(exc)) from exc
    print(f"image:      {built.name} ({built.image_id[:12]})")
    print(
        f"size:       {built.size / 1e6:.1f} MB (stand-in base {built.base}: {built.base_size / 1e6:.1f} MB)"
    )
    print("layers:")
    for layer in built.layers:
        print(f"  {layer.size / 1e6:8.1f} MB  {layer.created_by[:90]}")
    print(f"smoke:      {'; '.join(passed)} ({smoke_seconds:.1f}s)")
    print(f"archive:    {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    print(f"build took: {built.seconds:.1f}s")
    print(f"podman:     {' '.join(engine.podman_argv())}")
    return 0


def cmd_image_lock(args: argparse.Namespace) -> int:
    try:
        for path in pylock.lock(repo=args.repo):
            print(path)
    except gobuild.BuildError as exc:
        raise CliError(str(exc)) from exc
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


def start_control_plane(*, node_ip: str | None = None) -> ControlPlane:
    try:
        cp = ControlPlane(binaries.resolve(settings.from_environment()), node_ip=node_ip)
        cp.start()
    except (gobuild.BuildError, ControlPlaneError) as exc:
        raise CliError(str(exc).splitlines()[0]) from exc
    return cp


def start_node(cp: ControlPlane) -> node.Node:
    """A node for `cp` with the controller image imported (built first if needed)."""
    dev = settings.from_environment()
    try:
        node.ensure_node_packages()
        engine = image.Engine.for_settings(dev)
        built = image.build(engine, dev)
        running = node.Node(cp, nodebinaries.resolve(dev), engine, (built.name,))
        running.start()
    except (gobuild.BuildError, ControlPlaneError) as exc:
        raise CliError(str(exc)) from exc
    return running


def cmd_up(args: argparse.Namespace) -> int:
    cp = start_control_plane(node_ip=node.node_ip() if args.node else None)
    running: node.Node | None = None
    try:
        if args.node:
            running = start_node(cp)
            print(f"node {running.name} Ready in {running.ready_seconds:.1f}s ({running.workdir})")
        kubeconfig = cp.kubeconfig(path=args.kubeconfig_out)
        print(f"control plane ready in {cp.started_seconds:.1f}s at {cp.url}")
        print(f"kubeconfig: {kubeconfig}")
        print(f"  export KUBECONFIG={kubeconfig}")
        print(f"  {cp.binaries.kubectl} get csr")
        print("Ctrl-C to stop.", flush=True)
        sys.stdout.flush()
        wait_for_signal()
    finally:
        if running is not None:
            running.stop()
        cp.stop()
    print("stopped.")
    return 0


def cmd_chaos(args: argparse.Namespace) -> int:
    """The fault suite (docs/chaos.md); exit 0 only with nothing lost, doubled or out of policy."""
    import secrets

    from csr_signer_dev.chaos import run, schedule

    if args.faults < 0 or args.rate <= 0 or args.requesters < 2:
        raise CliError("--faults must be >= 0, --rate > 0 and --requesters >= 2")
    seed = args.seed if args.seed is not None else secrets.randbelow(10**6)
    only = frozenset(k.strip() for k in args.only.split(",")) if args.only else None
    unknown = sorted((only or frozenset()) - schedule.KINDS.keys())
    if unknown:
        raise CliError(f"--only: unknown fault kinds {unknown}; known: {sorted(schedule.KINDS)}")
    options = run.Options(
        only=only,
        log_level=args.controller_log_level,
        seed=seed,
        faults=args.faults,
        rate=args.rate,
        requesters=args.requesters,
        max_stall=args.max_stall,
        logs=args.logs,
    )
    try:
        return run.run(options)
    except (gobuild.BuildError, ControlPlaneError) as exc:
        raise CliError(str(exc).splitlines()[0]) from exc


def cmd_run(args: argparse.Namespace) -> int:
    """The README's main-job command: everything local, until Ctrl-C."""
    import asyncio
    import datetime as dt

    from signer.app import run_app

    from csr_signer_dev import session

    cp = start_control_plane()
    try:
        prepared = asyncio.run(session.prepare(cp, now=dt.datetime.now(dt.UTC)))
        args.kubeconfig = prepared.controller_kubeconfig
        args.ca_secret = f"{session.NAMESPACE}/{session.CA_SECRET}"
        if args.metrics_address is None:
            args.metrics_address = "127.0.0.1:8080"
        try:
            config = load_settings(args)
            if not config.signer_cas:
                # A CA per signer name, as deploy/rbac.yaml expects, unless the user
                # configured --signer-ca (or CSR_SIGNER_SIGNER_CAS) already.
                args.signer_cas = session.signer_cas(config.signer_names) or None
                config = load_settings(args)
        except ConfigError as exc:
            raise CliError(str(exc)) from exc
        configure_logging(config)
        print(session.instructions(cp, prepared, config.metrics_address), flush=True)
        return asyncio.run(run_app(config))
    finally:
        cp.stop()
