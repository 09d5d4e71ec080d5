"""List pages are sized by bytes, so a relist of megabyte objects cannot exhaust memory."""

from __future__ import annotations

import pytest

from signer.kube.watching import FIRST_PAGE, MAX_PAGE, PAGE_BYTES, next_page_size


@pytest.mark.parametrize(
    ("items", "body_bytes", "expected"),
    [
        pytest.param(0, 100, FIRST_PAGE, id="an-empty-page-says-nothing-start-small"),
        pytest.param(10, 10 * 3_000, MAX_PAGE, id="small-csrs-grow-to-the-maximum-page"),
        pytest.param(10, 10 * 100_000, PAGE_BYTES // 100_000, id="100-kb-objects-83-a-page"),
        pytest.param(10, 10 * 2_000_000, 4, id="2-mb-objects-4-a-page-about-8-mb"),
        pytest.param(1, 20_000_000, 1, id="never-below-one-object"),
    ],
)
def test_next_page_size(items: int, body_bytes: int, expected: int) -> None:
    assert next_page_size(items, body_bytes) == expected
