/*
 * Reference Merkle tree definitions for test_native.c, transcribed from
 * RFC 6962 section 2.1 as literally as possible (recursive, split at the
 * largest power of two smaller than n) and built only on the one-shot
 * tl_hash. Deliberately naive: they are what the optimised code is
 * compared against.
 */
#ifndef TL_REF_MERKLE_H
#define TL_REF_MERKLE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tl_hash.h"

static void ref_leaf(int alg, const uint8_t *leaf, size_t len, uint8_t out[32])
{
    uint8_t *b = malloc(len + 1);
    b[0] = 0x00;
    if (len)
        memcpy(b + 1, leaf, len);
    tl_hash(alg, b, len + 1, out);
    free(b);
}

static void ref_node(int alg, const uint8_t *l, const uint8_t *r,
                     uint8_t out[32])
{
    uint8_t b[65];
    b[0] = 0x01;
    memcpy(b + 1, l, 32);
    memcpy(b + 33, r, 32);
    tl_hash(alg, b, 65, out);
}

static size_t ref_split(size_t n)
{
    size_t k = 1;
    while (2 * k < n)
        k *= 2;
    return k;
}

static void ref_mth(int alg, const uint8_t *lh, size_t n, uint8_t out[32])
{
    if (n == 0) {
        tl_hash(alg, NULL, 0, out);
    } else if (n == 1) {
        memcpy(out, lh, 32);
    } else {
        uint8_t l[32], r[32];
        size_t k = ref_split(n);
        ref_mth(alg, lh, k, l);
        ref_mth(alg, lh + 32 * k, n - k, r);
        ref_node(alg, l, r, out);
    }
}

static size_t ref_path(int alg, size_t m, const uint8_t *lh, size_t n,
                       uint8_t (*out)[32])
{
    if (n == 1)
        return 0;
    size_t k = ref_split(n), c;
    if (m < k) {
        c = ref_path(alg, m, lh, k, out);
        ref_mth(alg, lh + 32 * k, n - k, out[c]);
    } else {
        c = ref_path(alg, m - k, lh + 32 * k, n - k, out);
        ref_mth(alg, lh, k, out[c]);
    }
    return c + 1;
}

static size_t ref_subproof(int alg, size_t m, const uint8_t *lh, size_t n,
                           int b, uint8_t (*out)[32])
{
    if (m == n) {
        if (b)
            return 0;
        ref_mth(alg, lh, n, out[0]);
        return 1;
    }
    size_t k = ref_split(n), c;
    if (m <= k) {
        c = ref_subproof(alg, m, lh, k, b, out);
        ref_mth(alg, lh + 32 * k, n - k, out[c]);
    } else {
        c = ref_subproof(alg, m - k, lh + 32 * k, n - k, 0, out);
        ref_mth(alg, lh, k, out[c]);
    }
    return c + 1;
}

#endif /* TL_REF_MERKLE_H */
