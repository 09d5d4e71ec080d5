"""Settings: env parsing, defaults, validation, and one-line errors.

Flags and their precedence over the environment are in test_cli_flags.py, the
duration grammar in test_durations.py, log output in test_logs.py. The
environment is always passed as a dict: these tests never read or write
``os.environ``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from signer.cli_flags import add_arguments
from signer.config import DEFAULT_SIGNER_NAMES, ConfigError, Settings, load_settings

DAY = 86_400


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


LOCAL = "csr-signer.dev/cluster-local"
KNATIVE = "csr-signer.dev/knative-internal"


def test_defaults_without_env_or_flags() -> None:
    settings = load_settings(parse(), env={})
    assert settings.signer_names == DEFAULT_SIGNER_NAMES
    assert settings.policy_dir is None
    assert settings.default_duration_seconds == 90 * DAY
    assert settings.max_duration_seconds == 365 * DAY
    assert settings.workers == 0, "adaptive"
    assert settings.leader_elect is True
    assert (settings.metrics_host, settings.metrics_port) == ("0.0.0.0", 8080)
    assert settings.kubeconfig is None
    assert settings.otlp_endpoint is None


def test_identity_defaults_to_hostname_with_a_suffix_unique_per_process() -> None:
    first, second = load_settings(env={}), load_settings(env={})
    assert first.identity != second.identity
    assert first.identity.rpartition("_")[0] == second.identity.rpartition("_")[0]


def test_settings_are_frozen() -> None:
    settings = load_settings(env={})
    with pytest.raises(ValueError, match="frozen"):
        settings.workers = 8  # type: ignore[misc]


def test_settings_constructor_ignores_the_process_environment() -> None:
    """Only load_settings reads an environment, and only the one it is given."""
    assert Settings().workers == 0


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        pytest.param(
            {"CSR_SIGNER_SIGNER_NAMES": "example.com/a, example.com/b"},
            "signer_names",
            ("example.com/a", "example.com/b"),
            id="signer-names-are-comma-separated",
        ),
        pytest.param(
            {"CSR_SIGNER_SIGNER_NAMES": '["example.com/a", "example.com/b"]'},
            "signer_names",
            ("example.com/a", "example.com/b"),
            id="signer-names-may-be-a-json-list",
        ),
        pytest.param(
            {"CSR_SIGNER_SIGNER_NAMES": "example.com/a,example.com/a,,"},
            "signer_names",
            ("example.com/a",),
            id="signer-names-drop-duplicates-and-blanks",
        ),
        pytest.param(
            {"csr_signer_workers": "8"}, "workers", 8, id="variable-names-are-case-insensitive"
        ),
        pytest.param({"CSR_SIGNER_WORKERS": ""}, "workers", 0, id="empty-variable-counts-as-unset"),
        pytest.param(
            {"CSR_SIGNER_MAX_DURATION_SECONDS": "30d", "CSR_SIGNER_DEFAULT_DURATION_SECONDS": "1d"},
            "max_duration_seconds",
            30 * DAY,
            id="durations-accept-units",
        ),
        pytest.param(
            {"CSR_SIGNER_DEFAULT_DURATION_SECONDS": "1h30m"},
            "default_duration_seconds",
            5400,
            id="durations-accept-compound-units",
        ),
        pytest.param(
            {"CSR_SIGNER_DEFAULT_DURATION_SECONDS": "3600"},
            "default_duration_seconds",
            3600,
            id="durations-accept-plain-seconds",
        ),
        pytest.param(
            {"CSR_SIGNER_DEFAULT_DURATION_SECONDS": "1.5h"},
            "default_duration_seconds",
            5400,
            id="durations-accept-fractions-that-make-whole-seconds",
        ),
        pytest.param(
            {"CSR_SIGNER_TRUST_BUNDLE_NAMESPACES": '["a", "b,c"]'},
            "trust_bundle_namespaces",
            ("a", "b", "c"),
            id="every-list-setting-accepts-the-same-syntax",
        ),
        pytest.param(
            {"CSR_SIGNER_POLICY_RELOAD_SECONDS": "500ms"},
            "policy_reload_seconds",
            0.5,
            id="reload-interval-accepts-milliseconds",
        ),
        pytest.param(
            {"CSR_SIGNER_LEADER_ELECT": "false"}, "leader_elect", False, id="bool-from-false"
        ),
        pytest.param({"CSR_SIGNER_LEADER_ELECT": "0"}, "leader_elect", False, id="bool-from-0"),
        pytest.param(
            {"CSR_SIGNER_LOG_FORMAT": "JSON"}, "log_format", "json", id="log-format-any-case"
        ),
        pytest.param(
            {"CSR_SIGNER_LOG_LEVEL": "debug"}, "log_level", "DEBUG", id="log-level-any-case"
        ),
        pytest.param(
            {"CSR_SIGNER_POLICY_DIR": "/etc/csr-signer/policies"},
            "policy_dir",
            Path("/etc/csr-signer/policies"),
            id="policy-dir-is-a-path",
        ),
        pytest.param(
            {"CSR_SIGNER_OTLP_ENDPOINT": "http://otel-collector:4318"},
            "otlp_endpoint",
            "http://otel-collector:4318",
            id="otlp-endpoint-url",
        ),
        pytest.param(
            {"CSR_SIGNER_SERVICE_HOST": "10.0.0.1", "CSR_SIGNER_PORT": "tcp://10.0.0.1:8080"},
            "workers",
            0,
            id="kubelet-service-link-variables-are-ignored",
        ),
        pytest.param(
            {"OTHER_WORKERS": "9"}, "workers", 0, id="variables-without-the-prefix-are-ignored"
        ),
    ],
)
def test_environment_sets_fields(env: dict[str, str], field: str, expected: object) -> None:
    assert getattr(load_settings(env=env), field) == expected


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        pytest.param("127.0.0.1:9090", "127.0.0.1", 9090, id="ipv4"),
        pytest.param("[::1]:9090", "::1", 9090, id="ipv6-in-brackets"),
        pytest.param(":9090", "", 9090, id="empty-host-means-all-interfaces"),
        pytest.param("localhost:0", "localhost", 0, id="hostname-and-port-0"),
    ],
)
def test_metrics_address_splits_into_host_and_port(address: str, host: str, port: int) -> None:
    settings = load_settings(env={"CSR_SIGNER_METRICS_ADDRESS": address})
    assert (settings.metrics_host, settings.metrics_port) == (host, port)


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        pytest.param(
            {"CSR_SIGNER_WORKERS": "-1"},
            [],
            "workers (CSR_SIGNER_WORKERS / --workers): must be between 0 and 64, got -1",
            id="workers-below-0",
        ),
        pytest.param(
            {},
            ["--workers", "65"],
            "workers (CSR_SIGNER_WORKERS / --workers): must be between 0 and 64, got 65",
            id="workers-above-64",
        ),
        pytest.param(
            {"CSR_SIGNER_WORKERS": "many"},
            [],
            "workers (CSR_SIGNER_WORKERS / --workers): must be an integer, got 'many'",
            id="workers-not-a-number",
        ),
        pytest.param(
            {"CSR_SIGNER_SIGNER_NAMES": "my-signer"},
            [],
            "signer_names (CSR_SIGNER_SIGNER_NAMES / --signer-name): 'my-signer': "
            "must be of the form <domain>/<path>",
            id="signer-name-without-slash",
        ),
        pytest.param(
            {"CSR_SIGNER_SIGNER_NAMES": "example/signer"},
            [],
            "'example/signer': domain must have at least two dot-separated labels",
            id="signer-domain-needs-a-dot",
        ),
        pytest.param(
            {"CSR_SIGNER_SIGNER_NAMES": "Example.com/signer"},
            [],
            "'Example.com/signer': domain must be a lowercase DNS subdomain",
            id="signer-domain-is-lowercase",
        ),
        pytest.param(
            {"CSR_SIGNER_SIGNER_NAMES": "example.com/a/b"},
            [],
            "'example.com/a/b': must be of the form <domain>/<path>",
            id="signer-path-has-no-slash",
        ),
        pytest.param(
            {"CSR_SIGNER_SIGNER_NAMES": "example.com/Signer_1"},
            [],
            "'example.com/Signer_1': path must be a lowercase DNS subdomain",
            id="signer-path-is-a-dns-subdomain",
        ),
        pytest.param(
            {"CSR_SIGNER_SIGNER_NAMES": " , "},
            [],
            "signer_names (CSR_SIGNER_SIGNER_NAMES / --signer-name): must name at least one signer",
            id="signer-names-not-empty",
        ),
        pytest.param(
            {"CSR_SIGNER_SIGNER_NAMES": "[oops"},
            [],
            "signer_names (CSR_SIGNER_SIGNER_NAMES / --signer-name): is not a valid JSON list",
            id="signer-names-bad-json",
        ),
        pytest.param(
            {"CSR_SIGNER_MAX_DURATION_SECONDS": "599"},
            [],
            "max_duration_seconds (CSR_SIGNER_MAX_DURATION_SECONDS / --max-duration): "
            "must be at least 600 seconds, got 599",
            id="max-duration-at-least-10-minutes",
        ),
        pytest.param(
            {},
            ["--default-duration", "5m"],
            "default_duration_seconds (CSR_SIGNER_DEFAULT_DURATION_SECONDS / --default-duration): "
            "must be at least 600 seconds, got 300",
            id="default-duration-at-least-10-minutes",
        ),
        pytest.param(
            {"CSR_SIGNER_DEFAULT_DURATION_SECONDS": "30d", "CSR_SIGNER_MAX_DURATION_SECONDS": "7d"},
            [],
            "default_duration_seconds (CSR_SIGNER_DEFAULT_DURATION_SECONDS / --default-duration): "
            "must not exceed max_duration_seconds (604800), got 2592000",
            id="default-duration-not-above-max",
        ),
        pytest.param(
            {"CSR_SIGNER_DEFAULT_DURATION_SECONDS": "ninety days"},
            [],
            "must be seconds or a duration such as 90d, 12h, 30m, got 'ninety days'",
            id="duration-unparseable",
        ),
        pytest.param(
            {"CSR_SIGNER_DEFAULT_DURATION_SECONDS": "30m1h"},
            [],
            "must be seconds or a duration such as 90d, 12h, 30m, got '30m1h'",
            id="duration-units-largest-first",
        ),
        pytest.param(
            {},
            ["--resync-period", "1m0.5s"],
            "resync_seconds (CSR_SIGNER_RESYNC_SECONDS / --resync-period): "
            "must be a whole number of seconds, got '1m0.5s'",
            id="duration-whole-seconds-with-units",
        ),
        pytest.param(
            {"CSR_SIGNER_RETRY_PERIOD_SECONDS": "5000"},
            [],
            "retry_period_seconds (CSR_SIGNER_RETRY_PERIOD_SECONDS / "
            "--leader-elect-retry-period): must be between 1 and 3600, got 5000",
            id="range-is-checked-before-cross-field-rules",
        ),
        pytest.param(
            {"CSR_SIGNER_MAX_DURATION_SECONDS": "1000.5"},
            [],
            "must be a whole number of seconds, got '1000.5'",
            id="duration-whole-seconds",
        ),
        pytest.param(
            {"CSR_SIGNER_RESYNC_SECONDS": "1"},
            [],
            "resync_seconds (CSR_SIGNER_RESYNC_SECONDS / --resync-period): "
            "must be between 10 and 604800, got 1",
            id="resync-at-least-10-seconds",
        ),
        pytest.param(
            {"CSR_SIGNER_WATCH_TIMEOUT_SECONDS": "0"},
            [],
            "watch_timeout_seconds (CSR_SIGNER_WATCH_TIMEOUT_SECONDS / --watch-timeout): "
            "must be between 1 and 3600, got 0",
            id="watch-timeout-positive",
        ),
        pytest.param(
            {"CSR_SIGNER_LEADER_ELECT": "perhaps"},
            [],
            "leader_elect (CSR_SIGNER_LEADER_ELECT / --leader-elect): "
            "must be true or false, got 'perhaps'",
            id="leader-elect-boolean",
        ),
        pytest.param(
            {"CSR_SIGNER_RENEW_DEADLINE_SECONDS": "15"},
            [],
            "renew_deadline_seconds (CSR_SIGNER_RENEW_DEADLINE_SECONDS / "
            "--leader-elect-renew-deadline): must be less than lease_duration_seconds (15), got 15",
            id="renew-deadline-below-lease-duration",
        ),
        pytest.param(
            {"CSR_SIGNER_RETRY_PERIOD_SECONDS": "9"},
            [],
            "renew_deadline_seconds (10) must exceed 1.2 x retry_period_seconds, got 9",
            id="retry-period-leaves-room-for-jitter",
        ),
        pytest.param(
            {"CSR_SIGNER_LEASE_NAMESPACE": "Not_A_Namespace"},
            [],
            "lease_namespace (CSR_SIGNER_LEASE_NAMESPACE / --leader-elect-lease-namespace): "
            "must be a valid namespace name (DNS label), got 'Not_A_Namespace'",
            id="lease-namespace-dns-label",
        ),
        pytest.param(
            {},
            ["--ca-secret", "only-a-name"],
            "ca_secret (--ca-secret): must be NAMESPACE/NAME, got 'only-a-name'",
            id="ca-secret-needs-namespace-and-name",
        ),
        pytest.param(
            {"CSR_SIGNER_CA_SECRET_NAME": "CA!"},
            [],
            "ca_secret_name (CSR_SIGNER_CA_SECRET_NAME / --ca-secret): "
            "must be a lowercase DNS subdomain, got 'CA!'",
            id="ca-secret-name-dns-subdomain",
        ),
        pytest.param(
            {"CSR_SIGNER_CLUSTER_DOMAIN": "cluster..local"},
            [],
            "cluster_domain (CSR_SIGNER_CLUSTER_DOMAIN / --cluster-domain): "
            "must be a lowercase DNS subdomain",
            id="cluster-domain-dns-subdomain",
        ),
        pytest.param(
            {"CSR_SIGNER_IDENTITY": "two words"},
            [],
            "identity (CSR_SIGNER_IDENTITY / --identity): "
            "must be 1-253 characters without whitespace, got 'two words'",
            id="identity-without-whitespace",
        ),
        pytest.param(
            {"CSR_SIGNER_METRICS_ADDRESS": "8080"},
            [],
            "metrics_address (CSR_SIGNER_METRICS_ADDRESS / --metrics-address): "
            "must be host:port (e.g. 0.0.0.0:8080 or [::]:8080), got '8080'",
            id="metrics-address-needs-a-colon",
        ),
        pytest.param(
            {"CSR_SIGNER_METRICS_ADDRESS": "0.0.0.0:70000"},
            [],
            "port must be between 0 and 65535, got 70000",
            id="metrics-port-in-range",
        ),
        pytest.param(
            {"CSR_SIGNER_METRICS_ADDRESS": "::1:8080"},
            [],
            "must be host:port",
            id="metrics-ipv6-host-needs-brackets",
        ),
        pytest.param(
            {"CSR_SIGNER_LOG_FORMAT": "xml"},
            [],
            "log_format (CSR_SIGNER_LOG_FORMAT / --log-format): must be 'json' or 'text', got 'xml'",
            id="log-format-json-or-text",
        ),
        pytest.param(
            {"CSR_SIGNER_LOG_LEVEL": "verbose"},
            [],
            "log_level (CSR_SIGNER_LOG_LEVEL / --log-level): "
            "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'VERBOSE'",
            id="log-level-known-name",
        ),
        pytest.param(
            {"CSR_SIGNER_OTLP_ENDPOINT": "otel-collector:4318"},
            [],
            "otlp_endpoint (CSR_SIGNER_OTLP_ENDPOINT / --otlp-endpoint): "
            "must be an http:// or https:// URL, got 'otel-collector:4318'",
            id="otlp-endpoint-is-a-url",
        ),
        pytest.param(
            {"CSR_SIGNER_POLICY_RELOAD_SECONDS": "0"},
            [],
            "policy_reload_seconds (CSR_SIGNER_POLICY_RELOAD_SECONDS / --policy-reload-interval): "
            "must be between 0.1 and 3600 seconds, got 0",
            id="policy-reload-positive",
        ),
        pytest.param(
            {},
            ["--signer-ca", "example.com/other=ns/ca"],
            "signer_cas (CSR_SIGNER_SIGNER_CAS / --signer-ca): 'example.com/other=ns/ca': "
            "'example.com/other' is not one of the signer names served",
            id="signer-ca-for-a-signer-not-served",
        ),
        pytest.param(
            {"CSR_SIGNER_SIGNER_CAS": "csr-signer.dev/cluster-local=ca-only"},
            [],
            "'csr-signer.dev/cluster-local=ca-only': must be SIGNER=NAMESPACE/NAME",
            id="signer-ca-needs-namespace-and-name",
        ),
        pytest.param(
            {},
            [
                "--signer-ca",
                "csr-signer.dev/cluster-local=a/one",
                "--signer-ca",
                "csr-signer.dev/cluster-local=a/two",
            ],
            "a second CA for 'csr-signer.dev/cluster-local'",
            id="one-ca-per-signer",
        ),
        pytest.param(
            {
                "CSR_SIGNER_SIGNER_NAMES": "a.example/x,b.example/y",
                "CSR_SIGNER_TRUST_BUNDLE_NAMESPACES": "knative-serving",
            },
            [],
            "trust bundle ConfigMaps carry one signer's CA; name it with --trust-bundle-signer",
            id="configmaps-need-a-signer-when-it-is-not-clear",
        ),
    ],
)
def test_invalid_value_is_one_line_naming_the_field(
    env: dict[str, str], argv: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(parse(*argv), env=env)
    text = str(caught.value)
    assert text.startswith("invalid configuration: ")
    assert "\n" not in text
    assert message in text


def test_every_invalid_field_is_reported_on_the_same_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"CSR_SIGNER_WORKERS": "65", "CSR_SIGNER_LOG_FORMAT": "xml"})
    text = str(caught.value)
    assert "\n" not in text
    assert "workers (" in text
    assert "; log_format (" in text


@pytest.mark.parametrize(
    ("argv", "secrets", "shared"),
    [
        pytest.param(
            [],
            {LOCAL: ("csr-signer", "csr-signer-ca"), KNATIVE: ("csr-signer", "csr-signer-ca")},
            {("csr-signer", "csr-signer-ca"): (LOCAL, KNATIVE)},
            id="without-signer-ca-every-signer-shares-ca-secret-and-that-is-reported",
        ),
        pytest.param(
            ["--signer-ca", f"{KNATIVE}=knative-serving/kn-ca", "--ca-secret", "sec/local-ca"],
            {LOCAL: ("sec", "local-ca"), KNATIVE: ("knative-serving", "kn-ca")},
            {},
            id="signer-ca-overrides-ca-secret-for-its-signer",
        ),
    ],
)
def test_each_signer_resolves_to_one_ca_secret(
    argv: list[str],
    secrets: dict[str, tuple[str, str]],
    shared: dict[tuple[str, str], tuple[str, ...]],
) -> None:
    settings = load_settings(parse(*argv), env={})
    assert settings.ca_secrets == secrets
    assert settings.signers_sharing_a_ca == shared
