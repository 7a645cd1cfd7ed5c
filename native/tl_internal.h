/*
 * Internal interfaces shared by the C files in native/. Not part of the ABI:
 * every symbol here is prefixed tl__ so it cannot collide with the public
 * tl_* names or with the cffi-generated module.
 */
#ifndef TL_INTERNAL_H
#define TL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tl_hash.h"

/* SHA-NI code needs GCC/Clang target attributes and x86-64 intrinsics; any
 * other build reports the implementation as unavailable. Predefining it to
 * 0 builds the portable-only library on x86-64 too (to test that path). */
#ifndef TL_HAVE_SHANI_BUILD
#if defined(__x86_64__) && defined(__GNUC__)
#define TL_HAVE_SHANI_BUILD 1
#else
#define TL_HAVE_SHANI_BUILD 0
#endif
#endif

/* A Merkle prefix byte, or none. */
#define TL_NO_PREFIX (-1)
#define TL_LEAF_PREFIX 0x00
#define TL_NODE_PREFIX 0x01

/* Compress nblocks consecutive 64-byte blocks into a state held as eight
 * native-endian words in the standard (A..H) order. */
typedef void (*tl__compress_fn)(uint32_t state[8], const uint8_t *blocks,
                                size_t nblocks);

extern const uint32_t tl__sha256_k[64];
extern const uint32_t tl__sha256_iv[8];
extern const uint32_t tl__sm3_iv[8];

void tl__sha256_compress_portable(uint32_t state[8], const uint8_t *blocks,
                                  size_t nblocks);
void tl__sm3_compress(uint32_t state[8], const uint8_t *blocks,
                      size_t nblocks);
/* W[t] + K[t] for every round of one block: lets a block whose content is
 * known in advance (the pure padding block) skip the message schedule. */
void tl__sha256_block_wk(const uint8_t block[64], uint32_t wk[64]);

/* Detected once; 1 if this CPU and build can run the SHA-NI code. */
int tl__cpu_has_shani(void);

#if TL_HAVE_SHANI_BUILD
/* State as the sha256rnds2 instruction wants it: {ABEF, CDGH} as two
 * 128-bit lanes. Kept opaque so the multi-lane scheduler never reshuffles
 * between blocks. */
typedef struct {
    uint32_t w[8];
} __attribute__((aligned(16))) tl__shani_state;

void tl__shani_init(tl__shani_state *st);
void tl__shani_digest(const tl__shani_state *st, uint8_t out[32]);
/* Standard-order wrapper usable as a tl__compress_fn. */
void tl__sha256_compress_shani(uint32_t state[8], const uint8_t *blocks,
                               size_t nblocks);
/* nblocks consecutive blocks for each of 1, 2 or 4 independent lanes; lane
 * l reads p[l] .. p[l] + 64 * nblocks and updates *st[l]. */
void tl__shani_x1(tl__shani_state *const st[1], const uint8_t *const p[1],
                  size_t nblocks);
void tl__shani_x2(tl__shani_state *const st[2], const uint8_t *const p[2],
                  size_t nblocks);
void tl__shani_x4(tl__shani_state *const st[4], const uint8_t *const p[4],
                  size_t nblocks);

/* Whole messages for lanes in lockstep (equal-length messages): starting
 * from the IV, run r feeds nblocks[r] blocks from ptr[r][l] to lane l; then
 * an optional block whose W+K schedule was precomputed (a padding-only
 * block, identical in every lane); then lane l's digest goes to out[l]. */
#define TL_SHANI_MAX_RUNS 3
typedef struct {
    const uint8_t *ptr[TL_SHANI_MAX_RUNS][4];
    size_t nblocks[TL_SHANI_MAX_RUNS];
    int nruns;
    const uint32_t *wk; /* NULL when there is no such block */
} tl__shani_job;

void tl__shani_job_x1(const tl__shani_job *job, uint8_t *const out[1]);
void tl__shani_job_x2(const tl__shani_job *job, uint8_t *const out[2]);
void tl__shani_job_x4(const tl__shani_job *job, uint8_t *const out[4]);
#endif

/* ---- engine.c: hash messages of the form [prefix byte] || data ---------- */

/* One message. impl is a TL_IMPL_* value (ignored for SM3). */
void tl__hash_one(int alg, int impl, int prefix, const uint8_t *data,
                  size_t len, uint8_t out[32]);
/* n messages of len bytes, message i at buf + i * stride, digest i at
 * out + 32 * i. Every input of a group of lanes is read before any of that
 * group's digests is written, and groups go in increasing i, so out may
 * alias buf as long as out + 32 * i never lies past buf + stride * i (the
 * Merkle code hashes a level in place with stride 64). */
void tl__hash_fixed(int alg, int impl, int prefix, const uint8_t *buf,
                    size_t stride, size_t len, size_t n, uint8_t *out);
/* n messages buf[offsets[i] .. offsets[i+1]), offsets already validated. */
void tl__hash_var(int alg, int impl, int prefix, const uint8_t *buf,
                  const uint64_t *offsets, size_t n, uint8_t *out);

/* ---- argument checks shared by hash_api.c and merkle.c ------------------ */

int tl__alg_ok(int alg);
/* TL_OK if offsets describe n messages inside buf[0..buf_len). */
int tl__check_offsets(const uint8_t *buf, size_t buf_len,
                      const uint64_t *offsets, size_t n);
/* a * b without overflow; 0 on overflow. */
int tl__mul_ok(size_t a, size_t b, size_t *res);

#endif /* TL_INTERNAL_H */
