"""API failures as a small typed tree, so callers branch on meaning, not codes.

`classify()` turns an `ApiException` (or a transport error) into one of these;
`kind` is also the bounded label value of `csr_signer_api_errors_total`.

This module does not import kubernetes_asyncio (it recognises its
`ApiException` by shape: an int `status` plus `reason` and `body`), so the
reactor can catch these types while staying free of the client library.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp


class ApiError(Exception):
    kind = "other"
    transient = False

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(ApiError):
    kind = "not_found"


class NotServed(NotFound):
    """The resource's API version is not served (any more): relisting cannot help, so
    `list_and_watch` ends and its caller asks discovery again (PCRs: the beta API can be
    switched off, or replaced by v1). Its metric kind stays `not_found`."""


class Conflict(ApiError):
    """409: our copy is stale; re-read and decide again."""

    kind = "conflict"
    transient = True


class Gone(ApiError):
    """410: the resourceVersion is too old to watch from; relist."""

    kind = "gone"
    transient = True


class Forbidden(ApiError):
    kind = "forbidden"


class Invalid(ApiError):
    kind = "invalid"


class ServerError(ApiError):
    kind = "server"
    transient = True


class Timeout(ApiError):
    kind = "timeout"
    transient = True


class TooLarge(ApiError):
    """413, or etcd's "request is too large": the object can never be stored as sent.

    Retrying the same write cannot succeed, so this is not transient: the caller
    must write something smaller (a Failed condition) or give up.
    """

    kind = "too_large"


_ETCD_TOO_LARGE = "request is too large"


_BY_STATUS: dict[int, type[ApiError]] = {
    404: NotFound,
    409: Conflict,
    410: Gone,
    403: Forbidden,
    401: Forbidden,
    422: Invalid,
    400: Invalid,
    429: ServerError,
}


def status_error(status: int, body: bytes | str | None) -> ApiError:
    """An error for an HTTP status and its (JSON Status) body."""
    message = _message(body)
    if status == 413 or _ETCD_TOO_LARGE in message:
        return TooLarge(f"{status}: {message}", status)
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(f"{status}: {message}", status)


def classify(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    status = getattr(exc, "status", None)
    if isinstance(status, int) and hasattr(exc, "body") and hasattr(exc, "reason"):
        return status_error(status, getattr(exc, "body", None))
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return Timeout("request timed out")
    if isinstance(exc, aiohttp.ClientError | OSError):
        err = ServerError(f"transport error: {exc}")
        err.kind = "transport"
        return err
    return ApiError(f"{type(exc).__name__}: {exc}")


def _message(body: object) -> str:
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if isinstance(body, str) and '"message"' in body:
        try:
            return str(json.loads(body).get("message", body))
        except ValueError:
            return body[:300]
    return str(body)[:300] if body else ""
