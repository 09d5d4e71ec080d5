"""The probe and metrics server, over real HTTP on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from signer.models import Outcome
from signer.telemetry import CONTENT_TYPE, Telemetry
from signer.web import PENDING, Readiness, WebServer, start_web

SIGNER = "csr-signer.dev/cluster-local"


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    instance = Telemetry.create(signer_names=[SIGNER])
    yield instance
    instance.shutdown()


@pytest.fixture
def readiness() -> Readiness:
    return Readiness(pending=["watch", "ca", "policies"])


@pytest.fixture
async def server(readiness: Readiness, telemetry: Telemetry) -> AsyncIterator[WebServer]:
    web = await start_web("127.0.0.1", 0, readiness, telemetry)
    yield web
    await web.close()


@pytest.fixture
async def client(server: WebServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=f"http://127.0.0.1:{server.port}",
        timeout=aiohttp.ClientTimeout(total=5),
    ) as session:
        yield session


async def test_port_0_binds_a_real_port(server: WebServer) -> None:
    assert server.port > 0


async def test_healthz_is_ok_while_the_loop_runs(
    client: aiohttp.ClientSession, readiness: Readiness
) -> None:
    """Liveness ignores readiness: a restart would not fix a missing Secret."""
    assert not readiness.ok
    async with client.get("/healthz") as response:
        assert response.status == 200
        assert await response.text() == "ok\n"


async def test_readyz_lists_failing_checks_until_all_pass(
    client: aiohttp.ClientSession, readiness: Readiness
) -> None:
    async with client.get("/readyz") as response:
        assert response.status == 503
        assert await response.text() == (f"watch: {PENDING}\nca: {PENDING}\npolicies: {PENDING}\n")

    readiness.set("watch", ok=False, detail="not synced")
    readiness.set("ca", ok=False, detail="secret csr-signer/csr-signer-ca not found")
    readiness.set("policies", ok=True)
    async with client.get("/readyz") as response:
        assert response.status == 503
        assert await response.text() == (
            "watch: not synced\nca: secret csr-signer/csr-signer-ca not found\n"
        )

    readiness.set("watch", ok=True)
    readiness.set("ca", ok=True)
    async with client.get("/readyz") as response:
        assert response.status == 200
        assert await response.text() == "ok\n"


async def test_readyz_goes_unready_again_when_a_check_fails(
    client: aiohttp.ClientSession, readiness: Readiness
) -> None:
    for name in ("watch", "ca", "policies"):
        readiness.set(name, ok=True)
    readiness.set("policies", ok=False, detail="invalid: policies/x.yaml:3: unknown field")
    async with client.get("/readyz") as response:
        assert response.status == 503
        assert await response.text() == "policies: invalid: policies/x.yaml:3: unknown field\n"


async def test_readyz_verbose_lists_passing_checks_too(
    client: aiohttp.ClientSession, readiness: Readiness
) -> None:
    readiness.set("watch", ok=True)
    async with client.get("/readyz?verbose") as response:
        assert response.status == 503
        assert await response.text() == f"watch: ok\nca: {PENDING}\npolicies: {PENDING}\n"


async def test_metrics_serves_the_exposition_with_its_content_type(
    client: aiohttp.ClientSession, telemetry: Telemetry
) -> None:
    telemetry.decision(SIGNER, Outcome.APPROVE, "knative-internal", kind="csr")
    telemetry.issued(SIGNER, kind="csr")
    async with client.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE
        body = await response.text()
    assert f'csr_signer_certificates_issued_total{{kind="csr",signer="{SIGNER}"}} 1.0' in body
    assert "csr_signer_decisions_total{" in body


async def test_unknown_path_is_404(client: aiohttp.ClientSession) -> None:
    async with client.get("/") as response:
        assert response.status == 404


@pytest.mark.parametrize(
    ("checks", "ok", "report"),
    [
        pytest.param({}, True, "ok\n", id="no-checks-is-ready"),
        pytest.param({"watch": (True, "")}, True, "ok\n", id="all-passing-is-ready"),
        pytest.param(
            {"watch": (False, "")}, False, "watch: failing\n", id="failing-without-detail"
        ),
        pytest.param(
            {"ca": (False, "line one\n  line two")},
            False,
            "ca: line one line two\n",
            id="multi-line-detail-is-folded-onto-one-line",
        ),
        pytest.param(
            {"watch": (False, "a"), "ca": (True, ""), "policies": (False, "b")},
            False,
            "watch: a\npolicies: b\n",
            id="only-failing-checks-in-declaration-order",
        ),
    ],
)
def test_readiness_report(checks: dict[str, tuple[bool, str]], ok: bool, report: str) -> None:
    readiness = Readiness()
    for name, (passing, detail) in checks.items():
        readiness.set(name, ok=passing, detail=detail)
    assert readiness.ok is ok
    assert readiness.report() == report


async def test_close_stops_listening(readiness: Readiness, telemetry: Telemetry) -> None:
    web = await start_web("127.0.0.1", 0, readiness, telemetry)
    await web.close()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{web.port}/healthz")
