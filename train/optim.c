/*
 * AdamW (ZeRO-1 sharded), gradient-norm clipping, learning-rate schedules, and the
 * optimizer-state checkpoint. See optim.h for the contract.
 *
 * The flat vector: the model keeps every parameter in one allocation (model/model.h), each
 * starting at a multiple of 64 elements with zero padding between them. A rank's slice cuts
 * through it anywhere (a tensor may straddle two ranks); the runs of equal decay are the
 * intersections of the tensors with the slice, merged while the decay flag stays the same
 * (the zero padding between tensors rides along: AdamW on zeros with zero gradient stays 0).
 */
#include "optim.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fileio.h"
#include "../common/safetensors.h"

#define SR_SHARD_ALIGN 64 /* elements: shard boundaries stay vector-aligned */

/* ---- learning-rate schedules ------------------------------------------------------------ */

static const char *const LR_NAMES[] = {"constant", "constant_with_warmup", "linear", "cosine",
                                       "cosine_with_min_lr"};

int sr_lr_kind_parse(const char *name, SrLrKind *out, SrError *err) {
    for (int k = 0; k < (int)(sizeof LR_NAMES / sizeof LR_NAMES[0]); k++)
        if (name && strcmp(name, LR_NAMES[k]) == 0) {
            *out = (SrLrKind)k;
            return 0;
        }
    return sr_fail(err, "lr_scheduler_type '%s': unknown (expected constant, "
                   "constant_with_warmup, linear, cosine or cosine_with_min_lr)",
                   name ? name : "(null)");
}

const char *sr_lr_kind_name(SrLrKind k) {
    return (unsigned)k < sizeof LR_NAMES / sizeof LR_NAMES[0] ? LR_NAMES[k] : "?";
}

int sr_lr_warmup_steps(double warmup_steps, double warmup_ratio, int total_steps) {
    if (warmup_steps >= 1) return (int)warmup_steps;
    if (warmup_steps > 0) return (int)ceil((double)total_steps * warmup_steps);
    if (warmup_ratio > 0) return (int)ceil((double)total_steps * warmup_ratio);
    return 0;
}

int sr_lr_schedule_init(SrLrSchedule *s, const char *name, double lr, int total_steps,
                        double warmup_steps, double warmup_ratio, double min_lr_rate,
                        SrError *err) {
    memset(s, 0, sizeof *s);
    if (sr_lr_kind_parse(name, &s->kind, err)) return -1;
    if (!(lr >= 0)) return sr_fail(err, "learning_rate %g: must be >= 0", lr);
    if (!(warmup_steps >= 0) || !(warmup_ratio >= 0))
        return sr_fail(err, "warmup_steps %g / warmup_ratio %g: must be >= 0", warmup_steps,
                       warmup_ratio);
    if (s->kind >= SR_LR_LINEAR && total_steps < 1)
        return sr_fail(err, "lr_scheduler_type %s needs the number of training steps (got %d)",
                       name, total_steps);
    if (!(min_lr_rate >= 0 && min_lr_rate <= 1))
        return sr_fail(err, "min_lr_rate %g: must be in [0, 1]", min_lr_rate);
    s->lr = lr;
    s->total_steps = total_steps;
    s->warmup_steps = sr_lr_warmup_steps(warmup_steps, warmup_ratio, total_steps);
    s->num_cycles = 0.5;
    s->min_lr_rate = s->kind == SR_LR_COSINE_WITH_MIN_LR ? min_lr_rate : 0.0;
    return 0;
}

/* transformers/optimization.py, the _lr_lambda functions, in the same operation order */
static double lr_lambda(const SrLrSchedule *s, int step) {
    int W = s->warmup_steps, T = s->total_steps;
    if (s->kind == SR_LR_CONSTANT) return 1.0;
    if (step < W) return (double)step / (double)(W > 1 ? W : 1);
    switch (s->kind) {
    case SR_LR_CONSTANT_WITH_WARMUP:
        return 1.0;
    case SR_LR_LINEAR: {
        double f = (double)(T - step) / (double)(T - W > 1 ? T - W : 1);
        return f > 0.0 ? f : 0.0;
    }
    case SR_LR_COSINE:
    case SR_LR_COSINE_WITH_MIN_LR: {
        double progress = (double)(step - W) / (double)(T - W > 1 ? T - W : 1);
        double f = 0.5 * (1.0 + cos(M_PI * s->num_cycles * 2.0 * progress));
        if (s->kind == SR_LR_COSINE_WITH_MIN_LR) f = f * (1 - s->min_lr_rate) + s->min_lr_rate;
        return f > 0.0 ? f : 0.0;
    }
    default:
        return 1.0;
    }
}

