/*
 * Public hashing entry points: argument validation, then engine.c.
 * Validation runs completely before any output byte is written, which is
 * how "outputs are written only on TL_OK" holds for these functions (the
 * engines themselves cannot fail).
 */
#include "tl_internal.h"

#ifndef TL_BUILD_VERSION
#define TL_BUILD_VERSION "0.0.0-dev"
#endif

const char *tl_build_version(void)
{
    return TL_BUILD_VERSION;
}

int tl_abi_version(void)
{
    return TL_ABI_VERSION;
}

int tl__alg_ok(int alg)
{
    return alg == TL_ALG_SHA256 || alg == TL_ALG_SM3;
}

int tl__mul_ok(size_t a, size_t b, size_t *res)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *res = a * b;
    return 1;
}

int tl__check_offsets(const uint8_t *buf, size_t buf_len,
                      const uint64_t *offsets, size_t n)
{
    if (buf == NULL && buf_len != 0)
        return TL_EINVAL;
    if (offsets == NULL)
        return n == 0 ? TL_OK : TL_EINVAL;
    /* offsets holds n + 1 entries; n == SIZE_MAX could not be indexed. */
    if (n == SIZE_MAX)
        return TL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (offsets[i] > offsets[i + 1])
            return TL_EINVAL;
    /* Non-decreasing, so bounding the last bounds them all. */
    if (offsets[n] > (uint64_t)buf_len)
        return TL_EINVAL;
    return TL_OK;
}

int tl_hash(int alg, const uint8_t *msg, size_t len, uint8_t *out)
{
    if (!tl__alg_ok(alg) || out == NULL || (msg == NULL && len != 0))
        return TL_EINVAL;
    tl__hash_one(alg, tl_sha256_impl_get(), TL_NO_PREFIX, msg, len, out);
    return TL_OK;
}

/* Shared by tl_hash_many and tl_merkle_leaf_hashes. */
static int hash_many_prefixed(int alg, int prefix, const uint8_t *buf,
                              size_t buf_len, const uint64_t *offsets,
                              size_t n, uint8_t *out)
{
    size_t out_len;
    if (!tl__alg_ok(alg))
        return TL_EINVAL;
    int rc = tl__check_offsets(buf, buf_len, offsets, n);
    if (rc != TL_OK)
        return rc;
    if (!tl__mul_ok(n, TL_DIGEST_LEN, &out_len) || (out == NULL && n != 0))
        return TL_EINVAL;
    if (n > 0)
        tl__hash_var(alg, tl_sha256_impl_get(), prefix, buf, offsets, n, out);
    return TL_OK;
}

static int hash_fixed_prefixed(int alg, int prefix, const uint8_t *buf,
                               size_t msg_len, size_t n, uint8_t *out)
{
    size_t in_len, out_len;
    if (!tl__alg_ok(alg))
        return TL_EINVAL;
    if (!tl__mul_ok(n, msg_len, &in_len) ||
        !tl__mul_ok(n, TL_DIGEST_LEN, &out_len))
        return TL_EINVAL;
    if ((buf == NULL && in_len != 0) || (out == NULL && n != 0))
        return TL_EINVAL;
    if (n > 0)
        tl__hash_fixed(alg, tl_sha256_impl_get(), prefix, buf, msg_len,
                       msg_len, n, out);
    return TL_OK;
}

int tl_hash_many(int alg, const uint8_t *buf, size_t buf_len,
                 const uint64_t *offsets, size_t n, uint8_t *out)
{
    return hash_many_prefixed(alg, TL_NO_PREFIX, buf, buf_len, offsets, n,
                              out);
}

int tl_hash_fixed(int alg, const uint8_t *buf, size_t msg_len, size_t n,
                  uint8_t *out)
{
    return hash_fixed_prefixed(alg, TL_NO_PREFIX, buf, msg_len, n, out);
}

int tl_merkle_leaf_hashes(int alg, const uint8_t *buf, size_t buf_len,
                          const uint64_t *offsets, size_t n, uint8_t *out)
{
    return hash_many_prefixed(alg, TL_LEAF_PREFIX, buf, buf_len, offsets, n,
                              out);
}

int tl_merkle_leaf_hashes_fixed(int alg, const uint8_t *buf, size_t leaf_len,
                                size_t n, uint8_t *out)
{
    return hash_fixed_prefixed(alg, TL_LEAF_PREFIX, buf, leaf_len, n, out);
}
