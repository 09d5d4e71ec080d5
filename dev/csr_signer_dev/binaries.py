"""kube-apiserver, etcd and kubectl binaries for the local control plane.

Resolution order:

1. `KUBEBUILDER_ASSETS` (the setup-envtest convention): a directory holding
   `kube-apiserver` and `etcd` (and, optionally, `kubectl`).
2. The per-user cache entry `<cache_root>/<key>/`, where `<key>` names the
   pinned versions.
3. Otherwise build them once with the machine's Go toolchain from the Go
   module proxy, pinned to the versions below (`gobuild.go_build`: locked,
   in scratch, version-checked, published with one rename).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from csr_signer_dev.gobuild import Binary, BuildError, Go, Module, go_build, go_directive
from csr_signer_dev.settings import DevSettings

KUBERNETES_VERSION = "v1.36.3"
"""k8s.io/kubernetes release for kube-apiserver and kubectl."""
STAGING_VERSION = "v0.36.3"
"""Published version of the k8s.io/* staging modules of that release."""
ETCD_VERSION = "v3.6.8"
"""go.etcd.io/etcd/server/v3 release for etcd."""

CACHE_KEY = f"k8s-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}"
_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[A-Za-z0-9._-]+)\s+=>\s+\./staging/", re.MULTILINE)


class BinariesError(BuildError):
    """The binaries could not be found; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path
    kubectl: Path | None


def cache_entry(settings: DevSettings) -> Path:
    """Where the pinned build lives once built (it may not exist yet)."""
    return settings.cache_root / CACHE_KEY


def resolve(settings: DevSettings, *, build: bool = True, log: bool = True) -> Binaries:
    """Find the binaries, building them into the cache if needed."""
    entry = cache_entry(settings)
    assets = settings.kubebuilder_assets
    if assets is not None:
        found = _from_dir(assets, require_kubectl=False)
        if found is None:
            raise BinariesError(
                f"KUBEBUILDER_ASSETS={assets} does not hold executable kube-apiserver and etcd"
            )
        if found.kubectl is None:
            cached = _from_dir(entry, require_kubectl=True)
            found = Binaries(found.kube_apiserver, found.etcd, cached.kubectl if cached else None)
        return found
    found = _from_dir(entry, require_kubectl=True)
    if found is not None:
        return found
    if not build:
        raise BinariesError(f"no binaries in {entry}; run `csr-signer local build`")
    build_into_cache(settings, log=log)
    found = _from_dir(entry, require_kubectl=True)
    if found is None:  # pragma: no cover - go_build publishes complete entries only
        raise BinariesError(f"build finished but {entry} is incomplete")
    return found


def build_into_cache(settings: DevSettings, *, log: bool = True) -> Path:
    """Build all three binaries and publish them as one cache entry."""
    return go_build(
        cache_entry(settings),
        go=settings.go,
        env=settings.go_env,
        plan=_plan,
        complete=lambda entry: _from_dir(entry, require_kubectl=True) is not None,
        pins={"kubernetes": KUBERNETES_VERSION, "etcd": ETCD_VERSION},
        log=log,
        without_go=", or point KUBEBUILDER_ASSETS at a directory holding kube-apiserver and etcd",
    )


def _plan(go: Go) -> list[Module]:
    """kube-apiserver and kubectl from k8s.io/kubernetes; etcd from its server module."""
    kubernetes = kubernetes_module(go, "kube-apiserver", ("kubectl", ("version", "--client")))
    etcd = Module(
        path="csr-signer.local/etcd-build",
        go_directive="1.24",
        requires=(f"go.etcd.io/etcd/server/v3 {ETCD_VERSION}",),
        binaries=(
            Binary(
                "etcd",
                "go.etcd.io/etcd/server/v3",
                version_args=("--version",),
                version=ETCD_VERSION.removeprefix("v"),  # "etcd Version: 3.6.8"
            ),
        ),
    )
    return [kubernetes, etcd]


def kubernetes_module(go: Go, *commands: str | tuple[str, tuple[str, ...]]) -> Module:
    """A build module for `k8s.io/kubernetes/cmd/<command>` binaries at the pinned release.

    Each command is a name (version flag `--version`) or (name, version arguments).
    k8s.io/kubernetes points its staging modules at ./staging with `replace`
    directives that do not apply to a dependent module, and requires them at
    v0.0.0; our build module replaces each with its published release.
    """
    gomod = go.gomod("k8s.io/kubernetes", KUBERNETES_VERSION)
    staging = sorted(set(_STAGING_REPLACE.findall(gomod)))
    if not staging:
        raise BuildError("found no staging replace directives in k8s.io/kubernetes go.mod")
    ldflags = (
        f"-s -w -X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}"
        f" -X k8s.io/client-go/pkg/version.gitVersion={KUBERNETES_VERSION}"
    )
    binaries = []
    for command in commands:
        name, args = (command, ("--version",)) if isinstance(command, str) else command
        binaries.append(
            Binary(
                name,
                f"k8s.io/kubernetes/cmd/{name}",
                version_args=args,
                version=KUBERNETES_VERSION,
                ldflags=ldflags,
            )
        )
    return Module(
        path="csr-signer.local/kubernetes-build",
        go_directive=go_directive(gomod, "1.26"),
        requires=(f"k8s.io/kubernetes {KUBERNETES_VERSION}",),
        replaces=tuple(f"{m} => {m} {STAGING_VERSION}" for m in staging),
        binaries=tuple(binaries),
    )


def _from_dir(directory: Path, *, require_kubectl: bool) -> Binaries | None:
    apiserver, etcd, kubectl = (directory / n for n in ("kube-apiserver", "etcd", "kubectl"))
    if not (_executable(apiserver) and _executable(etcd)):
        return None
    if require_kubectl and not _executable(kubectl):
        return None
    return Binaries(apiserver, etcd, kubectl if _executable(kubectl) else None)


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
