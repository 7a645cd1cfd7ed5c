/*
 * SHA-256 with the x86 SHA extensions, in 1, 2 and 4 independent lanes.
 *
 * sha256rnds2 has a latency of several cycles but can issue about once per
 * cycle, so a single message leaves the unit mostly idle. Interleaving the
 * rounds of independent messages fills those bubbles; the lane variants
 * below are the same round sequence with each step repeated per lane so the
 * out-of-order core sees independent dependency chains side by side.
 *
 * Every function carries a target attribute so the file builds without
 * -march flags; the dispatcher only calls in here after cpuid said yes.
 */
#include "tl_internal.h"

#if TL_HAVE_SHANI_BUILD

#include <immintrin.h>

#define TL_SHANI_TARGET __attribute__((target("sha,sse4.1,ssse3")))
/* The 4-lane round loops are several KiB; starting them on a cache line
 * made a reproducible ~7% difference in Merkle throughput, so the layout
 * is pinned instead of left to link order. */
#define TL_ALIGN64 __attribute__((aligned(64)))

/* Layout of tl__shani_state: w[0..3] is the ABEF register (F in the lowest
 * lane, A in the highest), w[4..7] is CDGH. Converting in plain C keeps the
 * ordering readable and costs nothing next to a compression. */
void tl__shani_init(tl__shani_state *st)
{
    const uint32_t *h = tl__sha256_iv;
    st->w[0] = h[5];
    st->w[1] = h[4];
    st->w[2] = h[1];
    st->w[3] = h[0];
    st->w[4] = h[7];
    st->w[5] = h[6];
    st->w[6] = h[3];
    st->w[7] = h[2];
}

static void shani_to_std(const tl__shani_state *st, uint32_t h[8])
{
    h[0] = st->w[3];
    h[1] = st->w[2];
    h[2] = st->w[7];
    h[3] = st->w[6];
    h[4] = st->w[1];
    h[5] = st->w[0];
    h[6] = st->w[5];
    h[7] = st->w[4];
}

static void std_to_shani(const uint32_t h[8], tl__shani_state *st)
{
    st->w[0] = h[5];
    st->w[1] = h[4];
    st->w[2] = h[1];
    st->w[3] = h[0];
    st->w[4] = h[7];
    st->w[5] = h[6];
    st->w[6] = h[3];
    st->w[7] = h[2];
}


/* ---- round machinery, written as macros over a lane list ----------------
 * A function instantiates LANES as L1/L2/L4; each step macro M(l, i) is
 * pasted once per lane l for 4-round group i. Explicit expansion (rather
 * than loops over lane arrays) guarantees the per-lane state lives in
 * registers whatever the optimisation level. */
#define L1(M, i) M(0, i)
#define L2(M, i) M(0, i) M(1, i)
#define L4(M, i) M(0, i) M(1, i) M(2, i) M(3, i)

/* Loads each 32-bit word big-endian. */
#define BSWAP_MASK \
    _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL)

#define ST_LOAD(l, i_)                                                       \
    __m128i ab##l = _mm_load_si128((const __m128i *)st[l]->w);              \
    __m128i cd##l = _mm_load_si128((const __m128i *)(st[l]->w + 4));
