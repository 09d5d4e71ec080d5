"""ApiClient lifecycle and the raw-JSON call helpers every API module shares.

The kube layer calls the generated client with `_preload_content=False` and works on
JSON dicts (see docs/architecture.md); `read_json` and `as_body` are the two seams that
make that safe and typed, so they live here rather than in any one resource module.
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Protocol

import orjson
from kubernetes_asyncio import client, config

from signer.kube.errors import ApiError, ServerError, Timeout, classify, status_error


async def make_api_client(kubeconfig: Path | None) -> client.ApiClient:
    """The order kubectl users expect: --kubeconfig, then in-cluster, then ~/.kube/config."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        await config.load_kube_config(
            config_file=str(kubeconfig), client_configuration=configuration
        )
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            await config.load_kube_config(client_configuration=configuration)
    if configuration.proxy is None:
        configuration.proxy = environment_proxy(configuration.host or "")
    api = client.ApiClient(configuration)
    without_per_request_environment(api)
    return api


class LatencyObserver(Protocol):
    """Called after each API request that is not a watch."""

    def __call__(self, rtt: float, *, overloaded: bool) -> None: ...


def observe_latency(api: client.ApiClient, observer: LatencyObserver) -> None:
    """Report every request's round trip to `observer` (the adaptive concurrency limit).

    Watches are left out: their headers come back at once and the body streams for
    minutes, so their "round trip" says nothing about the apiserver's load. Overloaded
    means 429, 5xx, a timeout or a broken connection: the apiserver asks us to back off.
    """
    rest = api.rest_client
    request = rest.request

    async def timed(
        method: str, url: str, query_params: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        if any(k == "watch" and v for k, v in query_params or ()):
            return await request(method, url, query_params, *args, **kwargs)
        started = time.monotonic()
        try:
            response = await request(method, url, query_params, *args, **kwargs)
        except Exception as exc:
            overloaded = isinstance(classify(exc), ServerError | Timeout)
            observer(time.monotonic() - started, overloaded=overloaded)
            raise
        status = getattr(response, "status", 200)
        observer(time.monotonic() - started, overloaded=status == 429 or status >= 500)
        return response

    rest.request = timed  # type: ignore[method-assign]


def environment_proxy(url: str) -> str | None:
    """The proxy `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` choose for `url`, read once."""
    if urllib.request.proxy_bypass(urllib.parse.urlsplit(url).hostname or ""):
        return None
    scheme = urllib.parse.urlsplit(url).scheme or "https"
    return urllib.request.getproxies().get(scheme)


def without_per_request_environment(api: client.ApiClient) -> None:
    """Stop aiohttp from reading the proxy variables and ~/.netrc on every request.

    The generated client's session has `trust_env=True`, which costs two thread-pool
    hops and a netrc lookup per call: 8 % of the controller's CPU in a profile of 2,000
    CSRs (docs/performance.md). The proxy is resolved once instead (`environment_proxy`);
    netrc credentials were never meant for the apiserver (the kubeconfig's are).
    """
    session = api.rest_client.pool_manager
    if hasattr(session, "_trust_env"):
        session._trust_env = False  # no public setter; tests/unit/kube/test_client.py


def as_body(obj: dict[str, Any]) -> Any:
    """JSON dicts are valid request bodies; the client's stubs only know its models."""
    return obj


async def read_json(call: Awaitable[Any]) -> dict[str, Any]:
    """Await a `_preload_content=False` call and return its JSON body.

    With `_preload_content=False` the client returns the raw response without
    checking its status, so a non-2xx answer is turned into an `ApiError` here.
    """
    data, _size = await read_json_sized(call)
    return data


async def read_json_sized(call: Awaitable[Any]) -> tuple[dict[str, Any], int]:
    """`read_json`, plus the body's size in bytes (to size the next list page)."""
    try:
        response = await call
        try:
            body = await response.read()
        finally:
            response.release()
    except Exception as exc:
        raise classify(exc) from exc
    if not 200 <= response.status <= 299:
        raise status_error(response.status, body)
    try:
        data: dict[str, Any] = orjson.loads(body)
    except ValueError as exc:
        raise ApiError(f"{response.status}: the response is not JSON") from exc
    return data, len(body)
