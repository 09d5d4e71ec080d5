"""Where the harness finds things: the one place it reads the environment.

Every other module takes a `DevSettings` (or the paths derived from it) as an
argument, so a test states the cache, the toolchain or the assets it wants
instead of patching `os.environ`, and a reader sees in one screen which
variables change the harness's behaviour:

- `XDG_CACHE_HOME` (default `~/.cache`): built binaries go to
  `$XDG_CACHE_HOME/csr-signer/bin/<key>/`;
- `KUBEBUILDER_ASSETS` (the setup-envtest convention): a directory holding
  `kube-apiserver` and `etcd` to use instead of building them;
- `PATH`: where `go` is looked up, with the official tarball's
  `/usr/local/go/bin/go` as a fallback (it is not on every PATH);
- everything else (`GOMODCACHE`, `GOPROXY`, `GOPATH`, `HOME`, ...) reaches the
  `go` commands unchanged through `go_env`, with the few settings the pinned
  builds need forced on top.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TARBALL_GO = "/usr/local/go/bin/go"
"""The official Go tarball's `go`, used when PATH has none."""

CHECKOUT = Path(__file__).resolve().parents[2]
"""The source checkout this package is installed from (editable, by `make install`).

The harness applies `deploy/rbac.yaml` and renders `deploy/chart`, which exist
only in a checkout, never in an installed wheel.
"""

_GO_BUILD_ENV = {
    "CGO_ENABLED": "0",  # static binaries; no C toolchain needed
    "GOFLAGS": "-mod=mod",  # the throwaway build modules have no vendor/
    "GOTOOLCHAIN": "local",  # never download another toolchain behind our back
    "GOWORK": "off",  # a developer's go.work must not change what is built
}


@dataclass(frozen=True, slots=True)
class DevSettings:
    """Inputs of the harness, read once from the environment by `from_environment`."""

    cache_root: Path
    """Per-user build cache: one directory per pinned tool set."""
    kubebuilder_assets: Path | None
    """A directory of prebuilt kube-apiserver and etcd that wins over the cache."""
    go: str | None
    """The Go toolchain to build with; None if there is none."""
    go_env: Mapping[str, str]
    """The environment every `go` command runs with."""


def from_environment(environ: Mapping[str, str] | None = None) -> DevSettings:
    """Settings from `environ` (default: this process's environment)."""
    env = dict(os.environ if environ is None else environ)
    cache_base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    assets = env.get("KUBEBUILDER_ASSETS")
    return DevSettings(
        cache_root=Path(cache_base) / "csr-signer" / "bin",
        kubebuilder_assets=Path(assets) if assets else None,
        go=find_go(env.get("PATH", os.defpath)),
        go_env={**env, **_GO_BUILD_ENV},
    )


def find_go(path: str, *, fallback: str = TARBALL_GO) -> str | None:
    """`go` on `path` (a PATH value), else `fallback` if it is executable."""
    found = shutil.which("go", path=path)
    if found is None and os.access(fallback, os.X_OK):
        return fallback
    return found
