"""The image the Dockerfile really builds (buildah, `make image`), run as the chart runs it.

Every run is read-only, as UID 65532, with no network, all capabilities dropped
and no-new-privileges: what the chart's securityContext allows. The image comes
from the `controller_image` fixture (tests/conftest.py), which builds it exactly
as `make image` does, on the stand-in base (csr_signer_dev.image).

What it proves: the image's User and Entrypoint; the console script, the
bundled policies and every lazy import work without write access or a home
directory; the installed distributions are exactly the lock's pins (the build
is reproducible from requirements/runtime.txt) plus the project, with no build
or test tooling; bytecode is precompiled; nothing installed is writable by the
image's user; the OCI archive carries the same configuration.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from csr_signer_dev import image
from csr_signer_dev.pylock import RUNTIME_LOCK

from signer import __version__
from tests.packaging.test_lock import parse_lock

REPO = Path(__file__).resolve().parents[2]
SITE = "/opt/csr-signer/lib/python3.11/site-packages"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

Image = tuple[image.Engine, image.Built]


def in_image(controller_image: Image, script: str) -> str:
    """stdout of a Python `script` run locked down in the image."""
    engine, built = controller_image
    return image.run_in_image(engine, built.image_id, "python", "-c", script)


@pytest.mark.parametrize("check", image.smoke_checks(), ids=lambda c: c.name.replace(" ", "-"))
def test_smoke_check_passes_read_only_as_uid_65532_without_network(
    controller_image: Image, check: image.SmokeCheck
) -> None:
    engine, built = controller_image
    assert check.expect in image.run_in_image(engine, built.image_id, check.entrypoint, *check.args)


def test_image_config_runs_the_controller_as_65532(controller_image: Image) -> None:
    engine, built = controller_image
    config = (engine.inspect(built.image_id) or {})["Config"]
    assert config["User"] == image.IMAGE_USER
    assert tuple(config["Entrypoint"]) == image.IMAGE_ENTRYPOINT
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]


def test_runs_as_uid_65532_with_no_home_and_no_passwd_entry(controller_image: Image) -> None:
    out = in_image(controller_image, "import os; print(os.getuid(), os.getgid())")
    assert out.split() == ["65532", "65532"]


def test_the_bundled_policies_in_the_image_are_the_repositorys_byte_for_byte(
    controller_image: Image,
) -> None:
    script = (
        "import hashlib, json, pathlib, signer.policy as p;"
        "print(json.dumps({f.name: hashlib.sha256(f.read_bytes()).hexdigest()"
        " for f in pathlib.Path(p.bundled_policies_dir()).glob('*.yaml')}))"
    )
    inside = json.loads(in_image(controller_image, script))
    expected = {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted((REPO / "policies").glob("*.yaml"))
    }
    assert expected
    assert inside == expected


def test_installed_distributions_are_exactly_the_lock_and_the_project(
    controller_image: Image,
) -> None:
    """A rebuild installs the same versions: nothing beyond the lock, nothing missing."""
    script = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    installed = {
        name.lower().replace("_", "-").replace(".", "-"): version
        for name, version in json.loads(in_image(controller_image, script)).items()
    }
    pins = parse_lock((REPO / RUNTIME_LOCK).read_text(), str(RUNTIME_LOCK))
    assert installed.pop("csr-signer") == __version__
    assert installed == {name: pin.version for name, pin in pins.items()}


def test_bytecode_is_precompiled_for_every_module_of_the_project(controller_image: Image) -> None:
    script = (
        "import pathlib, sys;"
        f"root = pathlib.Path('{SITE}/signer');"
        "print([str(s.relative_to(root)) for s in root.rglob('*.py')"
        " if not list(s.parent.glob(f'__pycache__/{s.stem}.cpython-311*.pyc'))])"
    )
    assert in_image(controller_image, script).strip() == "[]"


def test_nothing_installed_is_writable_by_the_image_user_even_on_a_writable_root(
    controller_image: Image,
) -> None:
    engine, built = controller_image
    argv = engine.podman_argv(
        "run",
        "--rm",
        "--user",
        image.IMAGE_USER,
        "--network",
        "none",
        *engine.ulimit_args(),
        "--entrypoint",
        "python",
        built.image_id,
        "-c",
        f"open('{SITE}/x', 'w')",
    )
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode != 0
    assert "Permission denied" in proc.stderr


def test_the_image_holds_one_venv_layer_on_top_of_the_base(controller_image: Image) -> None:
    """The final stage only copies the venv: one layer with content above the base."""
    _engine, built = controller_image
    sized = [layer for layer in built.layers if layer.size > 0]
    assert len(sized) == 2, built.layers
    assert "COPY" in sized[1].created_by


def test_oci_archive_carries_the_image_config(controller_image: Image, tmp_path: Path) -> None:
    engine, built = controller_image
    archive = image.export_oci(engine, built.image_id, tmp_path / "csr-signer.oci.tar")
    proc = subprocess.run(
        ["skopeo", "inspect", "--config", f"oci-archive:{archive}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    config = json.loads(proc.stdout)["config"]
    assert config["User"] == image.IMAGE_USER
    assert tuple(config["Entrypoint"]) == image.IMAGE_ENTRYPOINT
