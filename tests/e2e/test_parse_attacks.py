"""The request we sign is the request everyone else sees, live on the real apiserver.

A validly self-signed request can carry a Microsoft-OID extensionRequest (`kn-routing`)
before the standard one (`web.team-a.svc`). The apiserver stores it; `kubectl describe`
(Go's crypto/x509) shows `web.team-a.svc`; a parser that takes the first attribute it
finds would sign `kn-routing`. We refuse such a request on every path.
"""

from __future__ import annotations

import base64
from pathlib import Path

from csr_signer_dev.controlplane import ControlPlane
from kubernetes_asyncio import client

from tests.e2e.conftest import ClientFactory
from tests.e2e.kube import (
    CLUSTER_LOCAL,
    KNATIVE,
    condition,
    create_csr,
    install,
    read_csr,
    running_controller,
    types,
    wait_final,
)
from tests.x509diff import csr_build as b


def smuggled(hidden: str, shown: str) -> bytes:
    """`hidden` under Microsoft's OID first, `shown` under the standard OID second."""
    return b.pem(
        b.request(
            subject=b.name(),
            attributes=[
                b.extension_request(b.san(b.dns(hidden)), oid=b.MS_EXTENSION_REQUEST),
                b.extension_request(b.san(b.dns(shown))),
            ],
            sort_attributes=False,
        )
    )


async def test_a_human_approves_what_kubectl_shows_and_nothing_else_is_ever_signed(
    control_plane: ControlPlane,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    tmp_path: Path,
    unique: str,
) -> None:
    installed = await install(control_plane, admin_api, tmp_path)
    human = await client_as(user=f"eve-{unique}")
    name = f"smuggle-human-{unique}"
    await create_csr(
        human, name, smuggled("kn-routing", "web.team-a.svc"), signer_name=CLUSTER_LOCAL
    )
    described = control_plane.kubectl("describe", "csr", name)
    assert described.returncode == 0, described.stderr.decode()
    shown = described.stdout.decode()
    assert "web.team-a.svc" in shown and "kn-routing" not in shown

    # The reviewer approves what they saw, before the controller is even running.
    csr = await read_csr(admin_api, name)
    csr.status.conditions = [condition("Approved", "Reviewed", "web.team-a.svc is ours")]
    await client.CertificatesV1Api(admin_api).replace_certificate_signing_request_approval(
        name, csr
    )
    async with running_controller(control_plane, installed):
        final = await wait_final(admin_api, name)
    assert types(final) == ["Approved", "Failed"]
    assert not final.status.certificate, "never signed"
    assert "Microsoft's extensionRequest" in final.status.conditions[-1].message


async def test_a_knative_serviceaccounts_ambiguous_request_is_denied(
    control_plane: ControlPlane,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    tmp_path: Path,
    unique: str,
) -> None:
    installed = await install(control_plane, admin_api, tmp_path)
    tenant = await client_as(serviceaccount=("team-b", "app"))
    name = f"smuggle-kn-{unique}"
    pem = smuggled("kn-routing", "kn-user-team-b")
    async with running_controller(control_plane, installed):
        await create_csr(tenant, name, pem, signer_name=KNATIVE)
        final = await wait_final(admin_api, name)
    assert types(final) == ["Denied"]
    assert not final.status.certificate
    assert "Microsoft's extensionRequest" in final.status.conditions[0].message
    stored = base64.b64decode(final.spec.request)
    assert stored == pem, "the apiserver stored the request as sent"
