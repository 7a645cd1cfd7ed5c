/*
 * SM3 compression function (GM/T 0004-2012). SM3 shares SHA-256's
 * Merkle-Damgard framing (0x80 pad, 64-bit big-endian bit length, 64-byte
 * blocks, big-endian output words), so engine.c drives it exactly like the
 * portable SHA-256 compressor and only this file knows the algorithm.
 */
#include <stdint.h>

#include "tl_internal.h"

const uint32_t tl__sm3_iv[8] = {
    0x7380166fu, 0x4914b2b9u, 0x172442d7u, 0xda8a0600u,
    0xa96f30bcu, 0x163138aau, 0xe38dee4du, 0xb0fb0e4eu,
};

/* Rotation counts reach 0 (T_j <<< (j mod 32) with j = 0 or 32), so mask
 * both shifts to stay clear of the undefined shift by 32. */
static inline uint32_t rol32(uint32_t x, unsigned n)
{
    n &= 31u;
    return (x << n) | (x >> ((32u - n) & 31u));
}

static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline uint32_t p0(uint32_t x)
{
    return x ^ rol32(x, 9) ^ rol32(x, 17);
}

static inline uint32_t p1(uint32_t x)
{
    return x ^ rol32(x, 15) ^ rol32(x, 23);
}

static void compress_block(uint32_t v[8], const uint8_t *block)
{
    uint32_t w[68];
    uint32_t a = v[0], b = v[1], c = v[2], d = v[3];
    uint32_t e = v[4], f = v[5], g = v[6], h = v[7];

    for (int j = 0; j < 16; j++)
        w[j] = load_be32(block + 4 * j);
    for (int j = 16; j < 68; j++)
        w[j] = p1(w[j - 16] ^ w[j - 9] ^ rol32(w[j - 3], 15)) ^
               rol32(w[j - 13], 7) ^ w[j - 6];

    for (int j = 0; j < 64; j++) {
        /* The standard's W'_j = W_j ^ W_{j+4}, formed on the fly instead
         * of in a second 64-word array. */
        uint32_t wp = w[j] ^ w[j + 4];
        uint32_t tj = j < 16 ? 0x79cc4519u : 0x7a879d8au;
        uint32_t a12 = rol32(a, 12);
        uint32_t ss1 = rol32(a12 + e + rol32(tj, (unsigned)j), 7);
        uint32_t ss2 = ss1 ^ a12;
        uint32_t ff, gg;
        if (j < 16) {
            ff = a ^ b ^ c;
            gg = e ^ f ^ g;
        } else {
            ff = (a & b) | (a & c) | (b & c);
            gg = (e & f) | (~e & g);
        }
        uint32_t tt1 = ff + d + ss2 + wp;
        uint32_t tt2 = gg + h + ss1 + w[j];
        d = c;
        c = rol32(b, 9);
        b = a;
        a = tt1;
        h = g;
        g = rol32(f, 19);
        f = e;
        e = p0(tt2);
    }
    /* SM3 chains by XOR, not by addition as SHA-256 does. */
    v[0] ^= a;
    v[1] ^= b;
    v[2] ^= c;
    v[3] ^= d;
    v[4] ^= e;
    v[5] ^= f;
    v[6] ^= g;
    v[7] ^= h;
}

void tl__sm3_compress(uint32_t state[8], const uint8_t *blocks, size_t nblocks)
{
    for (; nblocks > 0; nblocks--, blocks += 64)
        compress_block(state, blocks);
}
