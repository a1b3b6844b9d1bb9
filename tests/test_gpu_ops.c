/*
 * The CUDA op table against the CPU op table (the specification), in the style of ggml's
 * test-backend-ops:
 *   - every op runs on both backends on the same random inputs (rounded to bf16 first, so both
 *     see identical values), at several shapes including odd ones;
 *   - results are compared by normalised mean squared error  ||gpu - cpu||^2 / ||cpu||^2  with a
 *     per-op tolerance (bf16 outputs: one bf16 rounding is ~1e-6, so 1e-4 leaves room for
 *     fp32 reassociation yet catches any real bug, which gives 1e-2 and up; fp32 outputs such as
 *     rstd, lse and log-probs: 1e-9); NaN fails;
 *   - backward ops start from random pre-filled gradients on both sides (they must ADD);
 *   - every GPU buffer has guard regions filled with a sentinel, checked after each case;
 *   - sampling: greedy ids equal the CPU argmax, and sampled ids and the advanced RNG states
 *     equal the CPU sampler's for the same seeds (top-k, top-p, ties, host and device RNG);
 *   - determinism: the ops that promise it give the same bits on a second run.
 * Both attention implementations are checked (tiled by default, then SR_CUDA_ATTN=simple).
 *
 * SR_GPU_PERF=1 also prints timings of the heavy ops (matmul, attention, cross-entropy, sample).
 * Without a GPU (or without CUDA compiled in) the test prints "skipped: no GPU" and exits 77,
 * which ctest counts as skipped. With a GPU it fails if it compared nothing.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/dtype.h"
#include "../common/rng.h"
#include "../kernels/ops.h"
#include "harness.h"

#if defined(__SANITIZE_ADDRESS__)
/* the CUDA driver maps memory where ASan keeps its shadow gap, and leaks on purpose */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "protect_shadow_gap=0:detect_leaks=0"; }
#endif

#ifndef SR_WITH_CUDA
int main(void) {
    printf("skipped: no GPU (this build has no CUDA backend)\n");
    return 77;
}
#else

static SrBackend g_cpu, g_gpu;
static const SrOps *CO, *GO; /* cpu, gpu op tables */
static long g_ncmp;          /* comparisons made */

/* ---- random data ---------------------------------------------------------------------------- */

static uint64_t g_rng = 20250611;

static float randn(void) { return sr_rng_normal(&g_rng); }
static int randint(int n) { return (int)(sr_rng_u64(&g_rng) % (uint64_t)n); }
static float bf16_round(float x) { return sr_bf16_to_f32(sr_f32_to_bf16(x)); }

/* n bf16-representable normal values times scale (malloc'd) */
static float *host_randn(size_t n, float scale) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    SR_ASSERT(x);
    for (size_t i = 0; i < n; i++) x[i] = bf16_round(scale * randn());
    return x;
}

static void random_docs(int32_t *pos, int N, int maxdoc) {
    int i = 0;
    while (i < N) {
        int len = 1 + randint(maxdoc);
        for (int p = 0; p < len && i < N; p++) pos[i++] = p;
    }
}

/* ---- guarded GPU buffers, paired CPU buffers ------------------------------------------------ */

#define DGUARD 256      /* bytes before and after each GPU buffer */
#define GUARD_BYTE 0xA5 /* sentinel */
#define MAX_BUFS 256

typedef struct {
    char *base;
    size_t total; /* whole allocation */
    size_t off;   /* payload start (guard before it) */
    size_t bytes; /* payload size */
} DevBuf;

static DevBuf g_dev[MAX_BUFS];
static int g_ndev;
static void *g_host[MAX_BUFS]; /* CPU-backend buffers */
static int g_nhost;

/* `bytes` of GPU memory starting `off` bytes past a 256-aligned address, with sentinel bytes
 * everywhere else in the allocation (at least DGUARD before and after) */
static void *dev_alloc_off(size_t bytes, size_t off) {
    SR_ASSERT(g_ndev < MAX_BUFS);
    size_t total = DGUARD + off + bytes + DGUARD;
    char *base = GO->alloc(&g_gpu, total);
    unsigned char *pat = malloc(total);
    SR_ASSERT(pat);
    memset(pat, GUARD_BYTE, total);
    GO->upload(&g_gpu, base, pat, total); /* the payload is set by the caller afterwards */
    free(pat);
    g_dev[g_ndev++] = (DevBuf){base, total, DGUARD + off, bytes};
    return base + DGUARD + off;
}

static void *dev_alloc(size_t bytes) { return dev_alloc_off(bytes, 0); }

static void *host_alloc(size_t bytes) {
    SR_ASSERT(g_nhost < MAX_BUFS);
    void *p = CO->alloc(&g_cpu, bytes);
    g_host[g_nhost++] = p;
    return p;
}

/* 1 iff every byte outside the payload of every live GPU buffer still holds the sentinel */
static int guards_ok(void) {
    int ok = 1;
    for (int b = 0; b < g_ndev && ok; b++) {
        const DevBuf *d = &g_dev[b];
        unsigned char *buf = malloc(d->total);
        SR_ASSERT(buf);
        GO->download(&g_gpu, buf, d->base, d->total);
        for (size_t i = 0; i < d->total; i++)
            if (i < d->off || i >= d->off + d->bytes) ok &= buf[i] == GUARD_BYTE;
        free(buf);
    }
    return ok;
}

/* end of a test case: guards must be intact; frees every buffer */
static void case_end(const char *what) {
    CHECKF(guards_ok(), "%s: a GPU kernel wrote outside its output buffer", what);
    for (int b = 0; b < g_ndev; b++) GO->free(&g_gpu, g_dev[b].base);
    for (int b = 0; b < g_nhost; b++) CO->free(&g_cpu, g_host[b]);
    g_ndev = g_nhost = 0;
}

/* an act buffer on both backends */
typedef struct {
    float *c; /* cpu (float) */
    void *g;  /* gpu (bf16) */
    size_t n;
} Act;

static Act act_new(size_t n) {
    Act a = {host_alloc(n * sizeof(float)), dev_alloc(n * 2), n};
    return a;
}

/* host values (bf16-representable) into both */
static void act_set(Act a, const float *h) {
    CO->upload_act(&g_cpu, a.c, h, a.n);
    GO->upload_act(&g_gpu, a.g, h, a.n);
}

static Act act_randn(size_t n, float scale) {
    Act a = act_new(n);
    float *h = host_randn(n, scale);
    act_set(a, h);
    free(h);
    return a;
}

