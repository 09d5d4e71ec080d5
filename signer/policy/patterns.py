"""Name patterns with placeholders, compiled once at load time.

A pattern is literal text with `{placeholder}`s. Two kinds of placeholder exist:

- bound ones stand for a fact about the request, never for something the
  requester chooses: `{namespace}` and `{serviceaccount}` (the requesting
  ServiceAccount, from spec.username) and `{clusterDomain}` (configuration).
  A ServiceAccount name that contains a dot binds nothing, so a pattern with
  `{serviceaccount}` never matches for it (see `Bindings.get`);
- `{label}` stands for any one DNS-1123 label (lowercase, 1-63 characters,
  no dots), the only freedom a pattern can grant.

There is deliberately no `*`: a wildcard that may or may not cross dots is the
classic way a policy grants more than its author meant. Matching is exact and
case-sensitive, so `WEB.default.svc`, `web.default.svc.` and `*.default.svc`
never match a lowercase pattern.

Patterns without bound placeholders compile to one regex at load time; the
others compile once per distinct set of bound values (a small cache), because
substituting the escaped literal value is the only exact way to match e.g.
`{serviceaccount}.{clusterDomain}`, where both values may contain dots.

A pattern without free placeholders also describes exactly one value per
request: `render` produces it, for the names a policy grants to a pod
(`podCertificate`) rather than matches against what was asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

from signer.models import is_dns1123_label, is_dns1123_subdomain

LABEL_REGEX = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
BOUND_PLACEHOLDERS = ("namespace", "serviceaccount", "clusterDomain")
FREE_PLACEHOLDERS = ("label",)
_TOKEN = re.compile(r"\{([^{}]*)\}")
_DNS_LABEL = re.compile(LABEL_REGEX)
_CACHE_LIMIT = 1024
# Values the load-time validation substitutes for placeholders, chosen to be
# valid in every kind of pattern (a label, a namespace, a domain).
_SAMPLES = {
    "namespace": "ns",
    "serviceaccount": "sa",
    "clusterDomain": "cluster.local",
    "label": "x",
}


class PatternError(ValueError):
    """A pattern is not valid; the message is for the policy author."""


class PatternKind(Enum):
    """What a pattern describes; decides which placeholders and text are valid."""

    DNS = "DNS name"
    URI = "URI"
    EMAIL = "email address"
    TEXT = "subject value"
    NAMESPACE = "namespace"
    SERVICEACCOUNT_NAME = "ServiceAccount name"


_KIND_PLACEHOLDERS: dict[PatternKind, tuple[str, ...]] = {
    PatternKind.DNS: BOUND_PLACEHOLDERS + FREE_PLACEHOLDERS,
    PatternKind.URI: BOUND_PLACEHOLDERS + FREE_PLACEHOLDERS,
    PatternKind.EMAIL: BOUND_PLACEHOLDERS + FREE_PLACEHOLDERS,
    PatternKind.TEXT: BOUND_PLACEHOLDERS + FREE_PLACEHOLDERS,
    # Selecting requesters by who they are must not depend on who they are.
    PatternKind.NAMESPACE: FREE_PLACEHOLDERS,
    PatternKind.SERVICEACCOUNT_NAME: FREE_PLACEHOLDERS,
}


@dataclass(frozen=True, slots=True)
class Bindings:
    """Values of the bound placeholders for one request.

    `namespace` and `serviceaccount` are None when the requester is not a
    well-formed ServiceAccount: a pattern using them then matches nothing.
    """

    namespace: str | None
    serviceaccount: str | None
    cluster_domain: str

    def get(self, placeholder: str) -> str | None:
        if placeholder == "namespace":
            return self.namespace
        if placeholder == "serviceaccount":
            # A dotted ServiceAccount name would let `web.victim` in namespace `svc`
            # claim `{serviceaccount}.{namespace}` = `web.victim.svc`, the name of
            # Service `web` in namespace `victim`. Namespaces are single labels, so
            # with dot-free ServiceAccount names every substitution is unambiguous.
            sa = self.serviceaccount
            return None if sa is None or "." in sa else sa
        return self.cluster_domain


class Pattern:
    """One compiled pattern; `matches` is the only thing evaluation needs."""

    __slots__ = ("_bound_order", "_cache", "_parts", "_static", "bound", "free", "kind", "text")

    def __init__(self, text: str, kind: PatternKind, *, generated: bool = False) -> None:
        """`generated`: the pattern names a value to issue (`render`), not a set to
        match, so free placeholders are refused with a message saying why."""
        self.text = text
        self.kind = kind
        self._parts = _split(text, kind, generated=generated)
        self.bound: frozenset[str] = frozenset(
            p.name
            for p in self._parts
            if isinstance(p, _Placeholder) and p.name in BOUND_PLACEHOLDERS
        )
        self.free: frozenset[str] = frozenset(
            p.name
            for p in self._parts
            if isinstance(p, _Placeholder) and p.name in FREE_PLACEHOLDERS
        )
        self._bound_order = tuple(sorted(self.bound))
        _validate_sample(text, kind, self._parts)
        self._static = None if self.bound else re.compile(self._regex(None))
        self._cache: dict[tuple[str | None, ...], re.Pattern[str] | None] = {}

    def __repr__(self) -> str:
        return f"Pattern({self.text!r}, {self.kind.name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and (self.text, self.kind) == (other.text, other.kind)

    def __hash__(self) -> int:
        return hash((self.text, self.kind))

    def matches(self, value: str, bindings: Bindings | None = None) -> bool:
        """Whether `value` is exactly what the pattern describes for these bindings."""
        if self._static is not None:
            return self._static.fullmatch(value) is not None
        if bindings is None:
            return False
        regex = self._for(bindings)
        return regex is not None and regex.fullmatch(value) is not None

    def render(self, bindings: Bindings) -> str | None:
        """The one value this pattern describes for these bindings, or None.

        None when there is no single value: a free placeholder (`{label}`, any
        label) or a bound one without a value (no ServiceAccount, or one whose
        name has a dot: see `Bindings.get`). None also when substitution yields
        something that is not a valid value of the kind, such as a DNS label over
        63 characters from a long ServiceAccount name: a name that is not a DNS
        name is never put in a certificate, so it is not granted.
        """
        if self.free:
            return None
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = bindings.get(part.name)
            if value is None:
                return None
            out.append(value)
        rendered = "".join(out)
        if self.kind is PatternKind.DNS and not is_dns_name(rendered):
            return None
        return rendered

    def _for(self, bindings: Bindings) -> re.Pattern[str] | None:
        key = tuple(bindings.get(name) for name in self._bound_order)
        try:
            return self._cache[key]
        except KeyError:
            pass
        regex = None if None in key else re.compile(self._regex(bindings))
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = regex
        return regex

    def _regex(self, bindings: Bindings | None) -> str:
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(re.escape(part))
            elif part.name == "label":
                out.append(LABEL_REGEX)
            else:
                assert bindings is not None
                value = bindings.get(part.name)
                assert value is not None
                out.append(re.escape(value))
        return "".join(out)


def is_dns_name(value: str) -> bool:
    """A lowercase DNS name a certificate may carry: at most 253 characters in all,
    labels of 1-63 of a-z, 0-9 and '-', not starting or ending with '-'."""
    return len(value) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in value.split("."))


@dataclass(frozen=True, slots=True)
class _Placeholder:
    name: str


def _split(text: str, kind: PatternKind, *, generated: bool) -> tuple[str | _Placeholder, ...]:
    if not text:
        raise PatternError(f"empty {kind.value} pattern")
    allowed = _KIND_PLACEHOLDERS[kind]
    if generated:
        allowed = tuple(p for p in allowed if p in BOUND_PLACEHOLDERS)
    parts: list[str | _Placeholder] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        literal = text[pos : m.start()]
        _check_literal(literal, text)
        if literal:
            parts.append(literal)
        name = m.group(1)
        if generated and name in FREE_PLACEHOLDERS:
            bound = ", ".join("{" + p + "}" for p in allowed)
            raise PatternError(
                f"{{{name}}} cannot be used in podCertificate pattern {text!r}: these names "
                f"are generated for the pod, not matched, so only {bound} can be used "
                "(to let pods ask for names, list patterns under allowed instead)"
            )
        if name not in allowed:
            known = ", ".join("{" + p + "}" for p in allowed)
            raise PatternError(
                f"unknown placeholder {{{name}}} in {kind.value} pattern {text!r} (known: {known})"
            )
        parts.append(_Placeholder(name))
        pos = m.end()
    tail = text[pos:]
    _check_literal(tail, text)
    if tail:
        parts.append(tail)
    _check_separated(parts, text)
    return tuple(parts)


_TENANT_CHOSEN = frozenset({"namespace", "serviceaccount", "label"})
"""Placeholders whose values a tenant picks (`{clusterDomain}` is configuration)."""
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def _check_separated(
    parts: tuple[str | _Placeholder, ...] | list[str | _Placeholder], text: str
) -> None:
    """Two tenant-chosen values must be split by a character neither can contain.

    Their values are DNS labels (a-z, 0-9, "-"), so in `{label}-{namespace}` the name
    `a-b-c` is label `a` in namespace `b-c` and label `a-b` in namespace `c`: two tenants
    would be granted the same name. A ".", "/" or "@" between them makes it unambiguous.
    """
    previous: _Placeholder | None = None
    between = ""
    for part in parts:
        if isinstance(part, str):
            between += part
            continue
        if part.name in _TENANT_CHOSEN:
            if previous is not None and set(between) <= _LABEL_CHARS:
                raise PatternError(
                    f"{{{previous.name}}} and {{{part.name}}} in pattern {text!r} are joined by "
                    f'{between!r}: two tenants could get the same value; put a ".", "/" or '
                    '"@" between them'
                )
            previous, between = part, ""
        else:
            previous, between = None, ""


def _check_literal(literal: str, text: str) -> None:
    if "{" in literal or "}" in literal:
        raise PatternError(f"unbalanced brace in pattern {text!r}")


def _validate_sample(text: str, kind: PatternKind, parts: tuple[str | _Placeholder, ...]) -> None:
    """Reject patterns that could never match a valid value of their kind.

    The literal text is checked by substituting a sample for each placeholder
    and validating the result as a value of the kind: a typo such as an upper
    case letter, a `*` or a trailing dot in a DNS pattern is a load-time
    error, not a rule that silently denies everything.
    """
    sample = "".join(p if isinstance(p, str) else _SAMPLES[p.name] for p in parts)
    if kind is PatternKind.DNS:
        if "*" in sample:
            raise PatternError(f"wildcards are not supported in DNS name pattern {text!r}")
        if not is_dns1123_subdomain(sample):
            raise PatternError(
                f"DNS name pattern {text!r} does not describe a lowercase DNS name "
                "(labels of a-z, 0-9 and '-', separated by single dots, no trailing dot)"
            )
    elif kind is PatternKind.NAMESPACE:
        if not is_dns1123_label(sample):
            raise PatternError(f"namespace pattern {text!r} does not describe a namespace name")
    elif kind is PatternKind.SERVICEACCOUNT_NAME:
        if not is_dns1123_subdomain(sample):
            raise PatternError(
                f"ServiceAccount name pattern {text!r} does not describe a ServiceAccount name"
            )
    elif kind is PatternKind.URI:
        if any(c.isspace() for c in sample) or not urlsplit(sample).scheme:
            raise PatternError(
                f"URI pattern {text!r} needs a scheme (e.g. spiffe://) and no spaces"
            )
    elif kind is PatternKind.EMAIL:
        local, at, domain = sample.partition("@")
        if not at or not local or "@" in domain or not is_dns1123_subdomain(domain):
            raise PatternError(f"email pattern {text!r} must be local-part@lowercase.domain")
