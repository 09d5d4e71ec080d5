"""Latency of `decide()` on a typical CSR: parse + self-signature check + policy.

A typical CSR is what the cluster-local signer sees most: an ECDSA P-256 key,
a ServiceAccount requester, three DNS SANs (`<svc>.<ns>`, `.svc`,
`.svc.cluster.local`) and the usual TLS server usages, evaluated against the
bundled policies. The pool holds distinct requests from 50 namespaces, so the
per-namespace pattern cache is exercised the way a real cluster would (warm
after the first request from a namespace). Each call is timed on its own;
the median and p90 are reported against the target.

For comparison, `parse_csr` alone is timed too: the difference is the cost of
the policy engine itself.

    .venv/bin/python benchmarks/bench_decide.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signer.models import CsrRequest, Outcome, Requester
from signer.pki.parsing import parse_csr
from signer.policy import bundled_policies_dir, decide, load_policies

TARGET_MEDIAN_US = 200.0
NAMESPACES = 50
USAGES = ("digital signature", "key encipherment", "server auth")


def typical_request(namespace: str, service: str) -> CsrRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    names = [f"{service}.{namespace}", f"{service}.{namespace}.svc"]
    names.append(f"{service}.{namespace}.svc.cluster.local")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return CsrRequest(
        name=f"{service}-{namespace}",
        signer_name="csr-signer.dev/cluster-local",
        request=csr.public_bytes(serialization.Encoding.PEM),
        requester=Requester(username=f"system:serviceaccount:{namespace}:{service}"),
        usages=USAGES,
    )


def time_calls(fn: Callable[[int], object], calls: int) -> list[float]:
    """Microseconds per call, each call timed on its own."""
    samples: list[float] = []
    clock = time.perf_counter_ns
    for i in range(calls):
        start = clock()
        fn(i)
        samples.append((clock() - start) / 1000)
    return samples


def report(label: str, samples: list[float]) -> float:
    ordered = sorted(samples)
    median = statistics.median(ordered)
    p90 = ordered[int(len(ordered) * 0.9)]
    print(f"{label:<28} median {median:7.1f} us   p90 {p90:7.1f} us   (n={len(ordered)})")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    policies = load_policies(bundled_policies_dir())
    pool = [typical_request(f"team-{n}", f"svc{n}") for n in range(NAMESPACES) for _ in range(4)]
    assert all(decide(r, policies).outcome is Outcome.APPROVE for r in pool)

    def run_decide(i: int) -> object:
        return decide(pool[i % len(pool)], policies)

    def run_parse(i: int) -> object:
        return parse_csr(pool[i % len(pool)].request)

    time_calls(run_decide, 2_000)  # warm-up: caches, allocator, branch predictors
    print(f"decide() on a typical cluster-local CSR, {os.cpu_count()} CPUs, one pinned")
    parse_median = report("parse_csr only", time_calls(run_parse, args.calls))
    median = report("decide (parse + policy)", time_calls(run_decide, args.calls))
    print(f"{'policy engine share':<28} median {median - parse_median:7.1f} us")
    verdict = "OK" if median <= TARGET_MEDIAN_US else "MISSED"
    print(f"target: median <= {TARGET_MEDIAN_US:.0f} us: {verdict}")
    return 0 if median <= TARGET_MEDIAN_US else 1


if __name__ == "__main__":
    raise SystemExit(main())
