"""Fixtures for end-to-end tests against a real kube-apiserver + etcd.

One control plane per test session (about 5 s to start with cached binaries);
tests isolate themselves by namespace and object names instead of restarting it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from csr_signer_dev.controlplane import ControlPlane, Credentials
from csr_signer_dev.identities import api_client, serviceaccount_credentials
from kubernetes_asyncio import client

ClientFactory = Callable[..., Awaitable[client.ApiClient]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    with ControlPlane() as cp:
        yield cp


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    """An admin kubeconfig file, for kubectl and for the controller."""
    return control_plane.kubeconfig()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def admin_api(control_plane: ControlPlane) -> AsyncIterator[client.ApiClient]:
    api = await api_client(control_plane)
    yield api
    await api.close()


@pytest_asyncio.fixture(loop_scope="session")
async def client_as(
    control_plane: ControlPlane, admin_api: client.ApiClient
) -> AsyncIterator[ClientFactory]:
    """`await client_as(user="alice", groups=("dev",))` or
    `await client_as(serviceaccount=("default", "queue"))`: an ApiClient
    authenticated as that identity; closed at teardown."""
    opened: list[client.ApiClient] = []

    async def factory(
        *,
        user: str | None = None,
        groups: tuple[str, ...] = (),
        serviceaccount: tuple[str, str] | None = None,
    ) -> client.ApiClient:
        creds = await credentials_for(control_plane, admin_api, user, groups, serviceaccount)
        api = await api_client(control_plane, creds)
        opened.append(api)
        return api

    yield factory
    for api in opened:
        await api.close()


async def credentials_for(
    cp: ControlPlane,
    admin: client.ApiClient,
    user: str | None,
    groups: tuple[str, ...],
    serviceaccount: tuple[str, str] | None,
) -> Credentials:
    if serviceaccount is not None:
        return await serviceaccount_credentials(admin, *serviceaccount)
    assert user is not None, "give user= or serviceaccount="
    return cp.client_credentials(user, groups)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for object names, so tests share one cluster safely."""
    return uuid.uuid4().hex[:8]
