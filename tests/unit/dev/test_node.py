"""The node's configuration: the settings this machine needs, each checked where it is written.

The node itself runs in tests/node (root, a real kubelet); these keep the settings
from drifting without one.
"""

from __future__ import annotations

import resource
import tomllib
from pathlib import Path
from typing import Any

import pytest
from csr_signer_dev import node
from csr_signer_dev.image import PAUSE_IMAGE


@pytest.fixture
def kubelet(tmp_path: Path) -> dict[str, Any]:
    return node.kubelet_config(tmp_path, client_ca=tmp_path / "ca.crt", port=10250, healthz=10248)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("failCgroupV1", False, id="runs-on-the-hosts-hybrid-cgroup-v1-layout"),
        pytest.param("cgroupDriver", "cgroupfs", id="cgroupfs-because-no-systemd"),
        pytest.param("cgroupsPerQOS", False, id="no-qos-cgroup-hierarchy"),
        pytest.param("enforceNodeAllocatable", [], id="no-node-allocatable-cgroups"),
        pytest.param("failSwapOn", False, id="swap-does-not-stop-the-kubelet"),
        pytest.param("evictionHard", {}, id="no-hard-eviction-on-a-shared-disk"),
        pytest.param("imageGCHighThresholdPercent", 100, id="image-gc-off"),
        pytest.param("readOnlyPort", 0, id="no-unauthenticated-port"),
        pytest.param("authorization", {"mode": "Webhook"}, id="apiserver-authorizes-kubelet-api"),
    ],
)
def test_kubelet_setting(kubelet: dict[str, Any], field: str, value: object) -> None:
    assert kubelet[field] == value


def test_kubelet_max_open_files_stays_within_the_hosts_hard_limit(
    kubelet: dict[str, Any],
) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard == resource.RLIM_INFINITY or kubelet["maxOpenFiles"] <= hard


def test_kubelet_has_the_pod_certificate_gates(kubelet: dict[str, Any]) -> None:
    gates = kubelet["featureGates"]
    assert gates["PodCertificateRequest"] is True
    assert gates["ClusterTrustBundleProjection"] is True


def test_containerd_restricts_oom_score_adj_and_uses_runc_with_cgroupfs(tmp_path: Path) -> None:
    config = tomllib.loads(node.containerd_config(tmp_path))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == PAUSE_IMAGE
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is False
    assert runc["options"]["Root"].startswith(str(tmp_path))
    for key in ("root", "state"):
        assert config[key].startswith(str(tmp_path))
    assert config["grpc"]["address"].startswith(str(tmp_path))


def test_cni_is_a_bridge_with_host_local_ipam_on_the_private_range(tmp_path: Path) -> None:
    bridge = node.cni_config(tmp_path)["plugins"][0]  # type: ignore[index]
    assert bridge["type"] == "bridge"
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"] == [[{"subnet": node.POD_CIDR}]]
    assert bridge["ipam"]["dataDir"].startswith(str(tmp_path))
