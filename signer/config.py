"""One typed configuration, read once, passed explicitly (ARCHITECTURE principle 8).

`Settings` is the controller's whole configuration. This module is the only
place that reads the environment: `load_settings()` takes the environment as a
mapping (``os.environ`` in production, a plain dict in tests), overlays the
command line, validates, and hands back a frozen `Settings`. Everything else
receives that object as an argument and never looks at ``os.environ``.

Precedence, highest first: command-line flag, ``CSR_SIGNER_<FIELD>`` variable,
default. An empty variable counts as unset, so a manifest can blank a value
without deleting the line.

Why the environment is read here rather than by pydantic-settings' own env
source: a test passes its environment as a dict and must never see the
developer's shell, and the CLI-over-env overlay should be one visible step.
`Settings()` with no arguments therefore yields the defaults only; the
``CSR_SIGNER_`` prefix and the field names still define the variable names.

Unknown ``CSR_SIGNER_*`` variables are ignored, not rejected: the kubelet
injects Docker-link style variables for every Service in the namespace
(``CSR_SIGNER_PORT``, ``CSR_SIGNER_SERVICE_HOST``, ...), and a Service named
``csr-signer`` is exactly what we deploy. (The Deployment should still set
``enableServiceLinks: false``.)

Every validation failure becomes one `ConfigError` whose message is one line
naming the field, the variable and flag that set it, and the problem, e.g.
``invalid configuration: workers (CSR_SIGNER_WORKERS / --workers): must be
between 1 and 64, got 0``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from signer.models import is_dns1123_label, is_dns1123_subdomain

ENV_PREFIX = "CSR_SIGNER_"

DEFAULT_SIGNER_NAMES = ("csr-signer.dev/cluster-local", "csr-signer.dev/knative-internal")
MIN_DURATION_SECONDS = 600
"""The apiserver rejects spec.expirationSeconds below 10 minutes; so do we."""
_DAY = 86_400

# Kubernetes' ValidateSignerName limits (pkg/apis/certificates/validation).
_DNS1123_SUBDOMAIN_MAX = 253
_SIGNER_PATH_MAX = _DNS1123_SUBDOMAIN_MAX + 63 + 1

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": float(_DAY)}


class ConfigError(Exception):
    """The configuration is invalid; the message is one line fit for stderr."""


def _default_identity() -> str:
    """Hostname plus a random suffix, as client-go does (`hostname_<uuid>`).

    The suffix keeps two processes on one host (or a restarted pod that kept
    its name) from both believing they hold the Lease.
    """
    return f"{socket.gethostname()}_{secrets.token_hex(4)}"


def parse_duration(value: object) -> object:
    """Seconds as a number, or a Go-style duration such as ``90d``, ``1h30m``, ``500ms``.

    Anything that is not a string is returned unchanged for pydantic to judge;
    a malformed string raises `ValueError` with a message for `ConfigError`.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"must be seconds or a duration such as 90d, 12h, 30m, got {value!r}")
    seconds = sum((float(n) * _DURATION_UNITS[u] for n, u in parts), 0.0)
    return int(seconds) if seconds.is_integer() else seconds


def _whole_seconds(value: object) -> object:
    parsed = parse_duration(value)
    if isinstance(parsed, float):
        if not parsed.is_integer():
            raise ValueError(f"must be a whole number of seconds, got {value!r}")
        return int(parsed)
    return parsed


def _signer_name_problem(name: str) -> str | None:
    """Why `name` is not a valid spec.signerName, mirroring the apiserver's check."""
    domain, slash, path = name.partition("/")
    if not slash or "/" in path:
        return "must be of the form <domain>/<path>, e.g. example.com/my-signer"
    labels = domain.split(".")
    if len(domain) > _DNS1123_SUBDOMAIN_MAX or not all(is_dns1123_label(lbl) for lbl in labels):
        return "domain must be a lowercase DNS subdomain"
    if len(labels) < 2:
        return "domain must have at least two dot-separated labels"
    if len(path) > _SIGNER_PATH_MAX or not is_dns1123_subdomain(path):
        return "path must be a lowercase DNS subdomain"
    return None