/* an f32 or i32 buffer on both, same bytes */
typedef struct {
    void *c, *g;
    size_t bytes;
} Raw;

static Raw raw_new(const void *h, size_t bytes) {
    Raw r = {host_alloc(bytes), dev_alloc(bytes), bytes};
    if (h) {
        CO->upload(&g_cpu, r.c, h, bytes);
        GO->upload(&g_gpu, r.g, h, bytes);
    }
    return r;
}

/* ---- comparison -------------------------------------------------------------------------------- */

/* ||a - b||^2 / ||b||^2, +inf on NaN/inf in either */
static double nmse(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return num / den;
}

static void cmp_vals(const char *what, const float *gpu, const float *cpu, size_t n, double tol) {
    double e = nmse(gpu, cpu, n);
    g_ncmp++;
    CHECKF(e <= tol, "%s: nmse %.3g > tol %.1g (n %zu)", what, e, tol, n);
}

static void cmp_act(const char *what, Act a, double tol) {
    float *hg = malloc(a.n * sizeof(float) + 1), *hc = malloc(a.n * sizeof(float) + 1);
    SR_ASSERT(hg && hc);
    GO->download_act(&g_gpu, hg, a.g, a.n);
    CO->download_act(&g_cpu, hc, a.c, a.n);
    cmp_vals(what, hg, hc, a.n, tol);
    free(hg);
    free(hc);
}

static void cmp_f32(const char *what, Raw r, double tol) {
    size_t n = r.bytes / 4;
    float *hg = malloc(r.bytes + 1), *hc = malloc(r.bytes + 1);
    SR_ASSERT(hg && hc);
    GO->download(&g_gpu, hg, r.g, r.bytes);
    CO->download(&g_cpu, hc, r.c, r.bytes);
    cmp_vals(what, hg, hc, n, tol);
    free(hg);
    free(hc);
}

/* bitwise equality of two GPU act buffers (determinism) */
static int dev_equal(const void *a, const void *b, size_t bytes) {
    char *ha = malloc(bytes + 1), *hb = malloc(bytes + 1);
    SR_ASSERT(ha && hb);
    GO->download(&g_gpu, ha, a, bytes);
    GO->download(&g_gpu, hb, b, bytes);
    int eq = memcmp(ha, hb, bytes) == 0;
    free(ha);
    free(hb);
    return eq;
}

#define TOL_ACT 1e-4  /* bf16 outputs */
#define TOL_ATTN 5e-4 /* attention: P rounded to bf16 before P.V in the tiled kernels */
#define TOL_F32 1e-9  /* fp32 outputs */

/* ---- memory ----------------------------------------------------------------------------------- */

static void test_memory(void) {
    /* alloc is zero-filled */
    size_t n = 1000;
    void *g = GO->alloc(&g_gpu, n * 2);
    uint16_t *h = malloc(n * 2);
    GO->download(&g_gpu, h, g, n * 2);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= h[i] == 0;
    CHECK(zero);
    /* upload_act rounds exactly like sr_f32_to_bf16 (halfway cases, NaN, inf, subnormals) */
    float src[12] = {1.0f, 1.00390625f /* halfway: 1 + 2^-8, rounds to even 1.0 */,
                     1.01171875f /* 1 + 3*2^-8, halfway, rounds up */, -3.14159f, 1e-40f, 65504.f,
                     INFINITY, -INFINITY, NAN, 3.0e38f, -0.0f, 0.3333333f};
    GO->upload_act(&g_gpu, g, src, 12);
    GO->download(&g_gpu, h, g, 24);
    int same = 1;
    for (int i = 0; i < 12; i++) {
        uint16_t want = sr_f32_to_bf16(src[i]);
        if (isnan(src[i])) same &= (h[i] & 0x7fff) > 0x7f80;
        else same &= h[i] == want;
    }
    CHECKF(same, "upload_act must round to nearest even exactly as common/dtype.h");
    float back[12];
    GO->download_act(&g_gpu, back, g, 12);
    int rt = 1;
    for (int i = 0; i < 12; i++)
        if (!isnan(src[i])) rt &= back[i] == bf16_round(src[i]);
    CHECK(rt);
    /* zero, copy, raw upload/download */
    uint8_t pat[100];
    for (int i = 0; i < 100; i++) pat[i] = (uint8_t)(i * 7 + 1);
    void *g2 = GO->alloc(&g_gpu, 100);
    GO->upload(&g_gpu, g, pat, 100);
    GO->copy(&g_gpu, g2, g, 100);
    GO->zero(&g_gpu, g, 50);
    uint8_t out[100];
    GO->download(&g_gpu, out, g2, 100);
    CHECK(memcmp(out, pat, 100) == 0);
    GO->download(&g_gpu, out, g, 100);
    int z = 1;
    for (int i = 0; i < 50; i++) z &= out[i] == 0;
    CHECK(z && memcmp(out + 50, pat + 50, 50) == 0);
    GO->free(&g_gpu, g);
    GO->free(&g_gpu, g2);
    free(h);
    CHECK(sr_act_size(&g_gpu) == 2 && g_gpu.act_dtype == SR_BF16);
}

/* ---- embedding -------------------------------------------------------------------------------- */

static void test_embedding_case(int N, int C, int V) {
    char what[96];
    Act wte = act_randn((size_t)V * C, 1.0f);
    int32_t *ids = malloc((size_t)N * 4);
    for (int i = 0; i < N; i++) ids[i] = randint(V); /* V small: many repeats */
    Raw rids = raw_new(ids, (size_t)N * 4);
    Act out = act_new((size_t)N * C);
    CO->embedding_forward(&g_cpu, out.c, rids.c, wte.c, N, C);
    GO->embedding_forward(&g_gpu, out.g, rids.g, wte.g, N, C);
    snprintf(what, sizeof what, "embedding_forward N=%d C=%d", N, C);
    cmp_act(what, out, 0.0); /* a copy: exact */

    Act dout = act_randn((size_t)N * C, 1.0f);
    Act dwte = act_randn((size_t)V * C, 0.5f); /* pre-filled: the op adds */
    void *dwte2 = dev_alloc((size_t)V * C * 2);
    GO->copy(&g_gpu, dwte2, dwte.g, (size_t)V * C * 2);
    CO->embedding_backward(&g_cpu, dwte.c, dout.c, rids.c, N, C);
    GO->embedding_backward(&g_gpu, dwte.g, dout.g, rids.g, N, C);
    GO->embedding_backward(&g_gpu, dwte2, dout.g, rids.g, N, C);
    snprintf(what, sizeof what, "embedding_backward N=%d C=%d V=%d", N, C, V);
    cmp_act(what, dwte, TOL_ACT);
    CHECKF(dev_equal(dwte.g, dwte2, (size_t)V * C * 2), "%s: not deterministic", what);
    free(ids);
    case_end(what);
}

