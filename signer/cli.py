"""Command line: argument parsing and dispatch only.

Each command group lives in `signer.commands.<group>` and contributes its
subparsers through `add_parser`; the handler it sets as `func` does the work.
A `CliError` (bad input, invalid policies, ...) becomes one line on stderr and
exit status 2, never a traceback.

Other distributions add groups through the `csr_signer.commands` entry-point
group, so the runtime names none of them: the development harness
(`csr-signer-dev`, in dev/) registers `local` there. Where it is not installed,
as in the image, `csr-signer local` is an invalid choice like any unknown command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from signer import __version__
from signer.commands import CliError, pki, policy, run

ENTRY_POINT_GROUP = "csr_signer.commands"

AddParser = Callable[["argparse._SubParsersAction[Any]"], None]
"""What a command group provides: add its subparsers, with `func` set on each."""


BUILT_IN = frozenset({"run", "policy", "ca", "sign"})


def installed_groups(found: Iterable[EntryPoint] | None = None) -> list[AddParser]:
    """The `add_parser` of every group other installed distributions register.

    A plugin that fails to load, or that would shadow a built-in command, is left out
    with a warning: nothing another package installs may stop `csr-signer run`.
    """
    groups: list[AddParser] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP) if found is None else found:
        if ep.name in BUILT_IN:
            print(
                f"csr-signer: warning: ignoring plugin {ep.value!r}: {ep.name!r} is built in",
                file=sys.stderr,
            )
            continue
        try:
            groups.append(ep.load())
        except Exception as exc:  # a broken plugin must not break the controller
            print(f"csr-signer: warning: ignoring plugin {ep.value!r}: {exc}", file=sys.stderr)
    return groups


def build_parser(extra_groups: Sequence[AddParser] | None = None) -> argparse.ArgumentParser:
    """The parser with the built-in groups plus `extra_groups` (default: `installed_groups()`)."""
    parser = argparse.ArgumentParser(
        prog="csr-signer",
        description="Kubernetes CertificateSigningRequest approver and signer.",
    )
    parser.add_argument("--version", action="version", version=f"csr-signer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups = installed_groups() if extra_groups is None else extra_groups
    for add_parser in (run.add_parser, policy.add_parser, pki.add_parser, *groups):
        add_parser(sub)
    return parser


def main(
    argv: Sequence[str] | None = None, *, extra_groups: Sequence[AddParser] | None = None
) -> int:
    parser = build_parser(extra_groups)
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except CliError as exc:
        print(f"csr-signer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status
