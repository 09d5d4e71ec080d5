"""The image's hash-pinned lock files (requirements/*.txt), regenerated with a pinned pip-tools.

Why: the Dockerfile installs every third-party distribution with
``--require-hashes`` from these files, so two builds of one commit install the
same bytes and a substituted download fails the build. They are generated, not
edited: `lock` runs ``pip-compile --generate-hashes`` from PyPI against
pyproject.toml (the runtime dependencies, and separately the build-system
requirements), with a pip-tools pinned here and installed into a cached venv.
Hashes of every file of each pinned release are kept, so the lock serves any
platform the wheels exist for.

pip-compile resolves for the interpreter it runs under, so `lock` insists on
the image's Python (3.11). tests/packaging/test_lock.py checks that the files
still cover pyproject.toml; `make lock` rewrites them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from csr_signer_dev import settings as dev_settings
from csr_signer_dev.gobuild import BuildError, locked, say
from csr_signer_dev.image import run
from csr_signer_dev.settings import DevSettings

PIP_TOOLS_VERSION = "7.5.2"
IMAGE_PYTHON = (3, 11)
"""The Python the image runs (Debian bookworm's, and the official base's tag)."""
RUNTIME_LOCK = Path("requirements/runtime.txt")
"""Every runtime dependency of the csr-signer wheel, for the image's venv."""
BUILD_LOCK = Path("requirements/build.txt")
"""pyproject.toml's build-system requirements, for building the project's wheel offline."""
_COMMON = (
    "--quiet",
    "--generate-hashes",
    "--allow-unsafe",  # setuptools is a build requirement: it must be pinned too
    "--strip-extras",
    "--no-emit-index-url",
    "--no-emit-find-links",
    "--no-emit-trusted-host",
    "--newline=LF",
)
_HOST_PIP = ("PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
"""Host pip settings kept away from pip-compile: the lock is PyPI's releases only."""


def pip_tools(settings: DevSettings, *, log: bool = True) -> Path:
    """The pinned pip-compile, in a venv under the cache (created on first use)."""
    if sys.version_info[:2] != IMAGE_PYTHON:
        want = ".".join(map(str, IMAGE_PYTHON))
        raise BuildError(f"lock files are resolved for the image's Python {want}; run with it")
    venv = settings.cache_root / f"pip-tools-{PIP_TOOLS_VERSION}"
    compile_ = venv / "bin" / "pip-compile"
    with locked(settings.cache_root / f".{venv.name}.lock"):
        if not compile_.is_file():
            if log:
                say(f"installing pip-tools {PIP_TOOLS_VERSION} into {venv}")
            run([sys.executable, "-m", "venv", "--clear", str(venv)])
            run(
                [str(venv / "bin" / "pip"), "install", "--quiet", f"pip-tools=={PIP_TOOLS_VERSION}"]
            )
    return compile_


def lock(
    settings: DevSettings | None = None, *, repo: Path = dev_settings.CHECKOUT, log: bool = True
) -> list[Path]:
    """Rewrite both lock files from `repo`'s pyproject.toml; return their paths."""
    settings = settings or dev_settings.from_environment()
    compile_ = pip_tools(settings, log=log)
    env = {k: v for k, v in os.environ.items() if k not in _HOST_PIP}
    env["CUSTOM_COMPILE_COMMAND"] = "make lock"  # the header names the command to rerun
    written: list[Path] = []
    for output, extra in (
        (RUNTIME_LOCK, ()),
        (BUILD_LOCK, ("--all-build-deps", "--only-build-deps")),
    ):
        if log:
            say(f"pip-compile -> {output}")
        (repo / output).parent.mkdir(exist_ok=True)
        run(
            [str(compile_), *_COMMON, *extra, "--output-file", str(output), "pyproject.toml"],
            env=env,
            timeout=1200,
            cwd=repo,
        )
        written.append(repo / output)
    return written
