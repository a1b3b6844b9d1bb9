/*
 * The engine of one model (engine/engine.c) on a tiny random Qwen2, CPU backend:
 *   1. every pass (prefills, decode steps, catch-ups of Δ = 1, 2, 7, 33, sequences dropping
 *      out, a sequence restarted, all mixed in one pass) gives each sequence the last row of
 *      qwen2_logits over its whole history (rel err < 1e-5), and Δ tokens in one pass give
 *      what Δ one-token passes give;
 *   2. the same passes on another block layout (other block size, blocks around holes) give
 *      the same bits, and the full recomputation to rounding;
 *   3. fork: a forked sequence equals a separate prefill of the same tokens; writing into the
 *      fork (copy-on-write of the shared last block) leaves the source unchanged; a pass
 *      where every holder of a shared block writes copies it once less;
 *   4. truncate then re-feed equals never fed (also inside a shared block);
 *   5. blocks come back: the free count returns to the start;
 *   6. random life: 300 random news, forks, truncations, frees and passes on a small pool;
 *      engine_can_take agrees with engine_forward, and every row matches the recomputation;
 *      a full pool refuses (engine_can_take 0, engine_forward fails) and changes nothing;
 *      bad passes (ids, positions, repeats, dead sequences, too many tokens) too;
 *   7. a sequence's logits do not depend on the blocks it was given (bit for bit), nor on
 *      what else is in the pass (alone, among 63 others, admitted later: the same greedy
 *      token, logits to fp32 rounding: OpenBLAS's sgemm rounds a row differently for
 *      different row counts);
 *   8. engine_sample: greedy = argmax of engine_logits over ids < n_valid, log-probs =
 *      log_softmax on the host, per-row parameters = the sample op row by row;
 *      engine_logprob_of = log_softmax on the host (n_valid = V and < V);
 *   9. engine_open refuses budgets that hold no block or pass the memory limit.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "engine/engine.h"
#include "harness.h"
#include "model_fixture.h"

static Qwen2Config tiny_config(int V, int Hq, int Hkv, int max_pos) {
    Qwen2Config c = sr_test_qwen2_config(V, 32, 2, Hq, Hkv, 8, 40);
    c.max_position_embeddings = max_pos;
    return c;
}

static void randomize(Qwen2Model *m, uint64_t seed) { sr_test_randomize(m, seed); }

static Qwen2Model *tiny_model(SrBackend *be, int V, int Hq, int Hkv, int max_pos, uint64_t seed) {
    Qwen2Config cfg = tiny_config(V, Hq, Hkv, max_pos);
    Qwen2Model *m = calloc(1, sizeof *m);
    SrError err = {{0}};
    SR_ASSERT(qwen2_build(m, &cfg, be, &err) == 0);
    randomize(m, seed);
    return m;
}

static void model_free(Qwen2Model *m) {
    qwen2_free(m);
    free(m);
}

static Engine *open_engine(Qwen2Model *m, int n_blocks, int block, int max_seqs, int max_tokens) {
    EngineOptions o = {.kv_bytes = (size_t)n_blocks * block * engine_kv_bytes_per_token(m),
                       .block_size = block,
                       .max_seqs = max_seqs,
                       .max_tokens = max_tokens};
    Engine *e = NULL;
    SrError err = {{0}};
    CHECKF(engine_open(&e, m, &o, &err) == 0, "engine_open: %s", err.msg);
    SR_ASSERT(e);
    return e;
}

static int32_t rand_id(uint64_t *rng, int V) {
    return (int32_t)(sr_rng_u64(rng) % (uint64_t)V);
}

/* the last row of qwen2_logits over ids[0, T) */
static float *full_last(Qwen2Model *m, const int32_t *ids, int T) {
    int V = m->cfg.vocab_size;
    int32_t *pos = malloc((size_t)T * sizeof(int32_t));
    float *full = malloc((size_t)T * V * sizeof(float)), *row = malloc((size_t)V * sizeof(float));
    for (int i = 0; i < T; i++) pos[i] = i;
    SrError err = {{0}};
    SR_ASSERT(qwen2_logits(m, ids, pos, T, full, &err) == 0);
    memcpy(row, full + (size_t)(T - 1) * V, (size_t)V * sizeof(float));
    free(pos);
    free(full);
    return row;
}

/* one engine_forward and its nseq logits rows (malloc'd) */
static float *pass(Engine *e, int nseq, const int *seqs, const int *n, const int32_t *ids,
                   const char *what) {
    int V = engine_model(e)->cfg.vocab_size;
    SrError err = {{0}};
    CHECKF(engine_can_take(e, nseq, seqs, n) == 1, "%s: engine_can_take says no", what);
    CHECKF(engine_forward(e, nseq, seqs, n, ids, &err) == 0, "%s: %s", what, err.msg);
    float *lg = malloc((size_t)nseq * V * sizeof(float));
    CHECKF(engine_logits(e, nseq, lg, &err) == 0, "%s: %s", what, err.msg);
    return lg;
}

/* ---- 1. against full recomputation ------------------------------------------------------ */

#define MAXH 200

typedef struct Hist {
    int32_t ids[MAXH];
    int n, seq;
} Hist;

static double worst_full = 0;

/* feeds d[j] new random tokens to sequence h[j] for the j with d[j] > 0, in one pass, and
 * checks every fed sequence against the full recomputation */
