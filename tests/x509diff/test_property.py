"""parse_csr against Go's crypto/x509 on 10,000 generated requests (fixed seed).

For every request (see strategies.py for what is generated): either parse_csr
refuses it with CsrParseError (never any other exception), or Go also accepts
it (it parses and its self-signature verifies: the apiserver would store it)
and sees exactly the DNS names, IPs, URIs, emails, subject, CN and key we see.

About 35% of the requests are accepted; about 25% are refused although Go
would store them (the deliberate refusals: ambiguous attributes, odd string
types, SHA-1, ...). Takes about 70 s on two cores, most of it in Hypothesis.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings

from signer.pki.parsing import CsrParseError, parse_csr
from tests.x509diff.csr_build import pem
from tests.x509diff.goview import GoX509, differences
from tests.x509diff.strategies import Case, requests

EXAMPLES = 10_000

pytestmark = pytest.mark.timeout(900)


def test_parse_csr_accepts_only_what_go_reads_the_same(gox509: GoX509) -> None:
    seen: Counter[str] = Counter()

    @settings(
        max_examples=10_000,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(requests())
    def agrees_with_go(case: Case) -> None:
        seen["examples"] += 1
        go = gox509.view(case.der)
        try:
            view = parse_csr(pem(case.der) if case.as_pem else case.der)
        except CsrParseError:
            seen["refused, Go stores it" if go.accepted else "refused, so does Go"] += 1
            return
        seen["accepted"] += 1
        assert differences(view, go) == []

    agrees_with_go()
    print(dict(seen))  # visible with -s
    assert seen["examples"] >= EXAMPLES
    assert seen["accepted"] >= EXAMPLES // 4, "most generated requests should be valid"
