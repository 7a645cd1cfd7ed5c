/*
 * RFC 6962 / RFC 9162 Merkle tree hashes and proof generation.
 *
 * Roots are computed level by level (pair adjacent nodes, promote a lone
 * last node unchanged), which yields the same tree as the RFC's
 * "split at the largest power of two" recursion, and lets each level go
 * through the multi-lane hasher. To stay in cache and avoid an n * 32
 * allocation, leaves are processed in chunks of CHUNK (a power of two):
 * each full chunk is a perfect subtree whose root is merged into a binary
 * counter stack of perfect subtrees; at the end the stack is folded from
 * the right, which is exactly the RFC decomposition of n into perfect
 * subtrees of decreasing size.
 *
 * Level view used by the proofs: node j of level h covers leaves
 * [j * 2^h, min((j + 1) * 2^h, n)) and equals the RFC MTH of that range.
 */
#include <stdlib.h>
#include <string.h>

#include "tl_internal.h"

#define CHUNK ((size_t)2048)
/* Subtrees up to this many leaves use a stack buffer instead of malloc. */
#define SMALL 64
/* Room for any proof list; TL_PROOF_DIGESTS_MAX bounds what we emit. */
#define MAX_ITEMS (TL_PROOF_DIGESTS_MAX + 2)

typedef enum { SRC_HASHES, SRC_FIXED, SRC_VAR } src_kind;

typedef struct {
    src_kind kind;
    const uint8_t *buf;      /* leaf hashes, fixed leaves or variable data */
    size_t leaf_len;         /* SRC_FIXED */
    const uint64_t *offsets; /* SRC_VAR */
} leaf_src;

static void node_hash(int alg, int impl, const uint8_t *left,
                      const uint8_t *right, uint8_t out[32])
{
    uint8_t lr[64];
    memcpy(lr, left, 32);
    memcpy(lr + 32, right, 32);
    tl__hash_one(alg, impl, TL_NODE_PREFIX, lr, 64, out);
}

/* Reduces cnt >= 1 digests in h to their root, in place. */
static void reduce_in_place(int alg, int impl, uint8_t *h, size_t cnt,
                            uint8_t out[32])
{
    while (cnt > 1) {
        size_t pairs = cnt / 2;
        tl__hash_fixed(alg, impl, TL_NODE_PREFIX, h, 64, 64, pairs, h);
        if (cnt & 1)
            memmove(h + 32 * pairs, h + 32 * (cnt - 1), 32);
        cnt = pairs + (cnt & 1);
    }
    memcpy(out, h, 32);
}

/* Root of leaves [base, base + cnt) of src; tmp holds cnt digests. */
static void chunk_root(int alg, int impl, const leaf_src *src, size_t base,
                       size_t cnt, uint8_t *tmp, uint8_t out[32])
{
    switch (src->kind) {
    case SRC_FIXED: {
        const uint8_t *p =
            src->leaf_len ? src->buf + base * src->leaf_len : src->buf;
        tl__hash_fixed(alg, impl, TL_LEAF_PREFIX, p, src->leaf_len,
                       src->leaf_len, cnt, tmp);
        break;
    }
    case SRC_VAR:
        tl__hash_var(alg, impl, TL_LEAF_PREFIX, src->buf, src->offsets + base,
                     cnt, tmp);
        break;
    case SRC_HASHES: {
        /* The input is read-only: do the first level straight from it. */
        const uint8_t *p = src->buf + 32 * base;
        size_t pairs = cnt / 2;
        if (pairs > 0)
            tl__hash_fixed(alg, impl, TL_NODE_PREFIX, p, 64, 64, pairs, tmp);
        if (cnt & 1)
            memcpy(tmp + 32 * pairs, p + 32 * (cnt - 1), 32);
        cnt = pairs + (cnt & 1);
        break;
    }
    }
    reduce_in_place(alg, impl, tmp, cnt, out);
}

