"""`go_build`: what gets published, and that a failed build publishes nothing.

A fake `go` (a shell script) stands in for the toolchain: `go build -o OUT`
writes a script that prints `$FAKE_VERSION`, and `go mod tidy` keeps a copy of
the go.mod it was run on, so the recipe runs in milliseconds without a network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from csr_signer_dev.gobuild import Binary, BuildError, Go, Module, go_build, go_directive

FAKE_GO = """\
#!/bin/sh
case "$1" in
  env) echo go1.99-fake ;;
  mod) cp go.mod "$GOMODS/$(basename "$PWD").go.mod" ;;
  build)
    while [ "$1" != "-o" ]; do shift; done
    printf '#!/bin/sh\\necho "tool %s"\\n' "$FAKE_VERSION" > "$2"
    chmod +x "$2" ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"""

TOOL = Binary("tool", "example.com/tool/cmd/tool", version_args=("--version",), version="v1.2.3")
MODULE = Module(
    path="csr-signer.local/tool-build",
    go_directive="1.26",
    requires=("example.com/tool v1.2.3",),
    replaces=("example.com/lib => example.com/lib v0.2.3",),
    binaries=(TOOL,),
)


@pytest.fixture
def fake_go(tmp_path: Path) -> str:
    path = tmp_path / "go"
    path.write_text(FAKE_GO)
    path.chmod(0o755)
    (tmp_path / "gomods").mkdir()
    return str(path)


def build(tmp_path: Path, go: str | None, *, reports: str = "v1.2.3") -> Path:
    def plan(_go: Go) -> list[Module]:
        return [MODULE]

    return go_build(
        tmp_path / "cache" / "tool-v1.2.3",
        go=go,
        env={"FAKE_VERSION": reports, "GOMODS": str(tmp_path / "gomods"), "PATH": os.defpath},
        plan=plan,
        complete=lambda entry: (entry / "tool").is_file(),
        pins={"tool": "v1.2.3"},
        log=False,
    )


def test_a_build_is_published_as_one_complete_entry(tmp_path: Path, fake_go: str) -> None:
    entry = build(tmp_path, fake_go)
    assert sorted(p.name for p in entry.iterdir()) == ["BUILD_INFO.json", "tool"]
    info = json.loads((entry / "BUILD_INFO.json").read_text())
    assert info["tool"] == "v1.2.3"
    assert info["go"] == "go1.99-fake"
    assert info["ldflags"] == {"tool": "-s -w"}
    # Only the entry and its lock remain: the scratch directory is gone.
    assert sorted(os.listdir(entry.parent)) == [".tool-v1.2.3.lock", "tool-v1.2.3"]


def test_the_build_module_requires_and_replaces_the_pins(tmp_path: Path, fake_go: str) -> None:
    build(tmp_path, fake_go)
    gomod = (tmp_path / "gomods" / "tool-build.go.mod").read_text()
    assert gomod.startswith("module csr-signer.local/tool-build\n\ngo 1.26\n")
    assert "\texample.com/tool v1.2.3\n" in gomod
    assert "replace (\n\texample.com/lib => example.com/lib v0.2.3\n)" in gomod


def test_a_binary_reporting_another_version_is_not_published(tmp_path: Path, fake_go: str) -> None:
    with pytest.raises(BuildError, match=r"does not report v1\.2\.3"):
        build(tmp_path, fake_go, reports="v9.9.9")
    assert os.listdir(tmp_path / "cache") == [".tool-v1.2.3.lock"]


def test_a_complete_entry_is_not_rebuilt(tmp_path: Path) -> None:
    entry = tmp_path / "cache" / "tool-v1.2.3"
    entry.mkdir(parents=True)
    (entry / "tool").write_text("built by another process")
    assert build(tmp_path, go=None) == entry  # no toolchain needed, none asked for


def test_no_toolchain_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no Go toolchain"):
        build(tmp_path, go=None)
    assert not (tmp_path / "cache" / "tool-v1.2.3").exists()


@pytest.mark.parametrize(
    ("gomod", "expected"),
    [
        pytest.param("module x\n\ngo 1.25.0\n", "1.25.0", id="declared"),
        pytest.param("module x\n", "1.26", id="absent-uses-default"),
    ],
)
def test_go_directive(gomod: str, expected: str) -> None:
    assert go_directive(gomod, "1.26") == expected
