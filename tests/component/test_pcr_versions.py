"""Which PodCertificateRequest version is served decides where we watch and write.

The pinned apiserver serves only v1beta1 (tests/e2e cover it); these run the real
client against `fakepcrapi` to prove the rest: v1 is preferred when served, an
unserved API is waited for (not a crash, not a spin), and a version switched off or
added under a running watch is followed without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from signer.kube.pcrs import PcrClient, served_version, watch_pcrs
from signer.kube.watching import Handlers
from tests.component.fakepcrapi import GROUP, FakePcrApi, serving

SIGNER = "csr-signer.dev/knative-internal"


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        pytest.param({"v1", "v1beta1"}, "v1", id="v1-preferred-when-both-served"),
        pytest.param({"v1beta1"}, "v1beta1", id="beta-when-only-beta-served"),
        pytest.param({"v1"}, "v1", id="v1-alone"),
        pytest.param(set(), None, id="none-when-the-group-has-no-pcrs"),
        pytest.param({"v1alpha1"}, None, id="alpha-is-never-used"),
    ],
)
async def test_discovery_picks_the_preferred_served_version(
    served: set[str], expected: str | None
) -> None:
    async with serving(FakePcrApi(served)) as api:
        assert await served_version(api) == expected


class Seen:
    """What the watch handed over: the last list per signer."""

    def __init__(self) -> None:
        self.lists: list[list[dict[str, Any]]] = []
        self.changed = asyncio.Event()

    def handlers(self, _signer: str) -> Handlers:
        def on_list(items: list[dict[str, Any]]) -> None:
            self.lists.append(items)
            self.changed.set()

        return Handlers(on_list=on_list, on_event=lambda _k, _o: None)

    async def next_list(self) -> list[dict[str, Any]]:
        self.changed.clear()
        await asyncio.wait_for(self.changed.wait(), 10)
        return self.lists[-1]


@contextlib.asynccontextmanager
async def watching(
    fake: FakePcrApi, recheck: float = 0.2
) -> AsyncIterator[tuple[Seen, PcrClient, Callable[[], list[str]]]]:
    async with serving(fake) as api:
        seen = Seen()
        writer = PcrClient(api)
        task = asyncio.create_task(
            watch_pcrs(
                api,
                signers=[SIGNER],
                handlers=seen.handlers,
                writer=writer,
                timeout_seconds=5,
                recheck_seconds=recheck,
            )
        )

        def list_paths() -> list[str]:
            return [p for m, p in fake.requests if m == "GET" and p.endswith("requests")]

        try:
            yield seen, writer, list_paths
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_v1_is_watched_and_written_when_served() -> None:
    fake = FakePcrApi({"v1", "v1beta1"})
    fake.add("shop", "pod-1", SIGNER)
    async with watching(fake) as (seen, writer, list_paths):
        items = await seen.next_list()
        assert [i["metadata"]["name"] for i in items] == ["pod-1"]
        assert items[0]["apiVersion"] == f"{GROUP}/v1"
        assert writer.version == "v1"
        written = await writer.write_status(items[0], {"certificateChain": "x"})
    assert written["status"] == {"certificateChain": "x"}
    assert ("PUT", f"/apis/{GROUP}/v1/namespaces/shop/podcertificaterequests/pod-1/status") in (
        fake.requests
    )
    assert set(list_paths()) == {f"/apis/{GROUP}/v1/podcertificaterequests"}


async def test_an_unserved_api_is_waited_for_then_watched_once_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakePcrApi(set())
    fake.add("shop", "pod-1", SIGNER)
    async with watching(fake) as (seen, writer, list_paths):
        await asyncio.sleep(0.7)  # a few rechecks
        assert seen.lists == [] and list_paths() == []
        fake.served = {"v1beta1"}
        items = await seen.next_list()
    assert [i["metadata"]["name"] for i in items] == ["pod-1"]
    assert writer.version == "v1beta1"
    assert sum("not served" in r.message for r in caplog.records) == 1, "warned once"


async def test_a_version_switched_off_under_the_watch_is_rediscovered() -> None:
    fake = FakePcrApi({"v1beta1"})
    async with watching(fake, recheck=30) as (seen, writer, list_paths):
        await seen.next_list()
        fake.served = {"v1"}  # the beta watch ends and its relist gets a 404
        await seen.next_list()
        assert writer.version == "v1"
    assert list_paths()[0].endswith("/v1beta1/podcertificaterequests")
    assert list_paths()[-1].endswith("/v1/podcertificaterequests")


async def test_a_newly_preferred_version_replaces_a_served_one_at_the_recheck() -> None:
    fake = FakePcrApi({"v1beta1"})
    async with watching(fake) as (seen, writer, _list_paths):
        await seen.next_list()
        fake.served = {"v1", "v1beta1"}  # beta still works; discovery now prefers v1
        await seen.next_list()
        assert writer.version == "v1"


async def test_a_missing_pcr_reads_as_none() -> None:
    async with serving(FakePcrApi({"v1"})) as api:
        assert await PcrClient(api, version="v1").get("shop", "gone") is None
