"""The harness reads the environment in one place; these are the variables it honours."""

from __future__ import annotations

from pathlib import Path

from csr_signer_dev.settings import find_go, from_environment


def _executable(path: Path) -> str:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_cache_and_assets_come_from_their_variables(tmp_path: Path) -> None:
    settings = from_environment(
        {"XDG_CACHE_HOME": str(tmp_path), "KUBEBUILDER_ASSETS": "/opt/assets", "PATH": ""}
    )
    assert settings.cache_root == tmp_path / "csr-signer" / "bin"
    assert settings.kubebuilder_assets == Path("/opt/assets")


def test_without_variables_the_cache_is_under_home_and_there_are_no_assets() -> None:
    settings = from_environment({"PATH": ""})
    assert settings.cache_root == Path.home() / ".cache" / "csr-signer" / "bin"
    assert settings.kubebuilder_assets is None


def test_go_commands_keep_the_environment_with_the_build_settings_forced() -> None:
    env = from_environment({"GOMODCACHE": "/m", "GOWORK": "/w/go.work", "PATH": ""}).go_env
    assert env["GOMODCACHE"] == "/m"
    assert (env["GOWORK"], env["GOTOOLCHAIN"], env["CGO_ENABLED"]) == ("off", "local", "0")


def test_go_on_path_wins_over_the_tarball_location(tmp_path: Path) -> None:
    on_path = _executable(tmp_path / "go")
    tarball = _executable(tmp_path / "tarball-go")
    assert find_go(str(tmp_path), fallback=tarball) == on_path


def test_the_tarball_location_is_the_fallback(tmp_path: Path) -> None:
    tarball = _executable(tmp_path / "tarball-go")
    assert find_go(str(tmp_path / "empty"), fallback=tarball) == tarball
    assert find_go(str(tmp_path / "empty"), fallback=str(tmp_path / "none")) is None
