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

from signer.config import MAX_WORKERS, Settings
from signer.kube.client import make_api_client, observe_latency
from signer.kube.csrs import CsrClient
from signer.kube.errors import ApiError, Forbidden
from signer.kube.leader import LeaderElector
from signer.kube.namespaces import list_function as namespace_list_function
from signer.kube.pcrs import PcrClient, watch_pcrs
from signer.kube.trust import TrustPublisher
from signer.kube.watching import Handlers, list_and_watch
from signer.models import Requester
from signer.pki.ca import CaBundle, CaError, CaTimeError, load_ca_from_secret_data
from signer.pki.signing import SigningLimits
from signer.policy import PolicyLoadError, PolicySet, bundled_policies_dir, load_policies
from signer.policy.loader import fingerprint as policy_fingerprint
from signer.reactor.cache import CsrCache
from signer.reactor.concurrency import AdaptiveLimit, FixedLimit
from signer.reactor.namespaces import NamespaceLabels
from signer.reactor.pods import (
    PodReconciler,
    is_final_pcr,
    is_pcr_key,
    pcr_key,
    pcr_lane,
    split_key,
)
from signer.reactor.queueing import WorkQueue, run_worker
from signer.reactor.reconcile import UNWRITABLE, Reconciler, RequestCaps, Snapshot
from signer.reactor.state import is_final, requester_lane
from signer.telemetry import Telemetry
from signer.trust import TrustTargets
from signer.web import Readiness, start_web

