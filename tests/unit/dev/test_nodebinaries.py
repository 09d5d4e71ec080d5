"""The node's build plan: one Kubernetes release with the control plane, and a tiny pause.

A fake toolchain answers `go mod download` with a k8s.io/kubernetes go.mod, so the
plan is checked without a network; the real build runs in `csr-signer local build --node`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from csr_signer_dev import binaries, nodebinaries
from csr_signer_dev.gobuild import BuildError, Go
from csr_signer_dev.settings import DevSettings

KUBERNETES_GOMOD = """\
module k8s.io/kubernetes

go 1.26.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)
"""


class FakeGo(Go):
    def __init__(self, gomod: str) -> None:
        super().__init__("go", {}, cwd=Path("/"), log=False)
        self._gomod = gomod

    def gomod(self, module: str, version: str) -> str:
        assert (module, version) == ("k8s.io/kubernetes", binaries.KUBERNETES_VERSION)
        return self._gomod


def test_node_binaries_are_the_control_planes_release_with_staging_replaced() -> None:
    _pause, node = nodebinaries.plan(FakeGo(KUBERNETES_GOMOD))
    assert node.requires == (f"k8s.io/kubernetes {binaries.KUBERNETES_VERSION}",)
    assert node.replaces == (
        f"k8s.io/api => k8s.io/api {binaries.STAGING_VERSION}",
        f"k8s.io/client-go => k8s.io/client-go {binaries.STAGING_VERSION}",
    )
    assert [b.name for b in node.binaries] == [
        "kubelet",
        "kube-scheduler",
        "kube-controller-manager",
        "kube-proxy",
    ]
    assert {b.version for b in node.binaries} == {binaries.KUBERNETES_VERSION}
    assert node.go_directive == "1.26.0"


def test_pause_is_built_from_its_own_source_with_no_dependencies() -> None:
    pause, _node = nodebinaries.plan(FakeGo(KUBERNETES_GOMOD))
    assert pause.requires == ()
    ((path, source),) = pause.sources
    (binary,) = pause.binaries
    assert binary.package == f"{pause.path}/{Path(path).parent}"
    assert "package main" in source
    assert nodebinaries.PAUSE_VERSION in source
    assert binary.version == nodebinaries.PAUSE_VERSION


def test_a_kubernetes_gomod_without_staging_replaces_is_an_error() -> None:
    with pytest.raises(BuildError, match="staging"):
        nodebinaries.plan(FakeGo("module k8s.io/kubernetes\n\ngo 1.26\n"))


@pytest.mark.parametrize(
    ("present", "complete"),
    [
        pytest.param(nodebinaries.NAMES, True, id="every-binary-present-is-complete"),
        pytest.param(nodebinaries.NAMES[:-1], False, id="without-pause-is-incomplete"),
        pytest.param(nodebinaries.NAMES[1:], False, id="without-kubelet-is-incomplete"),
    ],
)
def test_node_entry_is_used_only_when_complete(
    tmp_path: Path, present: tuple[str, ...], complete: bool
) -> None:
    settings = DevSettings(cache_root=tmp_path, kubebuilder_assets=None, go=None, go_env={})
    entry = nodebinaries.cache_entry(settings)
    entry.mkdir()
    for name in present:
        (entry / name).write_text("#!/bin/sh\n")
        (entry / name).chmod(0o755)
    if complete:
        assert nodebinaries.resolve(settings, build=False) == entry
    else:
        with pytest.raises(BuildError, match="local build --node"):
            nodebinaries.resolve(settings, build=False)
