"""The runtime wheel (what the Dockerfile installs) carries the controller only.

The development harness is the separate `csr-signer-dev` distribution in dev/;
neither it nor the tests may ride along in `pip wheel .`, and the runtime CLI
must work without the `local` group that distribution registers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from signer.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


# Local state, not source: a stale build/lib would ride along in the wheel, and
# building in the checkout would leave build/ and *.egg-info behind.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel `pip wheel .` builds, as the Dockerfile does, from a clean copy of the checkout.

    The copy keeps dev/, tests/ and everything else, so it is the packaging
    configuration that must leave them out.
    """
    source = tmp_path_factory.mktemp("source") / "csr-signer"
    shutil.copytree(REPO, source, symlinks=True, ignore=_NOT_SOURCE)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--quiet", "-w", str(out)],
        cwd=source,
        check=True,
        timeout=300,
    )
    (path,) = out.glob("csr_signer-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


@pytest.fixture(scope="module")
def wheel_names(wheel: zipfile.ZipFile) -> list[str]:
    return wheel.namelist()


def test_the_wheel_carries_the_controller_and_its_cli(wheel_names: list[str]) -> None:
    for module in ("signer/cli.py", "signer/app.py", "signer/commands/run.py"):
        assert module in wheel_names
    assert any(n.startswith("signer/bundled_policies/") for n in wheel_names)


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("signer/local/", id="no-old-harness"),
        pytest.param("signer/commands/local.py", id="no-local-command"),
        pytest.param("csr_signer_dev/", id="no-dev-package"),
        pytest.param("dev/", id="no-dev-directory"),
        pytest.param("tests/", id="no-tests"),
        pytest.param("benchmarks/", id="no-benchmarks"),
    ],
)
def test_the_wheel_leaves_out(wheel_names: list[str], prefix: str) -> None:
    assert not [n for n in wheel_names if n.startswith(prefix)]


def test_the_wheel_registers_the_console_script_only(
    wheel: zipfile.ZipFile, wheel_names: list[str]
) -> None:
    """No `csr_signer.commands` entry: command groups come from other distributions."""
    (name,) = [n for n in wheel_names if n.endswith(".dist-info/entry_points.txt")]
    lines = [line.strip() for line in wheel.read(name).decode().splitlines() if line.strip()]
    assert lines == ["[console_scripts]", "csr-signer = signer.cli:main"]


def test_help_works_without_any_installed_command_group(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"], extra_groups=[])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "policy", "sign", "ca"):
        assert command in out
    assert "local" not in out


def test_local_is_an_invalid_choice_without_the_dev_package(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser(extra_groups=[]).parse_args(["local", "up"])
    assert exited.value.code == 2
    assert "invalid choice: 'local'" in capsys.readouterr().err
