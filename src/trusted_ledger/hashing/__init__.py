"""Hashing for the ledger: digests, domain separation and Merkle trees, computed in C.

The only importer of the compiled extension (``_native``, built from ``native/`` by cffi).
``reference`` is a pure-Python twin of every function, used by the tests as an oracle.
"""

from trusted_ledger.hashing.algorithms import DIGEST_SIZE, HashAlgorithm
from trusted_ledger.hashing.digests import (
    DigestArray,
    digest,
    digest_fixed,
    digest_many,
    digest_packed,
    sha256,
    sm3,
    tagged_digest,
)
from trusted_ledger.hashing.merkle import (
    ConsistencyProof,
    InclusionProof,
    MerkleTree,
    leaf_hash,
    leaf_hashes,
    merkle_root,
    merkle_root_fixed,
    merkle_root_packed,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from trusted_ledger.hashing.native import (
    pack,
    set_sha256_impl,
    sha256_impl,
    sha256_impl_available,
)

__all__ = [
    "DIGEST_SIZE",
    "ConsistencyProof",
    "DigestArray",
    "HashAlgorithm",
    "InclusionProof",
    "MerkleTree",
    "digest",
    "digest_fixed",
    "digest_many",
    "digest_packed",
    "leaf_hash",
    "leaf_hashes",
    "merkle_root",
    "merkle_root_fixed",
    "merkle_root_packed",
    "node_hash",
    "pack",
    "root_from_leaf_hashes",
    "set_sha256_impl",
    "sha256",
    "sha256_impl",
    "sha256_impl_available",
    "sm3",
    "tagged_digest",
    "verify_consistency",
    "verify_inclusion",
]
