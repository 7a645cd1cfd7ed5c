"""Digests of one or many messages, and domain-separated digests.

``digest_many`` returns a ``DigestArray``: all digests in one contiguous buffer, indexed
without creating a Python object per digest until one is asked for. That is what keeps the
hot path (transaction ids, leaf hashes) in C.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import overload

from trusted_ledger.errors import IndexOutOfRange, InvalidInput
from trusted_ledger.hashing import native
from trusted_ledger.hashing.algorithms import DIGEST_SIZE, HashAlgorithm
from trusted_ledger.hashing.native import BytesLike

_DOMAIN_LEN_MAX = 255


class DigestArray(Sequence[bytes]):
    """n digests of 32 bytes in one contiguous buffer."""

    __slots__ = ("_buf",)

    def __init__(self, buf: bytes | bytearray) -> None:
        if len(buf) % DIGEST_SIZE:
            raise InvalidInput(f"a digest array needs a multiple of {DIGEST_SIZE} bytes")
        self._buf = buf

    @classmethod
    def from_digests(cls, digests: Sequence[bytes]) -> DigestArray:
        for i, d in enumerate(digests):
            if len(d) != DIGEST_SIZE:
                raise InvalidInput(f"digest {i} must be {DIGEST_SIZE} bytes, got {len(d)}")
        return cls(b"".join(digests))

    @property
    def buffer(self) -> bytes | bytearray:
        """The raw n * 32 bytes, digest i at [32 i, 32 i + 32)."""
        return self._buf

    def __len__(self) -> int:
        return len(self._buf) // DIGEST_SIZE

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> DigestArray: ...
    def __getitem__(self, index: int | slice) -> bytes | DigestArray:
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step != 1:
                return DigestArray(b"".join(self[i] for i in range(start, stop, step)))
            return DigestArray(bytes(self._buf[start * DIGEST_SIZE : stop * DIGEST_SIZE]))
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexOutOfRange(f"digest index {index} is outside an array of {n}")
        return bytes(self._buf[index * DIGEST_SIZE : (index + 1) * DIGEST_SIZE])

    def __iter__(self) -> Iterator[bytes]:
        view = memoryview(self._buf)
        for offset in range(0, len(self._buf), DIGEST_SIZE):
            yield bytes(view[offset : offset + DIGEST_SIZE])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DigestArray):
            return bytes(self._buf) == bytes(other._buf)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(bytes(self._buf))

    def __repr__(self) -> str:
        return f"DigestArray(n={len(self)})"


def digest(data: BytesLike, alg: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    """The digest of ``data`` (SHA-256 unless told otherwise)."""
    return native.digest(data, alg)


def sha256(data: BytesLike) -> bytes:
    return native.digest(data, HashAlgorithm.SHA256)


def sm3(data: BytesLike) -> bytes:
    return native.digest(data, HashAlgorithm.SM3)


def digest_many(
    messages: Sequence[BytesLike], alg: HashAlgorithm = HashAlgorithm.SHA256
) -> DigestArray:
    """Digests of each message, computed in one native call."""
    buf, offsets = native.pack(messages)
    return DigestArray(native.digest_packed(buf, offsets, alg))


def digest_packed(
    buf: BytesLike, offsets: array[int], alg: HashAlgorithm = HashAlgorithm.SHA256
) -> DigestArray:
    """Digests of messages ``buf[offsets[i]:offsets[i+1]]`` (``array('Q')``, n + 1 entries)."""
    return DigestArray(native.digest_packed(buf, offsets, alg))


def digest_fixed(
    buf: BytesLike, message_size: int, alg: HashAlgorithm = HashAlgorithm.SHA256
) -> DigestArray:
    """Digests of the consecutive ``message_size``-byte messages that make up ``buf``."""
    return DigestArray(native.digest_fixed(buf, message_size, alg))


def tagged_digest(domain: str, data: BytesLike, alg: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    """H(len(domain) || domain || data): a digest that cannot collide across purposes.

    The domain is ASCII, 1..255 bytes, prefixed by its length so that no (domain, data) pair
    encodes the same bytes as another. Used wherever one kind of object must never be
    mistaken for another (a block id for a vote digest, say).
    """
    try:
        tag = domain.encode("ascii")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"digest domain {domain!r} must be ASCII") from exc
    if not 1 <= len(tag) <= _DOMAIN_LEN_MAX:
        raise InvalidInput(f"digest domain must be 1..{_DOMAIN_LEN_MAX} bytes, got {len(tag)}")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
    return native.digest(bytes([len(tag)]) + tag + bytes(data), alg)
