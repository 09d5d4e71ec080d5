"""Trust distribution, pure part: names, desired objects, the diff, and its settings.

Each case states a rule of `signer.trust`; the e2e test (tests/e2e/test_trust.py)
proves the same rules against a real apiserver.
"""

from __future__ import annotations

import argparse
import ast
import copy
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from signer.cli_flags import add_arguments
from signer.config import ConfigError, load_settings
from signer.pki.ca import load_ca_from_secret_data
from signer.trust import (
    CLUSTER_TRUST_BUNDLE,
    CONFIG_MAP,
    CONFIGMAPS_ANNOTATION,
    INSTANCE_LABEL,
    KNATIVE_TRUST_LABEL,
    MANAGED_BY_LABEL,
    ObjectKey,
    TrustTargets,
    cluster_trust_bundle_name,
    desired_objects,
    held_objects,
    plan,
    recorded_configmaps,
)
from tests.unit.pki.builders import NOW, make_ca, pem

CA1 = make_ca("CA1")
CA2 = make_ca("CA2")
BUNDLE = CA1.cert_pem
SIGNERS = ("csr-signer.dev/cluster-local", "csr-signer.dev/knative-internal")
CTB_LOCAL = ObjectKey(CLUSTER_TRUST_BUNDLE, "", "csr-signer.dev:cluster-local:bundle")
CTB_KNATIVE = ObjectKey(CLUSTER_TRUST_BUNDLE, "", "csr-signer.dev:knative-internal:bundle")
CM_SERVING = ObjectKey(CONFIG_MAP, "knative-serving", "csr-signer-trust-bundle")
CM_EVENTING = ObjectKey(CONFIG_MAP, "knative-eventing", "csr-signer-trust-bundle")


def targets(**overrides: Any) -> TrustTargets:
    values: dict[str, Any] = {
        "signer_names": SIGNERS,
        "namespaces": ("knative-serving",),
        "configmap_name": "csr-signer-trust-bundle",
        "configmap_key": "ca.crt",
        "instance": "csr-signer",
        "configmap_signer": SIGNERS[1],
    }
    return TrustTargets(**{**values, **overrides})


def same(bundle: bytes) -> dict[str, bytes]:
    """Every signer's bundle is `bundle` (for rules that do not depend on which CA)."""
    return dict.fromkeys(SIGNERS, bundle)


def subjects(pem_text: str) -> list[str]:
    certs = x509.load_pem_x509_certificates(pem_text.encode())
    return [c.subject.rfc4514_string() for c in certs]