/* MTH over leaves [start, start + n) of src. */
static int subtree_root(int alg, int impl, const leaf_src *src, size_t start,
                        size_t n, uint8_t out[32])
{
    uint8_t small[SMALL * 32];
    uint8_t stack[64][32];
    size_t stack_n[64];
    int top = 0;

    if (n == 0) {
        tl__hash_one(alg, impl, TL_NO_PREFIX, NULL, 0, out);
        return TL_OK;
    }
    size_t chunk = n < CHUNK ? n : CHUNK;
    uint8_t *tmp = chunk <= SMALL ? small : malloc(chunk * 32);
    if (tmp == NULL)
        return TL_ENOMEM;

    for (size_t done = 0; done < n;) {
        size_t cnt = n - done < CHUNK ? n - done : CHUNK;
        uint8_t r[32];
        chunk_root(alg, impl, src, start + done, cnt, tmp, r);
        done += cnt;
        /* Binary-counter merge: only equal-sized perfect subtrees pair up.
         * A short final chunk is never equal to a stacked (>= CHUNK) one. */
        while (top > 0 && stack_n[top - 1] == cnt) {
            node_hash(alg, impl, stack[top - 1], r, r);
            cnt *= 2;
            top--;
        }
        memcpy(stack[top], r, 32);
        stack_n[top++] = cnt;
    }
    uint8_t acc[32];
    memcpy(acc, stack[top - 1], 32);
    for (int i = top - 2; i >= 0; i--)
        node_hash(alg, impl, stack[i], acc, acc);
    if (tmp != small)
        free(tmp);
    memcpy(out, acc, 32);
    return TL_OK;
}

int tl_merkle_root_from_leaf_hashes(int alg, const uint8_t *leaf_hashes,
                                    size_t n, uint8_t *out)
{
    size_t bytes;
    if (!tl__alg_ok(alg) || out == NULL ||
        !tl__mul_ok(n, TL_DIGEST_LEN, &bytes) ||
        (leaf_hashes == NULL && n != 0))
        return TL_EINVAL;
    leaf_src src = {SRC_HASHES, leaf_hashes, 0, NULL};
    return subtree_root(alg, tl_sha256_impl_get(), &src, 0, n, out);
}

int tl_merkle_root(int alg, const uint8_t *buf, size_t buf_len,
                   const uint64_t *offsets, size_t n, uint8_t *out)
{
    if (!tl__alg_ok(alg) || out == NULL)
        return TL_EINVAL;
    int rc = tl__check_offsets(buf, buf_len, offsets, n);
    if (rc != TL_OK)
        return rc;
    leaf_src src = {SRC_VAR, buf, 0, offsets};
    return subtree_root(alg, tl_sha256_impl_get(), &src, 0, n, out);
}

int tl_merkle_root_fixed(int alg, const uint8_t *buf, size_t leaf_len,
                         size_t n, uint8_t *out)
{
    size_t bytes;
    if (!tl__alg_ok(alg) || out == NULL ||
        !tl__mul_ok(n, leaf_len, &bytes) || (buf == NULL && bytes != 0))
        return TL_EINVAL;
    leaf_src src = {SRC_FIXED, buf, leaf_len, NULL};
    return subtree_root(alg, tl_sha256_impl_get(), &src, 0, n, out);
}

/* ---- proofs ------------------------------------------------------------ */

/* Number of digests in the audit path of index in a tree of n leaves: one
 * per level where the node on the path has a sibling. */
static size_t inclusion_len(size_t index, size_t n)
{
    size_t len = 0;
    for (size_t idx = index, cnt = n; cnt > 1; idx >>= 1) {
        if ((idx ^ 1) < cnt)
            len++;
        cnt = cnt / 2 + (cnt & 1); /* ceil without overflowing at SIZE_MAX */
    }
    return len;
}

static size_t largest_pow2_below(size_t n) /* n >= 2 */
{
    size_t k = 1;
    while (k <= (n - 1) / 2) /* i.e. 2k < n, without computing 2k */
        k <<= 1;
    return k;
}

/* RFC 6962 SUBPROOF(m, D[0:n], true) for 1 <= m < n, as (start, count)
 * leaf ranges whose MTHs form the proof, in proof order. */
