"""A pinned `helm` binary for the chart tests, built from the Go module proxy.

Why build rather than download a release tarball: this machine (and CI) may
reach package registries only, and the Go module proxy is one; it is also how
`signer.local.binaries` gets kube-apiserver, etcd and kubectl, so one Go
toolchain is the only prerequisite for the whole local harness.

The binary lands in ``$XDG_CACHE_HOME/csr-signer/bin/helm-<version>/helm``,
published with one ``rename()`` of a scratch directory after it has answered
``helm version`` with the pinned version, under a file lock, exactly like the
control-plane binaries: an interrupted build never leaves an entry that looks
finished, and two concurrent test sessions build it once.

The build module requires only ``helm.sh/helm/v3`` at the pinned version, so
minimal version selection picks exactly the dependency versions Helm's own
go.mod pins. The linker flags are those of Helm's Makefile: the version string,
and the Kubernetes version Helm assumes for ``.Capabilities.KubeVersion`` and
for its deprecation lint, derived from the client-go it was built with.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from signer.local.binaries import (
    BinariesError,
    _locked,
    _run,
    _say,
    _write_module,
    cache_root,
    find_go,
)

HELM_VERSION = "v3.22.0"
"""helm.sh/helm/v3 release; the newest v3 on the module proxy when pinned."""
HELM_MODULE = "helm.sh/helm/v3"
HELM_CACHE_KEY = f"helm-{HELM_VERSION}"

MANIFESTS_RELEASE = "csr-signer"
MANIFESTS_NAMESPACE = "csr-signer"
MANIFESTS_HEADER = f"""\
# csr-signer for `kubectl apply -f` users: namespace {MANIFESTS_NAMESPACE}, release name
# {MANIFESTS_RELEASE}, the chart deploy/chart/csr-signer with its default values.
# GENERATED - do not edit. Regenerate with:
#   .venv/bin/python -m signer.local.helm manifests --write
# tests/packaging/test_chart_render.py fails while this file is out of date.
#
# Before applying, create the CA Secret and the trust-bundle namespace:
#   csr-signer ca init --common-name "csr-signer CA" \\
#     --secret csr-signer-ca --namespace {MANIFESTS_NAMESPACE} | kubectl apply -f -
#   kubectl create namespace knative-serving   # if Knative is not installed yet
# See docs/install.md.
"""

_CLIENT_GO = re.compile(r"^\s*k8s\.io/client-go\s+v0\.(\d+)\.\d+", re.MULTILINE)
_GO_DIRECTIVE = re.compile(r"^go\s+(\S+)", re.MULTILINE)


def helm_path() -> Path:
    """Where the pinned helm lives once built (it may not exist yet)."""
    return cache_root() / HELM_CACHE_KEY / "helm"


def resolve_helm(*, build: bool = True, log: bool = True) -> Path:
    """The pinned helm binary, building it into the cache on first use."""
    path = helm_path()
    if _answers_version(path):
        return path
    if not build:
        raise BinariesError(f"no helm in {path.parent}; build it with resolve_helm()")
    build_helm(log=log)
    if not _answers_version(path):  # pragma: no cover - build_helm guarantees it
        raise BinariesError(f"helm build finished but {path} does not run")
    return path


def build_helm(*, log: bool = True) -> Path:
    """Build helm into a scratch directory and publish it with one rename."""
    root = cache_root()
    entry = root / HELM_CACHE_KEY
    with _locked(root / f".{HELM_CACHE_KEY}.lock"):
        if _answers_version(entry / "helm"):
            return entry  # another process finished it while we waited
        go = find_go()
        if go is None:
            raise BinariesError(
                "no Go toolchain on PATH to build helm; install Go >= 1.26 "
                f"(helm {HELM_VERSION} is built from the Go module proxy)"
            )
        scratch = Path(tempfile.mkdtemp(prefix=f".{HELM_CACHE_KEY}.", dir=root))
        try:
            started = time.monotonic()
            out = scratch / "bin"
            out.mkdir()
            kube_minor = _build(go, scratch / "module", out / "helm", log=log)
            if not _answers_version(out / "helm"):
                raise BinariesError(f"the helm just built does not report {HELM_VERSION}")
            seconds = round(time.monotonic() - started, 1)
            (out / "BUILD_INFO.json").write_text(
                json.dumps({"helm": HELM_VERSION, "kube_minor": kube_minor, "seconds": seconds})
            )
            if entry.exists():  # a stale, incomplete entry
                shutil.rmtree(entry)
            out.rename(entry)
            if log:
                _say(f"built helm {HELM_VERSION} in {seconds:.0f}s -> {entry}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return entry


def _build(go: str, workdir: Path, binary: Path, *, log: bool) -> str:
    """Build cmd/helm; return the Kubernetes minor version it assumes."""
    info = json.loads(
        _run([go, "mod", "download", "-json", f"{HELM_MODULE}@{HELM_VERSION}"], Path.cwd(), log=log)
    )
    gomod = Path(info["GoMod"]).read_text()
    client_go = _CLIENT_GO.search(gomod)
    if client_go is None:
        raise BinariesError(f"no k8s.io/client-go requirement in {HELM_MODULE} go.mod")
    go_directive = _GO_DIRECTIVE.search(gomod)
    _write_module(
        workdir,
        module="csr-signer.local/helm-build",
        go_directive=go_directive.group(1) if go_directive else "1.26",
        requires=f"{HELM_MODULE} {HELM_VERSION}",
        replaces=[],
        imports=[f"{HELM_MODULE}/cmd/helm"],
    )
    _run([go, "mod", "tidy", "-e"], workdir, log=log)
    # Helm's Makefile: client-go v0.N.x means Kubernetes 1.N.
    minor = client_go.group(1)
    ldflags = " ".join(
        [
            "-s -w",
            f"-X {HELM_MODULE}/internal/version.version={HELM_VERSION}",
            f"-X {HELM_MODULE}/internal/version.gitTreeState=clean",
            f"-X {HELM_MODULE}/pkg/lint/rules.k8sVersionMajor=1",
            f"-X {HELM_MODULE}/pkg/lint/rules.k8sVersionMinor={minor}",
            f"-X {HELM_MODULE}/pkg/chartutil.k8sVersionMajor=1",
            f"-X {HELM_MODULE}/pkg/chartutil.k8sVersionMinor={minor}",
        ]
    )
    _run(
        [
            go,
            "build",
            "-trimpath",
            f"-ldflags={ldflags}",
            "-o",
            str(binary),
            f"{HELM_MODULE}/cmd/helm",
        ],
        workdir,
        log=log,
    )
    return minor


def _answers_version(path: Path) -> bool:
    """True if `path` runs and is the pinned release (not just any helm)."""
    if not path.is_file():
        return False
    try:
        proc = subprocess.run(
            [str(path), "version", "--short"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except OSError:
        return False
    return proc.returncode == 0 and proc.stdout.strip().startswith(HELM_VERSION)


class HelmError(RuntimeError):
    """A helm command failed; the message carries its stderr."""


def helm(*args: str, helm_binary: Path | None = None, timeout: float = 120) -> str:
    """Run the pinned helm with `args`; return stdout, raise `HelmError` on failure.

    No kubeconfig is passed and HELM_* state lives in a throwaway directory,
    so a developer's repositories and clusters never leak into a test.
    """
    binary = helm_binary or resolve_helm()
    with tempfile.TemporaryDirectory(prefix="csr-signer-helm-") as home:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": home,
            "HELM_CACHE_HOME": f"{home}/cache",
            "HELM_CONFIG_HOME": f"{home}/config",
            "HELM_DATA_HOME": f"{home}/data",
            "KUBECONFIG": f"{home}/no-kubeconfig",
        }
        proc = subprocess.run(
            [str(binary), *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=timeout,
        )
    if proc.returncode != 0:
        raise HelmError(f"helm {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def template(
    chart: Path,
    *,
    release: str,
    namespace: str,
    values: Mapping[str, Any] | None = None,
    helm_binary: Path | None = None,
) -> str:
    """`helm template` with `values` as a values file; the rendered YAML stream."""
    args = ["template", release, str(chart), "--namespace", namespace]
    with tempfile.TemporaryDirectory(prefix="csr-signer-values-") as tmp:
        if values:
            path = Path(tmp) / "values.yaml"
            path.write_text(yaml.safe_dump(dict(values)))
            args += ["--values", str(path)]
        return helm(*args, helm_binary=helm_binary)


def documents(stream: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a rendered stream."""
    return [doc for doc in yaml.safe_load_all(stream) if doc]