def as_observed(body: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    """What the apiserver would return for `body`: a resourceVersion, plus `metadata`."""
    obj = copy.deepcopy(body)
    obj["metadata"].update({"resourceVersion": "7", **metadata})
    return obj


# --- names and desired objects --------------------------------------------------------


def test_each_signer_publishes_only_its_own_ca_and_configmaps_carry_one_signers() -> None:
    local, knative = make_ca("local CA"), make_ca("knative CA")
    desired = desired_objects({SIGNERS[0]: local.cert_pem, SIGNERS[1]: knative.cert_pem}, targets())
    assert subjects(desired[CTB_LOCAL]["spec"]["trustBundle"]) == ["CN=local CA"]
    assert subjects(desired[CTB_KNATIVE]["spec"]["trustBundle"]) == ["CN=knative CA"]
    assert subjects(desired[CM_SERVING]["data"]["ca.crt"]) == ["CN=knative CA"]


@pytest.mark.parametrize(
    "configmap_signer",
    [
        pytest.param(None, id="configmaps-need-a-named-signer"),
        pytest.param("example.com/unknown", id="configmap-signer-must-be-served"),
    ],
)
def test_configmap_signer_is_required_with_namespaces(configmap_signer: str | None) -> None:
    with pytest.raises(ValueError, match="configmap_signer must be one of"):
        targets(configmap_signer=configmap_signer)
    assert targets(namespaces=(), configmap_signer=configmap_signer).namespaces == ()


@pytest.mark.parametrize(
    ("signer", "name"),
    [
        pytest.param(
            "csr-signer.dev/cluster-local",
            "csr-signer.dev:cluster-local:bundle",
            id="slash-becomes-colon-then-colon-suffix-as-the-apiserver-requires",
        ),
        pytest.param(
            "example.com/a.b", "example.com:a.b:bundle", id="dots-in-the-signer-path-are-kept"
        ),
    ],
)
def test_cluster_trust_bundle_name_is_prefixed_by_its_signer(signer: str, name: str) -> None:
    assert cluster_trust_bundle_name(signer) == name


def test_one_bundle_per_signer_and_one_configmap_per_namespace() -> None:
    desired = desired_objects(
        same(BUNDLE), targets(namespaces=("knative-serving", "knative-eventing", "knative-serving"))
    )
    assert sorted(desired) == sorted([CTB_LOCAL, CTB_KNATIVE, CM_SERVING, CM_EVENTING])


def test_bundle_is_linked_to_its_signer_and_carries_the_pem() -> None:
    body = desired_objects(same(BUNDLE), targets())[CTB_LOCAL]
    assert body["apiVersion"] == "certificates.k8s.io/v1beta1"
    assert body["spec"] == {
        "signerName": "csr-signer.dev/cluster-local",
        "trustBundle": BUNDLE.decode(),
    }
    assert body["metadata"]["labels"] == {
        MANAGED_BY_LABEL: "csr-signer",
        INSTANCE_LABEL: "csr-signer",
    }


def test_configmap_is_labeled_for_knative_and_holds_the_pem_under_the_key() -> None:
    body = desired_objects(same(BUNDLE), targets(configmap_key="bundle.pem"))[CM_SERVING]
    assert body["metadata"]["namespace"] == "knative-serving"
    assert body["metadata"]["labels"] == {
        MANAGED_BY_LABEL: "csr-signer",
        INSTANCE_LABEL: "csr-signer",
        KNATIVE_TRUST_LABEL: "true",
    }
    assert body["data"] == {"bundle.pem": BUNDLE.decode()}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({}, [CTB_KNATIVE, CTB_LOCAL, CM_SERVING], id="default-publishes-both-kinds"),
        pytest.param(
            {"cluster_trust_bundles": False},
            [CM_SERVING],
            id="cluster-trust-bundles-off-publishes-configmaps-only",
        ),
        pytest.param(
            {"namespaces": ()}, [CTB_KNATIVE, CTB_LOCAL], id="no-namespaces-no-configmaps"
        ),
    ],
)
def test_what_is_published_follows_the_targets(
    overrides: dict[str, Any], expected: list[ObjectKey]
) -> None:
    assert sorted(desired_objects(same(BUNDLE), targets(**overrides))) == sorted(expected)


def test_each_bundle_records_the_configmaps_published_alongside() -> None:
    desired = desired_objects(
        same(BUNDLE), targets(namespaces=("knative-serving", "knative-eventing"))
    )
    annotations = desired[CTB_LOCAL]["metadata"]["annotations"]
    assert annotations == {
        CONFIGMAPS_ANNOTATION: "knative-eventing/csr-signer-trust-bundle,"
        "knative-serving/csr-signer-trust-bundle"
    }