static void round_full(Engine *e, Hist *h, int nh, const int *d, uint64_t *rng, const char *what) {
    Qwen2Model *m = engine_model(e);
    int V = m->cfg.vocab_size, seqs[16], n[16], nseq = 0, total = 0, who[16];
    int32_t ids[16 * MAXH];
    for (int j = 0; j < nh; j++) {
        if (d[j] == 0) continue;
        for (int i = 0; i < d[j]; i++) {
            ids[total] = rand_id(rng, V);
            h[j].ids[h[j].n + i] = ids[total++];
        }
        seqs[nseq] = h[j].seq;
        n[nseq] = d[j];
        who[nseq++] = j;
    }
    float *lg = pass(e, nseq, seqs, n, ids, what);
    for (int r = 0; r < nseq; r++) {
        Hist *hj = &h[who[r]];
        hj->n += n[r];
        CHECKF(engine_seq_len(e, hj->seq) == hj->n, "%s: length %d, expected %d", what,
               engine_seq_len(e, hj->seq), hj->n);
        float *ref = full_last(m, hj->ids, hj->n);
        double err = sr_rel_err(lg + (size_t)r * V, ref, (size_t)V);
        CHECKF(err < 1e-5, "%s: sequence %d (%d tokens): engine vs full logits rel err %.3g",
               what, who[r], hj->n, err);
        if (!(err <= worst_full)) worst_full = err;
        free(ref);
    }
    free(lg);
}

static void test_full(SrBackend *be, int Hq, int Hkv, int block) {
    Qwen2Model *m = tiny_model(be, 61, Hq, Hkv, 256, 7 + (uint64_t)Hkv);
    Engine *e = open_engine(m, 4 * 80 / block + 8, block, 8, 512);
    int free0 = engine_free_blocks(e);
    Hist h[4];
    memset(h, 0, sizeof h);
    for (int j = 0; j < 4; j++) h[j].seq = engine_seq_new(e);
    uint64_t rng = 42;
    int rounds[][4] = {
        {5, 11, 3, 0},  /* prefills (sequence 3 waits) */
        {1, 1, 1, 0},   /* decode */
        {2, 0, 1, 9},   /* two tokens, a drop-out, a decode, a prefill: one pass */
        {1, 0, 4, 1},   /* a catch-up of 4 */
        {0, 1, 0, 0},   /* only one */
        {7, 2, 33, 1},  /* catch-ups of 7, 2, 33 and a decode */
        {1, 1, 1, 1},
    };
    char what[64];
    for (int r = 0; r < (int)(sizeof rounds / sizeof rounds[0]); r++) {
        snprintf(what, sizeof what, "round %d (Hq=%d Hkv=%d block=%d)", r, Hq, Hkv, block);
        round_full(e, h, 4, rounds[r], &rng, what);
    }
    /* restart sequence 0 with a new prompt while the others decode: free it, take a new one */
    engine_seq_free(e, h[0].seq);
    h[0].seq = engine_seq_new(e);
    h[0].n = 0;
    int re[4] = {6, 1, 1, 2};
    round_full(e, h, 4, re, &rng, "re-prefill + decode");
    int after[4] = {1, 0, 1, 1};
    round_full(e, h, 4, after, &rng, "decode after re-prefill");
    for (int j = 0; j < 4; j++) engine_seq_free(e, h[j].seq);
    CHECKF(engine_free_blocks(e) == free0, "blocks given back: %d free, %d at the start",
           engine_free_blocks(e), free0);
    engine_close(e);
    model_free(m);
}

/* Δ tokens in one pass give the logits of Δ one-token passes (two engines, the same prompts) */
static void test_one_pass(SrBackend *be, int Hq, int Hkv) {
    Qwen2Model *m = tiny_model(be, 61, Hq, Hkv, 256, 21);
    int V = m->cfg.vocab_size;
    Engine *ea = open_engine(m, 64, 8, 4, 256), *eb = open_engine(m, 64, 8, 4, 256);
    int sa[3], sb[3];
    for (int j = 0; j < 3; j++) sa[j] = engine_seq_new(ea), sb[j] = engine_seq_new(eb);
    uint64_t rng = 9;
    int rounds[][3] = {{5, 11, 3}, {1, 1, 1}, {2, 2, 2}, {7, 1, 7}, {33, 1, 1}, {1, 7, 2}};
    int32_t ids[3 * 40];
    for (int r = 0; r < (int)(sizeof rounds / sizeof rounds[0]); r++) {
        const int *d = rounds[r];
        int total = 0, off[3];
        for (int j = 0; j < 3; j++) {
            off[j] = total;
            for (int i = 0; i < d[j]; i++) ids[total++] = rand_id(&rng, V);
        }
        float *la = pass(ea, 3, sa, d, ids, "one pass");
        float *lb = malloc((size_t)3 * V * sizeof(float));
        if (r == 0) { /* the prompts go in whole on both */
            free(lb);
            lb = pass(eb, 3, sb, d, ids, "prompts");
        } else {
            for (int j = 0; j < 3; j++)
                for (int t = 0; t < d[j]; t++) {
                    int one = 1;
                    float *l1 = pass(eb, 1, &sb[j], &one, &ids[off[j] + t], "one token");
                    if (t == d[j] - 1) memcpy(lb + (size_t)j * V, l1, (size_t)V * sizeof(float));
                    free(l1);
                }
        }
        for (int j = 0; j < 3; j++) {
            double err = sr_rel_err(la + (size_t)j * V, lb + (size_t)j * V, (size_t)V);
            CHECKF(err < 1e-5, "round %d (Hq=%d Hkv=%d): sequence %d, Δ %d: one pass vs per "
                   "token rel err %.3g", r, Hq, Hkv, j, d[j], err);
        }
        free(la);
        free(lb);
    }
    engine_close(ea);
    engine_close(eb);
    model_free(m);
}

