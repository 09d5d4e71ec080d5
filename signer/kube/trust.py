"""Publish the CA trust bundle as ClusterTrustBundles and Knative trust ConfigMaps.

`TrustPublisher.sync` observes what exists, asks the pure `signer.trust.plan`
what to change, and applies it. It runs only on the leader (the controller
starts `run()` while leading), so replicas never race each other's writes;
the apiserver's optimistic concurrency catches anyone else.

`run()` syncs at once (we just became leader), again whenever `poke()` says
the CA changed, and every resync period to repair drift (a deleted or edited
ConfigMap comes back). A failed sync is retried with backoff; it never stops
CSR signing, and it never unpublishes trust: without a valid CA (Secret
missing or broken) the objects are left exactly as they are.

Observation is deliberately narrow, for least privilege (deploy/rbac.yaml):
ClusterTrustBundles are listed by our owner label and the wanted names read
one by one; ConfigMaps are only ever read by name, in the configured
namespaces and in those the bundles' record names (see `signer.trust`), so
the controller needs no `list` on ConfigMaps anywhere. If the
ClusterTrustBundle API is not served (it is beta and off by default before
it reaches GA), ConfigMaps are still published and a warning is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kubernetes_asyncio import client

from signer.kube.client import as_body, read_json
from signer.kube.errors import ApiError, Forbidden, NotFound
from signer.kube.watching import Backoff, list_all
from signer.pki.ca import CaBundle
from signer.trust import (
    CLUSTER_TRUST_BUNDLE,
    Change,
    ObjectKey,
    TrustTargets,
    desired_objects,
    held_objects,
    owner_selector,
    plan,
    recorded_configmaps,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class SyncResult:
    applied: tuple[Change, ...] = ()
    failed: tuple[tuple[Change, str], ...] = ()
    refused: tuple[ObjectKey, ...] = ()
    """Wanted names held by objects not labeled managed-by csr-signer."""
    unobservable: tuple[ObjectKey, ...] = ()
    """Recorded ConfigMaps we may no longer read (their Role was removed): not cleaned up."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.refused


