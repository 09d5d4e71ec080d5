"""Which CEL library evaluates `celRules`: common-expression-language vs cel-python.

Not a test: a comparison to re-run when either library changes. It prints, for
each library, how many of the correctness cases below agree with the CEL
specification, which ones do not, and the time to evaluate two typical policy
rules on a typical request (compiled once, as the policy loader does).

Run: .venv/bin/pip install cel-python && .venv/bin/python benchmarks/cel_compare.py
(cel-python is not a dependency; common-expression-language is.)

The cases are the CEL semantics a policy author leans on: the macros over
lists, string functions, `in`, `has()`, integer arithmetic and its overflow,
the commutative error absorption of `&&`/`||` (an error on one side does not
matter when the other side decides), and errors for missing keys.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

REQUEST: dict[str, Any] = {
    "kind": "CSR",
    "dnsNames": ["web.shop.svc", "web.shop.svc.cluster.local"],
    "ipAddresses": [],
    "uris": [],
    "emails": [],
    "commonName": "web.shop.svc",
    "organizations": [],
    "usages": ["digital signature", "key encipherment", "server auth"],
    "key": {"algorithm": "ECDSA", "size": 256, "curve": "P-256"},
    "expirationSeconds": 86400,
}
REQUESTER: dict[str, Any] = {
    "username": "system:serviceaccount:shop:web",
    "groups": ["system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"],
    "namespace": "shop",
    "serviceAccount": "web",
    "namespaceLabels": {"team": "payments", "env": "prod"},
}
ACTIVATION = {"request": REQUEST, "requester": REQUESTER}

ERROR = object()
"""Expected: evaluation fails (the rule would be a violation)."""

CASES: list[tuple[str, object]] = [
    ("request.dnsNames.all(n, n.endsWith('.svc') || n.endsWith('.cluster.local'))", True),
    ("request.dnsNames.exists(n, n == 'web.shop.svc')", True),
    ("request.dnsNames.exists_one(n, n.startsWith('web.'))", False),
    ("request.dnsNames.filter(n, n.endsWith('.local')).size() == 1", True),
    ("request.dnsNames.map(n, n.size()).all(s, s < 64)", True),
    ("size(request.dnsNames) <= 2", True),
    ("'server auth' in request.usages", True),
    ("'team' in requester.namespaceLabels", True),
    ("requester.namespaceLabels['env'] == 'prod'", True),
    ("has(requester.namespaceLabels.team)", True),
    ("has(requester.namespaceLabels.owner)", False),
    ("requester.namespaceLabels['owner'] == 'x'", ERROR),
    ("request.key.algorithm == 'ECDSA' && request.key.size >= 256", True),
    ("request.expirationSeconds <= 7 * 24 * 3600", True),
    ("request.commonName.matches('^[a-z.]+$')", True),
    ("request.dnsNames.all(n, n.matches('^[a-z0-9.-]+$'))", True),
    ("requester.username.split(':').size() == 4", ERROR),  # split is an extension
    ("'shop' in requester.groups.map(g, g.substring(0, 4))", ERROR),  # substring: extension
    ("request.dnsNames[0].contains('shop')", True),
    ("request.dnsNames[5] == 'x'", ERROR),
    ("request.nope == 1", ERROR),
    ("false && request.nope == 1", False),
    ("request.nope == 1 && false", False),
    ("true || request.nope == 1", True),
    ("request.nope == 1 || true", True),
    ("9223372036854775807 + 1 > 0", ERROR),
    ("1 + 1u == 2", ERROR),
    ("'abc'.size() == 3 && 'é'.size() == 1", True),
    ("[1, 2] == [1, 2] && {'a': 1} == {'a': 1}", True),
    ("request.emails.all(e, false)", True),
    ("request.emails.exists(e, true)", False),
    ("int(request.key.size) / 0 == 1", ERROR),
    ("requester.namespace + '-' + requester.serviceAccount == 'shop-web'", True),
    ("string(request.expirationSeconds) == '86400'", True),
    ("type(request.dnsNames) == list", True),
]

RULES = (
    "request.dnsNames.all(n, n.endsWith('.svc') || n.endsWith('.' + requester.namespace))",
    "requester.namespaceLabels['env'] == 'prod' && request.key.size >= 256",
)
"""The two rules `benchmarks/bench_decide.py` times inside decide()."""


Compile = Callable[[str, bool], Callable[[], Any]]
"""expression, convert -> a call evaluating it; convert: turn the activation into the
library's values on every call (as per request), else once up front."""


def rust() -> tuple[Compile, str]:
    import cel  # common-expression-language

    def compile_(expression: str, convert: bool) -> Callable[[], Any]:
        program = cel.compile(expression)
        if convert:
            return lambda: program.execute(cel.Context(variables=ACTIVATION))
        context = cel.Context(variables=ACTIVATION)
        return lambda: program.execute(context)

    return compile_, "common-expression-language"


def python() -> tuple[Compile, str]:
    import celpy  # cel-python

    env = celpy.Environment()

    def convert_all() -> dict[str, Any]:
        return {"request": celpy.json_to_cel(REQUEST), "requester": celpy.json_to_cel(REQUESTER)}

    def compile_(expression: str, convert: bool) -> Callable[[], Any]:
        program = env.program(env.compile(expression))
        activation = convert_all()

        def run() -> Any:
            result = program.evaluate(convert_all() if convert else activation)
            if isinstance(result, celpy.CELEvalError):
                raise RuntimeError(str(result))
            return result

        return run

    return compile_, "cel-python"


def check(compile_: Compile) -> list[str]:
    wrong: list[str] = []
    for expression, expected in CASES:
        try:
            got: object = compile_(expression, False)()
        except Exception as exc:
            got = ERROR if not isinstance(exc, SyntaxError) else exc
        ok = got is ERROR if expected is ERROR else (got is not ERROR and got == expected)
        if not ok:
            shown = "error" if got is ERROR else repr(got)
            wrong.append(
                f"{expression}: expected {'error' if expected is ERROR else expected}, got {shown}"
            )
    return wrong


def timed(run: Callable[[], Any], rounds: int = 2000) -> float:
    """Median microseconds per call."""
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            run()
        samples.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(samples)


def main() -> None:
    for factory in (rust, python):
        try:
            compile_, name = factory()
        except ImportError as exc:
            print(f"{factory.__name__}: not installed ({exc})")
            continue
        wrong = check(compile_)
        print(f"{name}: {len(CASES) - len(wrong)}/{len(CASES)} cases agree with the CEL spec")
        for line in wrong:
            print(f"  {line}")
        start = time.perf_counter()
        for rule in RULES:
            compile_(rule, False)
        compile_ms = (time.perf_counter() - start) * 1e3
        rounds = 200 if name == "cel-python" else 2000
        evaluate = [timed(compile_(rule, False), rounds) for rule in RULES]
        converted = [timed(compile_(rule, True), rounds) for rule in RULES]
        print(
            f"  compile both rules: {compile_ms:.2f} ms; evaluate: "
            + ", ".join(f"{us:.1f} µs" for us in evaluate)
            + "; convert the activation and evaluate: "
            + ", ".join(f"{us:.1f} µs" for us in converted)
        )


if __name__ == "__main__":
    main()
