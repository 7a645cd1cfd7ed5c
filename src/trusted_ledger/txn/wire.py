"""A strict scanner for the protobuf wire format of the unsigned outer messages.

BatchList, Batch and Transaction are walked here rather than handed whole to the protobuf
parser, for two reasons: sizes and counts are bounded before any object is built (parsing a
huge message is itself a denial of service), and a fault is reported with the batch and
transaction it is in. The scanner is stricter than protobuf: it rejects unknown fields,
repeated occurrences of singular fields, wrong wire types and groups, so anything it accepts
means the same to every protobuf implementation. The signed headers are parsed by protobuf
itself (see ``decode``), and must be in canonical encoding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

WIRE_VARINT = 0
WIRE_I64 = 1
WIRE_LEN = 2
WIRE_I32 = 5

_VARINT_BYTES_MAX = 10
_FIELD_NUMBER_MAX = (1 << 29) - 1


class WireError(Exception):
    """Raised by the scanner; ``decode`` turns it into a located ``MalformedEncoding``."""


class WireField(NamedTuple):
    """One field occurrence: for LEN fields ``value`` is unused and the bytes are
    ``data[start:end]``; for VARINT fields ``value`` holds the integer."""

    number: int
    wire_type: int
    value: int
    start: int
    end: int


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = 0
    for i in range(_VARINT_BYTES_MAX):
        if pos + i >= len(data):
            raise WireError("truncated varint")
        byte = data[pos + i]
        result |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i > 0 and byte == 0:
                # A trailing zero byte is an overlong encoding: same value, different bytes.
                raise WireError("overlong varint")
            if result >= 1 << 64:
                raise WireError("varint exceeds 64 bits")
            return result, pos + i + 1
    raise WireError("varint longer than 10 bytes")


def iter_fields(data: bytes | memoryview) -> Iterator[WireField]:
    """Every field of one message, in wire order. Raises ``WireError`` on bad structure."""
    pos, size = 0, len(data)
    while pos < size:
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if not 1 <= number <= _FIELD_NUMBER_MAX:
            raise WireError(f"invalid field number {number}")
        if wire_type == WIRE_VARINT:
            value, pos = read_varint(data, pos)
            yield WireField(number, wire_type, value, pos, pos)
        elif wire_type == WIRE_LEN:
            length, start = read_varint(data, pos)
            if length > size - start:
                raise WireError(f"field {number} claims {length} bytes, {size - start} remain")
            pos = start + length
            yield WireField(number, wire_type, 0, start, pos)
        elif wire_type in (WIRE_I64, WIRE_I32):
            width = 8 if wire_type == WIRE_I64 else 4
            if width > size - pos:
                raise WireError(f"truncated fixed-width field {number}")
            yield WireField(number, wire_type, 0, pos, pos + width)
            pos += width
        else:
            # Wire types 3 and 4 are the deprecated groups; 6 and 7 do not exist.
            raise WireError(f"field {number} has unsupported wire type {wire_type}")
