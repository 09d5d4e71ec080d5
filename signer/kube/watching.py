"""List, then watch from the list's resourceVersion (after kopf's watching).

The infinite loop stays trivial; the finite parts (one list, one watch
stream) are separate functions that tests drive. Rules:
- a watch resumes from the last resourceVersion seen (events and bookmarks);
- 410 Gone (in the response or as an ERROR event) means relist: the cache is
  replaced by a fresh list, never "drop the resourceVersion and hope";
- other ERROR events raise; unknown event types are logged and skipped;
- transport and server errors back off exponentially, then relist.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from signer.kube.client import read_json_sized
from signer.kube.errors import ApiError, Gone, NotServed, classify, status_error

log = logging.getLogger(__name__)

ListFn = Callable[..., Awaitable[Any]]
"""A generated `list_*` method of kubernetes_asyncio (called with _preload_content=False)."""

PAGE_BYTES = 8 << 20
"""What a list page should weigh. A CSR can be 2 MB of JSON (etcd's 1.5 MiB limit on the
stored object, base64 on the wire), and a page is read and decoded whole, so pages are
sized by bytes: a relist of a tenant's megabyte CSRs must not exhaust memory."""
FIRST_PAGE = 10
"""Objects in the first page, before the typical object size is known (20 MB at worst)."""
MAX_PAGE = 500


def next_page_size(items: int, body_bytes: int) -> int:
    """Objects to ask for next so that a page weighs about `PAGE_BYTES`."""
    if items == 0:
        return FIRST_PAGE
    per_item = max(1, body_bytes // items)
    return max(1, min(MAX_PAGE, PAGE_BYTES // per_item))


@dataclass(frozen=True, slots=True)
class Handlers:
    on_list: Callable[[list[dict[str, Any]]], None]
    """A complete, fresh list of the objects (replaces whatever was known)."""
    on_event: Callable[[str, dict[str, Any]], None]
    """ADDED / MODIFIED / DELETED with the object."""
    on_error: Callable[[ApiError], None] = lambda _e: None
    keep: Callable[[dict[str, Any]], bool] = lambda _obj: True
    """Which listed objects to hand to `on_list`; the rest are dropped page by page,
    so a relist of a large history costs one page of memory, not the whole list."""


async def list_all(
    list_fn: ListFn, keep: Callable[[dict[str, Any]], bool] | None = None, **selectors: Any
) -> tuple[list[dict[str, Any]], str]:
    """Every object `keep` wants, paginated; returns (items, resourceVersion of the list)."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    resource_version = ""
    limit = FIRST_PAGE
    while True:
        kwargs: dict[str, Any] = {"limit": limit, **selectors}
        if token:
            kwargs["_continue"] = token
        page, size = await read_json_sized(list_fn(_preload_content=False, **kwargs))
        page_items = page.get("items") or []
        limit = next_page_size(len(page_items), size)
        items.extend(page_items if keep is None else [i for i in page_items if keep(i)])
        metadata = page.get("metadata") or {}
        resource_version = resource_version or str(metadata.get("resourceVersion", ""))
        token = metadata.get("continue")
        del page, page_items  # one page alive at a time, not two
        if not token:
            return items, resource_version


async def watch_once(
    list_fn: ListFn,
    resource_version: str,
    on_event: Callable[[str, dict[str, Any]], None],
    *,
    timeout_seconds: int,
    **selectors: Any,
) -> str:
    """One watch request until the server ends it; returns the last resourceVersion.

    Raises `Gone` when the resourceVersion is too old (relist), `ApiError` on
    any other ERROR event or failed request.
    """
    try:
        response = await list_fn(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            _request_timeout=timeout_seconds + 30,
            **selectors,
        )
    except Exception as exc:
        raise classify(exc) from exc
    if not 200 <= response.status <= 299:
        try:
            body = await response.read()
        finally:
            response.release()
        raise status_error(response.status, body)
    try:
        async for line in response.content:
            if not line.strip():
                continue
            event = orjson.loads(line)
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                code = obj.get("code")
                message = f"watch error {code}: {obj.get('message', '')}"
                if code == 410:
                    raise Gone(message, 410)
                raise ApiError(message, code)
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if kind == "BOOKMARK":
                resource_version = rv or resource_version
                continue
            if kind not in ("ADDED", "MODIFIED", "DELETED"):
                log.warning("skipping unknown watch event type %r", kind)
                continue
            on_event(kind, obj)
            resource_version = rv or resource_version
    except TimeoutError:
        pass  # the client-side deadline: resume from where we are
    except ApiError:
        raise
    except Exception as exc:
        raise classify(exc) from exc
    finally:
        response.release()
    return resource_version


class Backoff:
    def __init__(self, base: float = 0.5, cap: float = 30.0) -> None:
        self._base, self._cap, self._attempt = base, cap, 0

    def reset(self) -> None:
        self._attempt = 0

    def next(self) -> float:
        delay: float = min(self._cap, self._base * float(2**self._attempt))
        self._attempt += 1
        return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto


async def list_and_watch(
    list_fn: ListFn,
    handlers: Handlers,
    *,
    timeout_seconds: int = 290,
    backoff: Backoff | None = None,
    **selectors: Any,
) -> None:
    """Forever: list, then watch; relist on 410 and after errors (with backoff).

    Ends only by raising `NotServed`, which a list function raises when its API version
    is gone: the caller, not this loop, knows which version to try next."""
    backoff = backoff or Backoff()
    while True:
        try:
            items, resource_version = await list_all(list_fn, handlers.keep, **selectors)
            handlers.on_list(items)
            backoff.reset()
            while True:
                resource_version = await watch_once(
                    list_fn,
                    resource_version,
                    handlers.on_event,
                    timeout_seconds=timeout_seconds,
                    **selectors,
                )
        except Gone as exc:
            log.info("watch %s: %s; relisting", selectors, exc)
        except NotServed:
            raise
        except ApiError as exc:
            handlers.on_error(exc)
            delay = backoff.next()
            log.warning("watch %s: %s; relisting in %.1fs", selectors, exc, delay)
            await asyncio.sleep(delay)
