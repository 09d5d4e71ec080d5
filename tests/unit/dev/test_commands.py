"""`csr-signer local ...` reaches the runtime CLI only through the entry point."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from csr_signer_dev import commands
from csr_signer_dev.settings import CHECKOUT

from signer.cli import ENTRY_POINT_GROUP, build_parser, installed_groups, main


def test_the_dev_distribution_registers_the_local_group() -> None:
    """Fails if `pip install -e ./dev` (part of `make install`) has not run."""
    assert commands.add_parser in installed_groups()


@pytest.mark.parametrize(
    ("argv", "handler"),
    [
        pytest.param(["local", "up"], commands.cmd_up, id="up"),
        pytest.param(["local", "build"], commands.cmd_build, id="build"),
        pytest.param(["local", "run"], commands.cmd_run, id="run"),
        pytest.param(["local", "helm", "build"], commands.cmd_helm_build, id="helm-build"),
        pytest.param(
            ["local", "helm", "manifests"], commands.cmd_helm_manifests, id="helm-manifests"
        ),
        pytest.param(["local", "build", "--node"], commands.cmd_build, id="build-node"),
        pytest.param(["local", "image", "build"], commands.cmd_image_build, id="image-build"),
        pytest.param(["local", "image", "lock"], commands.cmd_image_lock, id="image-lock"),
    ],
)
def test_each_subcommand_dispatches_to_its_handler(argv: list[str], handler: object) -> None:
    assert build_parser([commands.add_parser]).parse_args(argv).func is handler


def test_manifests_default_to_the_checkout_and_stdout() -> None:
    args = build_parser([commands.add_parser]).parse_args(["local", "helm", "manifests"])
    assert (args.repo, args.write) == (CHECKOUT, False)
    assert (CHECKOUT / "deploy" / "chart" / "csr-signer" / "Chart.yaml").is_file()


def test_a_harness_error_is_one_line_and_status_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))  # holds no binaries
    assert main(["local", "build"], extra_groups=[commands.add_parser]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"csr-signer: error: KUBEBUILDER_ASSETS={tmp_path} "
        "does not hold executable kube-apiserver and etcd\n"
    )


def test_a_broken_or_shadowing_plugin_is_skipped_never_fatal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = [
        EntryPoint("broken", "no_such_module:add_parser", ENTRY_POINT_GROUP),
        EntryPoint("run", "csr_signer_dev.commands:add_parser", ENTRY_POINT_GROUP),
        EntryPoint("local", "csr_signer_dev.commands:add_parser", ENTRY_POINT_GROUP),
    ]
    groups = installed_groups(found)
    assert len(groups) == 1, "only the working, non-shadowing plugin is used"
    err = capsys.readouterr().err
    assert "ignoring plugin 'no_such_module:add_parser'" in err
    assert "'run' is built in" in err
