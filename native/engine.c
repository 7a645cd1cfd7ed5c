/*
 * Message framing and multi-buffer scheduling shared by the hash and Merkle
 * APIs. Every message here is [optional one-byte prefix] || data, which
 * covers plain hashing, Merkle leaves (0x00 || leaf) and Merkle nodes
 * (0x01 || left || right, with left and right adjacent in memory).
 *
 * A message is cut into at most three runs of 64-byte blocks:
 *   - "first": the prefix plus data[0..63), assembled in a lane buffer
 *     (only when a prefix exists and the message fills a block);
 *   - "direct": whole blocks read straight from the caller's data, which the
 *     one-byte prefix shifts to start at data + 63 (no copying);
 *   - "tail": the last partial block plus padding, 1 or 2 blocks, assembled
 *     in the lane buffer.
 * The SHA-NI lanes then walk their runs side by side.
 */
#include <string.h>

#include "tl_internal.h"

/* Lane buffer layout: [0, 64) the assembled first block, [64, 192) tail. */
#define LB_FIRST 0
#define LB_TAIL 64
#define LB_SIZE 192

/* memcpy with the sizes the Merkle paths use spelled out as constants, so
 * the compiler emits a few vector moves instead of a libc call per leaf. */
static inline void copy_n(uint8_t *d, const uint8_t *s, size_t n)
{
    switch (n) {
    case 0:
        break;
    case 1:
        d[0] = s[0];
        break;
    case 32:
        memcpy(d, s, 32);
        break;
    case 63:
        memcpy(d, s, 63);
        break;
    default:
        memcpy(d, s, n);
        break;
    }
}

/* Writes the final block(s): [prefix] rest 0x80 0.. bitlen(be64). rest may
 * be NULL to reserve zeroed room for bytes filled in later. pre + rest_n
 * is at most 63. Returns the number of blocks (1 or 2). */
static size_t build_tail(uint8_t t[128], int pre, const uint8_t *rest,
                         size_t rest_n, uint64_t total_bytes)
{
    size_t k = 0;
    if (pre >= 0)
        t[k++] = (uint8_t)pre;
    if (rest_n > 0) {
        if (rest != NULL)
            memcpy(t + k, rest, rest_n);
        else
            memset(t + k, 0, rest_n);
        k += rest_n;
    }
    t[k++] = 0x80;
    size_t nb = (k + 8 <= 64) ? 1 : 2;
    memset(t + k, 0, nb * 64 - 8 - k);
    /* Bit length modulo 2^64, as both FIPS 180-4 and GM/T 0004 define it. */
    uint64_t bits = total_bytes << 3;
    for (int i = 0; i < 8; i++)
        t[nb * 64 - 1 - (size_t)i] = (uint8_t)(bits >> (8 * i));
    return nb;
}

