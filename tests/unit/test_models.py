"""Decision.summary and CsrView.describe: bounded explanations for humans."""

from __future__ import annotations

import pytest

from signer.models import Decision, Outcome
from signer.pki.parsing import parse_csr
from tests.data.csrs import build_csr_pem


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        pytest.param(("a", "b"), "a; b", id="few-short-reasons-are-shown-whole"),
        pytest.param(
            tuple(f"r{i}" for i in range(25)),
            "; ".join(f"r{i}" for i in range(20)) + "; and 5 more",
            id="reasons-past-twenty-are-counted-not-listed",
        ),
    ],
)
def test_summary_lists_reasons_in_order(reasons: tuple[str, ...], expected: str) -> None:
    assert Decision(Outcome.DENY, reasons=reasons).summary() == expected


def test_summary_is_bounded_even_for_huge_reasons() -> None:
    decision = Decision(Outcome.DENY, reasons=("x" * 100_000,) * 3)
    text = decision.summary(max_chars=4096)
    assert len(text) < 4200
    assert "more" not in text, "three reasons are all listed, only cut"
    assert text.startswith("xxx")


def test_describe_names_what_will_be_issued_and_stays_bounded() -> None:
    names = [f"n{i}.team-a.svc" for i in range(5000)]
    huge = parse_csr(build_csr_pem(common_name="web", dns_names=names)).describe()
    assert huge.startswith('subject "CN=web"; DNS ["n0.team-a.svc", "n1.team-a.svc"')
    assert huge.endswith("and 4980 more]; key ECDSA secp256r1")
    assert len(huge) <= 2048
    every_kind = parse_csr(
        build_csr_pem(dns_names=["a.b"], ip_addresses=["10.0.0.1"], uris=["spiffe://c/ns/a"])
    ).describe()
    assert every_kind == (
        'subject "(empty)"; DNS ["a.b"]; IP ["10.0.0.1"]; URI ["spiffe://c/ns/a"]; '
        "key ECDSA secp256r1"
    )
