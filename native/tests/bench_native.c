/*
 * Throughput figures for the SHA-256 implementations and the Merkle root.
 * Not a test: it prints numbers and always exits 0 unless setup fails.
 * Each figure is the best of several runs, to filter scheduler noise.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tl_hash.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fill(uint8_t *p, size_t n)
{
    uint32_t x = 0x9e3779b9u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

int main(int argc, char **argv)
{
    size_t n_msgs = 1u << 20, n_leaves = 1000000;
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    uint8_t *msgs = malloc(n_msgs * 64), *out = malloc(n_msgs * 32);
    uint8_t *leaves = malloc(n_leaves * 32), root[32];
    if (!msgs || !out || !leaves || reps < 1)
        return 1;
    fill(msgs, n_msgs * 64);
    fill(leaves, n_leaves * 32);

    static const char *names[] = {"portable", "sha-ni"};
    for (int impl = TL_IMPL_PORTABLE; impl <= TL_IMPL_SHANI; impl++) {
        if (!tl_sha256_impl_available(impl)) {
            printf("%-8s  not available on this CPU/build\n", names[impl]);
            continue;
        }
        tl_sha256_impl_set(impl);
        /* The portable code is ~10x slower; fewer messages keep it short. */
        size_t n = impl == TL_IMPL_SHANI ? n_msgs : n_msgs / 8;
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            double t = now();
            if (tl_hash_fixed(TL_ALG_SHA256, msgs, 64, n, out) != TL_OK)
                return 1;
            t = now() - t;
            if (t < best)
                best = t;
        }
        printf("%-8s  tl_hash_fixed 64-byte: %8.2f M hashes/s\n", names[impl],
               (double)n / best / 1e6);

        best = 1e30;
        for (int r = 0; r < reps; r++) {
            double t = now();
            if (tl_merkle_root_fixed(TL_ALG_SHA256, leaves, 32, n_leaves,
                                     root) != TL_OK)
                return 1;
            t = now() - t;
            if (t < best)
                best = t;
        }
        printf("%-8s  tl_merkle_root_fixed 1M x 32-byte leaves: %8.2f ms\n",
               names[impl], best * 1e3);
    }
    {
        double best = 1e30;
        size_t n = n_msgs / 8;
        for (int r = 0; r < reps; r++) {
            double t = now();
            if (tl_hash_fixed(TL_ALG_SM3, msgs, 64, n, out) != TL_OK)
                return 1;
            t = now() - t;
            if (t < best)
                best = t;
        }
        printf("sm3       tl_hash_fixed 64-byte: %8.2f M hashes/s\n",
               (double)n / best / 1e6);
    }
    free(msgs);
    free(out);
    free(leaves);
    return 0;
}