double sr_lr_at(const SrLrSchedule *s, int step) { return s->lr * lr_lambda(s, step); }

/* ---- decay rule -------------------------------------------------------------------------- */

void sr_adamw_config_default(SrAdamWConfig *c) {
    memset(c, 0, sizeof *c);
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->weight_decay = 0.0f;
    c->max_grad_norm = 1.0f;
}

/* transformers Trainer.get_decay_parameter_names: forbidden patterns on the lower-cased name
 * "bias", "layernorm", "rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)" */
int sr_param_decays(const char *name) {
    char low[128];
    size_t n = strlen(name);
    if (n >= sizeof low) n = sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)name[i]);
    low[n] = '\0';
    if (strstr(low, "bias") || strstr(low, "layernorm") || strstr(low, "rmsnorm")) return 0;
    for (const char *p = strstr(low, "norm"); p; p = strstr(p + 1, "norm")) {
        int end_ok = p[4] == '\0' || p[4] == '.';
        if (!end_ok) continue;
        if (p == low || p[-1] == '.') return 0;                  /* (^|.)norm($|.) */
        if (p[-1] == '_') return 0;                              /* _norm($|.) */
    }
    return 1;
}

/* ---- AdamW, ZeRO-1 ----------------------------------------------------------------------- */

static size_t asz_of(const SrOptimizer *o) { return sr_act_size(o->m->be); }
static void *param_at(const SrOptimizer *o, size_t i) {
    return (char *)o->m->params + i * asz_of(o);
}
static void *grad_at(const SrOptimizer *o, size_t i) {
    return (char *)o->m->grads + i * asz_of(o);
}

static void build_runs(SrOptimizer *o) {
    const Qwen2Model *m = o->m;
    size_t lo = o->shard.lo, hi = o->shard.lo + o->shard.shard_n;
    o->runs = sr_calloc((size_t)m->n_params + 1, sizeof(SrOptRun));
    o->n_runs = 0;
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->info[i];
        size_t a = p->offset > lo ? p->offset : lo;
        size_t b = p->offset + p->numel < hi ? p->offset + p->numel : hi;
        if (a >= b) continue;
        int decay = sr_param_decays(p->name);
        SrOptRun *r = o->n_runs ? &o->runs[o->n_runs - 1] : NULL;
        if (r && r->decay == decay) {
            r->n = b - lo - r->off; /* extend over the zero padding in between */
        } else {
            r = &o->runs[o->n_runs++];
            r->off = a - lo;
            r->n = b - a;
            r->decay = decay;
        }
    }
}

/* master = params slice, through the host (f32 <- act); once per init/load */
void sr_optim_sync_master(SrOptimizer *o) {
    if (o->master_is_params || !o->shard.shard_n) return;
    SrBackend *be = o->m->be;
    float *h = sr_malloc(o->shard.shard_n * sizeof(float));
    be->ops->download_act(be, h, param_at(o, o->shard.lo), o->shard.shard_n);
    be->ops->upload(be, o->master, h, o->shard.shard_n * sizeof(float));
    free(h);
}

int sr_optim_init(SrOptimizer *o, Qwen2Model *m, SrComm *comm, const SrAdamWConfig *cfg,
                  SrError *err) {
    memset(o, 0, sizeof *o);
    if (!comm->be || comm->be != m->be)
        return sr_fail(err, "optimizer: the communicator is not attached to the model's backend");
    if (!(cfg->beta1 >= 0 && cfg->beta1 < 1 && cfg->beta2 >= 0 && cfg->beta2 < 1))
        return sr_fail(err, "optimizer: adam betas (%g, %g) must be in [0, 1)", cfg->beta1,
                       cfg->beta2);
    if (!(cfg->eps >= 0) || !(cfg->weight_decay >= 0))
        return sr_fail(err, "optimizer: adam_epsilon %g and weight_decay %g must be >= 0",
                       cfg->eps, cfg->weight_decay);
    o->cfg = *cfg;
    o->m = m;
    o->comm = comm;
    sr_shard_layout(&o->shard, m->total_numel, comm->size, comm->rank, SR_SHARD_ALIGN);
    qwen2_reserve_flat(m, o->shard.padded);
    if (!m->grads) qwen2_zero_grad(m); /* allocates, so the reduce-scatter has its buffer */
    size_t lo = o->shard.lo, n = o->shard.shard_n;
    o->n_own = lo >= m->total_numel ? 0 : (m->total_numel - lo < n ? m->total_numel - lo : n);
    build_runs(o);

    SrBackend *be = m->be;
    o->master_is_params = be->device == SR_DEVICE_CPU && be->act_dtype == SR_F32 &&
                          !cfg->master_copy;
    if (o->master_is_params) {
        o->master = param_at(o, lo);
    } else {
        o->master = be->ops->alloc(be, (n ? n : 1) * sizeof(float));
        sr_optim_sync_master(o);
    }
    o->exp_avg = be->ops->alloc(be, (n ? n : 1) * sizeof(float));
    o->exp_avg_sq = be->ops->alloc(be, (n ? n : 1) * sizeof(float));
    return 0;
}

