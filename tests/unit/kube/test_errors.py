"""API answers become typed errors: callers branch on meaning, never on codes."""

from __future__ import annotations

import json

import pytest

from signer.kube.errors import (
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    ServerError,
    TooLarge,
    status_error,
)


def status_body(message: str) -> bytes:
    return json.dumps({"kind": "Status", "message": message}).encode()


@pytest.mark.parametrize(
    ("status", "message", "kind", "transient"),
    [
        pytest.param(404, "not found", NotFound, False, id="404-is-not-found"),
        pytest.param(409, "modified", Conflict, True, id="409-is-a-conflict-to-reread"),
        pytest.param(410, "too old", Gone, True, id="410-means-relist"),
        pytest.param(403, "forbidden", Forbidden, False, id="403-is-forbidden"),
        pytest.param(422, "invalid", Invalid, False, id="422-is-invalid"),
        pytest.param(503, "unavailable", ServerError, True, id="5xx-is-transient"),
        pytest.param(
            413, "Request entity too large", TooLarge, False, id="413-can-never-be-stored"
        ),
        pytest.param(
            500,
            "etcdserver: request is too large",
            TooLarge,
            False,
            id="etcd-request-too-large-is-not-a-transient-500",
        ),
        pytest.param(418, "teapot", ApiError, False, id="anything-else-is-a-plain-api-error"),
    ],
)
def test_status_error(status: int, message: str, kind: type[ApiError], transient: bool) -> None:
    error = status_error(status, status_body(message))
    assert type(error) is kind
    assert error.transient is transient
    assert message in str(error)
