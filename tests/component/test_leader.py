"""Leader election against a Lease API that stops answering (as under an apiserver stall)."""

from __future__ import annotations

import asyncio
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
