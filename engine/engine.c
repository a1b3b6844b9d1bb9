/*
 * The engine of one model: a paged KV pool and one forward pass over any sequences (see
 * engine.h for the contract).
 *
 * Pool: one allocation, per layer K then V, each [n_blocks * block, KVD]. Block b holds rows
 * [b * block, (b + 1) * block) of every layer. Blocks have reference counts (a fork shares
 * them) and free ones sit on a stack. A sequence holding len positions owns exactly
 * ceil(len / block) blocks; its table row lists them. New tokens go at positions
 * len .. len + n - 1, so a full block is never written again; only the partially filled last
 * block can be written while shared, and then the writer copies it first (copy-on-write). In
 * one pass the last of its holders to write needs no copy, which engine_can_take counts.
 *
 * One pass: the host builds ids, pos, seq (table row), slot (cache row) of every token and the
 * row of each sequence's last token, and uploads them in ONE upload; block tables are kept on
 * the device and only the entries that changed since the last pass are uploaded. Nothing is
 * allocated per pass.
 */
#include "engine.h"

#include <limits.h>
#include <string.h>

#include "../model/model_paged.h"

struct Engine {
    Qwen2Model *m;
    SrBackend *be;
    int L, kvd, V;
    size_t asz;
    int block, max_seqs, max_tokens, n_blocks, max_blocks;
    void *pool;
    void **kc, **vc;      /* per layer views into pool */
    /* blocks */
    int *ref;             /* [n_blocks] reference counts */
    int *free_stack;      /* [n_blocks] */
    int n_free;
    int *count;           /* [n_blocks] scratch of engine_can_take, zero between calls */
    /* sequences */
    unsigned char *alive; /* [max_seqs] */
    unsigned char *mark;  /* [max_seqs] scratch of engine_forward, zero between calls */
    int *len;             /* [max_seqs] positions held */
    int32_t *table;       /* [max_seqs, max_blocks] host copy of the block tables */
    int *dirty_lo, *dirty_hi; /* per sequence: table entries changed since the last upload */
    /* one pass */
    int32_t *h_in, *d_in; /* [4 * max_tokens + max_seqs]: ids, pos, seq, slot (N each), rows */
    int32_t *d_table;     /* [max_seqs, max_blocks] */
    void *logits;         /* act [max_seqs, V]: the last pass's rows */
    int n_rows;           /* rows the last pass wrote */
    int32_t *d_target;    /* [max_seqs] engine_logprob_of */
    float *d_logprob, *h_logprob; /* [max_seqs] */
};

static int cdiv(int a, int b) {
    return (a + b - 1) / b;
}

Qwen2Model *engine_model(const Engine *e) {
    return e->m;
}

int engine_max_tokens(const Engine *e) { return e->max_tokens; }

size_t engine_kv_bytes_per_token(const Qwen2Model *m) {
    return 2 * (size_t)m->cfg.num_hidden_layers * m->cfg.num_key_value_heads * m->cfg.head_dim *
           sr_act_size(m->be);
}

static void fill_defaults(EngineOptions *o, const EngineOptions *opt) {
    memset(o, 0, sizeof *o);
    if (opt) *o = *opt;
    if (o->block_size == 0) o->block_size = 16;
    if (o->max_seqs == 0) o->max_seqs = 256;
    if (o->max_tokens == 0) o->max_tokens = 4096;
}

/* the engine's own device buffers besides the pool: the logits rows and the pass inputs */
static size_t engine_side_bytes(const Qwen2Model *m, const EngineOptions *o) {
    return (size_t)o->max_seqs * m->cfg.vocab_size * sr_act_size(m->be) +
           ((size_t)4 * o->max_tokens + 3 * (size_t)o->max_seqs) * 4;
}

