"""A control plane with a real node (this host): the chart's Pods run on it.

Separate from tests/e2e's loopback control plane: the apiserver here listens on
the node's address so the `kubernetes` Service leads Pods to it, and a kubelet,
kube-proxy, kube-scheduler and kube-controller-manager run beside it
(csr_signer_dev.node). Needs root; `make e2e-node` runs these tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from csr_signer_dev import image, node, nodebinaries
from csr_signer_dev.controlplane import ControlPlane
from csr_signer_dev.settings import from_environment


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/node/" in str(item.path):
            item.add_marker(pytest.mark.node)


@pytest.fixture(scope="package")
def cluster(controller_image: tuple[image.Engine, image.Built]) -> Iterator[node.Node]:
    """The control plane and its node, with the controller image imported; torn down when
    tests/node is done, so the rest of the session does not share the CPU with a kubelet."""
    if os.geteuid() != 0:
        pytest.skip("a node needs root (containerd, kubelet, network namespaces)")
    node.ensure_node_packages(log=False)
    engine, built = controller_image
    binaries = nodebinaries.resolve(from_environment(), log=False)
    with ControlPlane(node_ip=node.node_ip()) as cp:
        running = node.Node(cp, binaries, engine, (built.name,))
        running.start()
        try:
            yield running
        finally:
            running.stop()
