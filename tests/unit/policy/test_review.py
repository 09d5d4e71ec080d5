"""`policy diff` on manifest files and `policy explain`'s verdict line (offline parts;
tests/e2e/test_policy_authoring.py runs both against the real apiserver)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from signer.cli import main
from signer.commands.review import _agreement
from signer.models import Outcome

REPO = Path(__file__).resolve().parents[3]
RECORDED = REPO / "policies" / "tests" / "recorded"


def narrowed(tmp_path: Path) -> Path:
    """The bundled policies without kourier-system among Knative's components."""
    out = tmp_path / "new"
    out.mkdir()
    for path in (REPO / "policies").glob("*.yaml"):
        (out / path.name).write_text(path.read_text().replace("kourier-system, ", ""))
    return out


def as_list(*docs: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(docs)}


def kourier_csr() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((RECORDED / "csr-shop-kn-routing.yaml").read_text())
    doc["metadata"]["name"] = "gateway"
    doc["spec"]["username"] = "system:serviceaccount:kourier-system:gateway"
    return doc


def test_diff_lists_each_request_whose_decision_changes_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "csrs.yaml"
    listing.write_text(yaml.safe_dump(as_list(kourier_csr())))
    args = ["policy", "diff", "--old", str(REPO / "policies"), "--new", str(narrowed(tmp_path))]
    code = main([*args, str(listing), str(RECORDED / "pcr-shop.json")])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0] == (
        f"{listing}: csr/gateway: approve (policy knative-system-components) -> "
        "deny (policy knative-system-internal)"
    )
    assert out[1] == "  - knative-system-components: approved: every requested value is allowed"
    assert out[2].startswith('  + knative-system-internal: spec.request dnsNames: "kn-routing"')
    assert out[-1] == "2 requests, 1 changed"


def test_diff_of_equal_policies_changes_nothing_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = str(REPO / "policies")
    code = main(
        ["policy", "diff", "--old", policies, "--new", policies, str(RECORDED / "pcr-shop.json")]
    )
    assert (code, capsys.readouterr().out) == (0, "1 requests, 0 changed\n")


def test_diff_needs_requests(capsys: pytest.CaptureFixture[str]) -> None:
    policies = str(REPO / "policies")
    assert main(["policy", "diff", "--old", policies, "--new", policies]) == 2
    assert "give manifest FILEs, --from-cluster, or both" in capsys.readouterr().err


def test_explain_names_a_pcr_by_namespace_and_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "explain", "--kind", "pcr", "just-a-name"]) == 2
    assert "NAMESPACE/NAME" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("conditions", "now", "line"),
    [
        pytest.param(
            [{"type": "Denied"}],
            Outcome.DENY,
            "agrees: recorded deny, the policies now deny",
            id="denied-and-still-denied",
        ),
        pytest.param(
            [{"type": "Approved"}],
            Outcome.DENY,
            "differs: recorded approve, the policies now deny",
            id="approved-then-now-denied",
        ),
        pytest.param(
            [{"type": "Approved"}, {"type": "Failed"}],
            Outcome.APPROVE,
            "agrees: recorded approve, the policies now approve",
            id="approved-but-failed-at-signing-is-still-an-approval",
        ),
        pytest.param(
            [{"type": "Issued"}],
            Outcome.APPROVE,
            "agrees: recorded approve, the policies now approve",
            id="an-issued-pcr",
        ),
        pytest.param(
            [],
            Outcome.ABSTAIN,
            "agrees: nothing recorded, and the policies leave it to a human",
            id="pending-and-abstaining",
        ),
        pytest.param(
            [],
            Outcome.APPROVE,
            "differs: nothing recorded yet, the policies now approve",
            id="pending-but-the-policies-now-approve",
        ),
    ],
)
def test_explain_says_whether_the_record_and_the_policies_agree(
    conditions: list[dict[str, str]], now: Outcome, line: str
) -> None:
    assert _agreement(conditions, now) == line


def test_explain_of_a_pcr_names_it_by_namespace_and_shows_what_it_would_issue() -> None:
    import json

    from signer.commands.deciding import decide_document
    from signer.commands.review import _explanation
    from signer.policy import bundled_policies_dir, load_policies

    raw = json.loads((RECORDED / "pcr-shop.json").read_text())
    raw["metadata"]["uid"] = "u-1"
    raw["status"] = {"conditions": [{"type": "Issued", "reason": "Issued", "message": "ok"}]}
    verdict = decide_document(
        raw, "pcr", load_policies(bundled_policies_dir()), cluster_domain="cluster.local"
    )
    lines = _explanation(raw, verdict, events=[], where="bundled", namespace="shop", labels=None)
    assert lines[0] == (
        "pcr/shop/checkout-7d9f-4x2kq: signer csr-signer.dev/knative-internal, "
        "requester system:serviceaccount:shop:default"
    )
    assert "namespace shop labels: unknown (namespace not found or not readable)" in lines
    assert "now (bundled): approve (policy knative-system-internal)" in lines
    assert "  issues dnsName: kn-user-shop" in lines
    assert "  Issued Issued: ok" in lines
    assert "events: none" in lines
    assert lines[-1] == "agrees: recorded approve, the policies now approve"
