"""Certificates issued per second on one core: our path vs. bare `cryptography`.

Our path is what the controller runs per CSR: `parse_csr` (decode, verify the
self-signature, extract a CsrView) then `issue` (checks, usage mapping,
lifetime clamping, build, sign, PEM). The direct loop is the least work that
yields the same certificate with `cryptography` alone: load the CSR, verify
its signature, build a certificate with the same extensions, sign, PEM. The
ratio is the cost of our structure; the target is in `benchmarks/targets.py`.

Both loops run in the same process, pinned to one CPU, interleaved over
several rounds (best round counts for each), on the same distinct P-256 CSRs
signed by an ECDSA P-256 CA.

    .venv/bin/python benchmarks/bench_issue.py [--seconds 0.25] [--rounds 12]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.targets import ISSUE_RATIO, Target, spread, verdict
from signer.pki.ca import CaBundle, generate_root, load_ca
from signer.pki.parsing import parse_csr
from signer.pki.signing import Issued, SigningLimits, issue

USAGES = ("digital signature", "key encipherment", "server auth")
LIMITS = SigningLimits(max_duration=timedelta(days=365), default_duration=timedelta(days=30))


def make_csrs(count: int) -> list[bytes]:
    """Distinct requests, as a cluster sends them: one key per workload."""
    out = []
    for i in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"web-{i}")]))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(f"web-{i}.default.svc"), x509.DNSName(f"web-{i}")]
                ),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        out.append(csr.public_bytes(serialization.Encoding.PEM))
    return out


def ours(ca: CaBundle) -> Callable[[bytes], bytes]:
    def run(pem: bytes) -> bytes:
        result = issue(
            parse_csr(pem),
            ca,
            usages=USAGES,
            now=datetime.now(UTC),
            requested_seconds=None,
            limits=LIMITS,
        )
        assert isinstance(result, Issued)
        return result.certificate_pem

    return run


def direct(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> Callable[[bytes], bytes]:
    # Precomputed as any hand-written signer would.
    issuer = ca_cert.subject
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    key_usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    leaf = x509.BasicConstraints(ca=False, path_length=None)
    sha256 = hashes.SHA256()

    def run(pem: bytes) -> bytes:
        csr = x509.load_pem_x509_csr(pem)
        if not csr.is_signature_valid:
            raise ValueError("bad CSR signature")
        public_key = csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        now = datetime.now(UTC).replace(microsecond=0)
        cert = (
            x509.CertificateBuilder()
            .issuer_name(issuer)
            .subject_name(csr.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=30) - timedelta(minutes=5))
            .add_extension(leaf, critical=True)
            .add_extension(key_usage, critical=True)
            .add_extension(eku, critical=False)
            .add_extension(san, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(aki, critical=False)
            .sign(ca_key, sha256)
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    return run


def rate(fn: Callable[[bytes], bytes], csrs: list[bytes], seconds: float) -> float:
    """Certificates per second over at least `seconds` of wall time."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for pem in csrs:
            fn(pem)
        done += len(csrs)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.25, help="per loop per round")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--csrs", type=int, default=200, help="distinct requests to cycle")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    now = datetime.now(UTC)
    cert_pem, key_pem = generate_root("bench CA", "ecdsa-p256", 30, now)
    ca = load_ca(cert_pem, key_pem, now=now)
    ca_key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    csrs = make_csrs(args.csrs)

    loops = {"ours": ours(ca), "direct": direct(ca.certificate, ca_key)}
    for fn in loops.values():  # warm up; also checks both produce a certificate
        x509.load_pem_x509_certificate(fn(csrs[0])).verify_directly_issued_by(ca.certificate)
    best = dict.fromkeys(loops, 0.0)
    each: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, fn in loops.items():
            each[name].append(rate(fn, csrs, args.seconds))
            best[name] = max(best[name], each[name][-1])

    ratio = best["ours"] / best["direct"]
    print(f"ECDSA P-256 CA, P-256 CSRs, one core, best of {args.rounds} x {args.seconds:g}s")
    print(f"ours   (parse_csr + issue): {best['ours']:8.0f} certificates/s")
    print(f"direct (cryptography only): {best['direct']:8.0f} certificates/s")
    print(f"per-round rates, ours:   {spread(each['ours'])}")
    print(f"per-round rates, direct: {spread(each['direct'])}")
    print(f"ratio ours/direct:          {ratio:8.2f}")
    return verdict([Target("issuance ratio ours/direct", ratio, ISSUE_RATIO, "", True)])


if __name__ == "__main__":
    raise SystemExit(main())
