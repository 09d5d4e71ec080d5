"""Pinned Go binaries built from the Go module proxy into a per-user cache.

Why build rather than download release tarballs: this machine (and CI) may
reach package registries only, and the Go module proxy is one; one Go
toolchain is then the only prerequisite of the whole harness.

`go_build` is the one recipe every pinned tool goes through (kube-apiserver,
etcd and kubectl in `binaries`, helm in `helm`):

1. under a file lock beside the cache entry, so concurrent builders (two
   pytest sessions, CI and a developer) build once and the others wait;
2. in a scratch directory beside the entry: for each `Module`, a throwaway
   go.mod that requires the pinned release (with `replace` directives where
   the upstream module needs them) and a tools.go importing the main packages,
   then `go mod tidy` and `go build -trimpath` with the given linker flags;
3. every binary must answer its version command with the pinned version;
4. then the scratch `bin/` becomes the entry through one `rename()`, so an
   interrupted build never leaves an entry that could be mistaken for a
   finished one.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_GO_DIRECTIVE = re.compile(r"^go\s+(\S+)", re.MULTILINE)


class BuildError(RuntimeError):
    """A pinned tool could not be found or built; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Binary:
    """One main package to build, and how to tell the result is the pinned release."""

    name: str
    """File name in the cache entry."""
    package: str
    """Import path of the main package."""
    version_args: tuple[str, ...]
    """Arguments that make it print its version and exit 0."""
    version: str
    """What that output must contain (the pinned version)."""
    ldflags: str = "-s -w"


@dataclass(frozen=True, slots=True)
class Module:
    """A throwaway build module: the releases it requires and the binaries it builds."""

    path: str
    go_directive: str
    requires: tuple[str, ...]
    """`module version` lines."""
    binaries: tuple[Binary, ...]
    replaces: tuple[str, ...] = ()
    """`old => new version` lines, for requirements the upstream go.mod replaces locally."""
    sources: tuple[tuple[str, str], ...] = ()
    """`(relative path, text)` files of the module's own packages (a tiny main, say)."""


class Go:
    """A Go toolchain with the build environment; every command it runs is logged."""

    def __init__(self, executable: str, env: Mapping[str, str], *, cwd: Path, log: bool) -> None:
        self.executable = executable
        self._env = dict(env)
        self._cwd = cwd
        self._log = log

    def run(self, *args: str, cwd: Path | None = None) -> str:
        """`go args...`; stdout, or `BuildError` with the tail of its output."""
        cmd = [self.executable, *args]
        if self._log:
            say("$ " + " ".join(cmd))
        proc = subprocess.run(
            cmd, cwd=cwd or self._cwd, env=self._env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise BuildError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}")
        return proc.stdout

    def gomod(self, module: str, version: str) -> str:
        """The go.mod of `module@version`, downloaded through the module proxy."""
        info = json.loads(self.run("mod", "download", "-json", f"{module}@{version}"))
        return Path(info["GoMod"]).read_text()

    def version(self) -> str:
        return self.run("env", "GOVERSION").strip()


def go_directive(gomod: str, default: str) -> str:
    """The `go` line of a go.mod text: the language version a build module must declare."""
    found = _GO_DIRECTIVE.search(gomod)
    return found.group(1) if found else default


Plan = Callable[[Go], Sequence[Module]]
"""What to build; given the toolchain, so it can read upstream go.mod files first."""


def go_build(
    entry: Path,
    *,
    go: str | None,
    env: Mapping[str, str],
    plan: Plan,
    complete: Callable[[Path], bool],
    pins: Mapping[str, str],
    log: bool = True,
    without_go: str = "",
) -> Path:
    """Build what `plan` says and publish it as the cache directory `entry`.

    `complete(entry)` is checked again under the lock: another process may
    have finished the same build while this one waited. `pins` (the pinned
    versions) go into the entry's BUILD_INFO.json with the Go version, the
    linker flags and the build time. `without_go` is added to the error
    raised when there is no toolchain: what else the caller accepts instead.
    """
    root = entry.parent
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / f".{entry.name}.lock"):
        if complete(entry):
            return entry
        if go is None:
            raise BuildError(
                f"no Go toolchain on PATH to build {entry.name}; install Go >= 1.26 "
                f"(the pinned tools are built from the Go module proxy){without_go}"
            )
        scratch = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=root))
        try:
            started = time.monotonic()
            toolchain = Go(go, env, cwd=scratch, log=log)
            out = scratch / "bin"
            out.mkdir()
            built: list[Binary] = []
            for module in plan(toolchain):
                workdir = scratch / module.path.rsplit("/", 1)[-1]
                _write_module(workdir, module)
                toolchain.run("mod", "tidy", "-e", cwd=workdir)
                for binary in module.binaries:
                    toolchain.run(
                        "build",
                        "-trimpath",
                        f"-ldflags={binary.ldflags}",
                        "-o",
                        str(out / binary.name),
                        binary.package,
                        cwd=workdir,
                    )
                    built.append(binary)
            for binary in built:
                _check_version(out / binary.name, binary)
            seconds = round(time.monotonic() - started, 1)
            info = {
                **pins,
                "go": toolchain.version(),
                "ldflags": {b.name: b.ldflags for b in built},
                "seconds": seconds,
            }
            (out / "BUILD_INFO.json").write_text(json.dumps(info, indent=2) + "\n")
            if entry.exists():  # a stale, incomplete entry (e.g. from an older layout)
                shutil.rmtree(entry)
            out.rename(entry)
            if log:
                say(f"built {', '.join(b.name for b in built)} in {seconds:.0f}s -> {entry}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return entry


def answers_version(path: Path, version_args: Sequence[str], version: str) -> bool:
    """True if `path` runs and reports `version` (not just any build of the tool)."""
    if not path.is_file():
        return False
    try:
        proc = subprocess.run(
            [str(path), *version_args], capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and version in proc.stdout


def size_bytes(entry: Path) -> int:
    """Disk use of a cache entry (0 if absent)."""
    return sum(p.stat().st_size for p in entry.rglob("*") if p.is_file()) if entry.exists() else 0


def say(message: str) -> None:
    """Progress on stderr: a cold build takes minutes and should not look hung."""
    print(f"[csr-signer local] {message}", file=sys.stderr, flush=True)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive file lock on `path`: one builder at a time per cache entry."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_module(directory: Path, module: Module) -> None:
    """go.mod plus a tools.go that imports the main packages, so `go mod tidy` pins them."""
    directory.mkdir(parents=True)
    lines = [f"module {module.path}", "", f"go {module.go_directive}", ""]
    lines += ["require (", *(f"\t{r}" for r in module.requires), ")", ""]
    if module.replaces:
        lines += ["replace (", *(f"\t{r}" for r in module.replaces), ")", ""]
    (directory / "go.mod").write_text("\n".join(lines))
    for relative, text in module.sources:
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(text)
    body = "\n".join(f'\t_ "{b.package}"' for b in module.binaries)
    (directory / "tools.go").write_text(
        f"//go:build tools\n\npackage tools\n\nimport (\n{body}\n)\n"
    )


def _check_version(path: Path, binary: Binary) -> None:
    proc = subprocess.run(
        [str(path), *binary.version_args], capture_output=True, text=True, check=False, timeout=60
    )
    if proc.returncode != 0 or binary.version not in proc.stdout:
        output = (proc.stderr or proc.stdout).strip()[:300]
        raise BuildError(
            f"the {binary.name} just built does not report {binary.version} "
            f"(`{binary.name} {' '.join(binary.version_args)}` exit {proc.returncode}): {output}"
        )
