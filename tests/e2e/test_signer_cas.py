"""A CA per signer name, live: each signer's certificates verify against its own bundle only.

With one CA for every signer, whoever may approve for `cluster-local` could mint names that
consumers of the `knative-internal` bundle trust. Here each signer has its own CA Secret
(`--signer-ca`), and the test checks the apiserver's own records: the issued chains and the
published ClusterTrustBundles.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import VerificationError
from csr_signer_dev.controlplane import ControlPlane
from kubernetes_asyncio import client

from signer.pki.ca import generate_root
from signer.trust import cluster_trust_bundle_name
from tests.data.csrs import build_csr_pem
from tests.e2e.conftest import ClientFactory
from tests.e2e.kube import (
    CLUSTER_LOCAL,
    KNATIVE,
    NAMESPACE,
    ca_secret,
    create_csr,
    install,
    leaf_and_verify,
    put_secret,
    running_controller,
    wait_final,
    wait_until,
)

KNATIVE_CA = "csr-signer-knative-ca"  # named in deploy/rbac.yaml


async def bundle_of(admin: client.ApiClient, signer: str, common_name: str) -> bytes | None:
    """The signer's published bundle once it holds exactly the CA named `common_name`."""
    try:
        ctb = await client.CertificatesV1beta1Api(admin).read_cluster_trust_bundle(
            cluster_trust_bundle_name(signer)
        )
    except client.ApiException:
        return None
    pem = str(ctb.spec.trust_bundle).encode()
    names = [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(pem)]
    return pem if names == [f"CN={common_name}"] else None


async def test_each_signer_issues_from_its_own_ca_and_bundles_never_cross(
    control_plane: ControlPlane,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    tmp_path: Path,
    unique: str,
) -> None:
    installed = await install(control_plane, admin_api, tmp_path)
    now = dt.datetime.now(dt.UTC)
    local_ca = f"local CA {unique}"
    knative_ca = f"knative CA {unique}"
    await put_secret(admin_api, ca_secret(*generate_root(local_ca, "ecdsa-p256", 30, now)))
    kn_pem = generate_root(knative_ca, "ecdsa-p256", 30, now)
    await put_secret(admin_api, ca_secret(*kn_pem, name=KNATIVE_CA))

    async with running_controller(
        control_plane, installed, signer_cas=(f"{KNATIVE}={NAMESPACE}/{KNATIVE_CA}",)
    ):
        team_a = await client_as(serviceaccount=("team-a", "app"))
        team_b = await client_as(serviceaccount=("team-b", "app"))
        pem_local = build_csr_pem(dns_names=["web.team-a.svc"])
        pem_kn = build_csr_pem(dns_names=["kn-user-team-b"])
        await create_csr(team_a, f"local-{unique}", pem_local, signer_name=CLUSTER_LOCAL)
        await create_csr(team_b, f"kn-{unique}", pem_kn, signer_name=KNATIVE)
        issued_local = await wait_final(admin_api, f"local-{unique}")
        issued_kn = await wait_final(admin_api, f"kn-{unique}")
        bundles = {
            CLUSTER_LOCAL: await wait_until(
                lambda: bundle_of(admin_api, CLUSTER_LOCAL, local_ca), what="cluster-local bundle"
            ),
            KNATIVE: await wait_until(
                lambda: bundle_of(admin_api, KNATIVE, knative_ca), what="knative bundle"
            ),
        }

    leaf_and_verify(issued_local, bundles[CLUSTER_LOCAL])
    leaf_and_verify(issued_kn, bundles[KNATIVE])
    with pytest.raises(VerificationError):
        leaf_and_verify(issued_local, bundles[KNATIVE])
    with pytest.raises(VerificationError):
        leaf_and_verify(issued_kn, bundles[CLUSTER_LOCAL])
