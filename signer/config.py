"""One typed configuration, read once, passed explicitly (ARCHITECTURE principle 8).

`Settings` is the controller's whole configuration. This module is the only
place that reads the environment: `load_settings()` takes the environment as a
mapping (``os.environ`` in production, a plain dict in tests), overlays the
command line (collected by `signer.cli_flags`), validates, and hands back a
frozen `Settings`. Everything else receives that object as an argument and
never looks at ``os.environ``.

Precedence, highest first: command-line flag, ``CSR_SIGNER_<FIELD>`` variable,
default. An empty variable counts as unset, so a manifest can blank a value
without deleting the line.

Unknown ``CSR_SIGNER_*`` variables are ignored, not rejected: the kubelet
injects Docker-link style variables for every Service in the namespace
(``CSR_SIGNER_PORT``, ``CSR_SIGNER_SERVICE_HOST``, ...), and a Service named
``csr-signer`` is exactly what we deploy. (The Deployment should still set
``enableServiceLinks: false``.)

Every validation failure becomes one `ConfigError` whose message is one line
naming the field, the variable and flag that set it, and the problem, e.g.
``invalid configuration: workers (CSR_SIGNER_WORKERS / --workers): must be
between 0 and 64, got 65``.

Durations (``90d``, ``1h30m``, ``500ms``, plain seconds) follow the grammar of
`signer.durations`, the same one the policy files use.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from signer.cli_flags import ENV_PREFIX, env_var, flag_for, flag_values
from signer.durations import parse_duration
from signer.models import is_dns1123_label, is_dns1123_subdomain

DEFAULT_SIGNER_NAMES = ("csr-signer.dev/cluster-local", "csr-signer.dev/knative-internal")
KNATIVE_SIGNER = "csr-signer.dev/knative-internal"
"""Whose CA the Knative trust-bundle ConfigMaps carry, unless configured otherwise."""
MIN_DURATION_SECONDS = 600
"""The apiserver rejects spec.expirationSeconds below 10 minutes; so do we."""
_DAY = 86_400

# Kubernetes' ValidateSignerName limits (pkg/apis/certificates/validation).
_DNS1123_SUBDOMAIN_MAX = 253
_SIGNER_PATH_MAX = _DNS1123_SUBDOMAIN_MAX + 63 + 1

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")
_CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")

MAX_WORKERS = 64
"""The most reconciles at once, fixed (--workers) or adaptive (the default)."""

_RANGES: dict[str, tuple[int, int]] = {
    "workers": (0, MAX_WORKERS),
    "resync_seconds": (10, 7 * _DAY),
    "watch_timeout_seconds": (1, 3600),
    "lease_duration_seconds": (2, 3600),
    "renew_deadline_seconds": (1, 3600),
    "retry_period_seconds": (1, 3600),
    "max_request_bytes": (1024, 1024 * 1024),
    "max_sans": (1, 10_000),
}
"""Inclusive bounds of the integer settings that have nothing more to check than that."""


class ConfigError(Exception):
    """The configuration is invalid; the message is one line fit for stderr."""


def _default_identity() -> str:
    """Hostname plus a random suffix, as client-go does (`hostname_<uuid>`).

    The suffix keeps two processes on one host (or a restarted pod that kept
    its name) from both believing they hold the Lease.
    """
    return f"{socket.gethostname()}_{secrets.token_hex(4)}"


def _seconds(value: object) -> object:
    """A duration string as seconds (an int when whole); other values are pydantic's to judge."""
    if not isinstance(value, str):
        return value
    try:
        seconds = parse_duration(value).total_seconds()
    except ValueError:
        raise ValueError(
            f"must be seconds or a duration such as 90d, 12h, 30m, got {value!r}"
        ) from None
    return int(seconds) if seconds.is_integer() else seconds


def _whole_seconds(value: object) -> object:
    """As `_seconds`, but a fraction is an error rather than something to round away."""
    seconds = _seconds(value)
    if isinstance(seconds, float):
        if not seconds.is_integer():
            raise ValueError(f"must be a whole number of seconds, got {value!r}")
        return int(seconds)
    return seconds


