"""Binary resolution: env override, and no half-built cache entry is ever used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from csr_signer_dev import binaries
from csr_signer_dev.gobuild import BuildError
from csr_signer_dev.settings import DevSettings


def dev_settings(tmp_path: Path, *, assets: Path | None = None) -> DevSettings:
    return DevSettings(cache_root=tmp_path / "cache", kubebuilder_assets=assets, go=None, go_env={})


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
    tmp_path: Path, present: tuple[str, ...], usable: bool
) -> None:
    settings = dev_settings(tmp_path)
    entry = binaries.cache_entry(settings)
    entry.mkdir(parents=True)
    for name in present:
        _fake_binary(entry / name)
    if usable:
        assert binaries.resolve(settings, build=False).kube_apiserver == entry / "kube-apiserver"
    else:
        with pytest.raises(binaries.BinariesError, match="no binaries"):
            binaries.resolve(settings, build=False)


def test_non_executable_file_is_not_a_binary(tmp_path: Path) -> None:
    settings = dev_settings(tmp_path)
    entry = binaries.cache_entry(settings)
    entry.mkdir(parents=True)
    for name in ("kube-apiserver", "etcd", "kubectl"):
        _fake_binary(entry / name)
    (entry / "etcd").chmod(0o644)
    with pytest.raises(binaries.BinariesError):
        binaries.resolve(settings, build=False)


def test_kubebuilder_assets_wins_over_the_cache(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("kube-apiserver", "etcd"):
        _fake_binary(assets / name)
    found = binaries.resolve(dev_settings(tmp_path, assets=assets), build=False)
    assert (found.kube_apiserver, found.etcd, found.kubectl) == (
        assets / "kube-apiserver",
        assets / "etcd",
        None,
    )


def test_kubebuilder_assets_without_binaries_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(binaries.BinariesError, match="KUBEBUILDER_ASSETS"):
        binaries.resolve(dev_settings(tmp_path, assets=tmp_path), build=False)


def test_missing_go_toolchain_is_a_clear_error(tmp_path: Path) -> None:
    settings = dev_settings(tmp_path)  # go=None: no toolchain anywhere
    with pytest.raises(BuildError, match=r"no Go toolchain.*KUBEBUILDER_ASSETS"):
        binaries.build_into_cache(settings, log=False)
    assert not binaries.cache_entry(settings).exists()
    assert os.listdir(settings.cache_root) == [f".{binaries.CACHE_KEY}.lock"]
