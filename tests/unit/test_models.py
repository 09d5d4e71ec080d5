"""Decision.summary and CsrView.describe: bounded explanations for humans."""

from __future__ import annotations

import pytest

from signer.models import Decision, KeyInfo, Outcome, PodRequest
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


def pod_request(**overrides: object) -> PodRequest:
    fields: dict[str, object] = {
        "signer_name": "example.com/pods",
        "namespace": "team-a",
        "service_account": "web",
        "pod_name": "web-0",
        "pod_uid": "uid-1",
        "node_name": "node-1",
        "key": KeyInfo("ed25519", 256),
    }
    fields.update(overrides)
    return PodRequest(**fields)  # type: ignore[arg-type]


def test_pod_request_requester_is_its_serviceaccount_as_its_token_names_it() -> None:
    requester = pod_request().requester
    assert requester.username == "system:serviceaccount:team-a:web"
    assert requester.groups == (
        "system:serviceaccounts",
        "system:serviceaccounts:team-a",
        "system:authenticated",
    )
    sa = requester.serviceaccount
    assert sa is not None
    assert (sa.namespace, sa.name) == ("team-a", "web")


def test_pod_request_with_a_malformed_name_is_not_a_serviceaccount() -> None:
    assert pod_request(service_account="Web").requester.serviceaccount is None


def test_pod_request_annotations_are_a_frozen_copy() -> None:
    annotations = {"csr-signer.dev/dns-names": "a.team-a.svc"}
    request = pod_request(annotations=annotations)
    annotations["csr-signer.dev/dns-names"] = "changed"
    assert request.annotations == {"csr-signer.dev/dns-names": "a.team-a.svc"}
    with pytest.raises(TypeError):
        request.annotations["x"] = "y"  # type: ignore[index]
    assert request == pod_request(annotations={"csr-signer.dev/dns-names": "a.team-a.svc"})
    assert hash(request) == hash(pod_request()), "hashable; the mapping is left out of it"
    assert request.max_expiration_seconds == 86400, "the apiserver's default"
