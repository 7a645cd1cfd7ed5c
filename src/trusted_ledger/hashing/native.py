"""Thin, typed binding of the C extension: argument checks, buffers in, one ``_check(rc)``.

Every C status passes through ``_check``, which turns it into the package's exception for
that condition, so no caller ever sees a raw return code. Buffers go to C without copies
(``ffi.from_buffer``); outputs are allocated here as ``bytearray`` and handed back as is.

Importing this module verifies that the loaded extension was built from this very version of
the package (``tl_build_version``) with the ABI this binding expects (``tl_abi_version``):
a stale ``.so`` left behind by an older install is refused instead of silently misused.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from trusted_ledger._version import __version__
from trusted_ledger.errors import (
    IndexOutOfRange,
    InvalidInput,
    InvalidProof,
    NativeExtensionError,
)
from trusted_ledger.hashing.algorithms import DIGEST_SIZE, HashAlgorithm

_REBUILD_HINT = "rebuild it with `make setup` (or `pip install -e .`) from the source tree"

try:
    from trusted_ledger.hashing._native import ffi, lib
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise NativeExtensionError(
        f"the native hashing extension cannot be loaded: {exc}", hint=_REBUILD_HINT
    ) from exc

EXPECTED_ABI_VERSION = 1

BytesLike = bytes | bytearray | memoryview


def _verify_build() -> None:
    built = ffi.string(lib.tl_build_version()).decode("ascii")
    if built != __version__:
        raise NativeExtensionError(
            f"native extension version {built} does not match package version {__version__}",
            hint=_REBUILD_HINT,
        )
    if lib.tl_abi_version() != EXPECTED_ABI_VERSION:
        raise NativeExtensionError(
            f"native extension ABI {lib.tl_abi_version()} is not the expected "
            f"{EXPECTED_ABI_VERSION}",
            hint=_REBUILD_HINT,
        )
    if (lib.TL_ALG_SHA256, lib.TL_ALG_SM3) != (HashAlgorithm.SHA256, HashAlgorithm.SM3):
        raise NativeExtensionError("native algorithm numbers differ from HashAlgorithm")
    if lib.TL_DIGEST_LEN != DIGEST_SIZE:
        raise NativeExtensionError("native digest length differs from DIGEST_SIZE")


_verify_build()

PROOF_DIGESTS_MAX: int = lib.TL_PROOF_DIGESTS_MAX


def _check(rc: int, what: str) -> None:
    """Turn a TL_* status into the package's exception; return on TL_OK."""
    if rc == lib.TL_OK:
        return
    if rc == lib.TL_EINVAL:
        raise InvalidInput(f"{what}: invalid argument")
    if rc == lib.TL_ERANGE:
        raise IndexOutOfRange(f"{what}: index or size out of range")
    if rc == lib.TL_ENOMEM:
        raise MemoryError(f"{what}: out of memory")
    if rc == lib.TL_EVERIFY:
        raise InvalidProof(f"{what}: proof does not match the root")
    if rc == lib.TL_EPROOFLEN:
        raise InvalidProof(f"{what}: proof has the wrong number of elements")
    raise NativeExtensionError(f"{what}: unexpected native status {rc}")


def _alg(alg: HashAlgorithm) -> int:
    if not isinstance(alg, HashAlgorithm):
        raise TypeError(f"alg must be a HashAlgorithm, not {type(alg).__name__}")
    return int(alg)


def _in(data: BytesLike, what: str) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be bytes-like, not {type(data).__name__}")
    return ffi.from_buffer("uint8_t[]", data)


def _digest_arg(value: BytesLike, what: str) -> Any:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be bytes-like, not {type(value).__name__}")
    if memoryview(value).nbytes != DIGEST_SIZE:
        raise InvalidInput(f"{what} must be {DIGEST_SIZE} bytes, got {memoryview(value).nbytes}")
    return ffi.from_buffer("uint8_t[]", value)