log = logging.getLogger(__name__)
SHUTDOWN_GRACE_SECONDS = 20.0
CA_VALIDITY_CHECK_SECONDS = 30.0
"""How often a loaded CA's validity window is re-checked (readiness, signing)."""


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
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        loader: Callable[[Path], PolicySet] = load_policies,
    ) -> None:
        self.settings = settings
        self.policies: PolicySet | None = None
        self._loader = loader
        self._secrets = settings.ca_secrets
        self.cas: dict[str, CaBundle | None] = dict.fromkeys(settings.signer_names)
        """Each signer's own CA (None: not loaded, invalid, or outside its validity)."""
        self._loaded: dict[tuple[str, str], CaBundle | None] = {}
        self._telemetry = telemetry
        self._readiness = readiness
        self._on_change = on_change
        self._clock = clock
        self._policy_fingerprint: str | None = None
        self._ca_versions: dict[tuple[str, str], str | None] = {}
        self._retry_later: dict[tuple[str, str], dict[str, Any]] = {}
        """Secrets that failed only on time (`CaTimeError`), reloaded by the timer."""
        self.limits = SigningLimits(
            max_duration=dt.timedelta(seconds=settings.max_duration_seconds),
            default_duration=dt.timedelta(seconds=settings.default_duration_seconds),
        )
        for signer, (namespace, name) in self._secrets.items():
            readiness.set(
                _ca_check(signer), ok=False, detail=f"secret {namespace}/{name} not loaded"
            )
        readiness.set("policies", ok=False, detail="not loaded yet")
        self.namespaces = NamespaceLabels()
        """Every namespace's labels, for `namespaceSelector`s and CEL rules."""
        readiness.set("namespaces", ok=False, detail="not listed yet")

    @property
    def secrets(self) -> frozenset[tuple[str, str]]:
        """The distinct CA Secrets to watch (namespace, name)."""
        return frozenset(self._secrets.values())

    def snapshot(self) -> Snapshot:
        return Snapshot(
            policies=self.policies,
            cas=dict(self.cas),
            limits=self.limits,
            cluster_domain=self.settings.cluster_domain,
            namespace_labels=self.namespaces.get,
            namespaces_synced=self.namespaces.synced,
        )

    @property
    def policy_dir(self) -> Path:
        return self.settings.policy_dir or bundled_policies_dir()

    # -- policies --------------------------------------------------------------------

    def reload_policies(self) -> bool:
        """Load the policy files if they changed; keep the old set if the new one is invalid.

        Returns True when a new set took effect. Never raises: a policy directory is
        edited by people, and whatever is wrong with it must be reported (log, readiness,
        `policy_reloads_total{result="failure"}`), never take the controller down.
        """
        return self._apply_policies(self._read_policies())

    def _read_policies(self) -> PolicySet | str | None:
        """The new set, None if nothing changed, or why it cannot be used.

        Touches no shared state except the fingerprint, so the poll loop runs it in a
        worker thread: parsing and compiling policies is CPU work that must not block
        the event loop that serves probes and watches.
        """
        try:
            fingerprint = policy_fingerprint(self.policy_dir)
        except OSError as exc:
            return f"cannot read the policy directory: {exc}"
        if fingerprint == self._policy_fingerprint:
            return None
        # Remembered before loading, so a broken set is not re-parsed every poll.
        self._policy_fingerprint = fingerprint
        try:
            return self._loader(self.policy_dir)
        except PolicyLoadError as exc:
            return str(exc) or "invalid"
        except Exception as exc:  # the loader's own bug must not stop hot reload
            return f"cannot load: {type(exc).__name__}: {exc}"

    def _apply_policies(self, result: PolicySet | str | None) -> bool:
        if result is None:
            return False
        if isinstance(result, str):
            self._telemetry.policy_reload(ok=False)
            kept = "the previous policies stay in force" if self.policies else "no policies loaded"
            detail = result.splitlines()[0]
            self._readiness.set("policies", ok=False, detail=f"invalid ({kept}): {detail}")
            log.error("rejected policy files in %s (%s):\n%s", self.policy_dir, kept, result)
            return False
        self.policies = result
        self._telemetry.policy_reload(ok=True)
        self._readiness.set("policies", ok=True, detail="")
        log.info("loaded policies from %s for %s", self.policy_dir, sorted(result.signer_names))
        self._on_change()
        return True

    async def poll_policies(self) -> None:
        """Forever: check the directory; a failure is reported and the loop goes on."""
        while True:
            await asyncio.sleep(self.settings.policy_reload_seconds)
            try:
                result = await asyncio.to_thread(self._read_policies)
            except Exception as exc:  # e.g. the thread could not start: report, go on
                result = f"cannot load: {type(exc).__name__}: {exc}"
            try:
                self._apply_policies(result)
            except Exception:  # e.g. a callback's bug: the loop must outlive it
                log.exception("applying the policy set failed")

    # -- CA ----------------------------------------------------------------------------

    def _secret_changed(self, secret_ref: tuple[str, str], secret: dict[str, Any] | None) -> None:
        """A CA Secret was added, changed or deleted: reload it for every signer it serves."""
        where = "/".join(secret_ref)
        if secret is None:
            self._ca_versions[secret_ref] = None
            self._set_loaded(secret_ref, None, f"secret {where} not found")
            log.error(
                "CA Secret %s not found; signing paused for %s", where, self._users(secret_ref)
            )
            return
        version = str((secret.get("metadata") or {}).get("resourceVersion"))
        if version == self._ca_versions.get(secret_ref):
            return
        self._ca_versions[secret_ref] = version
        self._retry_later.pop(secret_ref, None)
        try:
            data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
            ca = load_ca_from_secret_data(data, now=self._clock())
        except CaTimeError as exc:  # sound but not valid now: try again on the timer
            self._retry_later[secret_ref] = secret
            self._set_loaded(secret_ref, None, f"secret {where}: {exc}")
            log.error("CA Secret %s is not usable now; signing paused: %s", where, exc)
            return
        except Exception as exc:  # any malformed material: stop signing, never crash
            if not isinstance(exc, CaError | ValueError):
                exc = CaError(f"cannot load: {type(exc).__name__}: {exc}")
            self._set_loaded(secret_ref, None, f"secret {where}: {exc}")
            log.error("CA Secret %s is invalid; signing paused: %s", where, exc)
            return
        self._set_loaded(secret_ref, ca, "")
        log.info("loaded CA %s from secret %s for %s", ca.identity, where, self._users(secret_ref))

    def _users(self, secret_ref: tuple[str, str]) -> list[str]:
        return sorted(s for s, ref in self._secrets.items() if ref == secret_ref)

    def _set_loaded(self, secret_ref: tuple[str, str], ca: CaBundle | None, problem: str) -> None:
        self._loaded[secret_ref] = ca
        for signer in self._users(secret_ref):
            if ca is None:
                self._readiness.set(_ca_check(signer), ok=False, detail=problem)
            else:
                self._telemetry.set_ca_not_after(signer, ca.not_after.timestamp())
        self.check_ca_validity()

    def check_ca_validity(self) -> None:
        """Serve each signer's loaded CA only within its validity; readiness says which not.

        Runs on every load and on a timer (`watch_ca_validity`): a CA that expires while
        loaded must turn readiness red when it happens, not at the next Secret change.
        """
        now = self._clock()
        changed = False
        for signer, ref in self._secrets.items():
            ca = self._loaded.get(ref)
            if ca is None:
                usable = None
            elif now >= ca.not_after:
                usable = None
                detail = f"CA {ca.identity} expired at {ca.not_after.isoformat()}"
                self._readiness.set(_ca_check(signer), ok=False, detail=detail)
            elif now < ca.not_before:
                usable = None
                detail = f"CA {ca.identity} is not valid before {ca.not_before.isoformat()}"
                self._readiness.set(_ca_check(signer), ok=False, detail=detail)
            else:
                usable = ca
                self._readiness.set(_ca_check(signer), ok=True, detail="")
            if self.cas.get(signer) is not usable:
                self.cas[signer] = usable
                changed = True
        if changed:
            self._on_change()

    async def watch_ca_validity(self) -> None:
        """Forever: reload Secrets that were only out of their validity, re-check the rest."""
        while True:
            await asyncio.sleep(CA_VALIDITY_CHECK_SECONDS)
            try:
                self.retry_time_failures()
                self.check_ca_validity()
            except Exception:  # a bug here must not stop the timer: report, go on
                log.exception("CA validity check failed")

    def retry_time_failures(self) -> None:
        """Load again the Secrets whose CA was not yet (or no longer) valid."""
        for secret_ref, secret in list(self._retry_later.items()):
            self._ca_versions[secret_ref] = None
            self._secret_changed(secret_ref, secret)

    async def watch_namespaces(
        self,
        api: client.ApiClient | None,
        on_change: Callable[[set[str]], None],
        *,
        list_fn: Callable[..., Any] | None = None,
    ) -> None:
        """Keep `namespaces` current (metadata only); `on_change` gets the namespaces whose
        labels changed, so pending requests from them can be decided again. `list_fn`
        replaces the API's list function (tests)."""
        if list_fn is None:
            assert api is not None
            list_fn = namespace_list_function(api)

        def on_list(items: list[dict[str, Any]]) -> None:
            changed = self.namespaces.replace(items)
            self._readiness.set("namespaces", ok=True, detail="")
            log.info("namespace labels: %d namespaces", len(self.namespaces))
            if changed:
                on_change(changed)

        def on_event(kind: str, obj: dict[str, Any]) -> None:
            if self.namespaces.apply(kind, obj):
                on_change({str((obj.get("metadata") or {}).get("name", ""))})

        def on_error(exc: ApiError) -> None:
            self._telemetry.api_error(exc.kind, "watch")
            if isinstance(exc, Forbidden) and not self.namespaces.synced:
                # RBAC from before namespace labels (an upgrade that kept its old
                # ClusterRole): keep signing, with every namespace's labels unknown, so
                # namespaceSelectors select nobody; say so loudly, and keep retrying.
                self.namespaces.replace([])
                self._readiness.set(
                    "namespaces",
                    ok=False,
                    detail=f"cannot list namespaces ({exc}); namespaceSelectors select nobody",
                )
                log.error(
                    "cannot list namespaces (%s): grant list/watch on namespaces "
                    "(deploy/rbac.yaml); until then namespaceSelectors select nobody",
                    exc,
                )

        await list_and_watch(
            list_fn,
            Handlers(on_list=on_list, on_event=on_event, on_error=on_error),
            timeout_seconds=self.settings.watch_timeout_seconds,
        )

    async def watch_ca(self, api: client.ApiClient, secret_ref: tuple[str, str]) -> None:
        core = client.CoreV1Api(api)
        namespace, name = secret_ref

        def on_list(items: list[dict[str, Any]]) -> None:
            self._secret_changed(secret_ref, items[0] if items else None)

        def on_event(kind: str, obj: dict[str, Any]) -> None:
            self._secret_changed(secret_ref, None if kind == "DELETED" else obj)

        await list_and_watch(
            functools.partial(core.list_namespaced_secret, namespace),
            Handlers(on_list=on_list, on_event=on_event),
            timeout_seconds=self.settings.watch_timeout_seconds,
            field_selector=f"metadata.name={name}",
        )


