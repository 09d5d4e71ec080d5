"""The one duration grammar (`signer.durations`): each case id states a rule.

The settings (tests/unit/test_config.py) and the policy schema
(tests/unit/policy/test_loader.py) add only their own checks on top.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from signer.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("3600", timedelta(hours=1), id="bare-number-is-seconds"),
        pytest.param("0.5", timedelta(milliseconds=500), id="bare-number-may-have-a-fraction"),
        pytest.param("0", timedelta(0), id="zero-is-a-duration-consumers-judge-it"),
        pytest.param("90d", timedelta(days=90), id="d-is-days-of-24-hours"),
        pytest.param("12h", timedelta(hours=12), id="h-is-hours"),
        pytest.param("30m", timedelta(minutes=30), id="m-is-minutes"),
        pytest.param("45s", timedelta(seconds=45), id="s-is-seconds"),
        pytest.param("500ms", timedelta(milliseconds=500), id="ms-is-milliseconds-not-minutes"),
        pytest.param("1h30m", timedelta(minutes=90), id="parts-add-up"),
        pytest.param(
            "1d2h3m4s5ms",
            timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5),
            id="every-unit-once-largest-first",
        ),
        pytest.param(
            "1m5ms", timedelta(minutes=1, milliseconds=5), id="m-then-ms-is-not-ambiguous"
        ),
        pytest.param("1.5s", timedelta(milliseconds=1500), id="a-part-may-have-a-fraction"),
        pytest.param("1.5h", timedelta(minutes=90), id="a-fraction-of-a-large-unit-is-exact"),
        pytest.param("1.1h", timedelta(seconds=3960), id="decimal-arithmetic-not-binary-float"),
        pytest.param(
            "0.0000015s", timedelta(microseconds=2), id="rounds-to-microseconds-half-even"
        ),
        pytest.param(" 24h\n", timedelta(hours=24), id="surrounding-whitespace-is-ignored"),
        pytest.param("007m", timedelta(minutes=7), id="leading-zeros-are-allowed"),
    ],
)
def test_valid_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty-is-not-a-duration"),
        pytest.param("   ", id="blank-is-not-a-duration"),
        pytest.param("h", id="unit-needs-a-number"),
        pytest.param("1 day", id="unit-names-are-not-words"),
        pytest.param("1h 30m", id="no-whitespace-between-parts"),
        pytest.param("30m1h", id="units-must-be-largest-first"),
        pytest.param("1h1h", id="each-unit-at-most-once"),
        pytest.param("1w", id="weeks-are-not-a-unit"),
        pytest.param("1y", id="years-are-not-a-unit"),
        pytest.param("1us", id="microseconds-are-not-a-unit"),
        pytest.param("1H", id="units-are-lowercase"),
        pytest.param("-5s", id="no-sign"),
        pytest.param("+5", id="no-plus-sign-either"),
        pytest.param(".5s", id="a-fraction-needs-a-digit-before-the-point"),
        pytest.param("5.s", id="a-fraction-needs-a-digit-after-the-point"),
        pytest.param("1e3", id="no-exponent"),
        pytest.param("1_000", id="no-digit-separators"),
        pytest.param("\u0663s", id="ascii-digits-only"),
        pytest.param("inf", id="infinity-is-not-a-duration"),
    ],
)
def test_malformed_duration_names_the_input(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration such as 24h, 90d or 1h30m") as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


def test_a_duration_beyond_timedelta_is_an_error_not_an_overflow() -> None:
    with pytest.raises(ValueError, match="'9999999999d' is too long a duration"):
        parse_duration("9999999999d")
