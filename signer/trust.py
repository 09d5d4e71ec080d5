"""Trust distribution: which trust-bundle objects should exist, and the diff to get there. Pure.

Clients verify our certificates against a trust bundle: the active CA root(s)
and, during a rotation, the next CA (`CaBundle.trust_bundle_pem`). Publishing
that bundle where consumers look is what makes a rotation possible without
downtime (see docs/rotation.md), so it is published to two places:

* one ClusterTrustBundle (certificates.k8s.io/v1beta1) per signer name,
  linked to it by ``spec.signerName``. The apiserver requires a linked
  bundle's name to start with the signer name, ``/`` replaced by ``:``, then
  ``:``; ours end in ``:bundle``. Pods project it with a
  ``clusterTrustBundle`` volume source (signerName + labelSelector).
* one ConfigMap per configured namespace, labeled
  ``networking.knative.dev/trust-bundle: "true"``: what Knative's system
  components read their extra trust from. It carries one signer's CA
  (``TrustTargets.configmap_signer``), because Knative trusts it for everything.

Each signer name has its own CA (``--signer-ca``), and each object carries only
that signer's bundle: trust never crosses from one signer to another.

Ownership is by label, because stale objects must be found again after a
restart: everything carries ``app.kubernetes.io/managed-by: csr-signer``
plus ``csr-signer.dev/instance: <instance>`` (the installation's namespace).
Rules of `plan`:

* an object we want that is missing is created; one that differs in content
  or in our labels is updated in place (its other labels, annotations and
  resourceVersion are kept, so the write is optimistic-concurrency safe);
* an object at a wanted name that is *not* labeled managed-by csr-signer is
  never overwritten (`Plan.refused`): someone else put it there;
* an object labeled by another installation (instance differs) at a wanted
  name is adopted, but never deleted when unwanted: two installations in one
  cluster must not garbage-collect each other;
* writes come before deletes, so trust is added before anything is removed.

The controller may not list ConfigMaps cluster-wide (least privilege: Knative
keeps its configuration in ConfigMaps next to ours), so it cannot discover a
ConfigMap left in a namespace that is no longer configured. Instead, each
ClusterTrustBundle records the ConfigMaps published alongside it in the
annotation ``csr-signer.dev/trust-bundle-configmaps`` (``ns/name,...``);
`recorded_configmaps` reads it back so the next sync can look at exactly those
and delete the ones no longer wanted. This is best effort: without
ClusterTrustBundles there is no record, and once the operator has removed the
namespace's Role the delete is forbidden.

This module never imports the API client: the kube layer observes objects as
JSON dicts, passes them in, and applies the `Plan` it gets back.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "csr-signer"
INSTANCE_LABEL = "csr-signer.dev/instance"
KNATIVE_TRUST_LABEL = "networking.knative.dev/trust-bundle"
CONFIGMAPS_ANNOTATION = "csr-signer.dev/trust-bundle-configmaps"

CLUSTER_TRUST_BUNDLE: Final = "ClusterTrustBundle"
CONFIG_MAP: Final = "ConfigMap"
CTB_API_VERSION = "certificates.k8s.io/v1beta1"
CTB_SUFFIX = "bundle"

Kind = Literal["ClusterTrustBundle", "ConfigMap"]
Action = Literal["create", "update", "delete"]
JsonObject = dict[str, Any]

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    """Identifies one published object; ``namespace`` is empty for cluster-scoped kinds."""

    kind: Kind
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


@dataclass(frozen=True, slots=True)
class TrustTargets:
    """Where the bundle goes; built from `Settings` by the kube layer."""

    signer_names: tuple[str, ...]
    namespaces: tuple[str, ...]
    configmap_name: str
    configmap_key: str
    instance: str
    """Value of the instance label: scopes garbage collection to this installation."""
    cluster_trust_bundles: bool = True
    configmap_signer: str | None = None
    """Whose CA the ConfigMaps carry: a Knative trust-bundle ConfigMap is trusted for
    everything, so it holds one signer's CA, never a mix. Required with namespaces."""

    def __post_init__(self) -> None:
        if not _LABEL_VALUE.fullmatch(self.instance):
            raise ValueError(f"instance must be a valid label value, got {self.instance!r}")
        if self.namespaces and self.configmap_signer not in self.signer_names:
            raise ValueError(
                f"configmap_signer must be one of {self.signer_names}, "
                f"got {self.configmap_signer!r}"
            )


