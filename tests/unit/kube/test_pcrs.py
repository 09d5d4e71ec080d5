"""The PCR list function: an unserved beta API parks the watch quietly, once."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from signer.kube.errors import NotFound, ServerError
from signer.kube.pcrs import list_function


class Response:
    def __init__(self, status: int) -> None:
        self.status = status
        self.released = False

    def release(self) -> None:
        self.released = True


@pytest.mark.parametrize(
    ("outcome", "parks"),
    [
        pytest.param(Response(404), True, id="404-response-parks"),
        pytest.param(ApiException(status=404, reason="Not Found"), True, id="404-exception-parks"),
        pytest.param(Response(200), False, id="served-api-returns-the-response"),
    ],
)
async def test_unserved_api_parks_and_warns_once(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    outcome: Any,
    parks: bool,
) -> None:
    seen: dict[str, Any] = {}

    async def fake_list(_self: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(
        client.CertificatesV1beta1Api, "list_pod_certificate_request_for_all_namespaces", fake_list
    )
    parked: list[int] = []

    async def park() -> None:
        parked.append(1)

    caplog.set_level(logging.WARNING)
    async with client.ApiClient() as api:
        list_pcrs = list_function(api, park=park)
        for _ in range(2):
            if parks:
                with pytest.raises(NotFound):
                    await list_pcrs(field_selector="spec.signerName=a.b/c")
            else:
                assert await list_pcrs(field_selector="spec.signerName=a.b/c") is outcome
    assert seen["field_selector"] == "spec.signerName=a.b/c"
    assert len(parked) == (2 if parks else 0)
    assert sum("not served" in r.message for r in caplog.records) == (1 if parks else 0)


async def test_other_errors_propagate_for_the_watch_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fake_list(_self: Any, **_kwargs: Any) -> Any:
        raise ApiException(status=500, reason="boom")

    monkeypatch.setattr(
        client.CertificatesV1beta1Api, "list_pod_certificate_request_for_all_namespaces", fake_list
    )
    async with client.ApiClient() as api:
        with pytest.raises(ServerError):
            await list_function(api)()