size_t engine_default_kv_bytes(const Qwen2Model *m, const EngineOptions *opt) {
    EngineOptions o;
    fill_defaults(&o, opt);
    size_t limit = sr_backend_memory_limit(m->be, NULL);
    if (limit == SIZE_MAX) limit = (size_t)4 << 30; /* unknown: assume a small machine */
    size_t used = qwen2_infer_act_bytes(m, o.max_tokens > 0 ? o.max_tokens : 1) +
                  engine_side_bytes(m, &o);
    /* the CPU limit is the whole machine (the weights are in it); the GPU's is what is free,
     * so the weights, loaded already, are out of it */
    if (m->be->device == SR_DEVICE_CPU) used += m->alloc_numel * sr_act_size(m->be);
    size_t avail = limit > used ? limit - used : 0;
    size_t kv = (size_t)((double)avail * 0.9);
    if (m->be->device == SR_DEVICE_CPU && kv > limit / 4) kv = limit / 4;
    return kv;
}

size_t engine_kv_bytes_for(const Qwen2Model *m, const EngineOptions *opt, double positions) {
    EngineOptions o;
    fill_defaults(&o, opt);
    double per = (double)engine_kv_bytes_per_token(m);
    double need = (positions + (double)o.max_seqs * o.block_size) * per;
    size_t cap = engine_default_kv_bytes(m, opt);
    return need < (double)cap ? (size_t)need : cap;
}

int engine_open(Engine **out, Qwen2Model *m, const EngineOptions *opt, SrError *err) {
    *out = NULL;
    EngineOptions o;
    fill_defaults(&o, opt);
    if (o.block_size < 1 || o.block_size > 4096)
        return sr_fail(err, "engine: block_size %d is outside [1, 4096]", o.block_size);
    if (o.max_seqs < 1 || o.max_seqs > 65535)
        return sr_fail(err, "engine: max_seqs %d is outside [1, 65535]", o.max_seqs);
    if (o.max_tokens < 1 || o.max_tokens > (1 << 24))
        return sr_fail(err, "engine: max_tokens %d is outside [1, %d]", o.max_tokens, 1 << 24);
    const char *what = NULL;
    size_t limit = sr_backend_memory_limit(m->be, &what);
    size_t kv = o.kv_bytes ? o.kv_bytes : engine_default_kv_bytes(m, &o);
    size_t per_block = engine_kv_bytes_per_token(m) * (size_t)o.block_size;
    if (kv / per_block < 1)
        return sr_fail(err, "engine: a KV pool of %zu bytes cannot hold one block (%d positions "
                       "x %zu bytes, every layer's K and V)", kv, o.block_size,
                       engine_kv_bytes_per_token(m));
    /* the pool and the engine's own buffers (the workspace may be taken already) */
    size_t side = engine_side_bytes(m, &o);
    if (limit != SIZE_MAX && (kv > limit || side > limit - kv))
        return sr_fail(err, "engine: a KV pool of %.3g GiB (and %.3g GiB of logits and pass "
                       "buffers) is beyond %s (%.3g GiB)", (double)kv / (1 << 30),
                       (double)side / (1 << 30), what ? what : "the memory limit",
                       (double)limit / (1 << 30));
    size_t nb = kv / per_block;
    if (nb > (size_t)INT_MAX / (size_t)o.block_size) nb = (size_t)INT_MAX / (size_t)o.block_size;

    Engine *e = sr_calloc(1, sizeof *e);
    e->m = m;
    e->be = m->be;
    e->L = m->cfg.num_hidden_layers;
    e->kvd = m->cfg.num_key_value_heads * m->cfg.head_dim;
    e->V = m->cfg.vocab_size;
    e->asz = sr_act_size(m->be);
    e->block = o.block_size;
    e->max_seqs = o.max_seqs;
    e->max_tokens = o.max_tokens;
    e->n_blocks = (int)nb;
    e->max_blocks = cdiv(m->cfg.max_position_embeddings > 0 ? m->cfg.max_position_embeddings : 1,
                         e->block);
    if (e->max_blocks > e->n_blocks) e->max_blocks = e->n_blocks; /* no sequence holds more */

    const SrOps *ops = e->be->ops;
    size_t layer_bytes = (size_t)e->n_blocks * e->block * e->kvd * e->asz;
    e->pool = ops->alloc(e->be, 2 * (size_t)e->L * layer_bytes);
    e->kc = sr_calloc((size_t)e->L, sizeof(void *));
    e->vc = sr_calloc((size_t)e->L, sizeof(void *));
    for (int l = 0; l < e->L; l++) {
        e->kc[l] = (char *)e->pool + (2 * (size_t)l) * layer_bytes;
        e->vc[l] = (char *)e->pool + (2 * (size_t)l + 1) * layer_bytes;
    }
    e->ref = sr_calloc((size_t)e->n_blocks, sizeof(int));
    e->count = sr_calloc((size_t)e->n_blocks, sizeof(int));
    e->free_stack = sr_malloc((size_t)e->n_blocks * sizeof(int));
    for (int b = 0; b < e->n_blocks; b++) e->free_stack[b] = e->n_blocks - 1 - b; /* 0 on top */
    e->n_free = e->n_blocks;
    e->alive = sr_calloc((size_t)e->max_seqs, 1);
    e->mark = sr_calloc((size_t)e->max_seqs, 1);
    e->len = sr_calloc((size_t)e->max_seqs, sizeof(int));
    size_t tab_n = (size_t)e->max_seqs * e->max_blocks;
    e->table = sr_malloc(tab_n * sizeof(int32_t));
    for (size_t i = 0; i < tab_n; i++) e->table[i] = -1;
    e->dirty_lo = sr_calloc((size_t)e->max_seqs, sizeof(int));
    e->dirty_hi = sr_calloc((size_t)e->max_seqs, sizeof(int));
    size_t in_n = 4 * (size_t)e->max_tokens + e->max_seqs;
    e->h_in = sr_malloc(in_n * sizeof(int32_t));
    e->d_in = ops->alloc(e->be, in_n * sizeof(int32_t));
    e->d_table = ops->alloc(e->be, tab_n * sizeof(int32_t));
    ops->upload(e->be, e->d_table, e->table, tab_n * sizeof(int32_t));
    e->logits = ops->alloc(e->be, (size_t)e->max_seqs * e->V * e->asz);
    e->d_target = ops->alloc(e->be, (size_t)e->max_seqs * sizeof(int32_t));
    e->d_logprob = ops->alloc(e->be, (size_t)e->max_seqs * sizeof(float));
    e->h_logprob = sr_malloc((size_t)e->max_seqs * sizeof(float));
    qwen2_paged_reserve(m, e->max_tokens); /* the workspace is taken now, not mid-run */
    *out = e;
    return 0;
}

