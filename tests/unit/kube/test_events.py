"""Event names: within the apiserver's 253 characters, and derived from the UID when once."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from signer.kube.events import EventRecorder

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Created:
    def __init__(self, conflict: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.conflict = conflict

    async def __call__(self, _namespace: str, body: Any, **_kw: Any) -> Any:
        self.bodies.append(body)
        if self.conflict:
            raise ApiException(status=409, reason="AlreadyExists")

        class Response:
            status = 201

            async def read(self) -> bytes:
                return b"{}"

            def release(self) -> None:
                pass

        return Response()


@pytest.mark.parametrize("once", [pytest.param(False, id="random"), pytest.param(True, id="once")])
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("web", id="short-name"),
        pytest.param("a" * 253, id="longest-csr-name"),
        pytest.param("a" * 220 + "-" + "b" * 32, id="a-cut-never-ends-in-a-dash"),
    ],
)
async def test_event_names_are_valid(
    monkeypatch: pytest.MonkeyPatch, name: str, once: bool
) -> None:
    created = Created()
    monkeypatch.setattr(client.CoreV1Api, "create_namespaced_event", created)
    async with client.ApiClient() as api:
        raw = {"metadata": {"name": name, "uid": "u-1", "resourceVersion": "7"}}
        for _ in range(2):
            await EventRecorder(api).record(
                raw, api_version="v1", kind="Thing", type_="Normal", reason="Pending",
                message="m", once=once,
            )  # fmt: skip
    names = [b["metadata"]["name"] for b in created.bodies]
    assert all(len(n) <= 253 and DNS_SUBDOMAIN.match(n) for n in names), names
    assert (names[0] == names[1]) is once, "once: the same name for the same UID"


async def test_once_already_recorded_is_quiet(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(client.CoreV1Api, "create_namespaced_event", Created(conflict=True))
    caplog.set_level(logging.WARNING)
    async with client.ApiClient() as api:
        raw = {"metadata": {"name": "web", "uid": "u-1"}}
        await EventRecorder(api).record(
            raw, api_version="v1", kind="Thing", type_="Normal", reason="Pending",
            message="m", once=True,
        )  # fmt: skip
    assert caplog.records == []


class Flaky(Created):
    """Fails with `statuses` first, then succeeds."""

    def __init__(self, *statuses: int) -> None:
        super().__init__()
        self.statuses = list(statuses)

    async def __call__(self, _namespace: str, body: Any, **kw: Any) -> Any:
        if self.statuses:
            self.bodies.append(body)
            raise ApiException(status=self.statuses.pop(0), reason="x")
        return await super().__call__(_namespace, body, **kw)


@pytest.mark.parametrize(
    ("statuses", "attempts"),
    [
        pytest.param((503,), 2, id="an-unavailable-apiserver-is-retried"),
        pytest.param((503, 429), 3, id="twice"),
        pytest.param((503, 503, 503), 3, id="at-most-three-attempts"),
        pytest.param((403,), 1, id="forbidden-is-not-retried"),
    ],
)
async def test_an_event_is_retried_while_the_apiserver_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, statuses: tuple[int, ...], attempts: int
) -> None:
    flaky = Flaky(*statuses)
    monkeypatch.setattr(client.CoreV1Api, "create_namespaced_event", flaky)
    monkeypatch.setattr("signer.kube.events.RETRY_DELAYS", (0.0, 0.0))
    async with client.ApiClient() as api:
        raw = {"metadata": {"name": "web", "uid": "u-1"}}
        await EventRecorder(api).record(
            raw, api_version="v1", kind="Thing", type_="Normal", reason="Issued", message="m"
        )
    assert len(flaky.bodies) == attempts
