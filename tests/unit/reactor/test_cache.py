"""CsrCache: holds only CSRs that need work; finality is sticky per UID."""

from __future__ import annotations

from typing import Any

import pytest

from signer.reactor.cache import STALE, CsrCache


def raw(name: str = "a", uid: str = "u1", rv: str = "1", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": uid, "resourceVersion": rv},
        "spec": {},
        "status": status,
    }


APPROVED = [{"type": "Approved", "status": "True"}]


@pytest.mark.parametrize(
    ("obj", "needs_work"),
    [
        pytest.param(raw(), True, id="pending-csr-needs-work"),
        pytest.param(raw(conditions=APPROVED), True, id="approved-without-certificate-needs-work"),
        pytest.param(raw(conditions=APPROVED, certificate="Y2VydA=="), False, id="issued-is-final"),
        pytest.param(
            raw(conditions=[{"type": "Denied", "status": "True"}]), False, id="denied-is-final"
        ),
        pytest.param(
            raw(conditions=[*APPROVED, {"type": "Failed", "status": "True"}]),
            False,
            id="failed-is-final",
        ),
    ],
)
def test_only_csrs_that_need_work_are_kept(obj: dict[str, Any], needs_work: bool) -> None:
    cache = CsrCache()
    assert cache.apply("ADDED", obj) is needs_work
    assert (cache.get("a") is not None) is needs_work


def test_a_stale_event_after_the_csr_was_final_is_ignored() -> None:
    cache = CsrCache()
    cache.apply("ADDED", raw(rv="1"))
    cache.apply("MODIFIED", raw(rv="3", conditions=APPROVED, certificate="Y2VydA=="))
    # the watch delivers the intermediate (approved, not yet issued) copy late
    assert cache.apply("MODIFIED", raw(rv="2", conditions=APPROVED)) is False
    assert cache.get("a") is None


def test_a_new_csr_reusing_a_finished_name_is_new_work() -> None:
    cache = CsrCache()
    cache.apply("ADDED", raw(uid="old", conditions=[{"type": "Denied", "status": "True"}]))
    cache.apply("DELETED", raw(uid="old"))
    assert cache.apply("ADDED", raw(uid="new")) is True


def test_replace_keeps_exactly_the_fresh_list() -> None:
    cache = CsrCache()
    cache.apply("ADDED", raw(name="gone", uid="g"))
    names = cache.replace([raw(name="b", uid="b"), raw(name="c", uid="c", certificate="eA==")])
    assert names == ["b"]
    assert cache.get("gone") is None


def test_finished_memory_is_bounded() -> None:
    cache = CsrCache(finished_memory=2)
    for i in range(5):
        cache.apply("ADDED", raw(name=f"n{i}", uid=f"u{i}", certificate="eA=="))
    assert len(cache._finished) == 2


def test_managed_fields_are_not_kept_in_the_cache() -> None:
    cache = CsrCache()
    obj = raw()
    obj["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    cache.apply("ADDED", obj)
    assert "managedFields" not in (cache.get("a") or {})["metadata"]


def test_one_pending_note_per_csr_however_large_the_backlog_and_however_many_resyncs() -> None:
    cache = CsrCache()
    backlog = [raw(f"csr-{i}", uid=f"u-{i}") for i in range(10_500)]
    cache.replace(backlog)
    assert sum(cache.note_pending(raw["metadata"]["name"]) for raw in backlog) == 10_500
    for _ in range(3):  # periodic resyncs relist the same backlog
        cache.replace([dict(raw) for raw in backlog])
        assert not any(cache.note_pending(raw["metadata"]["name"]) for raw in backlog)


def test_pending_notes_leave_with_their_csr() -> None:
    cache = CsrCache()
    cache.apply("ADDED", raw("a", uid="ua"))
    cache.apply("ADDED", raw("b", uid="ub"))
    assert cache.note_pending("a") and cache.note_pending("b")
    cache.apply("DELETED", raw("a", uid="ua"))
    cache.replace([])  # b is gone from the API too
    assert len(cache) == 0
    cache.apply("ADDED", raw("a", uid="uid-a-2"))  # a new CSR reusing the name
    assert cache.note_pending("a"), "a new UID gets its own note"
    cache.apply("ADDED", raw("b", uid="ub"))
    assert cache.note_pending("b"), "the note left with the CSR: a returning UID is noted anew"


def test_a_shed_entry_keeps_no_request_until_a_whole_copy_arrives() -> None:
    cache = CsrCache()
    whole = raw("a", uid="ua") | {
        "spec": {
            "request": "QUJD" * 10_000,
            "signerName": "s",
            "username": "system:serviceaccount:shop:web",
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "usages": ["server auth"],
            "extra": {"authentication.kubernetes.io/pod-name": ["web-0"]},
        },
        "status": {"conditions": []},
    }
    cache.apply("ADDED", whole)
    policies = object()
    cache.shed("a", policies, resource_version="0")
    assert cache.shed_under("a") is None, "a copy newer than the decided one stays whole"
    cache.shed("a", policies, resource_version="1")
    kept = cache.get("a")
    assert kept is not None
    assert kept == {
        "metadata": {"name": "a", "uid": "ua", "resourceVersion": "1"},
        "spec": {"signerName": "s", "username": "system:serviceaccount:shop:web"},
    }, "a skeleton: identity, version, signer (relist scope) and username (lane)"
    assert cache.shed_under("a") is policies
    cache.apply("MODIFIED", whole)  # e.g. a human approved: the watch brings it whole
    assert cache.shed_under("a") is None
    assert cache.get("a") == whole


def test_a_forgotten_decision_is_stale_but_an_unwritable_copy_stays_shed() -> None:
    cache = CsrCache()
    policies, unwritable = object(), object()
    for name in ("left", "stuck"):
        cache.apply("ADDED", raw(name, uid=name) | {"spec": {"request": "QUJD"}})
    cache.shed("left", policies, resource_version="1")
    cache.shed("stuck", unwritable, resource_version="1")
    for name in ("left", "stuck", "whole"):
        cache.forget_decision(name, unless=unwritable)
    assert cache.shed_under("left") is STALE, "decided again: not under any policies"
    assert cache.shed_under("stuck") is unwritable
    assert cache.shed_under("whole") is None


def test_a_relist_of_one_signer_keeps_the_others_and_every_pending_note() -> None:
    cache = CsrCache()
    mine = raw("mine", uid="um") | {"spec": {"signerName": "a/x"}}
    other = raw("other", uid="uo") | {"spec": {"signerName": "b/y"}}
    cache.apply("ADDED", mine)
    cache.apply("ADDED", other)
    assert cache.note_pending("mine") and cache.note_pending("other")
    fresh = cache.replace([mine], scope=lambda r: r["spec"]["signerName"] == "a/x")
    assert fresh == ["mine"]
    assert sorted(cache.names()) == ["mine", "other"], "another signer's entries stay"
    assert not cache.note_pending("mine"), "a relist sends no second Pending Event"
    assert not cache.note_pending("other")
