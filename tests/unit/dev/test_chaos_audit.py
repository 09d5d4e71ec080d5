"""The chaos audit: each rule the final check applies to the apiserver's records.

Records are JSON as the apiserver returns them; certificates are real, signed by the
CA the case says, with NotBefore where the controller puts it (5 minutes before signing).
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from csr_signer_dev.chaos.audit import (
    DOUBLE,
    LOST,
    OUT_OF_POLICY,
    AuditResult,
    History,
    audit,
)
from csr_signer_dev.chaos.requests import CLUSTER_LOCAL, KNATIVE

from signer.pki.ca import generate_root

T0 = 1_800_000_000.0
"""The run's start (unix time); the CA and policy v1 are in force from here."""
GRACE = 45.0


def _root(name: str) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    cert, key = generate_root(name, "ecdsa-p256", 30, dt.datetime.fromtimestamp(T0, dt.UTC))
    private = serialization.load_pem_private_key(key, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    return cert, private


CA1, CA1_KEY = _root("ca one")
CA2, CA2_KEY = _root("ca two")
ROGUE, ROGUE_KEY = _root("ca one")  # same name, other key


def leaf(names: list[str], ca: bytes, key: ec.EllipticCurvePrivateKey, signed: float) -> str:
    issuer = x509.load_pem_x509_certificate(ca).subject
    not_before = dt.datetime.fromtimestamp(signed, dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def stamp(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def csr(
    name: str,
    *,
    conditions: tuple[str, ...] = (),
    decided: float = T0 + 10,
    chain: str | None = None,
    signer: str = CLUSTER_LOCAL,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [
            {"type": t, "status": "True", "lastUpdateTime": stamp(decided)} for t in conditions
        ]
    }
    if chain is not None:
        status["certificate"] = base64.b64encode(chain.encode()).decode()
    return {
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {"signerName": signer},
        "status": status,
    }


def issued_event(name: str) -> dict[str, Any]:
    return {"reason": "Issued", "involvedObject": {"uid": f"uid-{name}"}}


OK_NAMES = ["web.chaos-0.svc", "web.chaos-0.svc.cluster.local"]
AT = T0 + 10
CAS = {CLUSTER_LOCAL: History([(T0, CA1)]), KNATIVE: History([(T0, CA2)])}


def run(
    records: list[dict[str, Any]],
    *,
    events: int = 1,
    pcrs: list[dict[str, Any]] = (),  # type: ignore[assignment]
    policy: History[str] | None = None,
    cas: dict[str, History[bytes]] | None = None,
) -> AuditResult:
    all_events = [issued_event(r["metadata"]["name"]) for r in records for _ in range(events)]
    all_events += [issued_event(p["metadata"]["name"]) for p in pcrs for _ in range(events)]
    return audit(
        records,
        pcrs,
        all_events,
        ca=cas or CAS,
        policy=policy or History([(T0, "v1")]),
        grace=GRACE,
    )


def counts(result: AuditResult) -> tuple[int, int, int]:
    return result.count(LOST), result.count(DOUBLE), result.count(OUT_OF_POLICY)


GOOD = leaf(OK_NAMES, CA1, CA1_KEY, AT)
SWAP = T0 + 100
"""When policy v2 (no bare `web.<ns>`) replaced v1 in the policy cases."""

CASES = [
    pytest.param(
        csr("cx-ok-0-1", conditions=("Approved",), chain=GOOD),
        1,
        (0, 0, 0),
        id="approved-and-issued-once-is-clean",
    ),
    pytest.param(csr("cx-ok-0-1"), 1, (1, 0, 0), id="never-decided-is-lost"),
    pytest.param(
        csr("cx-ok-0-1", conditions=("Approved",)),
        1,
        (1, 0, 0),
        id="approved-but-never-issued-is-lost",
    ),
    pytest.param(
        csr("cx-ok-0-1", conditions=("Denied",)),
        1,
        (1, 0, 0),
        id="denied-although-policy-approves-is-lost",
    ),
    pytest.param(
        csr("cx-ok-0-1", conditions=("Approved", "Approved"), chain=GOOD),
        1,
        (0, 1, 0),
        id="two-approved-conditions-are-double",
    ),
    pytest.param(
        csr("cx-ok-0-1", conditions=("Approved",), chain=GOOD),
        2,
        (0, 1, 0),
        id="two-issued-events-are-double",
    ),
    pytest.param(
        csr("cx-ok-0-1", conditions=("Approved",), chain=leaf(OK_NAMES, ROGUE, ROGUE_KEY, AT)),
        1,
        (1, 0, 0),
        id="chain-not-from-the-ca-in-force-is-lost",
    ),
    pytest.param(
        csr(
            "cx-ok-0-1", conditions=("Approved",), chain=leaf(["web.chaos-1.svc"], CA1, CA1_KEY, AT)
        ),
        1,
        (0, 0, 1),
        id="a-name-of-another-namespace-is-out-of-policy",
    ),
    pytest.param(
        csr("cx-deny-0-1", conditions=("Denied",)),
        0,
        (0, 0, 0),
        id="denied-as-policy-says-is-clean",
    ),
    pytest.param(csr("cx-deny-0-1"), 0, (1, 0, 0), id="a-denial-never-made-is-lost"),
    pytest.param(
        csr(
            "cx-deny-0-1",
            conditions=("Approved",),
            chain=leaf(["web.chaos-1.svc"], CA1, CA1_KEY, AT),
        ),
        1,
        (0, 0, 1),
        id="issued-although-policy-denies-is-out-of-policy",
    ),
    pytest.param(csr("cx-human-0-1"), 0, (0, 0, 0), id="left-for-a-human-and-untouched-is-clean"),
    pytest.param(
        csr("cx-human-0-1", conditions=("Denied",)),
        0,
        (0, 0, 1),
        id="a-human-csr-denied-is-out-of-policy",
    ),
    pytest.param(
        csr("cx-human-0-1", conditions=("Approved",)),
        0,
        (0, 0, 1),
        id="a-human-csr-approved-is-out-of-policy",
    ),
    pytest.param(
        csr("cx-foreign-0-1", signer="example.com/x", conditions=("Denied",)),
        0,
        (0, 0, 1),
        id="a-foreign-signer-csr-touched-is-out-of-policy",
    ),
    pytest.param(
        csr("cx-huge-0-1", conditions=("Denied",)),
        0,
        (0, 0, 0),
        id="a-huge-san-list-denied-is-clean",
    ),
    pytest.param(
        csr("cx-badsig-0-1", conditions=("Approved", "Failed")),
        0,
        (0, 0, 1),
        id="a-bad-signature-approved-is-out-of-policy-even-if-failed",
    ),
    pytest.param(csr("cx-badsig-0-1"), 0, (1, 0, 0), id="a-hostile-csr-left-pending-is-lost"),
    pytest.param(
        csr(
            "cx-kn-0-1",
            signer=KNATIVE,
            conditions=("Approved",),
            chain=leaf(["kn-user-chaos-0"], CA1, CA1_KEY, AT),
        ),
        1,
        (1, 0, 0),
        id="signed-by-another-signers-ca-is-lost",
    ),
]


@pytest.mark.parametrize(("record", "events", "expected"), CASES)
def test_csr_rules(record: dict[str, Any], events: int, expected: tuple[int, int, int]) -> None:
    result = run([record], events=events)
    assert counts(result) == expected, result.findings
    assert result.requests == 1


@pytest.mark.parametrize(
    ("decided", "conditions", "expected"),
    [
        pytest.param(SWAP - 50, ("Approved",), (0, 0, 0), id="bare-issued-under-v1-is-clean"),
        pytest.param(
            SWAP + 20, ("Approved",), (0, 0, 0), id="bare-issued-within-the-grace-after-v2-is-clean"
        ),
        pytest.param(
            SWAP + GRACE + 10,
            ("Approved",),
            (0, 0, 1),
            id="bare-issued-after-v2-settled-is-out-of-policy",
        ),
        pytest.param(SWAP + GRACE + 10, ("Denied",), (0, 0, 0), id="bare-denied-under-v2-is-clean"),
        pytest.param(SWAP - 50, ("Denied",), (1, 0, 0), id="bare-denied-under-v1-is-lost"),
    ],
)
def test_the_policy_in_force_when_decided_is_the_one_that_counts(
    decided: float, conditions: tuple[str, ...], expected: tuple[int, int, int]
) -> None:
    chain = None
    if "Approved" in conditions:
        chain = leaf(["web.chaos-0"], CA1, CA1_KEY, decided)
    record = csr("cx-bare-0-1", conditions=conditions, decided=decided, chain=chain)
    result = run([record], policy=History([(T0, "v1"), (SWAP, "v2")]))
    assert counts(result) == expected, result.findings


@pytest.mark.parametrize(
    ("signed", "ca", "key", "expected_lost"),
    [
        pytest.param(SWAP - 10, CA1, CA1_KEY, 0, id="old-ca-before-the-replacement"),
        pytest.param(SWAP + 20, CA1, CA1_KEY, 0, id="old-ca-within-the-grace"),
        pytest.param(SWAP + GRACE + 10, CA1, CA1_KEY, 1, id="old-ca-long-after-is-lost"),
        pytest.param(SWAP + 5, CA2, CA2_KEY, 0, id="new-ca-after-the-replacement"),
        pytest.param(SWAP - 10, CA2, CA2_KEY, 1, id="new-ca-before-it-was-put-in-is-lost"),
    ],
)
def test_a_certificate_verifies_against_the_ca_in_force_when_signed(
    signed: float, ca: bytes, key: ec.EllipticCurvePrivateKey, expected_lost: int
) -> None:
    record = csr(
        "cx-ok-0-1", conditions=("Approved",), decided=signed, chain=leaf(OK_NAMES, ca, key, signed)
    )
    cas = {CLUSTER_LOCAL: History([(T0, CA1), (SWAP, CA2)])}
    assert counts(run([record], cas=cas)) == (expected_lost, 0, 0)


def pcr(name: str, chain: str | None, conditions: tuple[str, ...]) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": stamp(AT)} for t in conditions
        ]
    }
    if chain:
        status["certificateChain"] = chain
    return {
        "metadata": {"name": name, "namespace": "chaos-0", "uid": f"uid-{name}"},
        "spec": {"signerName": KNATIVE},
        "status": status,
    }


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param(
            pcr("cx-pcr-0-1", leaf(["kn-user-chaos-0"], CA2, CA2_KEY, AT - 240), ("Issued",)),
            (0, 0, 0),
            id="pcr-issued-is-clean",
        ),
        pytest.param(pcr("cx-pcr-0-1", None, ()), (1, 0, 0), id="pcr-never-issued-is-lost"),
        pytest.param(pcr("cx-pcr-0-1", None, ("Denied",)), (1, 0, 0), id="pcr-denied-is-lost"),
        pytest.param(
            pcr("cx-pcr-0-1", leaf(["kn-user-chaos-1"], CA2, CA2_KEY, AT), ("Issued",)),
            (0, 0, 1),
            id="pcr-for-another-namespace-is-out-of-policy",
        ),
    ],
)
def test_pcr_rules(record: dict[str, Any], expected: tuple[int, int, int]) -> None:
    result = run([], pcrs=[record])
    assert counts(result) == expected, result.findings


