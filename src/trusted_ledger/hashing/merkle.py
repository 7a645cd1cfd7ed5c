"""Merkle trees in the RFC 6962 / RFC 9162 style, computed natively.

leaf hash = H(0x00 || leaf), node hash = H(0x01 || left || right), and a tree of n leaves
splits at the largest power of two below n. Proofs are plain values that verify without a
tree (``InclusionProof.verify``, ``ConsistencyProof.verify``); verification raises
``InvalidProof`` and returns nothing, so a forgotten check cannot pass silently.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from trusted_ledger.errors import InvalidInput
from trusted_ledger.hashing import native
from trusted_ledger.hashing.algorithms import DIGEST_SIZE, HashAlgorithm
from trusted_ledger.hashing.digests import DigestArray
from trusted_ledger.hashing.native import BytesLike

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(data: BytesLike, alg: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"leaf must be bytes-like, not {type(data).__name__}")
    return native.digest(LEAF_PREFIX + bytes(data), alg)


def node_hash(left: bytes, right: bytes, alg: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    for what, value in (("left", left), ("right", right)):
        if len(value) != DIGEST_SIZE:
            raise InvalidInput(f"{what} child must be {DIGEST_SIZE} bytes, got {len(value)}")
    return native.digest(NODE_PREFIX + left + right, alg)


def leaf_hashes(
    leaves: Sequence[BytesLike], alg: HashAlgorithm = HashAlgorithm.SHA256
) -> DigestArray:
    buf, offsets = native.pack(leaves)
    return DigestArray(native.leaf_hashes_packed(buf, offsets, alg))


def merkle_root(leaves: Sequence[BytesLike], alg: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    """Root over raw leaves; the empty tree's root is H("")."""
    buf, offsets = native.pack(leaves)
    return native.root_packed(buf, offsets, alg)


def merkle_root_packed(
    buf: BytesLike, offsets: array[int], alg: HashAlgorithm = HashAlgorithm.SHA256
) -> bytes:
    """Root over leaves ``buf[offsets[i]:offsets[i+1]]``, without per-leaf Python objects."""
    return native.root_packed(buf, offsets, alg)


def merkle_root_fixed(
    buf: BytesLike, leaf_size: int, alg: HashAlgorithm = HashAlgorithm.SHA256
) -> bytes:
    """Root over the consecutive ``leaf_size``-byte leaves making up ``buf`` (the fast path)."""
    return native.root_fixed(buf, leaf_size, alg)


def root_from_leaf_hashes(
    hashes: DigestArray | Sequence[bytes], alg: HashAlgorithm = HashAlgorithm.SHA256
) -> bytes:
    array_ = hashes if isinstance(hashes, DigestArray) else DigestArray.from_digests(hashes)
    return native.root_from_leaf_hashes(array_.buffer, alg)


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Proof that the leaf at ``index`` is in the tree of ``tree_size`` leaves."""

    index: int
    tree_size: int
    path: tuple[bytes, ...]
    alg: HashAlgorithm = HashAlgorithm.SHA256

    def root_for_leaf_hash(self, leaf_hash_: bytes) -> bytes:
        """The root this proof implies for the given leaf hash."""
        return native.root_from_inclusion(
            leaf_hash_, self.index, self.tree_size, self.path, self.alg
        )

    def verify_leaf_hash(self, leaf_hash_: bytes, root: bytes) -> None:
        """Raise InvalidProof unless this proves ``leaf_hash_`` under ``root``."""
        native.verify_inclusion(leaf_hash_, self.index, self.tree_size, self.path, root, self.alg)

    def verify(self, leaf: BytesLike, root: bytes) -> None:
        """Raise InvalidProof unless this proves the raw ``leaf`` under ``root``."""
        self.verify_leaf_hash(leaf_hash(leaf, self.alg), root)


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """Proof that the tree of ``old_size`` leaves is a prefix of the one of ``new_size``."""

    old_size: int
    new_size: int
    path: tuple[bytes, ...]
    alg: HashAlgorithm = HashAlgorithm.SHA256

    def verify(self, old_root: bytes, new_root: bytes) -> None:
        """Raise InvalidProof unless this links ``old_root`` to ``new_root``."""
        native.verify_consistency(
            self.old_size, self.new_size, old_root, new_root, self.path, self.alg
        )


class MerkleTree:
    """An immutable tree over given leaves, for roots and proofs.

    Holds only the leaf hashes (32 bytes per leaf, one buffer); inner nodes are recomputed
    natively per query, which is cheap next to any I/O that serves a proof.
    """

    __slots__ = ("_alg", "_hashes", "_root")

    def __init__(self, hashes: DigestArray, alg: HashAlgorithm = HashAlgorithm.SHA256) -> None:
        self._hashes = hashes
        self._alg = alg
        self._root = native.root_from_leaf_hashes(hashes.buffer, alg)

    @classmethod
    def from_leaves(
        cls, leaves: Sequence[BytesLike], alg: HashAlgorithm = HashAlgorithm.SHA256
    ) -> MerkleTree:
        return cls(leaf_hashes(leaves, alg), alg)

    @classmethod
    def from_fixed(
        cls, buf: BytesLike, leaf_size: int, alg: HashAlgorithm = HashAlgorithm.SHA256
    ) -> MerkleTree:
        return cls(DigestArray(native.leaf_hashes_fixed(buf, leaf_size, alg)), alg)

    @property
    def alg(self) -> HashAlgorithm:
        return self._alg

    @property
    def size(self) -> int:
        return len(self._hashes)

    @property
    def root(self) -> bytes:
        return self._root

    @property
    def leaf_hashes(self) -> DigestArray:
        return self._hashes

    def inclusion_proof(self, index: int) -> InclusionProof:
        path = native.inclusion_proof(self._hashes.buffer, index, self._alg)
        return InclusionProof(index, self.size, tuple(path), self._alg)

    def consistency_proof(self, old_size: int) -> ConsistencyProof:
        path = native.consistency_proof(self._hashes.buffer, old_size, self._alg)
        return ConsistencyProof(old_size, self.size, tuple(path), self._alg)


def verify_inclusion(
    leaf_hash_: bytes,
    index: int,
    tree_size: int,
    path: Sequence[bytes],
    root: bytes,
    alg: HashAlgorithm = HashAlgorithm.SHA256,
) -> None:
    """Raise InvalidProof unless ``path`` proves ``leaf_hash_`` at ``index`` under ``root``."""
    native.verify_inclusion(leaf_hash_, index, tree_size, path, root, alg)


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
    alg: HashAlgorithm = HashAlgorithm.SHA256,
) -> None:
    """Raise InvalidProof unless ``proof`` shows the old tree is a prefix of the new one."""
    native.verify_consistency(old_size, new_size, old_root, new_root, proof, alg)
