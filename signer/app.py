"""Wiring: sources (CSR watches, CA Secret, policy files) -> queue -> reconcile.

Lifecycle of `run_app`:
1. web server up first (`/healthz`, `/readyz` reporting why not ready);
2. CA Secret watch and policy-file polling start at once on every replica,
   so a standby is warm and ready to take over;
3. with leader election, only the Lease holder runs the CSR watches and the
   workers; a lost Lease cancels them and the process exits non-zero;
4. SIGTERM/SIGINT: stop taking work (queue shut down, watches cancelled),
   let in-flight reconciles finish their writes, release the Lease.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from signer.config import Settings
from signer.kube.client import make_api_client
from signer.kube.csrs import CsrClient
from signer.kube.errors import ApiError
from signer.kube.leader import LeaderElector
from signer.kube.trust import TrustPublisher
from signer.kube.watching import Handlers, list_and_watch
from signer.pki.ca import CaBundle, CaError, load_ca_from_secret_data
from signer.pki.signing import SigningLimits
from signer.policy import PolicyLoadError, PolicySet, bundled_policies_dir, load_policies
from signer.policy.loader import fingerprint as policy_fingerprint
from signer.reactor.cache import CsrCache
from signer.reactor.queueing import WorkQueue, run_worker
from signer.reactor.reconcile import Reconciler, Snapshot
from signer.reactor.state import is_final
from signer.telemetry import Telemetry
from signer.trust import TrustTargets
from signer.web import Readiness, start_web

log = logging.getLogger(__name__)
SHUTDOWN_GRACE_SECONDS = 20.0


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Sources:
    """The hot-reloadable inputs: policies from files, the CA from a Secret."""

    def __init__(
        self,
        settings: Settings,
        telemetry: Telemetry,
        readiness: Readiness,
        on_change: Callable[[], None],
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.policies: PolicySet | None = None
        self.ca: CaBundle | None = None
        self._telemetry = telemetry
        self._readiness = readiness
        self._on_change = on_change
        self._clock = clock
        self._policy_fingerprint: str | None = None
        self._ca_version: str | None = None
        self.limits = SigningLimits(
            max_duration=dt.timedelta(seconds=settings.max_duration_seconds),
            default_duration=dt.timedelta(seconds=settings.default_duration_seconds),
        )
        readiness.set("ca", ok=False, detail="CA Secret not loaded yet")
        readiness.set("policies", ok=False, detail="not loaded yet")

    def snapshot(self) -> Snapshot:
        return Snapshot(
            policies=self.policies,
            ca=self.ca,
            limits=self.limits,
            cluster_domain=self.settings.cluster_domain,
        )

    @property
    def policy_dir(self) -> Path:
        return self.settings.policy_dir or bundled_policies_dir()

    # -- policies --------------------------------------------------------------------

    def reload_policies(self) -> bool:
        """Load the policy files if they changed; keep the old set if the new one is invalid."""
        fingerprint = policy_fingerprint(self.policy_dir)
        if fingerprint == self._policy_fingerprint:
            return False
        self._policy_fingerprint = fingerprint
        try:
            policies = load_policies(self.policy_dir)
        except PolicyLoadError as exc:
            self._telemetry.policy_reload(ok=False)
            kept = "the previous policies stay in force" if self.policies else "no policies loaded"
            detail = str(exc).splitlines()[0] if str(exc) else "invalid"
            self._readiness.set("policies", ok=False, detail=f"invalid ({kept}): {detail}")
            log.error("rejected policy files in %s (%s):\n%s", self.policy_dir, kept, exc)
            return False
        self.policies = policies
        self._telemetry.policy_reload(ok=True)
        self._readiness.set("policies", ok=True, detail="")
        log.info("loaded policies from %s for %s", self.policy_dir, sorted(policies.signer_names))
        self._on_change()
        return True

    async def poll_policies(self) -> None:
        while True:
            await asyncio.sleep(self.settings.policy_reload_seconds)
            try:
                self.reload_policies()
            except OSError as exc:
                log.error("cannot read policy directory %s: %s", self.policy_dir, exc)

    # -- CA ----------------------------------------------------------------------------

    def _secret_changed(self, secret: dict[str, Any] | None) -> None:
        where = f"{self.settings.ca_secret_namespace}/{self.settings.ca_secret_name}"
        if secret is None:
            self.ca, self._ca_version = None, None
            self._readiness.set("ca", ok=False, detail=f"secret {where} not found")
            log.error("CA Secret %s not found; signing paused", where)
            return
        version = str((secret.get("metadata") or {}).get("resourceVersion"))
        if version == self._ca_version:
            return
        self._ca_version = version
        try:
            data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
            ca = load_ca_from_secret_data(data, now=self._clock())
        except Exception as exc:  # any malformed material: stop signing, never crash
            if not isinstance(exc, CaError | ValueError):
                exc = CaError(f"cannot load: {type(exc).__name__}: {exc}")
            self.ca = None
            self._readiness.set("ca", ok=False, detail=f"secret {where}: {exc}")
            log.error("CA Secret %s is invalid; signing paused: %s", where, exc)
            return
        self.ca = ca
        self._telemetry.set_ca_not_after(ca.not_after.timestamp())
        self._readiness.set("ca", ok=True, detail="")
        log.info("loaded CA %s from secret %s", ca.identity, where)
        self._on_change()

    async def watch_ca(self, api: client.ApiClient) -> None:
        core = client.CoreV1Api(api)
        name = self.settings.ca_secret_name

        def on_list(items: list[dict[str, Any]]) -> None:
            self._secret_changed(items[0] if items else None)

        def on_event(kind: str, obj: dict[str, Any]) -> None:
            self._secret_changed(None if kind == "DELETED" else obj)

        await list_and_watch(
            functools.partial(core.list_namespaced_secret, self.settings.ca_secret_namespace),
            Handlers(on_list=on_list, on_event=on_event),
            timeout_seconds=self.settings.watch_timeout_seconds,
            field_selector=f"metadata.name={name}",
        )


class Controller:
    """CSR watches + workers; runs only while leading."""

    def __init__(
        self,
        *,
        settings: Settings,
        api: client.ApiClient,
        sources: Sources,
        telemetry: Telemetry,
        readiness: Readiness,
        stopping: asyncio.Event,
    ) -> None:
        self.settings = settings
        self._api = api
        self._telemetry = telemetry
        self._readiness = readiness
        self.cache = CsrCache()
        self.queue = WorkQueue()
        self._synced: set[str] = set()
        self.stopping = stopping
        """Set to stop: no new work, in-flight writes finish, the Lease is released."""
        self.reconciler = Reconciler(
            signer_names=frozenset(settings.signer_names),
            cache=self.cache,
            queue=self.queue,
            writer=CsrClient(api, identity=settings.identity),
            snapshot=sources.snapshot,
            metrics=telemetry,
            clock=utcnow,
        )
        # The instance label is the Lease's namespace: one installation per namespace.
        targets = TrustTargets(
            signer_names=settings.signer_names,
            namespaces=settings.trust_bundle_namespaces,
            configmap_name=settings.trust_bundle_configmap_name,
            configmap_key=settings.trust_bundle_configmap_key,
            instance=settings.lease_namespace,
            cluster_trust_bundles=settings.cluster_trust_bundles,
        )
        self.trust = TrustPublisher(
            api, targets=targets, ca=lambda: sources.ca, resync_seconds=settings.resync_seconds
        )

    async def _traced(self, name: str) -> None:
        """One span per reconcile (exported only when an OTLP endpoint is set)."""
        with self._telemetry.tracer.start_as_current_span(
            "reconcile", attributes={"k8s.csr.name": name}
        ):
            await self.reconciler(name)
        self._telemetry.set_queue_depth(self.queue.depth)

    def enqueue_all(self) -> None:
        for name in self.cache.names():
            self.queue.add(name)

    def _handlers(self, signer: str) -> Handlers:
        def on_list(items: list[dict[str, Any]]) -> None:
            # One cache, several per-signer lists: replace only this signer's part.
            for name in self.cache.names():
                raw = self.cache.get(name) or {}
                if (raw.get("spec") or {}).get("signerName") == signer:
                    self.cache.apply("DELETED", raw)
            for raw in items:
                if self.cache.apply("ADDED", raw):
                    self.queue.add(raw["metadata"]["name"])
            self._synced.add(signer)
            if self._synced >= set(self.settings.signer_names):
                self._readiness.set("watch", ok=True, detail="")
            self._telemetry.set_queue_depth(self.queue.depth)

        def on_event(kind: str, raw: dict[str, Any]) -> None:
            if self.cache.apply(kind, raw):
                self.queue.add(raw["metadata"]["name"])
            self._telemetry.set_queue_depth(self.queue.depth)

        def on_error(exc: ApiError) -> None:
            self._telemetry.api_error(exc.kind, "watch")

        def pending(raw: dict[str, Any]) -> bool:
            return not is_final(raw)

        return Handlers(on_list=on_list, on_event=on_event, on_error=on_error, keep=pending)

    async def _resync(self) -> None:
        """Periodically requeue every pending CSR: a safety net for anything missed."""
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            self.enqueue_all()

    async def run(self) -> None:
        """Watch, reconcile and publish trust until `stopping` is set (or a watch fails)."""
        self._synced.clear()
        self._readiness.set("watch", ok=False, detail="not synced")
        certs = client.CertificatesV1Api(self._api)
        background = [
            asyncio.create_task(
                list_and_watch(
                    certs.list_certificate_signing_request,
                    self._handlers(signer),
                    timeout_seconds=self.settings.watch_timeout_seconds,
                    field_selector=f"spec.signerName={signer}",
                ),
                name=f"watch {signer}",
            )
            for signer in self.settings.signer_names
        ]
        background.append(asyncio.create_task(self._resync(), name="resync"))
        background.append(asyncio.create_task(self.trust.run(), name="trust-publisher"))
        workers = [
            asyncio.create_task(run_worker(self.queue, self._traced), name=f"worker-{i}")
            for i in range(self.settings.workers)
        ]
        stop = asyncio.create_task(self.stopping.wait())
        graceful = True
        try:
            done, _ = await asyncio.wait([stop, *background], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop:
                    task.result()  # a watch loop never ends unless it failed
        except asyncio.CancelledError:
            graceful = False  # leadership lost: another replica may already be writing
            raise
        finally:
            stop.cancel()
            # Stop taking work; in-flight reconciles finish their writes.
            for task in background:
                task.cancel()
            self.queue.shutdown()
            pending: set[asyncio.Task[None]] = set(workers)
            if graceful:
                _, pending = await asyncio.wait(workers, timeout=SHUTDOWN_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*background, *workers, return_exceptions=True)
            self._readiness.set("watch", ok=False, detail="stopped")


async def run_app(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or until `stop` is set, when given: tests, local mode)."""
    telemetry = Telemetry.create(
        otlp_endpoint=settings.otlp_endpoint, signer_names=list(settings.signer_names)
    )
    readiness = Readiness()
    # A standby is ready: it serves nothing until it leads, and a Deployment
    # rollout must not wait for a pod that is deliberately idle.
    readiness.set(
        "watch",
        ok=settings.leader_elect,
        detail="standby: not leading" if settings.leader_elect else "not synced",
    )
    api = await make_api_client(settings.kubeconfig)

    def on_sources_change() -> None:
        # A new CA or policy set can change what to do with every pending CSR.
        controller.enqueue_all()
        controller.trust.poke()

    sources = Sources(settings, telemetry, readiness, on_sources_change)
    controller = Controller(
        settings=settings,
        api=api,
        sources=sources,
        telemetry=telemetry,
        readiness=readiness,
        stopping=stop or asyncio.Event(),
    )
    sources.reload_policies()
    web = await start_web(settings.metrics_host, settings.metrics_port, readiness, telemetry)
    log.info("serving /healthz /readyz /metrics on %s:%d", settings.metrics_host, web.port)

    if stop is None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, controller.stopping.set)
    side = [
        asyncio.create_task(sources.watch_ca(api), name="ca-watch"),
        asyncio.create_task(sources.poll_policies(), name="policy-poll"),
    ]
    status = 0
    try:
        if settings.leader_elect:
            elector = LeaderElector(
                api,
                namespace=settings.lease_namespace,
                name=settings.lease_name,
                identity=settings.identity,
                lease_duration=settings.lease_duration_seconds,
                renew_deadline=settings.renew_deadline_seconds,
                retry_period=settings.retry_period_seconds,
                on_change=telemetry.set_leader,
            )
            election = asyncio.create_task(elector.run(controller.run))
            stopping = asyncio.create_task(controller.stopping.wait())
            await asyncio.wait([election, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not election.done() and not elector.leading:
                # Stopping before we ever led: nothing in flight, just leave.
                election.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await election
        else:
            telemetry.set_leader(True)
            await controller.run()
    except Exception as exc:  # LeadershipLost, or a watch that gave up
        log.error("controller stopped: %s", exc)
        status = 1
    finally:
        for task in side:
            task.cancel()
        await asyncio.gather(*side, return_exceptions=True)
        await web.close()
        await api.close()
        await asyncio.to_thread(telemetry.shutdown)  # flushing spans blocks
    return status