void engine_close(Engine *e) {
    if (!e) return;
    const SrOps *ops = e->be->ops;
    ops->free(e->be, e->pool);
    ops->free(e->be, e->d_in);
    ops->free(e->be, e->d_table);
    ops->free(e->be, e->logits);
    ops->free(e->be, e->d_target);
    ops->free(e->be, e->d_logprob);
    free(e->kc);
    free(e->vc);
    free(e->ref);
    free(e->count);
    free(e->free_stack);
    free(e->alive);
    free(e->mark);
    free(e->len);
    free(e->table);
    free(e->dirty_lo);
    free(e->dirty_hi);
    free(e->h_in);
    free(e->h_logprob);
    free(e);
}

/* ---- blocks ------------------------------------------------------------------------------ */

static int32_t *seq_table(const Engine *e, int s) {
    return e->table + (size_t)s * e->max_blocks;
}

static void set_entry(Engine *e, int s, int i, int32_t b) {
    seq_table(e, s)[i] = b;
    if (e->dirty_hi[s] == e->dirty_lo[s]) {
        e->dirty_lo[s] = i;
        e->dirty_hi[s] = i + 1;
    } else {
        if (i < e->dirty_lo[s]) e->dirty_lo[s] = i;
        if (i + 1 > e->dirty_hi[s]) e->dirty_hi[s] = i + 1;
    }
}

static int32_t take_block(Engine *e) {
    SR_ASSERT(e->n_free > 0); /* counted before */
    int32_t b = e->free_stack[--e->n_free];
    SR_ASSERT(e->ref[b] == 0);
    e->ref[b] = 1;
    return b;
}

static void drop_block(Engine *e, int32_t b) {
    SR_ASSERT(e->ref[b] > 0);
    if (--e->ref[b] == 0) e->free_stack[e->n_free++] = b;
}

