"""A work queue keyed by CSR name (after client-go's workqueue and kopf's queueing).

Guarantees: a key is queued at most once (dedupe); a key is never handed to
two workers at once (serial per key); a key added while it is being processed
is handed out again when the worker is done (nothing is lost); retries back
off exponentially per key. Parallelism across keys is the number of workers.

Fairness: every key belongs to a lane (`lane_of`, the CSR's requester) and
workers take from the lanes in turn, one key per lane per round. A tenant
that floods 10,000 CSRs makes its own lane long; another tenant's single CSR
still waits for at most one key per busy lane, not for the whole flood.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Limit(Protocol):
    """How many keys may be handled at once (`signer.reactor.concurrency`)."""

    @property
    def limit(self) -> int: ...
    async def acquire(self) -> None: ...
    def release(self) -> None: ...


class WorkQueue:
    def __init__(
        self,
        *,
        base_delay: float = 0.05,
        max_delay: float = 60.0,
        lane_of: Callable[[str], str] = lambda _key: "",
    ) -> None:
        self._lanes: dict[str, deque[str]] = {}
        self._turns: deque[str] = deque()
        """Lanes with queued keys, in the order they are served next."""
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._lane_of = lane_of
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._shutdown = False
        self._base_delay = base_delay
        self._max_delay = max_delay

    def __len__(self) -> int:
        return len(self._queued)

    @property
    def depth(self) -> int:
        """Keys waiting (queued, or delayed for a retry)."""
        return len(self._queued) + len(self._timers)

    def add(self, key: str) -> None:
        if self._shutdown:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        lane = self._lane_of(key)
        keys = self._lanes.get(lane)
        if keys is None:
            keys = self._lanes[lane] = deque()
            self._turns.append(lane)
        keys.append(key)
        self._wake_one()

    def add_after(self, key: str, delay: float) -> None:
        if self._shutdown or key in self._timers:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_later(delay, fire)

    def retry(self, key: str) -> float:
        """Requeue `key` after its next exponential backoff delay; return the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay: float = min(self._max_delay, self._base_delay * float(2**failures))
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """The key succeeded: its next failure starts the backoff afresh."""
        self._failures.pop(key, None)

    async def get(self) -> str | None:
        """The next key (lanes in turn), or None once the queue is shut down."""
        while not self._shutdown:
            if self._turns:
                lane = self._turns.popleft()
                keys = self._lanes[lane]
                key = keys.popleft()
                if keys:
                    self._turns.append(lane)  # back of the line: one key per lane per round
                else:
                    del self._lanes[lane]
                self._queued.discard(key)
                self._processing.add(key)
                return key
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # we were woken for a key: pass the turn on
                raise
        return None

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def shutdown(self) -> None:
        """Stop handing out keys; in-flight work is left to finish."""
        self._shutdown = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


Handler = Callable[[str], Awaitable[None]]


async def run_worker(queue: WorkQueue, handler: Handler, limit: Limit | None = None) -> None:
    """Take keys until shutdown; the handler owns retries (it calls queue.retry).

    With `limit`, a worker holds one of its slots while it takes and handles a key, so
    at most `limit.limit` keys are handled at once however many workers there are.
    """
    while True:
        if limit is not None:
            await limit.acquire()
        try:
            key = await queue.get()
            if key is None:
                return
            try:
                await handler(key)
            except Exception:  # the handler should not raise; never let one key kill a worker
                log.exception("unexpected error reconciling %s; retrying", key)
                queue.retry(key)
            finally:
                queue.done(key)
        finally:
            if limit is not None:
                limit.release()
