"""The Helm chart, rendered offline: its contract with the controller and the repo.

Cluster-free checks of what `helm template` produces (the e2e module applies
it to a real apiserver and exercises its RBAC):
- the policy files the chart ships are the repository's, byte for byte, and
  reach the ConfigMap unchanged;
- the Deployment's CSR_SIGNER_* environment is a valid `Settings` with the
  values the chart means (the env names are the contract with signer/config.py);
- the pod is locked down (non-root, read-only root, no capabilities, ...);
- RBAC equals deploy/rbac.yaml in substance, plus the trust-bundle rules;
- each signer name has its CA Secret (its own by default): the Role may read
  exactly the CA Secrets in use, and `ca.create` makes one distinct CA per
  Secret, each one the controller accepts;
- deploy/manifests.yaml is exactly the chart rendered with defaults.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from csr_signer_dev.helm import HelmError, documents, render_manifests, template

from signer.config import DEFAULT_SIGNER_NAMES, KNATIVE_SIGNER, Settings, load_settings
from signer.pki.ca import load_ca_from_secret_data
from signer.policy import load_policies

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "chart" / "csr-signer"
NAMESPACE = "csr-signer"
POD_NAME = "csr-signer-7d9f-abcde"
CLUSTER_LOCAL = "csr-signer.dev/cluster-local"
NO_KNATIVE_CA = {KNATIVE_SIGNER: ""}
"""signerCAs that drop the default entry (for values that do not serve knative-internal)."""

pytestmark = pytest.mark.slow  # the first test in a cold session builds helm


def render(helm_binary: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    stream = template(
        CHART, release="csr-signer", namespace=NAMESPACE, values=values, helm_binary=helm_binary
    )
    return documents(stream)


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec = one(docs, "Deployment")["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    result: dict[str, Any] = only
    return result


def settings_from(docs: list[dict[str, Any]]) -> Settings:
    """What the controller would load from the container's env (downward API filled in)."""
    env: dict[str, str] = {}
    for var in container(docs)["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name":
            env[var["name"]] = POD_NAME
    return load_settings(env=env)


def test_chart_policy_files_equal_the_repository_policies_byte_for_byte() -> None:
    """helm does not follow a symlink out of the chart, so the chart keeps a copy."""
    chart_copy = {p.name: p.read_bytes() for p in (CHART / "files" / "policies").iterdir()}
    repo = {p.name: p.read_bytes() for p in (REPO / "policies").glob("*.yaml")}
    assert repo
    assert chart_copy == repo, (
        "the chart's copy of policies/ is stale: run `make manifests` "
        "(copies policies/*.yaml to deploy/chart/csr-signer/files/policies/)"
    )


def test_manifests_yaml_is_the_chart_rendered_with_defaults(helm_binary: Path) -> None:
    expected = render_manifests(CHART, helm_binary=helm_binary)
    actual = (REPO / "deploy" / "manifests.yaml").read_text()
    assert actual == expected, "deploy/manifests.yaml is stale: make manifests"


def test_policies_configmap_holds_the_bundled_files_unchanged(
    helm_binary: Path, tmp_path: Path
) -> None:
    data = one(render(helm_binary), "ConfigMap")["data"]
    repo = {p.name: p.read_text() for p in (REPO / "policies").glob("*.yaml")}
    assert data == repo
    for name, content in data.items():
        (tmp_path / name).write_text(content)
    assert load_policies(tmp_path).signer_names == frozenset(DEFAULT_SIGNER_NAMES)


@pytest.mark.parametrize(
    ("values", "files"),
    [
        pytest.param(
            {"policies": {"files": {"extra.yaml": "signers: []\n"}}},
            {"cluster-local.yaml", "knative-internal.yaml", "extra.yaml"},
            id="extra-policy-files-are-added-to-the-bundled-ones",
        ),
        pytest.param(
            {"policies": {"files": {"cluster-local.yaml": "signers: []\n"}}},
            {"cluster-local.yaml", "knative-internal.yaml"},
            id="a-policy-file-named-like-a-bundled-one-replaces-it",
        ),
        pytest.param(
            {"policies": {"bundled": False, "files": {"mine.yaml": "signers: []\n"}}},
            {"mine.yaml"},
            id="bundled-false-ships-only-the-given-files",
        ),
    ],
)
def test_policy_values_shape_the_configmap(
    helm_binary: Path, values: dict[str, Any], files: set[str]
) -> None:
    data = one(render(helm_binary, values), "ConfigMap")["data"]
    assert set(data) == files
    for name, content in values["policies"]["files"].items():
        assert data[name] == content


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            None,
            {
                "signer_names": DEFAULT_SIGNER_NAMES,
                "policy_dir": Path("/etc/csr-signer/policies"),
                "ca_secret_namespace": NAMESPACE,
                "ca_secret_name": "csr-signer-ca",
                "signer_cas": (f"{KNATIVE_SIGNER}={NAMESPACE}/csr-signer-knative-ca",),
                "trust_bundle_signer": None,
                "configmap_signer": KNATIVE_SIGNER,
                "lease_namespace": NAMESPACE,
                "lease_name": "csr-signer",
                "leader_elect": True,
                "identity": POD_NAME,
                "metrics_address": ":8080",
                "log_format": "json",
                "max_duration_seconds": 365 * 86400,
                "default_duration_seconds": 90 * 86400,
                "trust_bundle_namespaces": ("knative-serving",),
                "trust_bundle_configmap_name": "csr-signer-trust-bundle",
                "trust_bundle_configmap_key": "ca.crt",
                "cluster_trust_bundles": True,
            },
            id="defaults-map-to-settings-with-release-namespace-and-pod-name-identity",
        ),
        pytest.param(
            {
                "signerNames": ["example.org/internal", "example.org/edge"],
                "ca": {"secretName": "my-ca"},
                "signerCAs": {**NO_KNATIVE_CA, "example.org/edge": "edge-ca"},
                "leaderElection": {"leaseName": "my-lease"},
                "certificates": {"maxDuration": "30d", "defaultDuration": "7d"},
                "metrics": {"port": 9090},
                "clusterDomain": "corp.local",
                "logFormat": "text",
                "otlpEndpoint": "http://otel.observability:4318",
                "trustBundle": {
                    "namespaces": ["knative-serving", "team-a"],
                    "configMapName": "ca-bundle",
                    "configMapKey": "bundle.pem",
                    "clusterTrustBundles": False,
                    "signer": "example.org/edge",
                },
            },
            {
                "signer_names": ("example.org/internal", "example.org/edge"),
                "ca_secret_name": "my-ca",
                "signer_cas": (f"example.org/edge={NAMESPACE}/edge-ca",),
                "ca_secrets": {
                    "example.org/internal": (NAMESPACE, "my-ca"),
                    "example.org/edge": (NAMESPACE, "edge-ca"),
                },
                "trust_bundle_signer": "example.org/edge",
                "lease_name": "my-lease",
                "max_duration_seconds": 30 * 86400,
                "default_duration_seconds": 7 * 86400,
                "metrics_address": ":9090",
                "cluster_domain": "corp.local",
                "log_format": "text",
                "otlp_endpoint": "http://otel.observability:4318",
                "trust_bundle_namespaces": ("knative-serving", "team-a"),
                "trust_bundle_configmap_name": "ca-bundle",
                "trust_bundle_configmap_key": "bundle.pem",
                "cluster_trust_bundles": False,
            },
            id="custom-values-map-to-the-matching-settings",
        ),
    ],
)
def test_container_env_is_a_valid_controller_configuration(
    helm_binary: Path, values: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    settings = settings_from(render(helm_binary, values))
    assert {field: getattr(settings, field) for field in expected} == expected


def test_probes_and_ports_follow_the_metrics_port(helm_binary: Path) -> None:
    docs = render(helm_binary, {"metrics": {"port": 9090}})
    spec = container(docs)
    assert spec["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    service = one(docs, "Service")
    assert service["spec"]["ports"][0]["port"] == 9090
    policy = one(docs, "NetworkPolicy")
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 9090, "protocol": "TCP"}]}]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param(("securityContext", "runAsNonRoot"), True, id="container-runs-as-non-root"),
        pytest.param(
            ("securityContext", "readOnlyRootFilesystem"), True, id="root-filesystem-is-read-only"
        ),
        pytest.param(
            ("securityContext", "allowPrivilegeEscalation"), False, id="no-privilege-escalation"
        ),
        pytest.param(
            ("securityContext", "capabilities"), {"drop": ["ALL"]}, id="all-capabilities-dropped"
        ),
        pytest.param(
            ("securityContext", "seccompProfile"),
            {"type": "RuntimeDefault"},
            id="seccomp-runtime-default",
        ),
        pytest.param(("pod", "securityContext", "runAsUser"), 65532, id="pod-uid-is-65532"),
        pytest.param(("pod", "enableServiceLinks"), False, id="no-service-link-env-vars"),
        pytest.param(("pod", "automountServiceAccountToken"), True, id="token-is-mounted"),
    ],
)
def test_pod_is_locked_down(helm_binary: Path, path: tuple[str, ...], expected: object) -> None:
    docs = render(helm_binary)
    node: Any = (
        one(docs, "Deployment")["spec"]["template"]["spec"] if path[0] == "pod" else container(docs)
    )
    for key in path[1:] if path[0] == "pod" else path:
        node = node[key]
    assert node == expected


