/*
 * The CPU attention ops alone at the shapes of the issue-12 GRPO benchmark (the demo model:
 * 4 query heads, 2 KV heads, D = 16): forward and backward over 32 packed sequences of 226
 * tokens, and paged decode steps of 32 sequences with contexts 118..226 (blocks of 16).
 * Prints the seconds per call (best of the repeats, one thread unless OMP_NUM_THREADS says
 * otherwise) and a hash of each op's output bits, so a faster version can be checked to give
 * the same bits as the one before it.
 * Usage: bench_attention [repeats [ops]]   ops: any of f, b, p (default all three)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "kernels/ops.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t hash_bits(const float *x, size_t n) {
    uint64_t h = 1469598103934665603ull;
    const unsigned char *b = (const unsigned char *)x;
    for (size_t i = 0; i < n * sizeof(float); i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static float *randn(uint64_t *r, size_t n, float s) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = s * sr_rng_normal(r);
    return x;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    const char *which = argc > 2 ? argv[2] : "fbp";
    int run_f = strchr(which, 'f') != NULL, run_b = strchr(which, 'b') != NULL;
    int run_p = strchr(which, 'p') != NULL;
    SrBackend be;
    SrError err;
    if (sr_backend_init(&be, "cpu", 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const SrOps *ops = be.ops;
    enum { B = 32, T = 226, Hq = 4, Hkv = 2, D = 16, BLOCK = 16 };
    int N = B * T;
    uint64_t rng = 7;
    float *q = randn(&rng, (size_t)N * Hq * D, 1.0f), *k = randn(&rng, (size_t)N * Hkv * D, 1.0f);
    float *v = randn(&rng, (size_t)N * Hkv * D, 1.0f), *dout = randn(&rng, (size_t)N * Hq * D, 1.0f);
    float *out = malloc((size_t)N * Hq * D * sizeof(float)), *lse = malloc((size_t)Hq * N * sizeof(float));
    float *dq = malloc((size_t)N * Hq * D * sizeof(float)), *dk = malloc((size_t)N * Hkv * D * sizeof(float));
    float *dv = malloc((size_t)N * Hkv * D * sizeof(float));
    int32_t *pos = malloc((size_t)N * sizeof(int32_t));
    for (int i = 0; i < N; i++) pos[i] = i % T;

    /* paged decode: sequence s has context 118 + (s * 108) / B, its blocks scattered */
    int max_blocks = (T + BLOCK - 1) / BLOCK, nrows = B * max_blocks * BLOCK;
    float *kc = randn(&rng, (size_t)nrows * Hkv * D, 1.0f), *vc = randn(&rng, (size_t)nrows * Hkv * D, 1.0f);
    int32_t *table = malloc((size_t)B * max_blocks * sizeof(int32_t)), *dpos = malloc(B * sizeof(int32_t));
    int32_t *seq = malloc(B * sizeof(int32_t));
    for (int i = 0; i < B * max_blocks; i++) table[i] = (i * 37) % (B * max_blocks);
    for (int s = 0; s < B; s++) dpos[s] = 117 + (s * 108) / B, seq[s] = s;
    float *dqd = randn(&rng, (size_t)B * Hq * D, 1.0f), *dod = malloc((size_t)B * Hq * D * sizeof(float));

    double tf = 1e30, tb = 1e30, tp = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (run_f || r == 0) /* the backward needs out and lse */
            ops->attention_forward(&be, out, lse, q, k, v, pos, N, Hq, Hkv, D);
        double t1 = now();
        memset(dq, 0, (size_t)N * Hq * D * sizeof(float));
        memset(dk, 0, (size_t)N * Hkv * D * sizeof(float));
        memset(dv, 0, (size_t)N * Hkv * D * sizeof(float));
        double t2 = now();
        if (run_b) ops->attention_backward(&be, dq, dk, dv, dout, q, k, v, out, lse, pos, N, Hq, Hkv, D);
        double t3 = now();
        for (int step = 0; run_p && step < 108; step++) /* 108 decode steps, contexts growing */
            ops->attention_paged(&be, dod, dqd, kc, vc, dpos, seq, table, max_blocks, BLOCK, B,
                                 Hq, Hkv, D);
        double t4 = now();
        tf = fmin(tf, t1 - t0), tb = fmin(tb, t3 - t2), tp = fmin(tp, t4 - t3);
    }
    printf("forward  %.4f s  hash %016llx %016llx\n", tf,
           (unsigned long long)hash_bits(out, (size_t)N * Hq * D),
           (unsigned long long)hash_bits(lse, (size_t)N * Hq));
    printf("backward %.4f s  hash %016llx %016llx %016llx\n", tb,
           (unsigned long long)hash_bits(dq, (size_t)N * Hq * D),
           (unsigned long long)hash_bits(dk, (size_t)N * Hkv * D),
           (unsigned long long)hash_bits(dv, (size_t)N * Hkv * D));
    printf("paged    %.4f s  hash %016llx  (108 calls)\n", tp,
           (unsigned long long)hash_bits(dod, (size_t)B * Hq * D));
    sr_backend_free(&be);
    return 0;
}
