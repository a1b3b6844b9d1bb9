/*
 * Tests of the CPU op table (kernels/cpu/), the specification every other backend is tested
 * against, in the style of ggml's test-backend-ops:
 *   - every forward is compared with a naive double-precision loop written here;
 *   - every backward is compared with central finite differences of L = sum(out * R) (R random)
 *     on random shapes, odd sizes included, and must ADD to pre-filled gradients;
 *   - outputs live in buffers with guard regions that must stay untouched; NaN fails;
 *   - ops that promise thread-count independence are run with 1 and 3 threads and compared
 *     bit for bit.
 * Reference numbers for AdamW and RoPE come from torch (scripts/make_ops_reference.py).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../kernels/cpu/ops_cpu.h" /* sr_cpu_rope_inv_freq */
#include "../kernels/ops.h"
#include "harness.h"

/* ---- guarded buffers ------------------------------------------------------------------------ */

#define GUARD 16 /* floats on each side */
#define SENTINEL                                                                                   \
    0x7fc0be00u /* a NaN; buffer b uses SENTINEL + b, so copying past the end of                   \
                   one buffer into another is caught too */
#define MAX_BUFS 256

typedef struct {
    float *base;
    size_t n;
} Guarded;

static Guarded g_bufs[MAX_BUFS];
static int g_nbufs;

/* n floats with GUARD sentinel floats on each side (contents random-ish, set by the caller) */
static float *gbuf(size_t n) {
    SR_ASSERT(g_nbufs < MAX_BUFS);
    float *base = malloc((n + 2 * GUARD) * sizeof(float));
    SR_ASSERT(base);
    uint32_t s = SENTINEL + (uint32_t)g_nbufs;
    for (size_t i = 0; i < n + 2 * GUARD; i++) memcpy(base + i, &s, 4);
    g_bufs[g_nbufs++] = (Guarded){base, n};
    return base + GUARD;
}

static int32_t *gbuf_i32(size_t n) {
    return (int32_t *)gbuf(n);
}

/* 1 iff every guard region of every live buffer is intact */
static int guards_ok(void) {
    for (int b = 0; b < g_nbufs; b++) {
        const float *base = g_bufs[b].base;
        size_t n = g_bufs[b].n;
        uint32_t sentinel = SENTINEL + (uint32_t)b;
        for (size_t i = 0; i < GUARD; i++) {
            uint32_t lo, hi;
            memcpy(&lo, base + i, 4);
            memcpy(&hi, base + GUARD + n + i, 4);
            if (lo != sentinel || hi != sentinel) return 0;
        }
    }
    return 1;
}

static void gbuf_free_all(void) {
    for (int b = 0; b < g_nbufs; b++) free(g_bufs[b].base);
    g_nbufs = 0;
}

/* ---- random data ---------------------------------------------------------------------------- */

static uint64_t g_rng = 12345;

static float randn(void) {
    return sr_rng_normal(&g_rng);
}
static float randu(void) {
    return sr_rng_uniform(&g_rng);
}
static int randint(int n) {
    return (int)(sr_rng_u64(&g_rng) % (uint64_t)n);
}

static void fill_randn(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * randn();
}

static float *new_randn(size_t n, float scale) {
    float *x = gbuf(n);
    fill_randn(x, n, scale);
    return x;
}

static float *new_copy(const float *src, size_t n) {
    float *x = gbuf(n);
    memcpy(x, src, n * sizeof(float));
    return x;
}

static int has_nan(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 1;
    return 0;
}

/* ||a - b|| / ||b|| against a double reference */
static double rel_err_d(const float *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double d = a[i] - b[i];
        num += d * d;
        den += b[i] * b[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num / den);
}

static double dot_d(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* positions of a packed stream of documents with random lengths (at least 2 documents when
 * N >= 4); doc lengths 1..maxdoc */
static void random_docs(int32_t *pos, int N, int maxdoc) {
    int i = 0;
    while (i < N) {
        int len = 1 + randint(maxdoc);
        for (int p = 0; p < len && i < N; p++) pos[i++] = p;
    }
}

/* ---- finite differences ------------------------------------------------------------------- */

/* A scalar loss L(inputs) = sum(out * R), evaluated by running the forward op. */
typedef double (*LossFn)(void *ctx);

/* Checks the analytic gradient `grad` of L w.r.t. x[0..n) against central differences on up
 * to `nsample` random elements. Returns the relative error over the sampled elements. */
static double fd_check(LossFn loss, void *ctx, float *x, const float *grad, size_t n, int nsample,
                       float eps) {
    double num = 0, den = 0;
    int all = (size_t)nsample >= n;
    int count = all ? (int)n : nsample;
    for (int s = 0; s < count; s++) {
        size_t k = all ? (size_t)s : (size_t)randint((int)n);
        float x0 = x[k];
        float xp = x0 + eps, xm = x0 - eps;
        x[k] = xp;
        double lp = loss(ctx);
        x[k] = xm;
        double lm = loss(ctx);
        x[k] = x0;
        double fd = (lp - lm) / ((double)xp - (double)xm);
        if (!isfinite(grad[k])) return INFINITY;
        double d = fd - grad[k];
        num += d * d;
        den += fd * fd;
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num / den);
}

/* The gradient a backward op ADDED to a buffer pre-filled with `pre`. */
static void sub_prefill(float *g, const float *pre, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] -= pre[i];
}

static SrBackend g_be;
static const SrOps *O;

#define FD_TOL 1e-2

/* ---- memory -----------------------------------------------------------------------------------
 */

static void test_memory(void) {
    for (size_t bytes = 1; bytes < 5000; bytes = bytes * 3 + 7) {
        unsigned char *p = O->alloc(&g_be, bytes);
        CHECK(((uintptr_t)p & 63) == 0);
        int zero = 1;
        for (size_t i = 0; i < bytes; i++) zero &= p[i] == 0;
        CHECKF(zero, "alloc(%zu) not zero-filled", bytes);
        memset(p, 0xab, bytes);
        O->zero(&g_be, p, bytes);
        zero = 1;
        for (size_t i = 0; i < bytes; i++) zero &= p[i] == 0;
        CHECK(zero);
        O->free(&g_be, p);
    }
    /* a recycled block is zeroed too */
    for (int t = 0; t < 4; t++) {
        unsigned char *p = O->alloc(&g_be, 10000);
        int zero = 1;
        for (size_t i = 0; i < 10000; i++) zero &= p[i] == 0;
        CHECK(zero);
        memset(p, 0xff, 10000);
        O->free(&g_be, p);
    }
    /* large blocks are kept after free and handed out again (ops_cpu.c): zeroed, to a request
     * that needs at least half of one; more than the kept slots evicts the oldest (the
     * rest are released by sr_backend_free: ASan's leak check sees a lost one) */
    size_t MB = (size_t)1 << 20;
    unsigned char *big = O->alloc(&g_be, 3 * MB);
    memset(big, 0xff, 3 * MB);
    O->free(&g_be, big);
    unsigned char *small = O->alloc(&g_be, MB), *again = O->alloc(&g_be, 2 * MB);
    CHECK(small != big && again == big && ((uintptr_t)again & 63) == 0);
    int zero = 1;
    for (size_t i = 0; i < 2 * MB; i++) zero &= again[i] == 0;
    CHECKF(zero, "a kept block came back not zero-filled");
    O->free(&g_be, small);
    O->free(&g_be, again);
    unsigned char *blocks[6];
    for (int i = 0; i < 6; i++) blocks[i] = O->alloc(&g_be, MB + (size_t)i * 4096);
    for (int i = 0; i < 6; i++) O->free(&g_be, blocks[i]);
    float host[37], back[37];
    fill_randn(host, 37, 1.0f);
    float *d = O->alloc(&g_be, sizeof host), *d2 = O->alloc(&g_be, sizeof host);
    O->upload_act(&g_be, d, host, 37);
    O->copy(&g_be, d2, d, sizeof host);
    O->download_act(&g_be, back, d2, 37);
    CHECK(memcmp(host, back, sizeof host) == 0);
    int32_t ids[5] = {3, -1, 7, 0, 151935}, ids2[5];
    O->upload(&g_be, d, ids, sizeof ids);
    O->download(&g_be, ids2, d, sizeof ids);
    CHECK(memcmp(ids, ids2, sizeof ids) == 0);
    O->synchronize(&g_be);
    O->free(&g_be, d);
    O->free(&g_be, d2);
    CHECK(strcmp(O->name, "cpu") == 0);
}

/* ---- embedding --------------------------------------------------------------------------------
 */

static void test_embedding(void) {
    int V = 11, C = 67, N = 600; /* N * C above the one-thread cutoff */
    float *wte = new_randn((size_t)V * C, 1.0f);
    int32_t *ids = gbuf_i32(N);
    for (int i = 0; i < N; i++) ids[i] = randint(V);
    ids[3] = ids[4] = ids[9] = 2; /* repeats */
    float *out = new_randn((size_t)N * C, 1.0f);
    O->embedding_forward(&g_be, out, ids, wte, N, C);
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= memcmp(out + i * C, wte + ids[i] * C, C * 4) == 0;
    CHECK(ok);

    float *dout = new_randn((size_t)N * C, 1.0f);
    float *pre = new_randn((size_t)V * C, 1.0f);
    float *dwte = new_copy(pre, (size_t)V * C);
    O->embedding_backward(&g_be, dwte, dout, ids, N, C);
    double *ref = calloc((size_t)V * C, sizeof(double));
    for (int i = 0; i < V * C; i++) ref[i] = pre[i];
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) ref[ids[i] * C + c] += dout[i * C + c];
    CHECKF(rel_err_d(dwte, ref, (size_t)V * C) < 1e-6, "embedding_backward err %g",
           rel_err_d(dwte, ref, (size_t)V * C));
    free(ref);
    /* same bits for 1 and 3 threads */
    float *d1 = new_copy(pre, (size_t)V * C);
    SrBackend be1 = g_be, be3 = g_be;
    be1.n_threads = 1;
    be3.n_threads = 3;
    O->embedding_backward(&be1, d1, dout, ids, N, C);
    float *d3 = new_copy(pre, (size_t)V * C);
    O->embedding_backward(&be3, d3, dout, ids, N, C);
    CHECK(memcmp(d1, d3, (size_t)V * C * 4) == 0);
    CHECK(guards_ok());
    gbuf_free_all();
}

/* ---- RMSNorm -------------------------------------------------------------------------------- */

typedef struct {
    float *out, *rstd, *x, *w, *R;
    int N, C;
    float eps;
} NormCtx;

static double norm_loss(void *ctx_) {
    NormCtx *c = ctx_;
    O->rmsnorm_forward(&g_be, c->out, NULL, c->x, c->w, c->N, c->C, c->eps);
    return dot_d(c->out, c->R, (size_t)c->N * c->C);
}