def test_defaults_run_two_replicas_with_a_pdb_and_leader_election(helm_binary: Path) -> None:
    docs = render(helm_binary)
    assert one(docs, "Deployment")["spec"]["replicas"] == 2
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert settings_from(docs).leader_elect is True


def test_service_monitor_only_when_asked(helm_binary: Path) -> None:
    assert not [d for d in render(helm_binary) if d["kind"] == "ServiceMonitor"]
    docs = render(helm_binary, {"metrics": {"serviceMonitor": {"enabled": True}}})
    endpoints = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoints[0]["port"] == "metrics"


def normalized(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        ({k: sorted(v) if isinstance(v, list) else v for k, v in rule.items()} for rule in rules),
        key=yaml.safe_dump,
    )


def test_rbac_equals_deploy_rbac_yaml(helm_binary: Path) -> None:
    """Same rules as the hand-written reference RBAC, object by object.

    Release "csr-signer" in namespace csr-signer gives the chart's objects the
    reference's names, so each Role is compared with its namesake.
    """
    reference = documents((REPO / "deploy" / "rbac.yaml").read_text())
    chart = render(helm_binary)
    assert normalized(one(chart, "ClusterRole")["rules"]) == normalized(
        one(reference, "ClusterRole")["rules"]
    )
    ref_roles = {
        (d["metadata"]["namespace"], d["metadata"]["name"])
        for d in reference
        if d["kind"] == "Role"
    }
    chart_roles = {
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in chart if d["kind"] == "Role"
    }
    assert chart_roles == ref_roles
    for _, name in ref_roles:
        assert normalized(one(chart, "Role", name)["rules"]) == normalized(
            one(reference, "Role", name)["rules"]
        ), name
    for binding in (d for d in chart if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "csr-signer", "namespace": NAMESPACE}
        ]


