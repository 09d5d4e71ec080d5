"""NamespaceLabels: every namespace's labels, as the metadata-only watch last saw them.

Fed by `signer.kube.namespaces` through `list_and_watch`, read by reconciles
(`namespaceSelector`s and CEL's `requester.namespaceLabels`). Until the first
list has arrived the labels are unknown, and a reconcile that needs them waits
(`synced`): deciding without them would deny a pod certificate for good, or
leave a CSR to a human, because of a startup race.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

Labels = Mapping[str, str]


class NamespaceLabels:
    def __init__(self) -> None:
        self._labels: dict[str, Labels] = {}
        self.synced = False
        """True once a complete list arrived."""

    def get(self, namespace: str) -> Labels | None:
        """The namespace's labels; None when it is not known (absent, or not synced yet)."""
        return self._labels.get(namespace)

    def replace(self, items: list[dict[str, Any]]) -> set[str]:
        """A fresh list; returns the namespaces whose labels changed (or appeared, or went)."""
        fresh: dict[str, Labels] = {}
        for item in items:
            name = _name(item)
            if name:
                fresh[name] = _labels(item)
        changed = {
            n for n in fresh.keys() | self._labels.keys() if fresh.get(n) != self._labels.get(n)
        }
        self._labels = fresh
        self.synced = True
        return changed

    def apply(self, kind: str, obj: dict[str, Any]) -> bool:
        """One watch event; True when the namespace's labels changed."""
        name = _name(obj)
        if not name:
            return False
        before = self._labels.get(name)
        if kind == "DELETED":
            self._labels.pop(name, None)
            return before is not None
        labels = _labels(obj)
        self._labels[name] = labels
        return before != labels

    def __len__(self) -> int:
        return len(self._labels)


def _name(obj: dict[str, Any]) -> str:
    name = (obj.get("metadata") or {}).get("name")
    return name if isinstance(name, str) else ""


def _labels(obj: dict[str, Any]) -> Labels:
    raw = (obj.get("metadata") or {}).get("labels") or {}
    return MappingProxyType(
        {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}
    )
