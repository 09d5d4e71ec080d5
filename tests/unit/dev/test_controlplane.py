"""The local kube-apiserver's command line: authorization and admission as a real cluster."""

from __future__ import annotations

from pathlib import Path

from csr_signer_dev.controlplane import apiserver_argv


def flags() -> dict[str, list[str]]:
    argv = apiserver_argv(
        Path("/bin/kube-apiserver"),
        etcd_url="http://127.0.0.1:2379",
        port=6443,
        workdir=Path("/w"),
        pki=Path("/w/pki"),
        serving_cert=Path("/w/pki/serving.crt"),
        serving_key=Path("/w/pki/serving.key"),
    )
    assert argv[0] == "/bin/kube-apiserver"
    seen: dict[str, list[str]] = {}
    for arg in argv[1:]:
        name, _, value = arg.partition("=")
        seen.setdefault(name, []).append(value)
    return seen


def test_the_node_authorizer_runs_before_rbac() -> None:
    """Nodes create PodCertificateRequests through the Node authorizer, not an RBAC grant."""
    assert flags()["--authorization-mode"] == ["Node,RBAC"]


def test_node_restriction_is_added_to_the_default_admission_plugins() -> None:
    """Enabled on top of the defaults: nothing is disabled, no explicit plugin list."""
    seen = flags()
    assert seen["--enable-admission-plugins"] == ["NodeRestriction"]
    assert "--disable-admission-plugins" not in seen
    assert "--admission-control" not in seen


def test_the_pod_certificate_api_is_served() -> None:
    seen = flags()
    assert "PodCertificateRequest=true" in seen["--feature-gates"][0].split(",")
    assert seen["--runtime-config"] == ["certificates.k8s.io/v1beta1=true"]
