"""How many reconciles run at once, found by the controller itself (AIMD on API latency).

A fixed worker count is wrong somewhere. Four leaves a tuned apiserver idle while a
backlog waits; thirty-two piles requests into an apiserver that is already saturated and
stretches every latency (on a node shared with the apiserver, the controller's own CPU is
part of that). The limit here follows TCP's congestion control (after TCP Vegas and
Netflix's concurrency-limits):

- every API call reports its round-trip time (`observe`); the fastest recent one
  (`rtt_min`, the minimum over the last `window` calls) says what an unloaded call costs;
- a call within `tolerance` x rtt_min while the limit is in use raises the limit by about
  one per limit's worth of calls (additive increase: nothing queues downstream yet);
- a slower call lowers it a little, and an overload answer (429, 5xx, a timeout) halves it
  (multiplicative decrease: the apiserver is telling us to back off);
- it stays within [minimum, maximum].

Pure: the caller passes the times in; the only asynchronous part is waiting for a slot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

SLOW_DECREASE: Final = 0.95
"""Factor applied per call slower than tolerance x rtt_min."""
OVERLOAD_DECREASE: Final = 0.5
"""Factor applied per overload answer."""


class AdaptiveLimit:
    """A concurrency limit that moves with the API's latency; `acquire`/`release` gate work."""

    def __init__(
        self,
        *,
        initial: int = 4,
        minimum: int = 2,
        maximum: int = 64,
        tolerance: float = 2.0,
        window: int = 500,
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError("need 1 <= minimum <= initial <= maximum")
        self._limit = float(initial)
        self._minimum = minimum
        self._maximum = maximum
        self._tolerance = tolerance
        self._window = window
        self._current: list[float] = []
        """Round-trip times of the window being filled."""
        self._previous_min = float("inf")
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        return int(self._limit)

    @property
    def maximum(self) -> int:
        return self._maximum

    @property
    def rtt_min(self) -> float:
        """The fastest call of this window and the last one (inf before any call)."""
        return min(self._previous_min, min(self._current, default=float("inf")))

    def observe(self, rtt: float, *, overloaded: bool = False) -> None:
        """One API call took `rtt` seconds; `overloaded`: it was answered 429/5xx/timeout."""
        if overloaded:
            self._set(self._limit * OVERLOAD_DECREASE)
            return
        baseline = self.rtt_min
        self._current.append(rtt)
        if len(self._current) >= self._window:
            self._previous_min = min(self._current)
            self._current = []
        if baseline == float("inf"):
            return
        if rtt > baseline * self._tolerance:
            self._set(self._limit * SLOW_DECREASE)
        elif self.in_flight >= self.limit:
            self._set(self._limit + 1.0 / self._limit)

    async def acquire(self) -> None:
        """Wait for a slot (FIFO), then hold it until `release`."""
        while self.in_flight >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _set(self, value: float) -> None:
        self._limit = min(float(self._maximum), max(float(self._minimum), value))
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1


class FixedLimit(AdaptiveLimit):
    """`--workers N`: exactly N at once, whatever the latency."""

    def __init__(self, workers: int) -> None:
        super().__init__(initial=workers, minimum=workers, maximum=workers)


__all__ = ["AdaptiveLimit", "FixedLimit"]
