"""`csr-signer run`: the controller (in a cluster, or against any kubeconfig)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from signer.cli_flags import add_arguments
from signer.commands import CliError
from signer.config import ConfigError, load_settings
from signer.logs import configure_logging


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    run = sub.add_parser(
        "run",
        help="run the controller: approve, deny and sign CSRs for our signer names",
        description="Flags override CSR_SIGNER_* environment variables.",
    )
    add_arguments(run)
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    configure_logging(settings)
    from signer.app import run_app  # heavy imports only when running

    return asyncio.run(run_app(settings))
