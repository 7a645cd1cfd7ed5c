"""Known-answer tests: published vectors, checked against the C code and the reference."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trusted_ledger import hashing
from trusted_ledger.hashing import HashAlgorithm, reference

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
PUBLISHED = json.loads((VECTORS / "hashing_published.json").read_text())
PROOFS = json.loads((VECTORS / "merkle_proofs.json").read_text())


def _message(case: dict[str, Any]) -> bytes:
    if "message_ascii" in case:
        return str(case["message_ascii"]).encode()
    text, count = case["message_ascii_repeat"]
    return str(text).encode() * int(count)


@pytest.mark.parametrize("case", PUBLISHED["sha256"]["cases"], ids=lambda c: c["digest_hex"][:8])
def test_sha256_published(case: dict[str, Any], sha256_impl: str) -> None:
    message = _message(case)
    assert hashing.sha256(message).hex() == case["digest_hex"]
    assert reference.digest(message).hex() == case["digest_hex"]
    assert hashing.digest_many([message, message])[1].hex() == case["digest_hex"]


@pytest.mark.parametrize("case", PUBLISHED["sm3"]["cases"], ids=lambda c: c["digest_hex"][:8])
def test_sm3_published(case: dict[str, Any]) -> None:
    message = _message(case)
    assert hashing.sm3(message).hex() == case["digest_hex"]
    assert reference.sm3(message).hex() == case["digest_hex"]


def test_sm3_agrees_with_openssl_where_available() -> None:
    if "sm3" not in hashlib.algorithms_available:
        pytest.skip("this OpenSSL build has no SM3")
    for length in (0, 1, 55, 56, 63, 64, 65, 119, 120, 1000):
        message = bytes((i * 7 + length) & 0xFF for i in range(length))
        assert hashing.sm3(message) == hashlib.new("sm3", message).digest()


def test_rfc6962_roots(sha256_impl: str) -> None:
    data = PUBLISHED["merkle_rfc6962"]
    leaves = [bytes.fromhex(x) for x in data["leaves_hex"]]
    for n, root_hex in enumerate(data["roots_hex"]):
        assert hashing.merkle_root(leaves[:n]).hex() == root_hex
        assert reference.merkle_root(leaves[:n]).hex() == root_hex
        assert hashing.MerkleTree.from_leaves(leaves[:n]).root.hex() == root_hex


@pytest.mark.parametrize("alg", list(HashAlgorithm), ids=lambda a: a.name)
def test_generated_proof_vectors(alg: HashAlgorithm) -> None:
    leaves = [bytes.fromhex(x) for x in PROOFS["leaves_hex"]]
    section = PROOFS[alg.name.lower()]
    for n, root_hex in enumerate(section["roots_hex"]):
        assert hashing.merkle_root(leaves[:n], alg).hex() == root_hex
    for case in section["inclusion"]:
        n, i = case["tree_size"], case["index"]
        tree = hashing.MerkleTree.from_leaves(leaves[:n], alg)
        proof = tree.inclusion_proof(i)
        assert [p.hex() for p in proof.path] == case["path_hex"]
        proof.verify(leaves[i], bytes.fromhex(section["roots_hex"][n]))
    for case in section["consistency"]:
        m, n = case["old_size"], case["new_size"]
        proof = hashing.MerkleTree.from_leaves(leaves[:n], alg).consistency_proof(m)
        assert [p.hex() for p in proof.path] == case["proof_hex"]
        proof.verify(bytes.fromhex(section["roots_hex"][m]), bytes.fromhex(section["roots_hex"][n]))


def test_generated_vectors_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(VECTORS / "generate_hashing.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