/* ---- 2. the same passes on another block layout ------------------------------------------ */

/* Two engines run the same passes (prefills alone, decodes, catch-ups, drop-outs): one with
 * blocks of 4 taken in order, one with blocks of 3 taken around the holes that freed
 * sequences left. Every row must have the same bits on both (the same rows go through the
 * same ops; only where the keys live differs) and be the full recomputation to rounding. */
static void test_layout_bits(SrBackend *be) {
    Qwen2Model *m = tiny_model(be, 61, 4, 2, 256, 33);
    int V = m->cfg.vocab_size;
    enum { B = 3 };
    Engine *e = open_engine(m, 64, 4, 4, 256), *f = open_engine(m, 96, 3, 6, 256);
    /* f: two sequences take the first blocks, one is freed, so f's blocks are not in order */
    uint64_t rng = 5;
    int pad[2], pn[2] = {7, 5};
    int32_t pids[12];
    for (int i = 0; i < 12; i++) pids[i] = rand_id(&rng, V);
    for (int j = 0; j < 2; j++) pad[j] = engine_seq_new(f);
    free(pass(f, 2, pad, pn, pids, "padding"));
    engine_seq_free(f, pad[0]);
    Hist h[B];
    int sf[B];
    for (int b = 0; b < B; b++) {
        h[b].seq = engine_seq_new(e);
        h[b].n = 0;
        sf[b] = engine_seq_new(f);
    }
    int rounds[][B] = {{5, 11, 3}, {1, 1, 1}, {2, 0, 1}, {1, 0, 4}, {0, 1, 0}, {7, 33, 2}};
    int32_t ids[B * 40];
    for (int r = 0; r < (int)(sizeof rounds / sizeof rounds[0]); r++) {
        const int *d = rounds[r];
        int total = 0, nseq = 0, es[B], fs[B], en[B], who[B];
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < d[b]; i++) ids[total++] = h[b].ids[h[b].n + i] = rand_id(&rng, V);
            if (d[b] > 0) {
                who[nseq] = b;
                es[nseq] = h[b].seq;
                fs[nseq] = sf[b];
                en[nseq++] = d[b];
            }
        }
        float *le = pass(e, nseq, es, en, ids, "layout bits");
        float *lf = pass(f, nseq, fs, en, ids, "layout bits, other layout");
        for (int i = 0; i < nseq; i++) {
            int b = who[i];
            h[b].n += d[b];
            CHECKF(memcmp(le + (size_t)i * V, lf + (size_t)i * V, (size_t)V * sizeof(float)) == 0,
                   "round %d: sequence %d (Δ %d): blocks of 4 in order vs blocks of 3 around "
                   "holes differ (rel err %.3g)", r, b, d[b],
                   sr_rel_err(le + (size_t)i * V, lf + (size_t)i * V, (size_t)V));
            float *ref = full_last(m, h[b].ids, h[b].n);
            double err = sr_rel_err(le + (size_t)i * V, ref, (size_t)V);
            CHECKF(err < 1e-5, "round %d: sequence %d (%d tokens): engine vs full logits rel "
                   "err %.3g", r, b, h[b].n, err);
            free(ref);
        }
        free(le);
        free(lf);
    }
    engine_close(e);
    engine_close(f);
    model_free(m);
}

/* ---- 3, 4, 5. fork, copy-on-write, truncate, blocks -------------------------------------- */

static int same_row(const float *a, const float *b, int V) {
    return memcmp(a, b, (size_t)V * sizeof(float)) == 0;
}

