"""`sync_chart_policies`: the chart's files/policies/ follows the repository's policies/."""

from __future__ import annotations

from pathlib import Path

import pytest
from csr_signer_dev.helm import CHART_POLICIES, REPO_POLICIES, sync_chart_policies


def write(directory: Path, files: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)


def contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


@pytest.mark.parametrize(
    ("chart_before", "changed"),
    [
        pytest.param(None, ["a.yaml", "b.yaml"], id="a-missing-copy-is-created"),
        pytest.param(
            {"a.yaml": b"a: 1\n", "b.yaml": b"# b\n"}, [], id="an-equal-copy-is-left-alone"
        ),
        pytest.param(
            {"a.yaml": b"a: 0\n", "b.yaml": b"# b\n"},
            ["a.yaml"],
            id="a-changed-file-is-copied-byte-for-byte",
        ),
        pytest.param(
            {"a.yaml": b"a: 1\n", "b.yaml": b"# b\n", "gone.yaml": b"x: 1\n"},
            ["gone.yaml"],
            id="a-policy-the-repository-dropped-is-removed",
        ),
    ],
)
def test_the_chart_copy_ends_equal_to_the_repository_policies(
    tmp_path: Path, chart_before: dict[str, bytes] | None, changed: list[str]
) -> None:
    repo_files = {"a.yaml": b"a: 1\n", "b.yaml": b"# b\n", "notes.txt": b"not a policy\n"}
    write(tmp_path / REPO_POLICIES, repo_files)
    # policies/tests/ holds `policy test` suites and recorded requests, never policies.
    write(tmp_path / REPO_POLICIES / "tests", {"suite.yaml": b"tests: []\n"})
    if chart_before is not None:
        write(tmp_path / CHART_POLICIES, chart_before)
    assert sync_chart_policies(tmp_path) == changed
    assert contents(tmp_path / CHART_POLICIES) == {
        k: v for k, v in repo_files.items() if k.endswith(".yaml")
    }
    assert sync_chart_policies(tmp_path) == []


def test_no_repository_policies_is_an_error_not_an_empty_chart(tmp_path: Path) -> None:
    write(tmp_path / CHART_POLICIES, {"a.yaml": b"a: 1\n"})
    (tmp_path / REPO_POLICIES).mkdir()
    with pytest.raises(FileNotFoundError, match="no policy files"):
        sync_chart_policies(tmp_path)
    assert contents(tmp_path / CHART_POLICIES) == {"a.yaml": b"a: 1\n"}
