"""The one duration grammar, shared by the controller settings and the policy files.

A setting such as ``--max-duration`` and a policy's ``maxLifetime`` describe the
same kind of value, so they read the same text the same way; only what a
consumer then accepts (whole seconds, a minimum) differs, and that stays with
the consumer. This module is pure: no pydantic, no environment.

Grammar (surrounding whitespace is ignored, none is allowed inside)::

    duration := number                    a bare number is seconds: 3600, 0.5
              | [number "d"] [number "h"] [number "m"] [number "s"] [number "ms"]
                                          at least one part; units largest first,
                                          each at most once: 90d, 1h30m, 1.5s, 500ms
    number   := digits ["." digits]       ASCII digits; no sign, exponent or "_"

A day is 24 hours (there is no calendar here: durations are certificate
lifetimes and timers). Units are lowercase; ``m`` is minutes and ``ms``
milliseconds. Any part may have a fraction (``1.5h`` is 90 minutes); the sum
is computed exactly and rounded to the microsecond, `timedelta`'s resolution.

Why stricter than Go's ``time.ParseDuration`` (which allows ``30m1h``,
``1h1h`` and signs): these values gate certificate lifetimes, and an
out-of-order or repeated unit is more likely a typo than an intent.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal

SUMMARY = (
    "seconds (3600, 0.5) or numbers with units d, h, m, s, ms, largest first (90d, 1h30m, 500ms)"
)
"""The grammar in one phrase, for --help texts; docs/policies.md has the long form."""

_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_UNIT_SECONDS: dict[str, Decimal] = {
    "d": Decimal(86_400),
    "h": Decimal(3_600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
}
"""Units in the order they must appear; each regex group below is named after its unit."""
_BARE_SECONDS = re.compile(_NUMBER)
_PARTS = re.compile(
    "".join(
        # `(?!s)` keeps the minutes group from taking the "m" of "ms".
        rf"(?:(?P<{unit}>{_NUMBER}){unit}{'(?!s)' if unit == 'm' else ''})?"
        for unit in _UNIT_SECONDS
    )
)
_MICROSECOND = Decimal("0.000001")


def parse_duration(text: str) -> timedelta:
    """`text` in the grammar above, as a `timedelta`; `ValueError` if it is not.

    The error message quotes the input and shows examples, so a consumer can
    pass it on as is (the policy loader does).
    """
    stripped = text.strip()
    if _BARE_SECONDS.fullmatch(stripped):
        seconds = Decimal(stripped)
    else:
        match = _PARTS.fullmatch(stripped)
        parts = {unit: n for unit, n in match.groupdict().items() if n is not None} if match else {}
        if not parts:
            raise ValueError(f"{text!r} is not a duration such as 24h, 90d or 1h30m")
        seconds = sum((Decimal(n) * _UNIT_SECONDS[unit] for unit, n in parts.items()), Decimal(0))
    micros = (seconds / _MICROSECOND).to_integral_value(rounding=ROUND_HALF_EVEN)
    try:
        return timedelta(microseconds=int(micros))
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None
