"""The concurrency limit rises while the API is fast and in use, and falls when it is not."""

from __future__ import annotations

import asyncio

import pytest

from signer.reactor.concurrency import AdaptiveLimit, FixedLimit
from signer.reactor.queueing import WorkQueue, run_worker

FAST, SLOW = 0.010, 0.050


def busy(limit: AdaptiveLimit) -> AdaptiveLimit:
    """Every slot taken, as under a backlog."""
    limit.in_flight = limit.limit
    return limit


@pytest.mark.parametrize(
    ("calls", "in_use", "expect"),
    [
        pytest.param([FAST] * 40, True, lambda n: n > 8, id="steady-calls-in-use-grow-the-limit"),
        pytest.param([FAST] * 40, False, lambda n: n == 4, id="an-idle-limit-does-not-grow"),
        pytest.param(
            [FAST] * 100 + [FAST * 5] * 30,
            True,
            lambda n: n < 20,
            id="a-sustained-slowdown-shrinks-it",
        ),
        pytest.param(
            [FAST, FAST * 3] * 40,
            True,
            lambda n: n > 8,
            id="noisy-but-not-slower-on-average-still-grows",
        ),
        pytest.param([FAST] * 5000, True, lambda n: n == 64, id="never-above-the-maximum"),
        pytest.param(
            [FAST] * 100 + [FAST * 50] * 300, True, lambda n: n >= 2, id="never-below-the-minimum"
        ),
    ],
)
def test_limit_follows_latency(calls: list[float], in_use: bool, expect: object) -> None:
    limit = AdaptiveLimit(initial=4, minimum=2, maximum=64)
    for rtt in calls:
        if in_use:
            busy(limit)
        limit.observe(rtt, overloaded=False)
    assert expect(limit.limit), limit.limit  # type: ignore[operator]


def test_an_overload_answer_halves_the_limit() -> None:
    limit = AdaptiveLimit(initial=32, minimum=2, maximum=64)
    limit.observe(FAST, overloaded=True)
    assert limit.limit == 16
    for _ in range(10):
        limit.observe(FAST, overloaded=True)
    assert limit.limit == 2, "never below the minimum"


def test_after_a_slow_spell_the_baseline_follows_latency_back_down() -> None:
    limit = AdaptiveLimit()
    for rtt in [FAST] * 50 + [SLOW] * 1000 + [FAST] * 100:
        limit.observe(rtt, overloaded=False)
    assert limit.long is not None and limit.long < 2 * FAST


def test_a_fixed_limit_never_moves() -> None:
    limit = FixedLimit(8)
    for rtt, overloaded in [(FAST, False)] * 100 + [(SLOW, False), (FAST, True)]:
        busy(limit).observe(rtt, overloaded=overloaded)
    assert limit.limit == 8


async def test_workers_never_exceed_the_limit_and_all_keys_are_handled() -> None:
    limit = AdaptiveLimit(initial=3, minimum=3, maximum=3)
    queue = WorkQueue()
    running = 0
    peak = 0
    handled: list[str] = []

    async def handler(key: str) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        handled.append(key)

    workers = [asyncio.create_task(run_worker(queue, handler, limit)) for _ in range(10)]
    for i in range(30):
        queue.add(f"k{i}")
    while len(handled) < 30:
        await asyncio.sleep(0.01)
    queue.shutdown()
    await asyncio.gather(*workers)
    assert peak == 3
    assert sorted(handled) == sorted(f"k{i}" for i in range(30))
    assert limit.in_flight == 0, "every slot returned"


async def test_a_raised_limit_lets_waiting_workers_in_at_once() -> None:
    limit = AdaptiveLimit(initial=2, minimum=1, maximum=8)
    await limit.acquire()
    await limit.acquire()
    waiting = asyncio.create_task(limit.acquire())
    await asyncio.sleep(0)
    assert not waiting.done()
    for _ in range(10):  # steady calls while full: toward limit + sqrt(limit)
        limit.observe(FAST, overloaded=False)
    await asyncio.wait_for(waiting, 1)
    assert limit.in_flight == 3


async def test_idle_workers_hold_no_slot_so_the_limit_does_not_creep_up() -> None:
    """Lease renewals and Events on an idle controller must not raise the limit."""
    limit = AdaptiveLimit(initial=4, minimum=2, maximum=64)
    queue = WorkQueue()

    async def handler(_key: str) -> None:
        raise AssertionError("no work was queued")

    workers = [asyncio.create_task(run_worker(queue, handler, limit)) for _ in range(64)]
    await asyncio.sleep(0.01)
    for _ in range(3000):
        limit.observe(FAST, overloaded=False)
    assert (limit.in_flight, limit.limit) == (0, 4)
    queue.shutdown()
    await asyncio.gather(*workers)


async def test_a_woken_waiter_cancelled_before_it_runs_passes_its_slot_on() -> None:
    limit = AdaptiveLimit(initial=2, minimum=2, maximum=2)
    await limit.acquire()
    await limit.acquire()
    first = asyncio.create_task(limit.acquire())
    second = asyncio.create_task(limit.acquire())
    await asyncio.sleep(0)
    limit.release()  # wakes `first`...
    first.cancel()  # ...which is cancelled before it takes the slot
    await asyncio.wait_for(second, 1)
    assert limit.in_flight == 2