/* ---- RMSNorm ------------------------------------------------------------------------------------ */

static void test_rmsnorm_case(int N, int C) {
    char what[96];
    float eps = 1e-6f;
    Act x = act_randn((size_t)N * C, 1.5f);
    Act w = act_randn(C, 1.0f);
    Act out = act_new((size_t)N * C);
    Raw rstd = raw_new(NULL, (size_t)N * 4);
    CO->rmsnorm_forward(&g_cpu, out.c, rstd.c, x.c, w.c, N, C, eps);
    GO->rmsnorm_forward(&g_gpu, out.g, rstd.g, x.g, w.g, N, C, eps);
    snprintf(what, sizeof what, "rmsnorm_forward N=%d C=%d", N, C);
    cmp_act(what, out, TOL_ACT);
    snprintf(what, sizeof what, "rmsnorm_forward rstd N=%d C=%d", N, C);
    cmp_f32(what, rstd, TOL_F32);
    /* NULL rstd is allowed */
    GO->rmsnorm_forward(&g_gpu, out.g, NULL, x.g, w.g, N, C, eps);

    /* backward on the CPU's rstd (the same input on both sides) */
    float *h_rstd = malloc((size_t)N * 4);
    CO->download(&g_cpu, h_rstd, rstd.c, (size_t)N * 4);
    Raw rs = raw_new(h_rstd, (size_t)N * 4);
    Act dout = act_randn((size_t)N * C, 1.0f);
    Act dx = act_randn((size_t)N * C, 0.3f);
    Act dw = act_randn(C, 0.3f);
    CO->rmsnorm_backward(&g_cpu, dx.c, dw.c, dout.c, x.c, w.c, rs.c, N, C);
    GO->rmsnorm_backward(&g_gpu, dx.g, dw.g, dout.g, x.g, w.g, rs.g, N, C);
    snprintf(what, sizeof what, "rmsnorm_backward dx N=%d C=%d", N, C);
    cmp_act(what, dx, TOL_ACT);
    snprintf(what, sizeof what, "rmsnorm_backward dw N=%d C=%d", N, C);
    cmp_act(what, dw, TOL_ACT);
    free(h_rstd);
    case_end(what);
}

/* ---- matmul ---------------------------------------------------------------------------------- */

/* off_bytes shifts every GPU operand off 256-byte alignment (the model hands out sub-buffers) */
static void test_matmul_case(int N, int C, int OC, int with_bias, size_t off_bytes) {
    char what[128];
    Act inp = act_randn((size_t)N * C, 1.0f);
    Act w = act_randn((size_t)OC * C, 0.2f);
    Act bias = act_randn(OC, 1.0f);
    Act out = act_new((size_t)N * OC);
    if (off_bytes) { /* re-place the GPU copies at an offset */
        Act *bufs[3] = {&inp, &w, &bias};
        for (int b = 0; b < 3; b++) {
            void *g = dev_alloc_off(bufs[b]->n * 2, off_bytes);
            GO->copy(&g_gpu, g, bufs[b]->g, bufs[b]->n * 2);
            bufs[b]->g = g;
        }
        out.g = dev_alloc_off(out.n * 2, off_bytes);
    }
    const char *tag = off_bytes ? " misaligned" : "";
    CO->matmul_forward(&g_cpu, out.c, inp.c, w.c, with_bias ? bias.c : NULL, N, C, OC);
    GO->matmul_forward(&g_gpu, out.g, inp.g, w.g, with_bias ? bias.g : NULL, N, C, OC);
    snprintf(what, sizeof what, "matmul_forward N=%d C=%d OC=%d bias=%d%s", N, C, OC, with_bias,
             tag);
    cmp_act(what, out, TOL_ACT);

    Act dout = act_randn((size_t)N * OC, 1.0f);
    Act dinp = act_randn((size_t)N * C, 1.0f);
    Act dw = act_randn((size_t)OC * C, 1.0f);
    Act dbias = act_randn(OC, 1.0f);
    if (off_bytes) {
        Act *bufs[4] = {&dout, &dinp, &dw, &dbias};
        for (int b = 0; b < 4; b++) {
            void *g = dev_alloc_off(bufs[b]->n * 2, off_bytes);
            GO->copy(&g_gpu, g, bufs[b]->g, bufs[b]->n * 2);
            bufs[b]->g = g;
        }
    }
    CO->matmul_backward(&g_cpu, dinp.c, dw.c, with_bias ? dbias.c : NULL, dout.c, inp.c, w.c, N, C,
                        OC);
    GO->matmul_backward(&g_gpu, dinp.g, dw.g, with_bias ? dbias.g : NULL, dout.g, inp.g, w.g, N, C,
                        OC);
    snprintf(what, sizeof what, "matmul_backward dinp N=%d C=%d OC=%d%s", N, C, OC, tag);
    cmp_act(what, dinp, TOL_ACT);
    snprintf(what, sizeof what, "matmul_backward dw N=%d C=%d OC=%d%s", N, C, OC, tag);
    cmp_act(what, dw, TOL_ACT);
    if (with_bias) {
        snprintf(what, sizeof what, "matmul_backward dbias N=%d C=%d OC=%d%s", N, C, OC, tag);
        cmp_act(what, dbias, TOL_ACT);
    }
    /* NULL gradients: nothing written (dinp keeps its value) */
    float *before = malloc(dinp.n * sizeof(float));
    GO->download_act(&g_gpu, before, dinp.g, dinp.n);
    GO->matmul_backward(&g_gpu, NULL, dw.g, NULL, dout.g, inp.g, w.g, N, C, OC);
    float *after = malloc(dinp.n * sizeof(float));
    GO->download_act(&g_gpu, after, dinp.g, dinp.n);
    CHECK(memcmp(before, after, dinp.n * sizeof(float)) == 0);
    free(before);
    free(after);
    case_end(what);
}

/* ---- RoPE ---------------------------------------------------------------------------------------- */