def _ca_check(signer: str) -> str:
    """The readiness check of one signer's CA."""
    return f"ca {signer}"


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
        self.pcr_cache = CsrCache(key=pcr_key, final=is_final_pcr)
        """PodCertificateRequests, keyed "pcr:<ns>/<name>" (signer.reactor.pods says why)."""
        # Fair across requesters: one tenant's flood does not delay another's CSR.
        self.queue = WorkQueue(lane_of=self._lane)
        # --workers 0 (the default): as many reconciles at once as the API's latency
        # allows (signer.reactor.concurrency); N: exactly N.
        self.limit = (
            AdaptiveLimit(maximum=MAX_WORKERS)
            if settings.workers == 0
            else FixedLimit(settings.workers)
        )
        observe_latency(api, self.limit.observe)
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
            caps=RequestCaps(
                max_request_bytes=settings.max_request_bytes, max_sans=settings.max_sans
            ),
        )
        self._pcr_writer = PcrClient(api, identity=settings.identity)
        """Its version is the one `watch_pcrs` found served."""
        self.pod_reconciler = PodReconciler(
            signer_names=frozenset(settings.signer_names),
            cache=self.pcr_cache,
            queue=self.queue,
            writer=self._pcr_writer,
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
            configmap_signer=settings.configmap_signer,
        )
        self.trust = TrustPublisher(
            api, targets=targets, cas=lambda: sources.cas, resync_seconds=settings.resync_seconds
        )

    def _lane(self, key: str) -> str:
        if is_pcr_key(key):
            return pcr_lane(key)
        return requester_lane(self.cache.get(key))

    async def _traced(self, name: str) -> None:
        """One span per reconcile (exported only when an OTLP endpoint is set)."""
        if is_pcr_key(name):
            with self._telemetry.tracer.start_as_current_span(
                "reconcile", attributes={"k8s.podcertificaterequest.key": name}
            ):
                await self.pod_reconciler(name)
        else:
            with self._telemetry.tracer.start_as_current_span(
                "reconcile", attributes={"k8s.csr.name": name}
            ):
                await self.reconciler(name)
        self._telemetry.set_queue_depth(self.queue.depth)
        self._telemetry.set_concurrency_limit(self.limit.limit)

    def requeue_namespaces(self, namespaces: set[str]) -> None:
        """Those namespaces' labels changed: decide their pending requests again.

        A CSR left to a human under the current policies is normally not decided
        again until they change; a `namespaceSelector` or a CEL rule may now
        decide it, so its decision is made stale first.
        """
        for name in self.cache.names():
            raw = self.cache.get(name) or {}
            username = str((raw.get("spec") or {}).get("username", ""))
            sa = Requester(username=username).serviceaccount
            if sa is None or sa.namespace not in namespaces:
                continue
            self.cache.forget_decision(name, unless=UNWRITABLE)
            self.queue.add(name)
        for key in self.pcr_cache.names():
            if split_key(key)[0] in namespaces:
                self.queue.add(key)
        self._telemetry.set_queue_depth(self.queue.depth)

    def enqueue_all(self) -> None:
        for name in [*self.cache.names(), *self.pcr_cache.names()]:
            self.queue.add(name)

    def _pcr_handlers(self, signer: str) -> Handlers:
        """As `_handlers`, for one signer's PCRs; they do not gate readiness (the beta API
        may not be served, and CSR signing must not wait for it)."""

        def on_list(items: list[dict[str, Any]]) -> None:
            fresh = self.pcr_cache.replace(
                items, scope=lambda raw: (raw.get("spec") or {}).get("signerName") == signer
            )
            for key in fresh:
                self.queue.add(key)
            self._telemetry.set_queue_depth(self.queue.depth)

        def on_event(kind: str, raw: dict[str, Any]) -> None:
            if self.pcr_cache.apply(kind, raw):
                self.queue.add(pcr_key(raw))
            self._telemetry.set_queue_depth(self.queue.depth)

        def on_error(exc: ApiError) -> None:
            self._telemetry.api_error(exc.kind, "watch")

        def pending(raw: dict[str, Any]) -> bool:
            return not is_final_pcr(raw)

        return Handlers(on_list=on_list, on_event=on_event, on_error=on_error, keep=pending)

    def _handlers(self, signer: str) -> Handlers:
        def on_list(items: list[dict[str, Any]]) -> None:
            # One cache, several per-signer lists: replace only this signer's part.
            fresh = self.cache.replace(
                items, scope=lambda raw: (raw.get("spec") or {}).get("signerName") == signer
            )
            for name in fresh:
                self.queue.add(name)
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
        if self.settings.pod_certificates:
            background.append(
                asyncio.create_task(
                    watch_pcrs(
                        self._api,
                        signers=self.settings.signer_names,
                        handlers=self._pcr_handlers,
                        writer=self._pcr_writer,
                        timeout_seconds=self.settings.watch_timeout_seconds,
                        recheck_seconds=self.settings.resync_seconds,
                    ),
                    name="watch pcrs",
                )
            )
        background.append(asyncio.create_task(self._resync(), name="resync"))
        background.append(asyncio.create_task(self.trust.run(), name="trust-publisher"))
        workers = [
            asyncio.create_task(
                run_worker(self.queue, self._traced, self.limit), name=f"worker-{i}"
            )
            for i in range(self.limit.maximum)
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
    for (namespace, name), signers in settings.signers_sharing_a_ca.items():
        log.warning(
            "CA Secret %s/%s signs for %d signer names (%s): whoever may approve for one of "
            "them can obtain names that consumers of the others' trust bundles accept; give "
            "each its own CA with --signer-ca SIGNER=NAMESPACE/NAME",
            namespace,
            name,
            len(signers),
            ", ".join(signers),
        )
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
        *(
            asyncio.create_task(sources.watch_ca(api, ref), name=f"ca-watch {'/'.join(ref)}")
            for ref in sorted(sources.secrets)
        ),
        asyncio.create_task(sources.watch_ca_validity(), name="ca-validity"),
        asyncio.create_task(sources.poll_policies(), name="policy-poll"),
        asyncio.create_task(
            sources.watch_namespaces(api, controller.requeue_namespaces),
            name="namespace-watch",
        ),
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
