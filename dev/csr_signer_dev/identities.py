"""API clients acting as a given identity against the local control plane.

Every identity goes through a kubeconfig file, the same path a real user of
`csr-signer run --kubeconfig` takes, so the harness exercises our client setup
too. ServiceAccount tokens come from the TokenRequest API: the apiserver signs
them and later records `system:serviceaccount:<ns>:<name>` in `spec.username`.
"""

from __future__ import annotations

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from csr_signer_dev.controlplane import ControlPlane, Credentials


async def api_client(cp: ControlPlane, creds: Credentials | None = None) -> client.ApiClient:
    """An ApiClient for `creds` (the admin by default). The caller closes it."""
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(cp.kubeconfig(creds)), client_configuration=configuration
    )
    return client.ApiClient(configuration)


async def ensure_namespace(admin: client.ApiClient, name: str) -> None:
    try:
        await client.CoreV1Api(admin).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
        )
    except ApiException as exc:
        if exc.status != 409:
            raise


async def serviceaccount_credentials(
    admin: client.ApiClient,
    namespace: str,
    name: str,
    *,
    expiration_seconds: int = 3600,
) -> Credentials:
    """Create the namespace and ServiceAccount if needed; return a fresh token."""
    core = client.CoreV1Api(admin)
    await ensure_namespace(admin, namespace)
    try:
        await core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
    )
    response = await core.create_namespaced_service_account_token(name, namespace, request)
    return Credentials(
        username=f"system:serviceaccount:{namespace}:{name}", token=response.status.token
    )
