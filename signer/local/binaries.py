"""kube-apiserver, etcd and kubectl binaries for the local control plane.

Resolution order:

1. `KUBEBUILDER_ASSETS` (the setup-envtest convention): a directory holding
   `kube-apiserver` and `etcd` (and, optionally, `kubectl`).
2. The per-user cache, `$XDG_CACHE_HOME/csr-signer/bin/<key>/`, where `<key>`
   names the pinned versions.
3. Otherwise build them once with the machine's Go toolchain from the Go
   module proxy, pinned to the versions below.

A build happens in a scratch directory beside the cache entry and becomes
visible only through one `rename()`, after every binary has been built and
has answered `--version`; an interrupted build therefore leaves no entry that
could be mistaken for a finished one. A file lock serialises concurrent
builders (two pytest sessions, CI and a developer).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
"""k8s.io/kubernetes release for kube-apiserver and kubectl."""
STAGING_VERSION = "v0.36.3"
"""Published version of the k8s.io/* staging modules of that release."""
ETCD_VERSION = "v3.6.8"
"""go.etcd.io/etcd/server/v3 release for etcd."""

CACHE_KEY = f"k8s-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}"
_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[A-Za-z0-9._-]+)\s+=>\s+\./staging/", re.MULTILINE)


class BinariesError(RuntimeError):
    """The binaries could not be found or built; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path
    kubectl: Path | None


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "csr-signer" / "bin"


def resolve(*, build: bool = True, log: bool = True) -> Binaries:
    """Find the binaries, building them into the cache if needed."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        found = _from_dir(Path(assets), require_kubectl=False)
        if found is None:
            raise BinariesError(
                f"KUBEBUILDER_ASSETS={assets} does not hold executable kube-apiserver and etcd"
            )
        if found.kubectl is None:
            cached = _from_dir(cache_root() / CACHE_KEY, require_kubectl=True)
            found = Binaries(found.kube_apiserver, found.etcd, cached.kubectl if cached else None)
        return found
    entry = cache_root() / CACHE_KEY
    found = _from_dir(entry, require_kubectl=True)
    if found is not None:
        return found
    if not build:
        raise BinariesError(f"no binaries in {entry}; run `csr-signer local build`")
    build_into_cache(log=log)
    found = _from_dir(entry, require_kubectl=True)
    if found is None:  # pragma: no cover - build_into_cache guarantees it
        raise BinariesError(f"build finished but {entry} is incomplete")
    return found


def _from_dir(directory: Path, *, require_kubectl: bool) -> Binaries | None:
    apiserver, etcd, kubectl = (directory / n for n in ("kube-apiserver", "etcd", "kubectl"))
    if not (_executable(apiserver) and _executable(etcd)):
        return None
    if require_kubectl and not _executable(kubectl):
        return None
    return Binaries(apiserver, etcd, kubectl if _executable(kubectl) else None)


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_into_cache(*, log: bool = True) -> Path:
    """Build all three binaries and publish them as one cache entry."""
    root = cache_root()
    entry = root / CACHE_KEY
    with _locked(root / f".{CACHE_KEY}.lock"):
        if _from_dir(entry, require_kubectl=True) is not None:
            return entry  # another process finished it while we waited
        go = find_go()
        if go is None:
            raise BinariesError(
                "no Go toolchain on PATH to build kube-apiserver/etcd/kubectl; install Go >= 1.26 "
                "or point KUBEBUILDER_ASSETS at a directory holding kube-apiserver and etcd"
            )
        scratch = Path(tempfile.mkdtemp(prefix=f".{CACHE_KEY}.", dir=root))
        try:
            started = time.monotonic()
            out = scratch / "bin"
            out.mkdir()
            _build_kubernetes(go, scratch / "k8s", out, log=log)
            _build_etcd(go, scratch / "etcd", out, log=log)
            for name in ("kube-apiserver", "etcd", "kubectl"):
                _check_runs(out / name)
            (out / "BUILD_INFO.json").write_text(
                json.dumps(
                    {
                        "kubernetes": KUBERNETES_VERSION,
                        "etcd": ETCD_VERSION,
                        "go": _go_version(go),
                        "seconds": round(time.monotonic() - started, 1),
                    }
                )
            )
            if entry.exists():  # a stale, incomplete entry from an older layout
                shutil.rmtree(entry)
            out.rename(entry)
            if log:
                _say(
                    f"built control-plane binaries in {time.monotonic() - started:.0f}s -> {entry}"
                )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return entry


def find_go() -> str | None:
    """`go` on PATH, else the official tarball's location (not on every PATH)."""
    found = shutil.which("go")
    if found is None and os.access(_TARBALL_GO, os.X_OK):
        return _TARBALL_GO
    return found


_TARBALL_GO = "/usr/local/go/bin/go"


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "GOWORK": "off"})
    return env


def _run(cmd: list[str], cwd: Path, *, log: bool) -> str:
    if log:
        _say("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, cwd=cwd, env=_go_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BinariesError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _go_version(go: str) -> str:
    return subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, check=False
    ).stdout.strip()


def _write_module(
    directory: Path,
    *,
    module: str,
    go_directive: str,
    requires: str,
    replaces: list[str],
    imports: list[str],
) -> None:
    directory.mkdir(parents=True)
    lines = [f"module {module}", "", f"go {go_directive}", "", f"require {requires}", ""]
    if replaces:
        lines += ["replace (", *(f"\t{r}" for r in replaces), ")", ""]
    (directory / "go.mod").write_text("\n".join(lines))
    body = "\n".join(f'\t_ "{i}"' for i in imports)
    (directory / "tools.go").write_text(
        f"//go:build tools\n\npackage tools\n\nimport (\n{body}\n)\n"
    )


def _build_kubernetes(go: str, workdir: Path, out: Path, *, log: bool) -> None:
    """kube-apiserver and kubectl from k8s.io/kubernetes at the pinned release.

    k8s.io/kubernetes points its staging modules at ./staging with `replace`
    directives that do not apply to a dependent module, and requires them at
    v0.0.0; our build module replaces each with its published release.
    """
    info = json.loads(
        _run(
            [go, "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
            Path.cwd(),
            log=log,
        )
    )
    gomod = Path(info["GoMod"]).read_text()
    staging = sorted(set(_STAGING_REPLACE.findall(gomod)))
    if not staging:
        raise BinariesError("found no staging replace directives in k8s.io/kubernetes go.mod")
    go_directive = re.search(r"^go\s+(\S+)", gomod, re.MULTILINE)
    _write_module(
        workdir,
        module="csr-signer.local/kubernetes-build",
        go_directive=go_directive.group(1) if go_directive else "1.26",
        requires=f"k8s.io/kubernetes {KUBERNETES_VERSION}",
        replaces=[f"{m} => {m} {STAGING_VERSION}" for m in staging],
        imports=["k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kubectl"],
    )
    _run([go, "mod", "tidy", "-e"], workdir, log=log)
    ldflags = (
        "-s -w -X k8s.io/component-base/version.gitVersion="
        + KUBERNETES_VERSION
        + " -X k8s.io/client-go/pkg/version.gitVersion="
        + KUBERNETES_VERSION
    )
    for name in ("kube-apiserver", "kubectl"):
        _run(
            [
                go,
                "build",
                "-trimpath",
                f"-ldflags={ldflags}",
                "-o",
                str(out / name),
                f"k8s.io/kubernetes/cmd/{name}",
            ],
            workdir,
            log=log,
        )


def _build_etcd(go: str, workdir: Path, out: Path, *, log: bool) -> None:
    _write_module(
        workdir,
        module="csr-signer.local/etcd-build",
        go_directive="1.24",
        requires=f"go.etcd.io/etcd/server/v3 {ETCD_VERSION}",
        replaces=[],
        imports=["go.etcd.io/etcd/server/v3"],
    )
    _run([go, "mod", "tidy", "-e"], workdir, log=log)
    _run(
        [
            go,
            "build",
            "-trimpath",
            "-ldflags=-s -w",
            "-o",
            str(out / "etcd"),
            "go.etcd.io/etcd/server/v3",
        ],
        workdir,
        log=log,
    )


def _check_runs(binary: Path) -> None:
    args = ["version", "--client"] if binary.name == "kubectl" else ["--version"]
    proc = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, check=False, timeout=60
    )
    if proc.returncode != 0:
        raise BinariesError(f"{binary.name} {' '.join(args)} failed: {proc.stderr.strip()[:300]}")


def cache_size_bytes() -> int:
    entry = cache_root() / CACHE_KEY
    return sum(p.stat().st_size for p in entry.rglob("*") if p.is_file()) if entry.exists() else 0


def _say(message: str) -> None:
    print(f"[csr-signer local] {message}", file=sys.stderr, flush=True)