/* the shared, partially filled last block of s (written by its next token), or -1 */
static int32_t shared_tail(const Engine *e, int s) {
    if (e->len[s] % e->block == 0) return -1;
    int32_t b = seq_table(e, s)[e->len[s] / e->block];
    return e->ref[b] > 1 ? b : -1;
}

static int seq_ok(const Engine *e, int s) {
    return s >= 0 && s < e->max_seqs && e->alive[s];
}

int engine_free_blocks(const Engine *e) {
    return e->n_free;
}

int engine_blocks_needed(const Engine *e, int seq, int n) {
    if (!seq_ok(e, seq) || n <= 0) return 0;
    int l = e->len[seq];
    return cdiv(l + n, e->block) - cdiv(l, e->block) + (shared_tail(e, seq) >= 0);
}

/* blocks a pass feeding n[i] tokens to seqs[i] takes: new blocks, plus a copy for every writer
 * of a shared tail block but the last of its holders (when all of them write) */
static long pass_blocks(const Engine *e, int nseq, const int *seqs, const int *n) {
    long need = 0;
    for (int i = 0; i < nseq; i++) {
        int s = seqs[i], l = e->len[s];
        need += cdiv(l + n[i], e->block) - cdiv(l, e->block);
        int32_t b = shared_tail(e, s);
        if (b >= 0) e->count[b]++;
    }
    for (int i = 0; i < nseq; i++) {
        int32_t b = shared_tail(e, seqs[i]);
        if (b < 0 || e->count[b] == 0) continue;
        need += e->count[b] < e->ref[b] - 1 ? e->count[b] : e->ref[b] - 1;
        e->count[b] = 0;
    }
    return need;
}

int engine_can_take(const Engine *e, int nseq, const int *seqs, const int *n) {
    if (nseq < 0) return 0;
    long positions = (long)e->max_blocks * e->block;
    for (int i = 0; i < nseq; i++)
        if (!seq_ok(e, seqs[i]) || n[i] < 0 || e->len[seqs[i]] + (long)n[i] > positions) return 0;
    return pass_blocks(e, nseq, seqs, n) <= e->n_free;
}

/* ---- sequences ----------------------------------------------------------------------------- */

int engine_seq_new(Engine *e) {
    for (int s = 0; s < e->max_seqs; s++)
        if (!e->alive[s]) {
            e->alive[s] = 1;
            e->len[s] = 0;
            return s;
        }
    return -1;
}

int engine_seq_fork(Engine *e, int src) {
    SR_ASSERT(seq_ok(e, src));
    int s = engine_seq_new(e);
    if (s < 0) return -1;
    int nb = cdiv(e->len[src], e->block);
    for (int i = 0; i < nb; i++) {
        int32_t b = seq_table(e, src)[i];
        e->ref[b]++;
        set_entry(e, s, i, b);
    }
    e->len[s] = e->len[src];
    return s;
}

void engine_seq_truncate(Engine *e, int seq, int len) {
    SR_ASSERT(seq_ok(e, seq) && len >= 0 && len <= e->len[seq]);
    int keep = cdiv(len, e->block), nb = cdiv(e->len[seq], e->block);
    for (int i = keep; i < nb; i++) drop_block(e, seq_table(e, seq)[i]);
    e->len[seq] = len;
}

void engine_seq_free(Engine *e, int seq) {
    SR_ASSERT(seq_ok(e, seq));
    engine_seq_truncate(e, seq, 0);
    e->alive[seq] = 0;
}

int engine_seq_len(const Engine *e, int seq) {
    SR_ASSERT(seq_ok(e, seq));
    return e->len[seq];
}

/* ---- one pass ------------------------------------------------------------------------------- */

