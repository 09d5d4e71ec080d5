"""Hostile input against the live controller: it is refused, reported, and nothing stalls.

Each case was reproduced against the real apiserver before the fix: a policy file of nested
brackets killed hot reload silently (so a later emergency change did nothing), and megabyte
requests filled memory and blocked the event loop while a neighbour's CSR waited.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from csr_signer_dev.controlplane import ControlPlane
from kubernetes_asyncio import client

from tests.data.csrs import build_csr_pem
from tests.e2e.conftest import ClientFactory
from tests.e2e.kube import (
    CLUSTER_LOCAL,
    create_csr,
    install,
    running_controller,
    types,
    wait_final,
    wait_until,
)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def http(port: int, path: str) -> tuple[int, str]:
    return await asyncio.to_thread(get, port, path)


async def test_a_hostile_policy_file_is_reported_and_a_later_emergency_change_still_works(
    control_plane: ControlPlane,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    tmp_path: Path,
    unique: str,
) -> None:
    installed = await install(control_plane, admin_api, tmp_path)
    async with running_controller(control_plane, installed) as running:
        port = running.metrics_port
        bomb = installed.policy_dir / "zz-bomb.yaml"
        bomb.write_text("[" * 2000)  # RecursionError in a YAML parser without a depth limit

        async def reported() -> bool:
            status, body = await http(port, "/readyz")
            return status == 503 and "policies" in body and "zz-bomb.yaml" in body

        await wait_until(reported, what="readiness names the broken file")
        _status, metrics = await http(port, "/metrics")
        assert 'csr_signer_policy_reloads_total{result="failure"}' in metrics
        assert (await http(port, "/healthz"))[0] == 200, "alive, serving the last good set"

        # The emergency change: close cluster-local to requesters no policy covers.
        bomb.unlink()
        local = installed.policy_dir / "cluster-local.yaml"
        local.write_text(
            local.read_text().replace("whenNoPolicyApplies: abstain", "whenNoPolicyApplies: deny")
        )
        await wait_until(lambda: ready_now(port), what="the fixed set loaded")
        human = await client_as(user=f"mallory-{unique}")
        name = f"after-fix-{unique}"
        pem = build_csr_pem(dns_names=["web.team-a.svc"])
        await create_csr(human, name, pem, signer_name=CLUSTER_LOCAL)
        csr = await wait_final(admin_api, name)
        assert types(csr) == ["Denied"], "the emergency change took effect"
        assert "whenNoPolicyApplies is deny" in csr.status.conditions[0].message


async def ready_now(port: int) -> bool:
    return (await http(port, "/readyz"))[0] == 200


# The test's own client uploads the megabyte request; aiohttp warns about that body.
@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
async def test_a_megabyte_request_is_denied_unread_and_a_neighbour_is_still_issued(
    control_plane: ControlPlane,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    tmp_path: Path,
    unique: str,
) -> None:
    installed = await install(control_plane, admin_api, tmp_path)
    flood = await client_as(serviceaccount=("flood", "app"))
    neighbour = await client_as(serviceaccount=("team-a", "app"))
    huge = build_csr_pem(dns_names=[f"h{i:05d}.flood.svc" for i in range(40_000)])
    assert len(huge) > 900_000, "close to the apiserver's own limit"
    async with running_controller(control_plane, installed):
        hostile = [f"huge-{unique}-{i}" for i in range(3)]
        for name in hostile:
            await create_csr(flood, name, huge, signer_name=CLUSTER_LOCAL)
        innocent = f"innocent-{unique}"
        pem = build_csr_pem(dns_names=["web.team-a.svc"])
        await create_csr(neighbour, innocent, pem, signer_name=CLUSTER_LOCAL)
        issued = await wait_final(admin_api, innocent)
        assert issued.status.certificate
        for name in hostile:
            csr = await wait_final(admin_api, name)
            assert types(csr) == ["Denied"]
            assert "(--max-request-bytes)" in csr.status.conditions[0].message
            assert not csr.status.certificate
