/*
 * splitreason bench: measurements on this machine. One subcommand so far:
 *
 *   bench latency --small DIR --big DIR [--device cpu|cuda] [--output FILE] [--batches 1,4,16]
 *                 [--contexts 128,512,2048] [--deltas 1,8,32,128] [--repeats N]
 *
 * measures the latency table of split decoding (engine/latency.h, configs/latency/README.md)
 * for a model pair, one model at a time (only one is in memory):
 *   tau[b][c]  a decode step of batches[b] sequences each holding contexts[c] positions (one
 *              new token each): the wall time from the pass's start to its result on the host;
 *   pi[d]      a catch-up pass of deltas[d] new tokens of ONE sequence holding pi_context
 *              positions (--pi-context, default the middle context);
 *   sigma      pi(1) - tau(1, pi_context) of the small and the big model, summed and clamped at
 *              0: what a catch-up pass costs beyond a decode step. Both models live in one
 *              process with their caches resident (no server round trip, no reload), so a switch
 *              has no other fixed cost and this is close to 0.
 * Each figure is the median (--statistic min: the least) of --repeats timed passes after one
 * untimed warm-up pass; every
 * pass starts from the same cache length (the cache is truncated back), filled beforehand with
 * random ids (chunked prefill). The table is written atomically (--output, else stdout) and
 * printed as a table (stdout when --output is a file, else stderr).
 */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "../common/rng.h"
#include "../engine/latency.h"
#include "../engine/engine.h"
#include "cli.h"

#define MAX_GRID 64

static const SrOption OPTS[] = {
    {"what", SR_OPT_STR, "null", "what to measure (the subcommand)", SR_CHOICES("latency"), SR_REQUIRED},
    {"small", SR_OPT_STR, "null", "the small model's HF directory", SR_REQUIRED},
    {"big", SR_OPT_STR, "null", "the big model's HF directory", SR_REQUIRED},
    {"device", SR_OPT_STR, "\"cpu\"", "cpu or cuda", SR_CHOICES("cpu", "cuda"), SR_REQUIRED},
    {"output", SR_OPT_STR, "null", "the latency table (JSON) to write; default stdout"},
    {"batches", SR_OPT_JSON, "\"1,4,16\"", "batch sizes of the decode grid (comma list or JSON list, increasing)"},
    {"contexts", SR_OPT_JSON, "\"128,512,2048\"", "context lengths of the decode grid (increasing)"},
    {"deltas", SR_OPT_JSON, "\"1,8,32,128\"", "catch-up lengths Δ of the pi grid (increasing)"},
    {"pi_context", SR_OPT_INT, "null", "cache length the catch-ups run against (default: the middle context)", SR_RANGE(0, 16777216)},
    {"repeats", SR_OPT_INT, "5", "timed passes per figure", SR_RANGE(1, 1000)},
    {"statistic", SR_OPT_STR, "\"median\"", "what is kept of the timed passes: median, or min (on a loaded machine)", SR_CHOICES("median", "min")},
    {"device_name", SR_OPT_STR, "null", "the table's device field (default: what the backend reports)"},
    {"note", SR_OPT_STR, "null", "free text stored in the table (e.g. how the machine was loaded)"},
    {"seed", SR_OPT_INT, "0", "seed of the random ids the caches are filled with", SR_RANGE(0, SR_JSON_INT_MAX)},
};

/* --batches 1,4,16 (a string), 16 (a number) or [1, 4, 16] (a JSON list): whole numbers in
 * [1, hi], increasing */
static int parse_grid(const cJSON *v, const char *opt, int hi, int *out, int *n, SrError *err) {
    double vals[MAX_GRID];
    int k = 0;
    if (cJSON_IsNumber(v)) {
        vals[k++] = v->valuedouble;
    } else if (cJSON_IsArray(v)) {
        for (const cJSON *it = v->child; it; it = it->next) {
            if (!cJSON_IsNumber(it)) return sr_fail(err, "--%s: expected whole numbers", opt);
            if (k == MAX_GRID) return sr_fail(err, "--%s: more than %d values", opt, MAX_GRID);
            vals[k++] = it->valuedouble;
        }
    } else if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        while (*s) {
            char *end;
            if (k == MAX_GRID) return sr_fail(err, "--%s: more than %d values", opt, MAX_GRID);
            if (*s < '0' || *s > '9') return sr_fail(err, "--%s: expected whole numbers separated by commas", opt);
            double d = strtod(s, &end);
            if (end == s || (*end && *end != ',') || (*end == ',' && !end[1]))
                return sr_fail(err, "--%s: expected whole numbers separated by commas", opt);
            vals[k++] = d;
            s = *end ? end + 1 : end;
        }
    } else {
        return sr_fail(err, "--%s: expected a comma list or a JSON list of whole numbers", opt);
    }
    if (k == 0) return sr_fail(err, "--%s: no values", opt);
    for (int i = 0; i < k; i++) {
        if (!isfinite(vals[i]) || vals[i] != floor(vals[i]) || vals[i] < 1 || vals[i] > hi)
            return sr_fail(err, "--%s: %g is not a whole number in [1, %d]", opt, vals[i], hi);
        if (i > 0 && vals[i] <= vals[i - 1])
            return sr_fail(err, "--%s: the values must increase (%g after %g)", opt, vals[i], vals[i - 1]);
        out[i] = (int)vals[i];
    }
    *n = k;
    return 0;
}

