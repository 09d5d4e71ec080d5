"""Command-line flags (`signer.cli_flags`): one per setting, each beating its variable.

The environment is always passed as a dict: these tests never read or write
``os.environ``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from signer.cli_flags import add_arguments, env_var, flag_for, flagged_fields
from signer.config import ConfigError, Settings, load_settings

DAY = 86_400


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        pytest.param(
            ["--workers", "16"], {"CSR_SIGNER_WORKERS": "2"}, {"workers": 16}, id="flag-beats-env"
        ),
        pytest.param(
            [], {"CSR_SIGNER_WORKERS": "2"}, {"workers": 2}, id="env-applies-without-flag"
        ),
        pytest.param(
            ["--signer-name", "example.com/a", "--signer-name", "example.com/b,example.com/c"],
            {"CSR_SIGNER_SIGNER_NAMES": "example.com/z"},
            {"signer_names": ("example.com/a", "example.com/b", "example.com/c")},
            id="repeated-signer-name-flags-replace-env",
        ),
        pytest.param(
            ["--no-leader-elect"],
            {"CSR_SIGNER_LEADER_ELECT": "true"},
            {"leader_elect": False},
            id="no-leader-elect-beats-env",
        ),
        pytest.param(
            ["--leader-elect"],
            {"CSR_SIGNER_LEADER_ELECT": "false"},
            {"leader_elect": True},
            id="leader-elect-beats-env",
        ),
        pytest.param(
            ["--ca-secret", "pki/root"],
            {"CSR_SIGNER_CA_SECRET_NAME": "ignored"},
            {"ca_secret_namespace": "pki", "ca_secret_name": "root"},
            id="ca-secret-flag-sets-namespace-and-name",
        ),
        pytest.param(
            ["--default-duration", "1d", "--max-duration", "7d"],
            {},
            {"default_duration_seconds": DAY, "max_duration_seconds": 7 * DAY},
            id="duration-flags-accept-units",
        ),
        pytest.param(
            ["--policies", "/p", "--kubeconfig", "/k", "--log-format", "json"],
            {},
            {"policy_dir": Path("/p"), "kubeconfig": Path("/k"), "log_format": "json"},
            id="path-and-choice-flags",
        ),
        pytest.param(
            ["--metrics-address", "127.0.0.1:0", "--identity", "me"],
            {},
            {"metrics_port": 0, "identity": "me"},
            id="address-and-identity-flags",
        ),
    ],
)
def test_command_line_overrides_environment(
    argv: list[str], env: dict[str, str], expected: dict[str, Any]
) -> None:
    settings = load_settings(parse(*argv), env=env)
    assert {key: getattr(settings, key) for key in expected} == expected


def test_every_setting_has_a_flag() -> None:
    """A field without a flag would be settable only by environment: easy to miss."""
    args = parse()
    flagged = set(vars(args)) - {"ca_secret"} | {"ca_secret_namespace", "ca_secret_name"}
    assert flagged == set(Settings.model_fields) == set(flagged_fields())
    assert all(value is None for value in vars(args).values())


@pytest.mark.parametrize(
    ("field", "variable", "flag"),
    [
        pytest.param("workers", "CSR_SIGNER_WORKERS", "--workers", id="flag-named-after-field"),
        pytest.param(
            "policy_dir", "CSR_SIGNER_POLICY_DIR", "--policies", id="flag-named-for-users"
        ),
        pytest.param(
            "ca_secret_name", "CSR_SIGNER_CA_SECRET_NAME", "--ca-secret", id="one-flag-two-fields"
        ),
        pytest.param("ca_secret", "CSR_SIGNER_CA_SECRET", None, id="not-a-setting-has-no-flag"),
    ],
)
def test_each_field_names_its_variable_and_flag(
    field: str, variable: str, flag: str | None
) -> None:
    assert (env_var(field), flag_for(field)) == (variable, flag)


def test_malformed_ca_secret_is_a_config_error_naming_the_flag() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(parse("--ca-secret", "pki/root/extra"), env={})
    assert str(caught.value) == (
        "invalid configuration: ca_secret (--ca-secret): "
        "must be NAMESPACE/NAME, got 'pki/root/extra'"
    )


def test_help_shows_each_variable_and_the_duration_grammar() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert (
        "--workers N requests reconciled at once (1-64); 0: adaptive, up to 64 "
        "[CSR_SIGNER_WORKERS]" in text
    )
    assert "[CSR_SIGNER_CA_SECRET_NAMESPACE, CSR_SIGNER_CA_SECRET_NAME]" in text
    assert "A DURATION is seconds (3600, 0.5) or numbers with units d, h, m, s, ms" in text