static size_t consistency_ranges(size_t m, size_t n, size_t starts[MAX_ITEMS],
                                 size_t counts[MAX_ITEMS])
{
    size_t k = 0, start = 0;
    int whole = 1; /* the RFC's b: m is still the left edge of the tree */

    while (m != n) {
        size_t split = largest_pow2_below(n);
        if (m <= split) {
            starts[k] = start + split;
            counts[k++] = n - split;
            n = split;
        } else {
            starts[k] = start;
            counts[k++] = split;
            start += split;
            m -= split;
            n -= split;
            whole = 0;
        }
    }
    if (!whole) {
        starts[k] = start;
        counts[k++] = n;
    }
    /* The recursion emits the innermost subproof first; we walked
     * outside-in, so reverse. */
    for (size_t i = 0; i < k / 2; i++) {
        size_t s = starts[i], c = counts[i];
        starts[i] = starts[k - 1 - i];
        counts[i] = counts[k - 1 - i];
        starts[k - 1 - i] = s;
        counts[k - 1 - i] = c;
    }
    return k;
}

static int check_tree_args(int alg, const uint8_t *leaf_hashes, size_t n,
                           const uint8_t *proof_out, size_t proof_cap,
                           const size_t *proof_len)
{
    size_t bytes;
    if (!tl__alg_ok(alg) || proof_len == NULL ||
        !tl__mul_ok(n, TL_DIGEST_LEN, &bytes) ||
        (leaf_hashes == NULL && n != 0) ||
        (proof_out == NULL && proof_cap != 0))
        return TL_EINVAL;
    return TL_OK;
}

int tl_merkle_inclusion_proof(int alg, const uint8_t *leaf_hashes, size_t n,
                              size_t index, uint8_t *proof_out,
                              size_t proof_cap, size_t *proof_len)
{
    uint8_t tmp[MAX_ITEMS][32];
    int rc = check_tree_args(alg, leaf_hashes, n, proof_out, proof_cap,
                             proof_len);
    if (rc != TL_OK)
        return rc;
    if (index >= n)
        return TL_ERANGE;
    size_t len = inclusion_len(index, n);
    if (len > proof_cap)
        return TL_EBUFSIZE;

    int impl = tl_sha256_impl_get();
    leaf_src src = {SRC_HASHES, leaf_hashes, 0, NULL};
    size_t k = 0;
    unsigned h = 0;
    for (size_t idx = index, cnt = n; cnt > 1; idx >>= 1, h++) {
        size_t sib = idx ^ 1;
        if (sib < cnt) {
            /* sib < cnt = ceil(n / 2^h), so sib << h < n: no overflow. */
            size_t start = sib << h;
            size_t width = (size_t)1 << h;
            size_t count = n - start < width ? n - start : width;
            rc = subtree_root(alg, impl, &src, start, count, tmp[k++]);
            if (rc != TL_OK)
                return rc;
        }
        cnt = cnt / 2 + (cnt & 1);
    }
    if (k > 0)
        memcpy(proof_out, tmp, 32 * k);
    *proof_len = k;
    return TL_OK;
}

int tl_merkle_consistency_proof(int alg, const uint8_t *leaf_hashes,
                                size_t n, size_t m, uint8_t *proof_out,
                                size_t proof_cap, size_t *proof_len)
{
    uint8_t tmp[MAX_ITEMS][32];
    size_t starts[MAX_ITEMS], counts[MAX_ITEMS];
    int rc = check_tree_args(alg, leaf_hashes, n, proof_out, proof_cap,
                             proof_len);
    if (rc != TL_OK)
        return rc;
    if (m == 0 || m > n)
        return TL_ERANGE;
    size_t len = m == n ? 0 : consistency_ranges(m, n, starts, counts);
    if (len > proof_cap)
        return TL_EBUFSIZE;

    int impl = tl_sha256_impl_get();
    leaf_src src = {SRC_HASHES, leaf_hashes, 0, NULL};
    for (size_t i = 0; i < len; i++) {
        rc = subtree_root(alg, impl, &src, starts[i], counts[i], tmp[i]);
        if (rc != TL_OK)
            return rc;
    }
    if (len > 0)
        memcpy(proof_out, tmp, 32 * len);
    *proof_len = len;
    return TL_OK;
}