class Settings(BaseSettings):
    """The controller's configuration; build it with `load_settings()`.

    Field order matters for the cross-field checks: a validator may only look
    at fields declared before it.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    signer_names: tuple[str, ...] = DEFAULT_SIGNER_NAMES
    """spec.signerName values this controller serves; CSRs for others are never touched."""
    policy_dir: Path | None = None
    """Directory of policy files; None means the policies bundled with the package."""
    cluster_domain: str = "cluster.local"
    ca_secret_namespace: str = "csr-signer"  # noqa: S105 - a Secret's name, not a password
    ca_secret_name: str = "csr-signer-ca"  # noqa: S105 - a Secret's name, not a password
    max_duration_seconds: int = 365 * _DAY
    """Upper bound on an issued certificate's lifetime; longer requests are shortened."""
    default_duration_seconds: int = 90 * _DAY
    """Lifetime when the CSR sets no spec.expirationSeconds."""
    workers: int = 4
    resync_seconds: int = 300
    """How often the watcher relists even without events (catches missed updates)."""
    watch_timeout_seconds: int = 290
    """Server-side timeout of each watch request; the watcher then resumes."""
    leader_elect: bool = True
    lease_name: str = "csr-signer"
    lease_namespace: str = "csr-signer"
    lease_duration_seconds: int = 15
    renew_deadline_seconds: int = 10
    retry_period_seconds: int = 2
    identity: str = Field(default_factory=_default_identity)
    """Lease holder identity; unique per process."""
    metrics_address: str = "0.0.0.0:8080"
    """host:port of the /healthz, /readyz and /metrics server."""
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"
    kubeconfig: Path | None = None
    """None: in-cluster service account, falling back to ~/.kube/config."""
    otlp_endpoint: str | None = None
    """OTLP/HTTP traces endpoint; None disables trace export."""
    policy_reload_seconds: float = 5.0
    """How often the mounted policy directory is checked for changes."""
    trust_bundle_namespaces: tuple[str, ...] = ()
    """Namespaces that get the trust bundle as a ConfigMap labeled for Knative
    (``networking.knative.dev/trust-bundle``); each needs the Role shown in deploy/rbac.yaml."""
    trust_bundle_configmap_name: str = "csr-signer-trust-bundle"
    trust_bundle_configmap_key: str = "ca.crt"
    """The ConfigMap data key holding the PEM bundle."""
    cluster_trust_bundles: bool = True
    """Publish a ClusterTrustBundle (certificates.k8s.io/v1beta1) per signer name."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only explicit values: `load_settings` is the one reader of the environment."""
        return (init_settings,)

    # -- parsing ---------------------------------------------------------------

    @field_validator("signer_names", mode="before")
    @classmethod
    def _split_signer_names(cls, value: object) -> object:
        """Accept ``a,b`` (env), a JSON list, or repeated flags whose values may hold commas."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise ValueError(f"is not a valid JSON list: {text!r}") from None
            else:
                value = [text]
        if isinstance(value, list | tuple):
            names = [part.strip() for item in value for part in str(item).split(",")]
            # Order is kept (it is the order of the metric label set); duplicates go.
            return tuple(dict.fromkeys(name for name in names if name))
        return value

    @field_validator("trust_bundle_namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        """``a,b`` (env) or repeated flags, as for signer names; order kept, duplicates go."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            names = [part.strip() for item in value for part in str(item).split(",")]
            return tuple(dict.fromkeys(name for name in names if name))
        return value

    @field_validator(
        "max_duration_seconds",
        "default_duration_seconds",
        "resync_seconds",
        "watch_timeout_seconds",
        "lease_duration_seconds",
        "renew_deadline_seconds",
        "retry_period_seconds",
        mode="before",
    )
    @classmethod
    def _parse_whole_seconds(cls, value: object) -> object:
        return _whole_seconds(value)

    @field_validator("policy_reload_seconds", mode="before")
    @classmethod
    def _parse_seconds(cls, value: object) -> object:
        return parse_duration(value)

    @field_validator("policy_dir", "kubeconfig", "otlp_endpoint", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    # -- checks ----------------------------------------------------------------

    @field_validator("signer_names")
    @classmethod
    def _check_signer_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one signer")
        for name in value:
            problem = _signer_name_problem(name)
            if problem:
                raise ValueError(f"{name!r}: {problem}")
        return value

    @field_validator("cluster_domain", "ca_secret_name", "lease_name")
    @classmethod
    def _check_subdomain(cls, value: str) -> str:
        if not is_dns1123_subdomain(value):
            raise ValueError(f"must be a lowercase DNS subdomain, got {value!r}")
        return value

    @field_validator("ca_secret_namespace", "lease_namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if not is_dns1123_label(value):
            raise ValueError(f"must be a valid namespace name (DNS label), got {value!r}")
        return value

    @field_validator("max_duration_seconds")
    @classmethod
    def _check_max_duration(cls, value: int) -> int:
        if value < MIN_DURATION_SECONDS:
            raise ValueError(f"must be at least {MIN_DURATION_SECONDS} seconds, got {value}")
        return value

    @field_validator("default_duration_seconds")
    @classmethod
    def _check_default_duration(cls, value: int, info: ValidationInfo) -> int:
        if value < MIN_DURATION_SECONDS:
            raise ValueError(f"must be at least {MIN_DURATION_SECONDS} seconds, got {value}")
        maximum = info.data.get("max_duration_seconds")
        if maximum is not None and value > maximum:
            raise ValueError(f"must not exceed max_duration_seconds ({maximum}), got {value}")
        return value

    @field_validator("workers")
    @classmethod
    def _check_workers(cls, value: int) -> int:
        return _between(value, 1, 64)

    @field_validator("resync_seconds")
    @classmethod
    def _check_resync(cls, value: int) -> int:
        return _between(value, 10, 7 * _DAY)

    @field_validator("watch_timeout_seconds")
    @classmethod
    def _check_watch_timeout(cls, value: int) -> int:
        return _between(value, 1, 3600)

    @field_validator("lease_duration_seconds")
    @classmethod
    def _check_lease_duration(cls, value: int) -> int:
        return _between(value, 2, 3600)

    @field_validator("renew_deadline_seconds")
    @classmethod
    def _check_renew_deadline(cls, value: int, info: ValidationInfo) -> int:
        """client-go's rule: the holder must give up before others may take over."""
        _between(value, 1, 3600)
        lease = info.data.get("lease_duration_seconds")
        if lease is not None and value >= lease:
            raise ValueError(f"must be less than lease_duration_seconds ({lease}), got {value}")
        return value

    @field_validator("retry_period_seconds")
    @classmethod
    def _check_retry_period(cls, value: int, info: ValidationInfo) -> int:
        """client-go's rule: renew_deadline > retry_period * 1.2 (its jitter factor)."""
        _between(value, 1, 3600)
        deadline = info.data.get("renew_deadline_seconds")
        if deadline is not None and deadline <= value * 1.2:
            raise ValueError(
                f"must leave room for retries: renew_deadline_seconds ({deadline}) "
                f"must exceed 1.2 x retry_period_seconds, got {value}"
            )
        return value

    @field_validator("identity")
    @classmethod
    def _check_identity(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value) or len(value) > 253:
            raise ValueError(f"must be 1-253 characters without whitespace, got {value!r}")
        return value

    @field_validator("metrics_address")
    @classmethod
    def _check_metrics_address(cls, value: str) -> str:
        _split_address(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}, got {value!r}")
        return value

    @field_validator("otlp_endpoint")
    @classmethod
    def _check_otlp_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value

    @field_validator("trust_bundle_namespaces")
    @classmethod
    def _check_trust_bundle_namespaces(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not is_dns1123_label(name):
                raise ValueError(f"{name!r} is not a valid namespace name")
        return value

    @field_validator("trust_bundle_configmap_name")
    @classmethod
    def _check_configmap_name(cls, value: str) -> str:
        if not is_dns1123_subdomain(value):
            raise ValueError(f"must be a lowercase DNS subdomain, got {value!r}")
        return value

    @field_validator("trust_bundle_configmap_key")
    @classmethod
    def _check_configmap_key(cls, value: str) -> str:
        """The apiserver's ConfigMap key rule (IsConfigMapKey)."""
        if len(value) > 253 or value in (".", "..") or not _CONFIGMAP_KEY.fullmatch(value):
            raise ValueError(f"must be a ConfigMap key ([-._a-zA-Z0-9]+), got {value!r}")
        return value

    @field_validator("policy_reload_seconds")
    @classmethod
    def _check_policy_reload(cls, value: float) -> float:
        if not 0.1 <= value <= 3600:
            raise ValueError(f"must be between 0.1 and 3600 seconds, got {value}")
        return value

    # -- derived ---------------------------------------------------------------

    @property
    def metrics_host(self) -> str:
        """Host part of `metrics_address`, without IPv6 brackets; empty means all interfaces."""
        return _split_address(self.metrics_address)[0]

    @property
    def metrics_port(self) -> int:
        return _split_address(self.metrics_address)[1]


def _between(value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ValueError(f"must be between {low} and {high}, got {value}")
    return value


def _split_address(value: str) -> tuple[str, int]:
    """``host:port`` / ``[v6]:port`` / ``:port`` -> (host, port); ValueError says what is wrong."""
    problem = f"must be host:port (e.g. 0.0.0.0:8080 or [::]:8080), got {value!r}"
    host, colon, port_text = value.rpartition(":")
    if not colon or not port_text.isdigit():
        raise ValueError(problem)
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port must be between 0 and 65535, got {port}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(problem) from None
    elif ":" in host or (host and not _HOSTNAME.fullmatch(host)):
        raise ValueError(problem)
    return host, port


# -- sources: environment and command line --------------------------------------


@dataclass(frozen=True, slots=True)
class _Flag:
    flag: str
    metavar: str | None
    help: str


_DURATION = "DURATION"
_FLAGS: dict[str, _Flag] = {
    "signer_names": _Flag("--signer-name", "NAME", "spec.signerName to serve (repeatable, or a,b)"),
    "policy_dir": _Flag("--policies", "DIR", "policy directory (default: bundled policies)"),
    "cluster_domain": _Flag("--cluster-domain", "DOMAIN", "the cluster's DNS domain"),
    "ca_secret_namespace": _Flag("--ca-secret", None, ""),
    "ca_secret_name": _Flag("--ca-secret", None, ""),
    "max_duration_seconds": _Flag("--max-duration", _DURATION, "longest certificate lifetime"),
    "default_duration_seconds": _Flag(
        "--default-duration", _DURATION, "lifetime when the CSR sets no expirationSeconds"
    ),
    "workers": _Flag("--workers", "N", "CSRs reconciled in parallel (1-64)"),
    "resync_seconds": _Flag("--resync-period", _DURATION, "relist interval"),
    "watch_timeout_seconds": _Flag("--watch-timeout", _DURATION, "server-side watch timeout"),
    "leader_elect": _Flag("--leader-elect", None, "take a Lease first, so one replica writes"),
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
    ),
    "trust_bundle_configmap_name": _Flag(
        "--trust-bundle-configmap", "NAME", "name of the trust bundle ConfigMaps"
    ),
    "trust_bundle_configmap_key": _Flag(
        "--trust-bundle-key", "KEY", "ConfigMap data key holding the PEM bundle"
    ),
    "cluster_trust_bundles": _Flag(
        "--cluster-trust-bundles", None, "publish a ClusterTrustBundle per signer name"
    ),
}
"""Field -> its command-line flag. The argparse `dest` is the field name itself."""

_CA_SECRET_DEST = "ca_secret"  # noqa: S105 - an argparse dest


def env_var(field: str) -> str:
    """The environment variable that sets `field`."""
    return ENV_PREFIX + field.upper()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; every default is None so env and defaults still apply."""
    group = parser.add_argument_group(
        "controller settings",
        f"Each flag overrides its {ENV_PREFIX}* environment variable, shown in brackets. "
        "A DURATION is seconds or e.g. 90d, 12h, 30m.",
    )
    for field, spec in _FLAGS.items():
        if spec.flag == "--ca-secret":
            continue
        kwargs: dict[str, Any] = {"dest": field, "help": f"{spec.help} [{env_var(field)}]"}
        if field in ("leader_elect", "cluster_trust_bundles"):
            kwargs.update(action=argparse.BooleanOptionalAction, default=None)
        else:
            kwargs["metavar"] = spec.metavar
        if field in ("signer_names", "trust_bundle_namespaces"):
            kwargs["action"] = "append"
        group.add_argument(spec.flag, **kwargs)
    group.add_argument(
        "--ca-secret",
        dest=_CA_SECRET_DEST,
        metavar="NAMESPACE/NAME",
        help="Secret holding the CA certificate and key "
        f"[{env_var('ca_secret_namespace')}, {env_var('ca_secret_name')}]",
    )


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """``CSR_SIGNER_<FIELD>`` -> field values; names are case-insensitive, blanks are unset."""
    fields = Settings.model_fields
    values: dict[str, Any] = {}
    for key, raw in env.items():
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX) or not raw.strip():
            continue
        field = upper[len(ENV_PREFIX) :].lower()
        if field in fields:
            values[field] = raw
    return values


def _from_args(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {
        field: getattr(args, field)
        for field in Settings.model_fields
        if getattr(args, field, None) is not None
    }
    ca_secret = getattr(args, _CA_SECRET_DEST, None)
    if ca_secret is not None:
        namespace, slash, name = str(ca_secret).partition("/")
        if not slash or not namespace or not name or "/" in name:
            raise ConfigError(
                f"invalid configuration: ca_secret (--ca-secret): "
                f"must be NAMESPACE/NAME, got {ca_secret!r}"
            )
        values["ca_secret_namespace"] = namespace
        values["ca_secret_name"] = name
    return values


def load_settings(
    args: argparse.Namespace | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, overlaid by `env` (``os.environ`` when None), overlaid by `args`.

    Raises `ConfigError` with a one-line message naming every invalid field.
    """
    values = _from_env(os.environ if env is None else env)
    if args is not None:
        values.update(_from_args(args))
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


_PROBLEMS = {
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "literal_error": None,
    "path_type": "must be a path",
    "string_type": "must be a string",
}


def _describe(exc: ValidationError) -> str:
    """All of a ValidationError's problems on one line, each naming its field's sources."""
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        field = str(loc[0]) if loc else "settings"
        message = error["msg"].removeprefix("Value error, ")
        generic = _PROBLEMS.get(error["type"])
        if generic is not None:
            message = f"{generic}, got {error['input']!r}"
        elif error["type"] == "literal_error":
            message = f"{message.replace('Input should be', 'must be')}, got {error['input']!r}"
        elif error["type"] == "extra_forbidden":
            message = "is not a setting"
        where = f"{env_var(field)} / {_FLAGS[field].flag}" if field in _FLAGS else None
        problems.append(f"{field} ({where}): {message}" if where else f"{field}: {message}")
    return "invalid configuration: " + "; ".join(problems)


# -- logging ----------------------------------------------------------------------

_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """Fields passed as ``extra={...}``: whatever is not a standard LogRecord attribute."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}


def _timestamp(record: logging.LogRecord) -> str:
    return (
        dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the extras.

    Extras that JSON cannot encode are written with `str()`, so a log call can
    never fail; an exception's traceback goes into ``exc``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger: message key=value ...`` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={_text_value(v)}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text


class _OurHandler(logging.StreamHandler[TextIO]):
    """Marks the handler this module installed, so reconfiguring replaces it."""


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Install one handler on the root logger with the configured format and level.

    Calling it again replaces our handler instead of adding a second one;
    handlers installed by others (pytest's capture, for one) are left alone.
    aiohttp's per-request access log is quietened: /metrics is scraped every
    few seconds and would drown everything else.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(handler)
        with contextlib.suppress(Exception):
            handler.close()
    handler = _OurHandler(stream if stream is not None else sys.stderr)
    formatter: type[logging.Formatter] = (
        JsonFormatter if settings.log_format == "json" else TextFormatter
    )
    handler.setFormatter(formatter())
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
