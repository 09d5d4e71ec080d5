"""Leader election on a coordination.k8s.io/v1 Lease (after client-go's leaderelection).

Only the leader reconciles. A candidate takes the Lease when it is free or
its holder has not renewed it for `lease_duration`, measured on our own
monotonic clock from when we last saw the record change (so clock skew
between replicas does not matter). The leader renews every `retry_period`;
if it cannot renew within `renew_deadline` it stops leading: its work is
cancelled and `run()` raises `LeadershipLost` (the process exits and is
restarted, as kube-controller-manager does). On a clean shutdown the Lease
is released so a standby takes over at once instead of after expiry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from kubernetes_asyncio import client

from signer.kube.client import as_body, read_json
from signer.kube.errors import ApiError, NotFound

log = logging.getLogger(__name__)


class LeadershipLost(RuntimeError):
    pass


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_change: Callable[[bool], None] = lambda _leading: None,
    ) -> None:
        self._leases = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration, self.renew_deadline = lease_duration, renew_deadline
        self.retry_period = retry_period
        self._on_change = on_change
        self._observed: tuple[str, str] | None = None
        self._observed_at = 0.0
        self.leading = False

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Wait to lead, then run `lead()` while leading; release on exit."""
        try:
            while not await self._try_acquire_or_renew():  # noqa: ASYNC110 - polling is the protocol
                await asyncio.sleep(self.retry_period)
        except asyncio.CancelledError:
            # Cancelled mid-acquisition: our write may have reached the server.
            # Release if we hold it, so a standby need not wait for expiry.
            await self._release()
            raise
        self._set_leading(True)
        log.info("became leader (lease %s/%s as %s)", self.namespace, self.name, self.identity)
        work = asyncio.create_task(lead(), name="leader-work")
        renew = asyncio.create_task(self._renew_loop(), name="lease-renew")
        try:
            done, _ = await asyncio.wait({work, renew}, return_when=asyncio.FIRST_COMPLETED)
            if renew in done:
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
                renew.result()
                raise LeadershipLost(f"lost lease {self.namespace}/{self.name}")
            work.result()
        finally:
            for task in (work, renew):
                task.cancel()
            await asyncio.gather(work, renew, return_exceptions=True)
            if self.leading:
                await self._release()
            self._set_leading(False)

    def _set_leading(self, leading: bool) -> None:
        self.leading = leading
        self._on_change(leading)

    async def _renew_loop(self) -> None:
        """Renew every retry_period; return (step down) once renew_deadline has
        passed since the last success. Every wait is bounded by what is left of
        the deadline, so a hung request cannot keep us leading past it (the Lease
        duration, which others wait for, is longer than the deadline)."""
        last_renew = time.monotonic()
        while True:
            left = self.renew_deadline - (time.monotonic() - last_renew)
            await asyncio.sleep(max(0.0, min(self.retry_period, left)))
            left = self.renew_deadline - (time.monotonic() - last_renew)
            if left <= 0:
                return
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation
                # that arrives as the call completes, and this loop would renew forever.
                async with asyncio.timeout(left):
                    renewed = await self._try_acquire_or_renew()
            except TimeoutError:
                # str() of a timeout is empty: say what happened instead.
                log.warning("lease renewal failed: no answer within %.1fs", left)
                renewed = False
            except ApiError as exc:
                log.warning("lease renewal failed: %s", exc)
                renewed = False
            if renewed:
                last_renew = time.monotonic()

    async def _try_acquire_or_renew(self) -> bool:
        now = _micro_now()
        try:
            lease = await read_json(
                self._leases.read_namespaced_lease(
                    self.name, self.namespace, _preload_content=False
                )
            )
        except NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(now, now, 0),
            }
            try:
                await read_json(
                    self._leases.create_namespaced_lease(
                        self.namespace, as_body(body), _preload_content=False
                    )
                )
            except ApiError as exc:
                log.debug("creating lease failed: %s", exc)
                return False
            return True
        except ApiError as exc:
            log.debug("reading lease failed: %s", exc)
            return False
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, str(spec.get("renewTime")))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        held_by_other = holder not in ("", self.identity)
        if held_by_other and time.monotonic() - self._observed_at < duration:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder != self.identity:
            transitions += 1
            acquire = now
        else:
            acquire = spec.get("acquireTime") or now
        lease["spec"] = self._spec(acquire, now, transitions)
        try:
            await read_json(
                self._leases.replace_namespaced_lease(
                    self.name, self.namespace, as_body(lease), _preload_content=False
                )
            )
        except ApiError as exc:
            log.debug("updating lease failed: %s", exc)
            return False
        return True

    def _spec(self, acquire: str, renew: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration),
            "acquireTime": acquire,
            "renewTime": renew,
            "leaseTransitions": transitions,
        }

    async def _release(self) -> None:
        try:
            lease = await read_json(
                self._leases.read_namespaced_lease(
                    self.name, self.namespace, _preload_content=False
                )
            )
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["leaseDurationSeconds"] = 1
            lease["spec"]["renewTime"] = _micro_now()
            await read_json(
                self._leases.replace_namespaced_lease(
                    self.name, self.namespace, as_body(lease), _preload_content=False
                )
            )
            log.info("released lease %s/%s", self.namespace, self.name)
        except ApiError as exc:
            log.warning("could not release lease: %s", exc)