static void test_rope_case(int N, int H, int D, float theta) {
    char what[96];
    int32_t *pos = malloc((size_t)N * 4);
    random_docs(pos, N, 300);
    Raw rpos = raw_new(pos, (size_t)N * 4);
    Act x = act_randn((size_t)N * H * D, 1.0f);
    CO->rope_forward(&g_cpu, x.c, rpos.c, N, H, D, theta);
    GO->rope_forward(&g_gpu, x.g, rpos.g, N, H, D, theta);
    snprintf(what, sizeof what, "rope_forward N=%d H=%d D=%d theta=%g", N, H, D, theta);
    cmp_act(what, x, TOL_ACT);
    Act dx = act_randn((size_t)N * H * D, 1.0f);
    CO->rope_backward(&g_cpu, dx.c, rpos.c, N, H, D, theta);
    GO->rope_backward(&g_gpu, dx.g, rpos.g, N, H, D, theta);
    snprintf(what, sizeof what, "rope_backward N=%d H=%d D=%d theta=%g", N, H, D, theta);
    cmp_act(what, dx, TOL_ACT);
    free(pos);
    case_end(what);
}

/* ---- attention ----------------------------------------------------------------------------------- */

/* maxdoc <= 0: one document of N tokens */
static void test_attention_case(int N, int Hq, int Hkv, int D, int maxdoc, const char *impl) {
    char what[160];
    int32_t *pos = malloc((size_t)N * 4);
    if (maxdoc > 0) random_docs(pos, N, maxdoc);
    else
        for (int i = 0; i < N; i++) pos[i] = i;
    Raw rpos = raw_new(pos, (size_t)N * 4);
    size_t nq = (size_t)N * Hq * D, nk = (size_t)N * Hkv * D;
    Act q = act_randn(nq, 1.0f), k = act_randn(nk, 1.0f), v = act_randn(nk, 1.0f);
    Act out = act_new(nq);
    Raw lse = raw_new(NULL, (size_t)Hq * N * 4);
    CO->attention_forward(&g_cpu, out.c, lse.c, q.c, k.c, v.c, rpos.c, N, Hq, Hkv, D);
    GO->attention_forward(&g_gpu, out.g, lse.g, q.g, k.g, v.g, rpos.g, N, Hq, Hkv, D);
    const char *shape = "N=%d Hq=%d Hkv=%d D=%d maxdoc=%d [%s]";
    char sh[96];
    snprintf(sh, sizeof sh, shape, N, Hq, Hkv, D, maxdoc, impl);
    snprintf(what, sizeof what, "attention_forward out %s", sh);
    cmp_act(what, out, TOL_ATTN);
    snprintf(what, sizeof what, "attention_forward lse %s", sh);
    cmp_f32(what, lse, TOL_F32);
    void *out2 = dev_alloc(nq * 2);
    GO->attention_forward(&g_gpu, out2, NULL, q.g, k.g, v.g, rpos.g, N, Hq, Hkv, D); /* no lse */
    snprintf(what, sizeof what, "attention_forward deterministic %s", sh);
    CHECKF(dev_equal(out.g, out2, nq * 2), "%s", what);

    /* backward, on the CPU's out and lse (the same inputs on both sides) */
    float *h_out = malloc(nq * sizeof(float)), *h_lse = malloc((size_t)Hq * N * 4);
    CO->download_act(&g_cpu, h_out, out.c, nq);
    for (size_t i = 0; i < nq; i++) h_out[i] = bf16_round(h_out[i]);
    CO->download(&g_cpu, h_lse, lse.c, (size_t)Hq * N * 4);
    Act o2 = act_new(nq);
    act_set(o2, h_out);
    Raw l2 = raw_new(h_lse, (size_t)Hq * N * 4);
    Act dout = act_randn(nq, 1.0f);
    Act dq = act_randn(nq, 0.5f), dk = act_randn(nk, 0.5f), dv = act_randn(nk, 0.5f);
    void *dk2 = dev_alloc(nk * 2);
    GO->copy(&g_gpu, dk2, dk.g, nk * 2);
    CO->attention_backward(&g_cpu, dq.c, dk.c, dv.c, dout.c, q.c, k.c, v.c, o2.c, l2.c, rpos.c, N,
                           Hq, Hkv, D);
    GO->attention_backward(&g_gpu, dq.g, dk.g, dv.g, dout.g, q.g, k.g, v.g, o2.g, l2.g, rpos.g, N,
                           Hq, Hkv, D);
    snprintf(what, sizeof what, "attention_backward dq %s", sh);
    cmp_act(what, dq, TOL_ATTN);
    snprintf(what, sizeof what, "attention_backward dk %s", sh);
    cmp_act(what, dk, TOL_ATTN);
    snprintf(what, sizeof what, "attention_backward dv %s", sh);
    cmp_act(what, dv, TOL_ATTN);
    /* dk only (dq, dv NULL), from the same pre-fill: must equal the full run's dk bitwise */
    GO->attention_backward(&g_gpu, NULL, dk2, NULL, dout.g, q.g, k.g, v.g, o2.g, l2.g, rpos.g, N,
                           Hq, Hkv, D);
    snprintf(what, sizeof what, "attention_backward dk-only deterministic %s", sh);
    CHECKF(dev_equal(dk.g, dk2, nk * 2), "%s", what);
    free(h_out);
    free(h_lse);
    free(pos);
    case_end(what);
}

static void test_attention_all(const char *impl) {
    test_attention_case(1, 2, 2, 64, 0, impl);
    test_attention_case(7, 6, 1, 64, 3, impl);
    test_attention_case(33, 4, 4, 128, 0, impl);
    test_attention_case(33, 12, 2, 128, 9, impl);
    test_attention_case(257, 12, 2, 128, 100, impl);
    test_attention_case(200, 6, 1, 64, 0, impl);
    test_attention_case(130, 2, 1, 128, 1, impl); /* every token its own document */
    test_attention_case(70, 4, 2, 80, 40, impl);  /* a head dim the tiled kernels may decline */
}

/* ---- KV cache + paged attention ---------------------------------------------------------- */

/* a decode step: B new rows stored at random slots of distinct sequences (one block of max_seq
 * positions each), then each sequence's last token attends to its whole cache */