static void test_rmsnorm_case(int N, int C) {
    float eps = 1e-6f;
    NormCtx c = {gbuf((size_t)N * C),
                 gbuf(N),
                 new_randn((size_t)N * C, 1.0f),
                 new_randn(C, 1.0f),
                 new_randn((size_t)N * C, 1.0f),
                 N,
                 C,
                 eps};
    for (int i = 0; i < C; i++) c.w[i] += 1.0f;
    O->rmsnorm_forward(&g_be, c.out, c.rstd, c.x, c.w, N, C, eps);
    double *ref = malloc(sizeof(double) * N * C), *rref = malloc(sizeof(double) * N);
    for (int i = 0; i < N; i++) {
        double ss = 0;
        for (int j = 0; j < C; j++) ss += (double)c.x[i * C + j] * c.x[i * C + j];
        rref[i] = 1.0 / sqrt(ss / C + eps);
        for (int j = 0; j < C; j++) ref[i * C + j] = c.w[j] * c.x[i * C + j] * rref[i];
    }
    CHECKF(rel_err_d(c.out, ref, (size_t)N * C) < 1e-6, "rmsnorm fwd N=%d C=%d", N, C);
    CHECKF(rel_err_d(c.rstd, rref, N) < 1e-6, "rmsnorm rstd N=%d C=%d", N, C);
    free(ref);
    free(rref);

    float *predx = new_randn((size_t)N * C, 1.0f), *predw = new_randn(C, 1.0f);
    float *dx = new_copy(predx, (size_t)N * C), *dw = new_copy(predw, C);
    O->rmsnorm_backward(&g_be, dx, dw, c.R, c.x, c.w, c.rstd, N, C);
    sub_prefill(dx, predx, (size_t)N * C);
    sub_prefill(dw, predw, C);
    double ex = fd_check(norm_loss, &c, c.x, dx, (size_t)N * C, 80, 1e-2f);
    double ew = fd_check(norm_loss, &c, c.w, dw, C, 80, 1e-2f);
    CHECKF(ex < FD_TOL, "rmsnorm dx N=%d C=%d err %g", N, C, ex);
    CHECKF(ew < FD_TOL, "rmsnorm dw N=%d C=%d err %g", N, C, ew);
    /* NULL grads are allowed; dw alone gives the same dw */
    float *dw2 = new_copy(predw, C);
    O->rmsnorm_backward(&g_be, NULL, dw2, c.R, c.x, c.w, c.rstd, N, C);
    sub_prefill(dw2, predw, C);
    CHECK(memcmp(dw, dw2, C * 4) == 0);
    CHECK(guards_ok());
    gbuf_free_all();
}

/* ---- matmul ---------------------------------------------------------------------------------- */

typedef struct {
    float *out, *inp, *w, *b, *R;
    int N, C, OC;
} MatCtx;

static double mat_loss(void *ctx_) {
    MatCtx *c = ctx_;
    O->matmul_forward(&g_be, c->out, c->inp, c->w, c->b, c->N, c->C, c->OC);
    return dot_d(c->out, c->R, (size_t)c->N * c->OC);
}

static void test_matmul_case(int N, int C, int OC, int with_bias) {
    MatCtx c = {gbuf((size_t)N * OC),
                new_randn((size_t)N * C, 1.0f),
                new_randn((size_t)OC * C, 0.5f),
                with_bias ? new_randn(OC, 1.0f) : NULL,
                new_randn((size_t)N * OC, 1.0f),
                N,
                C,
                OC};
    O->matmul_forward(&g_be, c.out, c.inp, c.w, c.b, N, C, OC);
    double *ref = malloc(sizeof(double) * N * OC);
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++)
            ref[i * OC + o] = dot_d(c.inp + i * C, c.w + o * C, C) + (c.b ? c.b[o] : 0.0);
    CHECKF(rel_err_d(c.out, ref, (size_t)N * OC) < 1e-5, "matmul fwd %d %d %d", N, C, OC);
    free(ref);

    float *pi = new_randn((size_t)N * C, 1.0f), *pw = new_randn((size_t)OC * C, 1.0f),
          *pb = new_randn(OC, 1.0f);
    float *di = new_copy(pi, (size_t)N * C), *dw = new_copy(pw, (size_t)OC * C),
          *db = new_copy(pb, OC);
    O->matmul_backward(&g_be, di, dw, with_bias ? db : NULL, c.R, c.inp, c.w, N, C, OC);
    sub_prefill(di, pi, (size_t)N * C);
    sub_prefill(dw, pw, (size_t)OC * C);
    double e1 = fd_check(mat_loss, &c, c.inp, di, (size_t)N * C, 60, 1e-2f);
    double e2 = fd_check(mat_loss, &c, c.w, dw, (size_t)OC * C, 60, 1e-2f);
    CHECKF(e1 < FD_TOL, "matmul dinp %d %d %d err %g", N, C, OC, e1);
    CHECKF(e2 < FD_TOL, "matmul dw %d %d %d err %g", N, C, OC, e2);
    if (with_bias) {
        sub_prefill(db, pb, OC);
        double e3 = fd_check(mat_loss, &c, c.b, db, OC, 60, 1e-2f);
        CHECKF(e3 < FD_TOL, "matmul dbias %d %d %d err %g", N, C, OC, e3);
    } else {
        CHECK(memcmp(db, pb, OC * 4) == 0); /* untouched */
    }
    CHECK(guards_ok());
    gbuf_free_all();
}

/* ---- RoPE ------------------------------------------------------------------------------------ */

/* HF inv_freq, head_dim 128, theta 10000, float32 bits (scripts/make_ops_reference.py) */
static const uint32_t ROPE_INV_FREQ_128[64] = {
    0x3f800000, 0x3f5dafd7, 0x3f3ff911, 0x3f263de0, 0x3f0ff59a, 0x3ef953cf, 0x3ed7e89b, 0x3ebaf81b,
    0x3ea1e89b, 0x3e8c3504, 0x3e72d423, 0x3e5247ed, 0x3e361887, 0x3e1db040, 0x3e088d77, 0x3dec7fd6,
    0x3dcccccd, 0x3db15978, 0x3d99940d, 0x3d84fe4d, 0x3d6655c2, 0x3d47763f, 0x3d2cba15, 0x3d159348,
    0x3d0186e3, 0x3ce054d2, 0x3cc2434f, 0x3ca8398b, 0x3c91ad39, 0x3c7c4d33, 0x3c5a7bf2, 0x3c3d3311,
    0x3c23d70a, 0x3c0de12d, 0x3bf5b9b0, 0x3bd4ca15, 0x3bb8449c, 0x3b9f91cc, 0x3b8a2e77, 0x3b6f520e,
    0x3b4f3e38, 0x3b33770f, 0x3b1b690d, 0x3b06946f, 0x3ae91528, 0x3ac9d75c, 0x3aaec98e, 0x3a975c0e,
    0x3a83126f, 0x3a6301e2, 0x3a44948c, 0x3a2a3b44, 0x3a136a16, 0x39ff4fac, 0x39dd1725, 0x39bf74d7,
    0x39a5cb60, 0x398f9272, 0x3978a815, 0x395753e4, 0x393a7753, 0x39217916, 0x390bd472, 0x38f22ce2};

typedef struct {
    float *x, *work, *R;
    int32_t *pos;
    int N, H, D;
    float theta;
} RopeCtx;

static double rope_loss(void *ctx_) {
    RopeCtx *c = ctx_;
    size_t n = (size_t)c->N * c->H * c->D;
    memcpy(c->work, c->x, n * 4);
    O->rope_forward(&g_be, c->work, c->pos, c->N, c->H, c->D, c->theta);
    return dot_d(c->work, c->R, n);
}

static void test_rope_case(int N, int H, int D, float theta) {
    size_t n = (size_t)N * H * D;
    RopeCtx c = {new_randn(n, 1.0f), gbuf(n), new_randn(n, 1.0f), gbuf_i32(N), N, H, D, theta};
    random_docs(c.pos, N, 40);
    if (N > 2) c.pos[N - 1] = 1000 + randint(20000); /* a large position too */
    memcpy(c.work, c.x, n * 4);
    O->rope_forward(&g_be, c.work, c.pos, N, H, D, theta);
    double *ref = malloc(sizeof(double) * n);
    int half = D / 2;
    for (int i = 0; i < N; i++)
        for (int h = 0; h < H; h++)
            for (int f = 0; f < half; f++) {
                /* the float32 angle HF uses, rotated in double */
                float invf = 1.0f / powf(theta, (float)(2 * f) / (float)D);
                double ang = (double)((float)c.pos[i] * invf);
                const float *xh = c.x + ((size_t)i * H + h) * D;
                double *rh = ref + ((size_t)i * H + h) * D;
                rh[f] = xh[f] * cos(ang) - xh[f + half] * sin(ang);
                rh[f + half] = xh[f + half] * cos(ang) + xh[f] * sin(ang);
            }
    CHECKF(rel_err_d(c.work, ref, n) < 1e-6, "rope fwd N=%d H=%d D=%d err %g", N, H, D,
           rel_err_d(c.work, ref, n));
    free(ref);
    /* backward: gradient of sum(rope(x) * R) w.r.t. x, computed in place from R */
    float *dx = new_copy(c.R, n);
    O->rope_backward(&g_be, dx, c.pos, N, H, D, theta);
    double e = fd_check(rope_loss, &c, c.x, dx, n, 60, 1e-2f);
    CHECKF(e < FD_TOL, "rope bwd N=%d H=%d D=%d err %g", N, H, D, e);
    /* the backward of the forward is the identity (an orthogonal rotation) */
    memcpy(c.work, c.x, n * 4);
    O->rope_forward(&g_be, c.work, c.pos, N, H, D, theta);
    O->rope_backward(&g_be, c.work, c.pos, N, H, D, theta);
    CHECKF(sr_rel_err(c.work, c.x, n) < 1e-6, "rope inverse N=%d H=%d D=%d", N, H, D);
    CHECK(guards_ok());
    gbuf_free_all();
}

