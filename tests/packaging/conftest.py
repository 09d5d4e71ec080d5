"""Fixtures for packaging tests: the image recipe, the chart, the dashboard.

Tests marked ``slow`` build wheels from PyPI or a binary from the Go module
proxy on a cold machine; ``-m "not slow"`` skips them for a quick loop. The
marker is registered in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from csr_signer_dev.helm import resolve_helm

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "chart" / "csr-signer"


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    """The pinned helm, built from the Go module proxy on first use (~100 s cold)."""
    return resolve_helm()
