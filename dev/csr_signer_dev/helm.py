"""A pinned `helm` for the chart tests and deploy/manifests.yaml, built like the control plane.

Built through `gobuild.go_build` (the module proxy, a scratch directory, a
version check, one rename into ``<cache_root>/helm-<version>/helm``, a file
lock), so one Go toolchain stays the only prerequisite of the whole harness.

The build module requires only ``helm.sh/helm/v3`` at the pinned version, so
minimal version selection picks exactly the dependency versions Helm's own
go.mod pins. The linker flags are those of Helm's Makefile: the version string,
and the Kubernetes version Helm assumes for ``.Capabilities.KubeVersion`` and
for its deprecation lint, derived from the client-go it was built with.

`csr-signer local helm build|manifests` (in `commands`) is the CLI over this;
`sync_chart_policies` keeps the chart's copy of the bundled policies equal to
the repository's policies/ (helm does not follow a symlink out of the chart).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from csr_signer_dev import settings as dev_settings
from csr_signer_dev.gobuild import (
    Binary,
    BuildError,
    Go,
    Module,
    answers_version,
    go_build,
    go_directive,
)
from csr_signer_dev.settings import DevSettings

HELM_VERSION = "v3.22.0"
"""helm.sh/helm/v3 release; the newest v3 on the module proxy when pinned."""
HELM_MODULE = "helm.sh/helm/v3"
HELM_CACHE_KEY = f"helm-{HELM_VERSION}"
_VERSION_ARGS = ("version", "--short")

MANIFESTS_RELEASE = "csr-signer"
MANIFESTS_NAMESPACE = "csr-signer"
MANIFESTS_HEADER = f"""\
# csr-signer for `kubectl apply -f` users: namespace {MANIFESTS_NAMESPACE}, release name
# {MANIFESTS_RELEASE}, the chart deploy/chart/csr-signer with its default values.
# GENERATED - do not edit. Regenerate with `make manifests`
# (.venv/bin/csr-signer local helm manifests --write).
# tests/packaging/test_chart_render.py fails while this file is out of date.
#
# Before applying, create the two CA Secrets (one CA per signer name: csr-signer-ca
# for csr-signer.dev/cluster-local, csr-signer-knative-ca for
# csr-signer.dev/knative-internal) and the trust-bundle namespace:
#   csr-signer ca init --common-name "csr-signer cluster-local CA" \\
#     --secret csr-signer-ca --namespace {MANIFESTS_NAMESPACE} | kubectl apply -f -
#   csr-signer ca init --common-name "csr-signer knative-internal CA" \\
#     --secret csr-signer-knative-ca --namespace {MANIFESTS_NAMESPACE} | kubectl apply -f -
#   kubectl create namespace knative-serving   # if Knative is not installed yet
# See docs/install.md.
"""

_CLIENT_GO = re.compile(r"^\s*k8s\.io/client-go\s+v0\.(\d+)\.\d+", re.MULTILINE)


def helm_path(settings: DevSettings | None = None) -> Path:
    """Where the pinned helm lives once built (it may not exist yet).

    `settings` defaults to `settings.from_environment()`, as in every helper
    tests call directly.
    """
    settings = settings or dev_settings.from_environment()
    return settings.cache_root / HELM_CACHE_KEY / "helm"


def resolve_helm(
    settings: DevSettings | None = None, *, build: bool = True, log: bool = True
) -> Path:
    """The pinned helm binary, building it into the cache on first use."""
    settings = settings or dev_settings.from_environment()
    path = helm_path(settings)
    if answers_version(path, _VERSION_ARGS, HELM_VERSION):
        return path
    if not build:
        raise BuildError(f"no helm in {path.parent}; run `csr-signer local helm build`")
    build_helm(settings, log=log)
    if not answers_version(path, _VERSION_ARGS, HELM_VERSION):  # pragma: no cover
        raise BuildError(f"helm build finished but {path} does not run")
    return path


def build_helm(settings: DevSettings, *, log: bool = True) -> Path:
    """Build helm and publish it as its cache entry; return the entry."""
    return go_build(
        helm_path(settings).parent,
        go=settings.go,
        env=settings.go_env,
        plan=_plan,
        complete=lambda entry: answers_version(entry / "helm", _VERSION_ARGS, HELM_VERSION),
        pins={"helm": HELM_VERSION},
        log=log,
    )


def _plan(go: Go) -> list[Module]:
    """cmd/helm with the linker flags of Helm's Makefile."""
    gomod = go.gomod(HELM_MODULE, HELM_VERSION)
    client_go = _CLIENT_GO.search(gomod)
    if client_go is None:
        raise BuildError(f"no k8s.io/client-go requirement in {HELM_MODULE} go.mod")
    minor = client_go.group(1)  # Helm's Makefile: client-go v0.N.x means Kubernetes 1.N.
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
    helm_binary = Binary(
        "helm",
        f"{HELM_MODULE}/cmd/helm",
        version_args=_VERSION_ARGS,
        version=HELM_VERSION,
        ldflags=ldflags,
    )
    return [
        Module(
            path="csr-signer.local/helm-build",
            go_directive=go_directive(gomod, "1.26"),
            requires=(f"{HELM_MODULE} {HELM_VERSION}",),
            binaries=(helm_binary,),
        )
    ]


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


CHART_POLICIES = Path("deploy") / "chart" / "csr-signer" / "files" / "policies"
"""The chart's copy of the bundled policies, relative to the repository root."""
REPO_POLICIES = Path("policies")
"""The one source of truth for the bundled policies, relative to the repository root."""


def sync_chart_policies(repo: Path) -> list[str]:
    """Make the chart's files/policies/ a byte-for-byte copy of ``policies/*.yaml``.

    Copies each file that differs or is missing and removes ``*.yaml`` files the
    repository no longer has; returns the names changed (sorted), empty when the
    copy was already equal.
    """
    source, target = repo / REPO_POLICIES, repo / CHART_POLICIES
    wanted = {path.name: path.read_bytes() for path in sorted(source.glob("*.yaml"))}
    if not wanted:
        raise FileNotFoundError(f"no policy files in {source}")
    target.mkdir(parents=True, exist_ok=True)
    changed: list[str] = []
    for stale in sorted(target.glob("*.yaml")):
        if stale.name not in wanted:
            stale.unlink()
            changed.append(stale.name)
    for name, content in wanted.items():
        copy = target / name
        if not copy.is_file() or copy.read_bytes() != content:
            shutil.copyfile(source / name, copy)
            changed.append(name)
    return sorted(changed)