static void test_decode_case(int B, int max_seq, int Hq, int Hkv, int D) {
    char what[128];
    int KVD = Hkv * D;
    size_t ncache = (size_t)B * max_seq * KVD;
    Act kc = act_randn(ncache, 1.0f), vc = act_randn(ncache, 1.0f);
    /* store B new rows at random slots of distinct sequences (a decode step) */
    int32_t *slot = malloc((size_t)B * 4), *pos = malloc((size_t)B * 4);
    int32_t *seq = malloc((size_t)B * 4), *table = malloc((size_t)B * 4);
    SR_ASSERT(slot && pos && seq && table);
    for (int b = 0; b < B; b++) {
        pos[b] = randint(max_seq);
        slot[b] = b * max_seq + pos[b];
        seq[b] = table[b] = b;
    }
    Raw rslot = raw_new(slot, (size_t)B * 4), rpos = raw_new(pos, (size_t)B * 4);
    Raw rseq = raw_new(seq, (size_t)B * 4), rtab = raw_new(table, (size_t)B * 4);
    Act k = act_randn((size_t)B * KVD, 1.0f), v = act_randn((size_t)B * KVD, 1.0f);
    CO->kv_store(&g_cpu, kc.c, vc.c, k.c, v.c, rslot.c, B, KVD);
    GO->kv_store(&g_gpu, kc.g, vc.g, k.g, v.g, rslot.g, B, KVD);
    snprintf(what, sizeof what, "kv_store B=%d max_seq=%d KVD=%d", B, max_seq, KVD);
    cmp_act(what, kc, 0.0);
    cmp_act(what, vc, 0.0);
    Act q = act_randn((size_t)B * Hq * D, 1.0f);
    Act out = act_new((size_t)B * Hq * D);
    CO->attention_paged(&g_cpu, out.c, q.c, kc.c, vc.c, rpos.c, rseq.c, rtab.c, 1, max_seq, B, Hq,
                        Hkv, D);
    GO->attention_paged(&g_gpu, out.g, q.g, kc.g, vc.g, rpos.g, rseq.g, rtab.g, 1, max_seq, B, Hq,
                        Hkv, D);
    snprintf(what, sizeof what, "attention_paged decode B=%d max_seq=%d Hq=%d Hkv=%d D=%d", B,
             max_seq, Hq, Hkv, D);
    cmp_act(what, out, TOL_ACT);
    free(slot);
    free(pos);
    free(seq);
    free(table);
    case_end(what);
}

/* paged catch-ups: nseq sequences of random lengths in blocks drawn at random from a pool
 * (scattered, repeats = shared blocks), the last Δ_s >= 0 positions of each queried; junk
 * everywhere else in the pool */
static void test_paged_case(int nseq, int maxlen, int block, int Hq, int Hkv, int D) {
    char what[128];
    int KVD = Hkv * D, max_blocks = (maxlen + block - 1) / block, n_blocks = nseq * max_blocks;
    Act kc = act_randn((size_t)n_blocks * block * KVD, 1.0f);
    Act vc = act_randn((size_t)n_blocks * block * KVD, 1.0f);
    int32_t *table = malloc((size_t)nseq * max_blocks * 4);
    int32_t *pos = malloc((size_t)nseq * maxlen * 4), *seq = malloc((size_t)nseq * maxlen * 4);
    SR_ASSERT(table && pos && seq);
    int N = 0;
    for (int s = 0; s < nseq; s++) {
        int len = 1 + randint(maxlen), delta = randint(len + 1);
        for (int b = 0; b < max_blocks; b++)
            table[s * max_blocks + b] = b * block < len ? randint(n_blocks) : -1;
        for (int p = len - delta; p < len; p++, N++) pos[N] = p, seq[N] = s;
    }
    if (N == 0) pos[0] = 0, seq[0] = 0, N = 1;
    Raw rpos = raw_new(pos, (size_t)N * 4), rseq = raw_new(seq, (size_t)N * 4);
    Raw rtab = raw_new(table, (size_t)nseq * max_blocks * 4);
    Act q = act_randn((size_t)N * Hq * D, 1.0f), out = act_new((size_t)N * Hq * D);
    CO->attention_paged(&g_cpu, out.c, q.c, kc.c, vc.c, rpos.c, rseq.c, rtab.c, max_blocks, block,
                        N, Hq, Hkv, D);
    GO->attention_paged(&g_gpu, out.g, q.g, kc.g, vc.g, rpos.g, rseq.g, rtab.g, max_blocks, block,
                        N, Hq, Hkv, D);
    snprintf(what, sizeof what, "attention_paged nseq=%d maxlen=%d block=%d N=%d Hq=%d Hkv=%d D=%d",
             nseq, maxlen, block, N, Hq, Hkv, D);
    cmp_act(what, out, TOL_ACT);
    free(table);
    free(pos);
    free(seq);
    case_end(what);
}

/* ---- elementwise ------------------------------------------------------------------------------- */

static void test_elementwise_case(size_t n) {
    char what[96];
    Act g = act_randn(n, 2.0f), u = act_randn(n, 1.0f), out = act_new(n);
    CO->swiglu_forward(&g_cpu, out.c, g.c, u.c, n);
    GO->swiglu_forward(&g_gpu, out.g, g.g, u.g, n);
    snprintf(what, sizeof what, "swiglu_forward n=%zu", n);
    cmp_act(what, out, TOL_ACT);
    Act dout = act_randn(n, 1.0f), dg = act_randn(n, 0.5f), du = act_randn(n, 0.5f);
    CO->swiglu_backward(&g_cpu, dg.c, du.c, dout.c, g.c, u.c, n);
    GO->swiglu_backward(&g_gpu, dg.g, du.g, dout.g, g.g, u.g, n);
    snprintf(what, sizeof what, "swiglu_backward dgate n=%zu", n);
    cmp_act(what, dg, TOL_ACT);
    snprintf(what, sizeof what, "swiglu_backward dup n=%zu", n);
    cmp_act(what, du, TOL_ACT);
    CO->add(&g_cpu, out.c, g.c, u.c, n);
    GO->add(&g_gpu, out.g, g.g, u.g, n);
    snprintf(what, sizeof what, "add n=%zu", n);
    cmp_act(what, out, TOL_ACT);
    CO->add(&g_cpu, g.c, g.c, u.c, n); /* out aliases a */
    GO->add(&g_gpu, g.g, g.g, u.g, n);
    snprintf(what, sizeof what, "add in place n=%zu", n);
    cmp_act(what, g, TOL_ACT);
    case_end(what);
}

/* ---- cross-entropy -------------------------------------------------------------------------------- */

