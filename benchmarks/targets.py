"""The targets the project holds itself to, and one way to report them.

Every benchmark ends the same way: one line per target with the measured figure, the
limit and OK or MISSED, and an exit status that is non-zero when any target was missed,
so `make bench` (and a reader of its output) can tell a regression from noise without
reading prose. The limits live here, next to each other, so a change of target is one
reviewed line.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

DECIDE_MEDIAN_US = 200.0
"""decide() on a typical cluster-local CSR (parse + signature + policy), median, one core."""
DECIDE_CEL_MEDIAN_US = 300.0
"""decide() on the same CSR when the approving policy has two celRules, median, one core."""
CEL_WORST_RULE_MS = 250.0
"""The costliest celRules rule the loader admits, on a request at the limits, one call."""
ISSUE_RATIO = 0.8
"""parse_csr + issue vs. the least cryptography-only loop that yields the same certificate."""
CONTROLLER_RATIO = 0.8
"""End-to-end CSRs/s vs. the same-stack null controller (not the apiserver's limit)."""
LATENCY_P99_MS = 1000.0
"""Create returned -> watch saw the certificate, at a steady offered rate."""
RSS_MB = 100.0
"""Controller resident memory holding 10,000 CSRs left Pending, and after a restart that
relists them (issue 12)."""
KCM_RATIO = 1.0
"""approve+sign CSRs/s, csr-signer defaults vs kube-controller-manager at QPS 1000."""
CPU_MS_PER_CSR = 3.0
"""Controller CPU (utime+stime) per approved-and-signed CSR."""
KCM_LATENCY_P99_MS = 250.0
"""Create -> certificate seen, at 100 CSRs/s offered (bench_vs_kcm)."""


@dataclass(frozen=True, slots=True)
class Target:
    """One measured figure against its limit."""

    what: str
    measured: float
    limit: float
    unit: str = ""
    higher_is_better: bool = False

    @property
    def met(self) -> bool:
        if self.higher_is_better:
            return self.measured >= self.limit
        return self.measured <= self.limit

    def line(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        verdict = "OK" if self.met else "MISSED"
        unit = f" {self.unit}" if self.unit else ""
        return (
            f"target: {self.what}: {self.measured:.3f}{unit} "
            f"({sign} {self.limit:g}{unit}) {verdict}"
        )


def verdict(targets: Sequence[Target]) -> int:
    """Print every target line; 0 when all are met, 1 otherwise."""
    for target in targets:
        print(target.line())
    return 0 if all(t.met for t in targets) else 1


def spread(values: Sequence[float]) -> str:
    """`median (min-max over n runs)`: how stable a repeated figure was."""
    return (
        f"{statistics.median(values):.1f} "
        f"(min {min(values):.1f}, max {max(values):.1f}, n={len(values)})"
    )


HOSTILE_RSS_MIB = 256.0
"""Controller RSS and peak under hostile CSRs (1.2-1.5 MB requests, relists of them): the
chart's memory limit (256 Mi), which the controller must never reach."""
HEALTHZ_P99_MS = 250.0
"""/healthz latency (p99, polled every 50 ms) while worst-case CSRs are processed."""
HEALTHZ_TIMEOUTS = 0
"""/healthz polls that failed or took over 1 s during that flood."""
INNOCENT_ISSUE_SECONDS = 2.0
"""Create -> issued for another namespace's ordinary CSR, created right after the flood."""
PENDING_EVENTS_PER_RESYNC = 0
"""Pending Events re-emitted per resync for CSRs already left Pending (one per CSR, once)."""
PCR_CSR_THROUGHPUT_RATIO = 1.0
"""PodCertificateRequests/s vs. CSRs/s for the same signer, policy and CA (median over
runs): a PCR is answered with one status write, a CSR with two (approval, certificate)."""
PCR_LATENCY_P99_MS = 1000.0
"""PCR create returned -> watch saw it Issued, at a steady offered rate (100/s)."""