static void test_rope(void) {
    /* inv_freq bit-exact with HF */
    float inv[64];
    sr_cpu_rope_inv_freq(inv, 128, 10000.0f);
    CHECK(memcmp(inv, ROPE_INV_FREQ_128, sizeof inv) == 0);
    /* position 0 is the identity; D=2 pairs element 0 with 1 */
    float x[4] = {1, 2, 3, 4}, y[4];
    int32_t pos0[2] = {0, 0}, pos1[1] = {1};
    memcpy(y, x, sizeof x);
    O->rope_forward(&g_be, y, pos0, 2, 1, 2, 10000.0f);
    CHECK(memcmp(x, y, sizeof x) == 0);
    memcpy(y, x, sizeof x);
    O->rope_forward(&g_be, y, pos1, 1, 1, 2, 10000.0f); /* inv_freq[0] = 1, angle 1 rad */
    CHECK(fabsf(y[0] - (float)(1 * cos(1.0) - 2 * sin(1.0))) < 1e-6f);
    CHECK(fabsf(y[1] - (float)(2 * cos(1.0) + 1 * sin(1.0))) < 1e-6f);
    test_rope_case(1, 1, 2, 10000.0f);
    test_rope_case(7, 3, 8, 10000.0f);
    test_rope_case(33, 2, 16, 1000000.0f);
    test_rope_case(5, 2, 128, 10000.0f);
}

/* ---- attention ------------------------------------------------------------------------------ */

typedef struct {
    float *out, *q, *k, *v, *R;
    int32_t *pos;
    int N, Hq, Hkv, D;
} AttnCtx;

static double attn_loss(void *ctx_) {
    AttnCtx *c = ctx_;
    O->attention_forward(&g_be, c->out, NULL, c->q, c->k, c->v, c->pos, c->N, c->Hq, c->Hkv, c->D);
    return dot_d(c->out, c->R, (size_t)c->N * c->Hq * c->D);
}

/* explicit masked softmax in double: out [N, Hq*D], lse [Hq, N] */
static void attn_reference(double *out, double *lse, const AttnCtx *c) {
    int N = c->N, Hq = c->Hq, Hkv = c->Hkv, D = c->D;
    double *s = malloc(sizeof(double) * N);
    for (int h = 0; h < Hq; h++) {
        int kvh = h / (Hq / Hkv);
        for (int i = 0; i < N; i++) {
            double m = -INFINITY;
            for (int j = 0; j < N; j++) {
                int visible = j <= i && j >= i - c->pos[i];
                s[j] = visible ? dot_d(c->q + (size_t)i * Hq * D + h * D,
                                       c->k + (size_t)j * Hkv * D + kvh * D, D) /
                                     sqrt((double)D)
                               : -INFINITY;
                if (s[j] > m) m = s[j];
            }
            double sum = 0;
            for (int j = 0; j < N; j++) sum += exp(s[j] - m);
            lse[h * N + i] = m + log(sum);
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int j = 0; j < N; j++)
                    acc += exp(s[j] - m) / sum * c->v[(size_t)j * Hkv * D + kvh * D + d];
                out[(size_t)i * Hq * D + h * D + d] = acc;
            }
        }
    }
    free(s);
}

static void test_attention_case(int N, int Hq, int Hkv, int D, int maxdoc) {
    size_t nq = (size_t)N * Hq * D, nk = (size_t)N * Hkv * D;
    AttnCtx c = {gbuf(nq),
                 new_randn(nq, 1.0f),
                 new_randn(nk, 1.0f),
                 new_randn(nk, 1.0f),
                 new_randn(nq, 1.0f),
                 gbuf_i32(N),
                 N,
                 Hq,
                 Hkv,
                 D};
    random_docs(c.pos, N, maxdoc);
    float *lse = gbuf((size_t)Hq * N);
    O->attention_forward(&g_be, c.out, lse, c.q, c.k, c.v, c.pos, N, Hq, Hkv, D);
    double *ref = malloc(sizeof(double) * nq), *lref = malloc(sizeof(double) * Hq * N);
    attn_reference(ref, lref, &c);
    CHECKF(rel_err_d(c.out, ref, nq) < 1e-5, "attention fwd N=%d Hq=%d Hkv=%d D=%d err %g", N, Hq,
           Hkv, D, rel_err_d(c.out, ref, nq));
    CHECKF(rel_err_d(lse, lref, (size_t)Hq * N) < 1e-5, "attention lse N=%d", N);
    free(ref);
    free(lref);

    /* changing the tokens of other documents leaves a document's output unchanged */
    if (N >= 4) {
        int i0 = N - 1, start = i0 - c.pos[i0];
        float *out2 = gbuf(nq), *k2 = new_copy(c.k, nk), *v2 = new_copy(c.v, nk),
              *q2 = new_copy(c.q, nq);
        for (int j = 0; j < start; j++) {
            fill_randn(k2 + (size_t)j * Hkv * D, (size_t)Hkv * D, 3.0f);
            fill_randn(v2 + (size_t)j * Hkv * D, (size_t)Hkv * D, 3.0f);
            fill_randn(q2 + (size_t)j * Hq * D, (size_t)Hq * D, 3.0f);
        }
        O->attention_forward(&g_be, out2, NULL, q2, k2, v2, c.pos, N, Hq, Hkv, D);
        CHECK(memcmp(out2 + (size_t)start * Hq * D, c.out + (size_t)start * Hq * D,
                     (size_t)(N - start) * Hq * D * 4) == 0);
        /* and a token attends to its own document: changing an earlier token of it changes it */
        if (c.pos[i0] > 0) {
            fill_randn(v2 + (size_t)(i0 - 1) * Hkv * D, (size_t)Hkv * D, 3.0f);
            O->attention_forward(&g_be, out2, NULL, q2, k2, v2, c.pos, N, Hq, Hkv, D);
            CHECK(memcmp(out2 + (size_t)i0 * Hq * D, c.out + (size_t)i0 * Hq * D, Hq * D * 4) != 0);
        }
    }

    /* backward vs finite differences, accumulating into pre-filled grads */
    float *pq = new_randn(nq, 1.0f), *pk = new_randn(nk, 1.0f), *pv = new_randn(nk, 1.0f);
    float *dq = new_copy(pq, nq), *dk = new_copy(pk, nk), *dv = new_copy(pv, nk);
    O->attention_forward(&g_be, c.out, lse, c.q, c.k, c.v, c.pos, N, Hq, Hkv, D);
    O->attention_backward(&g_be, dq, dk, dv, c.R, c.q, c.k, c.v, c.out, lse, c.pos, N, Hq, Hkv, D);
    CHECK(guards_ok());
    /* thread-count independence, and NULL grads */
    SrBackend be1 = g_be, be3 = g_be;
    be1.n_threads = 1;
    be3.n_threads = 3;
    float *dq1 = new_copy(pq, nq), *dk1 = new_copy(pk, nk), *dv3 = new_copy(pv, nk),
          *dk3 = new_copy(pk, nk);
    O->attention_backward(&be1, dq1, dk1, NULL, c.R, c.q, c.k, c.v, c.out, lse, c.pos, N, Hq, Hkv,
                          D);
    O->attention_backward(&be3, NULL, dk3, dv3, c.R, c.q, c.k, c.v, c.out, lse, c.pos, N, Hq, Hkv,
                          D);
    CHECK(memcmp(dq1, dq, nq * 4) == 0);
    CHECK(memcmp(dk1, dk, nk * 4) == 0);
    CHECK(memcmp(dk3, dk, nk * 4) == 0);
    CHECK(memcmp(dv3, dv, nk * 4) == 0);
    sub_prefill(dq, pq, nq);
    sub_prefill(dk, pk, nk);
    sub_prefill(dv, pv, nk);
    double eq = fd_check(attn_loss, &c, c.q, dq, nq, 60, 1e-2f);
    double ek = fd_check(attn_loss, &c, c.k, dk, nk, 60, 1e-2f);
    double ev = fd_check(attn_loss, &c, c.v, dv, nk, 60, 1e-2f);
    CHECKF(eq < FD_TOL, "attention dq N=%d Hq=%d Hkv=%d D=%d err %g", N, Hq, Hkv, D, eq);
    CHECKF(ek < FD_TOL, "attention dk N=%d Hq=%d Hkv=%d D=%d err %g", N, Hq, Hkv, D, ek);
    CHECKF(ev < FD_TOL, "attention dv N=%d Hq=%d Hkv=%d D=%d err %g", N, Hq, Hkv, D, ev);
    CHECK(guards_ok());
    gbuf_free_all();
}

/* Attention over a paged cache, naively in double: query i (position pos[i] of sequence
 * seq[i]) attends to that sequence's positions 0..pos[i], found through its block table:
 * softmax(q k^T / sqrt(D)) v, query head h reading KV head h / (Hq / Hkv). */
static void paged_reference(double *out, const float *q, const float *kc, const float *vc,
                            const int32_t *pos, const int32_t *seq, const int32_t *table,
                            int max_blocks, int block, int N, int Hq, int Hkv, int D) {
    int KVD = Hkv * D, QD = Hq * D;
    double *s = NULL;
    for (int i = 0; i < N; i++) {
        s = realloc(s, sizeof(double) * (size_t)(pos[i] + 1));
        const int32_t *tab = table + (size_t)seq[i] * max_blocks;
        for (int h = 0; h < Hq; h++) {
            int kvh = h / (Hq / Hkv);
            double m = -INFINITY, sum = 0;
            for (int p = 0; p <= pos[i]; p++) {
                size_t row = (size_t)tab[p / block] * block + p % block;
                s[p] = dot_d(q + (size_t)i * QD + h * D, kc + row * KVD + kvh * D, D) /
                       sqrt((double)D);
                if (s[p] > m) m = s[p];
            }
            for (int p = 0; p <= pos[i]; p++) sum += exp(s[p] - m);
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int p = 0; p <= pos[i]; p++) {
                    size_t row = (size_t)tab[p / block] * block + p % block;
                    acc += exp(s[p] - m) / sum * vc[row * KVD + kvh * D + d];
                }
                out[(size_t)i * QD + h * D + d] = acc;
            }
        }
    }
    free(s);
}

/* paged attention (block tables) is the naive attention over each sequence's cache: nseq
 * sequences of random lengths with Δ_s >= 0 queried tokens at their end (a catch-up of Δ_s
 * tokens; with `decode` exactly one, a decode step), fed in a shuffled sequence order, blocks
 * drawn at random from a pool (scattered, and with `shared` several sequences reading the same
 * blocks); table entries past a sequence's length are -1 and must never be read; the rest of
 * the pool is random junk, so reading too far (or not far enough) changes the result. 1 and 3
 * threads give the same bits. */
