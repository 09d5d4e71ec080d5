"""The key floor: what the signer refuses to sign, whoever approved the request."""

from __future__ import annotations

import pytest

from signer.models import KeyInfo
from signer.pki.keys import below_floor


@pytest.mark.parametrize(
    ("key", "reason", "says"),
    [
        pytest.param(KeyInfo("rsa", 2048, exponent=65537), None, "", id="rsa-2048-e65537-passes"),
        pytest.param(KeyInfo("rsa", 4096, exponent=65537), None, "", id="rsa-4096-passes"),
        pytest.param(
            KeyInfo("rsa", 1024, exponent=65537),
            "WeakKey",
            "1024 bits is below the minimum of 2048",
            id="rsa-1024-is-weak",
        ),
        pytest.param(
            KeyInfo("rsa", 2047, exponent=65537), "WeakKey", "2047 bits", id="rsa-2047-is-weak"
        ),
        pytest.param(
            KeyInfo("rsa", 2048, exponent=3),
            "WeakKey",
            "public exponent 3 is not 65537",
            id="rsa-e3-is-weak",
        ),
        pytest.param(
            KeyInfo("rsa", 2048, exponent=65539),
            "WeakKey",
            "exponent 65539",
            id="rsa-other-exponent-is-weak",
        ),
        pytest.param(
            KeyInfo("rsa", 2048), "WeakKey", "exponent None", id="rsa-unknown-exponent-is-weak"
        ),
        pytest.param(KeyInfo("ecdsa", 256, curve="secp256r1"), None, "", id="p256-passes"),
        pytest.param(KeyInfo("ecdsa", 384, curve="secp384r1"), None, "", id="p384-passes"),
        pytest.param(KeyInfo("ecdsa", 521, curve="secp521r1"), None, "", id="p521-passes"),
        pytest.param(
            KeyInfo("ecdsa", 256, curve="secp256k1"),
            "WeakKey",
            "curve secp256k1 is not one of",
            id="other-curve-is-refused",
        ),
        pytest.param(
            KeyInfo("ecdsa", 224, curve="secp224r1"), "WeakKey", "secp224r1", id="p224-is-weak"
        ),
        pytest.param(KeyInfo("ed25519", 256), None, "", id="ed25519-passes"),
        pytest.param(
            KeyInfo("ed448", 456), "UnsupportedKey", "Ed448 key is not supported", id="ed448-no"
        ),
        pytest.param(KeyInfo("dsa", 2048), "UnsupportedKey", "DSA 2048", id="dsa-is-unsupported"),
        pytest.param(KeyInfo("unknown", 0), "UnsupportedKey", "the floor is", id="unknown-no"),
    ],
)
def test_the_floor(key: KeyInfo, reason: str | None, says: str) -> None:
    refusal = below_floor(key)
    if reason is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert refusal.reason == reason
        assert says in refusal.message
