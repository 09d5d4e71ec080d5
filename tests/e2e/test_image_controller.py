"""The image itself runs the controller: a CSR approved and issued by `podman run`.

The rest of the e2e suite runs the controller from the source tree. This test
runs the image `make image` builds (the `controller_image` fixture), as the chart
would: read-only root, UID 65532, all capabilities dropped, no-new-privileges;
with the host's network so it reaches the loopback apiserver, and a mounted
kubeconfig holding the ServiceAccount token deploy/rbac.yaml grants. A conforming
CSR from a ServiceAccount must come back approved and signed by the CA Secret,
and the Lease must name the container's identity: what the image ships is enough
to do the job under exactly the chart's permissions.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from csr_signer_dev import image
from csr_signer_dev.controlplane import ControlPlane, free_port
from kubernetes_asyncio import client

from tests.data.csrs import build_csr_pem
from tests.e2e.conftest import ClientFactory
from tests.e2e.kube import (
    CA_SECRET,
    CLUSTER_LOCAL,
    KNATIVE,
    NAMESPACE,
    Installed,
    create_csr,
    install,
    leaf_and_verify,
    types,
    wait_final,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

Image = tuple[image.Engine, image.Built]
MOUNTED_KUBECONFIG = "/etc/csr-signer/kubeconfig"


def standalone_kubeconfig(cp: ControlPlane, installed: Installed, directory: Path) -> Path:
    """The controller's kubeconfig with the serving CA inline: one file to mount, readable
    by UID 65532 (the token is a short-lived test token)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": cp.url,
                    "certificate-authority-data": base64.b64encode(
                        cp.ca_file.read_bytes()
                    ).decode(),
                },
            }
        ],
        "users": [{"name": "csr-signer", "user": {"token": installed.creds.token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "csr-signer"}}],
        "current-context": "local",
    }
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    return path


class Container:
    """One detached `podman run` of the image; `logs()` for failure messages."""

    def __init__(self, engine: image.Engine, name: str) -> None:
        self.engine = engine
        self.name = name

    def logs(self) -> str:
        proc = subprocess.run(
            self.engine.podman_argv("logs", self.name),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        return (proc.stdout + proc.stderr)[-3000:]

    def running(self) -> bool:
        proc = subprocess.run(
            self.engine.podman_argv("inspect", "--format", "{{.State.Running}}", self.name),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        return proc.stdout.strip() == "true"

    def remove(self) -> None:
        subprocess.run(
            self.engine.podman_argv("rm", "--force", "--time", "10", self.name),
            capture_output=True,
            check=False,
            timeout=120,
        )


@pytest.fixture
def container(controller_image: Image, unique: str) -> Iterator[Container]:
    engine, _built = controller_image
    running = Container(engine, f"csr-signer-e2e-{unique}")
    yield running
    running.remove()


def readyz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


async def test_the_image_approves_and_issues_a_csr_against_the_real_apiserver(
    controller_image: Image,
    container: Container,
    control_plane: ControlPlane,
    admin_api: client.ApiClient,
    client_as: ClientFactory,
    tmp_path: Path,
    unique: str,
) -> None:
    engine, built = controller_image
    installed = await install(control_plane, admin_api, tmp_path)
    mounts = tmp_path / "mounts"
    mounts.mkdir(mode=0o755)
    kubeconfig = standalone_kubeconfig(control_plane, installed, mounts)
    port = free_port()
    identity = f"image-e2e-{unique}"
    argv = engine.podman_argv(
        *image.locked_down_run_args(engine, network="host", detach=True),
        "--name",
        container.name,
        "--volume",
        f"{kubeconfig}:{MOUNTED_KUBECONFIG}:ro",
        "--env",
        f"CSR_SIGNER_METRICS_ADDRESS=127.0.0.1:{port}",
        built.image_id,
        f"--kubeconfig={MOUNTED_KUBECONFIG}",
        f"--signer-name={CLUSTER_LOCAL},{KNATIVE}",
        f"--ca-secret={NAMESPACE}/{CA_SECRET}",
        f"--leader-elect-lease-namespace={NAMESPACE}",
        f"--identity={identity}",
    )
    started = await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, check=False, timeout=120
    )
    assert started.returncode == 0, started.stderr

    async def ready() -> bool:
        running = await asyncio.to_thread(container.running)
        assert running, f"container exited:\n{container.logs()}"
        return await asyncio.to_thread(readyz, port)

    try:
        await wait_until(ready, what="the image's controller ready", timeout=90)
        requester = await client_as(serviceaccount=("team-a", "app"))
        name = f"image-{unique}"
        dns_names = ["web.team-a.svc", "web.team-a.svc.cluster.local"]
        await create_csr(
            requester, name, build_csr_pem(dns_names=dns_names), signer_name=CLUSTER_LOCAL
        )
        csr = await wait_final(admin_api, name)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- container logs ---\n{container.logs()}") from exc
    assert types(csr) == ["Approved"], container.logs()
    approved = csr.status.conditions[0]
    assert approved.reason, approved
    leaf_and_verify(csr, installed.ca_pem)
    lease = await client.CoordinationV1Api(admin_api).read_namespaced_lease("csr-signer", NAMESPACE)
    assert lease.spec.holder_identity == identity