static void test_attention_paged_case(int nseq, int maxlen, int block, int Hq, int Hkv, int D,
                                      int shared, int decode) {
    int KVD = Hkv * D, QD = Hq * D;
    int max_blocks = (maxlen + block - 1) / block;
    int n_blocks = shared ? max_blocks + 1 : nseq * max_blocks + 3;
    float *kc = new_randn((size_t)n_blocks * block * KVD, 1.0f);
    float *vc = new_randn((size_t)n_blocks * block * KVD, 1.0f);
    int32_t *table = gbuf_i32((size_t)nseq * max_blocks);
    int *len = malloc((size_t)nseq * sizeof(int)), *order = malloc((size_t)nseq * sizeof(int));
    /* a random permutation of the pool's blocks, dealt out (or, shared, drawn with repeats) */
    int *perm = malloc((size_t)n_blocks * sizeof(int));
    for (int b = 0; b < n_blocks; b++) perm[b] = b;
    for (int b = n_blocks - 1; b > 0; b--) {
        int j = randint(b + 1), t = perm[b];
        perm[b] = perm[j];
        perm[j] = t;
    }
    for (int s = 0, next = 0; s < nseq; s++) {
        len[s] = 1 + randint(maxlen);
        order[s] = s;
        for (int b = 0; b < max_blocks; b++) {
            int used = b * block < len[s];
            table[(size_t)s * max_blocks + b] =
                !used ? -1 : shared ? perm[randint(n_blocks)] : perm[next++];
        }
    }
    for (int s = nseq - 1; s > 0; s--) {
        int j = randint(s + 1), t = order[s];
        order[s] = order[j];
        order[j] = t;
    }
    /* the queries */
    int32_t *pos = gbuf_i32((size_t)nseq * maxlen), *seq = gbuf_i32((size_t)nseq * maxlen);
    int N = 0;
    for (int r = 0; r < nseq; r++) {
        int s = order[r], delta = decode ? 1 : randint(len[s] + 1);
        for (int p = len[s] - delta; p < len[s]; p++, N++) {
            pos[N] = p;
            seq[N] = s;
        }
    }
    if (N == 0) { /* at least one query */
        pos[0] = len[0] - 1, seq[0] = 0;
        N = 1;
    }
    float *q = new_randn((size_t)N * QD, 1.0f), *out = gbuf((size_t)N * QD);
    float *out3 = gbuf((size_t)N * QD);
    double *ref = malloc(sizeof(double) * (size_t)N * QD);
    SrBackend be1 = g_be, be3 = g_be;
    be1.n_threads = 1;
    be3.n_threads = 3;
    O->attention_paged(&be1, out, q, kc, vc, pos, seq, table, max_blocks, block, N, Hq, Hkv, D);
    O->attention_paged(&be3, out3, q, kc, vc, pos, seq, table, max_blocks, block, N, Hq, Hkv, D);
    paged_reference(ref, q, kc, vc, pos, seq, table, max_blocks, block, N, Hq, Hkv, D);
    double e = rel_err_d(out, ref, (size_t)N * QD);
    CHECKF(e < 1e-5, "paged nseq=%d maxlen=%d block=%d Hq=%d Hkv=%d D=%d shared=%d decode=%d: "
           "vs the naive reference rel err %g", nseq, maxlen, block, Hq, Hkv, D, shared, decode, e);
    CHECKF(memcmp(out, out3, (size_t)N * QD * 4) == 0, "paged nseq=%d maxlen=%d block=%d: 1 and "
           "3 threads differ", nseq, maxlen, block);
    CHECK(guards_ok());
    free(ref);
    free(len);
    free(order);
    free(perm);
    gbuf_free_all();
}

/* fresh prompts (nothing cached before) in scattered blocks: the bits of packed attention
 * over the prompts as documents */
static void test_attention_paged_fresh(int block, int Hq, int Hkv, int D) {
    int KVD = Hkv * D, QD = Hq * D, lens[3] = {5, 1, 2 * block + 3}, N = 0;
    int max_blocks = (lens[2] + block - 1) / block, n_blocks = 3 * max_blocks + 2;
    float *kc = new_randn((size_t)n_blocks * block * KVD, 1.0f);
    float *vc = new_randn((size_t)n_blocks * block * KVD, 1.0f);
    int32_t *table = gbuf_i32((size_t)3 * max_blocks);
    for (int i = 0; i < 3 * max_blocks; i++) table[i] = n_blocks - 1 - 2 * i % n_blocks;
    for (int s = 0; s < 3; s++) N += lens[s];
    float *q = new_randn((size_t)N * QD, 1.0f), *k = new_randn((size_t)N * KVD, 1.0f),
          *v = new_randn((size_t)N * KVD, 1.0f);
    float *out = gbuf((size_t)N * QD), *ref = gbuf((size_t)N * QD);
    int32_t *pos = gbuf_i32(N), *seq = gbuf_i32(N), *slot = gbuf_i32(N);
    for (int s = 0, i = 0; s < 3; s++)
        for (int p = 0; p < lens[s]; p++, i++) {
            pos[i] = p, seq[i] = s;
            slot[i] = table[s * max_blocks + p / block] * block + p % block;
        }
    O->kv_store(&g_be, kc, vc, k, v, slot, N, KVD);
    O->attention_paged(&g_be, out, q, kc, vc, pos, seq, table, max_blocks, block, N, Hq, Hkv, D);
    O->attention_forward(&g_be, ref, NULL, q, k, v, pos, N, Hq, Hkv, D);
    CHECKF(!has_nan(out, (size_t)N * QD) && memcmp(out, ref, (size_t)N * QD * 4) == 0,
           "paged fresh block=%d Hq=%d Hkv=%d D=%d vs packed attention", block, Hq, Hkv, D);
    CHECK(guards_ok());
    gbuf_free_all();
}

/* large scores (peaked softmax) stay finite and exact */
static void test_attention_peaked(void) {
    int N = 9, Hq = 2, Hkv = 1, D = 16;
    size_t nq = (size_t)N * Hq * D, nk = (size_t)N * Hkv * D;
    AttnCtx c = {gbuf(nq),
                 new_randn(nq, 30.0f),
                 new_randn(nk, 30.0f),
                 new_randn(nk, 1.0f),
                 NULL,
                 gbuf_i32(N),
                 N,
                 Hq,
                 Hkv,
                 D};
    random_docs(c.pos, N, 5);
    float *lse = gbuf((size_t)Hq * N);
    O->attention_forward(&g_be, c.out, lse, c.q, c.k, c.v, c.pos, N, Hq, Hkv, D);
    double *ref = malloc(sizeof(double) * nq), *lref = malloc(sizeof(double) * Hq * N);
    attn_reference(ref, lref, &c);
    CHECKF(rel_err_d(c.out, ref, nq) < 1e-5, "attention peaked fwd err %g",
           rel_err_d(c.out, ref, nq));
    CHECKF(rel_err_d(lse, lref, (size_t)Hq * N) < 1e-5, "attention peaked lse");
    free(ref);
    free(lref);
    CHECK(guards_ok());
    gbuf_free_all();
}

/* the attention's exp (sr_cpu_exp_array: its bits are cpu_exp_v4's) against exp() in double: every
 * 257th float of [-104, 89] (about 8.7 million, the range the softmax uses is [-104, 0]),
 * array lengths that leave 1-3 for the tail, and the special values. Exhaustively over every
 * float of [-104, 89] it measured 1.03e-7 relative at most (libm's expf: 5.96e-8, i.e.
 * correctly rounded), and under 1.1e-45 absolute where e^x is subnormal. */
static void test_exp_array(void) {
    enum { CHUNK = 4099 };
    float *x = malloc(CHUNK * sizeof(float)), *y = malloc(CHUNK * sizeof(float));
    double worst = 0, worst_sub = 0;
    long nbits = 0;
    const float ends[2][2] = {{-0.0f, -104.0f}, {0.0f, 89.0f}}; /* |x| grows with the bits */
    for (int side = 0; side < 2; side++) {
        uint32_t b0, b1;
        memcpy(&b0, &ends[side][0], 4);
        memcpy(&b1, &ends[side][1], 4);
        int n = 0;
        for (uint64_t b = b0; b <= b1; b += 257) {
            uint32_t bits = (uint32_t)b;
            memcpy(&x[n++], &bits, 4);
            if (n < CHUNK && b + 257 <= b1) continue;
            sr_cpu_exp_array(y, x, n);
            for (int i = 0; i < n; i++) {
                /* the same bits as cpu_exp_v4 (the AVX2 and AVX-512 builds of the exp) */
                cpu_v4f v = {x[i], x[i], x[i], x[i]};
                v = cpu_exp_v4(v);
                if (memcmp(&v[0], &y[i], sizeof(float))) nbits++;
                double e = exp((double)x[i]);
                if (e > 3.4028234663852886e38) {
                    CHECKF(isinf(y[i]), "exp(%.9g) = %g, expected inf", x[i], y[i]);
                } else if (e >= 1.1754943508222875e-38) {
                    double r = fabs(y[i] - e) / e;
                    if (r > worst) worst = r;
                } else if (fabs(y[i] - e) > worst_sub) {
                    worst_sub = fabs(y[i] - e);
                }
            }
            n = 0;
        }
    }
    CHECKF(nbits == 0, "exp: %ld results differ in their bits from cpu_exp_v4", nbits);
    CHECKF(worst < 1.2e-7, "exp: max relative error %g (libm expf: 6e-8)", worst);
    CHECKF(worst_sub < 1.5e-45, "exp: max absolute error %g where e^x is subnormal", worst_sub);
    float sp[7] = {0.0f, -INFINITY, INFINITY, NAN, -1e30f, 1e30f, 1.0f};
    for (int i = 0; i < 7; i++) {
        cpu_v4f v = {sp[i], sp[i], sp[i], sp[i]}, w;
        v = cpu_exp_v4(v);
        sr_cpu_exp_array(&w[0], &sp[i], 1);
        CHECKF(!memcmp(&v[0], &w[0], sizeof(float)), "exp(%g): bits differ from cpu_exp_v4", sp[i]);
    }
    sr_cpu_exp_array(sp, sp, 7); /* in place, 4 + a tail of 3 */
    CHECK(sp[0] == 1.0f && sp[1] == 0.0f && isinf(sp[2]) && sp[2] > 0 && isnan(sp[3]) &&
          sp[4] == 0.0f && isinf(sp[5]) && fabs(sp[6] - 2.718281828) < 3e-7);
    free(x);
    free(y);
}

