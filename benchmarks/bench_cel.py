"""The most a single `celRules` rule can cost, within the limits the loader enforces.

CEL has no loops, but the library's `map`/`filter` copy their result list on each
step and `matches` compiles its pattern on every call, so a rule's cost grows
with the lists it walks and the number of macros it chains. The loader bounds
both (`signer.policy.celrules`: one macro level, at most MAX_LIST_ITEMS values
per list, at most MAX_EXPRESSION_LENGTH characters, literal patterns only).
This script builds the most expensive rules we know of that still load, runs
them on a request at the limits (MAX_LIST_ITEMS DNS names of 253 characters),
and holds the slowest against CEL_WORST_RULE_MS.

    .venv/bin/python benchmarks/bench_cel.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.targets import CEL_WORST_RULE_MS, Target, verdict
from signer.models import KeyInfo, Requester
from signer.policy.celrules import (
    MAX_EXPRESSION_LENGTH,
    MAX_LIST_ITEMS,
    Activation,
    compile_expression,
    evaluate_rules,
)
from signer.policy.schema import CelRule


def chained(step: str) -> str:
    """`step && step && ...`, as many as fit in MAX_EXPRESSION_LENGTH."""
    count = (MAX_EXPRESSION_LENGTH + 4) // (len(step) + 4)
    return " && ".join([step] * count)


WORST = {
    "chained map building long strings": chained("request.dnsNames.map(a, a + a + a).size() > 0"),
    "chained filter": chained("request.dnsNames.filter(a, a.contains('x')).size() >= 0"),
    "chained literal regex": chained("request.dnsNames.all(a, !a.matches('^(a|b)*c$'))"),
}


def main() -> int:
    names = [f"n{i:03d}" + "a" * 249 for i in range(MAX_LIST_ITEMS)]
    requester = Requester("system:serviceaccount:shop:web")
    targets = []
    for label, expression in WORST.items():
        compile_expression(expression)  # it loads: within every limit
        rule = CelRule.model_validate({"expression": expression})
        activation = Activation.of(
            kind="CSR", requester=requester, key=KeyInfo("ecdsa", 256), dns_names=names
        )
        start = time.perf_counter()
        evaluate_rules((rule,), activation)
        ms = (time.perf_counter() - start) * 1e3
        print(f"{label:<36} {len(expression):5} chars  {ms:8.1f} ms")
        targets.append(Target(f"worst rule ({label})", ms, CEL_WORST_RULE_MS, "ms"))
    return verdict(targets)


if __name__ == "__main__":
    raise SystemExit(main())
