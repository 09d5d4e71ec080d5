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
from cryptography.hazmat.primitives.asymmetric import ec
from csr_signer_dev.controlplane import ControlPlane
from csr_signer_dev.identities import ensure_namespace
from kubernetes_asyncio import client

from signer.cli import main
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
from tests.e2e.pcrs import condition_of, create_pcr, pcr_body, wait_decided

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

        # Labels are watched live. The CSR left to a human is decided again when its
        # namespace is relabelled into the selector...
        await label(admin_api, dev, {"env": "prod"})
        assert types(await wait_final(admin_api, f"after-{dev}")) == ["Approved"]
        # ...and a new request sees new labels: relabelled, search is now approved.
        await label(admin_api, search, {"team": "payments"})
        await asyncio.sleep(1.5)
        await request_own_name(apis[search], f"relabelled-{search}", search)
        assert types(await wait_final(admin_api, f"relabelled-{search}")) == ["Approved"]
    finally:
        target.write_text(original)
        await asyncio.sleep(1.0)


async def _denied_csr(admin: client.ApiClient, client_as: ClientFactory, unique: str) -> str:
    """A CSR the controller denied: a workload asking for another namespace's name."""
    namespace = f"explain-{unique}"
    api = await client_as(serviceaccount=(namespace, "app"))
    name = f"explain-{unique}"
    await create_csr(api, name, build_csr_pem(dns_names=["kn-user-other"]), signer_name=KNATIVE)
    assert types(await wait_final(admin, name)) == ["Denied"]
    return name


def widen(policies: Path, into: Path) -> None:
    """A copy of `policies` whose knative-system-internal allows any kn-user-<label> name."""
    for path in policies.glob("*.yaml"):
        head, found, tail = path.read_text().rpartition('- "kn-user-{namespace}"')
        (into / path.name).write_text(head + '- "kn-user-{label}"' + tail if found else tail)


def _explain(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    assert main(["policy", "explain", *args]) == 0
    return capsys.readouterr().out.splitlines()


@pytest.mark.timeout(60)
async def test_explain_shows_the_decision_now_next_to_what_was_recorded(
    controller: Running,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    kubeconfig: Path,
    unique: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = await _denied_csr(admin_api, client_as, unique)
    reason = (
        'knative-system-internal: spec.request dnsNames: "kn-user-other" is not allowed '
        f'for requester namespace "explain-{unique}"'
    )
    kube = ["--kubeconfig", str(kubeconfig)]
    lines = await asyncio.to_thread(
        _explain, capsys, name, *kube, "--policies", str(controller.policy_dir)
    )
    assert lines[0] == (
        f"csr/{name}: signer {KNATIVE}, requester system:serviceaccount:explain-{unique}:app"
    )
    assert (
        f"namespace explain-{unique} labels: kubernetes.io/metadata.name=explain-{unique}" in lines
    )
    assert f"now ({controller.policy_dir}): deny (policy knative-system-internal)" in lines
    assert f"  - {reason}" in lines
    assert any(line.startswith(f"  Denied PolicyDenied: {reason}") for line in lines), lines
    assert any(line.startswith(f"  Warning Denied: {reason}") for line in lines)
    assert lines[-1] == "agrees: recorded deny, the policies now deny"

    # A policy change the object has not seen: explain says the two now differ.
    changed = tmp_path / "changed"
    changed.mkdir()
    widen(controller.policy_dir, changed)
    lines = await asyncio.to_thread(_explain, capsys, name, *kube, "--policies", str(changed))
    assert lines[-1] == "differs: recorded deny, the policies now approve"

    # The same policies from a ConfigMap, as the chart mounts them.
    files = {p.name: p.read_text() for p in changed.glob("*.yaml")}
    core = client.CoreV1Api(admin_api)
    await core.create_namespaced_config_map(
        "default",
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"pol-{unique}"), data=files),
    )
    lines = await asyncio.to_thread(
        _explain, capsys, name, *kube, "--from-configmap", f"default/pol-{unique}"
    )
    assert (
        f"now (configmap default/pol-{unique}): approve (policy knative-system-internal)" in lines
    )


@pytest.mark.timeout(60)
async def test_diff_from_the_cluster_lists_the_requests_a_change_would_decide_otherwise(
    controller: Running,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    kubeconfig: Path,
    unique: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = await _denied_csr(admin_api, client_as, unique)
    new = tmp_path / "new"
    new.mkdir()
    widen(controller.policy_dir, new)
    base = ["policy", "diff", "--kubeconfig", str(kubeconfig), "--from-cluster"]

    code = await asyncio.to_thread(
        main, [*base, "--old", str(controller.policy_dir), "--new", str(new)]
    )
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert code == 1, captured.err
    at = out.index(
        f"csr/{name}: deny (policy knative-system-internal) -> approve (policy knative-system-internal)"
    )
    assert out[at + 1].startswith(
        '  - knative-system-internal: spec.request dnsNames: "kn-user-other"'
    )
    assert out[at + 2] == "  + knative-system-internal: approved: every requested value is allowed"
    assert out[-1].endswith(" changed")

    code = await asyncio.to_thread(
        main, [*base, "--old", str(controller.policy_dir), "--new", str(controller.policy_dir)]
    )
    out = capsys.readouterr().out.splitlines()
    assert (code, out[-1].split(", ")[1]) == (0, "0 changed")


@pytest.mark.timeout(60)
async def test_explain_a_pcr_the_controller_issued(
    controller: Running,
    admin_api: client.ApiClient,
    kubeconfig: Path,
    unique: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    namespace, name = f"pcr-{unique}", f"web-{unique}"
    await ensure_namespace(admin_api, namespace)
    body = pcr_body(name, signer=KNATIVE, key=ec.generate_private_key(ec.SECP256R1()))
    await create_pcr(admin_api, namespace, body)
    issued = await wait_decided(admin_api, namespace, name)
    assert (condition_of(issued) or {}).get("type") == "Issued"

    lines = await asyncio.to_thread(
        _explain,
        capsys,
        f"{namespace}/{name}",
        "--kind",
        "pcr",
        "--kubeconfig",
        str(kubeconfig),
        "--policies",
        str(controller.policy_dir),
    )
    assert lines[0] == (
        f"pcr/{namespace}/{name}: signer {KNATIVE}, "
        f"requester system:serviceaccount:{namespace}:default"
    )
    assert f"now ({controller.policy_dir}): approve (policy knative-system-internal)" in lines
    assert f"  issues dnsName: kn-user-{namespace}" in lines
    assert any(line.startswith("  Issued ") for line in lines), lines
    assert lines[-1] == "agrees: recorded approve, the policies now approve"