def test_an_issued_request_without_its_event_is_reported_apart() -> None:
    result = run([csr("cx-ok-0-1", conditions=("Approved",), chain=GOOD)], events=0)
    assert counts(result) == (0, 0, 0)
    assert result.missing_events == ["cx-ok-0-1"]


def test_objects_the_load_did_not_create_are_not_counted() -> None:
    result = run([csr("somebody-elses", conditions=("Denied",))])
    assert result.requests == 0


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        pytest.param(T0 - 5, ["a"], id="before-the-first-the-first"),
        pytest.param(T0 + 5, ["a"], id="the-first"),
        pytest.param(SWAP + 5, ["a", "b"], id="both-within-the-grace"),
        pytest.param(SWAP + GRACE + 1, ["b"], id="the-second-after-the-grace"),
    ],
)
def test_history_counts_a_replaced_value_for_the_grace(at: float, expected: list[str]) -> None:
    assert History([(T0, "a"), (SWAP, "b")]).in_force(at, GRACE) == expected


def test_a_certificate_signed_in_the_second_its_ca_was_put_in_verifies() -> None:
    """NotBefore is cut to the second: a certificate signed 0.2 s after the new CA went
    in reads as signed up to 1 s earlier, before the replacement (seed 2 found this)."""
    replaced = SWAP + 0.6
    record = csr(
        "cx-ok-0-1",
        conditions=("Approved",),
        decided=replaced + 0.2,
        chain=leaf(OK_NAMES, CA2, CA2_KEY, replaced + 0.2),
    )
    cas = {CLUSTER_LOCAL: History([(T0, CA1), (replaced, CA2)])}
    assert counts(run([record], cas=cas)) == (0, 0, 0)