@pytest.mark.parametrize(
    ("values", "ctb_names", "attest"),
    [
        pytest.param(
            {"signerNames": ["example.org/internal"], "signerCAs": NO_KNATIVE_CA},
            ["example.org:internal:bundle"],
            True,
            id="cluster-trust-bundle-names-follow-signer-names",
        ),
        pytest.param(
            {
                "signerNames": ["example.org/internal"],
                "signerCAs": NO_KNATIVE_CA,
                "trustBundle": {"retiredSignerNames": ["example.org/old"]},
            },
            ["example.org:internal:bundle", "example.org:old:bundle"],
            True,
            id="retired-signers-keep-their-bundle-for-cleanup-but-not-attest",
        ),
        pytest.param(
            {
                "signerNames": ["example.org/internal"],
                "signerCAs": NO_KNATIVE_CA,
                "trustBundle": {"clusterTrustBundles": False},
            },
            None,
            False,
            id="no-cluster-trust-bundle-rules-when-disabled",
        ),
    ],
)
def test_trust_bundle_rbac_follows_values(
    helm_binary: Path, values: dict[str, Any], ctb_names: list[str] | None, attest: bool
) -> None:
    rules = one(render(helm_binary, values), "ClusterRole")["rules"]
    named = [r for r in rules if r["resources"] == ["clustertrustbundles"] and "resourceNames" in r]
    assert [r["resourceNames"] for r in named] == ([ctb_names] if ctb_names else [])
    attesting = [r for r in rules if "attest" in r["verbs"]]
    assert [r["resourceNames"] for r in attesting] == ([["example.org/internal"]] if attest else [])


def test_signer_resource_names_follow_signer_names(helm_binary: Path) -> None:
    docs = render(
        helm_binary, {"signerNames": ["example.org/internal"], "signerCAs": NO_KNATIVE_CA}
    )
    rules = one(docs, "ClusterRole")["rules"]
    signers = next(r for r in rules if r["resources"] == ["signers"])
    assert signers["resourceNames"] == ["example.org/internal"]


