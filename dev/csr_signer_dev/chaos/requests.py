"""What the load sends and what policy must make of it: request kinds, bodies, expectations.

A request's name says what it is: ``cx-<kind>-<requester>-<seq>``, so the final audit
needs nothing but the apiserver's records to know what each object should have become
(a CSR created while the apiserver was down may exist though its create call failed).

Policy versions: "v1" is the bundled policies; "v2" is the same with the bare
``{label}.{namespace}`` name removed from cluster-local, so a `bare` request is issued
under v1 and denied under v2 (the `policy-swap` fault switches between them).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

CLUSTER_LOCAL = "csr-signer.dev/cluster-local"
KNATIVE = "csr-signer.dev/knative-internal"
FOREIGN = "example.com/not-ours"
PREFIX = "cx"
CLUSTER_DOMAIN = "cluster.local"
BARE_LINE = '        - "{label}.{namespace}"\n'
"""The line of policies/cluster-local.yaml that policy v2 removes."""

ISSUE, DENY, REFUSE, UNTOUCHED = "issue", "deny", "refuse", "untouched"
"""Outcomes: issued once; Denied; Denied or Failed, never issued; no condition at all."""

EXPECT: dict[str, dict[str, str]] = {
    "ok": {"v1": ISSUE, "v2": ISSUE},
    "deny": {"v1": DENY, "v2": DENY},
    "bare": {"v1": ISSUE, "v2": DENY},
    "kn": {"v1": ISSUE, "v2": ISSUE},
    "human": {"v1": UNTOUCHED, "v2": UNTOUCHED},
    "pcr": {"v1": ISSUE, "v2": ISSUE},
    "foreign": {"v1": UNTOUCHED, "v2": UNTOUCHED},
    "huge": {"v1": REFUSE, "v2": REFUSE},
    "badsig": {"v1": REFUSE, "v2": REFUSE},
}
"""Request kind -> policy version -> what must happen to it."""

LOAD_MIX: tuple[tuple[str, int], ...] = (
    ("ok", 44),
    ("deny", 25),
    ("bare", 8),
    ("kn", 8),
    ("human", 5),
    ("pcr", 10),
)
"""Steady load: kind and weight (percent). A quarter denied, some left for a human."""
HOSTILE_KINDS = ("garbage", "huge", "badsig", "foreign")
"""A hostile burst; `garbage` is refused by the apiserver itself (never stored)."""


def namespace(requester: int) -> str:
    return f"chaos-{requester}"


def request_name(kind: str, requester: int, seq: int) -> str:
    return f"{PREFIX}-{kind}-{requester}-{seq}"


@dataclass(frozen=True, slots=True)
class Named:
    kind: str
    requester: int

    @property
    def namespace(self) -> str:
        return namespace(self.requester)


def parse_name(name: str) -> Named | None:
    """The kind and requester a load request's name encodes; None for anything else."""
    parts = name.split("-")
    if len(parts) != 4 or parts[0] != PREFIX or parts[1] not in EXPECT:
        return None
    if not parts[2].isdigit():
        return None
    return Named(parts[1], int(parts[2]))


def allowed_names(ns: str, version: str) -> frozenset[str]:
    """Every DNS name the policy `version` lets a ServiceAccount of `ns` hold."""
    names = {f"web.{ns}.svc", f"web.{ns}.svc.{CLUSTER_DOMAIN}", f"kn-user-{ns}"}
    if version == "v1":
        names.add(f"web.{ns}")
    return frozenset(names)


def dns_names(kind: str, requester: int, total: int) -> tuple[str, list[str]]:
    """(signer, SANs) of a CSR of `kind` from `requester` (of `total` requesters)."""
    ns = namespace(requester)
    other = namespace((requester + 1) % max(total, 2))
    if kind in ("ok", "human"):
        return CLUSTER_LOCAL, [f"web.{ns}.svc", f"web.{ns}.svc.{CLUSTER_DOMAIN}"]
    if kind == "deny":
        return CLUSTER_LOCAL, [f"web.{other}.svc"]
    if kind == "bare":
        return CLUSTER_LOCAL, [f"web.{ns}"]
    if kind == "kn":
        return KNATIVE, [f"kn-user-{ns}"]
    if kind == "huge":
        return CLUSTER_LOCAL, [f"n{i}.web.{ns}.svc" for i in range(1500)]
    if kind == "foreign":
        return FOREIGN, [f"web.{ns}.svc"]
    if kind == "badsig":
        return CLUSTER_LOCAL, [f"web.{ns}.svc"]
    raise ValueError(f"no CSR for kind {kind}")


def csr_pem(names: list[str], *, bad_signature: bool = False) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    if bad_signature:
        der[-3] ^= 0x55  # inside the signature's INTEGERs: the structure stays readable
    body = base64.encodebytes(bytes(der)).decode()
    return (
        f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n".encode()
    )


def csr_body(name: str, kind: str, requester: int, total: int) -> dict[str, Any]:
    """The CSR manifest (JSON) for a load request; `garbage` is bytes no parser accepts."""
    if kind == "garbage":
        signer, pem = CLUSTER_LOCAL, b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
    else:
        signer, names = dns_names(kind, requester, total)
        pem = csr_pem(names, bad_signature=kind == "badsig")
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64.b64encode(pem).decode(),
            "signerName": signer,
            "usages": ["digital signature", "key encipherment", "server auth"],
            "expirationSeconds": 86400,
        },
    }


def pcr_stub() -> str:
    """base64 of the empty self-signed DER request a kubelet sends (an Ed25519 key)."""
    key = ed25519.Ed25519PrivateKey.generate()
    der = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, None)
        .public_bytes(serialization.Encoding.DER)
    )
    return base64.b64encode(der).decode()


def pcr_body(
    name: str, node: dict[str, Any], pod: dict[str, Any], serviceaccount: dict[str, Any]
) -> dict[str, Any]:
    """A PCR as `node`'s kubelet sends it for `pod` (objects as the apiserver returned them)."""
    return {
        "apiVersion": "certificates.k8s.io/v1beta1",
        "kind": "PodCertificateRequest",
        "metadata": {"name": name},
        "spec": {
            "signerName": KNATIVE,
            "podName": pod["metadata"]["name"],
            "podUID": pod["metadata"]["uid"],
            "serviceAccountName": serviceaccount["metadata"]["name"],
            "serviceAccountUID": serviceaccount["metadata"]["uid"],
            "nodeName": node["metadata"]["name"],
            "nodeUID": node["metadata"]["uid"],
            "maxExpirationSeconds": 86400,
            "stubPKCS10Request": pcr_stub(),
        },
    }
