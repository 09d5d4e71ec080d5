"""The chaos schedule: a seed and a count say exactly which faults run, in which order."""

from __future__ import annotations

from collections import Counter

import pytest
from csr_signer_dev.chaos.schedule import KINDS, make_schedule, replay_command


def test_the_same_seed_and_count_give_the_same_schedule() -> None:
    assert make_schedule(42, 50) == make_schedule(42, 50)


def test_another_seed_gives_another_schedule() -> None:
    assert make_schedule(42, 50) != make_schedule(43, 50)


@pytest.mark.parametrize(
    ("count", "distinct"),
    [
        pytest.param(0, 0, id="no-faults"),
        pytest.param(10, 10, id="short-run-has-no-repeated-kind"),
        pytest.param(len(KINDS), len(KINDS), id="one-of-each-kind"),
        pytest.param(50, len(KINDS), id="full-run-has-every-kind"),
    ],
)
def test_every_kind_comes_before_any_repeats(count: int, distinct: int) -> None:
    schedule = make_schedule(7, count)
    assert len(schedule) == count
    assert len(Counter(f.kind for f in schedule)) == distinct
    assert [f.index for f in schedule] == list(range(1, count + 1))


@pytest.mark.parametrize("seed", range(20))
def test_holds_stay_in_their_ranges_and_instant_faults_have_none(seed: int) -> None:
    for fault in make_schedule(seed, 50, gap=(1.0, 2.0), max_stall=10.0):
        assert 1.0 <= fault.gap <= 2.0
        if fault.kind == "apiserver-stall":
            assert 5.0 <= fault.hold <= 10.0
        elif fault.kind in ("kill-leader", "ca-replace", "etcd-compact", "hostile-burst"):
            assert fault.hold == 0.0
        elif fault.kind == "proxy-blackhole":
            assert 2.0 <= fault.hold <= 4.0, "under the replicas' renew deadline"
        else:
            assert fault.hold >= 0.0


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        make_schedule(1, -1)


def test_the_replay_command_names_seed_and_count() -> None:
    assert replay_command(5, 10) == "csr-signer local chaos --seed 5 --faults 10"


def test_the_replay_command_names_the_kinds_a_restricted_run_drew_from() -> None:
    only = frozenset({"proxy-reset", "kill-leader"})
    assert replay_command(5, 3, only).endswith("--only kill-leader,proxy-reset")


def test_only_restricts_the_kinds_and_still_covers_each() -> None:
    only = frozenset({"proxy-blackhole", "kill-leader"})
    schedule = make_schedule(3, 6, only=only)
    assert {f.kind for f in schedule} == only


@pytest.mark.parametrize(
    "only", [frozenset({"no-such-fault"}), frozenset()], ids=["unknown-kind", "empty-set"]
)
def test_only_refuses_what_names_no_kind(only: frozenset[str]) -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        make_schedule(3, 6, only=only)
