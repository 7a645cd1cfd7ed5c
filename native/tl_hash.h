/*
 * Trusted Ledger native hashing: SHA-256 (portable + SHA-NI multi-lane, chosen
 * at run time), SM3 (GM/T 0004-2012), and RFC 6962 / RFC 9162 Merkle trees.
 *
 * Contract shared by every function here:
 *   - Every function returns an int status: TL_OK (0) or a negative TL_E*.
 *   - All digests are 32 bytes (both SHA-256 and SM3).
 *   - Pointers may be NULL only when the matching count/length is 0.
 *   - Nothing is ever read or written outside the lengths given; a bad
 *     argument is reported as an error code, never by crashing.
 *   - Output buffers are written only when the function returns TL_OK.
 *   - Functions are thread-safe (no global mutable state except the SHA-256
 *     implementation selector, which is an atomic int).
 */
#ifndef TL_HASH_H
#define TL_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a signature or a semantic in this header changes. */
#define TL_ABI_VERSION 1

#define TL_DIGEST_LEN 32
/* Longest inclusion/consistency proof we ever produce or accept, in digests.
 * A tree of 2^64 leaves needs at most 64 for inclusion and ~128 for
 * consistency. */
#define TL_PROOF_DIGESTS_MAX 128

/* Status codes. */
#define TL_OK 0
#define TL_EINVAL (-1)   /* bad argument: NULL pointer, unknown alg, offsets not monotone or past buffer end */
#define TL_ERANGE (-2)   /* index or size out of range (leaf index >= n, m > n, m == 0, n == 0 where a leaf is needed) */
#define TL_ENOMEM (-3)   /* allocation failed */
#define TL_EBUFSIZE (-4) /* output capacity too small */
#define TL_EVERIFY (-5)  /* proof is well-formed but does not verify against the given root(s) */
#define TL_EPROOFLEN (-6) /* proof has the wrong number of digests for (index, n) or (m, n) */

/* Hash algorithms. */
#define TL_ALG_SHA256 0
#define TL_ALG_SM3 1

/* SHA-256 implementations. */
#define TL_IMPL_PORTABLE 0
#define TL_IMPL_SHANI 1

/* Build identification: the version string is injected at build time
 * (-DTL_BUILD_VERSION="x.y.z"); the Python package refuses to load an
 * extension whose version differs from its own. */
const char *tl_build_version(void);
int tl_abi_version(void);

/* 1 if the CPU (cpuid leaf 7, EBX bit 29, plus SSE4.1/SSSE3) and this build
 * support the implementation, else 0. TL_IMPL_PORTABLE is always 1. */
int tl_sha256_impl_available(int impl);
/* The implementation in use: chosen at first use (SHA-NI when available). */
int tl_sha256_impl_get(void);
/* Force an implementation (tests, benchmarks). TL_EINVAL if unavailable. */
int tl_sha256_impl_set(int impl);

/* One message. */
int tl_hash(int alg, const uint8_t *msg, size_t len, uint8_t *out);

/* n messages in one buffer: message i is buf[offsets[i] .. offsets[i+1]).
 * offsets has n + 1 entries, non-decreasing, offsets[n] <= buf_len.
 * out receives n * 32 bytes. */
int tl_hash_many(int alg, const uint8_t *buf, size_t buf_len,
                 const uint64_t *offsets, size_t n, uint8_t *out);

/* n messages of msg_len bytes each, back to back in buf (n * msg_len bytes).
 * out receives n * 32 bytes. */
int tl_hash_fixed(int alg, const uint8_t *buf, size_t msg_len, size_t n,
                  uint8_t *out);

/* ---- Merkle trees, RFC 6962 section 2.1 / RFC 9162 section 2.1 ----------
 * leaf hash = H(0x00 || leaf), node hash = H(0x01 || left || right),
 * MTH of 0 leaves = H(""), split at the largest power of two < n.     */

/* Leaf hashes of n variable-length leaves (same buffer/offsets layout as
 * tl_hash_many). out receives n * 32 bytes. */
int tl_merkle_leaf_hashes(int alg, const uint8_t *buf, size_t buf_len,
                          const uint64_t *offsets, size_t n, uint8_t *out);
/* Leaf hashes of n leaves of leaf_len bytes each. */
int tl_merkle_leaf_hashes_fixed(int alg, const uint8_t *buf, size_t leaf_len,
                                size_t n, uint8_t *out);

/* Root over n leaf hashes (n * 32 bytes). n == 0 gives H(""). */
int tl_merkle_root_from_leaf_hashes(int alg, const uint8_t *leaf_hashes,
                                    size_t n, uint8_t *out);
/* Root over n raw leaves, in one call (leaf hashing included). */
int tl_merkle_root(int alg, const uint8_t *buf, size_t buf_len,
                   const uint64_t *offsets, size_t n, uint8_t *out);
int tl_merkle_root_fixed(int alg, const uint8_t *buf, size_t leaf_len,
                         size_t n, uint8_t *out);

/* Inclusion proof (audit path, leaf to root order) for leaf `index` in a
 * tree of n leaf hashes. proof_cap is in digests; *proof_len receives the
 * number of digests written. TL_ERANGE if index >= n. */
int tl_merkle_inclusion_proof(int alg, const uint8_t *leaf_hashes, size_t n,
                              size_t index, uint8_t *proof_out,
                              size_t proof_cap, size_t *proof_len);
/* Root implied by a leaf hash, its index, tree size n and an audit path
 * (RFC 9162 2.1.3.2). TL_ERANGE if index >= n; TL_EPROOFLEN if the path
 * length is wrong for (index, n). */
int tl_merkle_root_from_inclusion(int alg, const uint8_t *leaf_hash,
                                  size_t index, size_t n,
                                  const uint8_t *proof, size_t proof_len,
                                  uint8_t *root_out);
/* TL_OK if the path proves the leaf at index in the tree with `root`,
 * TL_EVERIFY if it is well-formed but does not. */
int tl_merkle_inclusion_verify(int alg, const uint8_t *leaf_hash,
                               size_t index, size_t n, const uint8_t *proof,
                               size_t proof_len, const uint8_t *root);

/* Consistency proof between the first m leaves and all n leaves
 * (RFC 6962 2.1.2 SUBPROOF(m, D[n], true)). Requires 1 <= m <= n
 * (TL_ERANGE otherwise); m == n gives an empty proof. */
int tl_merkle_consistency_proof(int alg, const uint8_t *leaf_hashes,
                                size_t n, size_t m, uint8_t *proof_out,
                                size_t proof_cap, size_t *proof_len);
/* RFC 9162 2.1.4.2 verification. TL_ERANGE if m == 0 or m > n,
 * TL_EPROOFLEN if the proof length is impossible for (m, n), TL_EVERIFY
 * if it does not verify. m == n requires an empty proof and equal roots. */
int tl_merkle_consistency_verify(int alg, size_t m, size_t n,
                                 const uint8_t *old_root,
                                 const uint8_t *new_root,
                                 const uint8_t *proof, size_t proof_len);

#ifdef __cplusplus
}
#endif
#endif /* TL_HASH_H */
