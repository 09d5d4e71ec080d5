"""The API client: the environment is read once, not on every request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio import client

from signer.kube.client import (
    environment_proxy,
    make_api_client,
    observe_latency,
    with_request_timeout,
)


@pytest.mark.parametrize(
    ("env", "url", "proxy"),
    [
        pytest.param({}, "https://10.0.0.1:6443", None, id="no-proxy-variables-no-proxy"),
        pytest.param(
            {"HTTPS_PROXY": "http://proxy:3128"},
            "https://api.example:6443",
            "http://proxy:3128",
            id="https-proxy-used-for-the-apiserver",
        ),
        pytest.param(
            {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "api.example"},
            "https://api.example:6443",
            None,
            id="no-proxy-bypasses-it",
        ),
    ],
)
def test_environment_proxy_resolves_once_as_aiohttp_would(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, proxy: str | None
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert environment_proxy(url) == proxy


async def test_requests_do_not_read_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp with trust_env reads proxies and ~/.netrc in a thread on every request."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    api = await make_api_client(kubeconfig)
    try:
        assert api.rest_client.pool_manager.trust_env is False
        assert api.configuration.proxy == "http://proxy.example:3128"
    finally:
        await api.close()


class Answer:
    def __init__(self, status: int) -> None:
        self.status = status


@pytest.mark.parametrize(
    ("method", "outcome", "observed"),
    [
        pytest.param("PUT", Answer(200), [False], id="a-write-is-observed"),
        pytest.param("POST", Answer(429), [True], id="429-is-overload"),
        pytest.param("PUT", Answer(503), [True], id="5xx-is-overload"),
        pytest.param("PUT", TimeoutError(), [True], id="a-timeout-is-overload"),
        pytest.param("PUT", Answer(409), [False], id="a-conflict-is-not-overload"),
        pytest.param("GET", Answer(200), [], id="reads-and-watches-are-not-observed"),
    ],
)
async def test_observe_latency_reports_each_write(
    method: str, outcome: object, observed: list[bool]
) -> None:
    api = client.ApiClient()
    seen: list[bool] = []

    async def request(*_args: object, **_kwargs: object) -> object:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    api.rest_client.request = request  # type: ignore[method-assign]

    def observer(rtt: float, *, overloaded: bool) -> None:
        assert rtt >= 0
        seen.append(overloaded)

    observe_latency(api, observer)
    try:
        await api.rest_client.request(method, "https://x/apis", None)
    except TimeoutError:
        pass
    finally:
        await api.close()
    assert seen == observed


@pytest.mark.parametrize(
    ("query", "given", "expected"),
    [
        pytest.param(None, None, 60.0, id="a-call-without-a-timeout-gets-the-default"),
        pytest.param(None, 5, 5, id="a-call-with-its-own-timeout-keeps-it"),
        pytest.param([("watch", True)], None, None, id="a-watch-is-left-alone"),
    ],
)
async def test_every_request_but_a_watch_has_a_timeout(
    query: list[tuple[str, object]] | None, given: float | None, expected: float | None
) -> None:
    api = client.ApiClient()
    seen: dict[str, object] = {}

    async def request(*_args: object, **kwargs: object) -> object:
        seen.update(kwargs)
        return Answer(200)

    api.rest_client.request = request  # type: ignore[method-assign]
    with_request_timeout(api, 60.0)
    try:
        await api.rest_client.request(
            "GET", "https://x/apis", query_params=query, _request_timeout=given
        )
    finally:
        await api.close()
    assert seen["_request_timeout"] == expected


async def test_a_peer_that_never_answers_times_out() -> None:
    """A connection accepted and then silent (a black-holed apiserver)."""
    silent: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    api = client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{port}"))
    with_request_timeout(api, 0.5)
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises((asyncio.TimeoutError, TimeoutError)):
            await asyncio.wait_for(client.VersionApi(api).get_code(), 30)
        assert asyncio.get_running_loop().time() - started < 10, "the request's own timeout"
    finally:
        await api.close()
        server.close()
        for writer in silent:
            writer.close()
