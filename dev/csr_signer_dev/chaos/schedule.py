"""The fault schedule: which faults, in which order, with which parameters, from a seed.

Pure: `make_schedule(seed, count)` returns the same list for the same arguments on any
machine, so a run is replayed by giving its printed seed and count again. Timing is not
part of the schedule (the faults run one after another, each once the previous one has
been undone and a gap has passed), so a replay injects the same faults in the same order
with the same parameters; what the controllers are doing at that moment differs.

Every kind appears at least once when `count` allows it; the rest are drawn uniformly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

KINDS: dict[str, str] = {
    "kill-leader": "SIGKILL the replica holding the Lease (no release); restarted after",
    "kill-standby": "SIGKILL the replica not holding the Lease; restarted after",
    "term-leader": "SIGTERM the leader: it must finish, release the Lease and exit 0",
    "term-standby": "SIGTERM the standby: it must exit 0",
    "apiserver-restart": "SIGKILL kube-apiserver, down for `hold` s, start it again",
    "etcd-restart": "SIGKILL etcd, down for `hold` s, start it again",
    "apiserver-stall": "SIGSTOP kube-apiserver for `hold` s (5-30), then SIGCONT",
    "etcd-compact": "compact etcd at its current revision while watches are open (410s)",
    "proxy-latency": "toxiproxy: `hold` s of 300-1500 ms latency controller<->apiserver",
    "proxy-timeout": "toxiproxy: `hold` s of connections that stall, then close",
    "proxy-reset": "toxiproxy: `hold` s of connections reset (TCP RST) at once",
    "proxy-blackhole": "toxiproxy: `hold` s (under the renew deadline) of answers dropped "
    "on connections that stay open",
    "ca-delete": "delete the cluster-local CA Secret for `hold` s, then restore it",
    "ca-corrupt": "replace the CA Secret's key with garbage for `hold` s, then restore it",
    "ca-replace": "put a new CA into the cluster-local CA Secret (a new CA in force)",
    "policy-swap": "invalid policy files for `hold` s, then the other valid policy set",
    "hostile-burst": "a burst of garbage, badly signed, huge-SAN and foreign-signer CSRs",
}
"""Every fault kind and what it does; docs/chaos.md has the same table."""

_HOLD: dict[str, tuple[float, float]] = {
    "apiserver-restart": (1, 5),
    "etcd-restart": (1, 5),
    "apiserver-stall": (5, 30),
    "proxy-latency": (5, 15),
    "proxy-timeout": (5, 15),
    "proxy-reset": (3, 10),
    "proxy-blackhole": (2, 4),
    "ca-delete": (3, 10),
    "ca-corrupt": (3, 10),
    "policy-swap": (3, 8),
}
"""Kinds that last a while: the range of `hold`, in seconds."""


@dataclass(frozen=True, slots=True)
class Fault:
    index: int
    kind: str
    hold: float
    """Seconds the fault lasts before it is undone (0: instantaneous)."""
    gap: float
    """Seconds of undisturbed load after it is undone, before the next one."""

    def describe(self) -> str:
        hold = f" hold={self.hold:.1f}s" if self.hold else ""
        return f"#{self.index:02d} {self.kind}{hold} gap={self.gap:.1f}s"


def make_schedule(
    seed: int,
    count: int,
    *,
    gap: tuple[float, float] = (4.0, 10.0),
    max_stall: float = 30.0,
    only: frozenset[str] | None = None,
) -> list[Fault]:
    """`count` faults from `seed`: each kind once (as far as `count` goes), then random;
    `only` restricts the kinds (to chase one finding)."""
    if count < 0:
        raise ValueError("count must be >= 0")
    unknown = sorted((only or frozenset()) - KINDS.keys())
    if unknown or only == frozenset():
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(sorted(KINDS))}")
    rng = random.Random(seed)  # noqa: S311 - a replayable schedule, not a secret
    pool = sorted(only or KINDS)
    kinds = list(pool)
    rng.shuffle(kinds)
    chosen = kinds[:count] + [rng.choice(pool) for _ in range(count - len(kinds))]
    rng.shuffle(chosen)
    faults = []
    for index, kind in enumerate(chosen, 1):
        low, high = _HOLD.get(kind, (0.0, 0.0))
        if kind == "apiserver-stall":
            high = min(high, max(low, max_stall))
        hold = round(rng.uniform(low, high), 1) if high else 0.0
        faults.append(Fault(index, kind, hold, round(rng.uniform(*gap), 1)))
    return faults


def replay_command(seed: int, count: int, only: frozenset[str] | None = None) -> str:
    kinds = f" --only {','.join(sorted(only))}" if only else ""
    return f"csr-signer local chaos --seed {seed} --faults {count}{kinds}"