static void test_attention(void) {
    test_exp_array();
    test_attention_peaked();
    test_attention_case(1, 1, 1, 2, 1);
    test_attention_case(7, 2, 2, 8, 3);
    test_attention_case(7, 3, 1, 2, 10);  /* one document */
    test_attention_case(33, 4, 1, 16, 9); /* Hq = 4 Hkv */
    test_attention_case(33, 6, 2, 8, 12); /* Hq = 3 Hkv */
    test_attention_case(33, 2, 2, 16, 1); /* every token its own document */
    test_attention_case(90, 4, 2, 32, 75); /* windows of several 16-key blocks, D two chunks */
    test_attention_case(50, 3, 1, 20, 50); /* D = 16 + 4 */
    test_attention_paged_fresh(1, 2, 2, 8);
    test_attention_paged_fresh(4, 4, 1, 16);
    test_attention_paged_fresh(16, 3, 3, 7);
    for (int decode = 0; decode < 2; decode++)
        for (int shared = 0; shared < 2; shared++) {
            test_attention_paged_case(1, 1, 1, 1, 1, 2, shared, decode);
            test_attention_paged_case(3, 12, 4, 6, 6, 8, shared, decode);   /* GQA 1 */
            test_attention_paged_case(6, 40, 16, 8, 2, 16, shared, decode); /* GQA 4 */
            test_attention_paged_case(5, 33, 5, 4, 1, 7, shared, decode);   /* odd block, odd D */
            test_attention_paged_case(7, 70, 1, 3, 3, 5, shared, decode);   /* 1 position a block */
            test_attention_paged_case(2, 70, 64, 2, 1, 4, shared, decode);  /* a part-used block */
            test_attention_paged_case(5, 40, 40, 8, 2, 16, shared, decode); /* a block a sequence */
            test_attention_paged_case(4, 33, 33, 4, 1, 7, shared, decode);
        }
}

/* ---- SwiGLU and add ---------------------------------------------------------------------------
 */

typedef struct {
    float *out, *g, *u, *R;
    size_t n;
} SwiCtx;

static double swi_loss(void *ctx_) {
    SwiCtx *c = ctx_;
    O->swiglu_forward(&g_be, c->out, c->g, c->u, c->n);
    return dot_d(c->out, c->R, c->n);
}

static void test_swiglu(void) {
    size_t n = 333;
    SwiCtx c = {gbuf(n), new_randn(n, 2.0f), new_randn(n, 1.0f), new_randn(n, 1.0f), n};
    c.g[0] = -100.0f, c.g[1] = 100.0f, c.g[2] = 0.0f; /* saturation */
    O->swiglu_forward(&g_be, c.out, c.g, c.u, n);
    double *ref = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) ref[i] = c.g[i] / (1.0 + exp(-(double)c.g[i])) * c.u[i];
    CHECKF(rel_err_d(c.out, ref, n) < 1e-6, "swiglu fwd");
    CHECK(!has_nan(c.out, n));
    free(ref);
    float *pg = new_randn(n, 1.0f), *pu = new_randn(n, 1.0f);
    float *dg = new_copy(pg, n), *du = new_copy(pu, n);
    O->swiglu_backward(&g_be, dg, du, c.R, c.g, c.u, n);
    CHECK(!has_nan(dg, n) && !has_nan(du, n));
    sub_prefill(dg, pg, n);
    sub_prefill(du, pu, n);
    double eg = fd_check(swi_loss, &c, c.g, dg, n, 200, 1e-2f);
    double eu = fd_check(swi_loss, &c, c.u, du, n, 200, 1e-2f);
    CHECKF(eg < FD_TOL, "swiglu dgate err %g", eg);
    CHECKF(eu < FD_TOL, "swiglu dup err %g", eu);
    float *du2 = new_copy(pu, n);
    O->swiglu_backward(&g_be, NULL, du2, c.R, c.g, c.u, n);
    sub_prefill(du2, pu, n);
    CHECK(memcmp(du2, du, n * 4) == 0);

    float *a = new_randn(n, 1.0f), *b = new_randn(n, 1.0f), *o = gbuf(n), *a2 = new_copy(a, n);
    O->add(&g_be, o, a, b, n);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= o[i] == a[i] + b[i];
    CHECK(ok);
    O->add(&g_be, a2, a2, b, n); /* out aliases a */
    CHECK(memcmp(a2, o, n * 4) == 0);
    CHECK(guards_ok());
    gbuf_free_all();
}

/* ---- cross-entropy ----------------------------------------------------------------------------
 */

typedef struct {
    float *logits, *work, *lp, *w;
    int32_t *t;
    int N, V;
    float gs;
} CeCtx;

/* L = -gs * sum_i w_i logprob_i (the loss whose gradient cross_entropy writes) */
static double ce_loss(void *ctx_) {
    CeCtx *c = ctx_;
    memcpy(c->work, c->logits, (size_t)c->N * c->V * 4);
    O->cross_entropy(&g_be, c->lp, NULL, c->work, c->t, c->w, 0.0f, c->N, c->V);
    double L = 0;
    for (int i = 0; i < c->N; i++) L -= (double)c->gs * (c->w ? c->w[i] : 1.0) * c->lp[i];
    return L;
}

static void test_cross_entropy_case(int N, int V, float scale, int with_weights) {
    size_t n = (size_t)N * V;
    CeCtx c = {new_randn(n, scale), gbuf(n), gbuf(N), with_weights ? gbuf(N) : NULL,
               gbuf_i32(N),         N,       V,       0.37f};
    for (int i = 0; i < N; i++) {
        c.t[i] = randint(V);
        if (c.w) c.w[i] = randu() * 2.0f;
    }
    c.t[N / 2] = -1; /* ignored */
    if (N > 3) c.t[1] = -100;
    /* logprob without gradient leaves logits untouched */
    memcpy(c.work, c.logits, n * 4);
    O->cross_entropy(&g_be, c.lp, NULL, c.work, c.t, c.w, 0.0f, N, V);
    CHECK(memcmp(c.work, c.logits, n * 4) == 0);
    double *ref = malloc(sizeof(double) * N);
    for (int i = 0; i < N; i++) {
        const float *x = c.logits + (size_t)i * V;
        double m = -INFINITY, s = 0;
        for (int j = 0; j < V; j++) m = x[j] > m ? x[j] : m;
        for (int j = 0; j < V; j++) s += exp(x[j] - m);
        ref[i] = c.t[i] < 0 ? 0.0 : x[c.t[i]] - m - log(s);
    }
    CHECKF(rel_err_d(c.lp, ref, N) < 1e-6, "cross_entropy logprob N=%d V=%d scale=%g err %g", N, V,
           scale, rel_err_d(c.lp, ref, N));
    CHECK(c.lp[N / 2] == 0.0f);
    /* the entropy output: -sum p log p per row with a target, 0 elsewhere; the log-probs are
     * the same bits with it as without */
    float *ent = gbuf(N), *lp3 = gbuf(N);
    memcpy(c.work, c.logits, n * 4);
    O->cross_entropy(&g_be, lp3, ent, c.work, c.t, c.w, 0.0f, N, V);
    CHECK(memcmp(lp3, c.lp, N * 4) == 0);
    for (int i = 0; i < N; i++) {
        const float *x = c.logits + (size_t)i * V;
        double m = -INFINITY, s = 0, h = 0;
        for (int j = 0; j < V; j++) m = x[j] > m ? x[j] : m;
        for (int j = 0; j < V; j++) s += exp(x[j] - m);
        for (int j = 0; j < V; j++) {
            double p = exp(x[j] - m) / s;
            if (p > 0) h -= p * log(p);
        }
        if (c.t[i] < 0) h = 0;
        CHECKF(fabs(ent[i] - h) <= 1e-5 * (1.0 + h), "cross_entropy entropy row %d: %g vs %g",
               i, ent[i], h);
    }
    free(ref);
    /* in-place gradient (the entropy asked for too: the same gradient bits) */
    float *lp2 = gbuf(N), *ent2 = gbuf(N);
    memcpy(c.work, c.logits, n * 4);
    O->cross_entropy(&g_be, lp2, ent2, c.work, c.t, c.w, c.gs, N, V);
    CHECK(memcmp(lp2, c.lp, N * 4) == 0);
    CHECK(memcmp(ent2, ent, N * 4) == 0);
    {
        float *g0 = new_copy(c.work, n);
        memcpy(c.work, c.logits, n * 4);
        O->cross_entropy(&g_be, lp2, NULL, c.work, c.t, c.w, c.gs, N, V);
        CHECK(memcmp(g0, c.work, n * 4) == 0);
    }
    float *grad = new_copy(c.work, n);
    CHECK(!has_nan(grad, n));
    int zero = 1;
    for (int j = 0; j < V; j++) zero &= grad[(size_t)(N / 2) * V + j] == 0.0f;
    CHECK(zero);
    if (scale <= 4.0f) {
        double e = fd_check(ce_loss, &c, c.logits, grad, n, 150, 1e-2f);
        CHECKF(e < FD_TOL, "cross_entropy grad N=%d V=%d err %g", N, V, e);
    }
    /* each used row's gradient sums to 0 and has gs*w*(p_t - 1) at the target */
    for (int i = 0; i < N; i++) {
        if (c.t[i] < 0) continue;
        double s = 0;
        for (int j = 0; j < V; j++) s += grad[(size_t)i * V + j];
        double w = c.w ? c.w[i] : 1.0;
        double gt = c.gs * w * (exp(c.lp[i]) - 1.0);
        CHECKF(fabs(s) < 1e-5 && fabs(grad[(size_t)i * V + c.t[i]] - gt) < 1e-5,
               "cross_entropy row %d sum %g target grad %g vs %g", i, s,
               grad[(size_t)i * V + c.t[i]], gt);
    }
    CHECK(guards_ok());
    gbuf_free_all();
}

static void test_cross_entropy(void) {
    test_cross_entropy_case(1, 5, 1.0f, 0);
    test_cross_entropy_case(7, 33, 2.0f, 1);
    test_cross_entropy_case(9, 64, 1.0f, 0);
    test_cross_entropy_case(4, 1000, 50.0f, 1); /* large logits: no overflow */
}

/* ---- sampling -----------------------------------------------------------------------------------
 */

/* probabilities of the HF-truncated distribution (temperature, top-k, top-p), by brute force:
 * top-k keeps z >= k-th largest; top-p sorts ascending and drops the prefix whose cumsum
 * <= 1 - p (keeping the largest); ties in the sort put the higher id first (ascending). */
static void hf_truncated_probs(double *p, const float *x, int V, const SrSampling *s) {
    double *z = malloc(sizeof(double) * V);
    int *idx = malloc(sizeof(int) * V);
    double m = -INFINITY;
    for (int j = 0; j < V; j++) z[j] = (float)(x[j] / s->temperature);
    if (s->top_k > 0 && s->top_k < V) {
        double *t = malloc(sizeof(double) * V);
        memcpy(t, z, sizeof(double) * V);
        for (int a = 0; a < s->top_k; a++) /* partial selection sort, descending */
            for (int b = a + 1; b < V; b++)
                if (t[b] > t[a]) {
                    double tmp = t[a];
                    t[a] = t[b], t[b] = tmp;
                }
        double kth = t[s->top_k - 1];
        for (int j = 0; j < V; j++)
            if (z[j] < kth) z[j] = -INFINITY;
        free(t);
    }
    for (int j = 0; j < V; j++) m = z[j] > m ? z[j] : m;
    double sum = 0;
    for (int j = 0; j < V; j++) sum += exp(z[j] - m);
    for (int j = 0; j < V; j++) p[j] = exp(z[j] - m) / sum;
    if (s->top_p < 1.0f) {
        for (int j = 0; j < V; j++) idx[j] = j;
        /* ascending by prob, ties: higher id first (so the lower id is nearer the top) */
        for (int a = 1; a < V; a++)
            for (int b = a; b > 0; b--) {
                int u = idx[b - 1], w = idx[b];
                if (p[u] > p[w] || (p[u] == p[w] && u < w))
                    idx[b - 1] = w, idx[b] = u;
                else
                    break;
            }
        double cum = 0;
        for (int r = 0; r < V - 1; r++) {
            cum += p[idx[r]];
            if (cum <= 1.0 - s->top_p) p[idx[r]] = 0.0;
        }
        double t = 0;
        for (int j = 0; j < V; j++) t += p[j];
        for (int j = 0; j < V; j++) p[j] /= t;
    }
    free(z);
    free(idx);
}