static void test_fork(SrBackend *be) {
    Qwen2Model *m = tiny_model(be, 61, 4, 2, 256, 44);
    int V = m->cfg.vocab_size, block = 4;
    Engine *e = open_engine(m, 40, block, 16, 256);
    int free0 = engine_free_blocks(e);
    uint64_t rng = 77;
    enum { P = 10 }; /* not a multiple of the block: the last block is shared half full */
    int32_t prompt[P], x = 3, y = 17, z[5] = {1, 2, 3, 4, 5};
    for (int i = 0; i < P; i++) prompt[i] = rand_id(&rng, V);
    int np = P, one = 1;

    /* a: the source; c: a separate prefill of the same prompt */
    int a = engine_seq_new(e), c = engine_seq_new(e);
    free(pass(e, 1, &a, &np, prompt, "prefill a"));
    free(pass(e, 1, &c, &np, prompt, "prefill c"));
    int before = engine_free_blocks(e);
    int b = engine_seq_fork(e, a);
    CHECK(b >= 0 && engine_seq_len(e, b) == P);
    CHECKF(engine_free_blocks(e) == before, "a fork takes no block (%d -> %d)", before,
           engine_free_blocks(e));
    CHECK(engine_blocks_needed(e, b, 1) == 1); /* the copy of the shared tail */
    CHECK(engine_blocks_needed(e, c, 1) == 0);
    /* the fork's next token == the separate prefill's */
    float *lb = pass(e, 1, &b, &one, &x, "fork + x");
    CHECKF(engine_free_blocks(e) == before - 1, "copy-on-write took one block (%d -> %d)", before,
           engine_free_blocks(e));
    float *lc = pass(e, 1, &c, &one, &x, "separate + x");
    CHECK(same_row(lb, lc, V));
    /* writing into the fork left the source alone: a + y == a fresh prefill + y */
    float *la = pass(e, 1, &a, &one, &y, "source + y");
    int d = engine_seq_new(e);
    free(pass(e, 1, &d, &np, prompt, "prefill d"));
    float *ld = pass(e, 1, &d, &one, &y, "fresh + y");
    CHECKF(same_row(la, ld, V), "the source changed when its fork was written (rel err %.3g)",
           sr_rel_err(la, ld, (size_t)V));
    int32_t hist[P + 1];
    memcpy(hist, prompt, sizeof prompt);
    hist[P] = y;
    float *ref = full_last(m, hist, P + 1);
    CHECK(sr_rel_err(la, ref, (size_t)V) < 1e-5);
    free(ref);
    free(la), free(lb), free(lc), free(ld);

    /* G = 5 samples of one prompt, each with its own next tokens, in one pass, and every
     * holder of the shared tail writing: the last one writes in place */
    int s = engine_seq_new(e);
    free(pass(e, 1, &s, &np, prompt, "prefill s"));
    int g[5];
    for (int i = 0; i < 5; i++) g[i] = i == 0 ? s : engine_seq_fork(e, s);
    int n5[5] = {1, 1, 1, 1, 1};
    int fb = engine_free_blocks(e);
    CHECK(engine_can_take(e, 5, g, n5) == 1);
    float *lg = pass(e, 5, g, n5, z, "5 forks");
    CHECKF(engine_free_blocks(e) == fb - 4, "5 holders of a shared tail writing took %d blocks, "
           "expected 4", fb - engine_free_blocks(e));
    for (int i = 0; i < 5; i++) {
        memcpy(hist, prompt, sizeof prompt);
        hist[P] = z[i];
        float *r = full_last(m, hist, P + 1);
        double err = sr_rel_err(lg + (size_t)i * V, r, (size_t)V);
        CHECKF(err < 1e-5, "fork %d vs full: rel err %.3g", i, err);
        free(r);
    }
    free(lg);

    /* truncate then re-feed == never fed: t gets prompt + 7 tokens, is cut back to the prompt,
     * then fed w; u gets prompt + w */
    int t = engine_seq_new(e), u = engine_seq_new(e);
    int32_t extra[7], w[3];
    for (int i = 0; i < 7; i++) extra[i] = rand_id(&rng, V);
    for (int i = 0; i < 3; i++) w[i] = rand_id(&rng, V);
    int n7 = 7, n3 = 3;
    free(pass(e, 1, &t, &np, prompt, "prefill t"));
    free(pass(e, 1, &t, &n7, extra, "t + 7"));
    int ft = engine_free_blocks(e);
    engine_seq_truncate(e, t, P);
    CHECK(engine_seq_len(e, t) == P);
    CHECKF(engine_free_blocks(e) == ft + 2, "truncating 17 -> 10 positions gave back %d blocks, "
           "expected 2", engine_free_blocks(e) - ft);
    float *lt = pass(e, 1, &t, &n3, w, "t re-fed");
    free(pass(e, 1, &u, &np, prompt, "prefill u"));
    float *lu = pass(e, 1, &u, &n3, w, "u fed");
    CHECKF(same_row(lt, lu, V), "truncate + re-feed is not never fed (rel err %.3g)",
           sr_rel_err(lt, lu, (size_t)V));
    free(lt), free(lu);

    /* truncate inside a shared block: the fork f of u is cut back into the shared block and
     * re-fed; u (which still holds those positions) must not change */
    int f = engine_seq_fork(e, u);
    engine_seq_truncate(e, f, P + 1);
    free(pass(e, 1, &f, &one, &x, "fork cut + x"));
    float *lu2 = pass(e, 1, &u, &one, &y, "u after its fork's rewrite");
    int32_t hu[P + 4];
    memcpy(hu, prompt, sizeof prompt);
    memcpy(hu + P, w, sizeof w);
    hu[P + 3] = y;
    float *ru = full_last(m, hu, P + 4);
    CHECKF(sr_rel_err(lu2, ru, (size_t)V) < 1e-5, "a fork's rewrite of a shared block changed "
           "its source (rel err %.3g)", sr_rel_err(lu2, ru, (size_t)V));
    free(lu2), free(ru);

    /* every block comes back */
    int all[] = {a, b, c, d, t, u, f, g[1], g[2], g[3], g[4], s};
    for (int i = 0; i < (int)(sizeof all / sizeof all[0]); i++) engine_seq_free(e, all[i]);
    CHECKF(engine_free_blocks(e) == free0, "blocks given back: %d free, %d at the start",
           engine_free_blocks(e), free0);
    engine_close(e);
    model_free(m);
}

/* Random life: 300 random operations (new, fork, truncate, free, passes of 1..4 sequences with
 * 1..9 tokens) on a small pool that runs full now and then. engine_can_take must agree with
 * engine_forward, a refused pass must change nothing, every fed sequence must match the full
 * recomputation of its history, and freeing everything gives every block back. */
#define LIVE 10

