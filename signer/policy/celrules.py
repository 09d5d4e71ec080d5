"""`celRules`: policy conditions in CEL, compiled at load, evaluated per request. Pure.

A rule is a boolean CEL expression over two variables, `request` (what is
asked for) and `requester` (who asks); a rule that is false is a violation
carrying its message, in the usual `<policy>: celRules[i]: <message>` form.

The library is common-expression-language (a binding of the Rust
cel-interpreter): `benchmarks/cel_compare.py` compares it with cel-python; it
agrees with the spec on as many cases and is 5-15x faster (docs/policies.md,
"CEL rules").

The library has no type checker and no cost limits, so this module adds both
at load time, where a problem can still be tied to a file and line:

- **Compiles**: a syntax error is a load error.
- **Known names**: only `request` and `requester` (and the variables a macro
  binds), only their documented fields, and only the functions the library
  implements (`size`, `contains`, `startsWith`, `endsWith`, `matches`,
  conversions): a typo or an extension function it lacks (`split`) would
  otherwise fail every request at run time.
- **Boolean**: the expression is evaluated on representative inputs
  (`_PROBES`); a result that is not a boolean is a load error. An error there
  is not (`requester.namespaceLabels['team']` fails on a probe without that
  label), so such a rule can still fail at run time: that is a violation
  (fail closed), never an approval.
- **Bounded cost**. CEL has no loops, only macros over finite lists, but this
  interpreter builds `map`/`filter` results by copying (quadratic) and
  compiles a `matches` pattern on every call. Measured on the 2-core CI VM, two
  nested macros over 100 names take up to 1.7 s and one macro over 10,000 names
  70 s, so: no macro inside another macro's body (`MAX_MACRO_DEPTH`), at most
  `MAX_LIST_ITEMS` values in any list a rule sees (a larger request is a
  violation, not evaluated), at most `MAX_EXPRESSION_LENGTH` characters (which
  bounds how many macros one rule chains) and `MAX_RULES` rules per policy,
  and `matches()` takes a string literal only (the request can never supply a
  regular expression; the Rust engine is linear-time). The worst rule these
  limits admit costs tens of milliseconds (benchmarks/bench_cel.py); a
  timeout is not an option, as a call into the library cannot be interrupted.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import cel

from signer.models import KeyInfo, Requester

MAX_EXPRESSION_LENGTH: Final = 1024
"""Characters in one expression: bounds how many macros a rule can chain."""
MAX_RULES: Final = 16
"""celRules per policy."""
MAX_MACRO_DEPTH: Final = 1
"""Macros (all, exists, exists_one, map, filter) nested in each other's bodies."""
MAX_LIST_ITEMS: Final = 100
"""Values in any one list (or map) a rule sees; the default maxDnsNames."""
MAX_MESSAGE_LENGTH: Final = 256

MACROS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})
FUNCTIONS: Final = frozenset(
    {
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "type",
        "dyn",
        "duration",
        "timestamp",
    }
)
"""What rules may call: the standard functions the library implements."""
_TYPE_NAMES: Final = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
REQUEST_FIELDS: Final = (
    "kind",
    "dnsNames",
    "ipAddresses",
    "uris",
    "emails",
    "commonName",
    "organizations",
    "usages",
    "key",
    "expirationSeconds",
)
KEY_FIELDS: Final = ("algorithm", "size", "curve")
REQUESTER_FIELDS: Final = ("username", "groups", "namespace", "serviceAccount", "namespaceLabels")
_FIELDS: Final = {"request": REQUEST_FIELDS, "requester": REQUESTER_FIELDS}
_CURVE_NAMES: Final = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_ALGORITHMS: Final = {"rsa": "RSA", "ecdsa": "ECDSA", "ed25519": "Ed25519"}

_STRING = re.compile(
    r"""(?P<prefix>[rRbB]{0,2})(?P<quote>'''|\"\"\"|'|")""",
)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_MACRO_CALL = re.compile(rf"\.\s*({'|'.join(sorted(MACROS, key=len, reverse=True))})\s*$")
_BOUND = re.compile(rf"\.\s*(?:{'|'.join(MACROS)})\s*\(\s*({_IDENT})\s*,")
_FIELD = re.compile(rf"(?<![\w.])(request|requester)\s*\.\s*({_IDENT})(?:\s*\.\s*({_IDENT}))?")
_MATCHES = re.compile(r"\bmatches\s*\(")


