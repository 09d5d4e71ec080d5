"""Reconcile one PodCertificateRequest against an in-memory API: the decision table."""

from __future__ import annotations

import base64
import copy
import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from signer.kube.errors import ApiError, Conflict, ServerError
from signer.pki.ca import CaBundle, generate_root, load_ca
from signer.pki.signing import SigningLimits
from signer.policy import PolicySet, bundled_policies_dir, load_policies
from signer.reactor.cache import CsrCache
from signer.reactor.pods import (
    PodReconciler,
    is_final_pcr,
    is_pcr_key,
    pcr_key,
    pcr_lane,
    split_key,
)
from signer.reactor.queueing import WorkQueue
from signer.reactor.reconcile import Snapshot
from tests.component.fakeapi import RecordingMetrics

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
KNATIVE = "csr-signer.dev/knative-internal"
CLUSTER_LOCAL = "csr-signer.dev/cluster-local"
SIGNERS = frozenset({CLUSTER_LOCAL, KNATIVE})
LIMITS = SigningLimits(max_duration=dt.timedelta(days=30), default_duration=dt.timedelta(days=1))


def stub(key: Any) -> str:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    der = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, algorithm)
        .public_bytes(serialization.Encoding.DER)
    )
    return base64.b64encode(der).decode()


P256 = ec.generate_private_key(ec.SECP256R1())
P521 = ec.generate_private_key(ec.SECP521R1())


def make_pcr(
    name: str = "req-1",
    namespace: str = "shop",
    *,
    signer: str = KNATIVE,
    key: Any = P256,
    annotations: dict[str, str] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "certificates.k8s.io/v1beta1",
        "kind": "PodCertificateRequest",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "resourceVersion": "1",
            "creationTimestamp": "2026-11-23T11:59:58Z",
        },
        "spec": {
            "signerName": signer,
            "podName": "web-0",
            "podUID": "pod-uid-1",
            "serviceAccountName": "web",
            "serviceAccountUID": "sa-uid-1",
            "nodeName": "node-1",
            "nodeUID": "node-uid-1",
            "maxExpirationSeconds": 86400,
            "stubPKCS10Request": stub(key),
            "pkixPublicKey": None,
            "proofOfPossession": None,
            **({"unverifiedUserAnnotations": annotations} if annotations else {}),
            **spec,
        },
        "status": {"conditions": conditions} if conditions else {},
    }


