"""Reconcile one CSR against an in-memory API: the decision table and its faults."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json

import pytest
from cryptography import x509

from signer.kube.errors import ServerError
from signer.pki.ca import CaBundle, generate_root, load_ca
from signer.pki.signing import SigningLimits
from signer.policy import PolicySet, bundled_policies_dir, load_policies
from signer.reactor.cache import CsrCache
from signer.reactor.queueing import WorkQueue
from signer.reactor.reconcile import DEFAULT_CAPS, Reconciler, RequestCaps, Snapshot
from tests.component.fakeapi import FakeCsrApi, RecordingMetrics, make_raw
from tests.data.csrs import KeyType, build_csr_pem

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
SIGNERS = frozenset({"csr-signer.dev/cluster-local", "csr-signer.dev/knative-internal"})
SERVING = ("digital signature", "key encipherment", "server auth")
LIMITS = SigningLimits(max_duration=dt.timedelta(days=30), default_duration=dt.timedelta(days=1))


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies(bundled_policies_dir())


@pytest.fixture(scope="module")
def ca() -> CaBundle:
    cert, key = generate_root("test root", "ecdsa-p256", 365, NOW - dt.timedelta(days=1))
    return load_ca(cert, key, now=NOW)


UNCAPPED = RequestCaps(max_request_bytes=1 << 20, max_sans=10_000)
"""For tests of what lies behind the caps."""


class Harness:
    def __init__(
        self, policies: PolicySet | None, ca: CaBundle | None, caps: RequestCaps = DEFAULT_CAPS
    ) -> None:
        self.api = FakeCsrApi()
        self.cache = CsrCache()
        self.queue = WorkQueue(base_delay=10.0)  # retries must not fire during a test
        self.metrics = RecordingMetrics()
        self.snapshot = Snapshot(
            policies=policies,
            cas=dict.fromkeys(SIGNERS, ca),
            limits=LIMITS,
            cluster_domain="cluster.local",
        )
        self.reconciler = Reconciler(
            signer_names=SIGNERS,
            cache=self.cache,
            queue=self.queue,
            writer=self.api,
            snapshot=lambda: self.snapshot,
            metrics=self.metrics,
            clock=lambda: NOW,
            caps=caps,
        )

    async def run(self, raw: dict[str, object]) -> dict[str, object]:
        name = raw["metadata"]["name"]  # type: ignore[index]
        self.cache.apply("ADDED", self.api.add(raw))  # type: ignore[arg-type]
        await self.reconciler(name)
        return self.api.objects[name]

    def conditions(self, name: str) -> list[str]:
        return [c["type"] for c in self.api.objects[name]["status"]["conditions"]]


@pytest.fixture
def h(policies: PolicySet, ca: CaBundle) -> Harness:
    return Harness(policies, ca)


async def test_conforming_csr_is_approved_then_issued_in_one_pass(h: Harness) -> None:
    obj = await h.run(make_raw("ok"))
    assert h.conditions("ok") == ["Approved"]
    assert [w[0] for w in h.api.writes] == ["approve", "sign"]
    chain = x509.load_pem_x509_certificates(base64.b64decode(obj["status"]["certificate"]))
    ca = h.snapshot.cas["csr-signer.dev/cluster-local"]
    assert ca is not None
    assert chain[0].issuer == ca.certificate.subject
    assert [e[1] for e in h.api.events] == ["Issued"], "one Event per CSR, not two"
    assert h.api.events[0][2].startswith('approved by policy "cluster-local-services"; issued ')
    assert ("issued", "csr") in h.metrics.calls


async def test_approved_without_a_ca_says_so_in_an_approved_event_then_issued_alone(
    policies: PolicySet, ca: CaBundle
) -> None:
    h = Harness(policies, None)
    await h.run(make_raw("later"))
    assert h.conditions("later") == ["Approved"]
    assert [e[1] for e in h.api.events] == ["Approved"]
    h.snapshot = dataclasses.replace(h.snapshot, cas=dict.fromkeys(SIGNERS, ca))
    await h.reconciler("later")
    assert [e[1] for e in h.api.events] == ["Approved", "Issued"]
    assert h.api.events[1][2].startswith("issued certificate serial ")


async def test_nonconforming_csr_is_denied_and_never_signed(h: Harness) -> None:
    obj = await h.run(make_raw("bad", dns_names=("web.team-b.svc",)))
    assert h.conditions("bad") == ["Denied"]
    assert "certificate" not in obj["status"]
    assert '"web.team-b.svc"' in obj["status"]["conditions"][0]["message"]


async def test_human_requester_is_left_pending_with_one_event(h: Harness) -> None:
    await h.run(make_raw("human", username="alice"))
    await h.reconciler("human")
    assert h.conditions("human") == []
    assert h.api.writes == []
    assert [e[1] for e in h.api.events] == ["Pending"]
    assert "kubectl certificate approve|deny human" in h.api.events[0][2]
    assert (
        'approving issues exactly: subject "(empty)"; DNS ["web.team-a.svc"]; key ECDSA secp256r1'
    ) in h.api.events[0][2]


async def test_a_relist_does_not_repeat_the_pending_event(h: Harness) -> None:
    await h.run(make_raw("human", username="alice"))
    for _ in range(3):  # periodic resyncs relist the backlog and reconcile it again
        h.cache.replace([h.api.objects["human"]])
        await h.reconciler("human")
    assert [e[1] for e in h.api.events] == ["Pending"]


async def test_a_csr_left_for_a_human_sheds_its_request_and_costs_nothing_to_resync(
    h: Harness, policies: PolicySet
) -> None:
    await h.run(make_raw("human", username="alice"))
    assert "request" not in h.cache.get("human")["spec"]  # type: ignore[index]
    reads_before = h.api.reads
    for _ in range(3):
        await h.reconciler("human")  # periodic resyncs
    assert h.api.reads == reads_before, "no API call for a CSR decided under these policies"
    h.snapshot = Snapshot(
        policies=load_policies(bundled_policies_dir()),  # a reload: a new PolicySet
        cas=h.snapshot.cas,
        limits=LIMITS,
        cluster_domain="cluster.local",
    )
    await h.reconciler("human")
    assert h.api.reads == reads_before + 1, "re-read whole, to decide under the new policies"
    await h.reconciler("human")
    assert [e[1] for e in h.api.events] == ["Pending"]
    assert h.api.writes == []


async def test_human_approved_csr_is_signed(h: Harness) -> None:
    obj = await h.run(make_raw("by-hand", username="alice", conditions=("Approved",)))
    assert obj["status"].get("certificate")
    assert [w[0] for w in h.api.writes] == ["sign"]


@pytest.mark.parametrize(
    "conditions",
    [
        pytest.param(("Denied",), id="denied-csr-is-never-signed"),
        pytest.param(("Approved", "Failed"), id="failed-csr-is-never-signed"),
    ],
)
async def test_final_csrs_are_left_alone(h: Harness, conditions: tuple[str, ...]) -> None:
    obj = await h.run(make_raw("final", conditions=conditions))
    assert h.api.writes == []
    assert "certificate" not in obj["status"]


async def test_csr_for_a_foreign_signer_is_never_touched(h: Harness) -> None:
    await h.run(make_raw("foreign", signer="example.com/other", conditions=("Approved",)))
    assert h.api.writes == [] and h.api.events == []


async def test_approved_csr_asking_for_cert_sign_gets_failed_not_a_ca(h: Harness) -> None:
    obj = await h.run(
        make_raw(
            "ca", username="alice", conditions=("Approved",), usages=("cert sign", "server auth")
        )
    )
    assert h.conditions("ca") == ["Approved", "Failed"]
    assert "certificate" not in obj["status"]
    assert ("signing_failed", "csr", "ForbiddenUsage") in h.metrics.calls


async def test_garbage_request_is_denied_with_a_reason(h: Harness) -> None:
    obj = await h.run(
        make_raw(
            "garbage",
            pem=b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        )
    )
    assert h.conditions("garbage") == ["Denied"]
    assert "spec.request" in obj["status"]["conditions"][0]["message"]
    assert ("request_unreadable", "Malformed") in h.metrics.calls


async def test_conflict_rereads_and_decides_on_the_fresh_copy(h: Harness) -> None:
    raw = make_raw("race", username="alice")
    h.cache.apply("ADDED", h.api.add(raw))
    h.api.mutate("race", "Denied")  # a human denies after we cached the object
    h.snapshot = Snapshot(
        policies=h.snapshot.policies,
        cas=h.snapshot.cas,
        limits=LIMITS,
        cluster_domain="cluster.local",
    )
    h.cache.apply(
        "ADDED", make_raw("race", conditions=("Approved",), username="alice")
    )  # stale copy says Approved
    await h.reconciler("race")
    assert h.conditions("race") == ["Denied"]
    assert ("api_error", "conflict") in h.metrics.calls
    assert h.cache.get("race") is None, "fresh copy is final: dropped from the cache"


async def test_transient_error_is_retried_with_backoff(h: Harness) -> None:
    h.api.fail_next.append(ServerError("500 boom", 500))
    await h.run(make_raw("flaky"))
    assert h.conditions("flaky") == []
    assert h.queue.depth == 1, "scheduled for a retry"
    h.queue.shutdown()


@pytest.mark.parametrize(
    ("with_policies", "with_ca", "expected"),
    [
        pytest.param(False, True, [], id="no-policies-loaded-decides-nothing"),
        pytest.param(True, False, ["Approved"], id="no-ca-approves-but-waits-to-sign"),
    ],
)
async def test_not_ready_inputs_wait_instead_of_failing(
    policies: PolicySet, ca: CaBundle, with_policies: bool, with_ca: bool, expected: list[str]
) -> None:
    h = Harness(policies if with_policies else None, ca if with_ca else None)
    obj = await h.run(make_raw("wait"))
    assert h.conditions("wait") == expected
    assert "certificate" not in obj["status"]
    assert h.queue.depth == 1
    h.queue.shutdown()


async def test_approved_csr_waits_for_policies_so_their_lifetime_cap_applies(ca: CaBundle) -> None:
    h = Harness(None, ca)
    obj = await h.run(make_raw("capped", conditions=("Approved",)))
    assert "certificate" not in obj["status"]
    assert h.queue.depth == 1
    h.queue.shutdown()


async def test_a_csr_with_thousands_of_bad_names_is_denied_with_a_bounded_message(
    policies: PolicySet, ca: CaBundle
) -> None:
    h = Harness(policies, ca, UNCAPPED)
    names = tuple(f"host{i}.team-b.svc" for i in range(2000))
    obj = await h.run(make_raw("hostile", dns_names=names))
    assert h.conditions("hostile") == ["Denied"]
    message = obj["status"]["conditions"][0]["message"]
    assert len(message) < 5000
    assert "more" in message


@pytest.mark.parametrize(
    ("caps", "conditions", "outcome", "says"),
    [
        pytest.param(
            RequestCaps(max_sans=10),
            (),
            "Denied",
            "has 11 subject alternative names, over this signer's limit of 10 (--max-sans)",
            id="too-many-sans-is-denied-before-policy",
        ),
        pytest.param(
            RequestCaps(max_request_bytes=300),
            (),
            "Denied",
            "over this signer's limit of 300 (--max-request-bytes)",
            id="too-many-bytes-is-denied-unread",
        ),
        pytest.param(
            RequestCaps(max_sans=10),
            ("Approved",),
            "Failed",
            "(--max-sans)",
            id="a-human-approved-request-over-a-cap-is-failed-never-signed",
        ),
    ],
)
async def test_request_caps(
    policies: PolicySet,
    ca: CaBundle,
    caps: RequestCaps,
    conditions: tuple[str, ...],
    outcome: str,
    says: str,
) -> None:
    h = Harness(policies, ca, caps)
    names = tuple(f"n{i}.team-a.svc" for i in range(11))
    username = "alice" if conditions else "system:serviceaccount:team-a:app"
    obj = await h.run(make_raw("big", dns_names=names, username=username, conditions=conditions))
    assert "certificate" not in obj["status"]
    last = obj["status"]["conditions"][-1]
    assert last["type"] == outcome
    assert says in last["message"]
    unreadable = [c[1] for c in h.metrics.calls if c[0] == "request_unreadable"]
    assert unreadable == ["TooLarge" if "bytes" in says else "TooManyNames"]


@pytest.mark.parametrize(
    ("key_type", "usages", "reason"),
    [
        pytest.param("rsa-1024", SERVING, "WeakKey", id="human-approved-rsa-1024-is-failed"),
        pytest.param("rsa-2048-e3", SERVING, "WeakKey", id="human-approved-rsa-e3-is-failed"),
        pytest.param("ecdsa-p256", (), "NoUsages", id="human-approved-no-usages-is-failed"),
    ],
)
async def test_key_floor_holds_whoever_approved(
    h: Harness, key_type: KeyType, usages: tuple[str, ...], reason: str
) -> None:
    pem = build_csr_pem(dns_names=["web.team-a.svc"], key_type=key_type)
    obj = await h.run(
        make_raw("weak", username="alice", conditions=("Approved",), usages=usages, pem=pem)
    )
    assert "certificate" not in obj["status"]
    failed = [c for c in obj["status"]["conditions"] if c["type"] == "Failed"]
    assert [c["reason"] for c in failed] == [reason]
    assert ("signing_failed", "csr", reason) in h.metrics.calls


@pytest.mark.parametrize(
    ("ca_state", "reason"),
    [
        pytest.param("missing", "CAUnavailable", id="no-ca-is-counted-and-retried"),
        pytest.param("expired", "CAExpired", id="expired-ca-is-counted-and-retried"),
    ],
)
async def test_ca_refusals_are_counted_not_failed(
    policies: PolicySet, ca_state: str, reason: str
) -> None:
    ca = None
    if ca_state == "expired":
        cert, key = generate_root("old root", "ecdsa-p256", 1, NOW - dt.timedelta(days=3))
        ca = load_ca(cert, key, now=NOW - dt.timedelta(days=2, hours=12))
    h = Harness(policies, ca)
    obj = await h.run(make_raw("waits", username="alice", conditions=("Approved",)))
    assert h.api.writes == []
    assert "certificate" not in obj["status"]
    assert ("signing_failed", "csr", reason) in h.metrics.calls
    assert h.queue.depth == 1, "scheduled for a retry"


async def test_each_signer_signs_with_its_own_ca(policies: PolicySet, ca: CaBundle) -> None:
    other_cert, other_key = generate_root(
        "other root", "ecdsa-p256", 365, NOW - dt.timedelta(days=1)
    )
    other = load_ca(other_cert, other_key, now=NOW)
    h = Harness(policies, ca)
    h.snapshot = Snapshot(
        policies=policies,
        cas={"csr-signer.dev/cluster-local": ca, "csr-signer.dev/knative-internal": other},
        limits=LIMITS,
        cluster_domain="cluster.local",
    )
    local = await h.run(make_raw("local", username="alice", conditions=("Approved",)))
    knative = await h.run(
        make_raw(
            "kn",
            signer="csr-signer.dev/knative-internal",
            username="alice",
            conditions=("Approved",),
        )
    )
    issuers = [
        x509.load_pem_x509_certificates(base64.b64decode(o["status"]["certificate"]))[0].issuer
        for o in (local, knative)
    ]
    assert issuers == [ca.certificate.subject, other.certificate.subject]


async def test_a_signer_without_its_ca_waits_while_others_sign(
    policies: PolicySet, ca: CaBundle
) -> None:
    h = Harness(policies, ca)
    h.snapshot = Snapshot(
        policies=policies,
        cas={"csr-signer.dev/cluster-local": ca, "csr-signer.dev/knative-internal": None},
        limits=LIMITS,
        cluster_domain="cluster.local",
    )
    kn = await h.run(
        make_raw(
            "kn",
            signer="csr-signer.dev/knative-internal",
            username="alice",
            conditions=("Approved",),
        )
    )
    assert "certificate" not in kn["status"]
    assert ("signing_failed", "csr", "CAUnavailable") in h.metrics.calls
    local = await h.run(make_raw("local", username="alice", conditions=("Approved",)))
    assert local["status"].get("certificate")


async def test_a_certificate_too_large_to_store_fails_the_csr_instead_of_retrying(
    policies: PolicySet, ca: CaBundle
) -> None:
    h = Harness(policies, ca, UNCAPPED)
    names = [f"n{i}.team-a.svc" for i in range(2000)]
    pem = build_csr_pem(dns_names=names)
    h.api.max_object_bytes = len(pem) * 2 + 20_000  # the request fits; its certificate does not
    obj = await h.run(make_raw("huge", username="alice", conditions=("Approved",), pem=pem))
    assert "certificate" not in obj["status"]
    failed = [c for c in obj["status"]["conditions"] if c["type"] == "Failed"]
    assert [c["reason"] for c in failed] == ["CertificateTooLarge"]
    assert "request is too large" in failed[0]["message"]
    assert ("signing_failed", "csr", "CertificateTooLarge") in h.metrics.calls
    assert h.queue.depth == 0, "not retried: the CSR is final"


async def test_an_approval_landing_while_the_pending_event_is_written_is_still_signed(
    h: Harness,
) -> None:
    raw = make_raw("quick", username="alice")
    h.cache.apply("ADDED", h.api.add(raw))

    def human_approves() -> None:  # `kubectl certificate approve` right after create
        h.api.mutate("quick", "Approved")
        h.cache.apply("MODIFIED", h.api.objects["quick"])

    h.api.during_event = human_approves
    await h.reconciler("quick")
    h.api.during_event = None
    assert h.cache.shed_under("quick") is None, "the approved copy was not stripped"
    await h.reconciler("quick")  # the queue hands the dirty key out again
    assert h.api.objects["quick"]["status"].get("certificate")


async def test_a_csr_too_large_for_even_a_condition_is_not_retried(
    policies: PolicySet, ca: CaBundle
) -> None:
    h = Harness(policies, ca)
    names = tuple(f"n{i}.team-b.svc" for i in range(300))  # over --max-sans: to be denied
    raw = make_raw("full", dns_names=names)
    h.api.max_object_bytes = len(json.dumps(raw)) + 10  # no condition fits any more
    obj = await h.run(raw)
    assert obj["status"]["conditions"] == []
    assert h.queue.depth == 0, "not retried"
    writes_before = len(h.api.writes)
    await h.reconciler("full")  # a resync
    assert len(h.api.writes) == writes_before
    assert "request" not in h.cache.get("full")["spec"], "only metadata is held"  # type: ignore[index]


async def test_an_unreadable_request_is_counted_once_when_refused(
    policies: PolicySet, ca: CaBundle
) -> None:
    h = Harness(None, ca)  # policies not loaded yet: nothing is decided
    garbage = b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    await h.run(make_raw("early", pem=garbage))
    await h.reconciler("early")
    assert not [c for c in h.metrics.calls if c[0] == "request_unreadable"]
    h.snapshot = Snapshot(
        policies=policies, cas=h.snapshot.cas, limits=LIMITS, cluster_domain="cluster.local"
    )
    await h.reconciler("early")
    assert [c for c in h.metrics.calls if c[0] == "request_unreadable"] == [
        ("request_unreadable", "Malformed")
    ]


async def test_the_pending_event_fits_and_still_names_every_kind_and_the_key(h: Harness) -> None:
    long_names = tuple(f"{'x' * 50}-{i}.team-a.svc" for i in range(40))
    await h.run(make_raw("wordy", username="alice", dns_names=long_names))
    message = h.api.events[0][2]
    assert len(message) <= 1024, "the Event is not cut mid-list"
    assert "and 35 more]" in message
    assert message.endswith("key ECDSA secp256r1")