typedef struct Grids {
    int batches[MAX_GRID], contexts[MAX_GRID], deltas[MAX_GRID];
    int nb, nc, nd, pi_context;
} Grids;

static int read_grids(const SrConfig *cfg, Grids *g, SrError *err) {
    if (parse_grid(sr_config_get(cfg, "batches"), "batches", 65536, g->batches, &g->nb, err) ||
        parse_grid(sr_config_get(cfg, "contexts"), "contexts", 16777216, g->contexts, &g->nc, err) ||
        parse_grid(sr_config_get(cfg, "deltas"), "deltas", 1048576, g->deltas, &g->nd, err))
        return -1;
    g->pi_context = sr_config_has(cfg, "pi_context") ? (int)sr_config_int(cfg, "pi_context")
                                                     : g->contexts[g->nc / 2];
    return 0;
}

static int check(const SrConfig *cfg, SrError *err) {
    Grids g;
    return read_grids(cfg, &g, err);
}

/* ---- the passes timed: B sequences of one model ---------------------------------------------
 * Through engine/engine.h, as decoding runs: engine_forward, then a greedy engine_sample so only
 * ids leave the device, as in a real decode step. */
typedef struct Runner {
    Qwen2Model *m;
    int B, len, max_pass;
    int *n;
    int32_t *ids;
    uint64_t rng;
    Engine *e;
    int *seqs;
    SrSampling *sp;
    uint64_t *srng;
    int32_t *out;
} Runner;

static void runner_close(Runner *r) {
    if (r->e) engine_close(r->e);
    free(r->seqs);
    free(r->sp);
    free(r->srng);
    free(r->out);
    free(r->n);
    free(r->ids);
    memset(r, 0, sizeof *r);
}

/* the KV pool of B sequences of max_len positions, with room for a partly filled block each */
static size_t runner_kv_bytes(const Qwen2Model *m, int B, int max_len) {
    return (size_t)B * ((size_t)max_len + 2 * 16) * engine_kv_bytes_per_token(m);
}

/* B sequences that can hold max_len positions; passes of up to max_pass tokens in all */
static int runner_open(Runner *r, Qwen2Model *m, int B, int max_len, int max_pass, uint64_t seed,
                       SrError *err) {
    memset(r, 0, sizeof *r);
    r->m = m;
    r->B = B;
    r->max_pass = max_pass;
    r->rng = seed;
    r->n = sr_calloc((size_t)B, sizeof(int));
    r->ids = sr_malloc((size_t)max_pass * sizeof(int32_t));
    EngineOptions o = {0};
    o.block_size = 16;
    o.kv_bytes = runner_kv_bytes(m, B, max_len);
    o.max_seqs = B;
    o.max_tokens = max_pass;
    if (engine_open(&r->e, m, &o, err)) return -1;
    r->seqs = sr_malloc((size_t)B * sizeof(int));
    r->sp = sr_calloc((size_t)B, sizeof(SrSampling)); /* temperature 0: greedy */
    r->srng = sr_calloc((size_t)B, sizeof(uint64_t));
    r->out = sr_malloc((size_t)B * sizeof(int32_t));
    for (int b = 0; b < B; b++) r->seqs[b] = engine_seq_new(r->e);
    return 0;
}

static void runner_truncate(Runner *r, int len) {
    for (int b = 0; b < r->B; b++) engine_seq_truncate(r->e, r->seqs[b], len);
    r->len = len;
}

