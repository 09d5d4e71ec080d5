"""WorkQueue: dedupe, serial per key, nothing lost, exponential backoff."""

from __future__ import annotations

import asyncio

import pytest

from signer.reactor.queueing import WorkQueue, run_worker
from signer.reactor.state import requester_lane


async def test_adding_a_queued_key_again_is_a_no_op() -> None:
    queue = WorkQueue()
    for key in ("a", "b", "a", "a"):
        queue.add(key)
    assert queue.depth == 2
    assert [await queue.get(), await queue.get()] == ["a", "b"]


async def test_a_key_added_while_processing_is_handed_out_again_after_done() -> None:
    queue = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")  # e.g. a watch event while we reconcile
    assert queue.depth == 0, "not handed to a second worker while in flight"
    queue.done(key or "")
    assert await queue.get() == "a"


async def test_one_key_is_never_processed_by_two_workers_at_once() -> None:
    queue = WorkQueue()
    active: dict[str, int] = {}
    overlaps: list[str] = []
    seen: list[str] = []

    async def handler(key: str) -> None:
        active[key] = active.get(key, 0) + 1
        if active[key] > 1:
            overlaps.append(key)
        await asyncio.sleep(0.01)
        queue.add(key) if len(seen) < 20 else None
        seen.append(key)
        active[key] -= 1

    workers = [asyncio.create_task(run_worker(queue, handler)) for _ in range(4)]
    for key in ("a", "b", "a", "c", "a"):
        queue.add(key)
    while len(seen) < 20:
        await asyncio.sleep(0.01)
    queue.shutdown()
    await asyncio.wait_for(asyncio.gather(*workers), timeout=5)
    assert overlaps == []


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        pytest.param(1, [0.05], id="first-retry-waits-the-base-delay"),
        pytest.param(4, [0.05, 0.1, 0.2, 0.4], id="each-failure-doubles-the-delay"),
        pytest.param(12, [0.05 * 2**i for i in range(10)] + [30.0, 30.0], id="delay-is-capped"),
    ],
)
async def test_retry_backs_off_exponentially(failures: int, expected: list[float]) -> None:
    queue = WorkQueue(base_delay=0.05, max_delay=30.0)
    delays = [queue.retry("k") for _ in range(failures)]
    queue.shutdown()
    assert delays == pytest.approx(expected)


async def test_forget_resets_the_backoff() -> None:
    queue = WorkQueue(base_delay=0.05)
    queue.retry("k")
    queue.retry("k")
    queue.forget("k")
    assert queue.retry("k") == pytest.approx(0.05)
    queue.shutdown()


async def test_retried_key_comes_back_after_its_delay() -> None:
    queue = WorkQueue(base_delay=0.02)
    queue.retry("k")
    assert await asyncio.wait_for(queue.get(), timeout=1) == "k"


async def test_shutdown_wakes_every_waiting_worker() -> None:
    queue = WorkQueue()
    waiting = [asyncio.create_task(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    queue.shutdown()
    assert await asyncio.wait_for(asyncio.gather(*waiting), timeout=1) == [None, None, None]
    queue.add("late")
    assert queue.depth == 0


@pytest.mark.parametrize(
    ("username", "lane"),
    [
        pytest.param("system:serviceaccount:team-a:web", "namespace:team-a", id="sa-lane-is-ns"),
        pytest.param(
            "system:serviceaccount:team-a:other", "namespace:team-a", id="more-sas-no-more-lanes"
        ),
        pytest.param("alice", "user:alice", id="a-human-has-their-own-lane"),
        pytest.param("", "user:", id="no-username-shares-one-lane"),
    ],
)
def test_requester_lane(username: str, lane: str) -> None:
    assert requester_lane({"spec": {"username": username}}) == lane


async def test_a_flooding_requester_does_not_starve_another() -> None:
    lanes = {f"flood-{i}": "noisy" for i in range(1000)} | {"innocent": "quiet"}
    queue = WorkQueue(lane_of=lanes.__getitem__)
    for i in range(1000):
        queue.add(f"flood-{i}")
    queue.add("innocent")
    served = [await queue.get() for _ in range(3)]
    assert served == ["flood-0", "innocent", "flood-1"], "lanes are served in turn"