static void test_cross_entropy_case(int N, int V, float scale, int with_weights, float grad_scale) {
    char what[128];
    Act logits = act_randn((size_t)N * V, scale);
    int32_t *t = malloc((size_t)N * 4);
    float *w = malloc((size_t)N * 4);
    for (int i = 0; i < N; i++) {
        t[i] = (i % 4 == 3) ? -1 : randint(V); /* some masked rows */
        w[i] = 0.25f + (float)randint(8) * 0.25f;
    }
    Raw rt = raw_new(t, (size_t)N * 4), rw = raw_new(w, (size_t)N * 4);
    Raw lp = raw_new(NULL, (size_t)N * 4), ent = raw_new(NULL, (size_t)N * 4);
    CO->cross_entropy(&g_cpu, lp.c, ent.c, logits.c, rt.c, with_weights ? rw.c : NULL,
                      grad_scale, N, V);
    GO->cross_entropy(&g_gpu, lp.g, ent.g, logits.g, rt.g, with_weights ? rw.g : NULL,
                      grad_scale, N, V);
    snprintf(what, sizeof what, "cross_entropy logprob N=%d V=%d w=%d gs=%g", N, V, with_weights,
             grad_scale);
    cmp_f32(what, lp, TOL_F32);
    snprintf(what, sizeof what, "cross_entropy entropy N=%d V=%d w=%d gs=%g", N, V, with_weights,
             grad_scale);
    cmp_f32(what, ent, TOL_F32);
    snprintf(what, sizeof what, "cross_entropy dlogits N=%d V=%d w=%d gs=%g", N, V, with_weights,
             grad_scale);
    cmp_act(what, logits, TOL_ACT); /* unchanged logits when grad_scale == 0 */
    free(t);
    free(w);
    case_end(what);
}

/* ---- sampling ---------------------------------------------------------------------------------- */

/* Row b samples with ss[b % ns] (ns > 1: greedy and sampled rows mixed in one call).
 * ties: logits drawn from a few values, so many tokens share z (exercises the group logic).
 * nv < V: only ids < nv are valid; the padding columns get large logits (and a NaN and a +inf),
 * which must never win. nan_rows: row 0 is all NaN, row 1 has NaNs among finite logits. */
static void test_sample_rows(int B, int V, int nv, const SrSampling *ss, int ns, int ties,
                             int device_rng, int nan_rows) {
    char what[200];
    SrSampling *sv = malloc((size_t)B * sizeof(SrSampling));
    for (int b = 0; b < B; b++) sv[b] = ss[b % ns];
    SrSampling s = ss[0];
    float *h = host_randn((size_t)B * V, 3.0f);
    if (ties)
        for (size_t i = 0; i < (size_t)B * V; i++) h[i] = (float)randint(6) * 0.5f;
    for (int b = 0; b < B; b++)
        for (int j = nv; j < V; j++) h[(size_t)b * V + j] = 50.0f + (float)(j % 7);
    if (nv < V) {
        h[nv] = NAN;
        h[(size_t)(B - 1) * V + V - 1] = INFINITY;
    }
    if (nan_rows && B >= 2) {
        for (int j = 0; j < nv; j++) h[j] = NAN;
        for (int j = 0; j < nv; j += 3) h[(size_t)V + j] = NAN;
    }
    Act logits = act_new((size_t)B * V);
    act_set(logits, h);
    uint64_t *rc = malloc((size_t)B * 8), *rg = malloc((size_t)B * 8);
    for (int b = 0; b < B; b++) rc[b] = rg[b] = sr_rng_stream(777 + (uint64_t)V, (uint64_t)b);
    int32_t *idc = malloc((size_t)B * 4), *idg = malloc((size_t)B * 4);
    float *lpc = malloc((size_t)B * 4), *lpg = malloc((size_t)B * 4);
    void *drng = NULL;
    if (device_rng) {
        drng = dev_alloc((size_t)B * 8);
        GO->upload(&g_gpu, drng, rg, (size_t)B * 8);
    }
    if (ns > 1)
        snprintf(what, sizeof what, "sample B=%d V=%d nv=%d mixed(%d) ties=%d devrng=%d nan=%d", B,
                 V, nv, ns, ties, device_rng, nan_rows);
    else
        snprintf(what, sizeof what,
                 "sample B=%d V=%d nv=%d T=%g k=%d p=%g ties=%d devrng=%d nan=%d", B, V, nv,
                 s.temperature, s.top_k, s.top_p, ties, device_rng, nan_rows);
    /* two rounds: the RNG states must advance identically */
    int mismatch = 0, invalid = 0, nan_bad = 0;
    for (int round = 0; round < 2; round++) {
        CO->sample(&g_cpu, idc, lpc, logits.c, B, V, nv, sv, rc);
        GO->sample(&g_gpu, idg, lpg, logits.g, B, V, nv, sv, device_rng ? drng : rg);
        for (int b = 0; b < B; b++) {
            mismatch += idc[b] != idg[b];
            invalid += idc[b] < 0 || idc[b] >= nv || idg[b] < 0 || idg[b] >= nv;
        }
        int b0 = 0;
        if (nan_rows) { /* the all-NaN row: id 0, log-prob NaN on both */
            nan_bad += idc[0] != 0 || idg[0] != 0 || !isnan(lpc[0]) || !isnan(lpg[0]);
            b0 = 1;
        }
        char w2[240];
        snprintf(w2, sizeof w2, "%s logprob", what);
        cmp_vals(w2, lpg + b0, lpc + b0, (size_t)(B - b0), TOL_F32);
    }
    if (device_rng) GO->download(&g_gpu, rg, drng, (size_t)B * 8);
    CHECKF(mismatch == 0, "%s: %d of %d ids differ from the CPU sampler", what, mismatch, 2 * B);
    CHECKF(invalid == 0, "%s: %d ids >= n_valid %d", what, invalid, nv);
    CHECKF(nan_bad == 0, "%s: the all-NaN row did not give id 0 with log-prob NaN", what);
    CHECKF(memcmp(rc, rg, (size_t)B * 8) == 0, "%s: RNG states advanced differently", what);
    g_ncmp++;
    free(sv);
    free(h);
    free(rc);
    free(rg);
    free(idc);
    free(idg);
    free(lpc);
    free(lpg);
    case_end(what);
}

static void test_sample_case_nv(int B, int V, int nv, SrSampling s, int ties, int device_rng,
                                int nan_rows) {
    test_sample_rows(B, V, nv, &s, 1, ties, device_rng, nan_rows);
}

static void test_sample_case(int B, int V, SrSampling s, int ties, int device_rng) {
    test_sample_case_nv(B, V, V, s, ties, device_rng, 0);
}

