/*
 * The sample op on realistic logits: microseconds per row at V = 151936 (Qwen2 / R1-distill),
 * for three shapes of distribution and the settings generation uses, so that one can see
 * whether the cost depends on how many tokens top-k / top-p keep (it should not).
 *
 *   peaked: one token far above the rest (p(top) ~ 0.99: a confident step of a trace)
 *   r1:     a head of ~30 plausible tokens over a N(0, 2) tail (a reasoning model's typical
 *           step: a few nats of entropy, the top-p 0.95 nucleus is tens of tokens)
 *   flat:   N(0, 0.5) everywhere (an untrained / random model: the nucleus is ~90 % of V)
 * settings: greedy, and T = 1 with top-p 1.0 / 0.95 / 0.6 x top-k 0 / 20.
 *
 * Each call samples B rows (different logits per row, each its own RNG stream); the figures are
 * the best of R calls divided by B, in wall time and in process CPU time (the steadier one on
 * a shared machine; the same as wall time on one thread when nothing else runs). The nucleus size printed is that of row 0 (the kept set
 * written the plain way: sort everything).
 * Usage: bench_sample [B=16] [reps=20] [threads=1] [V=151936]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "kernels/ops.h"

static double clock_s(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void make_logits(float *x, int V, int kind, uint64_t *rng) {
    for (int j = 0; j < V; j++) {
        float n = sr_rng_normal(rng);
        x[j] = kind == 2 ? 0.5f * n : 2.0f * n;
    }
    if (kind == 0) x[(int)(sr_rng_u64(rng) % (uint64_t)V)] = 25.0f;
    if (kind == 1)
        for (int i = 0; i < 30; i++)
            x[(int)(sr_rng_u64(rng) % (uint64_t)V)] = 14.0f + 2.0f * sr_rng_normal(rng);
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* tokens kept by top-k then top-p at temperature 1 (ties ignored: the logits are continuous) */
static int nucleus(const float *x, int V, int k, float p) {
    float *s = malloc((size_t)V * sizeof(float));
    memcpy(s, x, (size_t)V * sizeof(float));
    qsort(s, (size_t)V, sizeof(float), cmp_desc);
    int n = k > 0 && k < V ? k : V;
    if (p >= 1.0f) {
        free(s);
        return n;
    }
    double mass = 0.0, cum = 0.0;
    for (int j = 0; j < n; j++) mass += exp((double)s[j] - s[0]);
    int kept = 0;
    for (int j = 0; j < n && (j == 0 || cum < p * mass); j++, kept++) cum += exp((double)s[j] - s[0]);
    free(s);
    return kept;
}

int main(int argc, char **argv) {
    int B = argc > 1 ? atoi(argv[1]) : 16;
    int reps = argc > 2 ? atoi(argv[2]) : 20;
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    int V = argc > 4 ? atoi(argv[4]) : 151936;
    if (B < 1 || reps < 1 || threads < 1 || V < 2) {
        fprintf(stderr, "usage: bench_sample [B>=1] [reps>=1] [threads>=1] [V>=2]\n");
        return 2;
    }
    SrBackend be;
    SrError err;
    if (sr_backend_init(&be, "cpu", 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    be.n_threads = threads;
    const char *kinds[3] = {"peaked", "r1", "flat"};
    struct {
        float T;
        int k;
        float p;
    } st[] = {{0.0f, 0, 1.0f},  {1.0f, 0, 1.0f},  {1.0f, 0, 0.95f}, {1.0f, 0, 0.6f},
              {1.0f, 20, 1.0f}, {1.0f, 20, 0.95f}, {1.0f, 20, 0.6f}};
    int nst = (int)(sizeof st / sizeof st[0]);
    float *logits = malloc((size_t)B * V * sizeof(float));
    SrSampling *s = malloc((size_t)B * sizeof(SrSampling));
    uint64_t *rng = malloc((size_t)B * sizeof(uint64_t));
    int32_t *ids = malloc((size_t)B * sizeof(int32_t));
    float *lps = malloc((size_t)B * sizeof(float));
    printf("sample op, CPU, %d thread(s), B = %d rows per call, V = %d, best of %d calls\n", threads,
           B, V, reps);
    printf("%-7s %-5s %-5s %-5s %9s %10s %10s\n", "logits", "T", "top_k", "top_p", "nucleus",
           "us/row", "cpu-us/row");
    for (int kind = 0; kind < 3; kind++) {
        uint64_t g = sr_rng_stream(42, (uint64_t)kind);
        for (int b = 0; b < B; b++) make_logits(logits + (size_t)b * V, V, kind, &g);
        for (int i = 0; i < nst; i++) {
            for (int b = 0; b < B; b++) {
                s[b] = (SrSampling){st[i].T, st[i].k, st[i].p};
                rng[b] = sr_rng_stream(7, (uint64_t)b);
            }
            double best = 1e30, best_cpu = 1e30;
            for (int r = 0; r < reps; r++) {
                double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
                be.ops->sample(&be, ids, lps, logits, B, V, V, s, rng);
                double t = clock_s(CLOCK_MONOTONIC) - t0;
                double c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
                if (t < best) best = t;
                if (c < best_cpu) best_cpu = c;
            }
            int nk = st[i].T <= 0.0f ? 1 : nucleus(logits, V, st[i].k, st[i].p);
            printf("%-7s %-5g %-5d %-5g %9d %10.1f %10.1f\n", kinds[kind], st[i].T, st[i].k,
                   st[i].p, nk, best / B * 1e6, best_cpu / B * 1e6);
        }
    }
    free(logits);
    free(s);
    free(rng);
    free(ids);
    free(lps);
    sr_backend_free(&be);
    return 0;
}
