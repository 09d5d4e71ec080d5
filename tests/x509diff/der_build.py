"""A tiny DER encoder for building requests `cryptography`'s builder never would.

Every function returns the complete TLV bytes, so a test composes a request
the way the ASN.1 reads. Nothing here sorts SETs, checks string alphabets or
minimises anything unless asked: the point is to be able to write wrong
encodings on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable

# Universal tags.
BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
SEQUENCE = 0x30
SET = 0x31
NUMERIC_STRING = 0x12
PRINTABLE_STRING = 0x13
T61_STRING = 0x14
IA5_STRING = 0x16
UTC_TIME = 0x17
VISIBLE_STRING = 0x1A
UNIVERSAL_STRING = 0x1C
BMP_STRING = 0x1E


def length(n: int) -> bytes:
    """Definite, minimal length octets."""
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + length(len(content)) + content


def seq(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def set_of(items: Iterable[bytes], *, sort: bool = True) -> bytes:
    """SET OF; DER sorts the elements, `sort=False` keeps the given order."""
    elems = list(items)
    return tlv(SET, b"".join(sorted(elems) if sort else elems))


def integer(value: int) -> bytes:
    size = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return tlv(INTEGER, value.to_bytes(size, "big", signed=True))


def boolean(value: bool) -> bytes:
    return tlv(BOOLEAN, b"\xff" if value else b"\x00")


def null() -> bytes:
    return tlv(NULL, b"")


def octets(data: bytes) -> bytes:
    return tlv(OCTET_STRING, data)


def bits(data: bytes, unused: int = 0) -> bytes:
    return tlv(BIT_STRING, bytes([unused]) + data)


def oid_body(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def oid(dotted: str) -> bytes:
    return tlv(OID, oid_body(dotted))


def string(tag: int, text: str) -> bytes:
    """A string of the given universal type, encoded as that type encodes."""
    if tag == BMP_STRING:
        return tlv(tag, text.encode("utf-16-be", "surrogatepass"))
    if tag == UNIVERSAL_STRING:
        return tlv(tag, text.encode("utf-32-be", "surrogatepass"))
    if tag in (T61_STRING,):
        return tlv(tag, text.encode("latin-1", "replace"))
    return tlv(tag, text.encode("utf-8", "surrogatepass"))


def context(number: int, content: bytes, *, constructed: bool) -> bytes:
    """A context-specific [number] tag (IMPLICIT: `content` is the inner content)."""
    return tlv((0xA0 if constructed else 0x80) | number, content)