def _count(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 0:
        raise IndexOutOfRange(f"{what} must not be negative, got {value}")
    return value


def _out(size: int) -> tuple[bytearray, Any]:
    buf = bytearray(size)
    return buf, ffi.from_buffer("uint8_t[]", buf, require_writable=True)


def pack(messages: Sequence[BytesLike]) -> tuple[bytes, array[int]]:
    """Join messages into one buffer plus ``len(messages) + 1`` offsets."""
    # Fast path: join and len() run in C. len() counts items, not bytes, for a memoryview
    # of a wider format, so a total that disagrees with the joined size takes the slow path.
    try:
        joined = b"".join(messages)
        offsets = array("Q", accumulate(map(len, messages), initial=0))
    except TypeError:
        joined, offsets = b"", array("Q")
    if offsets and offsets[-1] == len(joined) and len(offsets) == len(messages) + 1:
        return joined, offsets
    for i, m in enumerate(messages):
        if not isinstance(m, bytes | bytearray | memoryview):
            raise TypeError(f"message {i} must be bytes-like, not {type(m).__name__}")
    offsets = array("Q", accumulate((memoryview(m).nbytes for m in messages), initial=0))
    return b"".join(messages), offsets


def _offsets(buf: BytesLike, offsets: array[int]) -> Any:
    if not isinstance(offsets, array) or offsets.typecode != "Q":
        raise TypeError("offsets must be array('Q', ...) with one more entry than messages")
    if len(offsets) == 0:
        raise InvalidInput("offsets must have at least one entry (n messages need n + 1)")
    return ffi.from_buffer("uint64_t[]", offsets)


# --- SHA-256 implementation selection ---------------------------------------------------

IMPL_NAMES = {0: "portable", 1: "sha-ni"}


def sha256_impl() -> str:
    return IMPL_NAMES[lib.tl_sha256_impl_get()]


def sha256_impl_available(name: str) -> bool:
    for number, known in IMPL_NAMES.items():
        if known == name:
            return bool(lib.tl_sha256_impl_available(number))
    raise InvalidInput(f"unknown SHA-256 implementation {name!r}", hint="portable or sha-ni")


def set_sha256_impl(name: str) -> None:
    for number, known in IMPL_NAMES.items():
        if known == name:
            rc = lib.tl_sha256_impl_set(number)
            if rc != lib.TL_OK:
                raise InvalidInput(f"SHA-256 implementation {name!r} is not available here")
            return
    raise InvalidInput(f"unknown SHA-256 implementation {name!r}", hint="portable or sha-ni")


# --- digests ------------------------------------------------------------------------------


def digest(data: BytesLike, alg: HashAlgorithm) -> bytes:
    size = _nbytes(data, "data")
    out, out_p = _out(DIGEST_SIZE)
    _check(lib.tl_hash(_alg(alg), _in(data, "data"), size, out_p), "digest")
    return bytes(out)


def digest_packed(buf: BytesLike, offsets: array[int], alg: HashAlgorithm) -> bytearray:
    n = len(offsets) - 1 if isinstance(offsets, array) else 0
    off_p = _offsets(buf, offsets)
    out, out_p = _out(n * DIGEST_SIZE)
    rc = lib.tl_hash_many(_alg(alg), _in(buf, "buffer"), memoryview(buf).nbytes, off_p, n, out_p)
    _check(rc, "digest of packed messages")
    return out


def digest_fixed(buf: BytesLike, msg_len: int, alg: HashAlgorithm) -> bytearray:
    n = _fixed_count(buf, msg_len, "message")
    out, out_p = _out(n * DIGEST_SIZE)
    _check(lib.tl_hash_fixed(_alg(alg), _in(buf, "buffer"), msg_len, n, out_p), "fixed digests")
    return out


def _nbytes(data: BytesLike, what: str) -> int:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be bytes-like, not {type(data).__name__}")
    return memoryview(data).nbytes


def _fixed_count(buf: BytesLike, item_len: int, what: str) -> int:
    _count(item_len, f"{what} length")
    size = _nbytes(buf, "buffer")
    if item_len == 0:
        raise InvalidInput(f"{what} length must be at least 1")
    if size % item_len:
        raise InvalidInput(
            f"buffer of {size} bytes is not a whole number of {item_len}-byte {what}s"
        )
    return size // item_len


# --- Merkle trees -------------------------------------------------------------------------


def leaf_hashes_packed(buf: BytesLike, offsets: array[int], alg: HashAlgorithm) -> bytearray:
    n = len(offsets) - 1 if isinstance(offsets, array) else 0
    off_p = _offsets(buf, offsets)
    out, out_p = _out(n * DIGEST_SIZE)
    rc = lib.tl_merkle_leaf_hashes(
        _alg(alg), _in(buf, "buffer"), memoryview(buf).nbytes, off_p, n, out_p
    )
    _check(rc, "leaf hashes")
    return out


def leaf_hashes_fixed(buf: BytesLike, leaf_len: int, alg: HashAlgorithm) -> bytearray:
    n = _fixed_count(buf, leaf_len, "leaf")
    out, out_p = _out(n * DIGEST_SIZE)
    rc = lib.tl_merkle_leaf_hashes_fixed(_alg(alg), _in(buf, "buffer"), leaf_len, n, out_p)
    _check(rc, "leaf hashes")
    return out


def _leaf_hash_count(leaf_hashes: BytesLike) -> int:
    return _fixed_count(leaf_hashes, DIGEST_SIZE, "leaf hash")


def root_from_leaf_hashes(leaf_hashes: BytesLike, alg: HashAlgorithm) -> bytes:
    n = _leaf_hash_count(leaf_hashes) if _nbytes(leaf_hashes, "leaf hashes") else 0
    out, out_p = _out(DIGEST_SIZE)
    rc = lib.tl_merkle_root_from_leaf_hashes(_alg(alg), _in(leaf_hashes, "leaf hashes"), n, out_p)
    _check(rc, "Merkle root")
    return bytes(out)


def root_packed(buf: BytesLike, offsets: array[int], alg: HashAlgorithm) -> bytes:
    n = len(offsets) - 1 if isinstance(offsets, array) else 0
    off_p = _offsets(buf, offsets)
    out, out_p = _out(DIGEST_SIZE)
    rc = lib.tl_merkle_root(_alg(alg), _in(buf, "buffer"), memoryview(buf).nbytes, off_p, n, out_p)
    _check(rc, "Merkle root")
    return bytes(out)


def root_fixed(buf: BytesLike, leaf_len: int, alg: HashAlgorithm) -> bytes:
    n = _fixed_count(buf, leaf_len, "leaf") if _nbytes(buf, "buffer") else 0
    out, out_p = _out(DIGEST_SIZE)
    rc = lib.tl_merkle_root_fixed(_alg(alg), _in(buf, "buffer"), max(leaf_len, 1), n, out_p)
    _check(rc, "Merkle root")
    return bytes(out)


def _split_path(raw: bytearray, count: int) -> list[bytes]:
    return [bytes(raw[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE]) for i in range(count)]


def inclusion_proof(leaf_hashes: BytesLike, index: int, alg: HashAlgorithm) -> list[bytes]:
    n = _leaf_hash_count(leaf_hashes) if _nbytes(leaf_hashes, "leaf hashes") else 0
    index = _count(index, "leaf index")
    if index >= n:
        raise IndexOutOfRange(f"leaf index {index} is outside a tree of {n} leaves")
    out, out_p = _out(PROOF_DIGESTS_MAX * DIGEST_SIZE)
    length = ffi.new("size_t *")
    rc = lib.tl_merkle_inclusion_proof(
        _alg(alg), _in(leaf_hashes, "leaf hashes"), n, index, out_p, PROOF_DIGESTS_MAX, length
    )
    _check(rc, "inclusion proof")
    return _split_path(out, int(length[0]))


def _path_arg(path: Sequence[BytesLike]) -> tuple[Any, int]:
    if len(path) > PROOF_DIGESTS_MAX:
        raise InvalidProof(f"proof has {len(path)} elements, more than {PROOF_DIGESTS_MAX}")
    for i, element in enumerate(path):
        _digest_arg(element, f"proof element {i}")
    joined = b"".join(path)
    return ffi.from_buffer("uint8_t[]", joined), len(path)


def root_from_inclusion(
    leaf_hash: BytesLike, index: int, tree_size: int, path: Sequence[BytesLike], alg: HashAlgorithm
) -> bytes:
    leaf_p = _digest_arg(leaf_hash, "leaf hash")
    path_p, path_len = _path_arg(path)
    index = _count(index, "leaf index")
    tree_size = _count(tree_size, "tree size")
    if index >= tree_size:
        raise IndexOutOfRange(f"leaf index {index} is outside a tree of {tree_size} leaves")
    out, out_p = _out(DIGEST_SIZE)
    rc = lib.tl_merkle_root_from_inclusion(
        _alg(alg), leaf_p, index, tree_size, path_p, path_len, out_p
    )
    _check(rc, f"inclusion proof for leaf {index} of {tree_size}")
    return bytes(out)


def verify_inclusion(
    leaf_hash: BytesLike,
    index: int,
    tree_size: int,
    path: Sequence[BytesLike],
    root: BytesLike,
    alg: HashAlgorithm,
) -> None:
    leaf_p = _digest_arg(leaf_hash, "leaf hash")
    root_p = _digest_arg(root, "root")
    path_p, path_len = _path_arg(path)
    index = _count(index, "leaf index")
    tree_size = _count(tree_size, "tree size")
    if index >= tree_size:
        raise IndexOutOfRange(f"leaf index {index} is outside a tree of {tree_size} leaves")
    rc = lib.tl_merkle_inclusion_verify(
        _alg(alg), leaf_p, index, tree_size, path_p, path_len, root_p
    )
    _check(rc, f"inclusion proof for leaf {index} of {tree_size}")


def consistency_proof(leaf_hashes: BytesLike, old_size: int, alg: HashAlgorithm) -> list[bytes]:
    n = _leaf_hash_count(leaf_hashes) if _nbytes(leaf_hashes, "leaf hashes") else 0
    old_size = _count(old_size, "old tree size")
    if not 1 <= old_size <= n:
        raise IndexOutOfRange(f"old tree size {old_size} must be between 1 and the new size {n}")
    out, out_p = _out(PROOF_DIGESTS_MAX * DIGEST_SIZE)
    length = ffi.new("size_t *")
    rc = lib.tl_merkle_consistency_proof(
        _alg(alg), _in(leaf_hashes, "leaf hashes"), n, old_size, out_p, PROOF_DIGESTS_MAX, length
    )
    _check(rc, "consistency proof")
    return _split_path(out, int(length[0]))


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: BytesLike,
    new_root: BytesLike,
    proof: Sequence[BytesLike],
    alg: HashAlgorithm,
) -> None:
    old_p = _digest_arg(old_root, "old root")
    new_p = _digest_arg(new_root, "new root")
    proof_p, proof_len = _path_arg(proof)
    old_size = _count(old_size, "old tree size")
    new_size = _count(new_size, "new tree size")
    if not 1 <= old_size <= new_size:
        raise IndexOutOfRange(
            f"old tree size {old_size} must be between 1 and the new size {new_size}"
        )
    rc = lib.tl_merkle_consistency_verify(
        _alg(alg), old_size, new_size, old_p, new_p, proof_p, proof_len
    )
    _check(rc, f"consistency proof from size {old_size} to {new_size}")