def role_secret_names(docs: list[dict[str, Any]]) -> list[str]:
    """resourceNames of the release Role's Secret rule: the Secrets the controller may read."""
    rules = one(docs, "Role", "csr-signer")["rules"]
    (secrets,) = [r for r in rules if r["resources"] == ["secrets"]]
    assert secrets["verbs"] == ["get", "list", "watch"]
    names: list[str] = secrets["resourceNames"]
    return names


def env_names(docs: list[dict[str, Any]]) -> set[str]:
    return {var["name"] for var in container(docs)["env"]}


def ca_secrets(*pairs: tuple[str, str]) -> dict[str, tuple[str, str]]:
    """signer -> (release namespace, Secret): what `Settings.ca_secrets` should say."""
    return {signer: (NAMESPACE, secret) for signer, secret in pairs}


CA_SECRET_CASES = [
    pytest.param(
        None,
        ca_secrets((CLUSTER_LOCAL, "csr-signer-ca"), (KNATIVE_SIGNER, "csr-signer-knative-ca")),
        id="defaults-give-each-signer-its-own-ca-secret",
    ),
    pytest.param(
        {"signerCAs": {CLUSTER_LOCAL: "cluster-local-ca"}},
        ca_secrets((CLUSTER_LOCAL, "cluster-local-ca"), (KNATIVE_SIGNER, "csr-signer-knative-ca")),
        id="when-every-signer-has-its-own-ca-the-default-secret-is-not-readable",
    ),
    pytest.param(
        {"signerCAs": NO_KNATIVE_CA},
        ca_secrets((CLUSTER_LOCAL, "csr-signer-ca"), (KNATIVE_SIGNER, "csr-signer-ca")),
        id="a-blank-entry-is-no-entry-so-both-signers-share-the-default-ca",
    ),
    pytest.param(
        {
            "signerNames": ["example.org/a", "example.org/b"],
            "signerCAs": {**NO_KNATIVE_CA, "example.org/a": "ab-ca", "example.org/b": "ab-ca"},
            "trustBundle": {"signer": "example.org/a"},
        },
        ca_secrets(("example.org/a", "ab-ca"), ("example.org/b", "ab-ca")),
        id="signers-sharing-a-signer-ca-secret-name-it-once",
    ),
    pytest.param(
        {"signerNames": ["example.org/only"], "signerCAs": NO_KNATIVE_CA},
        ca_secrets(("example.org/only", "csr-signer-ca")),
        id="one-signer-without-an-entry-uses-ca-secret-name",
    ),
]


@pytest.mark.parametrize(("values", "expected"), CA_SECRET_CASES)
def test_the_role_reads_exactly_the_ca_secrets_the_controller_uses(
    helm_binary: Path, values: dict[str, Any] | None, expected: dict[str, tuple[str, str]]
) -> None:
    """RBAC, CSR_SIGNER_SIGNER_CAS and the controller agree on every signer's CA Secret."""
    docs = render(helm_binary, values)
    settings = settings_from(docs)
    assert settings.ca_secrets == expected
    assert role_secret_names(docs) == sorted({name for _, name in expected.values()})
    own = dict((values or {}).get("signerCAs", {KNATIVE_SIGNER: "csr-signer-knative-ca"}))
    assert ("CSR_SIGNER_SIGNER_CAS" in env_names(docs)) == any(own.values())


def test_default_values_give_two_distinct_cas(helm_binary: Path) -> None:
    docs = render(helm_binary)
    assert role_secret_names(docs) == ["csr-signer-ca", "csr-signer-knative-ca"]
    env = {var["name"]: var.get("value") for var in container(docs)["env"]}
    assert env["CSR_SIGNER_SIGNER_CAS"] == (f"{KNATIVE_SIGNER}={NAMESPACE}/csr-signer-knative-ca")
    assert env["CSR_SIGNER_CA_SECRET_NAME"] == "csr-signer-ca"
    assert settings_from(docs).signers_sharing_a_ca == {}