/* checks a pass; 0 or -1 with err, nothing changed */
static int check_pass(Engine *e, int nseq, const int *seqs, const int *n, const int32_t *ids,
                      int *total_out, SrError *err) {
    if (nseq < 1 || nseq > e->max_seqs)
        return sr_fail(err, "engine_forward: %d sequences in a pass; the engine takes 1 to %d "
                       "(max_seqs)", nseq, e->max_seqs);
    int rc = 0, total = 0, max_pos = e->m->cfg.max_position_embeddings;
    for (int i = 0; i < nseq && rc == 0; i++) {
        int s = seqs[i];
        if (!seq_ok(e, s))
            rc = sr_fail(err, "engine_forward: seqs[%d] = %d is not a live sequence", i, s);
        else if (e->mark[s])
            rc = sr_fail(err, "engine_forward: sequence %d appears twice in one pass", s);
        else if (n[i] < 1)
            rc = sr_fail(err, "engine_forward: n[%d] = %d; every sequence takes >= 1 token", i,
                         n[i]);
        else if (n[i] > e->max_tokens - total)
            rc = sr_fail(err, "engine_forward: the pass has more than %d tokens (max_tokens)",
                         e->max_tokens);
        else if ((long)e->len[s] + n[i] > max_pos)
            rc = sr_fail(err, "engine_forward: sequence %d would reach %ld positions; the model "
                         "has max_position_embeddings %d", s, (long)e->len[s] + n[i], max_pos);
        else if ((long)e->len[s] + n[i] > (long)e->max_blocks * e->block)
            rc = sr_fail(err, "engine_forward: sequence %d would reach %ld positions; the KV "
                         "pool holds %d", s, (long)e->len[s] + n[i], e->max_blocks * e->block);
        if (rc == 0) {
            e->mark[s] = 1;
            total += n[i];
        }
    }
    for (int i = 0; i < nseq; i++)
        if (seqs[i] >= 0 && seqs[i] < e->max_seqs) e->mark[seqs[i]] = 0;
    if (rc) return rc;
    for (int i = 0; i < total; i++)
        if (ids[i] < 0 || ids[i] >= e->V)
            return sr_fail(err, "engine_forward: ids[%d] = %d is outside the vocabulary [0, %d)",
                           i, ids[i], e->V);
    long need = pass_blocks(e, nseq, seqs, n);
    if (need > e->n_free)
        return sr_fail(err, "engine_forward: the KV pool has %d free blocks; the pass needs %ld "
                       "(check engine_can_take first)", e->n_free, need);
    *total_out = total;
    return 0;
}

/* gives s its own copy of its shared tail block: the filled rows of every layer's K and V */
static void copy_on_write(Engine *e, int s, int32_t old) {
    int32_t b = take_block(e);
    size_t rows = (size_t)(e->len[s] % e->block), row_bytes = (size_t)e->kvd * e->asz;
    size_t src = (size_t)old * e->block * row_bytes, dst = (size_t)b * e->block * row_bytes;
    for (int l = 0; l < e->L; l++) {
        e->be->ops->copy(e->be, (char *)e->kc[l] + dst, (char *)e->kc[l] + src, rows * row_bytes);
        e->be->ops->copy(e->be, (char *)e->vc[l] + dst, (char *)e->vc[l] + src, rows * row_bytes);
    }
    drop_block(e, old);
    set_entry(e, s, e->len[s] / e->block, b);
}

static void upload_tables(Engine *e) {
    for (int s = 0; s < e->max_seqs; s++) {
        int lo = e->dirty_lo[s], hi = e->dirty_hi[s];
        if (hi <= lo) continue;
        size_t off = (size_t)s * e->max_blocks + lo;
        e->be->ops->upload(e->be, e->d_table + off, e->table + off, (size_t)(hi - lo) * 4);
        e->dirty_lo[s] = e->dirty_hi[s] = 0;
    }
}