class TrustPublisher:
    """Keeps each signer's published trust bundles equal to its CA's `trust_bundle_pem()`."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        targets: TrustTargets,
        cas: Callable[[], Mapping[str, CaBundle | None]] = dict,
        resync_seconds: float = 300.0,
    ) -> None:
        self.targets = targets
        self._ctbs = client.CertificatesV1beta1Api(api)
        self._core = client.CoreV1Api(api)
        self._cas = cas
        self._resync = resync_seconds
        self._poked = asyncio.Event()
        self._warned_unserved = False
        self._missing: list[str] = []

    def poke(self) -> None:
        """The CA (or anything else) changed: sync soon. Safe to call from callbacks."""
        self._poked.set()

    async def run(self) -> None:
        """Forever: sync now, then on every poke and every resync period."""
        backoff = Backoff(base=1.0, cap=self._resync)
        while True:
            self._poked.clear()  # before reading the CA: a poke during sync is not lost
            delay = self._resync
            cas = self._cas()
            missing = sorted(s for s in self.targets.signer_names if cas.get(s) is None)
            if missing != self._missing:
                self._missing = missing
                if missing:
                    # INFO: at start-up every CA is missing until its Secret loads, and
                    # readiness (`ca <signer>`) already says why a CA is missing.
                    log.info(
                        "no valid CA for %s: their trust bundles are kept as they are; "
                        "the other signers' are published",
                        ", ".join(missing),
                    )
            if len(missing) < len(self.targets.signer_names):
                bundles = {s: ca.trust_bundle_pem() for s, ca in cas.items() if ca is not None}
                try:
                    result: SyncResult | None = await self.sync(bundles)
                except (ApiError, ValueError) as exc:
                    log.error("trust bundle sync failed: %s", exc)
                    result = None
                if result is None or result.failed:
                    delay = backoff.next()
                else:
                    backoff.reset()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation
            # that arrives with a poke, and this loop would never end on shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._poked.wait()

    async def sync(self, bundles: Mapping[str, bytes]) -> SyncResult:
        """Publish each signer's bundle everywhere it belongs; delete our stale objects.

        Raises `ApiError` when observing fails (nothing was written then) and
        `ValueError` for a bundle that must not be published. Failed writes
        are returned, not raised, so one bad namespace does not block others.
        """
        targets = self.targets
        observed: dict[ObjectKey, dict[str, Any]] = {}
        unobservable: list[ObjectKey] = []
        recorded: frozenset[ObjectKey] = frozenset()
        if targets.cluster_trust_bundles:
            listed = await self._list_cluster_trust_bundles()
            if listed is None:
                targets = dataclasses.replace(targets, cluster_trust_bundles=False)
            else:
                for item in listed:
                    observed[ObjectKey(CLUSTER_TRUST_BUNDLE, "", item["metadata"]["name"])] = item
                recorded = recorded_configmaps(listed, targets.instance)
        desired = desired_objects(bundles, targets)
        held = held_objects(bundles, targets)
        for key in sorted((desired.keys() | recorded) - observed.keys()):
            try:
                obj = await self._read(key)
            except Forbidden as exc:
                if key in desired:
                    raise
                log.warning(
                    "cannot check stale %s (%s); delete it by hand if it is still there",
                    key,
                    exc,
                )
                unobservable.append(key)
                continue
            if obj is not None:
                observed[key] = obj
        changes = plan(desired, observed, instance=targets.instance, held=held)
        for key in changes.refused:
            log.error("not publishing %s: an object not managed by csr-signer holds that name", key)
        applied: list[Change] = []
        failed: list[tuple[Change, str]] = []
        for change in changes.changes:
            try:
                await self._apply(change)
            except ApiError as exc:
                log.error("trust bundle: could not %s %s: %s", change.action, change.key, exc)
                failed.append((change, str(exc)))
            else:
                log.info("trust bundle: %sd %s", change.action, change.key)
                applied.append(change)
        return SyncResult(
            applied=tuple(applied),
            failed=tuple(failed),
            refused=changes.refused,
            unobservable=tuple(unobservable),
        )

    # -- I/O ------------------------------------------------------------------------

    async def _list_cluster_trust_bundles(self) -> list[dict[str, Any]] | None:
        """Our bundles (any installation), or None when the API is not served."""
        try:
            items, _ = await list_all(
                self._ctbs.list_cluster_trust_bundle, label_selector=owner_selector()
            )
        except NotFound:
            if not self._warned_unserved:
                log.warning(
                    "certificates.k8s.io/v1beta1 ClusterTrustBundles are not served; "
                    "publishing ConfigMaps only (set --no-cluster-trust-bundles to silence)"
                )
                self._warned_unserved = True
            return None
        return items

    async def _read(self, key: ObjectKey) -> dict[str, Any] | None:
        call: Awaitable[Any]
        if key.kind == CLUSTER_TRUST_BUNDLE:
            call = self._ctbs.read_cluster_trust_bundle(key.name, _preload_content=False)
        else:
            call = self._core.read_namespaced_config_map(
                key.name, key.namespace, _preload_content=False
            )
        try:
            return await read_json(call)
        except NotFound:
            return None

    async def _apply(self, change: Change) -> None:
        key, body = change.key, as_body(change.body)
        call: Awaitable[Any]
        if change.action == "delete":
            version = (change.body.get("metadata") or {}).get("resourceVersion")
            options = as_body({"preconditions": {"resourceVersion": version}} if version else {})
            if key.kind == CLUSTER_TRUST_BUNDLE:
                call = self._ctbs.delete_cluster_trust_bundle(
                    key.name, body=options, _preload_content=False
                )
            else:
                call = self._core.delete_namespaced_config_map(
                    key.name, key.namespace, body=options, _preload_content=False
                )
            with contextlib.suppress(NotFound):  # already gone is what we wanted
                await read_json(call)
            return
        if key.kind == CLUSTER_TRUST_BUNDLE:
            if change.action == "create":
                call = self._ctbs.create_cluster_trust_bundle(body, _preload_content=False)
            else:
                call = self._ctbs.replace_cluster_trust_bundle(
                    key.name, body, _preload_content=False
                )
        elif change.action == "create":
            call = self._core.create_namespaced_config_map(
                key.namespace, body, _preload_content=False
            )
        else:
            call = self._core.replace_namespaced_config_map(
                key.name, key.namespace, body, _preload_content=False
            )
        await read_json(call)
