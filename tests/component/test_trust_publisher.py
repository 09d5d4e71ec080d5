"""The trust publisher's loop ends when cancelled, whenever the cancellation lands."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio import client

from signer.kube.trust import TrustPublisher
from signer.trust import TrustTargets

TARGETS = TrustTargets(
    signer_names=("csr-signer.dev/cluster-local",),
    namespaces=(),
    configmap_name="bundle",
    configmap_key="ca.crt",
    instance="test",
)


@pytest.mark.parametrize("steps", range(4), ids=lambda n: f"cancel-{n}-loop-steps-after-a-poke")
async def test_a_cancel_that_lands_with_a_poke_stops_the_loop(steps: int) -> None:
    """Python 3.11's `asyncio.wait_for` drops a cancellation that arrives as the awaited
    poke completes; the loop then never ended on shutdown (a SIGTERM'd leader waits for
    it while still renewing its Lease). No CA is loaded, so the loop only waits."""
    api = client.ApiClient(client.Configuration())
    try:
        publisher = TrustPublisher(api, targets=TARGETS, cas=dict, resync_seconds=60)
        task = asyncio.create_task(publisher.run())
        await asyncio.sleep(0.05)  # waiting for a poke
        publisher.poke()
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await api.close()
    assert done == {task}, "the loop went on after it was cancelled"
    assert task.cancelled()
