"""Pattern syntax and matching: the only way a policy grants names."""

from __future__ import annotations

import pytest

from signer.policy.patterns import Bindings, Pattern, PatternError, PatternKind

DNS, URI, EMAIL, NS = PatternKind.DNS, PatternKind.URI, PatternKind.EMAIL, PatternKind.NAMESPACE
SA = Bindings(namespace="team-a", serviceaccount="web", cluster_domain="cluster.local")
DOTTED = Bindings(namespace="svc", serviceaccount="web.victim", cluster_domain="cluster.local")
USER = Bindings(namespace=None, serviceaccount=None, cluster_domain="cluster.local")


@pytest.mark.parametrize(
    ("text", "kind", "error"),
    [
        pytest.param(
            "{nmespace}.svc", DNS, "unknown placeholder {nmespace}", id="unknown-placeholder"
        ),
        pytest.param("{namespace.svc", DNS, "unbalanced brace", id="unclosed-brace"),
        pytest.param("namespace}.svc", DNS, "unbalanced brace", id="stray-closing-brace"),
        pytest.param("", DNS, "empty", id="empty-pattern"),
        pytest.param("Web.{namespace}", DNS, "lowercase DNS name", id="dns-upper-case"),
        pytest.param("*.{namespace}.svc", DNS, "wildcards are not supported", id="dns-wildcard"),
        pytest.param("web.{namespace}.", DNS, "lowercase DNS name", id="dns-trailing-dot"),
        pytest.param("web..{namespace}", DNS, "lowercase DNS name", id="dns-empty-label"),
        pytest.param("web_{label}", DNS, "lowercase DNS name", id="dns-underscore"),
        pytest.param("{namespace}", NS, "unknown placeholder", id="namespace-selector-cannot-bind"),
        pytest.param("Team-{label}", NS, "namespace name", id="namespace-upper-case"),
        pytest.param("team.{label}", NS, "namespace name", id="namespace-has-no-dots"),
        pytest.param("cluster.local/ns/{namespace}", URI, "scheme", id="uri-needs-a-scheme"),
        pytest.param("spiffe://a b/{namespace}", URI, "no spaces", id="uri-no-spaces"),
        pytest.param("{serviceaccount}", EMAIL, "local-part@", id="email-needs-at"),
        pytest.param("a@b@{namespace}.x", EMAIL, "local-part@", id="email-one-at"),
        pytest.param(
            "{label}-{namespace}.svc", DNS, "joined by '-'", id="dash-between-tenant-values"
        ),
        pytest.param(
            "{serviceaccount}{namespace}.mesh", DNS, "joined by ''", id="adjacent-tenant-values"
        ),
        pytest.param(
            "spiffe://x/{namespace}-{serviceaccount}",
            URI,
            "two tenants could get the same value",
            id="uri-dash-between-tenant-values",
        ),
    ],
)
def test_invalid_patterns_are_rejected_at_load_time(
    text: str, kind: PatternKind, error: str
) -> None:
    with pytest.raises(PatternError, match=error.replace("{", r"\{").replace("*", r"\*")):
        Pattern(text, kind)


