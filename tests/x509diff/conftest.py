"""The Go reference: built once (cached across runs), one process per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.x509diff.gobin import GoUnavailable, build_gox509
from tests.x509diff.goview import GoX509


@pytest.fixture(scope="session")
def gox509() -> Iterator[GoX509]:
    try:
        binary = build_gox509()
    except GoUnavailable as exc:
        pytest.skip(f"differential tests need Go: {exc}")
    go = GoX509(binary)
    yield go
    go.close()