def render_manifests(chart: Path, *, helm_binary: Path | None = None) -> str:
    """deploy/manifests.yaml: a header, the Namespace, then the chart with defaults.

    The Namespace is added here rather than templated by the chart: a Helm
    release does not own its namespace (`helm install --create-namespace`
    does), but `kubectl apply -f` users need one object list that stands alone.
    """
    namespace = yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MANIFESTS_NAMESPACE}},
        sort_keys=False,
    )
    rendered = template(
        chart, release=MANIFESTS_RELEASE, namespace=MANIFESTS_NAMESPACE, helm_binary=helm_binary
    )
    return f"{MANIFESTS_HEADER}---\n{namespace}{rendered}"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m signer.local.helm build|manifests [--write]`: for make targets and humans."""
    parser = argparse.ArgumentParser(prog="python -m signer.local.helm")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help=f"build helm {HELM_VERSION} into the cache; print its path")
    manifests = sub.add_parser("manifests", help="render deploy/manifests.yaml from the chart")
    manifests.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root")
    manifests.add_argument("--write", action="store_true", help="write the file, not stdout")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(resolve_helm())
            return 0
        text = render_manifests(args.repo / "deploy" / "chart" / "csr-signer")
    except (BinariesError, HelmError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.write:
        (args.repo / "deploy" / "manifests.yaml").write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