#define ST_STORE(l, i_)                                                      \
    _mm_store_si128((__m128i *)st[l]->w, ab##l);                            \
    _mm_store_si128((__m128i *)(st[l]->w + 4), cd##l);
#define PTR_LOAD(l, i_) const uint8_t *p##l = p[l];
#define PTR_NEXT(l, i_) p##l += 64;
#define SAVE(l, i_)                                                          \
    const __m128i sab##l = ab##l, scd##l = cd##l;                           \
    __m128i m##l[4];
#define FEED(l, i_)                                                          \
    ab##l = _mm_add_epi32(ab##l, sab##l);                                   \
    cd##l = _mm_add_epi32(cd##l, scd##l);

/* Four rounds from a W+K vector. The first rnds2 turns ABEF into the CDGH
 * of two rounds later, so the two registers swap roles and swap back. */
#define RNDS(l, wkv)                                                         \
    {                                                                        \
        __m128i wk_ = (wkv);                                                 \
        cd##l = _mm_sha256rnds2_epu32(cd##l, ab##l, wk_);                    \
        wk_ = _mm_shuffle_epi32(wk_, 0x0E);                                  \
        ab##l = _mm_sha256rnds2_epu32(ab##l, cd##l, wk_);                    \
    }

#define MLOAD(l, i)                                                          \
    m##l[i] = _mm_shuffle_epi8(                                              \
        _mm_loadu_si128((const __m128i *)(p##l + 16 * (i))), mask);
/* sha256msg1 computed with plain SSE2 shifts: W[t..t+3] + sigma0 of the
 * following four words. On the Intel cores measured, sha256msg1 competes
 * with sha256rnds2 for the same unit while the shift/xor units sit idle,
 * so moving most (not all: the ALU ports then become the limit) lanes'
 * msg1 to this form raised 4-lane throughput by about 8%. */
static inline __attribute__((always_inline)) TL_SHANI_TARGET __m128i
msg1_alu(__m128i a, __m128i b)
{
    __m128i x = _mm_alignr_epi8(b, a, 4);
    __m128i t = _mm_xor_si128(_mm_srli_epi32(x, 3), _mm_srli_epi32(x, 7));
    t = _mm_xor_si128(t, _mm_slli_epi32(x, 25));
    t = _mm_xor_si128(t, _mm_srli_epi32(x, 18));
    t = _mm_xor_si128(t, _mm_slli_epi32(x, 14));
    return _mm_add_epi32(a, t);
}
/* ALU_LANES (a per-function constant) selects the lanes using msg1_alu;
 * l is a literal, so the choice folds away at compile time. */
#define MSG1(l, a, b)                                                        \
    (((ALU_LANES >> (l)) & 1) ? msg1_alu(a, b) : _mm_sha256msg1_epu32(a, b))
/* W[4i..4i+3] from the previous 16 words, which sit in m[] as a ring of
 * four: msg1 adds sigma0 terms, the alignr supplies W[t-7], msg2 adds the
 * sigma1 terms (including the two that depend on this group itself). */
#define MSCHED(l, i)                                                         \
    m##l[(i) & 3] = _mm_sha256msg2_epu32(                                    \
        _mm_add_epi32(                                                       \
            MSG1(l, m##l[(i) & 3], m##l[((i) + 1) & 3]),                     \
            _mm_alignr_epi8(m##l[((i) + 3) & 3], m##l[((i) + 2) & 3], 4)),   \
        m##l[((i) + 3) & 3]);
#define RND_MSG(l, i) RNDS(l, _mm_add_epi32(m##l[(i) & 3], kk))
#define RND_WK(l, i) RNDS(l, kk)

#define GROUP_LOAD(LANES, i)                                                 \
    {                                                                        \
        const __m128i kk =                                                   \
            _mm_load_si128((const __m128i *)(tl__sha256_k + 4 * (i)));       \
        LANES(MLOAD, i) LANES(RND_MSG, i)                                    \
    }
#define GROUP_SCHED(LANES, i)                                                \
    {                                                                        \
        const __m128i kk =                                                   \
            _mm_load_si128((const __m128i *)(tl__sha256_k + 4 * (i)));       \
        LANES(MSCHED, i) LANES(RND_MSG, i)                                   \
    }
#define GROUP_WK(LANES, i)                                                   \
    {                                                                        \
        const __m128i kk = _mm_loadu_si128((const __m128i *)(wk + 4 * (i))); \
        LANES(RND_WK, i)                                                     \
    }

#define BLOCK_MSG(LANES)                                                     \
    LANES(SAVE, 0)                                                           \
    GROUP_LOAD(LANES, 0) GROUP_LOAD(LANES, 1)                                \
    GROUP_LOAD(LANES, 2) GROUP_LOAD(LANES, 3)                                \
    GROUP_SCHED(LANES, 4) GROUP_SCHED(LANES, 5)                              \
    GROUP_SCHED(LANES, 6) GROUP_SCHED(LANES, 7)                              \
    GROUP_SCHED(LANES, 8) GROUP_SCHED(LANES, 9)                              \
    GROUP_SCHED(LANES, 10) GROUP_SCHED(LANES, 11)                            \
    GROUP_SCHED(LANES, 12) GROUP_SCHED(LANES, 13)                            \
    GROUP_SCHED(LANES, 14) GROUP_SCHED(LANES, 15)                            \
    LANES(FEED, 0)

/* The W+K block needs no m[] ring; SAVE still declares it, hence the
 * (void) to keep -Wunused quiet without a second SAVE macro. */
#define VOID_M(l, i_) (void)m##l;
#define BLOCK_WK(LANES)                                                      \
    LANES(SAVE, 0)                                                           \
    LANES(VOID_M, 0)                                                         \
    GROUP_WK(LANES, 0) GROUP_WK(LANES, 1) GROUP_WK(LANES, 2)                 \
    GROUP_WK(LANES, 3) GROUP_WK(LANES, 4) GROUP_WK(LANES, 5)                 \
    GROUP_WK(LANES, 6) GROUP_WK(LANES, 7) GROUP_WK(LANES, 8)                 \
    GROUP_WK(LANES, 9) GROUP_WK(LANES, 10) GROUP_WK(LANES, 11)               \
    GROUP_WK(LANES, 12) GROUP_WK(LANES, 13) GROUP_WK(LANES, 14)              \
    GROUP_WK(LANES, 15)                                                      \
    LANES(FEED, 0)

#define DEFINE_MSG_FN(name, LANES, N)                                        \
    TL_SHANI_TARGET TL_ALIGN64 void name(tl__shani_state *const st[N],       \
                                         const uint8_t *const p[N],         \
                                         size_t nblocks)                    \
    {                                                                        \
        enum { ALU_LANES = (1 << ((N) - 1)) - 1 };                           \
        const __m128i mask = BSWAP_MASK;                                     \
        LANES(ST_LOAD, 0)                                                    \
        LANES(PTR_LOAD, 0)                                                   \
        for (; nblocks > 0; nblocks--) {                                     \
            BLOCK_MSG(LANES)                                                 \
            LANES(PTR_NEXT, 0)                                               \
        }                                                                    \
        LANES(ST_STORE, 0)                                                   \
    }

/* ABEF/CDGH back to big-endian A..H bytes without leaving the registers. */
#define DIGEST_OUT(l, i_)                                                    \
    {                                                                        \
        __m128i t_ = _mm_shuffle_epi32(ab##l, 0x1B); /* A B E F */           \
        __m128i u_ = _mm_shuffle_epi32(cd##l, 0xB1); /* G H C D */           \
        _mm_storeu_si128((__m128i *)out[l],                                  \
                         _mm_shuffle_epi8(_mm_blend_epi16(t_, u_, 0xF0),     \
                                          mask));                            \
        _mm_storeu_si128((__m128i *)(out[l] + 16),                           \
                         _mm_shuffle_epi8(_mm_alignr_epi8(u_, t_, 8),        \
                                          mask));                            \
    }
#define JOB_INIT(l, i_) __m128i ab##l = iv_ab, cd##l = iv_cd;
#define JOB_PTR(l, i_) const uint8_t *p##l = job->ptr[r][l];

/* A whole message per lane with the state kept in registers throughout:
 * no state traffic through memory between runs, and the digest is
 * produced directly. */
#define DEFINE_JOB_FN(name, LANES, N)                                        \
    TL_SHANI_TARGET TL_ALIGN64 void name(const tl__shani_job *job,           \
                                         uint8_t *const out[N])             \
    {                                                                        \
        enum { ALU_LANES = (1 << ((N) - 1)) - 1 };                           \
        const __m128i mask = BSWAP_MASK;                                     \
        tl__shani_state iv;                                                  \
        tl__shani_init(&iv);                                                 \
        const __m128i iv_ab = _mm_load_si128((const __m128i *)iv.w);         \
        const __m128i iv_cd = _mm_load_si128((const __m128i *)(iv.w + 4));   \
        LANES(JOB_INIT, 0)                                                   \
        for (int r = 0; r < job->nruns; r++) {                               \
            LANES(JOB_PTR, 0)                                                \
            for (size_t nb = job->nblocks[r]; nb > 0; nb--) {                \
                BLOCK_MSG(LANES)                                             \
                LANES(PTR_NEXT, 0)                                           \
            }                                                                \
        }                                                                    \
        if (job->wk != NULL) {                                               \
            const uint32_t *wk = job->wk;                                    \
            BLOCK_WK(LANES)                                                  \
        }                                                                    \
        LANES(DIGEST_OUT, 0)                                                 \
    }

DEFINE_MSG_FN(tl__shani_x1, L1, 1)
DEFINE_MSG_FN(tl__shani_x2, L2, 2)
DEFINE_MSG_FN(tl__shani_x4, L4, 4)
DEFINE_JOB_FN(tl__shani_job_x1, L1, 1)
DEFINE_JOB_FN(tl__shani_job_x2, L2, 2)
DEFINE_JOB_FN(tl__shani_job_x4, L4, 4)

TL_SHANI_TARGET void tl__shani_digest(const tl__shani_state *st,
                                      uint8_t out_[32])
{
    const __m128i mask = BSWAP_MASK;
    uint8_t *const out[1] = {out_};
    __m128i ab0 = _mm_load_si128((const __m128i *)st->w);
    __m128i cd0 = _mm_load_si128((const __m128i *)(st->w + 4));
    DIGEST_OUT(0, 0)
}

void tl__sha256_compress_shani(uint32_t state[8], const uint8_t *blocks,
                               size_t nblocks)
{
    tl__shani_state s;
    tl__shani_state *sp[1] = {&s};
    const uint8_t *pp[1] = {blocks};

    std_to_shani(state, &s);
    tl__shani_x1(sp, pp, nblocks);
    shani_to_std(&s, state);
}

#endif /* TL_HAVE_SHANI_BUILD */

/* ISO C wants at least one declaration per translation unit. */
typedef int tl__sha256_shani_unit;