static void test_sampling(void) {
    SrSampling greedy = {0.0f, 0, 1.0f}, plain = {0.7f, 0, 1.0f}, topk = {1.0f, 50, 1.0f},
               topp = {0.6f, 0, 0.95f}, both = {0.8f, 20, 0.9f}, k1 = {1.0f, 1, 1.0f},
               p0 = {1.0f, 0, 0.0f}, pmid = {1.3f, 0, 0.5f}, hot = {1.5f, 0, 1.0f};
    int Vs[2] = {1000, 151936};
    for (int vi = 0; vi < 2; vi++) {
        int V = Vs[vi], B = vi == 0 ? 9 : 3;
        test_sample_case(B, V, greedy, 0, 0);
        test_sample_case(B, V, plain, 0, 0);
        test_sample_case(B, V, topk, 0, 0);
        test_sample_case(B, V, topp, 0, 0);
        test_sample_case(B, V, both, 0, 1);
    }
    test_sample_case(5, 1000, greedy, 1, 0); /* ties: lowest id wins */
    test_sample_case(5, 1000, topk, 1, 0);
    test_sample_case(5, 1000, topp, 1, 0);
    test_sample_case(5, 1000, pmid, 1, 1);
    test_sample_case(5, 1000, both, 1, 0);
    test_sample_case(4, 1000, k1, 0, 0);
    test_sample_case(4, 1000, p0, 0, 0);
    test_sample_case(4, 7, topp, 0, 0);
    /* a valid vocabulary smaller than the rows (R1-distill: 151936 rows, the tokenizer's ids
     * end before): the padding never wins, greedy or sampled */
    SrSampling nv_cases[] = {greedy, hot, topk, topp, both, p0};
    for (int ci = 0; ci < 6; ci++) {
        test_sample_case_nv(6, 151936, 151667, nv_cases[ci], 0, ci & 1, 0);
        test_sample_case_nv(5, 1000, 977, nv_cases[ci], ci == 2, 0, 1);
    }
    test_sample_case_nv(4, 64, 1, hot, 0, 0, 0); /* one valid id */
    /* per-row parameters: greedy, plain, top-k, top-p and both side by side in one launch */
    SrSampling mixed[] = {greedy, topp, plain, both, k1, pmid, topk, p0, hot};
    test_sample_rows(18, 151936, 151667, mixed, 9, 0, 0, 0);
    test_sample_rows(18, 151936, 151936, mixed, 9, 0, 1, 0);
    test_sample_rows(11, 1000, 977, mixed, 9, 1, 0, 1);
}

/* ---- optimizer ---------------------------------------------------------------------------------- */

static void test_adamw_case(size_t n) {
    char what[96];
    float *h = host_randn(n, 0.5f);
    Raw master = raw_new(h, n * 4);
    Raw m = raw_new(NULL, n * 4), v = raw_new(NULL, n * 4);
    Act param = act_new(n);
    for (int step = 1; step <= 3; step++) {
        Act grad = act_randn(n, 1.0f);
        CO->adamw(&g_cpu, master.c, master.c, grad.c, m.c, v.c, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f,
                  0.5f, step);
        GO->adamw(&g_gpu, param.g, master.g, grad.g, m.g, v.g, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f,
                  0.5f, step);
    }
    snprintf(what, sizeof what, "adamw master n=%zu", n);
    cmp_f32(what, master, 1e-12);
    snprintf(what, sizeof what, "adamw m n=%zu", n);
    cmp_f32(what, m, 1e-12);
    snprintf(what, sizeof what, "adamw v n=%zu", n);
    cmp_f32(what, v, 1e-12);
    /* param = bf16(master) */
    float *hm = malloc(n * 4), *hp = malloc(n * 4);
    GO->download(&g_gpu, hm, master.g, n * 4);
    GO->download_act(&g_gpu, hp, param.g, n);
    int same = 1;
    for (size_t i = 0; i < n; i++) same &= hp[i] == bf16_round(hm[i]);
    CHECKF(same, "adamw n=%zu: param is not bf16(master)", n);
    free(h);
    free(hm);
    free(hp);
    case_end(what);
}

static void test_sum_squares_case(size_t n) {
    Act x = act_randn(n, 1.0f);
    double c = CO->sum_squares(&g_cpu, x.c, n);
    double g1 = GO->sum_squares(&g_gpu, x.g, n), g2 = GO->sum_squares(&g_gpu, x.g, n);
    g_ncmp++;
    CHECKF(fabs(g1 - c) <= 1e-6 * c, "sum_squares n=%zu: gpu %.10g cpu %.10g", n, g1, c);
    CHECKF(g1 == g2, "sum_squares n=%zu: not deterministic", n);
    case_end("sum_squares");
}

/* ---- perf mode (SR_GPU_PERF=1): timings only, no assertions ----------------------------------- */

#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* secs = seconds per call, averaged over `reps` calls after one warm-up call */
#define TIME_OP(secs, reps, call)                              \
    do {                                                       \
        call;                                                  \
        GO->synchronize(&g_gpu);                               \
        double t0_ = now_s();                                  \
        for (int r_ = 0; r_ < (reps); r_++) call;              \
        GO->synchronize(&g_gpu);                               \
        secs = (now_s() - t0_) / (reps);                       \
    } while (0)

