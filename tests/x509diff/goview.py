"""Go's crypto/x509 view of a request, from one long-running gox509 process.

`GoX509.view(der)` writes one base64 line and reads one JSON line back, so a
whole test session pays for one process start. `differences(view, go)` lists
every way our `CsrView` disagrees with what Go (the apiserver, kubectl) sees.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signer.models import CsrView, KeyInfo

GO_CURVES = {"secp224r1": "P-224", "secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


@dataclass(frozen=True)
class GoView:
    """One line of gox509's output (see gox509/main.go)."""

    ok: bool
    error: str
    dns: list[str]
    ips: list[str]
    uris: list[str]
    emails: list[str]
    subject: list[tuple[str, str, str | None]]
    """(OID, Go type of the value, the value when it is a string)."""
    cn: str
    key: dict[str, Any]
    sig_ok: bool
    sig_error: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GoView:
        subject = [
            (
                oid,
                kind,
                bytes.fromhex(text).decode("utf-8", "surrogateescape")
                if kind == "string"
                else None,
            )
            for oid, kind, text in data.get("subject") or []
        ]
        return cls(
            ok=data["ok"],
            error=data.get("error", ""),
            dns=data.get("dns") or [],
            ips=data.get("ips") or [],
            uris=data.get("uris") or [],
            emails=data.get("emails") or [],
            subject=subject,
            cn=data.get("cn", ""),
            key=data.get("key") or {},
            sig_ok=data.get("sig_ok", False),
            sig_error=data.get("sig_error", ""),
        )

    @property
    def accepted(self) -> bool:
        """What the apiserver stores: parses, and the self-signature verifies."""
        return self.ok and self.sig_ok


class GoX509:
    """One gox509 subprocess, fed and read line by line."""

    def __init__(self, binary: Path) -> None:
        self._proc = subprocess.Popen(
            [str(binary)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def view(self, der: bytes) -> GoView:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(base64.b64encode(der).decode() + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"gox509 exited with {proc.wait()}")
        return GoView.from_json(json.loads(line))

    def close(self) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=10)
        self._proc.stdout.close()


def go_key(key: KeyInfo) -> dict[str, Any]:
    """Our KeyInfo as gox509 prints a key."""
    if key.algorithm == "rsa":
        return {"alg": "RSA", "size": key.size, "e": key.exponent}
    if key.algorithm == "ecdsa":
        return {
            "alg": "ECDSA",
            "size": key.size,
            "curve": GO_CURVES.get(key.curve or "", key.curve),
        }
    if key.algorithm == "ed25519":
        return {"alg": "Ed25519", "size": 256}
    return {"alg": key.algorithm}


def differences(view: CsrView, go: GoView) -> list[str]:
    """Every way our view of an accepted request differs from Go's; empty means agreement."""
    if not go.ok:
        return [f"Go cannot parse a request we accepted: {go.error}"]
    out: list[str] = []
    if not go.sig_ok:
        out.append(f"Go rejects the self-signature of a request we accepted: {go.sig_error}")
    ours_subject = [(a.oid, "string", a.value) for a in view.subject]
    if ours_subject != go.subject:
        out.append(f"subject: ours {ours_subject} != Go's {go.subject}")
    if (view.common_name or "") != go.cn:
        out.append(f"CN: ours {view.common_name!r} != Go's {go.cn!r}")
    for what, ours, theirs in (
        ("DNS", list(view.dns_names), go.dns),
        ("URI", list(view.uris), go.uris),
        ("email", list(view.emails), go.emails),
    ):
        if ours != theirs:
            out.append(f"{what}: ours {ours} != Go's {theirs}")
    go_ips = [ipaddress.ip_address(ip) for ip in go.ips]
    if list(view.ip_addresses) != go_ips:
        out.append(f"IP: ours {list(view.ip_addresses)} != Go's {go_ips}")
    if go_key(view.key) != go.key:
        out.append(f"key: ours {go_key(view.key)} != Go's {go.key}")
    return out
