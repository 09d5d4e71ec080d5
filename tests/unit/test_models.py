"""Decision.summary: bounded explanations that still say what is wrong."""

from __future__ import annotations

import pytest

from signer.models import Decision, Outcome


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        pytest.param(("a", "b"), "a; b", id="few-short-reasons-are-shown-whole"),
        pytest.param(
            tuple(f"r{i}" for i in range(25)),
            "; ".join(f"r{i}" for i in range(20)) + "; and 5 more",
            id="reasons-past-twenty-are-counted-not-listed",
        ),
    ],
)
def test_summary_lists_reasons_in_order(reasons: tuple[str, ...], expected: str) -> None:
    assert Decision(Outcome.DENY, reasons=reasons).summary() == expected


def test_summary_is_bounded_even_for_huge_reasons() -> None:
    decision = Decision(Outcome.DENY, reasons=("x" * 100_000,) * 3)
    text = decision.summary(max_chars=4096)
    assert len(text) < 4200
    assert "more" not in text, "three reasons are all listed, only cut"
    assert text.startswith("xxx")