int engine_forward(Engine *e, int nseq, const int *seqs, const int *n, const int32_t *ids,
                   SrError *err) {
    int N = 0;
    if (check_pass(e, nseq, seqs, n, ids, &N, err)) return -1;
    /* from here on nothing can fail */
    int32_t *h_ids = e->h_in, *h_pos = h_ids + N, *h_seq = h_pos + N, *h_slot = h_seq + N;
    int32_t *h_rows = h_slot + N;
    memcpy(h_ids, ids, (size_t)N * sizeof(int32_t));
    for (int i = 0, row = 0; i < nseq; i++) {
        int s = seqs[i], l0 = e->len[s];
        int32_t old = shared_tail(e, s);
        if (old >= 0) copy_on_write(e, s, old);
        for (int j = cdiv(l0, e->block); j < cdiv(l0 + n[i], e->block); j++)
            set_entry(e, s, j, take_block(e));
        const int32_t *tab = seq_table(e, s);
        for (int t = 0; t < n[i]; t++, row++) {
            int p = l0 + t;
            h_pos[row] = p;
            h_seq[row] = s;
            h_slot[row] = tab[p / e->block] * e->block + p % e->block;
        }
        h_rows[i] = row - 1; /* the sequence's last new token */
        e->len[s] = l0 + n[i];
    }
    const SrOps *ops = e->be->ops;
    ops->upload(e->be, e->d_in, e->h_in, ((size_t)4 * N + nseq) * sizeof(int32_t));
    upload_tables(e);
    Qwen2PagedPass p = {.N = N,
                        .ids = e->d_in,
                        .pos = e->d_in + N,
                        .seq = e->d_in + 2 * (size_t)N,
                        .slot = e->d_in + 3 * (size_t)N,
                        .table = e->d_table,
                        .max_blocks = e->max_blocks,
                        .block = e->block,
                        .kcache = e->kc,
                        .vcache = e->vc,
                        .n_out = nseq,
                        .out_rows = e->d_in + 4 * (size_t)N,
                        .logits = e->logits};
    qwen2_paged_forward(e->m, &p);
    e->n_rows = nseq;
    return 0;
}

/* ---- reading the rows ------------------------------------------------------------------------ */

static int check_rows(const Engine *e, const char *fn, int nrows, int n_valid, SrError *err) {
    if (nrows < 1 || nrows > e->n_rows)
        return sr_fail(err, "%s: %d rows asked; the last engine_forward wrote %d", fn, nrows,
                       e->n_rows);
    if (n_valid < 1 || n_valid > e->V)
        return sr_fail(err, "%s: n_valid %d is outside [1, %d]", fn, n_valid, e->V);
    return 0;
}

static void *logits_row(const Engine *e, int r) {
    return (char *)e->logits + (size_t)r * e->V * e->asz;
}

int engine_sample(Engine *e, int nrows, const SrSampling *params, uint64_t *rng, int n_valid,
                  int32_t *ids, float *logprob, SrError *err) {
    if (check_rows(e, "engine_sample", nrows, n_valid, err)) return -1;
    float *lp = logprob ? logprob : e->h_logprob;
    /* per-row parameters: one call, whatever mix of greedy and sampled rows */
    e->be->ops->sample(e->be, ids, lp, e->logits, nrows, e->V, n_valid, params, rng);
    return 0;
}

int engine_logprob_of(Engine *e, int nrows, const int32_t *id, int n_valid, float *logprob,
                      SrError *err) {
    if (check_rows(e, "engine_logprob_of", nrows, n_valid, err)) return -1;
    for (int r = 0; r < nrows; r++)
        if (id[r] < 0 || id[r] >= n_valid)
            return sr_fail(err, "engine_logprob_of: id[%d] = %d is outside [0, %d)", r, id[r],
                           n_valid);
    const SrOps *ops = e->be->ops;
    ops->upload(e->be, e->d_target, id, (size_t)nrows * sizeof(int32_t));
    /* cross_entropy without a gradient (grad_scale 0 leaves the logits alone); over the first
     * n_valid columns of each row, one row per call, when the embedding is padded past them */
    if (n_valid == e->V) {
        ops->cross_entropy(e->be, e->d_logprob, NULL, e->logits, e->d_target, NULL, 0.0f, nrows, e->V);
    } else {
        for (int r = 0; r < nrows; r++)
            ops->cross_entropy(e->be, e->d_logprob + r, NULL, logits_row(e, r), e->d_target + r, NULL,
                               0.0f, 1, n_valid);
    }
    ops->download(e->be, logprob, e->d_logprob, (size_t)nrows * sizeof(float));
    return 0;
}

int engine_logits(Engine *e, int nrows, float *logits, SrError *err) {
    if (check_rows(e, "engine_logits", nrows, e->V, err)) return -1;
    e->be->ops->download_act(e->be, logits, e->logits, (size_t)nrows * e->V);
    return 0;
}
