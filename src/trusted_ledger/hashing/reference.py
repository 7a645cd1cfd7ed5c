"""Pure-Python reference twin of every native hashing function.

Written straight from the specifications, for clarity and not speed, so that differential
tests can compare the C code against something independent of it:

- SHA-256 is ``hashlib`` (OpenSSL), not our C code.
- SM3 follows GM/T 0004-2012 step by step.
- Merkle trees follow the recursive definitions of RFC 6962 section 2.1 (MTH, PATH,
  SUBPROOF) literally, and verification follows the iterative algorithms of RFC 9162
  sections 2.1.3.2 and 2.1.4.2. The C code instead hashes level by level; agreement of the
  two is what the tests check.

Every function raises the same exception types as its native twin for the same bad input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from trusted_ledger.errors import IndexOutOfRange, InvalidInput, InvalidProof
from trusted_ledger.hashing.algorithms import DIGEST_SIZE, HashAlgorithm

_MASK32 = 0xFFFFFFFF
_SM3_IV = (
    0x7380166F, 0x4914B2B9, 0x172442D7, 0xDA8A0600,
    0xA96F30BC, 0x163138AA, 0xE38DEE4D, 0xB0FB0E4E,
)  # fmt: skip


def _rotl(x: int, n: int) -> int:
    n %= 32
    return ((x << n) | (x >> (32 - n))) & _MASK32


def _sm3_p0(x: int) -> int:
    return x ^ _rotl(x, 9) ^ _rotl(x, 17)


def _sm3_p1(x: int) -> int:
    return x ^ _rotl(x, 15) ^ _rotl(x, 23)


def _sm3_compress(v: list[int], block: bytes) -> list[int]:
    w = [int.from_bytes(block[i : i + 4], "big") for i in range(0, 64, 4)]
    for j in range(16, 68):
        w.append(
            _sm3_p1(w[j - 16] ^ w[j - 9] ^ _rotl(w[j - 3], 15)) ^ _rotl(w[j - 13], 7) ^ w[j - 6]
        )
    w_prime = [w[j] ^ w[j + 4] for j in range(64)]
    a, b, c, d, e, f, g, h = v
    for j in range(64):
        t = 0x79CC4519 if j < 16 else 0x7A879D8A
        ss1 = _rotl((_rotl(a, 12) + e + _rotl(t, j)) & _MASK32, 7)
        ss2 = ss1 ^ _rotl(a, 12)
        if j < 16:
            ff, gg = a ^ b ^ c, e ^ f ^ g
        else:
            ff = (a & b) | (a & c) | (b & c)
            gg = (e & f) | (~e & g)
        tt1 = (ff + d + ss2 + w_prime[j]) & _MASK32
        tt2 = (gg + h + ss1 + w[j]) & _MASK32
        a, b, c, d = tt1, a, _rotl(b, 9), c
        e, f, g, h = _sm3_p0(tt2), e, _rotl(f, 19), g
    return [x ^ y for x, y in zip(v, (a, b, c, d, e, f, g, h), strict=True)]


def sm3(data: bytes) -> bytes:
    """SM3 digest of ``data`` (GM/T 0004-2012)."""
    bit_length = len(data) * 8
    padded = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + bit_length.to_bytes(8, "big")
    v = list(_SM3_IV)
    for offset in range(0, len(padded), 64):
        v = _sm3_compress(v, padded[offset : offset + 64])
    return b"".join(x.to_bytes(4, "big") for x in v)


def digest(data: bytes, alg: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    """One digest of ``data`` with ``alg``."""
    if alg is HashAlgorithm.SHA256:
        return hashlib.sha256(data).digest()
    if alg is HashAlgorithm.SM3:
        return sm3(data)
    raise InvalidInput(f"unknown hash algorithm {alg!r}")


def digest_many(messages: Sequence[bytes], alg: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    """Concatenated digests of each message, in order."""
    return b"".join(digest(m, alg) for m in messages)


# --- Merkle trees (RFC 6962 2.1) --------------------------------------------------------


def leaf_hash(data: bytes, alg: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    return digest(b"\x00" + data, alg)


def node_hash(left: bytes, right: bytes, alg: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    return digest(b"\x01" + left + right, alg)


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(
    hashes: Sequence[bytes], alg: HashAlgorithm = HashAlgorithm.SHA256
) -> bytes:
    """MTH over leaf hashes; the empty tree's root is H("")."""
    n = len(hashes)
    if n == 0:
        return digest(b"", alg)
    if n == 1:
        return hashes[0]
    k = _split(n)
    return node_hash(
        root_from_leaf_hashes(hashes[:k], alg), root_from_leaf_hashes(hashes[k:], alg), alg
    )


