"""Latency of `decide()` on a typical CSR: parse + self-signature check + policy.

A typical CSR is what the cluster-local signer sees most: an ECDSA P-256 key,
a ServiceAccount requester, three DNS SANs (`<svc>.<ns>`, `.svc`,
`.svc.cluster.local`) and the usual TLS server usages, evaluated against the
bundled policies. The pool holds distinct requests from 50 namespaces, so the
per-namespace pattern cache is exercised the way a real cluster would (warm
after the first request from a namespace). Each call is timed on its own.
The two loops are interleaved over several rounds (so drift on a shared
machine hits both alike); the median over all calls is held against the
target in `benchmarks/targets.py`, and each round's median is shown so the
spread is visible. Exits 1 when the target is missed.

For comparison, `parse_csr` alone is timed too: the difference is the cost of
the policy engine itself. A third loop decides the same requests with two
`celRules` added to the approving policy (`CEL_RULES`, the requester's namespace
labels known): the difference from the second loop is what CEL costs, and the
ratio is the figure to compare across machines (the absolute target assumes an
unloaded core).

    .venv/bin/python benchmarks/bench_decide.py [--calls 4000] [--rounds 5]
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

from benchmarks.targets import DECIDE_CEL_MEDIAN_US, DECIDE_MEDIAN_US, Target, spread, verdict
from signer.models import CsrRequest, Outcome, Requester
from signer.pki.parsing import parse_csr
from signer.policy import PolicySet, bundled_policies_dir, decide, load_policies
from signer.policy.schema import CelRule

CEL_RULES = (
    "request.dnsNames.all(n, n.endsWith('.svc') || n.endsWith('.svc.cluster.local') "
    "|| n.endsWith('.' + requester.namespace))",
    "requester.namespaceLabels['env'] == 'prod' && request.key.size >= 256",
)
LABELS = {"env": "prod", "team": "payments"}

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


def with_cel_rules(policies: PolicySet) -> PolicySet:
    """The bundled policies, with CEL_RULES added to every policy (compiled as at load)."""
    rules = tuple(CelRule.model_validate({"expression": e}) for e in CEL_RULES)
    return PolicySet.of(
        (p.model_copy(update={"cel_rules": rules}) for p in policies.policies),
        policies.signers.values(),
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


def report(label: str, samples: list[float], rounds: list[float]) -> float:
    ordered = sorted(samples)
    median = statistics.median(ordered)
    p90 = ordered[int(len(ordered) * 0.9)]
    print(f"{label:<26} median {median:7.1f} us   p90 {p90:7.1f} us   (n={len(ordered)})")
    print(f"{'':<26} per-round medians: {spread(rounds)} us")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=4_000, help="per loop per round")
    parser.add_argument("--rounds", type=int, default=5)
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

    cel_policies = with_cel_rules(policies)
    assert all(
        decide(r, cel_policies, namespace_labels=LABELS).outcome is Outcome.APPROVE for r in pool
    )
    assert decide(pool[0], cel_policies, namespace_labels={}).outcome is Outcome.DENY

    def run_cel(i: int) -> object:
        return decide(pool[i % len(pool)], cel_policies, namespace_labels=LABELS)

    cel_name = "decide, 2 celRules"
    loops = {
        "parse_csr only": run_parse,
        "decide (parse + policy)": run_decide,
        cel_name: run_cel,
    }
    time_calls(run_decide, 2_000)  # warm-up: caches, allocator, branch predictors
    samples: dict[str, list[float]] = {name: [] for name in loops}
    rounds: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, fn in loops.items():
            taken = time_calls(fn, args.calls)
            samples[name] += taken
            rounds[name].append(statistics.median(taken))
    print(
        f"decide() on a typical cluster-local CSR, {os.cpu_count()} CPUs, one pinned, "
        f"{args.rounds} interleaved rounds"
    )
    parse_median = report("parse_csr only", samples["parse_csr only"], rounds["parse_csr only"])
    name = "decide (parse + policy)"
    median = report(name, samples[name], rounds[name])
    print(f"{'policy engine share':<26} median {median - parse_median:7.1f} us")
    cel_median = report(cel_name, samples[cel_name], rounds[cel_name])
    print(
        f"{'CEL share':<26} median {cel_median - median:7.1f} us   "
        f"ratio to decide without CEL {cel_median / median:.2f}"
    )
    return verdict(
        [
            Target("decide() median", median, DECIDE_MEDIAN_US, "us"),
            Target("decide() with 2 celRules median", cel_median, DECIDE_CEL_MEDIAN_US, "us"),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