static void test_random_life(SrBackend *be, int block) {
    Qwen2Model *m = tiny_model(be, 61, 4, 2, 96, 123);
    int V = m->cfg.vocab_size;
    Engine *e = open_engine(m, 200 / block + 4, block, LIVE, 64);
    int free0 = engine_free_blocks(e);
    Hist h[LIVE];
    int used[LIVE] = {0};
    uint64_t rng = sr_rng_stream(55, (uint64_t)block);
    int refused = 0, forks = 0, checked = 0;
    SrError err = {{0}};
    for (int op = 0; op < 300; op++) {
        int k = (int)(sr_rng_u64(&rng) % LIVE), what = (int)(sr_rng_u64(&rng) % 10);
        if (!used[k]) { /* a new sequence, or a fork of a live one */
            int src = (int)(sr_rng_u64(&rng) % LIVE);
            int s = used[src] && what < 5 ? engine_seq_fork(e, h[src].seq) : engine_seq_new(e);
            CHECK(s >= 0);
            if (used[src] && what < 5) {
                h[k] = h[src];
                forks++;
            } else {
                h[k].n = 0;
            }
            h[k].seq = s;
            used[k] = 1;
        } else if (what <= 1) {
            engine_seq_free(e, h[k].seq);
            used[k] = 0;
        } else if (what == 2 && h[k].n > 0) {
            h[k].n = (int)(sr_rng_u64(&rng) % (uint64_t)(h[k].n + 1));
            engine_seq_truncate(e, h[k].seq, h[k].n);
        } else { /* a pass of k and up to 3 other live sequences */
            int seqs[4], n[4], who[4], ns = 0, total = 0;
            int32_t ids[4 * 9];
            for (int j = k, tries = 0; ns < 4 && tries < LIVE; j = (j + 3) % LIVE, tries++) {
                if (!used[j] || (ns > 0 && sr_rng_u64(&rng) % 2)) continue;
                int dup = 0;
                for (int q = 0; q < ns; q++) dup |= who[q] == j;
                if (dup) continue;
                who[ns] = j;
                seqs[ns] = h[j].seq;
                n[ns] = 1 + (int)(sr_rng_u64(&rng) % 9);
                if (h[j].n + n[ns] > 96) n[ns] = 96 - h[j].n;
                if (n[ns] < 1) continue;
                for (int t = 0; t < n[ns]; t++) ids[total++] = rand_id(&rng, V);
                ns++;
            }
            if (ns == 0) continue;
            int can = engine_can_take(e, ns, seqs, n), fb = engine_free_blocks(e);
            int rc = engine_forward(e, ns, seqs, n, ids, &err);
            CHECKF((rc == 0) == (can == 1), "op %d: engine_can_take %d but engine_forward %d (%s)",
                   op, can, rc, rc ? err.msg : "");
            if (rc) {
                refused++;
                CHECK(engine_free_blocks(e) == fb);
                for (int q = 0; q < ns; q++) CHECK(engine_seq_len(e, seqs[q]) == h[who[q]].n);
                continue;
            }
            float *lg = malloc((size_t)ns * V * sizeof(float));
            CHECK(engine_logits(e, ns, lg, &err) == 0);
            for (int q = 0, off = 0; q < ns; q++) {
                Hist *hq = &h[who[q]];
                memcpy(hq->ids + hq->n, ids + off, (size_t)n[q] * sizeof(int32_t));
                off += n[q];
                hq->n += n[q];
                CHECK(engine_seq_len(e, hq->seq) == hq->n);
                float *ref = full_last(m, hq->ids, hq->n);
                double d = sr_rel_err(lg + (size_t)q * V, ref, (size_t)V);
                CHECKF(d < 1e-5, "op %d (block %d): sequence %d (%d tokens) vs full: rel err %.3g",
                       op, block, who[q], hq->n, d);
                checked++;
                free(ref);
            }
            free(lg);
        }
    }
    for (int k = 0; k < LIVE; k++)
        if (used[k]) engine_seq_free(e, h[k].seq);
    CHECKF(engine_free_blocks(e) == free0, "random life: %d blocks free at the end, %d at the "
           "start", engine_free_blocks(e), free0);
    CHECKF(refused > 0 && forks > 0, "random life (block %d): %d refusals, %d forks: the "
           "test should see both", block, refused, forks);
    printf("random life (block %d): %d rows checked, %d refused passes, %d forks\n", block,
           checked, refused, forks);
    engine_close(e);
    model_free(m);
}

/* ---- 6. refusals change nothing ------------------------------------------------------------ */

