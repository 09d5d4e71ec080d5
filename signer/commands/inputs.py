"""Reading request input for offline commands: a CertificateSigningRequest or a
PodCertificateRequest manifest (YAML or JSON, as `kubectl get csr|pcr NAME -o yaml`
prints it) or a bare PEM CSR.

A PodCertificateRequest is read by `signer.reactor.pods.pod_request` and
`signer.pki.podcerts.pod_key`, exactly as the controller reads one, so `policy check`
cannot disagree with the controller about what a PCR asks for.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from signer.commands import CliError
from signer.models import CsrRequest, PodRequest, Refusal, Requester
from signer.pki.podcerts import pod_key
from signer.reactor.pods import pod_request


def read_source(source: str) -> bytes:
    """Bytes of FILE, or of stdin for `-`."""
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror or exc}") from exc


def is_pem_csr(data: bytes) -> bool:
    return data.lstrip().startswith(b"-----BEGIN")


POD_KIND = "PodCertificateRequest"


def load_document(data: bytes, source: str = "<input>") -> dict[str, Any]:
    """The one YAML or JSON object in `data`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{source}: not UTF-8 text") from exc
    try:
        doc: Any = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CliError(f"{source}: not valid YAML or JSON: {_one_line(exc)}") from exc
    if not isinstance(doc, dict):
        raise CliError(f"{source}: expected a CertificateSigningRequest object")
    return doc


def parse_pod_manifest(doc: dict[str, Any], source: str = "<input>") -> PodRequest | Refusal:
    """A certificates.k8s.io/v1beta1 PodCertificateRequest document -> PodRequest, or the
    refusal of its key (the controller Denies it UnsupportedKeyType)."""
    metadata = doc.get("metadata")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise CliError(f"{source}: spec is missing")
    if not isinstance(metadata, dict) or not metadata.get("namespace"):
        raise CliError(f"{source}: metadata.namespace is missing (kubectl get pcr -n NS -o yaml)")
    for name in ("signerName", "serviceAccountName"):
        if not isinstance(spec.get(name), str) or not spec[name]:
            raise CliError(f"{source}: spec.{name} is missing")
    annotations = spec.get("unverifiedUserAnnotations")
    if annotations is not None and (
        not isinstance(annotations, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())
    ):
        raise CliError(f"{source}: spec.unverifiedUserAnnotations must map strings to strings")
    key = pod_key(spec)
    if isinstance(key, Refusal):
        return key
    return pod_request(doc, key)


def parse_manifest(data: bytes, source: str = "<input>") -> CsrRequest:
    """A certificates.k8s.io/v1 CertificateSigningRequest document -> CsrRequest."""
    return parse_csr_manifest(load_document(data, source), source)


def parse_csr_manifest(doc: dict[str, Any], source: str = "<input>") -> CsrRequest:
    """`parse_manifest` of a document already loaded."""
    if doc.get("kind") not in (None, "CertificateSigningRequest"):
        raise CliError(f"{source}: kind is {doc.get('kind')!r}, expected CertificateSigningRequest")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise CliError(f"{source}: spec is missing")
    request = spec.get("request")
    if not isinstance(request, str) or not request:
        raise CliError(f"{source}: spec.request is missing")
    try:
        pem = base64.b64decode(request, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CliError(f"{source}: spec.request is not base64") from exc
    signer_name = spec.get("signerName")
    if not isinstance(signer_name, str) or not signer_name:
        raise CliError(f"{source}: spec.signerName is missing")
    usages = spec.get("usages") or []
    groups = spec.get("groups") or []
    expiration = spec.get("expirationSeconds")
    if not isinstance(usages, list) or not all(isinstance(u, str) for u in usages):
        raise CliError(f"{source}: spec.usages must be a list of strings")
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise CliError(f"{source}: spec.groups must be a list of strings")
    if expiration is not None and (not isinstance(expiration, int) or isinstance(expiration, bool)):
        raise CliError(f"{source}: spec.expirationSeconds must be an integer")
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    return CsrRequest(
        name=str(metadata.get("name", "")),
        signer_name=signer_name,
        request=pem,
        requester=Requester(
            username=str(spec.get("username", "")),
            groups=tuple(groups),
            uid=str(spec.get("uid", "")),
        ),
        usages=tuple(usages),
        expiration_seconds=expiration,
    )


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
