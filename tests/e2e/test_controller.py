"""The whole controller against the real apiserver, under exactly deploy/rbac.yaml.

The controller runs in-process (fast, debuggable) but authenticates with its
ServiceAccount's token from the TokenRequest API, so every write it makes is
checked by the apiserver's RBAC as in a cluster.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography import x509
from csr_signer_dev.controlplane import ControlPlane
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from signer.pki.ca import generate_root
from tests.data.csrs import build_csr_pem, self_signed_pem
from tests.e2e.conftest import ClientFactory
from tests.e2e.kube import (
    CLUSTER_LOCAL,
    KNATIVE,
    ca_secret,
    condition,
    create_csr,
    install,
    leaf_and_verify,
    put_secret,
    read_csr,
    running_controller,
    types,
    wait_final,
)


@dataclass
class Running:
    api: client.ApiClient
    """The controller's own client (its ServiceAccount token)."""
    ca_pem: bytes
    ca_key_pem: bytes
    policy_dir: Path
    metrics_port: int


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def controller(
    control_plane: ControlPlane,
    admin_api: client.ApiClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Running]:
    installed = await install(control_plane, admin_api, tmp_path_factory.mktemp("policies"))
    async with running_controller(control_plane, installed) as running:
        yield Running(
            api=running.api,
            ca_pem=installed.ca_pem,
            ca_key_pem=installed.ca_key_pem,
            policy_dir=installed.policy_dir,
            metrics_port=running.metrics_port,
        )


@pytest.mark.parametrize(
    ("signer", "namespace", "dns_names"),
    [
        pytest.param(
            CLUSTER_LOCAL,
            "team-a",
            ["web.team-a", "web.team-a.svc", "web.team-a.svc.cluster.local"],
            id="cluster-local-service-names-in-own-namespace-are-issued",
        ),
        pytest.param(
            KNATIVE,
            "knative-serving",
            ["kn-routing", "data-plane.knative.dev"],
            id="knative-system-namespace-gets-routing-names",
        ),
        pytest.param(
            KNATIVE,
            "team-b",
            ["kn-user-team-b"],
            id="knative-user-namespace-gets-its-own-kn-user-name",
        ),
    ],
)
async def test_conforming_serviceaccount_csr_is_approved_and_issued(
    controller: Running,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    unique: str,
    signer: str,
    namespace: str,
    dns_names: list[str],
) -> None:
    requester = await client_as(serviceaccount=(namespace, "app"))
    name = f"ok-{unique}"
    await create_csr(
        requester,
        name,
        build_csr_pem(dns_names=dns_names),
        signer_name=signer,
        usages=("digital signature", "key encipherment", "server auth"),
        expiration_seconds=3600,
    )
    csr = await wait_final(admin_api, name)
    assert types(csr) == ["Approved"]
    leaf = leaf_and_verify(csr, controller.ca_pem)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == dns_names
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime == dt.timedelta(seconds=3600) + dt.timedelta(minutes=5)
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize(
    ("signer", "namespace", "dns_names", "violation"),
    [
        pytest.param(
            KNATIVE,
            "default",
            ["kn-user-other"],
            '"kn-user-other"',
            id="knative-user-namespace-may-not-claim-another-namespace",
        ),
        pytest.param(
            CLUSTER_LOCAL,
            "team-a",
            ["web.team-b.svc"],
            '"web.team-b.svc"',
            id="cluster-local-other-namespace-name-is-denied",
        ),
        pytest.param(
            CLUSTER_LOCAL,
            "team-a",
            ["*.team-a.svc"],
            '"*.team-a.svc"',
            id="cluster-local-wildcard-is-denied",
        ),
    ],
)
async def test_nonconforming_serviceaccount_csr_is_denied_with_the_violation(
    controller: Running,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    unique: str,
    signer: str,
    namespace: str,
    dns_names: list[str],
    violation: str,
) -> None:
    requester = await client_as(serviceaccount=(namespace, "app"))
    name = f"deny-{unique}"
    await create_csr(requester, name, build_csr_pem(dns_names=dns_names), signer_name=signer)
    csr = await wait_final(admin_api, name)
    assert types(csr) == ["Denied"]
    assert csr.status.certificate is None
    denied = csr.status.conditions[0]
    assert denied.reason == "PolicyDenied"
    assert violation in denied.message


async def test_human_csr_stays_pending_until_kubectl_approve_then_is_issued(
    controller: Running,
    control_plane: ControlPlane,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    unique: str,
) -> None:
    human = await client_as(user=f"bob-{unique}", groups=("devs",))
    name = f"human-{unique}"
    await create_csr(
        human, name, build_csr_pem(dns_names=["web.team-a.svc"]), signer_name=CLUSTER_LOCAL
    )
    await asyncio.sleep(2)
    csr = await read_csr(admin_api, name)
    assert types(csr) == [] and csr.status.certificate is None
    approved = control_plane.kubectl("certificate", "approve", name)
    assert approved.returncode == 0, approved.stderr.decode()
    csr = await wait_final(admin_api, name)
    assert types(csr) == ["Approved"]
    leaf_and_verify(csr, controller.ca_pem)


async def test_human_csr_denied_with_kubectl_is_never_signed(
    controller: Running,
    control_plane: ControlPlane,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    unique: str,
) -> None:
    human = await client_as(user=f"carol-{unique}")
    name = f"human-deny-{unique}"
    await create_csr(
        human, name, build_csr_pem(dns_names=["web.team-a.svc"]), signer_name=CLUSTER_LOCAL
    )
    await asyncio.sleep(1)
    assert control_plane.kubectl("certificate", "deny", name).returncode == 0
    await asyncio.sleep(2)
    csr = await read_csr(admin_api, name)
    assert types(csr) == ["Denied"]
    assert csr.status.certificate is None