static void perf(void) {
    int N = 8192, C = 1536, I = 8960, V = 151936, Hq = 12, Hkv = 2, D = 128;
    double t;
    void *x = GO->alloc(&g_gpu, (size_t)N * I * 2), *w = GO->alloc(&g_gpu, (size_t)I * C * 2);
    void *y = GO->alloc(&g_gpu, (size_t)N * I * 2);
    TIME_OP(t, 5, GO->matmul_forward(&g_gpu, y, x, w, NULL, N, C, I));
    printf("perf matmul_forward N=%d C=%d OC=%d: %.3f ms, %.0f TFLOP/s\n", N, C, I, t * 1e3,
           2.0 * N * C * I / t / 1e12);
    TIME_OP(t, 5, GO->matmul_backward(&g_gpu, x, w, NULL, y, x, w, N, C, I));
    printf("perf matmul_backward: %.3f ms, %.0f TFLOP/s\n", t * 1e3, 4.0 * N * C * I / t / 1e12);
    int32_t *pos = malloc((size_t)N * 4);
    for (int i = 0; i < N; i++) pos[i] = i % 4096; /* two 4096-token documents */
    void *dpos = GO->alloc(&g_gpu, (size_t)N * 4);
    GO->upload(&g_gpu, dpos, pos, (size_t)N * 4);
    size_t nq = (size_t)N * Hq * D, nk = (size_t)N * Hkv * D;
    void *q = GO->alloc(&g_gpu, nq * 2), *k = GO->alloc(&g_gpu, nk * 2), *v = GO->alloc(&g_gpu, nk * 2);
    void *o = GO->alloc(&g_gpu, nq * 2), *dq = GO->alloc(&g_gpu, nq * 2);
    void *dk = GO->alloc(&g_gpu, nk * 2), *dv = GO->alloc(&g_gpu, nk * 2);
    float *lse = GO->alloc(&g_gpu, (size_t)Hq * N * 4);
    double flops = 4.0 * Hq * D * 2 * (4096.0 * 4097 / 2); /* causal, 2 docs */
    TIME_OP(t, 3, GO->attention_forward(&g_gpu, o, lse, q, k, v, dpos, N, Hq, Hkv, D));
    printf("perf attention_forward N=%d Hq=%d Hkv=%d D=%d: %.3f ms, %.0f TFLOP/s\n", N, Hq, Hkv,
           D, t * 1e3, flops / t / 1e12);
    TIME_OP(t, 3, GO->attention_backward(&g_gpu, dq, dk, dv, o, q, k, v, o, lse, dpos, N, Hq, Hkv,
                                         D));
    printf("perf attention_backward: %.3f ms, %.0f TFLOP/s (2.5x fwd flops)\n", t * 1e3,
           2.5 * flops / t / 1e12);
    void *logits = GO->alloc(&g_gpu, (size_t)256 * V * 2);
    int32_t *tg = calloc(256, 4);
    void *dtg = GO->alloc(&g_gpu, 256 * 4), *lp = GO->alloc(&g_gpu, 256 * 4);
    GO->upload(&g_gpu, dtg, tg, 256 * 4);
    TIME_OP(t, 5, GO->cross_entropy(&g_gpu, lp, NULL, logits, dtg, NULL, 1.0f, 256, V));
    printf("perf cross_entropy N=256 V=%d: %.3f ms, %.0f GB/s\n", V, t * 1e3,
           256.0 * V * 2 * 4 / t / 1e9);
    int32_t ids[8];
    float lps[8];
    uint64_t rs[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    SrSampling sp[8];
    for (int b = 0; b < 8; b++) sp[b] = (SrSampling){0.7f, 50, 0.95f};
    TIME_OP(t, 5, GO->sample(&g_gpu, ids, lps, logits, 8, V, V, sp, rs));
    printf("perf sample B=8 V=%d top-k+top-p: %.3f ms\n", V, t * 1e3);
    void *ptrs[] = {x, w, y, dpos, q, k, v, o, dq, dk, dv, lse, logits, dtg, lp};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) GO->free(&g_gpu, ptrs[i]);
    free(pos);
    free(tg);
}

/* ---- main --------------------------------------------------------------------------------------- */

static void run_all(void) {
    test_memory();
    test_embedding_case(1, 5, 3);
    test_embedding_case(7, 64, 4);
    test_embedding_case(257, 1536, 300);
    test_embedding_case(600, 2500, 40); /* C > 2048: several column passes; long repeats */

    int Ns[4] = {1, 7, 33, 257}, Cs[3] = {5, 64, 1536};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 3; b++) test_rmsnorm_case(Ns[a], Cs[b]);

    test_matmul_case(1, 5, 7, 1, 0);
    test_matmul_case(7, 64, 33, 0, 0);
    test_matmul_case(33, 1536, 257, 1, 0);
    test_matmul_case(257, 64, 1536, 1, 0);
    test_matmul_case(64, 1536, 256, 1, 0);
    test_matmul_case(33, 64, 96, 1, 2);  /* 2-byte aligned operands */
    test_matmul_case(40, 128, 64, 1, 16); /* 16-byte aligned operands */

    for (int a = 0; a < 4; a++) {
        test_rope_case(Ns[a], 2, 64, 10000.0f);
        test_rope_case(Ns[a], 12, 128, 1000000.0f);
    }

    test_attention_all("tiled");

    test_decode_case(1, 1, 2, 2, 64);
    test_decode_case(3, 40, 6, 1, 64);
    test_decode_case(5, 600, 12, 2, 128); /* several key chunks per sequence */
    test_decode_case(2, 1100, 4, 4, 128);
    test_paged_case(1, 1, 16, 2, 2, 64);
    test_paged_case(2, 300, 300, 4, 4, 128); /* one block a sequence, runs longer than 32 keys */
    test_paged_case(5, 77, 16, 8, 2, 128); /* GQA 4 */
    test_paged_case(3, 300, 7, 4, 4, 128); /* odd blocks, rows longer than 32 keys */
    test_paged_case(4, 50, 1, 4, 2, 80);   /* one position per block, an odd head dim */

    size_t ns[4] = {1, 7, 1000, 100003};
    for (int a = 0; a < 4; a++) test_elementwise_case(ns[a]);

    test_cross_entropy_case(1, 1000, 2.0f, 0, 1.0f);
    test_cross_entropy_case(7, 1000, 4.0f, 1, 0.125f);
    test_cross_entropy_case(8, 1000, 1.0f, 1, 0.0f);
    test_cross_entropy_case(3, 151936, 3.0f, 1, 0.01f);
    test_cross_entropy_case(4, 151936, 3.0f, 0, 0.0f);

    test_sampling();

    test_adamw_case(1);
    test_adamw_case(1000);
    test_adamw_case(100003);
    test_sum_squares_case(1);
    test_sum_squares_case(1000);
    test_sum_squares_case(5000003);
}

int main(void) {
    if (sr_cuda_device_count() == 0) {
        printf("skipped: no GPU\n");
        return 77;
    }
    SrError err;
    if (sr_backend_init(&g_cpu, "cpu", 0, &err) != 0 || sr_backend_init(&g_gpu, "cuda", 0, &err)) {
        fprintf(stderr, "FAIL: backend init: %s\n", err.msg);
        return 1;
    }
    char name[256];
    sr_cuda_device_name(0, name, sizeof name);
    printf("GPU 0: %s\n", name);
    CO = g_cpu.ops;
    GO = g_gpu.ops;
    if (getenv("SR_GPU_PERF")) perf();
    run_all();
    sr_backend_free(&g_gpu);

    /* the reference attention kernels */
    setenv("SR_CUDA_ATTN", "simple", 1);
    if (sr_backend_init(&g_gpu, "cuda", 0, &err) != 0) {
        fprintf(stderr, "FAIL: backend init: %s\n", err.msg);
        return 1;
    }
    GO = g_gpu.ops;
    test_attention_all("simple");
    sr_backend_free(&g_gpu);
    unsetenv("SR_CUDA_ATTN");
    sr_backend_free(&g_cpu);

    printf("%ld comparisons\n", g_ncmp);
    CHECKF(g_ncmp >= 150, "only %ld comparisons ran", g_ncmp);
    return sr_test_done();
}

#endif