@pytest.mark.parametrize(
    ("bundle", "problem"),
    [
        pytest.param(b"", "no certificate", id="empty-bundle-is-never-published"),
        pytest.param(BUNDLE + CA1.key_pem, "private key", id="key-material-is-never-published"),
    ],
)
def test_refuses_to_publish(bundle: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        desired_objects(same(bundle), targets())


@pytest.mark.parametrize(
    "instance",
    [
        pytest.param("", id="empty-instance-is-not-a-label-value"),
        pytest.param("a/b", id="slash-is-not-allowed-in-a-label-value"),
        pytest.param("x" * 64, id="instance-longer-than-63-is-not-a-label-value"),
    ],
)
def test_instance_must_be_a_label_value(instance: str) -> None:
    with pytest.raises(ValueError, match="label value"):
        targets(instance=instance)


# --- the rotation, as bundle contents --------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "published"),
    [
        pytest.param(
            {"tls.crt": CA1.cert_pem, "tls.key": CA1.key_pem},
            ["CN=CA1"],
            id="1-start-bundle-is-the-active-root",
        ),
        pytest.param(
            {"tls.crt": CA1.cert_pem, "tls.key": CA1.key_pem, "next-ca.crt": CA2.cert_pem},
            ["CN=CA1", "CN=CA2"],
            id="2-next-ca-is-published-before-it-signs",
        ),
        pytest.param(
            {"tls.crt": CA2.cert_pem, "tls.key": CA2.key_pem, "ca.crt": pem(CA2.cert, CA1.cert)},
            ["CN=CA2", "CN=CA1"],
            id="3-after-the-switch-the-old-root-is-still-trusted",
        ),
        pytest.param(
            {"tls.crt": CA2.cert_pem, "tls.key": CA2.key_pem, "ca.crt": CA2.cert_pem},
            ["CN=CA2"],
            id="4-after-the-grace-period-only-the-new-root-remains",
        ),
    ],
)
def test_rotation_step_publishes(secret: dict[str, bytes], published: list[str]) -> None:
    bundle = load_ca_from_secret_data(secret, now=NOW).trust_bundle_pem()
    desired = desired_objects(same(bundle), targets())
    assert subjects(desired[CTB_LOCAL]["spec"]["trustBundle"]) == published
    assert subjects(desired[CTB_KNATIVE]["spec"]["trustBundle"]) == published
    assert subjects(desired[CM_SERVING]["data"]["ca.crt"]) == published


# --- the diff --------------------------------------------------------------------------

DESIRED = desired_objects(same(BUNDLE), targets())
NEW_DESIRED = desired_objects(same(pem(CA1.cert, CA2.cert)), targets())
OTHER = {MANAGED_BY_LABEL: "csr-signer", INSTANCE_LABEL: "other-install"}
STALE_CTB = ObjectKey(CLUSTER_TRUST_BUNDLE, "", "csr-signer.dev:retired:bundle")
STALE_CM = ObjectKey(CONFIG_MAP, "old-namespace", "csr-signer-trust-bundle")


