"""NamespaceLabels: what the metadata-only namespace watch keeps, and what counts as a change."""

from __future__ import annotations

from typing import Any

from signer.reactor.namespaces import NamespaceLabels


def ns(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels, "resourceVersion": "1"}}


def test_labels_are_unknown_until_the_first_list() -> None:
    store = NamespaceLabels()
    assert (store.synced, store.get("shop")) == (False, None)
    assert store.replace([ns("shop", env="prod"), ns("bare")]) == {"shop", "bare"}
    assert store.synced
    assert store.get("shop") == {"env": "prod"}
    assert store.get("bare") == {}
    assert store.get("gone") is None


def test_a_relist_reports_only_the_namespaces_whose_labels_changed() -> None:
    store = NamespaceLabels()
    store.replace([ns("a", x="1"), ns("b"), ns("c")])
    assert store.replace([ns("a", x="1"), ns("b", x="2"), ns("d")]) == {"b", "c", "d"}


def test_events_change_labels_and_say_so_only_when_they_differ() -> None:
    store = NamespaceLabels()
    store.replace([])
    assert store.apply("ADDED", ns("shop", env="prod"))
    assert not store.apply("MODIFIED", ns("shop", env="prod"))  # e.g. an annotation changed
    assert store.apply("MODIFIED", ns("shop", env="dev"))
    assert store.get("shop") == {"env": "dev"}
    assert store.apply("DELETED", ns("shop", env="dev"))
    assert store.get("shop") is None
    assert not store.apply("DELETED", ns("shop"))


def test_non_string_labels_and_nameless_objects_are_ignored() -> None:
    store = NamespaceLabels()
    store.replace([{"metadata": {"name": "a", "labels": {"k": 1, "ok": "v"}}}, {"metadata": {}}])
    assert store.get("a") == {"ok": "v"}
    assert len(store) == 1
