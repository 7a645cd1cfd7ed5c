"""Bad input gets a clear Python exception from the native binding, never a crash."""

from __future__ import annotations

from array import array

import pytest

from trusted_ledger import hashing
from trusted_ledger.errors import IndexOutOfRange, InvalidInput, InvalidProof
from trusted_ledger.hashing import HashAlgorithm, native, reference

LEAVES = [bytes([i]) * (i + 1) for i in range(11)]


def test_wrong_types_raise_type_error() -> None:
    with pytest.raises(TypeError, match="bytes-like"):
        hashing.sha256("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="message 1"):
        hashing.digest_many([b"a", 5])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="HashAlgorithm"):
        hashing.digest(b"x", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="offsets"):
        hashing.digest_packed(b"abc", [0, 3])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="int"):
        hashing.MerkleTree.from_leaves(LEAVES).inclusion_proof(1.5)  # type: ignore[arg-type]


def test_offsets_are_validated_before_any_read() -> None:
    with pytest.raises(InvalidInput):  # past the end of the buffer
        hashing.digest_packed(b"abc", array("Q", [0, 4]))
    with pytest.raises(InvalidInput):  # decreasing
        hashing.digest_packed(b"abcdef", array("Q", [0, 4, 2]))
    with pytest.raises(InvalidInput):  # no entries at all
        hashing.digest_packed(b"abc", array("Q"))
    with pytest.raises(InvalidInput):
        hashing.merkle_root_packed(b"abc", array("Q", [0, 2**63]))
    # An offsets array that is fine but starts past zero simply skips a prefix.
    assert hashing.digest_packed(b"xxabc", array("Q", [2, 5]))[0] == hashing.sha256(b"abc")


def test_fixed_size_buffers_must_divide_evenly() -> None:
    with pytest.raises(InvalidInput, match="whole number"):
        hashing.merkle_root_fixed(b"\x00" * 65, 32)
    with pytest.raises(InvalidInput, match="at least 1"):
        hashing.digest_fixed(b"abc", 0)
    with pytest.raises(IndexOutOfRange):
        hashing.digest_fixed(b"abc", -1)
    assert hashing.merkle_root_fixed(b"", 32) == hashing.sha256(b"")


def test_index_out_of_range() -> None:
    tree = hashing.MerkleTree.from_leaves(LEAVES)
    for index in (-1, len(LEAVES), 2**64):
        with pytest.raises(IndexOutOfRange):
            tree.inclusion_proof(index)
    for old_size in (0, len(LEAVES) + 1, -3):
        with pytest.raises(IndexOutOfRange):
            tree.consistency_proof(old_size)
    with pytest.raises(IndexOutOfRange):
        hashing.verify_inclusion(b"\x00" * 32, 5, 5, [], tree.root)
    with pytest.raises(IndexOutOfRange):
        hashing.verify_consistency(6, 5, tree.root, tree.root, [])


def test_empty_tree() -> None:
    empty = hashing.MerkleTree.from_leaves([])
    assert empty.size == 0
    assert empty.root == hashing.sha256(b"") == reference.merkle_root([])
    with pytest.raises(IndexOutOfRange):
        empty.inclusion_proof(0)
    with pytest.raises(IndexOutOfRange):
        empty.consistency_proof(1)


def test_wrong_digest_lengths() -> None:
    tree = hashing.MerkleTree.from_leaves(LEAVES)
    proof = tree.inclusion_proof(3)
    with pytest.raises(InvalidInput, match="32 bytes"):
        proof.verify_leaf_hash(b"\x00" * 31, tree.root)
    with pytest.raises(InvalidInput, match="root"):
        proof.verify(LEAVES[3], tree.root[:-1])
    with pytest.raises(InvalidInput, match="proof element 0"):
        hashing.verify_inclusion(tree.leaf_hashes[3], 3, tree.size, [b"\x01" * 33], tree.root)
    with pytest.raises(InvalidInput):
        hashing.DigestArray(b"\x00" * 33)