def stale(key: ObjectKey, labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": key.name, "resourceVersion": "3"}
    if key.namespace:
        metadata["namespace"] = key.namespace
    metadata["labels"] = labels if labels is not None else DESIRED[CTB_LOCAL]["metadata"]["labels"]
    return {"metadata": metadata}


def actions(observed: dict[ObjectKey, dict[str, Any]], desired: Any = DESIRED) -> list[str]:
    result = plan(desired, observed, instance="csr-signer")
    listed = [f"{c.action} {c.key}" for c in result.changes]
    return listed + [f"refuse {k}" for k in result.refused]


UP_TO_DATE = {k: as_observed(v) for k, v in DESIRED.items()}


@pytest.mark.parametrize(
    ("observed", "desired", "expected"),
    [
        pytest.param(
            {},
            DESIRED,
            [f"create {k}" for k in sorted(DESIRED)],
            id="missing-objects-are-created",
        ),
        pytest.param(UP_TO_DATE, DESIRED, [], id="up-to-date-objects-are-left-alone"),
        pytest.param(
            UP_TO_DATE,
            NEW_DESIRED,
            [f"update {k}" for k in sorted(DESIRED)],
            id="a-new-ca-updates-every-object-in-place",
        ),
        pytest.param(
            {**UP_TO_DATE, STALE_CTB: stale(STALE_CTB)},
            DESIRED,
            [f"delete {STALE_CTB}"],
            id="our-bundle-for-a-signer-no-longer-served-is-deleted",
        ),
        pytest.param(
            {**UP_TO_DATE, STALE_CM: stale(STALE_CM)},
            DESIRED,
            [f"delete {STALE_CM}"],
            id="our-configmap-in-a-namespace-no-longer-configured-is-deleted",
        ),
        pytest.param(
            {**UP_TO_DATE, STALE_CTB: stale(STALE_CTB, OTHER)},
            DESIRED,
            [],
            id="another-installations-unwanted-bundle-is-never-deleted",
        ),
        pytest.param(
            {**UP_TO_DATE, CM_SERVING: as_observed(DESIRED[CM_SERVING], labels=OTHER)},
            DESIRED,
            [f"update {CM_SERVING}"],
            id="another-installations-object-at-our-name-is-adopted",
        ),
        pytest.param(
            {**UP_TO_DATE, CM_SERVING: as_observed(DESIRED[CM_SERVING], labels={})},
            DESIRED,
            [f"refuse {CM_SERVING}"],
            id="an-unmanaged-object-at-our-name-is-never-overwritten",
        ),
        pytest.param(
            {
                **UP_TO_DATE,
                CM_SERVING: as_observed(DESIRED[CM_SERVING], labels={MANAGED_BY_LABEL: "x"}),
            },
            DESIRED,
            [f"refuse {CM_SERVING}"],
            id="an-object-managed-by-another-tool-is-never-overwritten",
        ),
        pytest.param(
            {
                k: as_observed(v, labels={**v["metadata"]["labels"], "team": "a"})
                for k, v in DESIRED.items()
            },
            DESIRED,
            [],
            id="labels-others-added-do-not-count-as-drift",
        ),
        pytest.param(
            {**UP_TO_DATE, STALE_CM: stale(STALE_CM)},
            NEW_DESIRED,
            [*(f"update {k}" for k in sorted(DESIRED)), f"delete {STALE_CM}"],
            id="writes-come-before-deletes",
        ),
    ],
)
def test_plan(observed: dict[ObjectKey, dict[str, Any]], desired: Any, expected: list[str]) -> None:
    assert actions(observed, desired) == expected


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda o: o["data"].update({"ca.crt": "edited"}), id="edited-pem"),
        pytest.param(lambda o: o["data"].update({"extra": "x"}), id="extra-data-key-is-dropped"),
        pytest.param(
            lambda o: o.update({"binaryData": {"x": "eA=="}}), id="binary-data-is-dropped"
        ),
        pytest.param(
            lambda o: o["metadata"]["labels"].pop(KNATIVE_TRUST_LABEL),
            id="removed-knative-label-is-restored",
        ),
    ],
)
def test_configmap_drift_is_repaired_keeping_what_others_set(mutate: Any) -> None:
    observed = as_observed(DESIRED[CM_SERVING], annotations={"note": "kept"})
    observed["metadata"]["labels"]["team"] = "kept"
    mutate(observed)
    (change,) = plan(
        {CM_SERVING: DESIRED[CM_SERVING]}, {CM_SERVING: observed}, instance="x"
    ).changes
    assert change.action == "update"
    assert change.body["data"] == {"ca.crt": BUNDLE.decode()}
    assert "binaryData" not in change.body
    assert change.body["metadata"]["resourceVersion"] == "7", "optimistic concurrency"
    assert change.body["metadata"]["annotations"] == {"note": "kept"}
    assert change.body["metadata"]["labels"]["team"] == "kept"
    assert change.body["metadata"]["labels"][KNATIVE_TRUST_LABEL] == "true"


def test_bundle_drift_in_the_pem_is_repaired() -> None:
    observed = as_observed(DESIRED[CTB_LOCAL])
    observed["spec"]["trustBundle"] = CA2.cert_pem.decode()
    del observed["apiVersion"], observed["kind"]  # list items carry neither
    (change,) = plan({CTB_LOCAL: DESIRED[CTB_LOCAL]}, {CTB_LOCAL: observed}, instance="x").changes
    assert change.body["spec"]["trustBundle"] == BUNDLE.decode()
    assert (change.body["apiVersion"], change.body["kind"]) == (
        "certificates.k8s.io/v1beta1",
        "ClusterTrustBundle",
    )


def test_delete_carries_the_observed_resource_version_for_its_precondition() -> None:
    (change,) = plan({}, {STALE_CM: stale(STALE_CM)}, instance="csr-signer").changes
    assert change.action == "delete"
    assert change.body["metadata"]["resourceVersion"] == "3"


# --- the record of published ConfigMaps ------------------------------------------------


