"""The local control plane is the real apiserver: identities, RBAC and validation.

Each test here would pass against a permissive fake only by accident; they pin
down the apiserver behaviour csr-signer relies on.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from csr_signer_dev.controlplane import ControlPlane
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.data.csrs import build_csr_pem, self_signed_pem
from tests.e2e.conftest import ClientFactory
from tests.e2e.kube import CSR_CREATOR_RULES, after_rbac_propagates, condition, create_csr, grant

SIGNER = "csr-signer.dev/cluster-local"


async def test_serviceaccount_identity_is_recorded_by_the_apiserver(
    admin_api: client.ApiClient, client_as: ClientFactory, unique: str
) -> None:
    await grant(
        admin_api,
        f"csr-create-{unique}",
        CSR_CREATOR_RULES,
        serviceaccounts=(("default", "queue"),),
    )
    queue = await client_as(serviceaccount=("default", "queue"))
    created = await create_csr(queue, f"sa-{unique}", build_csr_pem(), signer_name=SIGNER)
    assert created.spec.username == "system:serviceaccount:default:queue"
    assert set(created.spec.groups) >= {
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    }
    assert created.spec.uid  # the ServiceAccount's UID, set by the apiserver


async def test_client_certificate_identity_maps_cn_and_organizations(
    admin_api: client.ApiClient, client_as: ClientFactory, unique: str
) -> None:
    await grant(admin_api, f"csr-create-{unique}", CSR_CREATOR_RULES, users=(f"alice-{unique}",))
    alice = await client_as(user=f"alice-{unique}", groups=("team-a", "team-b"))
    created = await create_csr(alice, f"user-{unique}", build_csr_pem(), signer_name=SIGNER)
    assert created.spec.username == f"alice-{unique}"
    assert {"team-a", "team-b", "system:authenticated"} <= set(created.spec.groups)


async def test_approval_needs_approve_verb_on_the_signer_name(
    admin_api: client.ApiClient, client_as: ClientFactory, unique: str
) -> None:
    name = f"approval-{unique}"
    await create_csr(admin_api, name, build_csr_pem(), signer_name=SIGNER)
    approver = f"approver-{unique}"
    update_approval = {
        "api_groups": ["certificates.k8s.io"],
        "resources": ["certificatesigningrequests/approval"],
        "verbs": ["update"],
    }
    read = {
        "api_groups": ["certificates.k8s.io"],
        "resources": ["certificatesigningrequests"],
        "verbs": ["get"],
    }
    await grant(admin_api, f"approval-only-{unique}", [update_approval, read], users=(approver,))
    api = client.CertificatesV1Api(await client_as(user=approver))

    csr = await api.read_certificate_signing_request(name)
    csr.status.conditions = [condition("Approved", "Test", "approved by test")]
    with pytest.raises(ApiException) as denied:
        await api.replace_certificate_signing_request_approval(name, csr)
    assert denied.value.status == 403
    assert "not permitted to approve requests with signerName" in denied.value.body

    approve_other = {
        "api_groups": ["certificates.k8s.io"],
        "resources": ["signers"],
        "resource_names": ["csr-signer.dev/knative-internal"],
        "verbs": ["approve"],
    }
    await grant(admin_api, f"approve-other-{unique}", [approve_other], users=(approver,))
    with pytest.raises(ApiException) as still_denied:
        await api.replace_certificate_signing_request_approval(name, csr)
    assert still_denied.value.status == 403

    approve = {**approve_other, "resource_names": [SIGNER]}
    await grant(admin_api, f"approve-{unique}", [approve], users=(approver,))
    approved = await after_rbac_propagates(
        lambda: api.replace_certificate_signing_request_approval(name, csr)
    )
    assert [c.type for c in approved.status.conditions] == ["Approved"]


async def test_status_certificate_needs_sign_verb_and_valid_pem(
    admin_api: client.ApiClient, client_as: ClientFactory, unique: str
) -> None:
    name = f"status-{unique}"
    await create_csr(admin_api, name, build_csr_pem(), signer_name=SIGNER)
    signer_user = f"signer-{unique}"
    update_status = {
        "api_groups": ["certificates.k8s.io"],
        "resources": ["certificatesigningrequests/status", "certificatesigningrequests"],
        "verbs": ["update", "get"],
    }
    await grant(admin_api, f"status-only-{unique}", [update_status], users=(signer_user,))
    api = client.CertificatesV1Api(await client_as(user=signer_user))

    csr = await api.read_certificate_signing_request(name)
    # A well-formed certificate, so that only authorization can refuse it.
    csr.status.certificate = base64.b64encode(self_signed_pem()).decode()
    with pytest.raises(ApiException) as forbidden:
        await api.replace_certificate_signing_request_status(name, csr)
    assert forbidden.value.status == 403
    assert "not permitted to sign requests with signerName" in forbidden.value.body

    sign = {
        "api_groups": ["certificates.k8s.io"],
        "resources": ["signers"],
        "resource_names": [SIGNER],
        "verbs": ["sign"],
    }
    await grant(admin_api, f"sign-{unique}", [sign], users=(signer_user,))
    csr.status.certificate = base64.b64encode(b"not a certificate").decode()
    with pytest.raises(ApiException) as invalid:
        await after_rbac_propagates(
            lambda: api.replace_certificate_signing_request_status(name, csr)
        )
    assert invalid.value.status == 422
    assert "status.certificate" in invalid.value.body


async def test_certificates_v1beta1_apis_for_trust_bundles_and_pod_certificates_are_served(
    admin_api: client.ApiClient,
) -> None:
    resources = await client.CertificatesV1beta1Api(admin_api).get_api_resources()
    names = {r.name for r in resources.resources}
    assert {"clustertrustbundles", "podcertificaterequests"} <= names


def test_kubectl_from_the_kubeconfig_fixture_reaches_the_apiserver(
    control_plane: ControlPlane,
) -> None:
    result = control_plane.kubectl("get", "--raw", "/readyz")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.strip() == b"ok"
    version = control_plane.kubectl("version", "-o", "json")
    assert b'"gitVersion": "v1.36.3"' in version.stdout


def test_stop_leaves_no_process_behind(control_plane: ControlPlane) -> None:
    cp = ControlPlane(control_plane.binaries)
    cp.start()
    pids = [proc.pid for _name, proc, _log in cp._procs]
    workdir = cp.workdir
    cp.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not workdir.exists()


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for init to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_sigkill_of_the_owner_process_takes_the_control_plane_down(
    control_plane: ControlPlane,
) -> None:
    script = (
        "from csr_signer_dev.controlplane import ControlPlane\n"
        "import time\n"
        "cp = ControlPlane()\n"
        "cp.start()\n"
        "print(cp.workdir, ' '.join(str(p.pid) for _n, p, _l in cp._procs), flush=True)\n"
        "time.sleep(600)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert owner.stdout is not None
    workdir, *pid_texts = owner.stdout.readline().split()
    pids = [int(p) for p in pid_texts]
    assert len(pids) == 2
    assert all(_alive(pid) for pid in pids)
    owner.kill()  # no atexit, no finally: only PDEATHSIG can clean up
    owner.wait(timeout=10)
    owner.stdout.close()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)
    shutil.rmtree(workdir.decode(), ignore_errors=True)  # nobody was left to remove it