class CelError(ValueError):
    """A rule that cannot be loaded; the message says why, for `file:line: field: problem`."""


@dataclass(frozen=True, slots=True)
class CelProgram:
    """One rule's expression, compiled once when the policy loads."""

    source: str
    program: cel.Program = field(repr=False, compare=False)
    reads: frozenset[str] = frozenset()
    """What it reads: `request.dnsNames`-style fields, or a whole `request`/`requester`.
    Converting values to CEL is most of a rule's cost (about 3 us a string), so a
    request is converted only as far as its rules read it."""


def compile_expression(expression: str) -> CelProgram:
    """Compile and check `expression` (module docstring); raises CelError."""
    if not expression.strip():
        raise CelError("the expression is empty")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise CelError(
            f"the expression is {len(expression)} characters; at most "
            f"{MAX_EXPRESSION_LENGTH} are allowed (split it into several rules)"
        )
    try:
        program = cel.compile(expression)
    except (ValueError, RuntimeError) as exc:
        # The library appends the source and a caret: the line already shows it.
        raise CelError(f"does not compile: {_one_line(exc).split(' | ')[0]}") from None
    try:
        code = _code_only(expression)
    except ValueError as exc:
        raise CelError(f"does not compile: {exc}") from None
    _check_depth(code)
    _check_names(program, code)
    _check_matches(expression, code)
    _check_boolean(program)
    return CelProgram(expression, program, _reads(code))


Variables = tuple[dict[str, Any], dict[str, Any]]
"""`request` and `requester`, as plain Python values."""


@dataclass(slots=True)
class Activation:
    """The variables of one request, converted to CEL once and shared by every rule.

    Nothing is built until a rule needs it: `make` runs on the first `context()`,
    so a request that meets no rule costs one closure.
    """

    make: Callable[[], Variables]
    _variables: Variables | None = None
    _context: cel.Context | str | None = None
    """The last context built (or why none could be), for the fields in `_reads`."""
    _reads: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        kind: str,
        requester: Requester,
        key: KeyInfo,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[object] = (),
        uris: Sequence[str] = (),
        emails: Sequence[str] = (),
        common_name: str | None = None,
        organizations: Sequence[str] = (),
        usages: Sequence[str] = (),
        expiration_seconds: int | None = None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> Activation:
        """The documented variables (docs/policies.md, "CEL rules"), built when first used."""

        def make() -> Variables:
            sa = requester.serviceaccount
            request = {
                "kind": kind,
                "dnsNames": list(dns_names),
                "ipAddresses": [str(ip) for ip in ip_addresses],
                "uris": list(uris),
                "emails": list(emails),
                "commonName": common_name or "",
                "organizations": list(organizations),
                "usages": list(usages),
                "key": {
                    "algorithm": _ALGORITHMS.get(key.algorithm, key.algorithm.upper()),
                    "size": key.size,
                    "curve": _CURVE_NAMES.get(key.curve or "", key.curve or ""),
                },
                "expirationSeconds": expiration_seconds or 0,
            }
            who = {
                "username": requester.username,
                "groups": list(requester.groups),
                "namespace": sa.namespace if sa else "",
                "serviceAccount": sa.name if sa else "",
                "namespaceLabels": dict(namespace_labels or {}),
            }
            return request, who

        return cls(make)

    @property
    def request(self) -> dict[str, Any]:
        return self._values()[0]

    @property
    def requester(self) -> dict[str, Any]:
        return self._values()[1]

    def _values(self) -> Variables:
        if self._variables is None:
            self._variables = self.make()
        return self._variables

    def context(self, reads: frozenset[str]) -> cel.Context | str:
        """A CEL context holding at least `reads` (CelProgram.reads), or why the request
        is too large for rules. Built on first use, rebuilt only for a wider `reads`."""
        if self._context is None or not reads <= self._reads:
            self._reads = self._reads | reads
            variables: dict[str, dict[str, Any]] = {}
            for name, values in (("request", self.request), ("requester", self.requester)):
                if name in self._reads:
                    variables[name] = values
                elif any(read.startswith(f"{name}.") for read in self._reads):
                    variables[name] = _select(name, values, self._reads)
            too_long = _too_long(variables)
            self._context = too_long or cel.Context(variables=variables)
        return self._context


