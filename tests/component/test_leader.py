"""Leader election against a Lease API that stops answering (as under an apiserver stall)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from kubernetes_asyncio import client

from signer.kube.leader import LeaderElector


class SilentLeases:
    """A CoordinationV1Api whose every call waits forever: no answer, no error."""

    async def read_namespaced_lease(self, *_args: Any, **_kwargs: Any) -> Any:
        await asyncio.Event().wait()


async def test_a_renewal_that_gets_no_answer_is_logged_with_its_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The chaos suite's apiserver stalls logged `lease renewal failed: ` and nothing
    more: a timeout's message is empty. The log must say why the leader steps down."""
    api = client.ApiClient(client.Configuration())
    try:
        elector = LeaderElector(
            api,
            namespace="ns",
            name="lease",
            identity="me",
            lease_duration=1.0,
            renew_deadline=0.3,
            retry_period=0.1,
        )
        elector._leases = SilentLeases()  # type: ignore[assignment]
        with caplog.at_level(logging.WARNING, logger="signer.kube.leader"):
            await asyncio.wait_for(elector._renew_loop(), timeout=5)
    finally:
        await api.close()
    messages = [r.getMessage() for r in caplog.records]
    assert messages, "the renewal failure was not logged"
    assert all(m.startswith("lease renewal failed: no answer within ") for m in messages)


class Answer:
    """A raw response as `_preload_content=False` returns it."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.status = 200
        self._body = json.dumps(body).encode()

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        pass


class LeasesThatCancelOnAnswer:
    """Holds the Lease for `identity`; its N-th replace cancels `task` in the very step
    the renewal completes, as a SIGTERM's shutdown cancels the renew task at any moment."""

    def __init__(self, identity: str, cancel_on: int) -> None:
        self.lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "lease", "namespace": "ns"},
            "spec": {"holderIdentity": identity, "leaseDurationSeconds": 1},
        }
        self.cancel_on = cancel_on
        self.replaces = 0
        self.task: asyncio.Task[None] | None = None

    async def read_namespaced_lease(self, *_args: Any, **_kwargs: Any) -> Answer:
        return Answer(self.lease)

    async def replace_namespaced_lease(self, _name: str, _ns: str, body: Any, **_kw: Any) -> Answer:
        self.lease = body
        self.replaces += 1
        if self.replaces == self.cancel_on and self.task is not None:
            self.task.cancel()
        return Answer(body)


async def test_the_renew_loop_stops_when_cancelled_as_a_renewal_completes() -> None:
    """Python 3.11's `asyncio.wait_for` returns the inner result and drops a cancellation
    that arrives as the inner call completes: the renew loop then kept renewing after the
    leader was told to stop, so a SIGTERM'd leader held its Lease (make chaos, seed 904122,
    fault #26: no exit within 90 s of SIGTERM, standby not leading for 105 s)."""
    api = client.ApiClient(client.Configuration())
    try:
        elector = LeaderElector(
            api,
            namespace="ns",
            name="lease",
            identity="me",
            lease_duration=1.0,
            renew_deadline=0.5,
            retry_period=0.05,
        )
        leases = LeasesThatCancelOnAnswer("me", cancel_on=2)
        elector._leases = leases  # type: ignore[assignment]
        renew = asyncio.create_task(elector._renew_loop())
        leases.task = renew
        done, _ = await asyncio.wait({renew}, timeout=1.0)
        renewals_after_cancel = leases.replaces - leases.cancel_on
    finally:
        renew.cancel()
        await asyncio.gather(renew, return_exceptions=True)
        await api.close()
    assert done == {renew}, f"still renewing: {renewals_after_cancel} renewals after the cancel"
    assert renew.cancelled()
    assert renewals_after_cancel == 0
