"""list -> watch -> relist, against a scripted fake of the list/watch endpoint."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from signer.kube.errors import ApiError, Gone
from signer.kube.watching import Backoff, Handlers, list_all, list_and_watch, watch_once


class FakeResponse:
    def __init__(
        self, body: Any = None, lines: list[dict[str, Any]] | None = None, status: int = 200
    ) -> None:
        self.status = status
        self._body = body
        self._lines = lines or []
        self.released = False

    async def read(self) -> bytes:
        return json.dumps(self._body).encode()

    @property
    def content(self) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            for line in self._lines:
                yield json.dumps(line).encode() + b"\n"

        return gen()

    def release(self) -> None:
        self.released = True


def obj(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv}}


class Script:
    """Each call pops the next scripted response (or exception)."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> FakeResponse:
        self.calls.append(kwargs)
        if not self.steps:
            await asyncio.sleep(3600)  # a quiet watch
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


async def test_list_follows_continue_tokens_and_keeps_the_first_resource_version() -> None:
    script = Script(
        FakeResponse(
            {"metadata": {"resourceVersion": "10", "continue": "t1"}, "items": [obj("a", "5")]}
        ),
        FakeResponse({"metadata": {"resourceVersion": "11"}, "items": [obj("b", "6")]}),
    )
    items, rv = await list_all(script, field_selector="spec.signerName=x")
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
    assert rv == "10"
    assert script.calls[1]["_continue"] == "t1"


@pytest.mark.parametrize(
    ("events", "delivered", "last_rv"),
    [
        pytest.param(
            [{"type": "ADDED", "object": obj("a", "12")}],
            ["ADDED a"],
            "12",
            id="events-advance-the-resource-version",
        ),
        pytest.param(
            [{"type": "BOOKMARK", "object": obj("", "20")}],
            [],
            "20",
            id="bookmarks-advance-without-an-event",
        ),
        pytest.param(
            [{"type": "WHATEVER", "object": obj("a", "30")}],
            [],
            "10",
            id="unknown-event-types-are-skipped",
        ),
        pytest.param(
            [
                {"type": "MODIFIED", "object": obj("a", "13")},
                {"type": "DELETED", "object": obj("a", "14")},
            ],
            ["MODIFIED a", "DELETED a"],
            "14",
            id="modified-and-deleted-are-delivered-in-order",
        ),
    ],
)
async def test_watch_once(events: list[dict[str, Any]], delivered: list[str], last_rv: str) -> None:
    seen: list[str] = []
    response = FakeResponse(lines=events)
    rv = await watch_once(
        Script(response),
        "10",
        lambda t, o: seen.append(f"{t} {o['metadata']['name']}"),
        timeout_seconds=5,
    )
    assert (seen, rv) == (delivered, last_rv)
    assert response.released


@pytest.mark.parametrize(
    ("code", "error"),
    [
        pytest.param(410, Gone, id="error-event-410-means-relist"),
        pytest.param(500, ApiError, id="other-error-events-raise"),
    ],
)
async def test_watch_error_events(code: int, error: type[Exception]) -> None:
    response = FakeResponse(lines=[{"type": "ERROR", "object": {"code": code, "message": "x"}}])
    with pytest.raises(error):
        await watch_once(Script(response), "10", lambda t, o: None, timeout_seconds=5)


async def test_gone_relists_instead_of_dropping_the_resource_version() -> None:
    listed: list[list[str]] = []
    script = Script(
        FakeResponse({"metadata": {"resourceVersion": "10"}, "items": [obj("a", "5")]}),
        FakeResponse(lines=[{"type": "ERROR", "object": {"code": 410, "message": "too old"}}]),
        FakeResponse({"metadata": {"resourceVersion": "50"}, "items": [obj("b", "45")]}),
    )
    handlers = Handlers(
        on_list=lambda items: listed.append([i["metadata"]["name"] for i in items]),
        on_event=lambda t, o: None,
    )
    task = asyncio.create_task(list_and_watch(script, handlers, timeout_seconds=5))
    while len(script.calls) < 4:
        await asyncio.sleep(0.01)
    task.cancel()
    assert listed == [["a"], ["b"]]
    watches = [c for c in script.calls if c.get("watch")]
    assert [w["resource_version"] for w in watches] == ["10", "50"]


async def test_transport_errors_back_off_then_relist() -> None:
    errors: list[str] = []
    script = Script(
        OSError("connection refused"),
        FakeResponse({"metadata": {"resourceVersion": "7"}, "items": []}),
    )
    handlers = Handlers(
        on_list=lambda items: None,
        on_event=lambda t, o: None,
        on_error=lambda e: errors.append(e.kind),
    )
    task = asyncio.create_task(
        list_and_watch(script, handlers, timeout_seconds=5, backoff=Backoff(base=0.01))
    )
    while len(script.calls) < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    assert errors == ["transport"]
    assert script.calls[2]["resource_version"] == "7"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        pytest.param(410, Gone, id="watch-answered-410-means-relist"),
        pytest.param(403, ApiError, id="watch-answered-403-raises"),
    ],
)
async def test_watch_http_errors_are_not_read_as_an_empty_stream(
    status: int, error: type[Exception]
) -> None:
    response = FakeResponse({"kind": "Status", "code": status, "message": "no"}, status=status)
    with pytest.raises(error):
        await watch_once(Script(response), "10", lambda t, o: None, timeout_seconds=5)
    assert response.released


async def test_list_http_error_raises_instead_of_returning_the_status_object() -> None:
    script = Script(
        FakeResponse({"kind": "Status", "code": 403, "message": "forbidden"}, status=403)
    )
    with pytest.raises(ApiError, match="403"):
        await list_all(script)


async def test_list_keeps_only_what_the_handler_wants_page_by_page() -> None:
    script = Script(
        FakeResponse(
            {
                "metadata": {"resourceVersion": "9", "continue": "t"},
                "items": [obj("a", "1"), obj("done", "2")],
            }
        ),
        FakeResponse({"metadata": {"resourceVersion": "9"}, "items": [obj("b", "3")]}),
    )
    items, _ = await list_all(script, lambda o: o["metadata"]["name"] != "done")
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