@dataclass(frozen=True, slots=True)
class Change:
    """One write. For create/update `body` is the full object to send; for delete it is
    the observed object, whose resourceVersion becomes the delete's precondition."""

    action: Action
    key: ObjectKey
    body: JsonObject


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]
    """Creates and updates first, then deletes; each group sorted by key."""
    unchanged: tuple[ObjectKey, ...] = ()
    refused: tuple[ObjectKey, ...] = ()
    """Wanted names held by objects we do not manage: left alone, reported."""


def cluster_trust_bundle_name(signer_name: str, suffix: str = CTB_SUFFIX) -> str:
    """The apiserver only accepts ``<signer, '/' -> ':'>:<suffix>`` for a linked bundle."""
    return f"{signer_name.replace('/', ':')}:{suffix}"


def owner_labels(instance: str) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, INSTANCE_LABEL: instance}


def owner_selector() -> str:
    """Label selector for every installation's objects (stale ones are filtered by instance)."""
    return f"{MANAGED_BY_LABEL}={MANAGED_BY}"


def check_bundle(bundle_pem: bytes) -> str:
    """The PEM as text, or ValueError: never publish an empty bundle or key material.

    An empty bundle would make every consumer distrust every certificate, and
    the apiserver rejects a ClusterTrustBundle without a trust anchor anyway.
    """
    if _PEM_CERT not in bundle_pem:
        raise ValueError("the trust bundle holds no certificate")
    if b"PRIVATE KEY" in bundle_pem:
        raise ValueError("the trust bundle contains a private key")
    return bundle_pem.decode("ascii")


def desired_objects(
    bundles: Mapping[str, bytes], targets: TrustTargets
) -> dict[ObjectKey, JsonObject]:
    """Every object that should exist, with its full body.

    `bundles` maps each signer name to its own CA's trust bundle: a signer's
    ClusterTrustBundle carries only that, so a certificate from one signer never
    verifies against another signer's bundle. A signer without a bundle (its CA is
    missing or invalid) gets nothing here; `held_objects` names what must then be
    left alone rather than deleted.
    """
    pems = {
        signer: check_bundle(bundles[signer])
        for signer in targets.signer_names
        if signer in bundles
    }
    labels = owner_labels(targets.instance)
    objects: dict[ObjectKey, JsonObject] = {}
    configmaps = sorted(
        ObjectKey(CONFIG_MAP, namespace, targets.configmap_name)
        for namespace in dict.fromkeys(targets.namespaces)
    )
    for key in configmaps if targets.configmap_signer in pems else ():
        objects[key] = {
            "apiVersion": "v1",
            "kind": CONFIG_MAP,
            "metadata": {
                "name": key.name,
                "namespace": key.namespace,
                "labels": {**labels, KNATIVE_TRUST_LABEL: "true"},
            },
            "data": {targets.configmap_key: pems[str(targets.configmap_signer)]},
        }
    if targets.cluster_trust_bundles:
        record = ",".join(f"{k.namespace}/{k.name}" for k in configmaps)
        for signer in dict.fromkeys(s for s in targets.signer_names if s in pems):
            name = cluster_trust_bundle_name(signer)
            objects[ObjectKey(CLUSTER_TRUST_BUNDLE, "", name)] = {
                "apiVersion": CTB_API_VERSION,
                "kind": CLUSTER_TRUST_BUNDLE,
                "metadata": {
                    "name": name,
                    "labels": dict(labels),
                    "annotations": {CONFIGMAPS_ANNOTATION: record},
                },
                "spec": {"signerName": signer, "trustBundle": pems[signer]},
            }
    return objects


def held_objects(bundles: Mapping[str, bytes], targets: TrustTargets) -> frozenset[ObjectKey]:
    """What a signer without a bundle has published: kept as it is, never deleted.

    One signer's broken CA Secret must not stop the others' publishing (a rotation of
    another signer would break its clients), nor take away the trust its own
    consumers still need for certificates issued before the CA broke.
    """
    held = {
        ObjectKey(CLUSTER_TRUST_BUNDLE, "", cluster_trust_bundle_name(signer))
        for signer in targets.signer_names
        if signer not in bundles and targets.cluster_trust_bundles
    }
    if targets.configmap_signer not in bundles:
        held.update(
            ObjectKey(CONFIG_MAP, namespace, targets.configmap_name)
            for namespace in targets.namespaces
        )
    return frozenset(held)


