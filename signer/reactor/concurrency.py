"""How many reconciles run at once, found by the controller itself (latency gradient).

A fixed worker count is wrong somewhere. Four leaves a tuned apiserver idle while a
backlog waits; thirty-two piles requests into an apiserver that is already saturated and
stretches every latency (on a node shared with the apiserver, the controller's own CPU is
part of that). The limit here follows Netflix's concurrency-limits "Gradient2", driven by
the round-trip time of API writes (`observe`):

- two moving averages of the write latency: a short one (the last ~10 writes) and a long
  one (the last ~500), the baseline. Write latency is noisy (etcd fsyncs, the apiserver's
  other clients), so no single write and no lucky minimum decides anything;
- while the limit is in use (at least half its slots busy), each write moves the limit
  toward `limit * gradient + sqrt(limit)`, where gradient = tolerance x long / short,
  clamped to [0.5, 1]: it keeps probing upward by sqrt(limit) while writes are no slower
  than `tolerance` times the baseline, and shrinks in proportion when they are;
- an overload answer (429, 5xx, a timeout) halves it: the apiserver asks us to back off;
- when latency falls well below the baseline (a stall has passed), the baseline follows
  quickly, so the limit does not stay shrunk;
- it stays within [minimum, maximum].

Pure: the caller passes the times in; the only asynchronous part is waiting for a slot.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Final

SHORT_WEIGHT: Final = 0.1
"""Weight of each write in the short average (about the last 10)."""
LONG_WEIGHT: Final = 0.002
"""Weight of each write in the long average, the baseline (about the last 500): slow to
follow a rising latency, so a slowdown that lasts keeps the limit down."""
SMOOTHING: Final = 0.2
"""How far one write moves the limit toward its new value."""
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
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError("need 1 <= minimum <= initial <= maximum")
        self._limit = float(initial)
        self._minimum = minimum
        self._maximum = maximum
        self._tolerance = tolerance
        self.short: float | None = None
        """Moving average of the last ~10 writes' latency (None before any)."""
        self.long: float | None = None
        """Moving average of the last ~500 writes' latency: the baseline."""
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        return int(self._limit)

    @property
    def maximum(self) -> int:
        return self._maximum

    def observe(self, rtt: float, *, overloaded: bool = False) -> None:
        """One API write took `rtt` seconds; `overloaded`: it was answered 429/5xx/timeout."""
        if overloaded:
            self._set(self._limit * OVERLOAD_DECREASE)
            return
        if self.short is None or self.long is None:
            self.short = self.long = rtt
            return
        self.short += SHORT_WEIGHT * (rtt - self.short)
        self.long += LONG_WEIGHT * (rtt - self.long)
        if self.long > 2 * self.short:  # recovered from a slow spell: follow it down
            self.long *= 0.95
        if self.in_flight * 2 < self.limit:
            return  # not in use: this write says nothing about a higher limit
        gradient = max(0.5, min(1.0, self._tolerance * self.long / self.short))
        target = self._limit * gradient + math.sqrt(self._limit)
        self._set(self._limit * (1 - SMOOTHING) + target * SMOOTHING)

    async def acquire(self) -> None:
        """Wait for a slot (FIFO), then hold it until `release`."""
        while self.in_flight >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                else:  # woken, then cancelled: pass the slot on to the next waiter
                    self._wake()
                raise
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
