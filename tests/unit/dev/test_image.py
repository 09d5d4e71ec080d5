"""The image harness's pure parts: which base to stand in for, cache keys, engine settings.

The build itself (buildah, podman, mmdebstrap) runs in tests/packaging/test_image.py
and tests/e2e/test_image_controller.py against the real tools.
"""

from __future__ import annotations

import dataclasses
import resource
from pathlib import Path

import pytest
from csr_signer_dev.image import (
    IMAGE_ENTRYPOINT,
    IMAGE_USER,
    BaseRecipe,
    Engine,
    dockerfile_bases,
    host_ulimits,
    qualified,
)

from tests.packaging.dockerfile import parse

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("text", "bases"),
    [
        pytest.param(
            "FROM python:3.11-slim-bookworm AS builder\nRUN x\nFROM python:3.11-slim-bookworm\n",
            ["python:3.11-slim-bookworm"],
            id="two-stages-on-one-base-name-it-once",
        ),
        pytest.param(
            "FROM golang:1.26 AS build\nFROM build AS test\nFROM scratch\n",
            ["golang:1.26", "scratch"],
            id="a-stage-built-on-an-earlier-stage-is-not-an-external-base",
        ),
        pytest.param(
            "from --platform=linux/amd64 debian:bookworm as Base\nFROM base\n",
            ["debian:bookworm"],
            id="flags-and-case-do-not-hide-the-base",
        ),
        pytest.param(
            "# FROM evil:latest\nFROM python:3.11\n",
            ["python:3.11"],
            id="a-commented-from-is-not-a-base",
        ),
    ],
)
def test_dockerfile_bases(text: str, bases: list[str]) -> None:
    assert dockerfile_bases(text) == bases


def test_the_repository_dockerfile_has_one_base_the_stand_in_is_imported_as() -> None:
    (base,) = dockerfile_bases((REPO / "Dockerfile").read_text())
    assert qualified(base) == "docker.io/library/python:3.11-slim-bookworm"


@pytest.mark.parametrize(
    ("short", "full"),
    [
        pytest.param("python:3.11", "docker.io/library/python:3.11", id="official-image"),
        pytest.param("bitnami/kubectl:1", "docker.io/bitnami/kubectl:1", id="docker-hub-user"),
        pytest.param("quay.io/x/y:1", "quay.io/x/y:1", id="registry-with-a-dot-is-kept"),
        pytest.param("localhost/csr-signer:0.1.0", "localhost/csr-signer:0.1.0", id="localhost"),
        pytest.param("registry:5000/y", "registry:5000/y", id="registry-with-a-port-is-kept"),
    ],
)
def test_qualified_spells_short_names_as_buildah_stores_them(short: str, full: str) -> None:
    assert qualified(short) == full


def test_recipe_key_changes_with_any_ingredient_and_only_then() -> None:
    recipe = BaseRecipe()
    assert recipe.key() == BaseRecipe().key()
    changed = [
        dataclasses.replace(recipe, suite="trixie"),
        dataclasses.replace(recipe, packages=(*recipe.packages, "curl")),
        dataclasses.replace(recipe, sources=recipe.sources[:1]),
        dataclasses.replace(recipe, env=()),
    ]
    assert len({recipe.key(), *(c.key() for c in changed)}) == 1 + len(changed)


def test_recipe_asks_mmdebstrap_for_python_venv_pip_and_ca_certificates() -> None:
    argv = BaseRecipe().mmdebstrap_argv(Path("/tmp/out.tar"))
    include = next(a for a in argv if a.startswith("--include="))
    assert set(include.removeprefix("--include=").split(",")) >= {
        "python3.11",
        "python3-venv",
        "python3-pip",
        "ca-certificates",
    }
    assert argv[argv.index("bookworm") + 1] == "/tmp/out.tar"


def test_ulimits_never_exceed_the_hard_limits_of_this_process() -> None:
    limits = dict(u.split("=") for u in host_ulimits())
    for name, rlimit in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        soft, hard = (int(v) for v in limits[name].split(":"))
        ceiling = resource.getrlimit(rlimit)[1]
        assert soft <= hard
        assert ceiling == resource.RLIM_INFINITY or hard <= ceiling


def test_engine_runs_runc_with_cgroupfs_on_its_own_storage(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "storage", tmp_path / "run", ("nofile=10:10",))
    argv = engine.podman_argv("ps")
    assert argv[argv.index("--runtime") + 1] == "runc"
    assert argv[argv.index("--cgroup-manager") + 1] == "cgroupfs"
    assert argv[argv.index("--root") + 1] == str(tmp_path / "storage")
    assert engine.buildah_argv("images")[:3] == ["buildah", "--root", str(tmp_path / "storage")]
    assert engine.ulimit_args() == ["--ulimit", "nofile=10:10"]


def test_asserted_user_and_entrypoint_are_the_dockerfiles_and_the_charts() -> None:
    final = parse((REPO / "Dockerfile").read_text())[-1]
    assert final.all("USER")[-1].args == IMAGE_USER
    assert tuple(final.all("ENTRYPOINT")[-1].words()) == IMAGE_ENTRYPOINT
    values = (REPO / "deploy" / "chart" / "csr-signer" / "values.yaml").read_text()
    uid, gid = IMAGE_USER.split(":")
    assert f"runAsUser: {uid}" in values
    assert f"runAsGroup: {gid}" in values
