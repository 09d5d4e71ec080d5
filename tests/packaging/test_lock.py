"""The image's lock files still pin, by hash, everything pyproject.toml asks for.

The Dockerfile installs third-party code only from requirements/runtime.txt and
requirements/build.txt with ``--require-hashes``; pip refuses a lock that misses
a dependency, but only at image build time. These checks say it at once, with
the file and line, when pyproject.toml changes without `make lock`. Each rule is
also run against a copy broken in exactly its way, so a rule that can no longer
fail is noticed.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from csr_signer_dev.pylock import BUILD_LOCK, RUNTIME_LOCK
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")
BUILD_TOOLING = {"pip", "setuptools", "wheel"}


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: int
    line: int


def parse_lock(text: str, path: str) -> dict[str, Pin]:
    """name -> Pin; `path:line: problem` for anything that is not `name==version --hash...`."""
    pins: dict[str, Pin] = {}
    logical: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if raw.lstrip().startswith("#") else raw.strip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        if whole and not whole.startswith("#"):
            logical.append((start, whole))
    for number, entry in logical:
        requirement = entry.split("#", 1)[0].strip()
        match = _PIN.match(requirement)
        if match is None:
            raise ValueError(f"{path}:{number}: {requirement[:60]!r}: not pinned with ==")
        hashes = len(_HASH.findall(requirement))
        if hashes == 0:
            raise ValueError(f"{path}:{number}: {match.group(1)}: no --hash=sha256")
        pins[canonicalize_name(match.group(1))] = Pin(match.group(2), hashes, number)
    return pins


def unsatisfied(requirements: list[str], pins: dict[str, Pin]) -> list[str]:
    """Each requirement the pins leave out or pin at a version it does not allow."""
    problems: list[str] = []
    for text in requirements:
        requirement = Requirement(text)
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement.name}: not in the lock")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(
                f"{requirement.name}: pinned {pin.version}, wants {requirement.specifier}"
            )
    return problems


Rule = Callable[[str, str], list[str]]
"""(runtime lock text, build lock text) -> problems."""


def runtime_covers_dependencies(runtime: str, _build: str) -> list[str]:
    return unsatisfied(PYPROJECT["project"]["dependencies"], parse_lock(runtime, "runtime"))


def build_covers_build_system(_runtime: str, build: str) -> list[str]:
    return unsatisfied(PYPROJECT["build-system"]["requires"], parse_lock(build, "build"))


def runtime_has_no_build_tooling(runtime: str, _build: str) -> list[str]:
    pins = parse_lock(runtime, "runtime")
    return [f"{name}: build tooling in the runtime lock" for name in BUILD_TOOLING & set(pins)]


def every_line_pinned_by_hash(runtime: str, build: str) -> list[str]:
    problems: list[str] = []
    for text, path in ((runtime, "runtime"), (build, "build")):
        try:
            parse_lock(text, path)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


RULES: list[tuple[str, Rule, Callable[[str, str], tuple[str, str]]]] = [
    (
        "runtime-lock-pins-every-dependency-of-pyproject",
        runtime_covers_dependencies,
        lambda runtime, build: (re.sub(r"(?m)^pydantic==", "pydantic-x==", runtime), build),
    ),
    (
        "runtime-lock-pins-versions-pyproject-allows",
        runtime_covers_dependencies,
        lambda runtime, build: (
            re.sub(r"(?m)^cryptography==\S+", "cryptography==1.0", runtime),
            build,
        ),
    ),
    (
        "build-lock-pins-the-build-system-requirements",
        build_covers_build_system,
        lambda runtime, build: (runtime, re.sub(r"(?m)^setuptools==\S+", "setuptools==1.0", build)),
    ),
    (
        "runtime-lock-holds-no-build-tooling",
        runtime_has_no_build_tooling,
        lambda runtime, build: (
            runtime + "\nsetuptools==1.0 --hash=sha256:" + "0" * 64 + "\n",
            build,
        ),
    ),
    (
        "every-requirement-is-pinned-with-a-hash",
        every_line_pinned_by_hash,
        lambda runtime, build: (re.sub(r"(?m)^(pyyaml==\S+) \\$", r"\1", runtime), build),
    ),
]


@pytest.mark.parametrize(("rule", "break_it"), [pytest.param(r, b, id=i) for i, r, b in RULES])
def test_lock_rule(rule: Rule, break_it: Callable[[str, str], tuple[str, str]]) -> None:
    runtime, build = ((REPO / p).read_text() for p in (RUNTIME_LOCK, BUILD_LOCK))
    assert rule(runtime, build) == []
    broken = break_it(runtime, build)
    assert broken != (runtime, build), "the mutation no longer applies; update it"
    assert rule(*broken) != []


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("aiohttp>=3\n", "lock:1: 'aiohttp>=3': not pinned with ==", id="range"),
        pytest.param(
            "# header\nsix==1.17.0\n", "lock:2: six: no --hash=sha256", id="pin-without-hash"
        ),
        pytest.param(
            "-e git+https://example.com/x\n", "lock:1: '-e git+https://", id="editable-url"
        ),
    ],
)
def test_parse_lock_names_file_line_and_problem(text: str, error: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(error)):
        parse_lock(text, "lock")
