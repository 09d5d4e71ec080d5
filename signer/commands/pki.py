"""`csr-signer ca init` and `csr-signer sign`: the offline signing commands.

The counterparts of `cfssl gencert -initca` and `cfssl sign`, for security
teams and the local run mode. They do the file I/O and read the clock, then
call the pure core (`signer.pki.ca`, `signer.pki.signing`); every failure the
user can fix becomes a one-line `CliError`.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from signer.commands import CliError
from signer.commands.inputs import is_pem_csr, parse_manifest, read_source
from signer.models import Refusal, Usage
from signer.pki.ca import (
    CA_KEY_TYPES,
    CaError,
    CaLabels,
    ca_secret_manifest,
    generate_root,
    load_ca,
)
from signer.pki.parsing import CsrParseError, parse_csr
from signer.pki.signing import MIN_DURATION, SigningLimits, issue

DEFAULT_USAGES = (Usage.DIGITAL_SIGNATURE, Usage.KEY_ENCIPHERMENT, Usage.SERVER_AUTH)
DEFAULT_MAX_DURATION = timedelta(days=365)
"""kube-controller-manager's default --cluster-signing-duration."""
DEFAULT_CA_DAYS = 3650


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """Register `ca init` and `sign`."""
    ca = sub.add_parser("ca", help="manage signing CAs")
    ca_sub = ca.add_subparsers(dest="ca_command", required=True, metavar="COMMAND")
    init = ca_sub.add_parser(
        "init",
        help="create a self-signed root CA",
        description="Create a self-signed root CA for bootstrapping: as files "
        "(--out-cert/--out-key), or as a kubernetes.io/tls Secret manifest on "
        "stdout (--secret/--namespace).",
    )
    init.add_argument("--common-name", required=True, help="subject CN of the CA")
    init.add_argument(
        "--key-type", choices=CA_KEY_TYPES, default="ecdsa-p256", help="default: ecdsa-p256"
    )
    init.add_argument(
        "--days", type=int, default=DEFAULT_CA_DAYS, help=f"validity (default {DEFAULT_CA_DAYS})"
    )
    init.add_argument("--out-cert", metavar="FILE", help="write the certificate here")
    init.add_argument("--out-key", metavar="FILE", help="write the key here (mode 0600)")
    init.add_argument("--secret", metavar="NAME", help="print a Secret manifest instead")
    init.add_argument("--namespace", metavar="NS", help="namespace of the Secret")
    init.set_defaults(func=_ca_init)

    sign = sub.add_parser(
        "sign",
        help="sign a CSR offline and print the PEM chain",
        description="Sign a CertificateSigningRequest manifest (YAML/JSON: usages and "
        "expirationSeconds from its spec) or a bare PEM CSR (usages from --usage) "
        "and print the certificate chain as PEM.",
    )
    sign.add_argument("--ca-cert", required=True, metavar="FILE", help="CA certificate (+ chain)")
    sign.add_argument("--ca-key", required=True, metavar="FILE", help="CA private key")
    sign.add_argument("--ca-roots", metavar="FILE", help="root(s) anchoring --ca-cert (ca.crt)")
    sign.add_argument(
        "--max-duration",
        type=int,
        metavar="SECONDS",
        default=int(DEFAULT_MAX_DURATION.total_seconds()),
        help=f"longest lifetime to issue (default {int(DEFAULT_MAX_DURATION.total_seconds())})",
    )
    sign.add_argument(
        "--usage",
        action="append",
        metavar="USAGE",
        help="for a bare PEM CSR; repeatable (default: "
        + ", ".join(u.value for u in DEFAULT_USAGES)
        + ")",
    )
    sign.add_argument("source", metavar="FILE|-", help="CSR manifest or PEM CSR; - for stdin")
    sign.set_defaults(func=_sign)


def _ca_init(args: argparse.Namespace) -> int:
    to_files = args.out_cert is not None or args.out_key is not None
    to_secret = args.secret is not None or args.namespace is not None
    if to_files == to_secret:
        raise CliError("give either --out-cert and --out-key, or --secret and --namespace")
    if to_files and (args.out_cert is None or args.out_key is None):
        raise CliError("--out-cert and --out-key go together")
    if to_secret and (args.secret is None or args.namespace is None):
        raise CliError("--secret and --namespace go together")
    if args.days < 1:
        raise CliError("--days must be at least 1")
    if not args.common_name.strip():
        raise CliError("--common-name must not be empty")
    cert_pem, key_pem = generate_root(args.common_name, args.key_type, args.days, _now())
    if to_secret:
        sys.stdout.write(
            yaml.safe_dump(
                ca_secret_manifest(args.secret, args.namespace, cert_pem, key_pem),
                sort_keys=False,
            )
        )
        return 0
    # Key first: if it cannot be written, no orphan certificate is left behind.
    _write_new(Path(args.out_key), key_pem, mode=0o600)
    _write_new(Path(args.out_cert), cert_pem, mode=0o644)
    return 0


def _sign(args: argparse.Namespace) -> int:
    if args.max_duration < MIN_DURATION.total_seconds():
        raise CliError(f"--max-duration must be at least {int(MIN_DURATION.total_seconds())}")
    now = _now()
    labels = CaLabels(cert=args.ca_cert, key=args.ca_key, roots=args.ca_roots or "--ca-roots")
    try:
        ca = load_ca(
            _read(args.ca_cert),
            _read(args.ca_key),
            _read(args.ca_roots) if args.ca_roots else None,
            now=now,
            labels=labels,
        )
    except CaError as exc:
        raise CliError(str(exc)) from exc
    data = read_source(args.source)
    source = "<stdin>" if args.source == "-" else args.source
    if is_pem_csr(data):
        pem = data
        usages: tuple[str, ...] = tuple(args.usage or DEFAULT_USAGES)
        requested: int | None = None
    else:
        if args.usage:
            raise CliError("--usage is for bare PEM CSRs; a manifest's spec.usages are used")
        request = parse_manifest(data, source)
        pem, usages, requested = request.request, request.usages, request.expiration_seconds
    try:
        csr = parse_csr(pem)
    except CsrParseError as exc:
        raise CliError(f"{source}: {exc}") from exc
    max_duration = timedelta(seconds=args.max_duration)
    result = issue(
        csr,
        ca,
        usages=usages,
        now=now,
        requested_seconds=requested,
        limits=SigningLimits(max_duration=max_duration, default_duration=max_duration),
    )
    if isinstance(result, Refusal):
        raise CliError(f"refused to sign ({result.reason}): {result.message}")
    sys.stdout.write(result.certificate_pem.decode("ascii"))
    return 0


def _now() -> datetime:
    return datetime.now(UTC)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    """Create `path` with `mode` from the start; never overwrite.

    Opening with the final mode (not chmod after writing) means a key is never
    readable by others, even briefly; O_EXCL means an existing CA is never
    clobbered by a mistyped command.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise CliError(f"{path} already exists; not overwriting it") from exc
    except OSError as exc:
        raise CliError(f"cannot create {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(data)
