# Type stub for the cffi-built extension (compiled from native/ by native/build_ffi.py).
# Pointer arguments are cffi cdata; every function returns a TL_* status code.
from typing import Any

_CData = Any

class _Lib:
    TL_ABI_VERSION: int
    TL_DIGEST_LEN: int
    TL_PROOF_DIGESTS_MAX: int
    TL_OK: int
    TL_EINVAL: int
    TL_ERANGE: int
    TL_ENOMEM: int
    TL_EBUFSIZE: int
    TL_EVERIFY: int
    TL_EPROOFLEN: int
    TL_ALG_SHA256: int
    TL_ALG_SM3: int
    TL_IMPL_PORTABLE: int
    TL_IMPL_SHANI: int
    def tl_build_version(self) -> _CData: ...
    def tl_abi_version(self) -> int: ...
    def tl_sha256_impl_available(self, impl: int) -> int: ...
    def tl_sha256_impl_get(self) -> int: ...
    def tl_sha256_impl_set(self, impl: int) -> int: ...
    def tl_hash(self, alg: int, msg: _CData, length: int, out: _CData) -> int: ...
    def tl_hash_many(
        self, alg: int, buf: _CData, buf_len: int, offsets: _CData, n: int, out: _CData
    ) -> int: ...
    def tl_hash_fixed(self, alg: int, buf: _CData, msg_len: int, n: int, out: _CData) -> int: ...
    def tl_merkle_leaf_hashes(
        self, alg: int, buf: _CData, buf_len: int, offsets: _CData, n: int, out: _CData
    ) -> int: ...
    def tl_merkle_leaf_hashes_fixed(
        self, alg: int, buf: _CData, leaf_len: int, n: int, out: _CData
    ) -> int: ...
    def tl_merkle_root_from_leaf_hashes(
        self, alg: int, leaf_hashes: _CData, n: int, out: _CData
    ) -> int: ...
    def tl_merkle_root(
        self, alg: int, buf: _CData, buf_len: int, offsets: _CData, n: int, out: _CData
    ) -> int: ...
    def tl_merkle_root_fixed(
        self, alg: int, buf: _CData, leaf_len: int, n: int, out: _CData
    ) -> int: ...
    def tl_merkle_inclusion_proof(
        self,
        alg: int,
        leaf_hashes: _CData,
        n: int,
        index: int,
        proof_out: _CData,
        proof_cap: int,
        proof_len: _CData,
    ) -> int: ...
    def tl_merkle_root_from_inclusion(
        self,
        alg: int,
        leaf_hash: _CData,
        index: int,
        n: int,
        proof: _CData,
        proof_len: int,
        root_out: _CData,
    ) -> int: ...
    def tl_merkle_inclusion_verify(
        self,
        alg: int,
        leaf_hash: _CData,
        index: int,
        n: int,
        proof: _CData,
        proof_len: int,
        root: _CData,
    ) -> int: ...
    def tl_merkle_consistency_proof(
        self,
        alg: int,
        leaf_hashes: _CData,
        n: int,
        m: int,
        proof_out: _CData,
        proof_cap: int,
        proof_len: _CData,
    ) -> int: ...
    def tl_merkle_consistency_verify(
        self,
        alg: int,
        m: int,
        n: int,
        old_root: _CData,
        new_root: _CData,
        proof: _CData,
        proof_len: int,
    ) -> int: ...

ffi: Any
lib: _Lib
