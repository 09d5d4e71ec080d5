"""Policy authoring against the real apiserver: namespace labels from the metadata-only
watch, a namespaceSelector and a CEL rule changing live decisions after a hot reload.

The controller runs under exactly deploy/rbac.yaml (list/watch namespaces is all it
gained), with a copy of the bundled policies that the test edits while it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from csr_signer_dev.controlplane import ControlPlane
from kubernetes_asyncio import client

from tests.data.csrs import build_csr_pem
from tests.e2e.conftest import ClientFactory
from tests.e2e.kube import (
    KNATIVE,
    create_csr,
    install,
    read_csr,
    running_controller,
    types,
    wait_final,
)

SELECTIVE = """\
  - name: knative-system-internal
    description: prod namespaces of the payments team only.
    signerNames: [csr-signer.dev/knative-internal]
    requesters:
      serviceAccounts:
        - namespaces: ["{label}"]
          namespaceSelector:
            matchLabels: {env: prod}
    celRules:
      - expression: "requester.namespaceLabels['team'] == 'payments'"
        message: only the payments team
    allowed:
      dnsNames: ["kn-user-{namespace}"]
"""


@dataclass
class Running:
    policy_dir: Path


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def controller(
    control_plane: ControlPlane,
    admin_api: client.ApiClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Running]:
    installed = await install(control_plane, admin_api, tmp_path_factory.mktemp("policies"))
    async with running_controller(control_plane, installed):
        yield Running(policy_dir=installed.policy_dir)


async def label(admin: client.ApiClient, namespace: str, labels: dict[str, str | None]) -> None:
    await client.CoreV1Api(admin).patch_namespace(namespace, {"metadata": {"labels": labels}})


async def request_own_name(api: client.ApiClient, name: str, namespace: str) -> None:
    pem = build_csr_pem(dns_names=[f"kn-user-{namespace}"])
    await create_csr(api, name, pem, signer_name=KNATIVE)


async def still_pending(admin: client.ApiClient, name: str, seconds: float = 3.0) -> bool:
    """No condition after `seconds`: the controller left it for a human (abstain)."""
    await asyncio.sleep(seconds)
    return types(await read_csr(admin, name)) == []


@pytest.mark.timeout(120)
async def test_a_namespace_selector_and_a_cel_rule_change_live_decisions_after_a_hot_reload(
    controller: Running, admin_api: client.ApiClient, client_as: ClientFactory, unique: str
) -> None:
    payments, search, dev = (f"pay-{unique}", f"search-{unique}", f"dev-{unique}")
    apis = {ns: await client_as(serviceaccount=(ns, "app")) for ns in (payments, search, dev)}
    await label(admin_api, payments, {"env": "prod", "team": "payments"})
    await label(admin_api, search, {"env": "prod", "team": "search"})
    await label(admin_api, dev, {"env": "dev", "team": "payments"})

    # The bundled policy: every ServiceAccount gets kn-user-<its namespace>.
    for ns, api in apis.items():
        await request_own_name(api, f"before-{ns}", ns)
    for ns in apis:
        assert types(await wait_final(admin_api, f"before-{ns}")) == ["Approved"], ns

    target = controller.policy_dir / "knative-internal.yaml"
    original = target.read_text()
    head, marker, _ = original.partition("  - name: knative-system-internal\n")
    assert marker
    try:
        target.write_text(head + SELECTIVE)
        await asyncio.sleep(1.5)  # the reload poll runs every 0.2 s
        for ns, api in apis.items():
            await request_own_name(api, f"after-{ns}", ns)
        # The selector and the rule both hold: approved, as before.
        assert types(await wait_final(admin_api, f"after-{payments}")) == ["Approved"]
        # The selector holds, the CEL rule does not: denied with the rule's message.
        denied = await wait_final(admin_api, f"after-{search}")
        assert types(denied) == ["Denied"]
        message = next(c.message for c in denied.status.conditions if c.type == "Denied")
        assert message == "knative-system-internal: celRules[0]: only the payments team"
        # The selector does not hold: no policy applies, the CSR waits for a human.
        assert await still_pending(admin_api, f"after-{dev}")

        # Labels are watched live: relabelled, the search namespace is now approved.
        await label(admin_api, search, {"team": "payments"})
        await asyncio.sleep(1.5)
        await request_own_name(apis[search], f"relabelled-{search}", search)
        assert types(await wait_final(admin_api, f"relabelled-{search}")) == ["Approved"]
    finally:
        target.write_text(original)
        await asyncio.sleep(1.0)