def recorded_configmaps(
    cluster_trust_bundles: Iterable[Mapping[str, Any]], instance: str
) -> frozenset[ObjectKey]:
    """The ConfigMaps that this installation's bundles say were published.

    Malformed entries are skipped: the annotation is ours, but a person may
    have edited it, and a bad record must not stop publishing.
    """
    found: set[ObjectKey] = set()
    for obj in cluster_trust_bundles:
        metadata = obj.get("metadata") or {}
        if not _is_ours(metadata, instance):
            continue
        record = str((metadata.get("annotations") or {}).get(CONFIGMAPS_ANNOTATION) or "")
        for entry in record.split(","):
            namespace, slash, name = entry.strip().partition("/")
            if slash and namespace and name and "/" not in name:
                found.add(ObjectKey(CONFIG_MAP, namespace, name))
    return frozenset(found)


def plan(
    desired: Mapping[ObjectKey, JsonObject],
    observed: Mapping[ObjectKey, Mapping[str, Any]],
    *,
    instance: str,
    held: frozenset[ObjectKey] = frozenset(),
) -> Plan:
    """The writes that turn `observed` into `desired` (see the module docstring for rules).

    `observed` holds whatever the kube layer could see: objects listed by the
    owner label, plus wanted or recorded names read one by one. Keys absent
    from it are taken as absent from the cluster.
    """
    writes: list[Change] = []
    deletes: list[Change] = []
    unchanged: list[ObjectKey] = []
    refused: list[ObjectKey] = []
    for key in sorted(desired):
        want = desired[key]
        have = observed.get(key)
        if have is None:
            writes.append(Change("create", key, copy.deepcopy(want)))
        elif not _is_managed(have.get("metadata") or {}):
            refused.append(key)
        elif _differs(key.kind, want, have):
            writes.append(Change("update", key, _merged(key.kind, want, have)))
        else:
            unchanged.append(key)
    for key in sorted(observed.keys() - desired.keys() - held):
        have = observed[key]
        if _is_ours(have.get("metadata") or {}, instance):
            deletes.append(Change("delete", key, copy.deepcopy(dict(have))))
    return Plan(changes=(*writes, *deletes), unchanged=tuple(unchanged), refused=tuple(refused))


def _is_managed(metadata: Mapping[str, Any]) -> bool:
    return (metadata.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY


def _is_ours(metadata: Mapping[str, Any], instance: str) -> bool:
    labels = metadata.get("labels") or {}
    return _is_managed(metadata) and labels.get(INSTANCE_LABEL) == instance


def _content(kind: Kind, obj: Mapping[str, Any]) -> object:
    if kind == CLUSTER_TRUST_BUNDLE:
        spec = obj.get("spec") or {}
        return (spec.get("signerName"), spec.get("trustBundle"))
    return (obj.get("data") or {}, obj.get("binaryData") or {})


def _differs(kind: Kind, want: Mapping[str, Any], have: Mapping[str, Any]) -> bool:
    if _content(kind, want) != _content(kind, have):
        return True
    for part in ("labels", "annotations"):
        mine: Mapping[str, str] = want["metadata"].get(part) or {}
        theirs: Mapping[str, str] = (have.get("metadata") or {}).get(part) or {}
        if any(theirs.get(k) != v for k, v in mine.items()):
            return True
    return False


def _merged(kind: Kind, want: Mapping[str, Any], have: Mapping[str, Any]) -> JsonObject:
    """`have` with our content, labels and annotations: a replace that keeps what others set."""
    body: JsonObject = copy.deepcopy(dict(have))
    body["apiVersion"], body["kind"] = want["apiVersion"], want["kind"]
    metadata = body.setdefault("metadata", {})
    for part in ("labels", "annotations"):
        if want["metadata"].get(part):
            metadata[part] = {**(metadata.get(part) or {}), **want["metadata"][part]}
    if kind == CLUSTER_TRUST_BUNDLE:
        body["spec"] = copy.deepcopy(want["spec"])
    else:
        body["data"] = copy.deepcopy(want["data"])
        body.pop("binaryData", None)
    return body
