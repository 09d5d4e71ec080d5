"""spec.usages -> KeyUsage and ExtendedKeyUsage, the way kube-controller-manager maps them.

Pure. The table mirrors `keyUsagesFromStrings` in kubernetes
`pkg/controller/certificates/authority/policies.go`, so a CSR gets the same
certificate bits from us as from the built-in signers; the differences are
refusals, never different bits:

- an unknown value is refused (kube-controller-manager refuses too);
- `cert sign` and `crl sign` are refused: this signer issues leaf
  certificates only, and a leaf carrying keyCertSign is either a confused
  request or an attempt to get a CA (kube-controller-manager would set the bit
  on a CA:FALSE certificate);
- `encipher only` / `decipher only` without `key agreement` are refused:
  RFC 5280 leaves their meaning undefined then, and `cryptography` will not
  encode them.

No usage bits means no KeyUsage extension (and no EKU means no
ExtendedKeyUsage extension), as Go's `x509.CreateCertificate` does with a zero
`KeyUsage` / empty `ExtKeyUsage`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from signer.models import Refusal, Usage

_KEY_USAGE_BITS: dict[str, str] = {
    Usage.SIGNING: "digital_signature",
    Usage.DIGITAL_SIGNATURE: "digital_signature",
    Usage.CONTENT_COMMITMENT: "content_commitment",
    Usage.KEY_ENCIPHERMENT: "key_encipherment",
    Usage.KEY_AGREEMENT: "key_agreement",
    Usage.DATA_ENCIPHERMENT: "data_encipherment",
    Usage.ENCIPHER_ONLY: "encipher_only",
    Usage.DECIPHER_ONLY: "decipher_only",
}

# Ordered as Go's x509.ExtKeyUsage constants, which kube-controller-manager
# sorts by: the EKU sequence in our certificates is in the same order as theirs.
_EXT_KEY_USAGES: dict[str, ObjectIdentifier] = {
    Usage.ANY: ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    Usage.SERVER_AUTH: ExtendedKeyUsageOID.SERVER_AUTH,
    Usage.CLIENT_AUTH: ExtendedKeyUsageOID.CLIENT_AUTH,
    Usage.CODE_SIGNING: ExtendedKeyUsageOID.CODE_SIGNING,
    Usage.EMAIL_PROTECTION: ExtendedKeyUsageOID.EMAIL_PROTECTION,
    Usage.SMIME: ExtendedKeyUsageOID.EMAIL_PROTECTION,
    Usage.IPSEC_END_SYSTEM: ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    Usage.IPSEC_TUNNEL: ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    Usage.IPSEC_USER: ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    Usage.TIMESTAMPING: ExtendedKeyUsageOID.TIME_STAMPING,
    Usage.OCSP_SIGNING: ExtendedKeyUsageOID.OCSP_SIGNING,
    Usage.MICROSOFT_SGC: ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    Usage.NETSCAPE_SGC: ObjectIdentifier("2.16.840.1.113730.4.1"),
}
_EKU_ORDER = {oid: i for i, oid in enumerate(dict.fromkeys(_EXT_KEY_USAGES.values()))}

_CA_USAGES = (Usage.CERT_SIGN, Usage.CRL_SIGN)


@dataclass(frozen=True, slots=True)
class MappedUsages:
    """The certificate extensions spec.usages turn into (None: extension omitted)."""

    key_usage: x509.KeyUsage | None
    extended_key_usage: x509.ExtendedKeyUsage | None


def map_usages(usages: Sequence[str]) -> MappedUsages | Refusal:
    """Translate spec.usages; a value we cannot honour is a Refusal, not an exception.

    Every offending value is named in the message (in request order), so one
    Failed condition tells the requester everything to fix.
    """
    return _map_usages(tuple(usages))


@lru_cache(maxsize=256)
def _map_usages(usages: tuple[str, ...]) -> MappedUsages | Refusal:
    # Cached: clusters use a handful of usage sets, and the extension objects
    # are immutable, so issuing does not rebuild them per certificate.
    unknown = [u for u in usages if u not in _KEY_USAGE_BITS and u not in _EXT_KEY_USAGES]
    unknown = [u for u in unknown if u not in _CA_USAGES]
    if unknown:
        return Refusal(
            reason="UnknownUsage",
            message="unrecognized usage values: " + ", ".join(repr(u) for u in unknown),
        )
    ca_usages = [u for u in usages if u in _CA_USAGES]
    if ca_usages:
        return Refusal(
            reason="ForbiddenUsage",
            message="usages "
            + ", ".join(repr(u) for u in dict.fromkeys(ca_usages))
            + " are for CA certificates; this signer issues leaf certificates only",
        )
    bits = {_KEY_USAGE_BITS[u] for u in usages if u in _KEY_USAGE_BITS}
    if bits & {"encipher_only", "decipher_only"} and "key_agreement" not in bits:
        return Refusal(
            reason="InvalidUsage",
            message="'encipher only' and 'decipher only' require 'key agreement'",
        )
    key_usage = None
    if bits:
        key_usage = x509.KeyUsage(
            digital_signature="digital_signature" in bits,
            content_commitment="content_commitment" in bits,
            key_encipherment="key_encipherment" in bits,
            data_encipherment="data_encipherment" in bits,
            key_agreement="key_agreement" in bits,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only="encipher_only" in bits,
            decipher_only="decipher_only" in bits,
        )
    ekus = sorted(
        {_EXT_KEY_USAGES[u] for u in usages if u in _EXT_KEY_USAGES}, key=_EKU_ORDER.__getitem__
    )
    return MappedUsages(
        key_usage=key_usage,
        extended_key_usage=x509.ExtendedKeyUsage(ekus) if ekus else None,
    )
