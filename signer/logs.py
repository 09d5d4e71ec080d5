"""Log output: one line per record, as JSON for collectors or as text for people.

Kept apart from `signer.config` because formatting a record has nothing to do
with validating settings; `configure_logging` is the one place that touches
the root logger, and it needs only the two logging settings.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
from typing import Any, TextIO

from signer.config import Settings

_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """Fields passed as ``extra={...}``: whatever is not a standard LogRecord attribute."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}


def _timestamp(record: logging.LogRecord) -> str:
    return (
        dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the extras.

    Extras that JSON cannot encode are written with `str()`, so a log call can
    never fail; an exception's traceback goes into ``exc``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger: message key=value ...`` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={_text_value(v)}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text


class _OurHandler(logging.StreamHandler[TextIO]):
    """Marks the handler this module installed, so reconfiguring replaces it."""


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Install one handler on the root logger with the configured format and level.

    Calling it again replaces our handler instead of adding a second one;
    handlers installed by others (pytest's capture, for one) are left alone.
    aiohttp's per-request access log is quietened: /metrics is scraped every
    few seconds and would drown everything else.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(handler)
        with contextlib.suppress(Exception):
            handler.close()
    handler = _OurHandler(stream if stream is not None else sys.stderr)
    formatter: type[logging.Formatter] = (
        JsonFormatter if settings.log_format == "json" else TextFormatter
    )
    handler.setFormatter(formatter())
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