/* every sequence takes k new random ids in one pass; returns when the result is on the host */
static int runner_pass(Runner *r, int k, SrError *err) {
    int V = r->m->cfg.vocab_size;
    SR_ASSERT((size_t)k * r->B <= (size_t)r->max_pass);
    for (int i = 0; i < k * r->B; i++) r->ids[i] = (int32_t)(sr_rng_u64(&r->rng) % (uint64_t)V);
    for (int b = 0; b < r->B; b++) r->n[b] = k;
    if (engine_forward(r->e, r->B, r->seqs, r->n, r->ids, err) ||
        engine_sample(r->e, r->B, r->sp, r->srng, V, r->out, NULL, err))
        return -1;
    r->len += k;
    return 0;
}

/* chunked prefill up to len positions per sequence */
static int runner_fill(Runner *r, int len, SrError *err) {
    if (r->len > len) runner_truncate(r, len);
    int chunk = r->max_pass / r->B;
    while (r->len < len) {
        int k = len - r->len < chunk ? len - r->len : chunk;
        if (runner_pass(r, k, err)) return -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the median (or the least, use_min) wall time of `repeats` passes of k tokens per sequence,
 * each from len positions, after one untimed warm-up */
static int time_pass(Runner *r, int len, int k, int repeats, int use_min, double *out, SrError *err) {
    double *t = sr_malloc((size_t)repeats * sizeof(double));
    for (int i = -1; i < repeats; i++) {
        runner_truncate(r, len);
        r->m->be->ops->synchronize(r->m->be);
        double t0 = sr_now();
        if (runner_pass(r, k, err)) {
            free(t);
            return -1;
        }
        double dt = sr_now() - t0;
        if (i >= 0) t[i] = dt;
    }
    qsort(t, (size_t)repeats, sizeof(double), cmp_double);
    if (use_min) *out = t[0];
    else *out = repeats % 2 ? t[repeats / 2] : 0.5 * (t[repeats / 2 - 1] + t[repeats / 2]);
    free(t);
    return 0;
}

static const char *base_name(const char *dir, char *buf, size_t n) {
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    size_t s = len;
    while (s > 0 && dir[s - 1] != '/') s--;
    snprintf(buf, n, "%.*s", (int)(len - s), dir + s);
    return buf;
}

/* measures one model: tau rows [nb * nc], pi [nd], and tau(1, pi_context) for sigma */
static int measure_model(const char *dir, const char *opt, const SrConfig *cfg, const Grids *g,
                         LatencyModelInfo *info, double *tau, double *pi, double *tau_pi,
                         char *device, size_t device_n, SrError *err) {
    SrBackend be;
    Qwen2Model m;
    Tokenizer *tok;
    if (sr_load_model_dir(dir, sr_config_str(cfg, "device"), &be, &m, &tok, err))
        return sr_fail_prefix(err, "--%s", opt);
    int repeats = (int)sr_config_int(cfg, "repeats");
    int use_min = !strcmp(sr_config_str(cfg, "statistic"), "min");
    uint64_t seed = (uint64_t)sr_config_int(cfg, "seed");
    int rc = 0;
    int max_ctx = g->contexts[g->nc - 1] + 1, max_pi = g->pi_context + g->deltas[g->nd - 1];
    int limit = m.cfg.max_position_embeddings;
    if (max_ctx > limit)
        rc = sr_fail(err, "--contexts: %d positions (the largest context and its new token) pass "
                     "the --%s model's max_position_embeddings %d", max_ctx, opt, limit);
    else if (max_pi > limit)
        rc = sr_fail(err, "--pi-context %d + --deltas %d pass the --%s model's "
                     "max_position_embeddings %d", g->pi_context, g->deltas[g->nd - 1], opt, limit);
    int max_pass = 4096;
    if (max_pass < g->batches[g->nb - 1]) max_pass = g->batches[g->nb - 1];
    if (max_pass < g->deltas[g->nd - 1]) max_pass = g->deltas[g->nd - 1];
    /* the largest cache asked for, before anything is allocated */
    const char *what = NULL;
    size_t need = runner_kv_bytes(&m, g->batches[g->nb - 1], max_ctx) +
                  qwen2_infer_act_bytes(&m, max_pass);
    size_t have = sr_backend_memory_limit(&be, &what);
    if (!rc && need > have)
        rc = sr_fail(err, "--batches %d x --contexts %d: the --%s model's cache and workspace "
                     "take %.2f GB, more than %s (%.2f GB)", g->batches[g->nb - 1], max_ctx - 1, opt,
                     need / 1e9, what ? what : "the memory available", have / 1e9);
    int pre = rc; /* the refusals above name their option already */
    info->name = sr_strdup(base_name(dir, (char[256]){0}, 256));
    info->hidden_size = m.cfg.hidden_size;
    info->num_hidden_layers = m.cfg.num_hidden_layers;
    info->num_params = (double)qwen2_config_num_params(&m.cfg);
    if (be.device == SR_DEVICE_CUDA) sr_cuda_device_name(be.device_index, device, device_n);
    for (int b = 0; !rc && b < g->nb; b++) {
        Runner r;
        rc = runner_open(&r, &m, g->batches[b], max_ctx, max_pass, sr_rng_stream(seed, (uint64_t)b), err);
        for (int c = 0; !rc && c < g->nc; c++) {
            rc = runner_fill(&r, g->contexts[c], err) ||
                 time_pass(&r, g->contexts[c], 1, repeats, use_min, &tau[b * g->nc + c], err);
            if (!rc) sr_log("bench latency: %s batch %d context %d: %.3f ms per step", opt,
                            g->batches[b], g->contexts[c], 1e3 * tau[b * g->nc + c]);
        }
        runner_close(&r);
    }
    if (!rc) {
        Runner r;
        rc = runner_open(&r, &m, 1, max_pi, max_pass, sr_rng_stream(seed, 1000), err) ||
             runner_fill(&r, g->pi_context, err) ||
             time_pass(&r, g->pi_context, 1, repeats, use_min, tau_pi, err);
        for (int d = 0; !rc && d < g->nd; d++) {
            rc = time_pass(&r, g->pi_context, g->deltas[d], repeats, use_min, &pi[d], err);
            if (!rc) sr_log("bench latency: %s catch-up of %d tokens at context %d: %.3f ms", opt,
                            g->deltas[d], g->pi_context, 1e3 * pi[d]);
        }
        runner_close(&r);
    }
    if (rc && !pre) sr_fail_prefix(err, "--%s %s", opt, dir);
    sr_unload_model_dir(&be, &m, tok);
    return rc ? -1 : 0;
}

/* "cpu: <model name> (N threads)": the OpenMP threads the passes ran on */
static void cpu_name(char *buf, size_t n) {
    char model[200] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            const char *s = strchr(line, ':') + 1;
            while (*s == ' ') s++;
            snprintf(model, sizeof model, "%s", s);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    }
    if (f) fclose(f);
    int th = omp_get_max_threads();
    snprintf(buf, n, "cpu: %s (%d thread%s)", model, th, th == 1 ? "" : "s");
}

static void print_table(FILE *f, const LatencyTable *t) {
    fprintf(f, "latency table (%s): %s\n", t->measured ? "measured" : "modelled", t->device);
    fprintf(f, "small: %s (%.0f params), big: %s (%.0f params)\n", t->small.name,
            t->small.num_params, t->big.name, t->big.num_params);
    fprintf(f, "\ntau: ms per decode step (= per token of each sequence) at each context\n%-6s %6s",
            "model", "batch");
    for (int c = 0; c < t->n_contexts; c++) fprintf(f, " %10d", t->contexts[c]);
    fprintf(f, "\n");
    for (int w = 0; w < 2; w++) {
        const double *g = w ? t->tau_b : t->tau_s;
        for (int b = 0; b < t->n_batches; b++) {
            fprintf(f, "%-6s %6d", b ? "" : (w ? "big" : "small"), t->batches[b]);
            for (int c = 0; c < t->n_contexts; c++) fprintf(f, " %10.3f", 1e3 * g[b * t->n_contexts + c]);
            fprintf(f, "\n");
        }
    }
    fprintf(f, "\npi: ms per catch-up of Δ tokens (one sequence, context %d)\n%-13s", t->pi_context, "Δ");
    for (int d = 0; d < t->n_deltas; d++) fprintf(f, " %10d", t->deltas[d]);
    fprintf(f, "\n");
    for (int w = 0; w < 2; w++) {
        fprintf(f, "%-13s", w ? "big" : "small");
        for (int d = 0; d < t->n_deltas; d++) fprintf(f, " %10.3f", 1e3 * (w ? t->pi_b : t->pi_s)[d]);
        fprintf(f, "\n");
    }
    fprintf(f, "\nsigma: %.3f ms per switch\n", 1e3 * t->sigma);
}

static int run_latency(SrConfig *cfg, SrError *err) {
    const char *out = sr_config_str(cfg, "output");
    if (sr_check_output("--output", out, 0, "--small", sr_config_str(cfg, "small"), err) ||
        sr_check_output("--output", out, 0, "--big", sr_config_str(cfg, "big"), err))
        return -1;
    Grids g;
    if (read_grids(cfg, &g, err)) return -1;
    int cells = g.nb * g.nc;
    LatencyTable *t = sr_calloc(1, sizeof *t);
    t->measured = 1;
    t->n_batches = g.nb, t->n_contexts = g.nc, t->n_deltas = g.nd;
    t->batches = sr_malloc((size_t)g.nb * sizeof(int));
    t->contexts = sr_malloc((size_t)g.nc * sizeof(int));
    t->deltas = sr_malloc((size_t)g.nd * sizeof(int));
    memcpy(t->batches, g.batches, (size_t)g.nb * sizeof(int));
    memcpy(t->contexts, g.contexts, (size_t)g.nc * sizeof(int));
    memcpy(t->deltas, g.deltas, (size_t)g.nd * sizeof(int));
    t->tau_s = sr_calloc((size_t)cells, sizeof(double));
    t->tau_b = sr_calloc((size_t)cells, sizeof(double));
    t->pi_s = sr_calloc((size_t)g.nd, sizeof(double));
    t->pi_b = sr_calloc((size_t)g.nd, sizeof(double));
    t->pi_context = g.pi_context;
    char device[256] = "";
    double tau1_s = 0, tau1_b = 0;
    int rc = measure_model(sr_config_str(cfg, "small"), "small", cfg, &g, &t->small, t->tau_s,
                           t->pi_s, &tau1_s, device, sizeof device, err);
    if (!rc)
        rc = measure_model(sr_config_str(cfg, "big"), "big", cfg, &g, &t->big, t->tau_b, t->pi_b,
                           &tau1_b, device, sizeof device, err);
    if (!rc) {
        /* pi(1) is one pass of one token: read it off the pi grid when Δ = 1 is there */
        double pi1 = latency_pi(t, LATENCY_SMALL, 1) + latency_pi(t, LATENCY_BIG, 1);
        t->sigma = pi1 - tau1_s - tau1_b > 0 ? pi1 - tau1_s - tau1_b : 0;
        if (sr_config_has(cfg, "device_name")) snprintf(device, sizeof device, "%s", sr_config_str(cfg, "device_name"));
        else if (!device[0]) cpu_name(device, sizeof device);
        t->device = sr_strdup(device);
        if (sr_config_has(cfg, "note")) t->note = sr_strdup(sr_config_str(cfg, "note"));
        SrBuf s = {0};
        sr_buf_printf(&s, "{\"repeats\": %d, \"statistic\": \"%s\", \"threads\": %d, "
                      "\"passes\": \"%s\", \"sigma\": \"pi(1) - tau(1, pi_context), small + big, clamped at 0\", "
                      "\"seed\": %lld}", (int)sr_config_int(cfg, "repeats"), sr_config_str(cfg, "statistic"), omp_get_max_threads(),
                      "engine_forward + engine_sample (greedy)",
                      sr_config_int(cfg, "seed"));
        t->settings = sr_buf_take(&s);
        rc = latency_table_check(t, "bench latency", err);
    }
    if (!rc) {
        SrBuf json = {0};
        latency_table_to_json(t, &json);
        SrOutFile o;
        rc = sr_out_open(&o, out, err);
        if (!rc) {
            if (fwrite(json.p, 1, json.n, o.f) != json.n) {
                sr_out_abort(&o);
                rc = sr_fail(err, "--output %s: write failed", out ? out : "-");
            } else {
                rc = sr_out_commit(&o, err);
            }
        }
        sr_buf_free(&json);
        int to_file = out && strcmp(out, "-") != 0;
        if (!rc) print_table(to_file ? stdout : stderr, t);
    }
    latency_table_free(t);
    return rc;
}

static int run(SrConfig *cfg, SrError *err) {
    /* the only subcommand so far: --what is checked against its choices */
    return run_latency(cfg, err);
}

const SrCommand sr_cmd_bench = {
    "bench", "measure on this machine (bench latency: the latency table of a model pair)",
    "splitreason bench latency --small DIR --big DIR [--device cpu|cuda] [--output FILE] "
    "[--batches 1,4,16] [--contexts 128,512,2048] [--deltas 1,8,32,128] [--repeats N]",
    "bench latency measures the latency table of split decoding for a model pair (one model in\n"
    "memory at a time): tau_s, tau_b, the wall time of a decode step at each batch size and\n"
    "context length (= the time per token as each sequence sees it); pi_s(Δ), pi_b(Δ), a\n"
    "catch-up pass of Δ tokens of one sequence against a cache of --pi-context positions; sigma,\n"
    "pi(1) - tau(1) of both models (what a switch costs beyond its passes; ~0 in one process).\n"
    "Medians (--statistic min: minima) of --repeats passes after a warm-up. Writes the table\n"
    "(configs/latency/README.md) atomically to --output (else stdout) and prints it as a table.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, "what", check,
};
