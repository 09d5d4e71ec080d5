"""Hot reload of policy files: a bad edit is rejected and the last good set stays."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from signer.app import Sources
from signer.config import Settings
from signer.pki.ca import ca_secret_manifest, generate_root
from signer.policy import PolicySet, bundled_policies_dir, load_policies
from signer.telemetry import Telemetry
from signer.web import Check, Readiness


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    for path in bundled_policies_dir().glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def check(readiness: Readiness, name: str) -> Check:
    return next(c for c in readiness.checks if c.name == name)


def make_sources(policy_dir: Path) -> tuple[Sources, Telemetry, Readiness, list[str]]:
    telemetry = Telemetry.create(signer_names=["csr-signer.dev/cluster-local"])
    readiness = Readiness()
    changes: list[str] = []
    sources = Sources(
        Settings(policy_dir=policy_dir), telemetry, readiness, lambda: changes.append("changed")
    )
    return sources, telemetry, readiness, changes


def test_valid_policies_load_and_mark_ready(policy_dir: Path) -> None:
    sources, telemetry, readiness, changes = make_sources(policy_dir)
    assert sources.reload_policies() is True
    assert sources.policies is not None
    assert check(readiness, "policies").ok
    assert changes == ["changed"]
    assert b'csr_signer_policy_reloads_total{result="success"} 1.0' in telemetry.render()[0]
    telemetry.shutdown()


def test_unchanged_files_are_not_reloaded(policy_dir: Path) -> None:
    sources, telemetry, _readiness, changes = make_sources(policy_dir)
    sources.reload_policies()
    assert sources.reload_policies() is False
    assert changes == ["changed"]
    telemetry.shutdown()


def test_invalid_edit_is_rejected_and_previous_policies_stay_in_force(policy_dir: Path) -> None:
    sources, telemetry, readiness, changes = make_sources(policy_dir)
    sources.reload_policies()
    before = sources.policies
    (policy_dir / "zz-broken.yaml").write_text("policies:\n  - name: broken\n    signerNames: 42\n")
    assert sources.reload_policies() is False
    assert sources.policies is before
    policies = check(readiness, "policies")
    assert not policies.ok
    assert "previous policies stay in force" in policies.detail
    assert "zz-broken.yaml" in policies.detail
    assert b'csr_signer_policy_reloads_total{result="failure"} 1.0' in telemetry.render()[0]
    assert b"csr_signer_policies_valid 0.0" in telemetry.render()[0]
    assert changes == ["changed"], "a rejected set triggers no re-evaluation"
    telemetry.shutdown()


def test_a_broken_ca_secret_pauses_signing_and_says_why(policy_dir: Path) -> None:
    sources, telemetry, readiness, _changes = make_sources(policy_dir)
    cert, key = generate_root("ok", "ecdsa-p256", 30, dt.datetime.now(dt.UTC))
    sources._secret_changed(DEFAULT_CA, secret("1", ca_secret_manifest("ca", "ns", cert, key)))
    assert sources.cas[LOCAL] is not None
    sources._secret_changed(DEFAULT_CA, secret("2", BROKEN))
    assert sources.cas[LOCAL] is None, "never keep signing with material the Secret no longer holds"
    ca = check(readiness, f"ca {LOCAL}")
    assert not ca.ok
    assert "secret csr-signer/csr-signer-ca" in ca.detail
    telemetry.shutdown()


def test_each_signer_loads_its_own_ca_and_a_broken_one_pauses_only_its_signer(
    policy_dir: Path,
) -> None:
    settings = Settings(policy_dir=policy_dir, signer_cas=(f"{KNATIVE}=knative-serving/kn-ca",))
    readiness, telemetry = Readiness(), Telemetry.create(signer_names=[LOCAL, KNATIVE])
    sources = Sources(settings, telemetry, readiness, lambda: None)
    assert sources.secrets == {DEFAULT_CA, ("knative-serving", "kn-ca")}
    now = dt.datetime.now(dt.UTC)
    local, kn = (generate_root(cn, "ecdsa-p256", 30, now) for cn in ("local CA", "kn CA"))
    sources._secret_changed(DEFAULT_CA, secret("1", ca_secret_manifest("a", "ns", *local)))
    sources._secret_changed(
        ("knative-serving", "kn-ca"), secret("1", ca_secret_manifest("b", "ns", *kn))
    )
    assert sources.cas[LOCAL] is not None and sources.cas[KNATIVE] is not None
    assert sources.cas[LOCAL].identity != sources.cas[KNATIVE].identity
    sources._secret_changed(("knative-serving", "kn-ca"), None)
    assert sources.cas[KNATIVE] is None
    assert sources.cas[LOCAL] is not None, "another signer's CA is not affected"
    assert check(readiness, f"ca {LOCAL}").ok
    assert "knative-serving/kn-ca not found" in check(readiness, f"ca {KNATIVE}").detail
    text = telemetry.render()[0].decode()
    assert f'csr_signer_ca_not_after_timestamp_seconds{{signer="{LOCAL}"}}' in text
    assert f'csr_signer_ca_not_after_timestamp_seconds{{signer="{KNATIVE}"}}' in text
    telemetry.shutdown()


def test_a_ca_that_expires_while_loaded_turns_readiness_red_on_the_timer(
    policy_dir: Path,
) -> None:
    start = dt.datetime.now(dt.UTC)
    clock = [start]
    readiness, telemetry = Readiness(), Telemetry.create(signer_names=[LOCAL])
    changes: list[str] = []
    sources = Sources(
        Settings(policy_dir=policy_dir, signer_names=(LOCAL,)),
        telemetry,
        readiness,
        lambda: changes.append("changed"),
        clock=lambda: clock[0],
    )
    cert, key = generate_root("short", "ecdsa-p256", 1, start)
    sources._secret_changed(DEFAULT_CA, secret("1", ca_secret_manifest("a", "ns", cert, key)))
    assert sources.cas[LOCAL] is not None and check(readiness, f"ca {LOCAL}").ok
    clock[0] = start + dt.timedelta(days=2)
    sources.check_ca_validity()
    assert sources.cas[LOCAL] is None, "an expired CA is not offered for signing"
    assert "expired at" in check(readiness, f"ca {LOCAL}").detail
    assert changes == ["changed", "changed"]
    telemetry.shutdown()


LOCAL = "csr-signer.dev/cluster-local"
KNATIVE = "csr-signer.dev/knative-internal"
DEFAULT_CA = ("csr-signer", "csr-signer-ca")
BROKEN = {"data": {"tls.crt": "bm90IGEgY2VydA==", "tls.key": "eA=="}}


def secret(version: str, manifest: dict[str, object]) -> dict[str, object]:
    return {"metadata": {"resourceVersion": version}, "data": manifest["data"]}


@pytest.mark.parametrize(
    "relative",
    [
        pytest.param(False, id="absolute-path"),
        pytest.param(True, id="relative-path-through-dotdot-is-re-read"),
    ],
)
def test_an_edit_is_reloaded_however_the_directory_is_named(
    policy_dir: Path, relative: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = policy_dir
    if relative:
        monkeypatch.chdir(policy_dir)
        named = Path("..") / policy_dir.name  # what `--policies ../dir` looks like
    sources, telemetry, _readiness, changes = make_sources(named)
    assert sources.reload_policies() is True
    path = policy_dir / "cluster-local.yaml"
    path.write_text(path.read_text() + "\n# edited\n")
    assert sources.reload_policies() is True
    assert changes == ["changed", "changed"]
    telemetry.shutdown()


async def test_the_policy_poll_loop_survives_any_loader_failure_and_says_so(
    policy_dir: Path,
) -> None:
    failures: list[BaseException] = [RecursionError("maximum recursion depth exceeded")]

    def loader(directory: Path) -> PolicySet:
        if failures:
            raise failures.pop()
        return load_policies(directory)

    readiness, telemetry = Readiness(), Telemetry.create(signer_names=[LOCAL])
    sources = Sources(
        Settings(policy_dir=policy_dir, policy_reload_seconds=0.1),
        telemetry,
        readiness,
        lambda: None,
        loader=loader,
    )
    poll = asyncio.create_task(sources.poll_policies())
    try:
        await wait_for(
            lambda: (
                not check(readiness, "policies").ok
                and "Recursion" in check(readiness, "policies").detail
            )
        )
        assert b'csr_signer_policy_reloads_total{result="failure"} 1.0' in telemetry.render()[0]
        (policy_dir / "cluster-local.yaml").write_text(
            (policy_dir / "cluster-local.yaml").read_text() + "\n# fixed\n"
        )
        await wait_for(lambda: sources.policies is not None)
        assert check(readiness, "policies").ok
        assert not poll.done(), "the loop is still polling"
    finally:
        poll.cancel()
        telemetry.shutdown()


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def test_a_ca_not_yet_valid_at_load_is_used_once_it_becomes_valid(policy_dir: Path) -> None:
    start = dt.datetime.now(dt.UTC)
    clock = [start]
    readiness, telemetry = Readiness(), Telemetry.create(signer_names=[LOCAL])
    sources = Sources(
        Settings(policy_dir=policy_dir, signer_names=(LOCAL,)),
        telemetry,
        readiness,
        lambda: None,
        clock=lambda: clock[0],
    )
    # Issued on a machine whose clock runs two hours ahead (NotBefore = its now - 1 h).
    cert, key = generate_root("ahead", "ecdsa-p256", 30, start + dt.timedelta(hours=2))
    sources._secret_changed(DEFAULT_CA, secret("1", ca_secret_manifest("a", "ns", cert, key)))
    assert sources.cas[LOCAL] is None
    assert "not valid before" in check(readiness, f"ca {LOCAL}").detail
    clock[0] = start + dt.timedelta(hours=1, minutes=1)
    sources.retry_time_failures()  # what the validity timer does, with no Secret change
    assert sources.cas[LOCAL] is not None
    assert check(readiness, f"ca {LOCAL}").ok
    telemetry.shutdown()


class _Response:
    """Just enough of an aiohttp response for `list_all`."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self._body = body

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        pass


