"""The image's install steps, performed here because no Docker engine runs in CI.

The Dockerfile's builder stage copies pyproject.toml, README.md, signer/ and
policies/ into a context, builds wheels for the project and every runtime
dependency, installs them into a fresh virtualenv from those wheels only, and
removes pip and setuptools; the final stage runs that virtualenv as UID 65532
on a read-only root filesystem. This test does the same with a Python 3.11
interpreter on this machine and then, as UID 65532 over a tree that user
cannot write, runs what the image would run.

What it proves: the wheel carries the bundled policies (through the
``signer/bundled_policies -> ../policies`` symlink); the project installs from
its own wheels with no index; the console script works without write access
and without a home directory; no test tooling or build tooling ends up in the
runtime environment; bytecode is precompiled, so a read-only filesystem costs
nothing at start-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from signer import __version__
from tests.packaging.dockerfile import copy_sources, parse

REPO = Path(__file__).resolve().parents[2]
UID = 65532
INTERPRETERS = ("/usr/local/bin/python3.11", "/usr/bin/python3.11")
"""Candidates for the runtime venv's interpreter: it must be executable by UID
65532, which a pyenv build under /root is not. The image uses the first."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def as_unprivileged() -> list[str]:
    """Command prefix that drops to UID/GID 65532 (no-op when not root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux) to drop privileges")
    return [setpriv, f"--reuid={UID}", f"--regid={UID}", "--clear-groups"]


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False, timeout=600
    )
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def runtime_interpreter() -> str:
    """A Python 3.11 that UID 65532 can execute (as the image's /usr/local/bin one)."""
    prefix = as_unprivileged()
    for candidate in (*INTERPRETERS, getattr(sys, "_base_executable", sys.executable)):
        if not Path(candidate).is_file():
            continue
        probe = subprocess.run(
            [*prefix, candidate, "-c", "import sys, venv, ensurepip; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
        )
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 11)":
            return candidate
    pytest.skip("no Python 3.11 with venv+ensurepip that an unprivileged user can execute")


@dataclass(frozen=True)
class Installed:
    root: Path
    wheels: Path
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def site_packages(self) -> Path:
        return next((self.venv / "lib").glob("python3.*/site-packages"))


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    """Context -> wheels -> venv, as the builder stage does; world-readable, root-owned."""
    interpreter = runtime_interpreter()
    root = Path(tempfile.mkdtemp(prefix="csr-signer-image-"))
    try:
        root.chmod(0o755)
        context = root / "src"
        context.mkdir()
        builder = parse((REPO / "Dockerfile").read_text())[0]
        for source in copy_sources(builder):
            src = REPO / source
            if src.is_dir():
                shutil.copytree(
                    src,
                    context / source,
                    symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                )
            else:
                shutil.copy2(src, context / source)
        wheels = root / "wheels"
        pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-cache-dir",
                "--wheel-dir",
                str(wheels),
                ".",
            ],
            env=pip_env,
            cwd=context,
        )
        venv = root / "opt" / "csr-signer"
        run([interpreter, "-m", "venv", str(venv)])
        (project,) = wheels.glob("csr_signer-*.whl")
        pip = str(venv / "bin" / "pip")
        run(
            [
                pip,
                "install",
                "--no-cache-dir",
                "--no-index",
                "--find-links",
                str(wheels),
                str(project),
            ],
            env=pip_env,
        )
        run([pip, "uninstall", "--yes", "setuptools", "pip"], env=pip_env)
        yield Installed(root=root, wheels=wheels, venv=venv)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def image_env(installed: Installed) -> dict[str, str]:
    """The final stage's environment; HOME points nowhere, as for a UID with no passwd entry."""
    return {
        "PATH": f"{installed.bin}:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HOME": "/nonexistent",
    }


def as_image_user(installed: Installed, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*as_unprivileged(), *args],
        capture_output=True,
        text=True,
        env=image_env(installed),
        cwd="/",
        check=False,
        timeout=120,
    )


def test_wheel_carries_the_bundled_policies_byte_for_byte(installed: Installed) -> None:
    (project,) = installed.wheels.glob("csr_signer-*.whl")
    with zipfile.ZipFile(project) as wheel:
        bundled = {
            Path(n).name: wheel.read(n)
            for n in wheel.namelist()
            if n.startswith("signer/bundled_policies/")
        }
    expected = {p.name: p.read_bytes() for p in sorted((REPO / "policies").glob("*.yaml"))}
    assert expected
    assert bundled == expected


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        pytest.param(
            ("csr-signer", "--version"),
            f"csr-signer {__version__}",
            id="version-runs-as-uid-65532",
        ),
        pytest.param(
            ("csr-signer", "run", "--help"),
            "--signer-name",
            id="entrypoint-run-help-runs-as-uid-65532",
        ),
        pytest.param(
            ("csr-signer", "policy", "lint"),
            "bundled_policies: OK, 3 policies for 2 signers",
            id="policy-lint-finds-the-bundled-policies-inside-the-installed-wheel",
        ),
        pytest.param(
            (
                "python",
                "-c",
                "import signer.app, opentelemetry.exporter.otlp.proto.http.trace_exporter",
            ),
            "",
            id="every-runtime-import-resolves-including-the-lazy-otlp-exporter",
        ),
    ],
)
def test_installed_console_script_as_non_root(
    installed: Installed, args: tuple[str, ...], expect: str
) -> None:
    proc = as_image_user(installed, *args)
    assert proc.returncode == 0, proc.stderr
    assert expect in proc.stdout


def test_policy_lint_reads_policies_from_the_installed_package(installed: Installed) -> None:
    proc = as_image_user(installed, "csr-signer", "policy", "lint")
    assert str(installed.site_packages() / "signer" / "bundled_policies") in proc.stdout


def test_install_is_not_writable_by_the_image_user(installed: Installed) -> None:
    """With nothing writable, any attempted write at runtime would have failed above."""
    proc = as_image_user(
        installed, "python", "-c", f"open({str(installed.site_packages() / 'x')!r}, 'w')"
    )
    assert proc.returncode != 0
    assert "Permission denied" in proc.stderr


def test_bytecode_is_precompiled_for_every_module(installed: Installed) -> None:
    package = installed.site_packages() / "signer"
    missing = [
        str(source.relative_to(package))
        for source in package.rglob("*.py")
        if not list(source.parent.glob(f"__pycache__/{source.stem}.cpython-311*.pyc"))
    ]
    assert not missing


@pytest.mark.parametrize(
    "distribution",
    ["pip", "setuptools", "wheel", "pytest", "ruff", "mypy", "import_linter"],
)
def test_runtime_venv_holds_no_build_or_test_tooling(
    installed: Installed, distribution: str
) -> None:
    names = {
        p.name.split("-")[0].lower().replace("-", "_")
        for p in installed.site_packages().glob("*.dist-info")
    }
    assert "csr_signer" in names
    assert distribution not in names
