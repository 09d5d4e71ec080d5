"""Build the Go reference program once per source change, and find it again.

The binary is cached under ~/.cache/csr-signer/bin/gox509-<hash>/gox509, the
hash covering the program's source and the Go toolchain's version, so an edit
or a new toolchain rebuilds it and everything else reuses it. The build goes
to a temporary directory beside the cache entry and is renamed into place, so
concurrent test runs never see a half-written binary (the last rename wins;
both binaries are the same).

The toolchain, its environment and the cache root are the dev harness's
(`csr_signer_dev.settings`), the same the control-plane build uses. The build
itself is simpler than `csr_signer_dev.gobuild.go_build`, which pins modules from
the proxy: this program is a local, standard-library-only module.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from csr_signer_dev.settings import from_environment

SOURCE = Path(__file__).parent / "gox509"


class GoUnavailable(RuntimeError):
    """No Go toolchain on this machine: the differential tests cannot run."""


def _go() -> tuple[Path, dict[str, str], Path]:
    """(go, its environment, the cache root), as the control-plane build finds them."""
    dev = from_environment()
    if dev.go is None:
        raise GoUnavailable("no `go` on PATH or at /usr/local/go/bin/go")
    return Path(dev.go), dict(dev.go_env), dev.cache_root


def source_hash(go: Path, env: dict[str, str]) -> str:
    digest = hashlib.sha256()
    version = subprocess.run(
        [str(go), "version"], capture_output=True, text=True, check=True, env=env
    ).stdout
    digest.update(version.encode())
    for path in sorted(SOURCE.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(SOURCE).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_gox509() -> Path:
    """The path of a gox509 binary built from the current source."""
    go, env, cache_root = _go()
    target = cache_root / f"gox509-{source_hash(go, env)}" / "gox509"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        built = Path(tmp) / "gox509"
        result = subprocess.run(
            [str(go), "build", "-trimpath", "-o", str(built), "."],
            cwd=SOURCE,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"go build of {SOURCE} failed:\n{result.stderr}")
        os.replace(built, target)
    return target