@pytest.mark.parametrize(
    ("values", "signers_by_secret"),
    [
        pytest.param(
            {"ca": {"create": True, "commonName": "test CA"}},
            {"csr-signer-ca": [CLUSTER_LOCAL], "csr-signer-knative-ca": [KNATIVE_SIGNER]},
            id="defaults-create-a-ca-per-signer",
        ),
        pytest.param(
            {
                "ca": {"create": True, "commonName": "test CA"},
                "signerCAs": {CLUSTER_LOCAL: "cl-ca"},
            },
            {"cl-ca": [CLUSTER_LOCAL], "csr-signer-knative-ca": [KNATIVE_SIGNER]},
            id="no-default-secret-when-no-signer-uses-it",
        ),
        pytest.param(
            {"ca": {"create": True, "commonName": "test CA"}, "signerCAs": NO_KNATIVE_CA},
            {"csr-signer-ca": [CLUSTER_LOCAL, KNATIVE_SIGNER]},
            id="one-shared-secret-is-created-once",
        ),
    ],
)
def test_ca_create_makes_one_secret_per_ca_the_controller_accepts(
    helm_binary: Path, values: dict[str, Any], signers_by_secret: dict[str, list[str]]
) -> None:
    docs = render(helm_binary, values)
    now = dt.datetime.now(dt.UTC)  # after genCA: its notBefore is the render time
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert sorted(secrets) == sorted(signers_by_secret) == role_secret_names(docs)
    fingerprints = set()
    for name, secret in secrets.items():
        assert secret["type"] == "kubernetes.io/tls"
        annotations = secret["metadata"]["annotations"]
        assert annotations["helm.sh/resource-policy"] == "keep"
        assert annotations["csr-signer.dev/signer-names"] == ",".join(signers_by_secret[name])
        data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
        ca = load_ca_from_secret_data(data, now=now)
        assert ca.not_before <= now < ca.not_after
        common_name = ca.subject.rfc4514_string()
        assert common_name.startswith("CN=test CA ")
        assert signers_by_secret[name][0] in common_name
        fingerprints.add(ca.fingerprint)
    assert len(fingerprints) == len(secrets), "each Secret holds a CA of its own"


def test_no_secret_is_rendered_without_ca_create(helm_binary: Path) -> None:
    assert not [d for d in render(helm_binary) if d["kind"] == "Secret"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"signerNames": []}, "signerNames", id="no-signer-names-is-refused"),
        pytest.param(
            {"policies": {"bundled": False}}, "no policy files", id="no-policy-files-is-refused"
        ),
        pytest.param(
            {"serviceAccount": {"create": False}},
            "serviceAccount.name",
            id="external-service-account-needs-a-name",
        ),
        pytest.param(
            {"signerCAs": {"example.org/unserved": "other-ca"}},
            r'signerCAs: "example.org/unserved" is not one of signerNames '
            r"\(csr-signer.dev/cluster-local, csr-signer.dev/knative-internal\)",
            id="a-signer-ca-for-an-unserved-signer-is-refused",
        ),
        pytest.param(
            {"signerNames": ["example.org/only"]},
            r'signerCAs: "csr-signer.dev/knative-internal" is not one of signerNames '
            r'\(example.org/only\): serve it, or set its entry to "" to remove it',
            id="other-signer-names-must-drop-the-default-signer-ca",
        ),
        pytest.param(
            {"signerCAs": {KNATIVE_SIGNER: ["a", "b"]}},
            "must map to a Secret name",
            id="a-signer-ca-must-be-a-secret-name",
        ),
        pytest.param(
            {"signerCAs": {KNATIVE_SIGNER: "My_CA"}},
            "which is not a Secret name",
            id="a-signer-ca-secret-name-is-checked-before-the-controller-would-crash-loop",
        ),
        pytest.param(
            {"trustBundle": {"signer": "example.org/unserved"}},
            'trustBundle.signer: "example.org/unserved" is not one of signerNames',
            id="the-trust-bundle-signer-must-be-served",
        ),
        pytest.param(
            {"signerNames": ["example.org/a", "example.org/b"], "signerCAs": NO_KNATIVE_CA},
            "trustBundle.signer: the trust bundle ConfigMaps carry one signer's CA; name it",
            id="trust-namespaces-need-a-trust-bundle-signer-when-none-is-obvious",
        ),
    ],
)
def test_invalid_values_fail_the_render(
    helm_binary: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmError, match=message):
        render(helm_binary, values)


OPAQUE_VALUES = {"resources", "podSecurityContext", "securityContext", "signerCAs"}
"""Values passed through as whole structures (or maps keyed by the user): one row each."""


def value_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in OPAQUE_VALUES:
            paths += value_paths(value, f"{path}.")
        else:
            paths.append(path)
    return paths


def test_every_chart_value_is_in_the_install_docs_table() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    docs = (REPO / "docs" / "install.md").read_text()
    docs = docs.split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("|")[1].strip().strip("`")
        for line in docs.splitlines()
        if line.startswith("| `")
    }
    assert set(value_paths(values)) - rows == set()
    assert rows - set(value_paths(values)) == set(), "docs/install.md lists values the chart lacks"
