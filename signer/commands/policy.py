"""`csr-signer policy` commands (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """Register this group's subcommands."""