class FakePcrApi:
    """PCRs by (namespace, name); `/status` PUTs check resourceVersion and terminal freeze."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.writes: list[str] = []
        self.fail_next: list[ApiError] = []

    def add(self, raw: dict[str, Any]) -> dict[str, Any]:
        metadata = raw["metadata"]
        self.objects[(metadata["namespace"], metadata["name"])] = copy.deepcopy(raw)
        return copy.deepcopy(raw)

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        raw = self.objects.get((namespace, name))
        return copy.deepcopy(raw) if raw is not None else None

    async def write_status(self, raw: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        if self.fail_next:
            raise self.fail_next.pop(0)
        metadata = raw["metadata"]
        stored = self.objects[(metadata["namespace"], metadata["name"])]
        if stored["metadata"]["resourceVersion"] != metadata["resourceVersion"]:
            raise Conflict("409 Conflict", 409)
        if is_final_pcr(stored):
            raise ApiError("422 Invalid: status is immutable", 422)
        stored["status"] = copy.deepcopy(status)
        stored["metadata"]["resourceVersion"] = str(int(metadata["resourceVersion"]) + 1)
        self.writes.append(status["conditions"][0]["type"])
        return copy.deepcopy(stored)

    async def event(self, raw: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((raw["metadata"]["name"], reason, message))


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies(bundled_policies_dir())


@pytest.fixture(scope="module")
def ca() -> CaBundle:
    cert, key = generate_root("test root", "ecdsa-p256", 365, NOW - dt.timedelta(days=1))
    return load_ca(cert, key, now=NOW)


class Harness:
    def __init__(self, policies: PolicySet | None, ca: CaBundle | None) -> None:
        self.api = FakePcrApi()
        self.cache = CsrCache(key=pcr_key, final=is_final_pcr)
        self.queue = WorkQueue(base_delay=10.0)  # retries must not fire during a test
        self.metrics = RecordingMetrics()
        self.snapshot = Snapshot(
            policies=policies,
            cas=dict.fromkeys(SIGNERS, ca),
            limits=LIMITS,
            cluster_domain="cluster.local",
        )
        self.reconciler = PodReconciler(
            signer_names=SIGNERS,
            cache=self.cache,
            queue=self.queue,
            writer=self.api,
            snapshot=lambda: self.snapshot,
            metrics=self.metrics,
            clock=lambda: NOW,
        )

    async def run(self, raw: dict[str, Any]) -> dict[str, Any]:
        self.cache.apply("ADDED", self.api.add(raw))
        await self.reconciler(pcr_key(raw))
        metadata = raw["metadata"]
        return self.api.objects[(metadata["namespace"], metadata["name"])]


@pytest.fixture
def h(policies: PolicySet, ca: CaBundle) -> Harness:
    return Harness(policies, ca)


def condition(raw: dict[str, Any]) -> tuple[str, str] | None:
    conditions = (raw.get("status") or {}).get("conditions") or []
    return (conditions[0]["type"], conditions[0]["reason"]) if conditions else None


@pytest.mark.parametrize(
    ("pcr", "expected", "event"),
    [
        pytest.param(make_pcr(), ("Issued", "Issued"), "Issued", id="own-namespace-name-is-issued"),
        pytest.param(
            make_pcr(annotations={"csr-signer.dev/dns-names": "kn-user-other"}),
            ("Denied", "PolicyViolation"),
            "Denied",
            id="another-namespaces-name-by-annotation-is-denied",
        ),
        pytest.param(
            make_pcr(annotations={"example.com/whatever": "x"}),
            ("Denied", "InvalidUnverifiedUserAnnotations"),
            "Denied",
            id="unknown-annotation-is-denied",
        ),
        pytest.param(
            make_pcr(key=P521),
            ("Denied", "UnsupportedKeyType"),
            "Denied",
            id="key-outside-the-policy-keys-is-unsupported-key-type",
        ),
        pytest.param(
            make_pcr(signer=CLUSTER_LOCAL),
            ("Denied", "NoPolicy"),
            "Denied",
            id="no-podcertificate-policy-is-denied-nopolicy",
        ),
        pytest.param(
            make_pcr(stubPKCS10Request="not base64!"),
            ("Denied", "UnsupportedKeyType"),
            "Denied",
            id="unreadable-key-is-denied-as-a-key-problem",
        ),
        pytest.param(
            make_pcr(maxExpirationSeconds=600),
            ("Failed", "LifetimeTooShort"),
            "SigningFailed",
            id="issuance-refusal-that-is-not-about-the-key-fails",
        ),
        pytest.param(
            make_pcr(signer="example.com/other"),
            None,
            None,
            id="other-signer-is-left-alone",
        ),
        pytest.param(
            make_pcr(conditions=[{"type": "Denied", "status": "True", "reason": "X"}]),
            ("Denied", "X"),
            None,
            id="final-pcr-is-never-touched",
        ),
    ],
)
async def test_decision_table(
    h: Harness, pcr: dict[str, Any], expected: tuple[str, str] | None, event: str | None
) -> None:
    raw = await h.run(copy.deepcopy(pcr))
    assert condition(raw) == expected
    assert [e[1] for e in h.api.events] == ([event] if event else [])
    if expected and expected[0] != "Issued" and event:
        assert set(raw["status"]) == {"conditions"}  # no chain or times on Denied/Failed
        assert raw["status"]["conditions"][0]["lastTransitionTime"] == "2026-11-23T12:00:00Z"


async def test_issued_status_carries_the_leaf_of_the_requested_key(h: Harness) -> None:
    raw = await h.run(make_pcr())
    status = raw["status"]
    leaf = x509.load_pem_x509_certificates(status["certificateChain"].encode())[0]
    assert leaf.public_key() == P256.public_key()
    assert status["notBefore"] == "2026-11-23T11:59:00Z", "backdated 1 minute"
    assert status["conditions"][0]["lastTransitionTime"] == "2026-11-23T12:00:00Z"
    assert leaf.not_valid_after_utc == dt.datetime.fromisoformat(status["notAfter"])
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["kn-user-shop"]
    assert h.metrics.calls == [
        ("decision", "pcr", "approve", "knative-system-internal"),
        ("issued", "pcr"),
        ("latency", "pcr"),
    ]


async def test_no_ca_waits_and_retries_instead_of_failing(policies: PolicySet) -> None:
    h = Harness(policies, None)
    raw = await h.run(make_pcr())
    assert condition(raw) is None
    assert h.queue.depth == 1  # a retry is scheduled


async def test_policies_not_loaded_waits(ca: CaBundle) -> None:
    h = Harness(None, ca)
    raw = await h.run(make_pcr())
    assert condition(raw) is None and h.queue.depth == 1


async def test_conflict_rereads_and_decides_on_the_fresh_copy(h: Harness) -> None:
    pcr = make_pcr()
    h.cache.apply("ADDED", h.api.add(pcr))
    h.api.objects[("shop", "req-1")]["metadata"]["resourceVersion"] = "2"  # changed behind us
    await h.reconciler(pcr_key(pcr))
    assert h.api.writes == []
    assert h.cache.get(pcr_key(pcr))["metadata"]["resourceVersion"] == "2"  # type: ignore[index]
    await h.reconciler(pcr_key(pcr))
    assert h.api.writes == ["Issued"]


async def test_api_error_retries_with_backoff(h: Harness) -> None:
    h.api.fail_next.append(ServerError("500", 500))
    raw = await h.run(make_pcr())
    assert condition(raw) is None and h.queue.depth == 1


async def test_a_decided_pcr_leaves_the_cache_and_is_decided_once(h: Harness) -> None:
    pcr = make_pcr()
    await h.run(pcr)
    assert h.cache.get(pcr_key(pcr)) is None
    await h.reconciler(pcr_key(pcr))
    assert h.api.writes == ["Issued"] and len(h.api.events) == 1


@pytest.mark.parametrize(
    ("raw", "key", "lane"),
    [
        pytest.param(make_pcr("a", "ns1"), "pcr:ns1/a", "namespace:ns1", id="key-is-ns-and-name"),
        pytest.param({"metadata": {}}, "", "namespace:", id="nameless-object-has-no-key"),
    ],
)
def test_keys_never_collide_with_csr_names(raw: dict[str, Any], key: str, lane: str) -> None:
    assert pcr_key(raw) == key
    if key:
        assert is_pcr_key(key) and split_key(key) == ("ns1", "a") and pcr_lane(key) == lane
