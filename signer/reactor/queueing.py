"""A work queue keyed by CSR name (after client-go's workqueue and kopf's queueing).

Guarantees: a key is queued at most once (dedupe); a key is never handed to
two workers at once (serial per key); a key added while it is being processed
is handed out again when the worker is done (nothing is lost); retries back
off exponentially per key. Parallelism across keys is the number of workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class WorkQueue:
    def __init__(self, *, base_delay: float = 0.05, max_delay: float = 60.0) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
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
        self._queue.put_nowait(key)

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
        """The next key, or None once the queue is shut down."""
        key = await self._queue.get()
        if key is None or self._shutdown:
            self._queue.put_nowait(None)  # wake the next worker too
            return None
        self._queued.discard(key)
        self._processing.add(key)
        return key

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
        self._queue.put_nowait(None)


Handler = Callable[[str], Awaitable[None]]


async def run_worker(queue: WorkQueue, handler: Handler) -> None:
    """Take keys until shutdown; the handler owns retries (it calls queue.retry)."""
    while (key := await queue.get()) is not None:
        try:
            await handler(key)
        except Exception:  # the handler should not raise; never let one key kill a worker
            log.exception("unexpected error reconciling %s; retrying", key)
            queue.retry(key)
        finally:
            queue.done(key)