/* draws about n samples (SB rows per call, each with its own state) and compares the
 * frequencies with probs p (5 sigma, and never an id of probability 0) */
#define SB 64
static int sample_matches(const float *logits, int V, const SrSampling *s, const double *p, int n,
                          const char *what) {
    int *count = calloc(V, sizeof(int));
    int32_t ids[SB];
    float lps[SB];
    uint64_t rng[SB];
    SrSampling sv[SB];
    for (int b = 0; b < SB; b++) {
        rng[b] = sr_rng_stream(2024, b);
        sv[b] = *s;
    }
    float *rows = malloc(sizeof(float) * SB * V);
    for (int b = 0; b < SB; b++) memcpy(rows + (size_t)b * V, logits, sizeof(float) * V);
    int calls = (n + SB - 1) / SB, total = calls * SB;
    for (int t = 0; t < calls; t++) {
        O->sample(&g_be, ids, lps, rows, SB, V, V, sv, rng);
        for (int b = 0; b < SB; b++) count[ids[b]]++;
    }
    int ok = 1;
    for (int j = 0; j < V; j++) {
        double f = (double)count[j] / total;
        double tol = 5.0 * sqrt(p[j] * (1 - p[j]) / total) + 1e-4;
        if (fabs(f - p[j]) > tol || (p[j] == 0.0 && count[j] > 0)) {
            fprintf(stderr, "  %s: id %d freq %.4f expected %.4f\n", what, j, f, p[j]);
            ok = 0;
        }
    }
    free(count);
    free(rows);
    return ok;
}

/* The CPU sampling rule written the plain way (sort every token, sum in order), for exact
 * comparison with the op on vocabularies large enough for its binned top-k / top-p. */
typedef struct {
    float z;
    int id;
} RefZ;
static int ref_cmp(const void *a_, const void *b_) {
    const RefZ *a = a_, *b = b_;
    if (a->z != b->z) return a->z > b->z ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}
static int ref_sample_topp(const float *x, int V, float T, int k, float p, uint64_t *rng) {
    float *z = malloc(sizeof(float) * V), *e = malloc(sizeof(float) * V);
    RefZ *o = malloc(sizeof(RefZ) * V);
    int amax = 0;
    for (int j = 0; j < V; j++) {
        z[j] = x[j] / T;
        if (z[j] > z[amax]) amax = j;
    }
    double mass = 0;
    for (int j = 0; j < V; j++) {
        e[j] = expf(z[j] - z[amax]);
        mass += e[j];
        o[j] = (RefZ){z[j], j};
    }
    qsort(o, (size_t)V, sizeof(RefZ), ref_cmp);
    int nk = V; /* top-k: the sorted prefix with z >= the k-th largest (ties kept) */
    if (k > 0 && k < V) {
        nk = k;
        while (nk < V && o[nk].z == o[k - 1].z) nk++;
        mass = 0;
        for (int j = 0; j < V; j++)
            if (z[j] >= o[k - 1].z) mass += e[j];
    }
    double target = (double)p * mass, cum = 0;
    int last = nk - 1;
    if (p < 1.0f)
        for (int r = 0; r < nk; r++) {
            if (r > 0 && cum >= target) break;
            last = r;
            cum += e[o[r].id];
        }
    float zt = o[last].z;
    int jt = o[last].id;
#define REF_KEPT(j) (z[j] > zt || (z[j] == zt && (j) <= jt))
    double total = 0;
    for (int j = 0; j < V; j++)
        if (REF_KEPT(j)) total += e[j];
    double u = (double)sr_rng_uniform(rng) * total, c = 0;
    int id = -1, lastk = amax;
    for (int j = 0; j < V && id < 0; j++) {
        if (!REF_KEPT(j)) continue;
        if (e[j] > 0) lastk = j;
        if ((c += e[j]) > u) id = j;
    }
#undef REF_KEPT
    free(z);
    free(e);
    free(o);
    return id < 0 ? lastk : id;
}

static void test_sample_topp_exact(void) {
    /* near-uniform (almost every token is a candidate), peaked, tied logits, -inf among
     * them, a few tokens far above a flat tail (one bin holds nearly every token), and a
     * spread so wide that max - min overflows (the bins degenerate) */
    int V = 5000, bad = 0, n = 0;
    float *x = malloc(sizeof(float) * V);
    float ps[] = {0.0f, 0.3f, 0.9f, 0.95f, 0.999f, 1.0f};
    int ks[] = {0, 1, 20, 4000};
    for (int kind = 0; kind < 6; kind++)
        for (int rep = 0; rep < 4; rep++) {
            for (int j = 0; j < V; j++) {
                float g = randn();
                x[j] = kind == 0   ? 0.02f * g
                       : kind == 1 ? 3.0f * g
                       : kind == 2 ? (float)(j % 4)
                       : kind == 3 ? (j % 7 == 0 ? -INFINITY : g)
                       : kind == 4 ? (j % 500 == 0 ? 12.0f + g : 1e-3f * g)
                                   : (j % 2 ? 1.0f : -1.0f) * 1.7e38f * fabsf(g) / 2.5f;
            }
            for (int pi = 0; pi < 6; pi++)
                for (int ki = 0; ki < 4; ki++) {
                    if (pi == 5 && ki == 0) continue; /* no cut */
                    SrSampling sp = {kind == 2 || kind == 5 ? 1.0f : 0.7f, ks[ki], ps[pi]};
                    uint64_t r1 = sr_rng_stream(rep, pi * 4 + ki), r2 = r1;
                    int32_t id;
                    float lp;
                    O->sample(&g_be, &id, &lp, x, 1, V, V, &sp, &r1);
                    int want = ref_sample_topp(x, V, sp.temperature, sp.top_k, sp.top_p, &r2);
                    bad += id != want || r1 != r2;
                    n++;
                }
        }
    CHECKF(bad == 0, "%d of %d top-k / top-p draws differ from the sort-everything rule", bad, n);
    free(x);
}

/* Per-row parameters: greedy and sampled rows with different T / top-k / top-p in one call
 * give, row for row, exactly what each row gives alone (ids, log-probs, RNG advance), on one
 * thread and on three; s == NULL is every row greedy and needs no RNG. */
static void test_sample_mixed_rows(void) {
    enum { MB = 24, MV = 3001, MNV = 2990 };
    SrSampling kinds[8] = {{0.0f, 0, 1.0f},  {1.0f, 0, 1.0f},   {0.6f, 0, 0.95f}, {0.7f, 20, 1.0f},
                           {1.3f, 50, 0.6f}, {1.0f, 0, 0.0f},   {0.9f, 1, 0.9f},  {0.0f, 5, 0.5f}};
    float *x = malloc(sizeof(float) * MB * MV);
    SrSampling s[MB];
    for (int b = 0; b < MB; b++) {
        s[b] = kinds[(b * 5) % 8];
        float scale = b % 3 == 0 ? 0.05f : b % 3 == 1 ? 1.0f : 6.0f; /* flat, R1-ish, peaked */
        for (int j = 0; j < MV; j++) x[(size_t)b * MV + j] = scale * randn();
    }
    x[(size_t)4 * MV + 7] = NAN;
    for (int j = 0; j < MV; j++) x[(size_t)9 * MV + j] = -INFINITY; /* no finite maximum */
    int same = 1, drew = 0;
    for (int nt = 1; nt <= 3; nt += 2) {
        int saved = g_be.n_threads;
        uint64_t ra[MB], rb[MB];
        int32_t ida[MB], idb[MB];
        float lpa[MB], lpb[MB];
        for (int b = 0; b < MB; b++) ra[b] = rb[b] = sr_rng_stream(77, (uint64_t)b);
        g_be.n_threads = nt;
        O->sample(&g_be, ida, lpa, x, MB, MV, MNV, s, ra);
        g_be.n_threads = saved;
        for (int b = 0; b < MB; b++) {
            O->sample(&g_be, &idb[b], &lpb[b], x + (size_t)b * MV, 1, MV, MNV, &s[b], &rb[b]);
            same &= ida[b] == idb[b] && ra[b] == rb[b] &&
                    memcmp(&lpa[b], &lpb[b], sizeof(float)) == 0;
            drew += ra[b] != sr_rng_stream(77, (uint64_t)b);
        }
    }
    CHECKF(same, "a row sampled among mixed rows differs from the row sampled alone");
    /* every non-greedy row (T > 0) drew once per call, greedy rows never */
    int n_sampled = 0;
    for (int b = 0; b < MB; b++) n_sampled += s[b].temperature > 0.0f;
    CHECKF(drew == 2 * n_sampled, "%d RNG advances, expected %d", drew, 2 * n_sampled);
    /* s == NULL: all greedy, rng unused */
    {
        int32_t ida[MB], idb[MB];
        float lpa[MB], lpb[MB];
        SrSampling g0[MB];
        for (int b = 0; b < MB; b++) g0[b] = kinds[0];
        O->sample(&g_be, ida, lpa, x, MB, MV, MNV, NULL, NULL);
        O->sample(&g_be, idb, lpb, x, MB, MV, MNV, g0, NULL);
        CHECK(memcmp(ida, idb, sizeof ida) == 0 && memcmp(lpa, lpb, sizeof lpa) == 0);
    }
    free(x);
}

