"""ApiClient lifecycle: an explicit kubeconfig, in-cluster, or the default kubeconfig."""

from __future__ import annotations

from pathlib import Path

from kubernetes_asyncio import client, config


async def make_api_client(kubeconfig: Path | None) -> client.ApiClient:
    """The order kubectl users expect: --kubeconfig, then in-cluster, then ~/.kube/config."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        await config.load_kube_config(
            config_file=str(kubeconfig), client_configuration=configuration
        )
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            await config.load_kube_config(client_configuration=configuration)
    return client.ApiClient(configuration)