async def test_csr_for_a_signer_we_do_not_own_is_never_touched(
    controller: Running,
    control_plane: ControlPlane,
    admin_api: client.ApiClient,
    unique: str,
) -> None:
    name = f"foreign-{unique}"
    await create_csr(admin_api, name, build_csr_pem(), signer_name="example.com/other")
    assert control_plane.kubectl("certificate", "approve", name).returncode == 0
    await asyncio.sleep(2)
    csr = await read_csr(admin_api, name)
    assert types(csr) == ["Approved"]
    assert csr.status.certificate is None


@pytest.mark.parametrize(
    ("verb", "subresource"),
    [
        pytest.param("approve", "approval", id="controller-cannot-approve-foreign-signer"),
        pytest.param("sign", "status", id="controller-cannot-sign-foreign-signer"),
    ],
)
async def test_controller_rbac_forbids_other_signer_names(
    controller: Running,
    admin_api: client.ApiClient,
    unique: str,
    verb: str,
    subresource: str,
) -> None:
    name = f"rbac-{verb}-{unique}"
    await create_csr(admin_api, name, build_csr_pem(), signer_name="example.com/other")
    api = client.CertificatesV1Api(controller.api)
    csr = await api.read_certificate_signing_request(name)
    if subresource == "approval":
        csr.status.conditions = [condition("Approved", "Test")]
        call = api.replace_certificate_signing_request_approval(name, csr)
    else:
        csr.status.certificate = base64.b64encode(self_signed_pem()).decode()
        call = api.replace_certificate_signing_request_status(name, csr)
    with pytest.raises(ApiException) as forbidden:
        await call
    assert forbidden.value.status == 403
    assert f"not permitted to {verb} requests with signerName" in forbidden.value.body


async def test_policy_change_in_files_takes_effect_without_restart(
    controller: Running,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    unique: str,
) -> None:
    target = next(p for p in controller.policy_dir.glob("*.yaml") if "knative" in p.read_text())
    original = target.read_text()
    assert "kourier-system" in original
    requester = await client_as(serviceaccount=("kourier-system", "gw"))
    await create_csr(
        requester, f"before-{unique}", build_csr_pem(dns_names=["kn-routing"]), signer_name=KNATIVE
    )
    assert types(await wait_final(admin_api, f"before-{unique}")) == ["Approved"]
    try:
        target.write_text(original.replace("kourier-system", "kourier-removed"))
        await asyncio.sleep(1.0)
        await create_csr(
            requester,
            f"after-{unique}",
            build_csr_pem(dns_names=["kn-routing"]),
            signer_name=KNATIVE,
        )
        assert types(await wait_final(admin_api, f"after-{unique}")) == ["Denied"]
    finally:
        target.write_text(original)
        await asyncio.sleep(1.0)


async def test_ca_rotation_through_the_secret_takes_effect_without_restart(
    controller: Running,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    unique: str,
) -> None:
    new_cert, new_key = generate_root("e2e root 2", "ecdsa-p384", 30, dt.datetime.now(dt.UTC))
    await put_secret(admin_api, ca_secret(new_cert, new_key))
    try:
        await asyncio.sleep(1.0)
        requester = await client_as(serviceaccount=("team-a", "app"))
        name = f"rotated-{unique}"
        await create_csr(
            requester, name, build_csr_pem(dns_names=["web.team-a.svc"]), signer_name=CLUSTER_LOCAL
        )
        leaf_and_verify(await wait_final(admin_api, name), new_cert)
    finally:
        await put_secret(admin_api, ca_secret(controller.ca_pem, controller.ca_key_pem))
        await asyncio.sleep(1.0)


async def test_a_human_deny_racing_the_controller_never_leaves_a_denied_csr_signed(
    controller: Running,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    unique: str,
) -> None:
    """The apiserver lets a writer with `sign` set a certificate on a Denied CSR; only the
    signer's resourceVersion-guarded writes stand between a human's deny and a signature.
    Each CSR here is one the policy approves, denied by a human the moment it exists."""
    requester = await client_as(serviceaccount=("team-a", "racer"))
    certs = client.CertificatesV1Api(admin_api)

    async def create_then_deny(i: int) -> str:
        name = f"race-{unique}-{i:02d}"
        pem = build_csr_pem(dns_names=[f"web{i}.team-a.svc"])
        created = await create_csr(requester, name, pem, signer_name=CLUSTER_LOCAL)
        created.status.conditions = [condition("Denied", "HumanDenied", "racing the signer")]
        with contextlib.suppress(ApiException):  # 409 or 422: the controller got there first
            await certs.replace_certificate_signing_request_approval(name, created)
        return name

    names = await asyncio.gather(*(create_then_deny(i) for i in range(60)))
    outcomes = {"denied": 0, "issued": 0}
    for name in names:
        csr = await wait_final(admin_api, name)
        kinds = types(csr)
        if "Denied" in kinds:
            assert not csr.status.certificate, f"{name} is Denied and was signed"
            assert "Approved" not in kinds
            outcomes["denied"] += 1
        else:
            assert kinds.count("Approved") == 1 and csr.status.certificate
            outcomes["issued"] += 1
    assert outcomes["denied"] > 0, f"no deny won a race, the test proves nothing: {outcomes}"
