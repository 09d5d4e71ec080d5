"""Small helpers for e2e tests: RBAC grants and CSR objects through the real API."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException


async def grant(
    admin: client.ApiClient,
    name: str,
    rules: list[dict[str, Any]],
    *,
    users: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
    serviceaccounts: tuple[tuple[str, str], ...] = (),
) -> None:
    """A ClusterRole with `rules`, bound to the given subjects (create or replace)."""
    rbac = client.RbacAuthorizationV1Api(admin)
    role = client.V1ClusterRole(
        metadata=client.V1ObjectMeta(name=name),
        rules=[client.V1PolicyRule(**r) for r in rules],
    )
    subjects = [
        client.RbacV1Subject(kind="User", name=u, api_group="rbac.authorization.k8s.io")
        for u in users
    ]
    subjects += [
        client.RbacV1Subject(kind="Group", name=g, api_group="rbac.authorization.k8s.io")
        for g in groups
    ]
    subjects += [
        client.RbacV1Subject(kind="ServiceAccount", name=n, namespace=ns)
        for ns, n in serviceaccounts
    ]
    binding = client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=name),
        role_ref=client.V1RoleRef(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=name
        ),
        subjects=subjects,
    )
    for create, replace, body in (
        (rbac.create_cluster_role, rbac.replace_cluster_role, role),
        (rbac.create_cluster_role_binding, rbac.replace_cluster_role_binding, binding),
    ):
        try:
            await create(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            await replace(name, body)


CSR_CREATOR_RULES: list[dict[str, Any]] = [
    {
        "api_groups": ["certificates.k8s.io"],
        "resources": ["certificatesigningrequests"],
        "verbs": ["create", "get", "list", "watch"],
    }
]


async def create_csr(
    api: client.ApiClient,
    name: str,
    pem: bytes,
    *,
    signer_name: str,
    usages: tuple[str, ...] = ("digital signature", "key encipherment", "server auth"),
    expiration_seconds: int | None = None,
) -> client.V1CertificateSigningRequest:
    body = client.V1CertificateSigningRequest(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1CertificateSigningRequestSpec(
            request=base64.b64encode(pem).decode(),
            signer_name=signer_name,
            usages=list(usages),
            expiration_seconds=expiration_seconds,
        ),
    )
    return await client.CertificatesV1Api(api).create_certificate_signing_request(body)


def condition(
    type_: str, reason: str, message: str = ""
) -> client.V1CertificateSigningRequestCondition:
    now = dt.datetime.now(dt.UTC)
    return client.V1CertificateSigningRequestCondition(
        type=type_,
        status="True",
        reason=reason,
        message=message,
        last_update_time=now,
        last_transition_time=now,
    )
