"""CLI command groups: each module adds its subparsers and owns its handlers.

Handlers do the I/O (files, stdin, stdout) around the pure core; errors the
user can fix are raised as `CliError` and printed as one line by `signer.cli`.
"""

from __future__ import annotations


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""
