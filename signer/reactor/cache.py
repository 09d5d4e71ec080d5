"""The watch cache: the latest copy of every CSR that still needs work.

Only non-final CSRs are kept (issued, denied and failed ones are done for
good), so memory follows the backlog, not the cluster's history: a cluster
holding 10,000 issued CSRs costs a set of UIDs here. Finality is monotone in
the API (conditions cannot be removed, a certificate is immutable), so once
a UID is seen final, any older copy that a watch delivers later is ignored.

The cache also remembers which pending CSRs already have their one `Pending`
Event (by UID). That memory lives and dies with the cache entry, so it is
bounded by the backlog and never evicted while the CSR is still pending:
an LRU of names, evicted in resync order, re-emitted an Event for every
pending CSR on every resync once the backlog outgrew it.

A CSR left Pending for a human can wait for days, so once decided its entry
sheds ``spec.request`` (the bulk of the object; up to the request cap each):
memory for a backlog of 10,000 then follows metadata, not request bytes. The
entry remembers what it was decided under (`shed_under`); the watch brings a
full copy again when a human acts, and a policy change re-reads it from the API.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from signer.reactor.state import RawCsr, is_final

FINISHED_MEMORY = 50_000
"""How many finished UIDs to remember (to ignore late, stale watch events)."""


STALE = object()
"""What a shed copy was decided under once that no longer holds (`forget_decision`)."""


def _uid(raw: RawCsr) -> str:
    metadata = raw.get("metadata") or {}
    return str(metadata.get("uid") or metadata.get("name") or "")


def _version(raw: RawCsr) -> str:
    return str((raw.get("metadata") or {}).get("resourceVersion") or "")


_SKELETON_METADATA = ("name", "namespace", "uid", "resourceVersion")
_SKELETON_SPEC = ("signerName", "username")


def _skeleton(raw: RawCsr) -> RawCsr:
    """What a shed copy keeps: identity, version, signer (relist scope), username (lane)."""
    metadata = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    return {
        "metadata": {k: metadata[k] for k in _SKELETON_METADATA if k in metadata},
        "spec": {k: spec[k] for k in _SKELETON_SPEC if k in spec},
    }


def _name(raw: RawCsr) -> str:
    return str((raw.get("metadata") or {}).get("name") or "")


class CsrCache:
    """See the module docstring. `key` and `final` make it serve PodCertificateRequests too
    (keyed "pcr:<namespace>/<name>", final on an Issued, Denied or Failed condition): the
    same finished-UID memory and per-signer relists apply unchanged."""

    def __init__(
        self,
        *,
        finished_memory: int = FINISHED_MEMORY,
        key: Callable[[RawCsr], str] = _name,
        final: Callable[[RawCsr], bool] = is_final,
    ) -> None:
        self._key = key
        self._final = final
        self._pending: dict[str, RawCsr] = {}
        self._noted: set[str] = set()
        """UIDs of pending CSRs that already have their Pending Event."""
        self._shed: dict[str, object] = {}
        """Names whose cached copy has no spec.request -> what they were decided under."""
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._finished_memory = finished_memory

    def __len__(self) -> int:
        return len(self._pending)

    def get(self, name: str) -> RawCsr | None:
        return self._pending.get(name)

    def names(self) -> list[str]:
        return list(self._pending)

    def replace(
        self,
        items: Iterable[RawCsr],
        *,
        scope: Callable[[RawCsr], bool] = lambda _raw: True,
    ) -> list[str]:
        """A fresh list of the CSRs in `scope` (e.g. one signer's): keep exactly its non-final
        items there, leave other entries alone, and return the fresh items' names to enqueue.

        Pending notes survive for UIDs that are still pending: a relist (after 410 Gone or
        a restart of the watch) must not send every pending CSR a second Pending Event.
        """
        for name in [n for n, raw in self._pending.items() if scope(raw)]:
            self._shed.pop(name, None)
            del self._pending[name]
        fresh = [self._key(raw) for raw in items if self.apply("ADDED", raw)]
        self._noted &= {_uid(raw) for raw in self._pending.values()}
        return fresh

    def shed(self, name: str, decided_under: object, *, resource_version: str) -> None:
        """Keep only a skeleton of the cached copy: it was decided under `decided_under`.

        A shed copy is never decided on again (`shed_under` sends the reconciler back to
        the API for the whole object), so it keeps just what the cache, the queue's lanes
        and relists read: a tenth of the memory, for a backlog left to a human.

        Only if the cached copy is still the one that was decided on (same
        resourceVersion): a newer copy (e.g. a human's approval that arrived while
        we wrote the Pending Event) must stay whole, or it would never be signed.
        """
        raw = self._pending.get(name)
        if raw is None or _version(raw) != resource_version:
            return
        self._pending[name] = _skeleton(raw)
        self._shed[name] = decided_under

    def forget_decision(self, name: str, *, unless: object) -> None:
        """Make a shed copy's decision stale (its inputs changed: a namespace's labels), so
        the next reconcile reads the object whole and decides again; a copy shed under
        `unless` (one that cannot be written) stays as it is."""
        if name in self._shed and self._shed[name] is not unless:
            self._shed[name] = STALE

    def shed_under(self, name: str) -> object | None:
        """What the shed copy of `name` was decided under; None if the copy is whole."""
        return self._shed.get(name)

    def note_pending(self, name: str) -> bool:
        """True the first time for a pending CSR: emit its Pending Event now."""
        raw = self._pending.get(name)
        if raw is None:
            return False
        uid = _uid(raw)
        if uid in self._noted:
            return False
        self._noted.add(uid)
        return True

    def apply(self, event_type: str, raw: RawCsr) -> bool:
        """Record a watch event or a write's response; True if the CSR needs work."""
        name, uid = self._key(raw), _uid(raw)
        if not name:
            return False
        if event_type == "DELETED":
            self._drop(name)
            return False
        if uid in self._finished:
            return False
        if self._final(raw):
            self._drop(name)
            self._remember_finished(uid)
            return False
        # managedFields can be larger than the rest of the object; an update
        # without them keeps the server's copy, so there is no need to hold them.
        (raw.get("metadata") or {}).pop("managedFields", None)
        self._pending[name] = raw
        self._shed.pop(name, None)  # a whole copy again
        return True

    def _drop(self, name: str) -> None:
        self._shed.pop(name, None)
        raw = self._pending.pop(name, None)
        if raw is not None:
            self._noted.discard(_uid(raw))

    def _remember_finished(self, uid: str) -> None:
        self._finished[uid] = None
        self._finished.move_to_end(uid)
        while len(self._finished) > self._finished_memory:
            self._finished.popitem(last=False)