def test_proofs_of_wrong_length_are_invalid_not_crashes() -> None:
    tree = hashing.MerkleTree.from_leaves(LEAVES)
    proof = tree.inclusion_proof(4)
    longer = (*proof.path, b"\x00" * 32)
    shorter = proof.path[:-1]
    for path in (longer, shorter, (b"\x00" * 32,) * (native.PROOF_DIGESTS_MAX + 1)):
        with pytest.raises(InvalidProof):
            hashing.verify_inclusion(tree.leaf_hashes[4], 4, tree.size, path, tree.root)
        with pytest.raises(InvalidProof):
            reference.verify_inclusion(tree.leaf_hashes[4], 4, tree.size, path, tree.root)
    consistency = tree.consistency_proof(3)
    for path in (consistency.path[:-1], (*consistency.path, b"\x00" * 32), ()):
        with pytest.raises(InvalidProof):
            hashing.verify_consistency(
                3, tree.size, hashing.merkle_root(LEAVES[:3]), tree.root, path
            )


def test_equal_size_consistency() -> None:
    tree = hashing.MerkleTree.from_leaves(LEAVES)
    proof = tree.consistency_proof(tree.size)
    assert proof.path == ()
    proof.verify(tree.root, tree.root)
    with pytest.raises(InvalidProof):
        proof.verify(tree.root, hashing.sha256(b"other"))


def test_wrong_leaf_or_root_fails_verification() -> None:
    tree = hashing.MerkleTree.from_leaves(LEAVES, HashAlgorithm.SM3)
    proof = tree.inclusion_proof(7)
    proof.verify(LEAVES[7], tree.root)
    with pytest.raises(InvalidProof):
        proof.verify(LEAVES[6], tree.root)
    sha_tree = hashing.MerkleTree.from_leaves(LEAVES, HashAlgorithm.SHA256)
    with pytest.raises(InvalidProof):  # an SM3 proof does not verify under a SHA-256 root
        proof.verify(LEAVES[7], sha_tree.root)


def test_unknown_impl_and_algorithm_names() -> None:
    with pytest.raises(InvalidInput, match="portable or sha-ni"):
        hashing.set_sha256_impl("avx9000")
    with pytest.raises(InvalidInput, match="choose one of"):
        HashAlgorithm.from_name("md5")
    assert HashAlgorithm.from_name("SHA-256") is HashAlgorithm.SHA256


def test_tagged_digest_separates_domains() -> None:
    assert hashing.tagged_digest("block", b"x") != hashing.tagged_digest("vote", b"x")
    # The length prefix stops ("ab", "c...") from colliding with ("a", "bc...").
    assert hashing.tagged_digest("ab", b"c") != hashing.tagged_digest("a", b"bc")
    assert hashing.tagged_digest("block", b"x") == hashing.sha256(b"\x05blockx")
    with pytest.raises(InvalidInput):
        hashing.tagged_digest("", b"x")
    with pytest.raises(InvalidInput):
        hashing.tagged_digest("é", b"x")


def test_digest_array_indexing() -> None:
    digests = hashing.digest_many([b"a", b"b", b"c"])
    assert len(digests) == 3
    assert digests[-1] == hashing.sha256(b"c")
    assert list(digests[1:]) == [hashing.sha256(b"b"), hashing.sha256(b"c")]
    assert list(digests[::2]) == [hashing.sha256(b"a"), hashing.sha256(b"c")]
    with pytest.raises(IndexOutOfRange):
        digests[3]


def test_pack_counts_bytes_of_wide_memoryviews() -> None:
    wide = memoryview(array("I", [1, 2, 3]))  # 3 items, 12 bytes
    buf, offsets = hashing.pack([b"ab", wide])
    assert buf == b"ab" + bytes(wide)
    assert list(offsets) == [0, 2, 14]
    assert hashing.digest_many([b"ab", wide])[1] == hashing.sha256(bytes(wide))