static void test_refusals(SrBackend *be) {
    Qwen2Model *m = tiny_model(be, 61, 4, 2, 64, 55);
    int V = m->cfg.vocab_size, block = 4;
    Engine *e = open_engine(m, 6, block, 4, 32); /* 6 blocks = 24 positions */
    SrError err = {{0}};
    uint64_t rng = 3;
    int32_t ids[64];
    for (int i = 0; i < 64; i++) ids[i] = rand_id(&rng, V);
    int a = engine_seq_new(e), b = engine_seq_new(e);
    int n13 = 13;
    float *l0 = pass(e, 1, &a, &n13, ids, "prefill a"); /* 4 blocks */
    CHECK(engine_free_blocks(e) == 2);
    /* b wants 9 positions = 3 blocks: refused */
    int n9 = 9;
    CHECK(engine_blocks_needed(e, b, 9) == 3);
    CHECK(engine_can_take(e, 1, &b, &n9) == 0);
    CHECK(engine_forward(e, 1, &b, &n9, ids, &err) == -1);
    CHECKF(strstr(err.msg, "free blocks") != NULL, "pool full: %s", err.msg);
    /* a pass of a and b that fits alone for each but not together */
    int two[2] = {a, b}, nn[2] = {4, 8};
    CHECK(engine_can_take(e, 2, two, nn) == 0);
    CHECK(engine_forward(e, 2, two, nn, ids, &err) == -1);
    /* bad passes */
    int32_t bad[2] = {1, V};
    int n2 = 2, zero = 0, dead = 3, many = 33, twice[2] = {a, a}, ones[2] = {1, 1};
    CHECK(engine_forward(e, 1, &a, &n2, bad, &err) == -1 && strstr(err.msg, "vocabulary"));
    CHECK(engine_forward(e, 1, &a, &zero, ids, &err) == -1);
    CHECK(engine_forward(e, 1, &dead, &n2, ids, &err) == -1 && strstr(err.msg, "live"));
    CHECK(engine_forward(e, 2, twice, ones, ids, &err) == -1 && strstr(err.msg, "twice"));
    CHECK(engine_forward(e, 1, &b, &many, ids, &err) == -1 && strstr(err.msg, "max_tokens"));
    /* positions past max_position_embeddings (64) */
    Engine *e2 = open_engine(m, 40, block, 2, 64);
    int s2 = engine_seq_new(e2), n60 = 60, n5 = 5;
    free(pass(e2, 1, &s2, &n60, ids, "60 positions"));
    CHECK(engine_forward(e2, 1, &s2, &n5, ids, &err) == -1);
    CHECKF(strstr(err.msg, "max_position_embeddings") != NULL, "positions: %s", err.msg);
    CHECK(engine_seq_len(e2, s2) == 60);
    engine_close(e2);
    /* nothing changed: lengths, free blocks, the last pass's logits, and a's next token */
    CHECK(engine_seq_len(e, a) == 13 && engine_seq_len(e, b) == 0);
    CHECK(engine_free_blocks(e) == 2);
    float *l1 = malloc((size_t)V * sizeof(float));
    CHECK(engine_logits(e, 1, l1, &err) == 0 && same_row(l0, l1, V));
    CHECK(engine_logits(e, 2, l1, &err) == -1); /* the last pass wrote one row */
    int one = 1;
    float *la = pass(e, 1, &a, &one, ids + 13, "a + 1");
    float *ref = full_last(m, ids, 14);
    CHECK(sr_rel_err(la, ref, (size_t)V) < 1e-5);
    /* what fits still goes: b takes the last block */
    int n4 = 4;
    CHECK(engine_can_take(e, 1, &b, &n4) == 1);
    free(pass(e, 1, &b, &n4, ids, "b fits"));
    CHECK(engine_free_blocks(e) == 1);
    free(l0), free(l1), free(la), free(ref);
    engine_close(e);
    model_free(m);
}

/* ---- 7. whatever else is in the pass --------------------------------------------------------- */

/* the same logits, up to rounding, and the same greedy token: OpenBLAS's sgemm does not give
 * a row the same bits for every row count (its tails and blocking depend on N), so only the
 * attention and the paging are bitwise independent of the batch (test_block_placement) */
static int same_logits(const float *a, const float *b, int V, double *err) {
    *err = sr_rel_err(a, b, (size_t)V);
    int ia = 0, ib = 0;
    for (int i = 1; i < V; i++) {
        if (a[i] > a[ia]) ia = i;
        if (b[i] > b[ib]) ib = i;
    }
    return *err < 1e-5 && ia == ib;
}

/* sequence X (prompt of 9, then 6 tokens fed one by one) gets the same logits alone, as one of
 * 64 prefilled and decoded together, and admitted in a pass where 63 others decode */
static void test_batch_invariance(SrBackend *be) {
    Qwen2Model *m = tiny_model(be, 61, 4, 2, 256, 66);
    int V = m->cfg.vocab_size;
    enum { G = 64, PX = 9, STEPS = 6 };
    uint64_t rng = 101;
    int32_t px[PX], steps[STEPS], others[G][8];
    for (int i = 0; i < PX; i++) px[i] = rand_id(&rng, V);
    for (int i = 0; i < STEPS; i++) steps[i] = rand_id(&rng, V);
    for (int j = 0; j < G; j++)
        for (int i = 0; i < 8; i++) others[j][i] = rand_id(&rng, V);
    float *ref[STEPS + 1];
    /* alone */
    {
        Engine *e = open_engine(m, 512, 4, G, 1024);
        int x = engine_seq_new(e), np = PX, one = 1;
        ref[0] = pass(e, 1, &x, &np, px, "alone prefill");
        for (int t = 0; t < STEPS; t++) ref[t + 1] = pass(e, 1, &x, &one, &steps[t], "alone");
        engine_close(e);
    }
    int32_t *ids = malloc((size_t)G * 16 * sizeof(int32_t));
    for (int mode = 0; mode < 2; mode++) {
        Engine *e = open_engine(m, 512, 4, G, 1024);
        int seq[G], xi = 17;
        for (int j = 0; j < G; j++) seq[j] = engine_seq_new(e);
        /* mode 0: all 64 prefilled in one pass (prompts of 1..8 tokens, X's of 9);
         * mode 1: the 63 others first, and a few decode steps, X admitted later */
        int total = 0, ns = 0, es[G], en[G];
        for (int j = 0; j < G; j++) {
            if (mode == 1 && j == xi) continue;
            int cnt = j == xi ? PX : 1 + j % 8;
            for (int i = 0; i < cnt; i++) ids[total++] = j == xi ? px[i] : others[j][i];
            es[ns] = seq[j];
            en[ns++] = cnt;
        }
        float *lg = pass(e, ns, es, en, ids, "prefill all");
        double d;
        if (mode == 0)
            CHECKF(same_logits(lg + (size_t)xi * V, ref[0], V, &d), "X prefilled with 63 "
                   "others: not the logits of X alone (rel err %.3g)", d);
        free(lg);
        if (mode == 1) { /* two decode steps of the others, then X's prefill with their third */
            for (int step = 0; step < 3; step++) {
                total = 0, ns = 0;
                int xrow = -1;
                for (int j = 0; j < G; j++) {
                    if (j == xi && step < 2) continue;
                    if (j == xi) {
                        for (int i = 0; i < PX; i++) ids[total++] = px[i];
                        xrow = ns;
                    } else {
                        ids[total++] = rand_id(&rng, V);
                    }
                    es[ns] = seq[j];
                    en[ns++] = j == xi ? PX : 1;
                }
                lg = pass(e, ns, es, en, ids, "admission");
                if (xrow >= 0)
                    CHECKF(same_logits(lg + (size_t)xrow * V, ref[0], V, &d), "X admitted "
                           "later: not the logits of X alone (rel err %.3g)", d);
                free(lg);
            }
        }
        /* decode steps of all 64, X fed its tokens */
        for (int t = 0; t < STEPS; t++) {
            for (int j = 0; j < G; j++) {
                ids[j] = j == xi ? steps[t] : rand_id(&rng, V);
                es[j] = seq[j];
                en[j] = 1;
            }
            lg = pass(e, G, es, en, ids, "decode all");
            CHECKF(same_logits(lg + (size_t)xi * V, ref[t + 1], V, &d), "mode %d step %d: X "
                   "decoded with 63 others: not the logits of X alone (rel err %.3g)", mode, t,
                   d);
            free(lg);
        }
        engine_close(e);
    }
    free(ids);
    for (int t = 0; t <= STEPS; t++) free(ref[t]);
    model_free(m);
}

