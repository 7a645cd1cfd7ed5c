"""Differential property tests: the C code against the pure-Python reference."""

from __future__ import annotations

from array import array

from hypothesis import assume, given
from hypothesis import strategies as st

from trusted_ledger import hashing
from trusted_ledger.errors import InvalidProof
from trusted_ledger.hashing import HashAlgorithm, reference

algs = st.sampled_from(list(HashAlgorithm))
messages = st.lists(st.binary(max_size=300), max_size=40)
IMPLS = [name for name in ("portable", "sha-ni") if hashing.sha256_impl_available(name)]


def _each_impl() -> list[str]:
    return IMPLS


@given(msgs=messages, alg=algs)
def test_digest_many_matches_reference(msgs: list[bytes], alg: HashAlgorithm) -> None:
    expected = reference.digest_many(msgs, alg)
    for impl in _each_impl():
        hashing.set_sha256_impl(impl)
        assert hashing.digest_many(msgs, alg).buffer == expected
        assert b"".join(hashing.digest(m, alg) for m in msgs) == expected
        buf, offsets = hashing.pack(msgs)
        assert hashing.digest_packed(buf, offsets, alg).buffer == expected


@given(size=st.integers(1, 200), count=st.integers(0, 33), seed=st.binary(min_size=1, max_size=8))
def test_digest_fixed_matches_reference(size: int, count: int, seed: bytes) -> None:
    buf = (seed * (size * count // len(seed) + 1))[: size * count]
    msgs = [buf[i * size : (i + 1) * size] for i in range(count)]
    for alg in HashAlgorithm:
        expected = reference.digest_many(msgs, alg)
        for impl in _each_impl():
            hashing.set_sha256_impl(impl)
            assert hashing.digest_fixed(buf, size, alg).buffer == expected


def test_every_length_around_block_boundaries() -> None:
    """Lengths 0..300 cover every padding case (one or two final blocks) for both hashes."""
    msgs = [bytes((i * 31 + j) & 0xFF for j in range(i)) for i in range(301)]
    for alg in HashAlgorithm:
        expected = reference.digest_many(msgs, alg)
        for impl in _each_impl():
            hashing.set_sha256_impl(impl)
            assert hashing.digest_many(msgs, alg).buffer == expected


# Tree sizes: half the examples small (every shape of the last levels, cheap for the Python
# reference), half up to 5,000 leaves (deep trees); the reference makes large ones slow.
tree_sizes = st.integers(0, 64) | st.integers(0, 5000)


@given(n=tree_sizes, leaf_size=st.integers(1, 64), alg=algs, seed=st.integers(0, 255))
def test_merkle_root_matches_reference(
    n: int, leaf_size: int, alg: HashAlgorithm, seed: int
) -> None:
    buf = bytes((seed + i * 13) & 0xFF for i in range(n * leaf_size))
    leaves = [buf[i * leaf_size : (i + 1) * leaf_size] for i in range(n)]
    expected = reference.merkle_root(leaves, alg)
    for impl in _each_impl():
        hashing.set_sha256_impl(impl)
        assert hashing.merkle_root_fixed(buf, leaf_size, alg) == expected
        assert hashing.merkle_root(leaves, alg) == expected
        offsets = array("Q", range(0, n * leaf_size + 1, leaf_size))
        assert hashing.merkle_root_packed(buf, offsets, alg) == expected


@given(leaves=st.lists(st.binary(max_size=80), min_size=1, max_size=300), alg=algs, data=st.data())
def test_inclusion_proofs_match_reference(
    leaves: list[bytes], alg: HashAlgorithm, data: st.DataObject
) -> None:
    tree = hashing.MerkleTree.from_leaves(leaves, alg)
    hashes = [reference.leaf_hash(x, alg) for x in leaves]
    assert tree.leaf_hashes.buffer == b"".join(hashes)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = tree.inclusion_proof(index)
    assert list(proof.path) == reference.inclusion_proof(hashes, index, alg)
    proof.verify(leaves[index], tree.root)
    reference.verify_inclusion(hashes[index], index, len(leaves), proof.path, tree.root, alg)


@given(n=tree_sizes.filter(lambda n: n >= 1), alg=algs, data=st.data())
def test_consistency_proofs_match_reference(
    n: int, alg: HashAlgorithm, data: st.DataObject
) -> None:
    hashes = [reference.digest(i.to_bytes(4, "big"), alg) for i in range(n)]
    tree = hashing.MerkleTree(hashing.DigestArray.from_digests(hashes), alg)
    m = data.draw(st.integers(1, n))
    proof = tree.consistency_proof(m)
    assert list(proof.path) == reference.consistency_proof(hashes, m, alg)
    old_root = reference.root_from_leaf_hashes(hashes[:m], alg)
    proof.verify(old_root, tree.root)
    reference.verify_consistency(m, n, old_root, tree.root, proof.path, alg)


@given(
    n=st.integers(1, 400),
    alg=algs,
    data=st.data(),
)
def test_tampered_proofs_are_rejected_by_both(
    n: int, alg: HashAlgorithm, data: st.DataObject
) -> None:
    """Flip one bit anywhere in a valid proof: C and reference must both refuse it."""
    hashes = [reference.digest(i.to_bytes(4, "big"), alg) for i in range(n)]
    tree = hashing.MerkleTree(hashing.DigestArray.from_digests(hashes), alg)
    index = data.draw(st.integers(0, n - 1))
    path = list(tree.inclusion_proof(index).path)
    assume(path)
    which = data.draw(st.integers(0, len(path) - 1))
    bit = data.draw(st.integers(0, 255))
    tampered = bytearray(path[which])
    tampered[bit // 8] ^= 1 << (bit % 8)
    path[which] = bytes(tampered)
    for verify in (hashing.verify_inclusion, reference.verify_inclusion):
        try:
            verify(hashes[index], index, n, path, tree.root, alg)
        except InvalidProof:
            continue
        raise AssertionError(f"{verify.__module__} accepted a tampered proof")