void sr_optim_free(SrOptimizer *o) {
    if (!o->m) return;
    SrBackend *be = o->m->be;
    if (!o->master_is_params && o->master) be->ops->free(be, o->master);
    if (o->exp_avg) be->ops->free(be, o->exp_avg);
    if (o->exp_avg_sq) be->ops->free(be, o->exp_avg_sq);
    free(o->runs);
    memset(o, 0, sizeof *o);
}

void sr_optim_reduce_grads(SrOptimizer *o) {
    SR_ASSERT(o->m->grads);
    sr_comm_reduce_scatter_sum(o->comm, o->m->grads, o->shard.shard_n, o->m->be->act_dtype);
}

double sr_optim_grad_norm(SrOptimizer *o) {
    SrBackend *be = o->m->be;
    double ss = o->n_own ? be->ops->sum_squares(be, grad_at(o, o->shard.lo), o->n_own) : 0.0;
    sr_comm_allreduce_host(o->comm, &ss, 1);
    return sqrt(ss);
}

float sr_optim_clip_coef(const SrAdamWConfig *cfg, double grad_norm) {
    if (!(cfg->max_grad_norm > 0)) return 1.0f;
    /* torch.nn.utils.clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6), clamped
     * to 1, and the gradients are multiplied by it (in fp32) */
    float norm = (float)grad_norm;
    float coef = cfg->max_grad_norm / (norm + 1e-6f);
    return coef < 1.0f ? coef : 1.0f;
}

void sr_optim_update(SrOptimizer *o, float lr, float grad_scale) {
    SrBackend *be = o->m->be;
    const SrAdamWConfig *c = &o->cfg;
    int t = o->step + 1;
    size_t lo = o->shard.lo;
    for (int i = 0; i < o->n_runs; i++) {
        const SrOptRun *r = &o->runs[i];
        be->ops->adamw(be, param_at(o, lo + r->off), o->master + r->off,
                       grad_at(o, lo + r->off), o->exp_avg + r->off, o->exp_avg_sq + r->off,
                       r->n, lr, c->beta1, c->beta2, c->eps, r->decay ? c->weight_decay : 0.0f,
                       grad_scale, t);
    }
    o->step = t;
}

void sr_optim_gather_params(SrOptimizer *o) {
    sr_comm_all_gather(o->comm, o->m->params, o->shard.shard_n, o->m->be->act_dtype);
}

int sr_optim_find_nonfinite(SrOptimizer *o, int grads, char *name, size_t name_size) {
    const Qwen2Model *m = o->m;
    SrBackend *be = m->be;
    size_t lo = o->shard.lo, hi = o->shard.lo + o->shard.shard_n;
    double *ss = sr_calloc((size_t)m->n_params, sizeof(double));
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->info[i];
        size_t a = p->offset > lo ? p->offset : lo;
        size_t b = p->offset + p->numel < hi ? p->offset + p->numel : hi;
        if (a < b) ss[i] = be->ops->sum_squares(be, grads ? grad_at(o, a) : param_at(o, a), b - a);
    }
    sr_comm_allreduce_host(o->comm, ss, m->n_params);
    int found = -1;
    for (int k = 0; k < m->n_params && found < 0; k++) {
        int i = grads ? m->n_params - 1 - k : k;
        if (!isfinite(ss[i])) found = i;
    }
    free(ss);
    if (name_size) snprintf(name, name_size, "%s", found >= 0 ? m->info[found].name : "");
    return found >= 0;
}

/* ---- checkpoints -------------------------------------------------------------------------- */

static char *state_path(const SrOptimizer *o, const char *dir) {
    char file[96];
    snprintf(file, sizeof file, "optimizer-rank%05d-of-%05d.safetensors", o->comm->rank,
             o->comm->size);
    return sr_path_join(dir, file);
}