/* The same passes in two engines whose pools hand out different blocks (the second one's free
 * list is stirred first, and another sequence interleaves its blocks) give the same bits. */
static void test_block_placement(SrBackend *be) {
    Qwen2Model *m = tiny_model(be, 61, 4, 2, 256, 77);
    int V = m->cfg.vocab_size;
    Engine *e1 = open_engine(m, 64, 4, 8, 256), *e2 = open_engine(m, 64, 4, 8, 256);
    int junk[5], nj[5] = {5, 9, 2, 13, 7};
    int32_t zeros[16] = {0};
    for (int i = 0; i < 5; i++) {
        junk[i] = engine_seq_new(e2);
        free(pass(e2, 1, &junk[i], &nj[i], zeros, "stir"));
    }
    engine_seq_free(e2, junk[1]);
    engine_seq_free(e2, junk[3]);
    int a1 = engine_seq_new(e1), a2 = engine_seq_new(e2), o2 = junk[0];
    uint64_t rng = 8;
    int32_t ids[40];
    int steps[] = {11, 1, 3, 1, 9, 1};
    for (int r = 0; r < (int)(sizeof steps / sizeof steps[0]); r++) {
        for (int i = 0; i < steps[r]; i++) ids[i] = rand_id(&rng, V);
        float *l1 = pass(e1, 1, &a1, &steps[r], ids, "placement 1");
        float *l2 = pass(e2, 1, &a2, &steps[r], ids, "placement 2");
        CHECKF(same_row(l1, l2, V), "step %d: the same tokens in other blocks: rel err %.3g", r,
               sr_rel_err(l1, l2, (size_t)V));
        free(l1);
        free(l2);
        int one = 1; /* another sequence takes the next free blocks in e2 */
        free(pass(e2, 1, &o2, &one, zeros, "interleave"));
    }
    engine_close(e1);
    engine_close(e2);
    model_free(m);
}

/* ---- 8. sampling and log-probs --------------------------------------------------------------- */

static void host_log_softmax(double *out, const float *x, int n) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    for (int i = 0; i < n; i++) out[i] = (double)x[i] - mx - log(s);
}

