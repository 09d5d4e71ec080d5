"""Namespace labels for `namespaceSelector`s: a metadata-only list and watch.

Policies select ServiceAccounts by their namespace's labels, so the controller
keeps every namespace's labels. It asks the apiserver for `PartialObjectMetadata`
(the `Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`
form of a list, `as=PartialObjectMetadata` for a watch): names, labels and
resourceVersions, never a spec or status. RBAC needs only list and watch on
namespaces.

The generated `CoreV1Api.list_namespace` sets its own Accept header, so this
module calls the API client directly; the function it returns has the shape
`signer.kube.watching.list_and_watch` expects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from kubernetes_asyncio import client

LIST_ACCEPT: Final = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
WATCH_ACCEPT: Final = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
_QUERY: Final = {
    "limit": "limit",
    "_continue": "continue",
    "resource_version": "resourceVersion",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "timeout_seconds": "timeoutSeconds",
    "label_selector": "labelSelector",
    "field_selector": "fieldSelector",
}


def list_function(api: client.ApiClient) -> Callable[..., Awaitable[Any]]:
    """The `list_and_watch` list function for namespaces' metadata (raw responses)."""

    async def list_namespaces(**kwargs: Any) -> Any:
        watch = bool(kwargs.pop("watch", False))
        timeout = kwargs.pop("_request_timeout", None)
        kwargs.pop("_preload_content", None)
        query: list[tuple[str, Any]] = [
            (_QUERY[name], _value(value)) for name, value in kwargs.items() if value is not None
        ]
        if watch:
            query.append(("watch", "true"))
        return await api.call_api(
            "/api/v1/namespaces",
            "GET",
            query_params=query,
            header_params={"Accept": WATCH_ACCEPT if watch else LIST_ACCEPT},
            auth_settings=["BearerToken"],
            response_types_map={},
            _preload_content=False,
            _request_timeout=timeout,
        )

    return list_namespaces


def _value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


__all__ = ["LIST_ACCEPT", "WATCH_ACCEPT", "list_function"]