int sr_optim_save(const SrOptimizer *o, const char *dir, SrError *err) {
    SrBackend *be = o->m->be;
    size_t n = o->shard.shard_n;
    if (sr_mkdir_p(dir, err)) return -1;
    float *h = sr_malloc((3 * n + 1) * sizeof(float));
    float *hm = h, *ha = h + n, *hv = h + 2 * n;
    if (o->master_is_params)
        be->ops->download_act(be, hm, o->master, n);
    else
        be->ops->download(be, hm, o->master, n * sizeof(float));
    be->ops->download(be, ha, o->exp_avg, n * sizeof(float));
    be->ops->download(be, hv, o->exp_avg_sq, n * sizeof(float));
    int64_t step = o->step;
    int64_t layout[5] = {o->comm->rank, o->comm->size, (int64_t)o->m->total_numel,
                         (int64_t)o->shard.lo, (int64_t)n};
    StWriteTensor t[5] = {
        {"master", ST_F32, 1, {(int64_t)n}, hm},
        {"exp_avg", ST_F32, 1, {(int64_t)n}, ha},
        {"exp_avg_sq", ST_F32, 1, {(int64_t)n}, hv},
        {"step", ST_I64, 1, {1}, &step},
        {"layout", ST_I64, 1, {5}, layout},
    };
    char *path = state_path(o, dir);
    int rc = safetensors_write(path, t, 5, err);
    free(path);
    free(h);
    return rc;
}

static int read_i64(const SafeTensors *st, const char *name, int64_t *out, int n, SrError *err) {
    const StTensor *t = safetensors_find(st, name);
    if (!t || t->dtype != ST_I64 || (int)t->numel != n)
        return sr_fail(err, "%s: tensor '%s' missing or not I64 [%d]", st->path, name, n);
    memcpy(out, t->data, (size_t)n * sizeof(int64_t));
    return 0;
}

static int read_f32(const SafeTensors *st, const char *name, float *out, size_t n,
                    SrError *err) {
    const StTensor *t = safetensors_find(st, name);
    if (!t || t->dtype != ST_F32 || t->numel != n)
        return sr_fail(err, "%s: tensor '%s' missing or not F32 [%zu]", st->path, name, n);
    return st_tensor_to_f32(t, out, err);
}

int sr_optim_load(SrOptimizer *o, const char *dir, SrError *err) {
    SrBackend *be = o->m->be;
    size_t n = o->shard.shard_n;
    char *path = state_path(o, dir);
    SafeTensors st;
    int rc = safetensors_open(&st, path, err);
    free(path);
    if (rc) return -1;
    int64_t step = 0, layout[5] = {0};
    float *h = sr_malloc((3 * n + 1) * sizeof(float));
    rc = read_i64(&st, "step", &step, 1, err) || read_i64(&st, "layout", layout, 5, err);
    if (!rc && (layout[0] != o->comm->rank || layout[1] != o->comm->size ||
                layout[2] != (int64_t)o->m->total_numel || layout[3] != (int64_t)o->shard.lo ||
                layout[4] != (int64_t)n))
        rc = sr_fail(err, "%s: written by rank %lld of %lld for a model of %lld elements "
                     "(slice %lld + %lld); this run is rank %d of %d with %zu elements (slice "
                     "%zu + %zu): resume with the same number of processes and model",
                     st.path, (long long)layout[0], (long long)layout[1],
                     (long long)layout[2], (long long)layout[3], (long long)layout[4],
                     o->comm->rank, o->comm->size, o->m->total_numel, o->shard.lo, n);
    if (!rc && step < 0) rc = sr_fail(err, "%s: step %lld is negative", st.path, (long long)step);
    if (!rc)
        rc = read_f32(&st, "master", h, n, err) || read_f32(&st, "exp_avg", h + n, n, err) ||
             read_f32(&st, "exp_avg_sq", h + 2 * n, n, err);
    safetensors_close(&st);
    if (!rc) {
        /* the parameters follow the master (bf16-rounded on CUDA) */
        be->ops->upload_act(be, param_at(o, o->shard.lo), h, n);
        if (!o->master_is_params) be->ops->upload(be, o->master, h, n * sizeof(float));
        be->ops->upload(be, o->exp_avg, h + n, n * sizeof(float));
        be->ops->upload(be, o->exp_avg_sq, h + 2 * n, n * sizeof(float));
        o->step = (int)step;
    }
    free(h);
    /* every rank takes part in the gather, failed or not, so none waits forever; a rank that
     * failed keeps its old slice and reports the error */
    double bad = rc ? 1.0 : 0.0;
    sr_comm_allreduce_host(o->comm, &bad, 1);
    if (bad > 0 && !rc) rc = sr_fail(err, "optimizer state: another rank failed to load it");
    if (!rc) sr_optim_gather_params(o);
    return rc;
}
