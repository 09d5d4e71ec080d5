"""Binary resolution: env override, and no half-built cache entry is ever used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from signer.local import binaries


def _fake_binary(path: Path) -> None:
    path.write_text("#!/bin/sh\necho fake\n")
    path.chmod(0o755)


@pytest.mark.parametrize(
    ("present", "usable"),
    [
        pytest.param(("kube-apiserver", "etcd", "kubectl"), True, id="complete-entry-is-used"),
        pytest.param(("kube-apiserver", "etcd"), False, id="entry-without-kubectl-is-incomplete"),
        pytest.param(("kube-apiserver",), False, id="entry-without-etcd-is-incomplete"),
        pytest.param((), False, id="empty-entry-is-incomplete"),
    ],
)
def test_cache_entry_is_used_only_when_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, present: tuple[str, ...], usable: bool
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    entry = binaries.cache_root() / binaries.CACHE_KEY
    entry.mkdir(parents=True)
    for name in present:
        _fake_binary(entry / name)
    if usable:
        assert binaries.resolve(build=False).kube_apiserver == entry / "kube-apiserver"
    else:
        with pytest.raises(binaries.BinariesError, match="no binaries"):
            binaries.resolve(build=False)


def test_non_executable_file_is_not_a_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    entry = binaries.cache_root() / binaries.CACHE_KEY
    entry.mkdir(parents=True)
    for name in ("kube-apiserver", "etcd", "kubectl"):
        _fake_binary(entry / name)
    (entry / "etcd").chmod(0o644)
    with pytest.raises(binaries.BinariesError):
        binaries.resolve(build=False)


def test_kubebuilder_assets_wins_over_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("kube-apiserver", "etcd"):
        _fake_binary(assets / name)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    found = binaries.resolve(build=False)
    assert (found.kube_apiserver, found.etcd, found.kubectl) == (
        assets / "kube-apiserver",
        assets / "etcd",
        None,
    )


def test_kubebuilder_assets_without_binaries_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    with pytest.raises(binaries.BinariesError, match="KUBEBUILDER_ASSETS"):
        binaries.resolve(build=False)


def test_missing_go_toolchain_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no `go` here
    monkeypatch.setattr(binaries, "_TARBALL_GO", str(tmp_path / "no-go"))  # nor there
    with pytest.raises(binaries.BinariesError, match="no Go toolchain"):
        binaries.build_into_cache(log=False)
    assert not (binaries.cache_root() / binaries.CACHE_KEY).exists()
    assert os.listdir(binaries.cache_root()) == [f".{binaries.CACHE_KEY}.lock"]