static void store_be_words(const uint32_t h[8], uint8_t out[32])
{
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

/* One message on a single compressor; reads all input before writing out. */
static void md_oneshot(tl__compress_fn compress, const uint32_t iv[8],
                       int prefix, const uint8_t *data, size_t len,
                       uint8_t out[32])
{
    uint32_t h[8];
    uint8_t blk[128];
    uint64_t total = (uint64_t)len + (prefix >= 0 ? 1u : 0u);

    memcpy(h, iv, sizeof h);
    if (prefix >= 0 && len >= 63) {
        blk[0] = (uint8_t)prefix;
        memcpy(blk + 1, data, 63);
        compress(h, blk, 1);
        data += 63;
        len -= 63;
        prefix = TL_NO_PREFIX;
    }
    if (len >= 64) {
        size_t nfull = len / 64;
        compress(h, data, nfull);
        data += 64 * nfull;
        len -= 64 * nfull;
    }
    size_t nb = build_tail(blk, prefix, len > 0 ? data : NULL, len, total);
    compress(h, blk, nb);
    store_be_words(h, out);
}

static void oneshot_portable(int alg, int prefix, const uint8_t *data,
                             size_t len, uint8_t out[32])
{
    if (alg == TL_ALG_SM3)
        md_oneshot(tl__sm3_compress, tl__sm3_iv, prefix, data, len, out);
    else
        md_oneshot(tl__sha256_compress_portable, tl__sha256_iv, prefix, data,
                   len, out);
}

#if TL_HAVE_SHANI_BUILD
static int use_shani(int alg, int impl)
{
    return alg == TL_ALG_SHA256 && impl == TL_IMPL_SHANI;
}
#endif

void tl__hash_one(int alg, int impl, int prefix, const uint8_t *data,
                  size_t len, uint8_t out[32])
{
    (void)impl; /* only consulted when SHA-NI is compiled in */
#if TL_HAVE_SHANI_BUILD
    if (use_shani(alg, impl)) {
        md_oneshot(tl__sha256_compress_shani, tl__sha256_iv, prefix, data,
                   len, out);
        return;
    }
#endif
    oneshot_portable(alg, prefix, data, len, out);
}

#if TL_HAVE_SHANI_BUILD

/* ---- equal-length messages: all lanes in lockstep ----------------------- */

typedef struct {
    int first;        /* a "first" run exists */
    size_t ndirect;   /* blocks in the direct run */
    size_t direct_at; /* where the direct run starts in data */
    size_t rest_src;  /* tail bytes come from data + rest_src ... */
    size_t rest_n;    /* ... this many of them */
    size_t rest_dst;  /* and go to tail + rest_dst (1 if the prefix is there) */
    size_t ntail;
    int const_pad; /* tail is pure padding: use the precomputed W+K */
    uint32_t wk[64];
    int direct_run; /* index of the direct run in job[], or -1 */
    /* Two sets of lane buffers and jobs, see shani_fixed. Cache-line
     * aligned (LB_SIZE is 3 lines) so the one-byte-shifted 16-byte stores
     * that fill them never straddle a line, which measurably costs. */
    tl__shani_job job[2];
    _Alignas(64) uint8_t lb[2][4][LB_SIZE];
} fixed_plan;

static void fixed_plan_init(fixed_plan *fp, int prefix, size_t len)
{
    size_t p = prefix >= 0 ? 1 : 0;
    uint64_t total = (uint64_t)len + p;
    size_t nfull = (size_t)(total / 64);

    fp->first = p && nfull >= 1;
    fp->ndirect = nfull - (size_t)fp->first;
    fp->direct_at = fp->first ? 63 : 0;
    fp->rest_src = nfull ? 64 * nfull - p : 0;
    fp->rest_n = len - fp->rest_src;
    int pre_in_tail = p && nfull == 0;
    fp->rest_dst = pre_in_tail ? 1 : 0;
    fp->const_pad = (total % 64) == 0;
    /* The padding and length bytes are the same for every message of this
     * length, so they are written once; only data bytes change per lane. */
    for (int b = 0; b < 2; b++) {
        for (int l = 0; l < 4; l++) {
            fp->lb[b][l][LB_FIRST] = (uint8_t)prefix;
            fp->ntail = build_tail(fp->lb[b][l] + LB_TAIL,
                                   pre_in_tail ? prefix : TL_NO_PREFIX, NULL,
                                   fp->rest_n, total);
        }
    }
    if (fp->const_pad)
        tl__sha256_block_wk(fp->lb[0][0] + LB_TAIL, fp->wk);

    /* Job templates, one per buffer set: only the direct-run pointers
     * change from group to group. */
    fp->direct_run = -1;
    for (int b = 0; b < 2; b++) {
        tl__shani_job *job = &fp->job[b];
        job->nruns = 0;
        job->wk = fp->const_pad ? fp->wk : NULL;
        if (fp->first && fp->ndirect == 0 && !fp->const_pad) {
            /* first and tail are adjacent in the lane buffer: one run. */
            for (int l = 0; l < 4; l++)
                job->ptr[0][l] = fp->lb[b][l] + LB_FIRST;
            job->nblocks[job->nruns++] = 1 + fp->ntail;
            continue;
        }
        if (fp->first) {
            for (int l = 0; l < 4; l++)
                job->ptr[job->nruns][l] = fp->lb[b][l] + LB_FIRST;
            job->nblocks[job->nruns++] = 1;
        }
        if (fp->ndirect > 0) {
            fp->direct_run = job->nruns;
            job->nblocks[job->nruns++] = fp->ndirect;
        }
        if (!fp->const_pad) {
            for (int l = 0; l < 4; l++)
                job->ptr[job->nruns][l] = fp->lb[b][l] + LB_TAIL;
            job->nblocks[job->nruns++] = fp->ntail;
        }
    }
}

/* Points job b at messages i .. i + nl - 1 and copies their
 * prefix-shifted bytes into its lane buffers. */
static void fill_group(fixed_plan *fp, int b, int nl, const uint8_t *buf,
                       size_t stride, size_t i)
{
    uint8_t (*lb)[LB_SIZE] = fp->lb[b];
    for (int l = 0; l < nl; l++) {
        const uint8_t *d = stride ? buf + (i + (size_t)l) * stride : buf;
        if (fp->first)
            copy_n(lb[l] + LB_FIRST + 1, d, 63);
        if (fp->rest_n > 0)
            copy_n(lb[l] + LB_TAIL + fp->rest_dst, d + fp->rest_src,
                   fp->rest_n);
        if (fp->direct_run >= 0)
            fp->job[b].ptr[fp->direct_run][l] = d + fp->direct_at;
    }
}

static int lanes_for(size_t left)
{
    return left >= 4 ? 4 : left >= 2 ? 2 : 1;
}

/* The prefix shifts data by one byte, so lane buffers are filled with
 * unaligned stores that the job then reads with aligned 16-byte loads;
 * such a load cannot be forwarded from the store buffer and waits for the
 * stores to retire. Filling group k+1's buffers before running group k
 * gives those stores a whole job's time to retire.
 *
 * In-place Merkle levels stay safe: group k+1 is read even earlier than
 * it otherwise would be, and each job reads its inputs before writing. */
static void shani_fixed(int prefix, const uint8_t *buf, size_t stride,
                        size_t len, size_t n, uint8_t *out)
{
    fixed_plan fp;
    uint8_t *dst[4];
    int b = 0;
    size_t i = 0;
    int nl = lanes_for(n);

    fixed_plan_init(&fp, prefix, len);
    fill_group(&fp, b, nl, buf, stride, 0);
    while (i < n) {
        size_t next = i + (size_t)nl;
        int next_nl = next < n ? lanes_for(n - next) : 0;
        if (next_nl > 0)
            fill_group(&fp, b ^ 1, next_nl, buf, stride, next);
        for (int l = 0; l < nl; l++)
            dst[l] = out + 32 * (i + (size_t)l);
        if (nl == 4)
            tl__shani_job_x4(&fp.job[b], dst);
        else if (nl == 2)
            tl__shani_job_x2(&fp.job[b], dst);
        else
            tl__shani_job_x1(&fp.job[b], dst);
        i = next;
        nl = next_nl;
        b ^= 1;
    }
}

/* ---- variable-length messages: lanes refill independently --------------- */

typedef struct {
    tl__shani_state st;
    const uint8_t *seg_ptr[3];
    size_t seg_n[3];
    int nseg, cur;
    const uint8_t *ptr; /* next block of the current run */
    size_t left;        /* blocks left in the current run */
    uint8_t *out;
    _Alignas(16) uint8_t lb[LB_SIZE];
} var_lane;

static void var_lane_start(var_lane *L, int prefix, const uint8_t *data,
                           size_t len, uint8_t *out)
{
    size_t p = prefix >= 0 ? 1 : 0;
    uint64_t total = (uint64_t)len + p;
    size_t nfull = (size_t)(total / 64);
    int first = p && nfull >= 1;
    size_t ndirect = nfull - (size_t)first;
    size_t rest_src = nfull ? 64 * nfull - p : 0;
    size_t rest_n = len - rest_src;
    int pre_in_tail = p && nfull == 0;

    if (first) {
        L->lb[LB_FIRST] = (uint8_t)prefix;
        memcpy(L->lb + LB_FIRST + 1, data, 63);
    }
    size_t ntail =
        build_tail(L->lb + LB_TAIL, pre_in_tail ? prefix : TL_NO_PREFIX,
                   rest_n > 0 ? data + rest_src : NULL, rest_n, total);
    L->nseg = 0;
    if (first && ndirect == 0) {
        L->seg_ptr[L->nseg] = L->lb + LB_FIRST;
        L->seg_n[L->nseg++] = 1 + ntail;
    } else {
        if (first) {
            L->seg_ptr[L->nseg] = L->lb + LB_FIRST;
            L->seg_n[L->nseg++] = 1;
        }
        if (ndirect > 0) {
            L->seg_ptr[L->nseg] = data + (first ? 63 : 0);
            L->seg_n[L->nseg++] = ndirect;
        }
        L->seg_ptr[L->nseg] = L->lb + LB_TAIL;
        L->seg_n[L->nseg++] = ntail;
    }
    L->cur = 0;
    L->ptr = L->seg_ptr[0];
    L->left = L->seg_n[0];
    L->out = out;
    tl__shani_init(&L->st);
}

/* buf + off without forming NULL + 0, which sanitizers reject. */
static const uint8_t *at(const uint8_t *buf, uint64_t off)
{
    return off ? buf + off : buf;
}

static void shani_var(int prefix, const uint8_t *buf,
                      const uint64_t *offsets, size_t n, uint8_t *out)
{
    var_lane lanes[4];
    int active[4] = {0, 0, 0, 0};
    size_t next = 0;

    for (int l = 0; l < 4 && next < n; l++, next++) {
        var_lane_start(&lanes[l], prefix, at(buf, offsets[next]),
                       (size_t)(offsets[next + 1] - offsets[next]),
                       out + 32 * next);
        active[l] = 1;
    }
    for (;;) {
        tl__shani_state *sp[4];
        const uint8_t *ptr[4];
        int idx[4], k = 0;
        size_t c = SIZE_MAX;

        for (int l = 0; l < 4; l++) {
            if (!active[l])
                continue;
            sp[k] = &lanes[l].st;
            ptr[k] = lanes[l].ptr;
            idx[k++] = l;
            if (lanes[l].left < c)
                c = lanes[l].left;
        }
        if (k == 0)
            break;
        /* Advance every active lane by the shortest remaining run, so no
         * lane crosses into its next run inside one call. */
        if (k == 4) {
            tl__shani_x4(sp, ptr, c);
        } else if (k >= 2) {
            tl__shani_x2(sp, ptr, c);
            if (k == 3)
                tl__shani_x1(sp + 2, ptr + 2, c);
        } else {
            tl__shani_x1(sp, ptr, c);
        }
        for (int j = 0; j < k; j++) {
            var_lane *L = &lanes[idx[j]];
            L->left -= c;
            if (L->left > 0) {
                L->ptr += 64 * c;
                continue;
            }
            if (++L->cur < L->nseg) {
                L->ptr = L->seg_ptr[L->cur];
                L->left = L->seg_n[L->cur];
                continue;
            }
            tl__shani_digest(&L->st, L->out);
            if (next < n) {
                var_lane_start(L, prefix, at(buf, offsets[next]),
                               (size_t)(offsets[next + 1] - offsets[next]),
                               out + 32 * next);
                next++;
            } else {
                active[idx[j]] = 0;
            }
        }
    }
}

#endif /* TL_HAVE_SHANI_BUILD */

void tl__hash_fixed(int alg, int impl, int prefix, const uint8_t *buf,
                    size_t stride, size_t len, size_t n, uint8_t *out)
{
#if TL_HAVE_SHANI_BUILD
    if (use_shani(alg, impl)) {
        shani_fixed(prefix, buf, stride, len, n, out);
        return;
    }
#endif
    (void)impl;
    for (size_t i = 0; i < n; i++)
        oneshot_portable(alg, prefix, stride ? buf + i * stride : buf, len,
                         out + 32 * i);
}

void tl__hash_var(int alg, int impl, int prefix, const uint8_t *buf,
                  const uint64_t *offsets, size_t n, uint8_t *out)
{
#if TL_HAVE_SHANI_BUILD
    if (use_shani(alg, impl)) {
        /* Equal lengths (common: records of one type) make the messages
         * back to back, and the lockstep path avoids per-lane bookkeeping. */
        uint64_t len = offsets[1] - offsets[0];
        size_t i = 1;
        while (i < n && offsets[i + 1] - offsets[i] == len)
            i++;
        if (i == n)
            shani_fixed(prefix, at(buf, offsets[0]), (size_t)len, (size_t)len,
                        n, out);
        else
            shani_var(prefix, buf, offsets, n, out);
        return;
    }
#endif
    (void)impl;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = offsets[i] ? buf + offsets[i] : buf;
        oneshot_portable(alg, prefix, p, (size_t)(offsets[i + 1] - offsets[i]),
                         out + 32 * i);
    }
}
