"""Big-endian, length-checked reading and writing for the chain's binary formats.

Every read names the field it reads, so a truncated or oversized input fails with a message
that says which field and how many bytes were expected; no read ever slices past the end.
"""

from __future__ import annotations

import re
import struct

from trusted_ledger.errors import InvalidInput, MalformedBlock

chain_id_chars_max = 64
"""Longest chain id; it names a consortium network in every header and vote."""

_CHAIN_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def check_chain_id(chain_id: str) -> bytes:
    """The chain id's bytes, after checking it: 1..64 chars of [a-z0-9._-], starting alnum.

    A narrow alphabet keeps ids printable in logs and leaves one encoding per id.
    """
    if not isinstance(chain_id, str) or not 1 <= len(chain_id) <= chain_id_chars_max:
        raise InvalidInput(f"a chain id is 1..{chain_id_chars_max} characters, got {chain_id!r}")
    if not _CHAIN_ID.fullmatch(chain_id):
        raise InvalidInput(
            f"chain id {chain_id!r} may hold only a-z, 0-9, '.', '_' and '-', starting with "
            "a letter or digit"
        )
    return chain_id.encode("ascii")


def encode_chain_id(chain_id: str) -> bytes:
    """u8 length, then the ASCII bytes."""
    raw = check_chain_id(chain_id)
    return _U8.pack(len(raw)) + raw


class Reader:
    """Reads fields in order from one byte string; ``error`` is the exception class raised."""

    __slots__ = ("_data", "_error", "_offset", "_what")

    def __init__(self, data: bytes, what: str, error: type[InvalidInput] = MalformedBlock) -> None:
        if not isinstance(data, bytes):
            raise InvalidInput(f"{what} must be bytes, not {type(data).__name__}")
        self._data = data
        self._offset = 0
        self._what = what
        self._error = error

    @property
    def offset(self) -> int:
        return self._offset

    def fail(self, field: str, problem: str) -> InvalidInput:
        return self._error(f"{self._what} at byte {self._offset}, {field}: {problem}")

    def take(self, size: int, field: str) -> bytes:
        end = self._offset + size
        if end > len(self._data):
            raise self.fail(
                field, f"needs {size} bytes, only {len(self._data) - self._offset} remain"
            )
        value = self._data[self._offset : end]
        self._offset = end
        return value

    def u8(self, field: str) -> int:
        value: int = _U8.unpack(self.take(1, field))[0]
        return value

    def u16(self, field: str) -> int:
        value: int = _U16.unpack(self.take(2, field))[0]
        return value

    def u32(self, field: str) -> int:
        value: int = _U32.unpack(self.take(4, field))[0]
        return value

    def u64(self, field: str) -> int:
        value: int = _U64.unpack(self.take(8, field))[0]
        return value

    def expect(self, constant: bytes, field: str) -> None:
        start = self._offset
        found = self.take(len(constant), field)
        if found != constant:
            self._offset = start
            raise self.fail(field, f"expected {constant!r}, found {found!r}")

    def chain_id(self, field: str = "chain_id") -> str:
        size = self.u8(f"{field} length")
        raw = self.take(size, field)
        try:
            text = raw.decode("ascii")
            check_chain_id(text)
        except (UnicodeDecodeError, InvalidInput) as exc:
            raise self.fail(field, f"not a valid chain id ({exc})") from None
        return text

    def bounded_length(self, width_bytes: int, low: int, high: int, field: str) -> int:
        """A length prefix of ``width_bytes`` (2 or 4), checked to lie in [low, high]."""
        size = self.u16(f"{field} length") if width_bytes == 2 else self.u32(f"{field} length")
        if not low <= size <= high:
            raise self.fail(field, f"length {size} outside [{low}, {high}]")
        return size

    def finish(self) -> None:
        """Refuse trailing bytes: each object has exactly one encoding."""
        left = len(self._data) - self._offset
        if left:
            raise self.fail("end", f"{left} trailing bytes")


def u8(value: int) -> bytes:
    return _U8.pack(value)


def u16(value: int) -> bytes:
    return _U16.pack(value)


def u32(value: int) -> bytes:
    return _U32.pack(value)


def u64(value: int) -> bytes:
    return _U64.pack(value)