async def test_namespace_labels_are_listed_then_reported_as_they_change(policy_dir: Path) -> None:
    import json

    sources, _telemetry, readiness, _changes = make_sources(policy_dir)
    assert not sources.snapshot().namespaces_synced
    assert not check(readiness, "namespaces").ok
    changed: list[set[str]] = []
    page = {
        "metadata": {"resourceVersion": "5"},
        "items": [{"metadata": {"name": "shop", "labels": {"env": "prod"}}}],
    }

    async def list_fn(**kwargs: object) -> _Response:
        if kwargs.get("watch"):
            await asyncio.Event().wait()  # a watch that never ends
        return _Response(200, json.dumps(page).encode())

    task = asyncio.create_task(sources.watch_namespaces(None, changed.append, list_fn=list_fn))
    try:
        for _ in range(100):
            if sources.namespaces.synced:
                break
            await asyncio.sleep(0.01)
        snapshot = sources.snapshot()
        assert snapshot.namespaces_synced
        assert snapshot.namespace_labels("shop") == {"env": "prod"}
        assert snapshot.namespace_labels("other") is None
        assert changed == [{"shop"}]
        assert check(readiness, "namespaces").ok
    finally:
        task.cancel()


async def test_without_rbac_on_namespaces_signing_goes_on_with_labels_unknown(
    policy_dir: Path,
) -> None:
    """An upgrade that kept its old ClusterRole: loud, not ready, but still deciding."""
    sources, _telemetry, readiness, _changes = make_sources(policy_dir)

    async def list_fn(**_kwargs: object) -> _Response:
        return _Response(403, b'{"message": "namespaces is forbidden"}')

    task = asyncio.create_task(sources.watch_namespaces(None, lambda _c: None, list_fn=list_fn))
    try:
        for _ in range(100):
            if sources.namespaces.synced:
                break
            await asyncio.sleep(0.01)
        assert sources.snapshot().namespaces_synced
        assert sources.snapshot().namespace_labels("shop") is None
        namespaces = check(readiness, "namespaces")
        assert not namespaces.ok
        assert "namespaceSelectors select nobody" in namespaces.detail
    finally:
        task.cancel()