def _split_list(value: object) -> object:
    """``a,b`` (env), a JSON list (env), or repeated flags whose values may hold commas.

    Order is kept (for signer names it is the order of the metric label set);
    blanks and duplicates go. Anything else is left for pydantic to reject.
    """
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
        return tuple(dict.fromkeys(name for name in names if name))
    return value


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

    Why every pydantic-settings source is off (`settings_customise_sources`
    keeps only the constructor's arguments) and `load_settings` reads the
    environment itself:

    - The environment must be injectable. Tests pass it as a dict and must
      never see the developer's shell, and ``Settings(policy_dir=...)`` in the
      component and e2e tests must mean exactly those values. pydantic-settings'
      env source always reads ``os.environ`` and has no public way to be
      handed a mapping instead.
    - Its env source JSON-decodes tuple-valued fields, so
      ``CSR_SIGNER_SIGNER_NAMES=a.example/x,b.example/y`` fails with a
      ``SettingsError`` (not a `ValidationError`, so not a one-line
      `ConfigError`) before `_split_list` sees it. Opting out per field
      (``NoDecode``) needs pydantic-settings 2.7, newer than the floor the
      package declares.
    - ``--ca-secret`` sets two fields, and the flag-over-environment overlay
      should be one visible step in `load_settings`, not an ordering of
      sources. There are no nested settings and no secrets directory to read
      (the CA lives in a Kubernetes Secret fetched through the API), which is
      what the other sources would add.

    `BaseSettings` still earns its place: ``env_prefix`` documents the variable
    names, and the class stays ready for those sources if the reasons go.
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
    workers: int = 0
    """Reconciles at once; 0: adaptive, up to MAX_WORKERS (signer.reactor.concurrency)."""
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
    pod_certificates: bool = True
    """Sign PodCertificateRequests (certificates.k8s.io/v1beta1) for the signer names.
    When the API is not served the watch logs once and idles: off only silences that."""
    max_request_bytes: int = 65_536
    """Largest spec.request (decoded) evaluated at all; larger is Denied or Failed unread.
    Typical requests are 0.5-4 KiB; memory and CPU per CSR follow this bound."""
    max_sans: int = 256
    """Most subject alternative names (all kinds) in one request; more is Denied/Failed."""
    signer_cas: tuple[str, ...] = ()
    """``SIGNER=NAMESPACE/NAME``: the CA Secret of one signer name. A signer without an
    entry signs with the ``ca_secret_*`` Secret. One CA per signer keeps the trust apart:
    whoever may approve for one signer cannot mint names another signer's consumers trust."""
    trust_bundle_signer: str | None = None
    """The signer whose CA goes into the Knative trust-bundle ConfigMaps (they carry one
    signer's trust only). None: the only signer, else `KNATIVE_SIGNER` if served."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only explicit values: see the class docstring for why."""
        return (init_settings,)

    # -- parsing ---------------------------------------------------------------

    @field_validator("signer_names", "trust_bundle_namespaces", "signer_cas", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _split_list(value)

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
        return _seconds(value)

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

    @field_validator(
        "cluster_domain", "ca_secret_name", "lease_name", "trust_bundle_configmap_name"
    )
    @classmethod
    def _check_subdomain(cls, value: str) -> str:
        if not is_dns1123_subdomain(value):
            raise ValueError(f"must be a lowercase DNS subdomain, got {value!r}")
        return value

    @field_validator("ca_secret_namespace", "lease_namespace", "trust_bundle_namespaces")
    @classmethod
    def _check_namespaces(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        for name in (value,) if isinstance(value, str) else value:
            if not is_dns1123_label(name):
                raise ValueError(f"must be a valid namespace name (DNS label), got {name!r}")
        return value

    @field_validator("max_duration_seconds", "default_duration_seconds")
    @classmethod
    def _check_lifetime(cls, value: int, info: ValidationInfo) -> int:
        """Both lifetimes respect the apiserver's minimum; the default fits under the maximum."""
        if value < MIN_DURATION_SECONDS:
            raise ValueError(f"must be at least {MIN_DURATION_SECONDS} seconds, got {value}")
        maximum = info.data.get("max_duration_seconds")
        if (
            info.field_name == "default_duration_seconds"
            and maximum is not None
            and value > maximum
        ):
            raise ValueError(f"must not exceed max_duration_seconds ({maximum}), got {value}")
        return value

    @field_validator(*_RANGES)
    @classmethod
    def _check_range(cls, value: int, info: ValidationInfo) -> int:
        low, high = _RANGES[str(info.field_name)]
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    @field_validator("renew_deadline_seconds")
    @classmethod
    def _check_renew_deadline(cls, value: int, info: ValidationInfo) -> int:
        """client-go's rule: the holder must give up before others may take over."""
        lease = info.data.get("lease_duration_seconds")
        if lease is not None and value >= lease:
            raise ValueError(f"must be less than lease_duration_seconds ({lease}), got {value}")
        return value

    @field_validator("retry_period_seconds")
    @classmethod
    def _check_retry_period(cls, value: int, info: ValidationInfo) -> int:
        """client-go's rule: renew_deadline > retry_period * 1.2 (its jitter factor)."""
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

    @field_validator("trust_bundle_configmap_key")
    @classmethod
    def _check_configmap_key(cls, value: str) -> str:
        """The apiserver's ConfigMap key rule (IsConfigMapKey)."""
        if len(value) > 253 or value in (".", "..") or not _CONFIGMAP_KEY.fullmatch(value):
            raise ValueError(f"must be a ConfigMap key ([-._a-zA-Z0-9]+), got {value!r}")
        return value

    @field_validator("signer_cas")
    @classmethod
    def _check_signer_cas(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        served = info.data.get("signer_names") or ()
        seen: set[str] = set()
        for entry in value:
            signer, _, namespace, name = _signer_ca(entry)
            if signer not in served:
                raise ValueError(f"{entry!r}: {signer!r} is not one of the signer names served")
            if signer in seen:
                raise ValueError(f"{entry!r}: a second CA for {signer!r}")
            seen.add(signer)
            if not is_dns1123_label(namespace) or not is_dns1123_subdomain(name):
                raise ValueError(f"{entry!r}: must be SIGNER=NAMESPACE/NAME")
        return value

    @field_validator("trust_bundle_signer")
    @classmethod
    def _check_trust_bundle_signer(cls, value: str | None, info: ValidationInfo) -> str | None:
        served = info.data.get("signer_names") or ()
        if value is not None and value not in served:
            raise ValueError(f"{value!r} is not one of the signer names served")
        return value

    @field_validator("policy_reload_seconds")
    @classmethod
    def _check_policy_reload(cls, value: float) -> float:
        if not 0.1 <= value <= 3600:
            raise ValueError(f"must be between 0.1 and 3600 seconds, got {value}")
        return value

    @model_validator(mode="after")
    def _check_configmap_signer(self) -> Settings:
        if self.trust_bundle_namespaces and self.configmap_signer is None:
            raise ValueError(
                "trust_bundle_signer: trust bundle ConfigMaps carry one signer's CA; name it "
                f"with {flag_for('trust_bundle_signer')} (one of {', '.join(self.signer_names)})"
            )
        return self

    # -- derived ---------------------------------------------------------------

    @property
    def ca_secrets(self) -> dict[str, tuple[str, str]]:
        """Every served signer name -> the (namespace, name) of the CA Secret it signs with."""
        own = {signer: (ns, name) for signer, _, ns, name in map(_signer_ca, self.signer_cas)}
        default = (self.ca_secret_namespace, self.ca_secret_name)
        return {signer: own.get(signer, default) for signer in self.signer_names}

    @property
    def signers_sharing_a_ca(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """CA Secrets that serve more than one signer name (worth a startup warning)."""
        by_secret: dict[tuple[str, str], list[str]] = {}
        for signer, secret in self.ca_secrets.items():
            by_secret.setdefault(secret, []).append(signer)
        return {k: tuple(v) for k, v in by_secret.items() if len(v) > 1}

    @property
    def configmap_signer(self) -> str | None:
        """Whose CA the Knative trust-bundle ConfigMaps carry; None when none is clear."""
        if self.trust_bundle_signer is not None:
            return self.trust_bundle_signer
        if len(self.signer_names) == 1:
            return self.signer_names[0]
        return KNATIVE_SIGNER if KNATIVE_SIGNER in self.signer_names else None

    @property
    def metrics_host(self) -> str:
        """Host part of `metrics_address`, without IPv6 brackets; empty means all interfaces."""
        return _split_address(self.metrics_address)[0]

    @property
    def metrics_port(self) -> int:
        return _split_address(self.metrics_address)[1]


def _signer_ca(entry: str) -> tuple[str, str, str, str]:
    """``SIGNER=NAMESPACE/NAME`` -> (signer, "=", namespace, name); ValueError if malformed."""
    signer, eq, secret = entry.partition("=")
    namespace, slash, name = secret.partition("/")
    if not (eq and slash and signer and namespace and name) or "/" in name:
        raise ValueError(f"{entry!r}: must be SIGNER=NAMESPACE/NAME")
    return signer, eq, namespace, name


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


# -- loading ------------------------------------------------------------------------


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


def load_settings(
    args: argparse.Namespace | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, overlaid by `env` (``os.environ`` when None), overlaid by `args`.

    `args` is what a parser built with `signer.cli_flags.add_arguments` returned.
    Raises `ConfigError` with a one-line message naming every invalid field.
    """
    values = _from_env(os.environ if env is None else env)
    if args is not None:
        try:
            values.update(flag_values(args))
        except ValueError as exc:
            raise ConfigError(f"invalid configuration: {exc}") from None
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


# -- error messages -----------------------------------------------------------------

_PROBLEMS = {
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "path_type": "must be a path",
    "string_type": "must be a string",
}
"""pydantic's generic messages, reworded to match ours ("must ..., got ...")."""


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
        flag = flag_for(field)
        problems.append(
            f"{field} ({env_var(field)} / {flag}): {message}" if flag else f"{field}: {message}"
        )
    return "invalid configuration: " + "; ".join(problems)