static void test_sample(void) {
    int V = 10;
    float logits[10] = {0.5f, 2.0f, -1.0f, 2.0f, 0.0f, 1.0f, -3.0f, 1.5f, 0.2f, 2.0f};
    int32_t id;
    float lp;
    /* greedy: argmax with lowest id on ties; the RNG is not advanced */
    SrSampling greedy = {0.0f, 0, 1.0f};
    uint64_t st = 99, st0 = 99;
    O->sample(&g_be, &id, &lp, logits, 1, V, V, &greedy, &st);
    CHECK(id == 1);
    CHECK(st == st0);
    double m = 2.0, s = 0;
    for (int j = 0; j < V; j++) s += exp(logits[j] - m);
    CHECK(fabs(lp - (2.0 - m - log(s))) < 1e-6);
    /* top_k = 1 is greedy whatever the temperature */
    SrSampling k1 = {1.3f, 1, 1.0f};
    for (int t = 0; t < 20; t++) {
        O->sample(&g_be, &id, &lp, logits, 1, V, V, &k1, &st);
        CHECK(id == 1 || id == 3 || id == 9); /* the three tied maxima survive top-k */
    }
    float distinct[10] = {0.5f, 2.0f, -1.0f, 2.5f, 0.0f, 1.0f, -3.0f, 1.5f, 0.2f, 2.1f};
    for (int t = 0; t < 20; t++) {
        O->sample(&g_be, &id, &lp, distinct, 1, V, V, &k1, &st);
        CHECK(id == 3);
        double zs = 0, mz = 2.5 / 1.3;
        for (int j = 0; j < V; j++) zs += exp(distinct[j] / 1.3 - mz);
        CHECK(fabs(lp - (-log(zs))) < 1e-5); /* log-prob under the full T-scaled softmax */
    }
    CHECK(st != st0);
    /* a fixed seed reproduces; different rows use their own states */
    SrSampling samp = {0.8f, 0, 1.0f}, samp3[3] = {samp, samp, samp};
    float rows[3 * 10];
    for (int b = 0; b < 3; b++) memcpy(rows + b * V, distinct, sizeof distinct);
    int32_t a1[3], a2[3];
    float l1[3], l2[3];
    uint64_t r1[3] = {7, 8, 9}, r2[3] = {7, 8, 9};
    int same = 1;
    for (int t = 0; t < 50; t++) {
        O->sample(&g_be, a1, l1, rows, 3, V, V, samp3, r1);
        O->sample(&g_be, a2, l2, rows, 3, V, V, samp3, r2);
        same &= memcmp(a1, a2, sizeof a1) == 0 && memcmp(l1, l2, sizeof l1) == 0;
    }
    CHECK(same);
    CHECK(r1[0] == r2[0] && r1[0] != 7);
    /* the exact draw rule: first kept id (ascending) whose running mass exceeds u * total */
    {
        uint64_t r = 4242, rc = 4242;
        O->sample(&g_be, &id, &lp, distinct, 1, V, V, &samp, &r);
        float u = sr_rng_uniform(&rc);
        double p[10], cum = 0;
        int want = -1;
        hf_truncated_probs(p, distinct, V, &samp);
        for (int j = 0; j < V && want < 0; j++)
            if ((cum += p[j]) > u) want = j;
        CHECK(id == want);
        CHECK(r == rc); /* exactly one uniform per row */
    }
    /* tokens of probability 0 are never drawn, even when u = 0 (state 5618432 gives u = 0) */
    {
        float xz[4] = {-INFINITY, 0.0f, -INFINITY, 1.0f};
        uint64_t r0 = 5618432, rc = 5618432;
        CHECK(sr_rng_uniform(&rc) == 0.0f);
        O->sample(&g_be, &id, &lp, xz, 1, 4, 4, &samp, &r0);
        CHECK(id == 1);
        double pz[4] = {0, 1 / (1 + exp(1.25)), 0, 1 / (1 + exp(-1.25))};
        CHECK(sample_matches(xz, 4, &samp, pz, 4000, "-inf logits"));
    }
    /* empirical frequencies match the (truncated) softmax */
    double p[10];
    SrSampling cases[] = {{1.0f, 0, 1.0f},  {0.7f, 0, 1.0f}, {1.5f, 4, 1.0f},
                          {1.0f, 0, 0.75f}, {0.9f, 5, 0.6f}, {2.0f, 0, 0.95f}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        hf_truncated_probs(p, distinct, V, &cases[ci]);
        char what[64];
        snprintf(what, sizeof what, "T=%g k=%d p=%g", cases[ci].temperature, cases[ci].top_k,
                 cases[ci].top_p);
        CHECKF(sample_matches(distinct, V, &cases[ci], p, 40000, what), "%s", what);
    }
    /* top-p excludes the tail: probs 0.5, 0.3, 0.15, 0.05, p = 0.75 keeps exactly {0, 1} */
    {
        float x4[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
        SrSampling tp = {1.0f, 0, 0.75f};
        double p4[4] = {0.625, 0.375, 0, 0};
        CHECK(sample_matches(x4, 4, &tp, p4, 20000, "top-p 0.75"));
        SrSampling tp0 = {1.0f, 0, 0.0f}; /* p = 0 still keeps the top token */
        double p1[4] = {1, 0, 0, 0};
        CHECK(sample_matches(x4, 4, &tp0, p1, 400, "top-p 0"));
    }
    /* n_valid < V: the columns past the valid vocabulary (a padded embedding) are never drawn
     * nor the argmax, whatever they hold (huge logits, NaN, +inf); the op equals the op on the
     * first n_valid columns alone: same ids, same log-probs (renormalised over them), same
     * RNG advance */
    {
        enum { VV = 16, NV = 10, RB = 3 };
        float pad[RB * VV];
        for (int b = 0; b < RB; b++) {
            memcpy(pad + b * VV, distinct, sizeof distinct);
            for (int j = NV; j < VV; j++) pad[b * VV + j] = 100.0f + (float)j;
        }
        pad[VV + 12] = NAN;
        pad[2 * VV + 15] = INFINITY;
        SrSampling cs[] = {greedy, samp, {1.5f, 0, 1.0f}, {1.0f, 3, 1.0f}, {0.7f, 0, 0.8f}};
        int same = 1, in_range = 1;
        for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++)
            for (uint64_t t = 0; t < 300; t++) {
                uint64_t ra[RB], rb[RB];
                int32_t ida[RB], idb[RB];
                float lpa[RB], lpb[RB];
                SrSampling csr[RB];
                for (int b = 0; b < RB; b++) {
                    ra[b] = rb[b] = sr_rng_stream(t, (uint64_t)b);
                    csr[b] = cs[ci];
                }
                O->sample(&g_be, ida, lpa, pad, RB, VV, NV, csr, ra);
                for (int b = 0; b < RB; b++)
                    O->sample(&g_be, &idb[b], &lpb[b], distinct, 1, NV, NV, &cs[ci], &rb[b]);
                for (int b = 0; b < RB; b++) {
                    in_range &= ida[b] >= 0 && ida[b] < NV;
                    same &= ida[b] == idb[b] && lpa[b] == lpb[b] && ra[b] == rb[b];
                }
            }
        CHECKF(in_range, "an id >= n_valid was sampled");
        CHECKF(same, "sampling with n_valid differs from sampling the valid columns alone");
    }
    /* NaN logits count as -inf: never drawn, never the argmax */
    {
        float xn[6] = {NAN, 1.0f, NAN, 3.0f, -INFINITY, 2.0f};
        uint64_t r = 11;
        O->sample(&g_be, &id, &lp, xn, 1, 6, 6, &greedy, &r);
        double zs = exp(1.0 - 3.0) + 1.0 + exp(2.0 - 3.0);
        CHECK(id == 3 && fabs(lp + log(zs)) < 1e-6);
        double pn[6] = {0, exp(-2.0) / zs, 0, 1.0 / zs, 0, exp(-1.0) / zs};
        SrSampling t1 = {1.0f, 0, 1.0f};
        CHECK(sample_matches(xn, 6, &t1, pn, 20000, "NaN logits"));
        /* a row without a finite maximum: the argmax, log-prob NaN; a sampling row takes its
         * one draw, a greedy one none */
        float alln[4] = {NAN, NAN, NAN, -INFINITY}, pinf[4] = {0.0f, INFINITY, 1.0f, INFINITY};
        uint64_t r0 = 5, r1 = 5, rc = 5;
        (void)sr_rng_uniform(&rc);
        O->sample(&g_be, &id, &lp, alln, 1, 4, 4, &greedy, &r0);
        CHECK(id == 0 && isnan(lp) && r0 == 5);
        O->sample(&g_be, &id, &lp, alln, 1, 4, 4, &samp, &r1);
        CHECK(id == 0 && isnan(lp) && r1 == rc);
        SrSampling tp9 = {0.7f, 2, 0.9f};
        O->sample(&g_be, &id, &lp, pinf, 1, 4, 4, &tp9, &r1);
        CHECK(id == 1 && isnan(lp));
    }
    /* top_p < 0 acts as 0: only the top token */
    {
        float x4[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
        SrSampling tpn = {1.0f, 0, -0.5f};
        double p1[4] = {1, 0, 0, 0};
        CHECK(sample_matches(x4, 4, &tpn, p1, 400, "top-p -0.5"));
    }
    /* a large vocabulary (the candidate pruning path): every draw lies in the brute-force set,
     * and the most likely tokens appear with the right frequency */
    {
        int VL = 2000;
        float *xl = malloc(sizeof(float) * VL);
        double *pl = malloc(sizeof(double) * VL);
        for (int j = 0; j < VL; j++) xl[j] = 3.0f * randn();
        SrSampling big[] = {{1.0f, 0, 0.9f}, {0.6f, 50, 0.8f}, {1.0f, 200, 1.0f}};
        for (int ci = 0; ci < 3; ci++) {
            hf_truncated_probs(pl, xl, VL, &big[ci]);
            CHECKF(sample_matches(xl, VL, &big[ci], pl, 8000, "large V"), "large V case %d", ci);
        }
        free(xl);
        free(pl);
    }
}

/* ---- AdamW ----------------------------------------------------------------------------------- */

/* Two steps of torch.optim.AdamW (torch 2.15.0, CPU, default single-tensor path) on 6 values,
 * lr=0.01 betas=(0.9,0.95) eps=1e-8 weight_decay=0.1, the grads below scaled by 0.5.
 * Made by scripts/make_ops_reference.py. */
static const float ADAMW_P0[] = {5.000000000e-01f, -1.250000000e+00f, 2.000000000e+00f,
                                 0.000000000e+00f, -3.125000000e-02f, 3.500000000e+00f};
static const float ADAMW_G1[] = {2.000000030e-01f,  -4.000000060e-01f, 1.500000000e+00f,
                                 -2.000000000e+00f, 0.000000000e+00f,  9.999999776e-03f};
static const float ADAMW_G2[] = {-1.000000015e-01f, 3.000000119e-01f,  1.000000000e+00f,
                                 2.500000000e+00f,  -6.999999881e-01f, 1.999999955e-02f};
static const float ADAMW_P1[] = {4.895000160e-01f, -1.238749981e+00f, 1.988000035e+00f,
                                 9.999999776e-03f, -3.121875040e-02f, 3.486500025e+00f};
static const float ADAMW_M1[] = {1.000000071e-02f,  -2.000000142e-02f, 7.500000298e-02f,
                                 -1.000000015e-01f, 0.000000000e+00f,  5.000000237e-04f};
static const float ADAMW_V1[] = {5.000000237e-04f, 2.000000095e-03f, 2.812500112e-02f,
                                 5.000000075e-02f, 0.000000000e+00f, 1.250000082e-06f};
static const float ADAMW_P2[] = {4.863268137e-01f, -1.236614823e+00f, 1.976261258e+00f,
                                 8.367149159e-03f, -2.383793145e-02f, 3.473433733e+00f};
static const float ADAMW_M2[] = {4.000000190e-03f, -3.000000957e-03f, 1.175000072e-01f,
                                 3.500000387e-02f, -3.500000015e-02f, 1.449999982e-03f};
static const float ADAMW_V2[] = {6.000000285e-04f, 3.025000216e-03f, 3.921874985e-02f,
                                 1.256249994e-01f, 6.124999840e-03f, 6.187500276e-06f};

static int close_all(const float *a, const float *b, int n, float rtol) {
    for (int i = 0; i < n; i++)
        if (!(fabsf(a[i] - b[i]) <= rtol * fabsf(b[i]) + 1e-9f)) {
            fprintf(stderr, "  [%d] %.9g vs %.9g\n", i, a[i], b[i]);
            return 0;
        }
    return 1;
}

static void test_adamw(void) {
    int n = 6;
    /* param aliasing master (the CPU model does this) */
    float *master = new_copy(ADAMW_P0, n), *m = gbuf(n), *v = gbuf(n);
    memset(m, 0, n * 4);
    memset(v, 0, n * 4);
    float *param = gbuf(n), *master2 = new_copy(ADAMW_P0, n), *m2 = new_copy(m, n),
          *v2 = new_copy(v, n);
    const float *G[2] = {ADAMW_G1, ADAMW_G2};
    const float *P[2] = {ADAMW_P1, ADAMW_P2}, *M[2] = {ADAMW_M1, ADAMW_M2},
                *Vv[2] = {ADAMW_V1, ADAMW_V2};
    for (int t = 0; t < 2; t++) {
        O->adamw(&g_be, master, master, G[t], m, v, n, 0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f,
                 t + 1);
        CHECKF(close_all(master, P[t], n, 2e-7f), "adamw param step %d", t + 1);
        CHECKF(close_all(m, M[t], n, 1e-6f), "adamw m step %d", t + 1);
        CHECKF(close_all(v, Vv[t], n, 1e-6f), "adamw v step %d", t + 1);
        O->adamw(&g_be, param, master2, G[t], m2, v2, n, 0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f,
                 t + 1);
        CHECK(memcmp(param, master, n * 4) == 0 && memcmp(master2, master, n * 4) == 0);
    }
    CHECK(guards_ok());
    gbuf_free_all();
}

/* ---- sum of squares ---------------------------------------------------------------------------
 */

static void test_sum_squares(void) {
    size_t n = 50001;
    float *x = new_randn(n, 1.0f);
    double ref = 0;
    for (size_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
    double got = O->sum_squares(&g_be, x, n);
    CHECKF(fabs(got - ref) <= 1e-12 * ref, "sum_squares %.17g vs %.17g", got, ref);
    SrBackend be1 = g_be, be3 = g_be;
    be1.n_threads = 1;
    be3.n_threads = 3;
    double a = O->sum_squares(&be1, x, n), b = O->sum_squares(&be3, x, n);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    CHECK(O->sum_squares(&g_be, x, 0) == 0.0);
    x[777] = NAN;
    CHECK(isnan(O->sum_squares(&g_be, x, n)));
    gbuf_free_all();
}

/* ---- thread-count independence ---------------------------------------------------------------
 * Every op, at sizes above the one-thread cutoff, gives the same bits on 1 and 3 threads. */

static int same_bits(const void *a, const void *b, size_t bytes) {
    return memcmp(a, b, bytes) == 0;
}

static void test_threads(void) {
    SrBackend b1 = g_be, b3 = g_be;
    b1.n_threads = 1;
    b3.n_threads = 3;
    SrBackend *bes[2] = {&b1, &b3};
    int N = 100, C = 130, OC = 130, H = 4, D = 32, V = 1000;
    float *x = new_randn((size_t)N * C, 1.0f), *w = new_randn((size_t)OC * C, 1.0f),
          *bias = new_randn(OC, 1.0f), *g = new_randn((size_t)N * OC, 1.0f);
    int32_t *pos = gbuf_i32(N), *ids = gbuf_i32(N), *t = gbuf_i32(N);
    random_docs(pos, N, 30);
    float *pgd[2];
    /* paged: 40 tokens of 3 sequences in scattered blocks of 8 (one block shared) */
    int32_t *ppos = gbuf_i32(40), *pseq = gbuf_i32(40), *ptab = gbuf_i32(3 * 4);
    for (int i = 0; i < 40; i++) pseq[i] = i % 3, ppos[i] = 31 - i / 3;
    for (int i = 0; i < 12; i++) ptab[i] = (i * 5 + 2) % 11;
    for (int i = 0; i < N; i++) ids[i] = randint(7), t[i] = i % 5 == 0 ? -1 : randint(V);
    float *out[2], *r[2], *dx[2], *dw[2], *db[2], *lse[2], *logits[2], *lp[2], *m[2], *v[2];
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, ny = (size_t)N * OC, nl = (size_t)N * V;
    float *logit0 = new_randn(nl, 2.0f), *wts = new_randn(N, 1.0f);
    int32_t sid[2][100];
    uint64_t rng[2][100];
    float slp[2][100];
    for (int k = 0; k < 2; k++) {
        SrBackend *be = bes[k];
        out[k] = gbuf(ny), r[k] = gbuf(N), dx[k] = new_randn(nx, 0.0f), dw[k] = gbuf(nw);
        db[k] = gbuf(OC), lse[k] = gbuf((size_t)H * N);
        memset(dw[k], 0, nw * 4);
        memset(db[k], 0, OC * 4);
        O->embedding_forward(be, out[k], ids, x, N, C);
        O->embedding_backward(be, dw[k], g, ids, N, C);
        O->rmsnorm_forward(be, out[k], r[k], x, w, N, C, 1e-6f);
        O->rmsnorm_backward(be, dx[k], db[k], g, x, w, r[k], N, C);
        O->matmul_forward(be, out[k] + 1, x, w, bias, N - 1, C, OC);
        O->matmul_backward(be, dx[k], dw[k], db[k], g, x, w, N, C, OC);
        O->rope_forward(be, dx[k], pos, N, H, D, 10000.0f);
        O->rope_backward(be, dw[k], pos, N, H, D, 10000.0f);
        O->attention_forward(be, out[k], lse[k], x, w, g, pos, N, H, 1, D); /* C = 4 * 32 */
        /* q = x [N, 4*32], k = w and v = g [N, 32]; dk, dv in dw */
        O->attention_backward(be, dx[k], dw[k], dw[k] + N * D, g, x, w, g, out[k], lse[k], pos, N,
                              H, 1, D);
        pgd[k] = gbuf((size_t)40 * H * 16);
        O->attention_paged(be, pgd[k], x, w, g, ppos, pseq, ptab, 4, 8, 40, H, 2, 16);
        O->swiglu_forward(be, out[k] + 7, x, w, nx - 7);
        O->swiglu_backward(be, dx[k], dw[k], g, x, w, nx);
        O->add(be, dw[k], dw[k], x, nx);
        logits[k] = new_copy(logit0, nl), lp[k] = gbuf(N);
        O->cross_entropy(be, lp[k], NULL, logits[k], t, wts, 0.3f, N, V);
        SrSampling sp[100]; /* mixed rows: greedy, top-p, top-k, both */
        for (int b = 0; b < N; b++) {
            rng[k][b] = sr_rng_stream(5, b);
            sp[b] = (SrSampling){b % 4 == 0 ? 0.0f : 0.9f, b % 4 >= 2 ? 20 : 0,
                                 b % 2 ? 0.9f : 1.0f};
        }
        O->sample(be, sid[k], slp[k], logit0, N, V, V, sp, rng[k]);
        m[k] = gbuf(nx), v[k] = gbuf(nx);
        memset(m[k], 0, nx * 4);
        memset(v[k], 0, nx * 4);
        O->adamw(be, dx[k], dx[k], dw[k], m[k], v[k], nx, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.5f,
                 1);
    }
    CHECK(same_bits(out[0], out[1], ny * 4));
    CHECK(same_bits(r[0], r[1], N * 4));
    CHECK(same_bits(dx[0], dx[1], nx * 4));
    CHECK(same_bits(dw[0], dw[1], nw * 4));
    CHECK(same_bits(db[0], db[1], OC * 4));
    CHECK(same_bits(lse[0], lse[1], (size_t)H * N * 4));
    CHECK(same_bits(pgd[0], pgd[1], (size_t)40 * H * 16 * 4) && !has_nan(pgd[0], 40 * H * 16));
    CHECK(same_bits(logits[0], logits[1], nl * 4) && same_bits(lp[0], lp[1], N * 4));
    CHECK(same_bits(sid[0], sid[1], sizeof sid[0]) && same_bits(slp[0], slp[1], sizeof slp[0]));
    CHECK(same_bits(rng[0], rng[1], sizeof rng[0]));
    CHECK(same_bits(m[0], m[1], nx * 4) && same_bits(v[0], v[1], nx * 4));
    CHECK(!has_nan(dx[0], nx) && !has_nan(out[0], ny));
    CHECK(guards_ok());
    gbuf_free_all();
}

int main(void) {
    SrError err;
    if (sr_backend_init(&g_be, "cpu", 0, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    O = g_be.ops;
    CHECK(g_be.act_dtype == SR_F32 && sr_act_size(&g_be) == 4);
    /* one thread for the many small calls below (an OpenMP team per tiny call only costs
     * time, mostly spinning, on a busy machine); test_threads and the determinism checks run
     * the parallel paths with 3 threads and compare bits */
    g_be.n_threads = 1;

    test_memory();
    test_embedding();
    test_rmsnorm_case(1, 5);
    test_rmsnorm_case(7, 64);
    test_rmsnorm_case(33, 67);
    test_matmul_case(1, 5, 3, 1);
    test_matmul_case(7, 64, 5, 1);
    test_matmul_case(33, 17, 70, 0);
    test_matmul_case(9, 130, 33, 1);
    test_rope();
    test_attention();
    test_swiglu();
    test_cross_entropy();
    test_sample();
    test_sample_topp_exact();
    test_sample_mixed_rows();
    test_adamw();
    test_sum_squares();
    test_threads();

    sr_backend_free(&g_be);
    return sr_test_done();
}
