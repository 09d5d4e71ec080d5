"""The command line of the controller settings: one flag per `Settings` field.

Each flag overrides the ``CSR_SIGNER_<FIELD>`` variable named in its help, so
this module also owns the variable names (`ENV_PREFIX`, `env_var`): the help
text and `signer.config`'s error messages show both names side by side.

This module only describes and collects flags. It never reads the environment
and never validates values: `signer.config.load_settings` layers what
`flag_values` returns over the environment and validates the result, so a
value is judged the same way whichever source it came from. It imports
nothing from `signer.config` (which imports it), keeping the dependency one way.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from signer import durations

ENV_PREFIX = "CSR_SIGNER_"
"""Prefix of every controller variable; ``CSR_SIGNER_WORKERS`` sets ``workers``."""


@dataclass(frozen=True, slots=True)
class _Flag:
    flag: str
    metavar: str | None
    help: str
    kind: Literal["value", "list", "switch"] = "value"
    """``list``: repeatable, each value may be ``a,b``; ``switch``: --x / --no-x."""


_DURATION = "DURATION"
_FLAGS: dict[str, _Flag] = {
    "signer_names": _Flag(
        "--signer-name", "NAME", "spec.signerName to serve (repeatable, or a,b)", "list"
    ),
    "policy_dir": _Flag("--policies", "DIR", "policy directory (default: bundled policies)"),
    "cluster_domain": _Flag("--cluster-domain", "DOMAIN", "the cluster's DNS domain"),
    "max_duration_seconds": _Flag("--max-duration", _DURATION, "longest certificate lifetime"),
    "default_duration_seconds": _Flag(
        "--default-duration", _DURATION, "lifetime when the CSR sets no expirationSeconds"
    ),
    "workers": _Flag("--workers", "N", "requests reconciled at once (1-64); 0: adaptive, up to 64"),
    "resync_seconds": _Flag("--resync-period", _DURATION, "relist interval"),
    "watch_timeout_seconds": _Flag("--watch-timeout", _DURATION, "server-side watch timeout"),
    "leader_elect": _Flag(
        "--leader-elect", None, "take a Lease first, so one replica writes", "switch"
    ),
    "lease_name": _Flag("--leader-elect-lease-name", "NAME", "Lease name"),
    "lease_namespace": _Flag("--leader-elect-lease-namespace", "NAMESPACE", "Lease namespace"),
    "lease_duration_seconds": _Flag("--leader-elect-lease-duration", _DURATION, "Lease term"),
    "renew_deadline_seconds": _Flag(
        "--leader-elect-renew-deadline", _DURATION, "give up leadership if not renewed by then"
    ),
    "retry_period_seconds": _Flag("--leader-elect-retry-period", _DURATION, "Lease retry wait"),
    "identity": _Flag("--identity", "ID", "Lease holder identity (default: hostname_random)"),
    "metrics_address": _Flag("--metrics-address", "HOST:PORT", "/healthz /readyz /metrics"),
    "log_format": _Flag("--log-format", "{json,text}", "log line format"),
    "log_level": _Flag("--log-level", "LEVEL", "DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    "kubeconfig": _Flag("--kubeconfig", "PATH", "default: in-cluster, then ~/.kube/config"),
    "otlp_endpoint": _Flag("--otlp-endpoint", "URL", "OTLP/HTTP endpoint for traces"),
    "policy_reload_seconds": _Flag(
        "--policy-reload-interval", _DURATION, "how often the policy directory is checked"
    ),
    "trust_bundle_namespaces": _Flag(
        "--trust-bundle-namespace",
        "NAMESPACE",
        "namespace that gets the trust bundle ConfigMap for Knative (repeatable, or a,b)",
        "list",
    ),
    "trust_bundle_configmap_name": _Flag(
        "--trust-bundle-configmap", "NAME", "name of the trust bundle ConfigMaps"
    ),
    "trust_bundle_configmap_key": _Flag(
        "--trust-bundle-key", "KEY", "ConfigMap data key holding the PEM bundle"
    ),
    "cluster_trust_bundles": _Flag(
        "--cluster-trust-bundles", None, "publish a ClusterTrustBundle per signer name", "switch"
    ),
    "pod_certificates": _Flag(
        "--pod-certificates", None, "sign PodCertificateRequests for the signer names", "switch"
    ),
    "max_request_bytes": _Flag(
        "--max-request-bytes", "BYTES", "largest spec.request evaluated (1024-1048576)"
    ),
    "max_sans": _Flag("--max-sans", "N", "most SANs in one request (1-10000)"),
    "signer_cas": _Flag(
        "--signer-ca",
        "SIGNER=NAMESPACE/NAME",
        "the CA Secret of one signer name (repeatable, or a,b); signers without one use "
        "--ca-secret",
        "list",
    ),
    "trust_bundle_signer": _Flag(
        "--trust-bundle-signer",
        "SIGNER",
        "whose CA the Knative trust bundle ConfigMaps carry (default: the only signer, "
        "else csr-signer.dev/knative-internal)",
    ),
}
"""Field -> its own flag; the argparse `dest` is the field name itself."""

_CA_SECRET = _Flag(
    "--ca-secret",
    "NAMESPACE/NAME",
    "Secret holding the CA certificate and key, for every signer without --signer-ca",
)
_CA_SECRET_DEST = "ca_secret"  # noqa: S105 - an argparse dest
_CA_SECRET_FIELDS = ("ca_secret_namespace", "ca_secret_name")
"""The one flag that sets two fields: a Secret is named by namespace and name together."""


def env_var(field: str) -> str:
    """The environment variable that sets `field`."""
    return ENV_PREFIX + field.upper()


def flag_for(field: str) -> str | None:
    """The flag that sets `field`, or None if it is not a setting."""
    if field in _CA_SECRET_FIELDS:
        return _CA_SECRET.flag
    spec = _FLAGS.get(field)
    return spec.flag if spec else None


def flagged_fields() -> Iterator[str]:
    """Every field some flag sets, for the check that no setting lacks one."""
    yield from _FLAGS
    yield from _CA_SECRET_FIELDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; every default is None so env and defaults still apply."""
    group = parser.add_argument_group(
        "controller settings",
        f"Each flag overrides its {ENV_PREFIX}* environment variable, shown in brackets. "
        f"A DURATION is {durations.SUMMARY}.",
    )
    for field, spec in _FLAGS.items():
        kwargs: dict[str, Any] = {"dest": field, "help": f"{spec.help} [{env_var(field)}]"}
        if spec.kind == "switch":
            kwargs.update(action=argparse.BooleanOptionalAction, default=None)
        else:
            kwargs["metavar"] = spec.metavar
        if spec.kind == "list":
            kwargs["action"] = "append"
        group.add_argument(spec.flag, **kwargs)
    group.add_argument(
        _CA_SECRET.flag,
        dest=_CA_SECRET_DEST,
        metavar=_CA_SECRET.metavar,
        help=f"{_CA_SECRET.help} [{', '.join(env_var(f) for f in _CA_SECRET_FIELDS)}]",
    )


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gave, by field name, unvalidated.

    Flags not given are absent (argparse leaves them None), so the environment
    and defaults still apply to them. Raises `ValueError`, naming the flag,
    only for a ``--ca-secret`` that cannot be split: after the split there is
    no single field left to blame.
    """
    values: dict[str, Any] = {
        field: getattr(args, field) for field in _FLAGS if getattr(args, field, None) is not None
    }
    ca_secret = getattr(args, _CA_SECRET_DEST, None)
    if ca_secret is not None:
        namespace, slash, name = str(ca_secret).partition("/")
        if not slash or not namespace or not name or "/" in name:
            raise ValueError(
                f"{_CA_SECRET_DEST} ({_CA_SECRET.flag}): must be NAMESPACE/NAME, got {ca_secret!r}"
            )
        values.update(zip(_CA_SECRET_FIELDS, (namespace, name), strict=True))
    return values