def merkle_root(leaves: Sequence[bytes], alg: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    return root_from_leaf_hashes([leaf_hash(x, alg) for x in leaves], alg)


def inclusion_proof(
    hashes: Sequence[bytes], index: int, alg: HashAlgorithm = HashAlgorithm.SHA256
) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 2.1.1, leaf-to-root order."""
    n = len(hashes)
    if not 0 <= index < n:
        raise IndexOutOfRange(f"leaf index {index} is outside a tree of {n} leaves")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(hashes[:k], index, alg), root_from_leaf_hashes(hashes[k:], alg)]
    return [*inclusion_proof(hashes[k:], index - k, alg), root_from_leaf_hashes(hashes[:k], alg)]


def _subproof(hashes: Sequence[bytes], m: int, complete: bool, alg: HashAlgorithm) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if complete else [root_from_leaf_hashes(hashes, alg)]
    k = _split(n)
    if m <= k:
        return [*_subproof(hashes[:k], m, complete, alg), root_from_leaf_hashes(hashes[k:], alg)]
    return [*_subproof(hashes[k:], m - k, False, alg), root_from_leaf_hashes(hashes[:k], alg)]


def consistency_proof(
    hashes: Sequence[bytes], old_size: int, alg: HashAlgorithm = HashAlgorithm.SHA256
) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 2.1.2 for 1 <= m <= n."""
    n = len(hashes)
    if not 1 <= old_size <= n:
        raise IndexOutOfRange(f"old tree size {old_size} must be between 1 and the new size {n}")
    return _subproof(hashes, old_size, True, alg)


def _check_digest(value: bytes, what: str) -> None:
    if len(value) != DIGEST_SIZE:
        raise InvalidInput(f"{what} must be {DIGEST_SIZE} bytes, got {len(value)}")


def root_from_inclusion(
    leaf: bytes,
    index: int,
    tree_size: int,
    path: Sequence[bytes],
    alg: HashAlgorithm = HashAlgorithm.SHA256,
) -> bytes:
    """The root an audit path implies (RFC 9162 2.1.3.2), given the leaf *hash*."""
    _check_digest(leaf, "leaf hash")
    for element in path:
        _check_digest(element, "proof element")
    if not 0 <= index < tree_size:
        raise IndexOutOfRange(f"leaf index {index} is outside a tree of {tree_size} leaves")
    fn, sn = index, tree_size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise InvalidProof("inclusion proof has more elements than the tree height allows")
        if fn & 1 or fn == sn:
            r = node_hash(p, r, alg)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p, alg)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("inclusion proof has fewer elements than the tree height requires")
    return r


def verify_inclusion(
    leaf: bytes,
    index: int,
    tree_size: int,
    path: Sequence[bytes],
    root: bytes,
    alg: HashAlgorithm = HashAlgorithm.SHA256,
) -> None:
    """Raise InvalidProof unless ``path`` proves leaf hash ``leaf`` at ``index`` under ``root``."""
    _check_digest(root, "root")
    if root_from_inclusion(leaf, index, tree_size, path, alg) != root:
        raise InvalidProof(
            f"inclusion proof for leaf {index} of {tree_size} does not match the root"
        )


def verify_consistency(  # noqa: PLR0912 - RFC 9162 2.1.4.2, step by step
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
    alg: HashAlgorithm = HashAlgorithm.SHA256,
) -> None:
    """RFC 9162 2.1.4.2: raise InvalidProof unless the proof links the two roots."""
    _check_digest(old_root, "old root")
    _check_digest(new_root, "new root")
    for element in proof:
        _check_digest(element, "proof element")
    if not 1 <= old_size <= new_size:
        raise IndexOutOfRange(
            f"old tree size {old_size} must be between 1 and the new size {new_size}"
        )
    if old_size == new_size:
        if proof:
            raise InvalidProof("trees of equal size need an empty consistency proof")
        if old_root != new_root:
            raise InvalidProof("trees of equal size have different roots")
        return
    if not proof:
        raise InvalidProof("consistency proof between trees of different sizes is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidProof("consistency proof has more elements than the trees allow")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr, alg)
            sr = node_hash(c, sr, alg)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c, alg)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("consistency proof has fewer elements than the trees require")
    if fr != old_root or sr != new_root:
        raise InvalidProof(
            f"consistency proof from size {old_size} to {new_size} does not match the roots"
        )
