"""A strict DER reader: just enough ASN.1 to walk a PKCS#10 request ourselves.

`cryptography` hides the parts of a request Go's crypto/x509 (the apiserver,
kubectl) reads differently: which attributes exist, how a subject value is
tagged, how an OID is spelled. `signer.pki.parsing` walks requests with this
reader to refuse those before trusting `cryptography`'s view of them.

Only DER is accepted: definite, minimal lengths; low-tag-number identifiers;
minimal INTEGERs; BOOLEANs of 0x00/0xFF; OIDs whose arcs fit Go's int32 (the
apiserver refuses larger ones). Anything else raises `DerError`. Pure, no I/O.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OID = 0x06
SEQUENCE = 0x30
SET = 0x31

_MAX_ARC = 2**31 - 1  # Go's encoding/asn1 parses OID arcs into an int32-sized int


class DerError(ValueError):
    """The bytes are not DER, or not the DER type the caller expected."""


class Tlv(NamedTuple):
    """One DER element: identifier octet, content octets, full encoding (cheap to make)."""

    tag: int
    content: bytes
    raw: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    def children(self) -> list[Tlv]:
        """The elements inside a constructed element (SEQUENCE, SET, [n])."""
        if not self.tag & 0x20:
            raise DerError(f"tag 0x{self.tag:02x} is primitive, not constructed")
        return read_all(self.content)


_new = tuple.__new__  # twice as fast as Tlv(...), which goes through a Python __new__


def _read(data: bytes, pos: int, end: int) -> tuple[Tlv, int]:
    """The element starting at `pos` (before `end`), and the position just after it."""
    if pos + 2 > end:
        raise DerError("truncated element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DerError(f"high tag number form (0x{tag:02x}) is not used by PKCS#10")
    size = data[pos + 1]
    head = pos + 2
    if size >= 0x80:
        count = size & 0x7F
        if count == 0:
            raise DerError("indefinite length is not DER")
        if count > 4 or head + count > end:
            raise DerError("length too long or truncated")
        size = int.from_bytes(data[head : head + count], "big")
        if size < 0x80 or data[head] == 0:
            raise DerError("length is not minimally encoded")
        head += count
    stop = head + size
    if stop > end:
        raise DerError(f"element of {size} bytes is truncated")
    return _new(Tlv, (tag, data[head:stop], data[pos:stop])), stop


def read_all(data: bytes) -> list[Tlv]:
    """Consecutive elements filling `data` exactly."""
    out: list[Tlv] = []
    pos, end = 0, len(data)
    while pos < end:
        tlv, pos = _read(data, pos, end)
        out.append(tlv)
    return out


def read_one(data: bytes) -> Tlv:
    """Exactly one element, with no trailing bytes."""
    tlv, end = _read(data, 0, len(data))
    if end != len(data):
        raise DerError(f"{len(data) - end} trailing bytes after the element")
    return tlv


def expect(tlv: Tlv, tag: int, what: str) -> Tlv:
    if tlv.tag != tag:
        raise DerError(f"{what} has tag 0x{tlv.tag:02x}, expected 0x{tag:02x}")
    return tlv


def as_int(tlv: Tlv) -> int:
    body = expect(tlv, INTEGER, "INTEGER").content
    if not body or (len(body) > 1 and body[0] in (0, 0xFF) and not (body[0] ^ body[1]) & 0x80):
        raise DerError("INTEGER is empty or not minimally encoded")
    return int.from_bytes(body, "big", signed=True)


def as_bool(tlv: Tlv) -> bool:
    body = expect(tlv, BOOLEAN, "BOOLEAN").content
    if body not in (b"\x00", b"\xff"):
        raise DerError("BOOLEAN must be 0x00 or 0xFF")
    return body == b"\xff"


def as_oid(tlv: Tlv) -> str:
    """Dotted string of an OBJECT IDENTIFIER, refusing what Go refuses."""
    return _dotted(expect(tlv, OID, "OBJECT IDENTIFIER").content)


@lru_cache(maxsize=512)
def _dotted(body: bytes) -> str:
    """Cached: the same few OIDs recur in every request."""
    if not body or body[-1] & 0x80:
        raise DerError("empty or truncated OBJECT IDENTIFIER")
    arcs: list[int] = []
    value, start = 0, True
    for byte in body:
        if start and byte == 0x80:
            raise DerError("OBJECT IDENTIFIER arc is not minimally encoded")
        value = (value << 7) | (byte & 0x7F)
        start = not byte & 0x80
        if value > _MAX_ARC:
            raise DerError("OBJECT IDENTIFIER arc above 2^31-1, which Go refuses")
        if start:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in (first, arcs[0] - 40 * first, *arcs[1:]))


def as_bits(tlv: Tlv) -> bytes:
    """Content of a BIT STRING that is a whole number of bytes (keys, signatures)."""
    body = expect(tlv, BIT_STRING, "BIT STRING").content
    if not body or body[0] != 0:
        raise DerError("BIT STRING has unused bits")
    return body[1:]
