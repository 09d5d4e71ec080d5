"""One CSR: read state -> decide (pure) -> at most one write per subresource.

The order of writes is fixed: `/approval` (Approved or Denied), then
`/status` (certificate or Failed). Each write carries the resourceVersion we
decided on, so a concurrent change (a human's deny, another replica) is a
`Conflict`: we re-read and decide again rather than overwrite.

Security invariants, checked here and nowhere else:
- a CSR for a signer name we do not own is never touched;
- a CSR is signed only when it is Approved and neither Denied nor Failed,
  whoever approved it (policy or human); the signing limits (no CA, known
  usages, lifetime) are applied to every CSR by `signer.pki.signing`;
- a CSR that is issued, denied or failed is final: we return at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from signer.kube.errors import ApiError, Conflict, NotFound, TooLarge
from signer.models import CsrView, Decision, Outcome, Refusal, Requester
from signer.pki.ca import CaBundle
from signer.pki.parsing import CsrParseError, parse_csr
from signer.pki.signing import Issued, SigningLimits, issue
from signer.policy import PolicySet, decide
from signer.reactor.cache import CsrCache
from signer.reactor.queueing import WorkQueue
from signer.reactor.state import CsrState, RawCsr, read_state

log = logging.getLogger(__name__)
_T = TypeVar("_T")

APPROVED_REASON = "PolicyApproved"
DENIED_REASON = "PolicyDenied"
CA_REFUSALS = frozenset({"CAExpired", "CANotYetValid"})
"""Refusals caused by our CA, not the request: retried, never a Failed condition."""
UNWRITABLE = object()
"""`shed_under` marker: the API refused even a condition on this CSR (too large)."""
EVENT_MESSAGE_LIMIT = 1024
"""Event messages longer than this are cut by the kube layer (the apiserver's own limit)."""
CA_UNAVAILABLE = "CAUnavailable"
"""No usable CA is loaded (Secret missing or invalid): retried like CA_REFUSALS."""


class CsrWriter(Protocol):
    """What the reconciler needs from the API (signer.kube.csrs.CsrClient)."""

    async def get(self, name: str) -> RawCsr | None: ...
    async def approve(self, raw: RawCsr, reason: str, message: str) -> RawCsr: ...
    async def deny(self, raw: RawCsr, reason: str, message: str) -> RawCsr: ...
    async def fail(self, raw: RawCsr, reason: str, message: str) -> RawCsr: ...
    async def upload_certificate(self, raw: RawCsr, chain_pem: bytes) -> RawCsr: ...
    async def event(
        self, raw: RawCsr, type_: str, reason: str, message: str, *, once: bool = False
    ) -> None: ...


RequestKind = Literal["csr", "pcr"]
"""The ``kind`` label of per-request metrics (signer.telemetry.REQUEST_KINDS)."""


class Metrics(Protocol):
    """The reconcilers' metrics (signer.telemetry.Telemetry implements it).

    `kind` is keyword-only and has no default, so no call site can leave it out.
    """

    def decision(
        self, signer: str, outcome: Outcome, policy: str | None, *, kind: RequestKind
    ) -> None: ...
    def issued(self, signer: str, *, kind: RequestKind) -> None: ...
    def request_unreadable(self, signer: str, reason: str) -> None: ...
    def signing_failed(self, signer: str, reason: str, *, kind: RequestKind) -> None: ...
    def observe_latency(self, signer: str, seconds: float, *, kind: RequestKind) -> None: ...
    def api_error(self, kind: str, verb: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RequestCaps:
    """Bounds on what one request may cost, checked before policy and signing.

    Memory and CPU follow request bytes (parsing, the signature check, evaluating and
    signing each name), so a few tenants with megabyte CSRs could exhaust the
    controller. Over a cap the CSR is Denied (policy path) or Failed (approved by a
    human) with a reason that names the cap.
    """

    max_request_bytes: int = 65_536
    max_sans: int = 256
    offload_bytes: int = 8_192
    """Requests larger than this are parsed, decided and signed in a worker thread, so
    the event loop keeps serving probes and watches; small ones stay inline (cheaper)."""


DEFAULT_CAPS = RequestCaps()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Configuration in force for one reconcile (policies and CA hot-reload)."""

    policies: PolicySet | None
    cas: Mapping[str, CaBundle | None]
    """Each signer name's own CA, usable now (None: missing, invalid or out of validity)."""
    limits: SigningLimits
    cluster_domain: str
    namespace_labels: Callable[[str], Mapping[str, str] | None] = lambda _namespace: None
    """A namespace's labels (`namespaceSelector`s, CEL), None when unknown."""
    namespaces_synced: bool = True
    """False until the namespace watch listed once: reconciles wait rather than
    decide as if every namespace were unlabelled."""

    def labels_of(self, requester: Requester) -> Mapping[str, str] | None:
        """The labels of a ServiceAccount requester's namespace; None for anyone else."""
        sa = requester.serviceaccount
        return self.namespace_labels(sa.namespace) if sa is not None else None


async def refresh(
    key: str,
    *,
    read: Callable[[], Awaitable[dict[str, Any] | None]],
    deleted: dict[str, Any],
    cache: CsrCache,
    queue: WorkQueue,
    metrics: Metrics,
) -> None:
    """After a conflict: re-read `key` with `read` and queue it to be decided again on the
    fresh copy (CSRs and PCRs alike; `deleted` is the tombstone of a vanished object)."""
    before = cache.get(key)
    try:
        fresh = await read()
    except ApiError as exc:
        metrics.api_error(exc.kind, "get")
        queue.retry(key)
        return
    if cache.get(key) is not before:
        # A watch event brought a copy while we read: it may be newer than ours.
        queue.add(key)
    elif fresh is None:
        cache.apply("DELETED", deleted)
    elif cache.apply("MODIFIED", fresh):
        queue.add(key)


class Reconciler:
    def __init__(
        self,
        *,
        signer_names: frozenset[str],
        cache: CsrCache,
        queue: WorkQueue,
        writer: CsrWriter,
        snapshot: Callable[[], Snapshot],
        metrics: Metrics,
        clock: Callable[[], dt.datetime],
        caps: RequestCaps = DEFAULT_CAPS,
    ) -> None:
        self._signer_names = signer_names
        self._cache = cache
        self._queue = queue
        self._writer = writer
        self._snapshot = snapshot
        self._metrics = metrics
        self._clock = clock
        self._caps = caps

    async def __call__(self, name: str) -> None:
        """Reconcile `name` from the cache; requeue with backoff on API errors."""
        raw = self._cache.get(name)
        if raw is None:
            self._queue.forget(name)
            return
        decided_under = self._cache.shed_under(name)
        if decided_under is not None:
            if decided_under is self._snapshot().policies or decided_under is UNWRITABLE:
                self._queue.forget(name)
                return  # nothing new: left for a human under these policies, or unwritable
            await self._refresh(name)  # policies changed: decide again on the whole object
            return
        try:
            requeue = await self._reconcile(raw)
        except Conflict:
            self._metrics.api_error("conflict", "update")
            await self._refresh(name)
            return
        except TooLarge as exc:
            # Not even a condition fits on this object: retrying cannot help, and signing
            # again on every retry would burn CPU forever. Hold only its metadata until
            # the object changes (or is deleted).
            self._metrics.api_error(exc.kind, "update")
            self._cache.shed(name, UNWRITABLE, resource_version=_version(raw))
            self._queue.forget(name)
            log.error("%s: cannot write to this CSR, it is too large: %s", name, exc)
            return
        except ApiError as exc:
            self._metrics.api_error(exc.kind, "update")
            delay = self._queue.retry(name)
            log.warning("%s: %s; retrying in %.2fs", name, exc, delay, extra={"csr": name})
            return
        if requeue:
            self._queue.retry(name)
        else:
            self._queue.forget(name)

    async def _refresh(self, name: str) -> None:
        """After a conflict: re-read the object and decide again on the fresh copy."""
        await refresh(
            name,
            read=lambda: self._writer.get(name),
            deleted={"metadata": {"name": name}},
            cache=self._cache,
            queue=self._queue,
            metrics=self._metrics,
        )

    async def _reconcile(self, raw: RawCsr) -> bool:
        """Returns True when the CSR must be retried later (not ready to act)."""
        state = read_state(raw)
        signer = state.request.signer_name
        if signer not in self._signer_names or state.final:
            return False
        snapshot = self._snapshot()
        policy_name: str | None = None
        # Parsed once, for deciding and for signing; large requests off the event loop.
        view = await self._cpu(state, _parse, state, self._caps)
        if not state.approved:
            if snapshot.policies is None or not snapshot.namespaces_synced:
                return True  # policies or namespace labels not loaded yet: wait
            decision = await self._cpu(state, self._decide, state, snapshot, view)
            self._metrics.decision(signer, decision.outcome, decision.policy, kind="csr")
            if decision.outcome is Outcome.ABSTAIN:
                requester = state.request.requester
                await self._abstain(state, decision, view)
                # Shed under these policies only if the labels it was decided with still
                # hold: a relabel during the Event write found nothing shed to forget, and
                # the re-run it queued must see the whole copy.
                if self._snapshot().labels_of(requester) == snapshot.labels_of(requester):
                    self._cache.shed(
                        state.name, snapshot.policies, resource_version=state.resource_version
                    )
                return False
            if decision.outcome is Outcome.DENY:
                message = decision.summary()
                raw = await self._writer.deny(raw, DENIED_REASON, message)
                self._cache.apply("MODIFIED", raw)
                if isinstance(view, CsrParseError):  # counted once, when refused
                    self._metrics.request_unreadable(signer, unreadable_reason(view))
                await self._writer.event(raw, "Warning", "Denied", message)
                log.info("%s: denied: %s", state.name, message, extra={"csr": state.name})
                return False
            policy_name = decision.policy
            approved = f'approved by policy "{policy_name}"'
            raw = await self._writer.approve(raw, APPROVED_REASON, approved)
            self._cache.apply("MODIFIED", raw)
            log.info("%s: %s", state.name, approved, extra={"csr": state.name})
            # Its Event is the Issued one when signing follows now (one Event per CSR, as
            # the apiserver's share of the work should be); `_sign` writes it otherwise.
            return await self._sign(raw, state, snapshot, policy_name, view, approved=approved)
        # Approved earlier (by us before a restart, or by a human): the approving
        # policy, if one would approve, still caps the lifetime.
        if snapshot.policies is None or not snapshot.namespaces_synced:
            return True  # the approving policy's lifetime cap is not known yet
        again = await self._cpu(state, self._decide, state, snapshot, view)
        policy_name = again.policy if again.outcome is Outcome.APPROVE else None
        return await self._sign(raw, state, snapshot, policy_name, view)

    def _decide(
        self, state: CsrState, snapshot: Snapshot, view: CsrView | CsrParseError
    ) -> Decision:
        assert snapshot.policies is not None
        if state.problem is not None:
            return Decision(Outcome.DENY, reasons=(state.problem,))
        if isinstance(view, CsrParseError) and snapshot.policies.governs(state.request.signer_name):
            message = str(view)  # decided here: decide() would parse it a second time
            if not message.startswith("spec.request"):
                message = f"spec.request: {message}"
            return Decision(Outcome.DENY, reasons=(message,))
        return decide(
            state.request,
            snapshot.policies,
            cluster_domain=snapshot.cluster_domain,
            parsed=view if isinstance(view, CsrView) else None,
            namespace_labels=snapshot.labels_of(state.request.requester),
        )

    async def _abstain(
        self, state: CsrState, decision: Decision, view: CsrView | CsrParseError
    ) -> None:
        if not self._cache.note_pending(state.name):
            return  # one Pending Event per CSR (the cache remembers, by UID)
        prefix = (
            f"{decision.summary(max_chars=300)}; left Pending for a human: "
            f"kubectl certificate approve|deny {state.name}; approving issues exactly: "
        )
        # The whole description must fit the Event (its end says "..." and how many more).
        budget = max(200, EVENT_MESSAGE_LIMIT - len(prefix))
        issued = (
            view.describe(max_chars=budget, max_names=5)
            if isinstance(view, CsrView)
            else f"unreadable: {view}"
        )
        message = prefix + issued
        # once=True: a restart (which forgets note_pending) does not repeat it either.
        await self._writer.event(state.raw, "Normal", "Pending", message, once=True)
        log.info("%s: pending: %s", state.name, decision.message, extra={"csr": state.name})

    def _limits(self, snapshot: Snapshot, signer: str, policy_name: str | None) -> SigningLimits:
        cap = snapshot.policies.max_lifetime(signer, policy_name) if snapshot.policies else None
        if cap is None or cap >= snapshot.limits.max_duration:
            return snapshot.limits
        return SigningLimits(
            max_duration=max(cap, SigningLimits.min_duration),
            default_duration=snapshot.limits.default_duration,
        )

    async def _sign(
        self,
        raw: RawCsr,
        state: CsrState,
        snapshot: Snapshot,
        policy_name: str | None,
        view: CsrView | CsrParseError,
        *,
        approved: str | None = None,
    ) -> bool:
        """Sign and upload. `approved`: this pass approved the CSR with that message, and
        its Event is still to be written (folded into the Issued Event on success)."""
        signer = state.request.signer_name
        ca = snapshot.cas.get(signer)
        if ca is None:
            # No valid CA: readiness says so; counted per attempt, retried with backoff.
            self._metrics.signing_failed(signer, CA_UNAVAILABLE, kind="csr")
            await self._approved_event(raw, approved)
            return True
        outcome = await self._cpu(state, self._issue, state, snapshot, ca, policy_name, view)
        if isinstance(outcome, Refusal):
            await self._approved_event(raw, approved)
            if outcome.reason in CA_REFUSALS:
                self._metrics.signing_failed(signer, outcome.reason, kind="csr")
                log.error("%s: cannot sign: %s", state.name, outcome.message)
                return True
            parse_error = view if isinstance(view, CsrParseError) else None
            await self._refuse(raw, state, outcome, unreadable=parse_error)
            return False
        try:
            raw = await self._writer.upload_certificate(raw, outcome.certificate_pem)
        except TooLarge as exc:
            # Retrying cannot help: say so on the CSR, in a write that is small.
            await self._approved_event(raw, approved)
            await self._refuse(
                raw,
                state,
                Refusal(
                    "CertificateTooLarge",
                    f"the certificate ({len(outcome.certificate_pem)} bytes of PEM) is too large "
                    f"for the API to store ({exc}); request fewer names",
                ),
            )
            return False
        self._cache.apply("MODIFIED", raw)
        self._metrics.issued(signer, kind="csr")
        if state.created is not None:
            latency = (self._clock() - state.created).total_seconds()
            self._metrics.observe_latency(signer, max(latency, 0.0), kind="csr")
        message = (
            f"issued certificate serial {outcome.serial_number:x}, "
            f"valid until {outcome.not_after:%Y-%m-%dT%H:%M:%SZ}"
        )
        if outcome.cut_to_ca:
            message += " (shortened to the CA's expiry: rotate the CA)"
        log.info("%s: %s", state.name, message, extra={"csr": state.name})
        if approved is not None:
            message = f"{approved}; {message}"
        await self._writer.event(raw, "Normal", "Issued", message)
        return False

    async def _approved_event(self, raw: RawCsr, approved: str | None) -> None:
        """The Approved Event, when signing does not follow in the same pass."""
        if approved is not None:
            await self._writer.event(raw, "Normal", "Approved", approved)

    async def _cpu(self, state: CsrState, fn: Callable[..., _T], *args: Any) -> _T:
        """Run CPU-bound `fn` inline, or in a worker thread for a large request."""
        if len(state.request.request) > self._caps.offload_bytes:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    async def _refuse(
        self,
        raw: RawCsr,
        state: CsrState,
        refusal: Refusal,
        *,
        unreadable: CsrParseError | None = None,
    ) -> None:
        """Mark the CSR Failed with the refusal's reason: final, never signed."""
        self._metrics.signing_failed(state.request.signer_name, refusal.reason, kind="csr")
        raw = await self._writer.fail(raw, refusal.reason, refusal.message)
        if unreadable is not None:  # counted once, when refused
            self._metrics.request_unreadable(
                state.request.signer_name, unreadable_reason(unreadable)
            )
        self._cache.apply("MODIFIED", raw)
        await self._writer.event(raw, "Warning", "SigningFailed", refusal.message)
        log.info("%s: signing refused: %s", state.name, refusal.message, extra={"csr": state.name})

    def _issue(
        self,
        state: CsrState,
        snapshot: Snapshot,
        ca: CaBundle,
        policy_name: str | None,
        view: CsrView | CsrParseError,
    ) -> Issued | Refusal:
        if state.problem is not None:
            return Refusal("InvalidRequest", state.problem)
        if isinstance(view, CsrParseError):
            return Refusal("InvalidRequest", str(view))
        return issue(
            view,
            ca,
            usages=state.request.usages,
            now=self._clock(),
            requested_seconds=state.request.expiration_seconds,
            limits=self._limits(snapshot, state.request.signer_name, policy_name),
        )


class OverCap(CsrParseError):
    """A request over one of the `RequestCaps`; `reason` is its metric label."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _version(raw: RawCsr) -> str:
    return str((raw.get("metadata") or {}).get("resourceVersion") or "")


def unreadable_reason(error: CsrParseError) -> str:
    return error.reason if isinstance(error, OverCap) else "Malformed"


def _parse(state: CsrState, caps: RequestCaps) -> CsrView | CsrParseError:
    size = len(state.request.request)
    if size > caps.max_request_bytes:
        return OverCap(
            f"spec.request is {size} bytes, over this signer's limit of "
            f"{caps.max_request_bytes} (--max-request-bytes)",
            "TooLarge",
        )
    try:
        view = parse_csr(state.request.request)
    except CsrParseError as exc:
        return exc
    sans = len(view.dns_names) + len(view.ip_addresses) + len(view.uris) + len(view.emails)
    sans += len(view.other_sans)
    if sans > caps.max_sans:
        return OverCap(
            f"spec.request has {sans} subject alternative names, over this signer's limit "
            f"of {caps.max_sans} (--max-sans)",
            "TooManyNames",
        )
    return view


__all__ = ["CsrWriter", "Metrics", "NotFound", "Reconciler", "Snapshot"]