class Rule(Protocol):
    """A policy's CEL rule, as the schema holds it."""

    @property
    def expression(self) -> CelProgram: ...

    @property
    def message(self) -> str: ...


def evaluate_rules(rules: Sequence[Rule], activation: Activation) -> list[tuple[int, str]]:
    """(index, message) of each rule that is not true.

    A rule that fails, or yields something other than a boolean, is a
    violation too: a rule can deny, never approve by accident.
    """
    if not rules:
        return []
    context = activation.context(frozenset().union(*(r.expression.reads for r in rules)))
    if isinstance(context, str):
        return [(0, f"not evaluated: {context}")]
    out: list[tuple[int, str]] = []
    for index, rule in enumerate(rules):
        try:
            result = rule.expression.program.execute(context)
        except Exception as exc:  # TypeError, RuntimeError, ...: any failure denies
            out.append((index, f"could not be evaluated: {_one_line(exc)[:200]}"))
            continue
        if result is True:
            continue
        if result is False:
            out.append((index, rule.message or f"{_quoted(rule.expression.source)} is false"))
        else:
            out.append((index, f"evaluated to {type(result).__name__}, not a boolean"))
    return out


def _too_long(variables: dict[str, dict[str, Any]]) -> str | None:
    for variable, values in variables.items():
        for name, value in values.items():
            if isinstance(value, list | dict) and len(value) > MAX_LIST_ITEMS:
                return (
                    f"{variable}.{name} has {len(value)} values; "
                    f"CEL rules see requests with at most {MAX_LIST_ITEMS}"
                )
    return None


def _code_only(expression: str) -> str:
    """`expression` with every string literal's content blanked (quotes kept).

    What is left is code, so the checks below cannot be fooled (or tripped) by
    a string that looks like a macro call or a field.
    """
    out: list[str] = []
    i = 0
    n = len(expression)
    while i < n:
        match = _STRING.match(expression, i)
        if match is None or not _starts_literal(expression, i):
            out.append(expression[i])
            i += 1
            continue
        raw = "r" in match["prefix"].lower()
        quote = match["quote"]
        j = match.end()
        while j < n and not expression.startswith(quote, j):
            j += 2 if expression[j] == "\\" and not raw else 1
        if j >= n:
            raise ValueError("a string is not closed")
        out.append(match["prefix"] + quote + " " * (j - match.end()) + quote)
        i = j + len(quote)
    return "".join(out)


def _starts_literal(text: str, i: int) -> bool:
    """A prefix letter starts a literal only where an identifier could not continue."""
    return i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")


_VARIABLE = re.compile(
    rf"(?<![\w.])(request|requester)\b(?:\s*\.\s*({_IDENT})(?:\s*\.\s*({_IDENT}))?)?"
)


def _reads(code: str) -> frozenset[str]:
    """`request.dnsNames` for each field read as such (`request.key.size` for one part of
    the key); the variable's name when it is used in any other way (`request == ...`,
    `request['dnsNames']`), which reads it all."""
    reads: set[str] = set()
    for variable, name, sub in _VARIABLE.findall(code):
        if not name:
            reads.add(variable)
        elif variable == "request" and name == "key" and sub in KEY_FIELDS:
            reads.add(f"request.key.{sub}")
        else:
            reads.add(f"{variable}.{name}")
    return frozenset(reads)


def _select(name: str, values: dict[str, Any], reads: frozenset[str]) -> dict[str, Any]:
    """The fields of variable `name` that `reads` reads (a sub-map only as far as read)."""
    out: dict[str, Any] = {}
    for field_name, value in values.items():
        path = f"{name}.{field_name}"
        if path in reads:
            out[field_name] = value
        elif isinstance(value, dict):
            parts = {k: v for k, v in value.items() if f"{path}.{k}" in reads}
            if parts:
                out[field_name] = parts
    return out