def bundle_with_record(record: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    body = as_observed(DESIRED[CTB_LOCAL])
    body["metadata"]["annotations"] = {CONFIGMAPS_ANNOTATION: record}
    if labels is not None:
        body["metadata"]["labels"] = labels
    return body


@pytest.mark.parametrize(
    ("bundles", "expected"),
    [
        pytest.param(
            [bundle_with_record("old-namespace/csr-signer-trust-bundle")],
            {STALE_CM},
            id="our-bundles-name-the-configmaps-to-look-at",
        ),
        pytest.param(
            [bundle_with_record("old-namespace/csr-signer-trust-bundle", OTHER)],
            set(),
            id="another-installations-record-is-ignored",
        ),
        pytest.param(
            [bundle_with_record("no-slash, /no-namespace, ns/, a/b/c, ,")],
            set(),
            id="malformed-entries-are-skipped",
        ),
        pytest.param([bundle_with_record("")], set(), id="empty-record-names-nothing"),
    ],
)
def test_recorded_configmaps(bundles: list[dict[str, Any]], expected: set[ObjectKey]) -> None:
    assert recorded_configmaps(bundles, "csr-signer") == expected


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "argv", "namespaces"),
    [
        pytest.param({}, [], (), id="no-trust-namespaces-by-default"),
        pytest.param(
            {"CSR_SIGNER_TRUST_BUNDLE_NAMESPACES": "knative-serving, knative-eventing"},
            [],
            ("knative-serving", "knative-eventing"),
            id="env-is-comma-separated",
        ),
        pytest.param(
            {"CSR_SIGNER_TRUST_BUNDLE_NAMESPACES": "ignored"},
            ["--trust-bundle-namespace", "a", "--trust-bundle-namespace", "b,a"],
            ("a", "b"),
            id="flag-is-repeatable-overrides-env-and-drops-duplicates",
        ),
    ],
)
def test_trust_bundle_namespaces_setting(
    env: dict[str, str], argv: list[str], namespaces: tuple[str, ...]
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = load_settings(parser.parse_args(argv), env=env)
    assert settings.trust_bundle_namespaces == namespaces
    assert settings.trust_bundle_configmap_name == "csr-signer-trust-bundle"
    assert settings.trust_bundle_configmap_key == "ca.crt"
    assert settings.cluster_trust_bundles is True


@pytest.mark.parametrize(
    ("env", "field"),
    [
        pytest.param(
            {"CSR_SIGNER_TRUST_BUNDLE_NAMESPACES": "Knative_Serving"},
            "trust_bundle_namespaces",
            id="namespace-must-be-a-dns-label",
        ),
        pytest.param(
            {"CSR_SIGNER_TRUST_BUNDLE_CONFIGMAP_NAME": "Bad Name"},
            "trust_bundle_configmap_name",
            id="configmap-name-must-be-a-dns-subdomain",
        ),
        pytest.param(
            {"CSR_SIGNER_TRUST_BUNDLE_CONFIGMAP_KEY": "ca/crt"},
            "trust_bundle_configmap_key",
            id="configmap-key-must-be-a-valid-key",
        ),
    ],
)
def test_invalid_trust_settings_are_rejected_naming_the_field(
    env: dict[str, str], field: str
) -> None:
    with pytest.raises(ConfigError, match=f"{field} \\(CSR_SIGNER_{field.upper()}"):
        load_settings(env=env)


def test_cluster_trust_bundles_can_be_turned_off() -> None:
    settings = load_settings(env={"CSR_SIGNER_CLUSTER_TRUST_BUNDLES": "false"})
    assert settings.cluster_trust_bundles is False


# --- purity ----------------------------------------------------------------------------


def test_pure_module_imports_no_api_client_or_network() -> None:
    """Until signer.trust joins the import-linter contract in pyproject.toml."""
    source = Path(__file__).resolve().parents[2] / "signer" / "trust.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    forbidden = ("kubernetes_asyncio", "aiohttp", "signer.kube", "signer.reactor", "signer.local")
    assert not [m for m in imported if m.startswith(forbidden)]


def test_a_signer_without_a_ca_keeps_its_objects_while_the_others_publish() -> None:
    local_only = {SIGNERS[0]: pem(CA2.cert)}  # knative-internal's CA is broken
    desired = desired_objects(local_only, targets())
    held = held_objects(local_only, targets())
    assert sorted(desired) == [CTB_LOCAL], "no ConfigMap: it carries knative-internal's CA"
    assert held == {CTB_KNATIVE, CM_SERVING}
    observed = {key: as_observed(body) for key, body in DESIRED.items()}
    changes = plan(desired, observed, instance="csr-signer", held=held)
    assert [(c.action, c.key) for c in changes.changes] == [("update", CTB_LOCAL)]