static void test_sampling(SrBackend *be) {
    Qwen2Model *m = tiny_model(be, 61, 4, 2, 256, 88);
    int V = m->cfg.vocab_size;
    Engine *e = open_engine(m, 64, 4, 8, 256);
    enum { R = 6 };
    int seq[R], n[R];
    int32_t ids[R * 8];
    uint64_t rng0 = 4;
    int total = 0;
    for (int r = 0; r < R; r++) {
        seq[r] = engine_seq_new(e);
        n[r] = 1 + r;
        for (int i = 0; i < n[r]; i++) ids[total++] = rand_id(&rng0, V);
    }
    float *lg = pass(e, R, seq, n, ids, "sampling prefill");
    SrError err = {{0}};
    double *ls = malloc((size_t)V * sizeof(double));
    for (int nv = V; nv >= V - 20; nv -= 20) {
        /* greedy = argmax over ids < n_valid; the log-prob = host log_softmax */
        SrSampling gp[R];
        uint64_t rng[R];
        int32_t out[R];
        float lp[R];
        for (int r = 0; r < R; r++) gp[r] = (SrSampling){0.0f, 0, 1.0f}, rng[r] = 7 + r;
        CHECK(engine_sample(e, R, gp, rng, nv, out, lp, &err) == 0);
        for (int r = 0; r < R; r++) {
            const float *row = lg + (size_t)r * V;
            int best = 0;
            for (int i = 1; i < nv; i++)
                if (row[i] > row[best]) best = i;
            CHECKF(out[r] == best, "greedy row %d (n_valid %d): %d, argmax %d", r, nv, out[r],
                   best);
            CHECK(rng[r] == (uint64_t)(7 + r)); /* greedy draws nothing */
            host_log_softmax(ls, row, nv);
            CHECKF(fabs(lp[r] - ls[best]) < 1e-5, "greedy log-prob row %d: %g vs %g", r, lp[r],
                   ls[best]);
        }
        CHECK(engine_sample(e, R, gp, rng, nv, out, NULL, &err) == 0); /* no log-probs wanted */
        /* per-row parameters (runs of equal ones) = the sample op row by row */
        SrSampling sp[R] = {{1.0f, 0, 1.0f}, {1.0f, 0, 1.0f}, {0.0f, 0, 1.0f},
                            {0.7f, 5, 0.9f}, {0.7f, 5, 0.9f}, {1.3f, 0, 0.5f}};
        uint64_t ra[R], rb[R];
        int32_t oa[R], ob[R];
        float pa[R], pb[R];
        for (int r = 0; r < R; r++) ra[r] = rb[r] = sr_rng_stream(99, (uint64_t)r);
        CHECK(engine_sample(e, R, sp, ra, nv, oa, pa, &err) == 0);
        for (int r = 0; r < R; r++)
            sr_cpu_ops.sample(be, ob + r, pb + r, lg + (size_t)r * V, 1, V, nv, &sp[r], rb + r);
        CHECK(memcmp(oa, ob, sizeof oa) == 0 && memcmp(pa, pb, sizeof pa) == 0);
        CHECK(memcmp(ra, rb, sizeof ra) == 0);
        for (int r = 0; r < R; r++) CHECK(oa[r] >= 0 && oa[r] < nv);
        /* log p(id) per row */
        int32_t want[R];
        for (int r = 0; r < R; r++) want[r] = (int32_t)((r * 13 + 5) % nv);
        CHECK(engine_logprob_of(e, R, want, nv, lp, &err) == 0);
        for (int r = 0; r < R; r++) {
            host_log_softmax(ls, lg + (size_t)r * V, nv);
            CHECKF(fabs(lp[r] - ls[want[r]]) < 1e-5, "logprob_of row %d id %d (n_valid %d): %g "
                   "vs %g", r, want[r], nv, lp[r], ls[want[r]]);
        }
        want[2] = nv; /* outside */
        CHECK(engine_logprob_of(e, R, want, nv, lp, &err) == -1);
    }
    /* the logits survived all of that */
    float *again = malloc((size_t)R * V * sizeof(float));
    CHECK(engine_logits(e, R, again, &err) == 0);
    CHECK(memcmp(again, lg, (size_t)R * V * sizeof(float)) == 0);
    SrSampling one = {0, 0, 1};
    uint64_t r1 = 1;
    int32_t o1;
    CHECK(engine_sample(e, R + 1, &one, &r1, V, &o1, NULL, &err) == -1);
    CHECK(engine_sample(e, 1, &one, &r1, V + 1, &o1, NULL, &err) == -1);
    free(again);
    free(ls);
    free(lg);
    engine_close(e);
    model_free(m);
}

/* ---- 9. engine_open ----------------------------------------------------------------------- */

static void test_open(SrBackend *be) {
    Qwen2Model *m = tiny_model(be, 61, 4, 2, 256, 99);
    SrError err = {{0}};
    Engine *e = NULL;
    size_t per_tok = engine_kv_bytes_per_token(m);
    CHECK(per_tok == 2 * 2 * 2 * 8 * sizeof(float)); /* K and V, 2 layers, Hkv 2, D 8 */
    EngineOptions o = {.kv_bytes = 16 * per_tok - 1, .block_size = 16};
    CHECK(engine_open(&e, m, &o, &err) == -1 && e == NULL);
    CHECKF(strstr(err.msg, "one block") != NULL, "tiny budget: %s", err.msg);
    o.kv_bytes = SIZE_MAX / 2;
    CHECK(engine_open(&e, m, &o, &err) == -1 && e == NULL);
    CHECKF(strstr(err.msg, "beyond") != NULL, "huge budget: %s", err.msg);
    o = (EngineOptions){.block_size = -1, .kv_bytes = 1 << 20};
    CHECK(engine_open(&e, m, &o, &err) == -1);
    size_t def = engine_default_kv_bytes(m, NULL);
    CHECKF(def > 0 && def <= sr_host_memory_limit(NULL) / 4, "default budget %zu", def);
    /* default options: a working engine (a pool capped at 16 MiB: zero-filling the default
     * budget would cost seconds) */
    o = (EngineOptions){.kv_bytes = def < ((size_t)16 << 20) ? def : ((size_t)16 << 20)};
    CHECK(engine_open(&e, m, &o, &err) == 0 && e != NULL);
    int s = engine_seq_new(e);
    CHECK(s >= 0 && engine_seq_len(e, s) == 0);
    int cnt = 1;
    for (; engine_seq_new(e) >= 0; cnt++) continue;
    CHECK(cnt == 256); /* max_seqs default */
    engine_close(e);
    model_free(m);
}

int main(void) {
    SrBackend be;
    SrError err;
    if (sr_backend_init(&be, "cpu", 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    /* one thread: the many tiny ops here only pay for OpenMP teams (test_ops_cpu checks
     * attention_paged on 1 vs 3 threads) */
    be.n_threads = 1;
    test_full(&be, 4, 4, 4);
    test_full(&be, 4, 2, 1);  /* GQA 2, one position per block */
    test_full(&be, 8, 2, 16); /* GQA 4 */
    printf("engine vs full recomputation: worst rel err %.3g\n", worst_full);
    test_one_pass(&be, 4, 4);
    test_one_pass(&be, 8, 2);
    test_layout_bits(&be);
    test_fork(&be);
    test_refusals(&be);
    test_random_life(&be, 4);
    test_random_life(&be, 5);
    test_batch_invariance(&be);
    test_block_placement(&be);
    test_sampling(&be);
    test_open(&be);
    sr_backend_free(&be);
    return sr_test_done();
}
