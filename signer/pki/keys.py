"""The key floor: the weakest public key the signer will ever put in a certificate.

Policies choose which keys a requester may use (`keys` rules), but a human may approve
any CSR with `kubectl certificate approve`, and a policy file may be edited badly. The
floor is checked by `signer.pki.signing.issue` for every certificate, whoever approved
the request, so no path signs a key weaker than this:

- RSA: at least 2048 bits, public exponent exactly 65537 (e=3 and other small or
  unusual exponents are refused; 65537 is what every mainstream library generates);
- ECDSA: P-256, P-384 or P-521;
- Ed25519.

Ed448, DSA and anything else are refused: Go's crypto/x509 (kubelets, Knative, most
clients of these certificates) cannot use Ed448 or DSA keys in TLS.
"""

from __future__ import annotations

from typing import Final

from signer.models import KeyInfo, Refusal

RSA_MIN_BITS: Final = 2048
RSA_EXPONENT: Final = 65537
ECDSA_CURVES: Final = frozenset({"secp256r1", "secp384r1", "secp521r1"})
FLOOR: Final = "RSA >= 2048 bits with e=65537, ECDSA P-256/P-384/P-521, or Ed25519"
"""The floor in words, for messages and docs."""


def below_floor(key: KeyInfo) -> Refusal | None:
    """Why `key` may not be signed (`WeakKey` or `UnsupportedKey`), or None."""
    if key.algorithm == "rsa":
        if key.size < RSA_MIN_BITS:
            return _weak(f"RSA key of {key.size} bits is below the minimum of {RSA_MIN_BITS}")
        if key.exponent != RSA_EXPONENT:
            return _weak(f"RSA public exponent {key.exponent} is not {RSA_EXPONENT}")
        return None
    if key.algorithm == "ecdsa":
        if key.curve in ECDSA_CURVES:
            return None
        return _weak(f"ECDSA curve {key.curve} is not one of P-256, P-384, P-521")
    if key.algorithm == "ed25519":
        return None
    return Refusal(
        reason="UnsupportedKey",
        message=f"the request's {key.describe()} key is not supported (the floor is {FLOOR})",
    )


def _weak(why: str) -> Refusal:
    return Refusal(reason="WeakKey", message=f"the request's key is refused: {why}")