def _check_depth(code: str) -> None:
    stack: list[bool] = []  # per open bracket: is it a macro's argument list?
    for i, char in enumerate(code):
        if char in "([{":
            macro = char == "(" and _MACRO_CALL.search(code, 0, i) is not None
            stack.append(macro)
            if sum(stack) > MAX_MACRO_DEPTH:
                raise CelError(
                    "a macro (all, exists, exists_one, map, filter) inside another macro's "
                    "body costs the product of the lists' sizes; use one macro per list, "
                    "and `in` for membership"
                )
        elif char in ")]}" and stack:
            stack.pop()


def _check_names(program: cel.Program, code: str) -> None:
    references = program.references()
    bound = set(_BOUND.findall(code))
    unknown_vars = sorted(set(references["variables"]) - bound - _TYPE_NAMES - set(_FIELDS))
    if unknown_vars:
        raise CelError(
            f"unknown variable {unknown_vars[0]!r} (the variables are request and requester)"
        )
    calls = {
        name
        for name in references["functions"]
        if not name.startswith(("_", "!_", "-_", "@")) and name not in MACROS
    }
    unknown_calls = sorted(calls - FUNCTIONS)
    if unknown_calls:
        raise CelError(
            f"unknown function {unknown_calls[0]!r} (rules may call: {', '.join(sorted(FUNCTIONS))})"
        )
    for variable, name, sub in _FIELD.findall(code):
        if variable in bound:
            continue
        if name not in _FIELDS[variable]:
            known = ", ".join(_FIELDS[variable])
            raise CelError(f"{variable} has no field {name!r} (its fields: {known})")
        if variable == "request" and name == "key" and sub and sub not in KEY_FIELDS:
            raise CelError(
                f"request.key has no field {sub!r} (its fields: {', '.join(KEY_FIELDS)})"
            )


def _check_matches(expression: str, code: str) -> None:
    for match in _MATCHES.finditer(code):
        start = match.end()
        rest = code[start:].lstrip()
        literal = _STRING.match(rest)
        if literal is None:
            raise CelError(
                "matches() takes a string literal pattern: a pattern built from the "
                "request would let a requester choose the regular expression"
            )
        offset = start + (len(code[start:]) - len(rest))
        end = code.index(literal["quote"], offset + literal.end()) + len(literal["quote"])
        pattern = expression[offset:end]
        try:
            cel.compile(f"''.matches({pattern})").execute(None)
        except Exception as exc:
            raise CelError(f"matches({pattern}): {_one_line(exc)}") from None


_PROBE_KEY = KeyInfo("ecdsa", 256, curve="secp256r1")
_PROBES: Final = (
    Activation.of(
        kind="CSR",
        requester=Requester(
            "system:serviceaccount:probe:probe",
            ("system:serviceaccounts", "system:serviceaccounts:probe", "system:authenticated"),
        ),
        key=_PROBE_KEY,
        dns_names=("probe.probe.svc",),
        ip_addresses=("10.0.0.1",),
        uris=("spiffe://probe/ns/probe/sa/probe",),
        emails=("probe@probe.example",),
        common_name="probe.probe.svc",
        organizations=("probe",),
        usages=("digital signature", "server auth"),
        expiration_seconds=86400,
        namespace_labels={"probe": "probe"},
    ),
    Activation.of(kind="PCR", requester=Requester("probe"), key=KeyInfo("rsa", 2048)),
)
"""Representative inputs: every field set, then every list empty."""


_FAILED: Final = object()


def _check_boolean(program: cel.Program) -> None:
    for probe in _PROBES:
        context = probe.context(frozenset(_FIELDS))
        assert not isinstance(context, str)
        result: object = _FAILED
        # An error depends on the input: judged per request, failing closed.
        with contextlib.suppress(Exception):
            result = program.execute(context)
        if result is not _FAILED and not isinstance(result, bool):
            raise CelError(
                f"must be a boolean expression; it evaluates to {_cel_type(result)} "
                "(compare it with something, e.g. `== ...`)"
            )


def _cel_type(value: object) -> str:
    names = {
        str: "a string",
        int: "an int",
        float: "a double",
        list: "a list",
        dict: "a map",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _quoted(expression: str) -> str:
    text = " ".join(expression.split())
    return json.dumps(text if len(text) <= 120 else text[:117] + "...")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