@pytest.mark.parametrize(
    ("text", "kind", "value", "bindings", "matches"),
    [
        pytest.param("kn-routing", DNS, "kn-routing", USER, True, id="literal-matches-itself"),
        pytest.param("kn-routing", DNS, "kn-routingx", USER, False, id="literal-is-exact"),
        pytest.param("a.b", DNS, "axb", USER, False, id="dot-is-literal-not-any-character"),
        pytest.param("{label}.svc", DNS, "web.svc", USER, True, id="label-matches-one-label"),
        pytest.param("{label}.svc", DNS, "a.web.svc", USER, False, id="label-matches-no-dot"),
        pytest.param("{label}.svc", DNS, "Web.svc", USER, False, id="label-is-lowercase"),
        pytest.param("{label}.svc", DNS, "-web.svc", USER, False, id="label-starts-alnum"),
        pytest.param("{label}.svc", DNS, "web-.svc", USER, False, id="label-ends-alnum"),
        pytest.param("{label}.svc", DNS, "a" * 63 + ".svc", USER, True, id="label-63-chars"),
        pytest.param("{label}.svc", DNS, "a" * 64 + ".svc", USER, False, id="label-max-63"),
        pytest.param("{label}.svc", DNS, "web.svc\n", USER, False, id="no-trailing-newline"),
        pytest.param("{namespace}.svc", DNS, "team-a.svc", SA, True, id="namespace-bound"),
        pytest.param("{namespace}.svc", DNS, "team-b.svc", SA, False, id="namespace-is-exact"),
        pytest.param("{namespace}.svc", DNS, "team-a.svc", USER, False, id="unbound-no-match"),
        pytest.param("{namespace}.svc", DNS, "team-a.svc", None, False, id="no-bindings-no-match"),
        pytest.param(
            "{serviceaccount}.{clusterDomain}",
            DNS,
            "web.cluster.local",
            SA,
            True,
            id="dotted-bound-values-match-exactly",
        ),
        pytest.param(
            "{serviceaccount}.{clusterDomain}",
            DNS,
            "web.clusterxlocal",
            SA,
            False,
            id="bound-values-are-escaped",
        ),
        pytest.param(
            "spiffe://{clusterDomain}/ns/{namespace}/sa/{serviceaccount}",
            URI,
            "spiffe://cluster.local/ns/team-a/sa/web",
            SA,
            True,
            id="spiffe-id-of-the-requester",
        ),
        pytest.param(
            "spiffe://{clusterDomain}/ns/{namespace}/sa/{serviceaccount}",
            URI,
            "spiffe://cluster.local/ns/team-a/sa/web/",
            SA,
            False,
            id="spiffe-id-is-exact",
        ),
        pytest.param(
            "{serviceaccount}@{namespace}.example.com",
            EMAIL,
            "web@team-a.example.com",
            SA,
            True,
            id="email-of-the-requester",
        ),
        pytest.param(
            "{serviceaccount}.{namespace}",
            DNS,
            "web.victim.svc",
            DOTTED,
            False,
            id="dotted-serviceaccount-never-claims-another-namespaces-service",
        ),
        pytest.param(
            "spiffe://{clusterDomain}/ns/{namespace}/sa/{serviceaccount}",
            URI,
            "spiffe://cluster.local/ns/svc/sa/web.victim",
            DOTTED,
            False,
            id="dotted-serviceaccount-binds-nothing-in-uris",
        ),
        pytest.param(
            "{serviceaccount}@{namespace}.example.com",
            EMAIL,
            "web.victim@svc.example.com",
            DOTTED,
            False,
            id="dotted-serviceaccount-binds-nothing-in-emails",
        ),
        pytest.param(
            "{namespace}.internal",
            DNS,
            "svc.internal",
            DOTTED,
            True,
            id="dotted-sa-keeps-namespace",
        ),
        pytest.param("team-{label}", NS, "team-a", None, True, id="namespace-selector-pattern"),
        pytest.param("team-{label}", NS, "team-", None, False, id="namespace-selector-needs-label"),
    ],
)
def test_pattern_matching(
    text: str, kind: PatternKind, value: str, bindings: Bindings | None, matches: bool
) -> None:
    assert Pattern(text, kind).matches(value, bindings) is matches


def test_bound_pattern_cache_is_keyed_by_the_values_it_uses() -> None:
    pattern = Pattern("{label}.{namespace}.svc", DNS)
    for ns in ("a", "b", "a"):
        bindings = Bindings(namespace=ns, serviceaccount="x", cluster_domain="cluster.local")
        assert pattern.matches(f"web.{ns}.svc", bindings)
        assert not pattern.matches("web.c.svc", bindings)


LONG_SA = Bindings(namespace="team-a", serviceaccount="a" * 64, cluster_domain="cluster.local")


@pytest.mark.parametrize(
    ("text", "kind", "bindings", "expected"),
    [
        pytest.param(
            "kn-user-{namespace}", DNS, SA, "kn-user-team-a", id="namespace-is-substituted"
        ),
        pytest.param(
            "spiffe://{clusterDomain}/ns/{namespace}/sa/{serviceaccount}",
            URI,
            SA,
            "spiffe://cluster.local/ns/team-a/sa/web",
            id="every-bound-placeholder-is-substituted",
        ),
        pytest.param("kn-routing", DNS, USER, "kn-routing", id="literal-renders-as-itself"),
        pytest.param(
            "{serviceaccount}.{namespace}.svc",
            DNS,
            DOTTED,
            None,
            id="dotted-serviceaccount-renders-nothing",
        ),
        pytest.param(
            "kn-user-{namespace}", DNS, USER, None, id="not-a-serviceaccount-renders-nothing"
        ),
        pytest.param(
            "{label}.{namespace}.svc", DNS, SA, None, id="free-placeholder-has-no-single-value"
        ),
        pytest.param(
            "{serviceaccount}.{namespace}.svc",
            DNS,
            LONG_SA,
            None,
            id="label-over-63-characters-is-not-a-dns-name-and-renders-nothing",
        ),
        pytest.param(
            "spiffe://{clusterDomain}/sa/{serviceaccount}",
            URI,
            LONG_SA,
            "spiffe://cluster.local/sa/" + "a" * 64,
            id="long-serviceaccount-is-fine-in-a-uri",
        ),
    ],
)
def test_render_gives_the_one_value_a_pattern_describes(
    text: str, kind: PatternKind, bindings: Bindings, expected: str | None
) -> None:
    pattern = Pattern(text, kind)
    assert pattern.render(bindings) == expected
    if expected is not None:
        assert pattern.matches(expected, bindings), "a rendered value matches its pattern"
