"""Command line: argument parsing and dispatch only.

Each command group lives in `signer.commands.<group>` and contributes its
subparsers through `add_parser`; the handler it sets as `func` does the work.
A `CliError` (bad input, invalid policies, ...) becomes one line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from signer import __version__
from signer.commands import CliError, local, pki, policy, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="csr-signer",
        description="Kubernetes CertificateSigningRequest approver and signer.",
    )
    parser.add_argument("--version", action="version", version=f"csr-signer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (run, policy, pki, local):
        group.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except CliError as exc:
        print(f"csr-signer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status
