"""The API client: the environment is read once, not on every request."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio import client

from signer.kube.client import environment_proxy, make_api_client, observe_latency


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
    ("query", "outcome", "observed"),
    [
        pytest.param(None, Answer(200), [False], id="an-answer-is-observed"),
        pytest.param(None, Answer(429), [True], id="429-is-overload"),
        pytest.param(None, Answer(503), [True], id="5xx-is-overload"),
        pytest.param(None, TimeoutError(), [True], id="a-timeout-is-overload"),
        pytest.param(None, Answer(409), [False], id="a-conflict-is-not-overload"),
        pytest.param([("watch", True)], Answer(200), [], id="watches-are-not-observed"),
    ],
)
async def test_observe_latency_reports_each_request(
    query: list[tuple[str, object]] | None, outcome: object, observed: list[bool]
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
        await api.rest_client.request("GET", "https://x/apis", query)
    except TimeoutError:
        pass
    finally:
        await api.close()
    assert seen == observed