/* ---- verification (RFC 9162 2.1.3.2 and 2.1.4.2) ------------------------ */

int tl_merkle_root_from_inclusion(int alg, const uint8_t *leaf_hash,
                                  size_t index, size_t n,
                                  const uint8_t *proof, size_t proof_len,
                                  uint8_t *root_out)
{
    if (!tl__alg_ok(alg) || leaf_hash == NULL || root_out == NULL ||
        (proof == NULL && proof_len != 0))
        return TL_EINVAL;
    if (index >= n)
        return TL_ERANGE;
    /* Checked up front so a wrong length is reported as such rather than
     * as a mismatch; the loop below re-checks as the RFC states it. */
    if (proof_len != inclusion_len(index, n))
        return TL_EPROOFLEN;

    int impl = tl_sha256_impl_get();
    size_t fn = index, sn = n - 1;
    uint8_t r[32];
    memcpy(r, leaf_hash, 32);
    for (size_t i = 0; i < proof_len; i++) {
        const uint8_t *p = proof + 32 * i;
        if (sn == 0)
            return TL_EPROOFLEN;
        if ((fn & 1) || fn == sn) {
            node_hash(alg, impl, p, r, r);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            node_hash(alg, impl, r, p, r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0)
        return TL_EPROOFLEN;
    memcpy(root_out, r, 32);
    return TL_OK;
}

int tl_merkle_inclusion_verify(int alg, const uint8_t *leaf_hash,
                               size_t index, size_t n, const uint8_t *proof,
                               size_t proof_len, const uint8_t *root)
{
    uint8_t r[32];
    if (root == NULL)
        return TL_EINVAL;
    int rc = tl_merkle_root_from_inclusion(alg, leaf_hash, index, n, proof,
                                           proof_len, r);
    if (rc != TL_OK)
        return rc;
    return memcmp(r, root, 32) == 0 ? TL_OK : TL_EVERIFY;
}

int tl_merkle_consistency_verify(int alg, size_t m, size_t n,
                                 const uint8_t *old_root,
                                 const uint8_t *new_root,
                                 const uint8_t *proof, size_t proof_len)
{
    size_t starts[MAX_ITEMS], counts[MAX_ITEMS];
    if (!tl__alg_ok(alg) || old_root == NULL || new_root == NULL ||
        (proof == NULL && proof_len != 0))
        return TL_EINVAL;
    if (m == 0 || m > n)
        return TL_ERANGE;
    if (m == n) {
        if (proof_len != 0)
            return TL_EPROOFLEN;
        return memcmp(old_root, new_root, 32) == 0 ? TL_OK : TL_EVERIFY;
    }
    if (proof_len != consistency_ranges(m, n, starts, counts))
        return TL_EPROOFLEN;

    /* Step 2: a power-of-two m means old_root itself starts the path. */
    int lead = (m & (m - 1)) == 0;
    size_t total = proof_len + (size_t)lead;
#define PATH(i) (lead ? ((i) == 0 ? old_root : proof + 32 * ((i) - 1)) \
                      : proof + 32 * (i))
    int impl = tl_sha256_impl_get();
    size_t fn = m - 1, sn = n - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    uint8_t fr[32], sr[32];
    memcpy(fr, PATH(0), 32);
    memcpy(sr, PATH(0), 32);
    for (size_t i = 1; i < total; i++) {
        const uint8_t *c = PATH(i);
        if (sn == 0)
            return TL_EPROOFLEN;
        if ((fn & 1) || fn == sn) {
            node_hash(alg, impl, c, fr, fr);
            node_hash(alg, impl, c, sr, sr);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            node_hash(alg, impl, sr, c, sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
#undef PATH
    if (sn != 0)
        return TL_EPROOFLEN;
    if (memcmp(fr, old_root, 32) != 0 || memcmp(sr, new_root, 32) != 0)
        return TL_EVERIFY;
    return TL_OK;
}
