"""Log output (`signer.logs`): one line per record, JSON or text, one handler."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signer.config import load_settings
from signer.logs import JsonFormatter, TextFormatter, configure_logging


def record(message: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("signer.reactor", logging.WARNING, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param({}, {}, id="no-extras"),
        pytest.param(
            {"csr": "csr-abc", "signer": "example.com/a"},
            {"csr": "csr-abc", "signer": "example.com/a"},
            id="extras-become-fields",
        ),
        pytest.param({"path": Path("/p")}, {"path": "/p"}, id="unencodable-extras-use-str"),
        pytest.param({"level": "spoofed"}, {}, id="extras-cannot-override-core-fields"),
    ],
)
def test_json_log_line_is_one_object(extra: dict[str, object], expected: dict[str, Any]) -> None:
    line = JsonFormatter().format(record("approved %s", **extra))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry.pop("ts").endswith("Z")
    assert entry == {
        "level": "WARNING",
        "logger": "signer.reactor",
        "message": "approved %s",
        **expected,
    }


def test_json_log_line_carries_the_traceback() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(rec))
    assert "RuntimeError: boom" in entry["exc"]


def test_text_log_line_appends_extras_as_key_values() -> None:
    line = TextFormatter().format(record("issued", csr="csr-abc", note="two words"))
    assert line.endswith('WARNING signer.reactor: issued csr=csr-abc note="two words"')


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, restored afterwards (configure_logging changes process state)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_configure_logging_installs_one_handler_with_the_chosen_format(
    root_logger: logging.Logger,
) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(load_settings(env={"CSR_SIGNER_LOG_FORMAT": "text"}), stream=first)
    configure_logging(
        load_settings(env={"CSR_SIGNER_LOG_FORMAT": "json", "CSR_SIGNER_LOG_LEVEL": "DEBUG"}),
        stream=second,
    )
    logging.getLogger("signer.test").debug("hello", extra={"csr": "csr-1"})
    assert first.getvalue() == ""
    entry = json.loads(second.getvalue())
    assert (entry["message"], entry["csr"], entry["level"]) == ("hello", "csr-1", "DEBUG")
    assert root_logger.level == logging.DEBUG
