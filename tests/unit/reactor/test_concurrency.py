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
        pytest.param([FAST] * 40, True, lambda n: n > 8, id="fast-calls-in-use-grow-the-limit"),
        pytest.param([FAST] * 40, False, lambda n: n == 4, id="an-idle-limit-does-not-grow"),
        pytest.param(
            [FAST] * 5 + [SLOW] * 20, True, lambda n: n == 2, id="slow-calls-shrink-it-to-the-floor"
        ),
        pytest.param(
            [FAST] * 2 + [FAST * 1.5] * 40, True, lambda n: n > 8, id="within-tolerance-is-fast"
        ),
        pytest.param([FAST] * 5000, True, lambda n: n == 64, id="never-above-the-maximum"),
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


def test_the_fastest_call_is_forgotten_after_two_windows() -> None:
    """A lucky 1 ms call once must not make every later call look slow forever."""
    limit = AdaptiveLimit(window=10)
    limit.observe(0.001, overloaded=False)
    for _ in range(20):
        limit.observe(FAST, overloaded=False)
    assert limit.rtt_min == FAST


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
    for _ in range(4):  # fast calls while full: +1/limit each
        limit.observe(FAST, overloaded=False)
    await asyncio.wait_for(waiting, 1)
    assert limit.in_flight == 3
