/*
 * The optimizer against torch / transformers (fixtures: scripts/make_optim_golden.py):
 *   - the weight-decay rule (transformers' get_decay_parameter_names) on Qwen2 names;
 *   - every lr schedule, step by step, against transformers' get_scheduler (1e-7 relative);
 *   - AdamW with two parameter groups + clip_grad_norm_ fed torch's own gradients, 3 steps
 *     (one clipped, one at lr 0), against torch.optim.AdamW; the CPU master-alias path and
 *     the separate-master path (what CUDA runs) must agree bit for bit;
 *   - whole training steps (our forward/backward) against the same golden;
 *   - gradient accumulation: k micro-batches normalised by the global target count give the
 *     one-big-batch gradient and update (and per-micro-batch means do not: the control);
 *   - optimizer state save / load: bit-exact resume, and refusals of mismatched state;
 *   - NaN/Inf: the step is skipped and the first non-finite tensor is named.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/rng.h"
#include "common/safetensors.h"
#include "harness.h"
#include "train/optim.h"
#include "train/train_step.h"

static SafeTensors G;  /* tests/fixtures/optim/golden.safetensors */
static double HP[9];   /* lr, wd, beta1, beta2, eps, max_grad_norm, warmup, total, min_lr_rate */
enum { K_STEPS = 3 };

static const StTensor *gt(const char *name) {
    const StTensor *t = safetensors_find(&G, name);
    if (!t) {
        fprintf(stderr, "golden: tensor %s missing\n", name);
        exit(1);
    }
    return t;
}

static double g_f64(const char *name) {
    const StTensor *t = gt(name);
    SR_ASSERT(t->dtype == ST_F64);
    double x;
    memcpy(&x, t->data, sizeof x);
    return x;
}

static float *g_f32(const char *name, size_t *n) {
    const StTensor *t = gt(name);
    float *x = malloc(t->numel * sizeof(float));
    SrError err;
    SR_ASSERT(st_tensor_to_f32(t, x, &err) == 0);
    if (n) *n = t->numel;
    return x;
}

static int32_t *g_i32(const char *name, int *n) {
    const StTensor *t = gt(name);
    SR_ASSERT(t->dtype == ST_I32);
    int32_t *x = malloc(t->nbytes);
    memcpy(x, t->data, t->nbytes);
    *n = (int)t->numel;
    return x;
}

static double rel(double a, double b) { return fabs(a - b) / (fabs(b) > 0 ? fabs(b) : 1.0); }

static float *host_params(const Qwen2Model *m) {
    float *x = malloc(m->alloc_numel * sizeof(float));
    m->be->ops->download_act(m->be, x, m->params, m->alloc_numel);
    return x;
}

static void load_model(Qwen2Model *m, SrBackend *be) {
    SrError err;
    if (qwen2_load(m, sr_test_fixture("optim"), be, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
}

static void golden_config(SrAdamWConfig *c, SrLrSchedule *s) {
    sr_adamw_config_default(c);
    c->weight_decay = (float)HP[1];
    c->beta1 = (float)HP[2];
    c->beta2 = (float)HP[3];
    c->eps = (float)HP[4];
    c->max_grad_norm = (float)HP[5];
    SrError err;
    SR_ASSERT(sr_lr_schedule_init(s, "cosine_with_min_lr", HP[0], (int)HP[7], HP[6], 0, HP[8],
                                  &err) == 0);
}

/* || p - final || / || final - p0 ||: the error relative to the size of the whole update */
static double update_err(const Qwen2Model *m, const float *p0, double *param_err) {
    float *p = host_params(m);
    double num = 0, den = 0, pn = 0;
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *pi = &m->info[i];
        char name[160];
        snprintf(name, sizeof name, "final.%s", pi->name);
        size_t n;
        float *ref = g_f32(name, &n);
        SR_ASSERT(n == pi->numel);
        for (size_t j = 0; j < n; j++) {
            double a = p[pi->offset + j], b = ref[j], z = p0[pi->offset + j];
            num += (a - b) * (a - b);
            den += (b - z) * (b - z);
            pn += b * b;
        }
        free(ref);
    }
    free(p);
    if (param_err) *param_err = sqrt(num / pn);
    return sqrt(num / den);
}

/* ---- the decay rule ---------------------------------------------------------------------- */

static void test_decay_rule(SrBackend *be) {
    Qwen2Model m;
    load_model(&m, be);
    int n_no = 0;
    for (int i = 0; i < m.n_params; i++) {
        const char *n = m.info[i].name;
        int expect = !(strstr(n, ".bias") || strstr(n, "layernorm") ||
                       strcmp(n, "model.norm.weight") == 0);
        CHECKF(sr_param_decays(n) == expect, "%s: decays %d, expected %d", n,
               sr_param_decays(n), expect);
        n_no += !expect;
    }
    CHECK(n_no == 11); /* as the golden script printed: 3 biases + 2 norms per layer, + norm */
    /* the regex corners */
    CHECK(sr_param_decays("model.embed_tokens.weight") == 1);
    CHECK(sr_param_decays("lm_head.weight") == 1);
    CHECK(sr_param_decays("norm.weight") == 0);        /* ^norm. */
    CHECK(sr_param_decays("a.norm") == 0);             /* .norm$ */
    CHECK(sr_param_decays("a.q_norm.weight") == 0);    /* _norm. */
    CHECK(sr_param_decays("a.RMSNorm.weight") == 0);   /* lower-cased */
    CHECK(sr_param_decays("a.normal.weight") == 1);    /* norm must end a segment */
    CHECK(sr_param_decays("a.denorm.weight") == 1);
    CHECK(sr_param_decays("a.Bias_scale") == 0);       /* "bias" anywhere */
    qwen2_free(&m);
}

/* ---- schedules ----------------------------------------------------------------------------- */

static void test_schedules(void) {
    char *text = sr_test_read_file(sr_test_fixture("optim/schedules.json"), NULL);
    CHECK(text != NULL);
    if (!text) return;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *cases = cJSON_GetObjectItem(j, "cases");
    int n_cases = 0, n_vals = 0;
    double worst = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        double lr = cJSON_GetObjectItem(c, "lr")->valuedouble;
        int total = cJSON_GetObjectItem(c, "total_steps")->valueint;
        double warm = cJSON_GetObjectItem(c, "warmup_steps")->valuedouble;
        int resolved = cJSON_GetObjectItem(c, "resolved_warmup")->valueint;
        double rate = cJSON_GetObjectItem(c, "min_lr_rate")->valuedouble;
        SrLrSchedule s;
        SrError err;
        CHECKF(sr_lr_schedule_init(&s, name, lr, total, warm, 0, rate, &err) == 0, "%s: %s",
               name, err.msg);
        CHECKF(s.warmup_steps == resolved, "%s warmup %g: %d, transformers %d", name, warm,
               s.warmup_steps, resolved);
        /* transformers 4's warmup_ratio means the same as a fractional warmup_steps */
        if (warm > 0 && warm < 1) {
            SrLrSchedule s2;
            CHECK(sr_lr_schedule_init(&s2, name, lr, total, 0, warm, rate, &err) == 0);
            CHECK(s2.warmup_steps == resolved);
        }
        int k = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItem(c, "lrs")) {
            double want = v->valuedouble, got = sr_lr_at(&s, k);
            double e = want == 0 ? fabs(got) / lr : rel(got, want);
            CHECKF(e <= 1e-7, "%s (warmup %g, total %d) step %d: lr %.17g, transformers %.17g",
                   name, warm, total, k, got, want);
            if (e > worst) worst = e;
            k++;
            n_vals++;
        }
        n_cases++;
    }
    cJSON_Delete(j);
    CHECK(n_cases == 10);
    printf("  schedules: %d cases, %d learning rates, worst rel err %.3g\n", n_cases, n_vals,
           worst);

    SrLrSchedule s;
    SrError err;
    CHECK(sr_lr_schedule_init(&s, "cosine_restarts", 1e-3, 10, 0, 0, 0, &err) == -1);
    CHECK(strstr(err.msg, "cosine_restarts") != NULL);
    CHECK(sr_lr_schedule_init(&s, "cosine", 1e-3, 0, 0, 0, 0, &err) == -1);
    CHECK(sr_lr_schedule_init(&s, "cosine_with_min_lr", 1e-3, 10, 0, 0, 1.5, &err) == -1);
    CHECK(sr_lr_schedule_init(&s, "constant", 1e-3, 0, 0, 0, 0, &err) == 0);
    CHECK(sr_lr_at(&s, 12345) == 1e-3);
}

/* ---- AdamW + clipping with torch's gradients ------------------------------------------------ */

static void upload_golden_grads(Qwen2Model *m, int step) {
    float *h = calloc(m->alloc_numel, sizeof(float));
    for (int i = 0; i < m->n_params; i++) {
        char name[160];
        snprintf(name, sizeof name, "step%d.grad.%s", step, m->info[i].name);
        size_t n;
        float *g = g_f32(name, &n);
        SR_ASSERT(n == m->info[i].numel);
        memcpy(h + m->info[i].offset, g, n * sizeof(float));
        free(g);
    }
    m->be->ops->upload_act(m->be, m->grads, h, m->alloc_numel);
    free(h);
}

static float *adamw_vs_torch(SrBackend *be, int master_copy) {
    Qwen2Model m;
    load_model(&m, be);
    SrComm comm;
    SrError err;
    sr_comm_init_single(&comm);
    CHECK(sr_comm_attach(&comm, be, &err) == 0);
    SrAdamWConfig cfg;
    SrLrSchedule sched;
    golden_config(&cfg, &sched);
    cfg.master_copy = master_copy;
    SrOptimizer o;
    CHECK(sr_optim_init(&o, &m, &comm, &cfg, &err) == 0);
    CHECK(o.master_is_params == !master_copy);
    CHECK(o.n_runs > 1 && o.n_own == m.total_numel);
    float *p0 = host_params(&m);
    int n_clipped = 0;
    for (int s = 0; s < K_STEPS; s++) {
        char name[64];
        upload_golden_grads(&m, s);
        sr_optim_reduce_grads(&o); /* a no-op on one process */
        double norm = sr_optim_grad_norm(&o);
        snprintf(name, sizeof name, "step%d.grad_norm", s);
        double want_norm = g_f64(name);
        CHECKF(rel(norm, want_norm) < 1e-6, "step %d: grad norm %.9g, torch %.9g", s, norm,
               want_norm);
        float clip = sr_optim_clip_coef(&cfg, norm);
        CHECK((clip < 1.0f) == (want_norm > cfg.max_grad_norm));
        n_clipped += clip < 1.0f;
        double lr = sr_lr_at(&sched, o.step);
        snprintf(name, sizeof name, "step%d.lr", s);
        double want_lr = g_f64(name);
        CHECKF(want_lr == 0 ? lr == 0 : rel(lr, want_lr) < 1e-7, "step %d: lr %.17g, torch %.17g",
               s, lr, want_lr);
        sr_optim_update(&o, (float)lr, clip);
    }
    CHECK(o.step == K_STEPS);
    CHECK(n_clipped == 1);
    double perr;
    double e = update_err(&m, p0, &perr);
    printf("  AdamW (%s master) fed torch's gradients, %d steps: update rel err %.3g, "
           "parameter rel err %.3g\n", master_copy ? "separate" : "aliased", K_STEPS, e, perr);
    CHECKF(e < 2e-6, "AdamW vs torch: update relative error %.3g", e);
    float *p = host_params(&m);
    free(p0);
    sr_optim_free(&o);
    sr_comm_free(&comm);
    qwen2_free(&m);
    return p;
}

/* ---- whole steps ---------------------------------------------------------------------------- */

typedef struct Batch {
    int32_t *ids, *pos, *targets;
    int N;
} Batch;

static Batch golden_batch(int s) {
    Batch b;
    char name[64];
    int n1, n2, n3;
    snprintf(name, sizeof name, "step%d.input_ids", s);
    b.ids = g_i32(name, &n1);
    snprintf(name, sizeof name, "step%d.position_ids", s);
    b.pos = g_i32(name, &n2);
    snprintf(name, sizeof name, "step%d.targets", s);
    b.targets = g_i32(name, &n3);
    SR_ASSERT(n1 == n2 && n2 == n3);
    b.N = n1;
    return b;
}

static void batch_free(Batch *b) {
    free(b->ids);
    free(b->pos);
    free(b->targets);
}

static void train_steps_vs_torch(SrBackend *be) {
    Qwen2Model m;
    load_model(&m, be);
    SrComm comm;
    SrError err;
    sr_comm_init_single(&comm);
    sr_comm_attach(&comm, be, &err);
    SrAdamWConfig cfg;
    SrLrSchedule sched;
    golden_config(&cfg, &sched);
    SrOptimizer o;
    CHECK(sr_optim_init(&o, &m, &comm, &cfg, &err) == 0);
    float *p0 = host_params(&m);
    for (int s = 0; s < K_STEPS; s++) {
        Batch b = golden_batch(s);
        SrMicroBatch mb = {b.ids, b.pos, b.targets, NULL, b.N};
        SrStepStats st;
        CHECK(sr_train_step(&o, &sched, &mb, 1, &st, &err) == 0);
        char name[64];
        snprintf(name, sizeof name, "step%d.loss", s);
        double want_loss = g_f64(name);
        snprintf(name, sizeof name, "step%d.grad_norm", s);
        double want_norm = g_f64(name);
        CHECKF(rel(st.loss, want_loss) < 1e-5, "step %d: loss %.9g, torch %.9g", s, st.loss,
               want_loss);
        CHECKF(rel(st.grad_norm, want_norm) < 1e-4, "step %d: grad norm %.9g, torch %.9g", s,
               st.grad_norm, want_norm);
        CHECK(!st.nonfinite);
        CHECK(st.n_tokens == b.N);
        int nt = 0;
        for (int i = 0; i < b.N; i++) nt += b.targets[i] >= 0;
        CHECK(st.n_targets == nt);
        printf("  step %d: loss %.6f (torch %.6f), grad norm %.6f (torch %.6f), lr %.4g, clip "
               "%.4f\n", s, st.loss, want_loss, st.grad_norm, want_norm, st.lr, st.clip_coef);
        batch_free(&b);
    }
    double perr;
    double e = update_err(&m, p0, &perr);
    printf("  %d training steps (our forward/backward): update rel err %.3g, parameter rel err "
           "%.3g\n", K_STEPS, e, perr);
    CHECKF(e < 1e-4, "training steps vs torch: update relative error %.3g", e);
    free(p0);
    sr_optim_free(&o);
    sr_comm_free(&comm);
    qwen2_free(&m);
}

/* ---- gradient accumulation -------------------------------------------------------------------- */

/* 5 documents with different lengths and loss masks, as 3 micro-batches {0,1} {2} {3,4} */
typedef struct Global {
    Batch all;
    int n_micro;
    SrMicroBatch mb[3];
} Global;

static Global make_global(int V, uint64_t seed) {
    static const int lens[5] = {7, 12, 5, 16, 9};
    Global g;
    int N = 0;
    for (int d = 0; d < 5; d++) N += lens[d];
    g.all.N = N;
    g.all.ids = malloc(N * sizeof(int32_t));
    g.all.pos = malloc(N * sizeof(int32_t));
    g.all.targets = malloc(N * sizeof(int32_t));
    uint64_t rng = seed;
    int i = 0, starts[6];
    for (int d = 0; d < 5; d++) {
        starts[d] = i;
        for (int t = 0; t < lens[d]; t++, i++) {
            g.all.ids[i] = (int32_t)(sr_rng_u64(&rng) % (uint64_t)V);
            g.all.pos[i] = t;
        }
    }
    starts[5] = N;
    for (int d = 0; d < 5; d++)
        for (int k = starts[d]; k < starts[d + 1]; k++) {
            int last = k == starts[d + 1] - 1;
            /* document 3 is mostly prompt (masked): very uneven target counts */
            int masked = last || (d == 3 && k < starts[d] + 12) || sr_rng_uniform(&rng) < 0.2f;
            g.all.targets[k] = masked ? -1 : g.all.ids[k + 1];
        }
    int cut[4] = {0, starts[2], starts[3], N};
    g.n_micro = 3;
    for (int k = 0; k < 3; k++) {
        int a = cut[k], b = cut[k + 1];
        g.mb[k] = (SrMicroBatch){g.all.ids + a, g.all.pos + a, g.all.targets + a, NULL, b - a};
    }
    return g;
}

static void test_accumulation(SrBackend *be) {
    SrError err;
    Qwen2Model m;
    load_model(&m, be);
    Global g = make_global(m.cfg.vocab_size, 99);
    int n_all = 0, n_mb[3] = {0};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < g.mb[k].N; i++) n_mb[k] += g.mb[k].targets[i] >= 0;
    n_all = n_mb[0] + n_mb[1] + n_mb[2];

    /* the gradient: one batch vs three pieces over the global count */
    size_t n = m.total_numel;
    float loss_all, loss_k, loss_sum = 0;
    qwen2_zero_grad(&m);
    CHECK(qwen2_forward_backward(&m, g.all.ids, g.all.pos, g.all.targets, NULL, g.all.N,
                                 &loss_all, NULL, &err) == 0);
    float *g_all = host_params(&m); /* (params layout) */
    m.be->ops->download_act(m.be, g_all, m.grads, n);
    qwen2_zero_grad(&m);
    for (int k = 0; k < 3; k++) {
        CHECK(qwen2_forward_backward_norm(&m, g.mb[k].ids, g.mb[k].pos, g.mb[k].targets, NULL,
                                          g.mb[k].N, n_all, &loss_k, NULL, &err) == 0);
        loss_sum += loss_k;
    }
    float *g_acc = malloc(n * sizeof(float));
    m.be->ops->download_act(m.be, g_acc, m.grads, n);
    double e = sr_rel_err(g_acc, g_all, n);
    printf("  accumulation: 3 micro-batches (%d, %d, %d targets) vs one batch of %d: gradient "
           "rel err %.3g, loss %.7f vs %.7f\n", n_mb[0], n_mb[1], n_mb[2], n_all, e, loss_sum,
           loss_all);
    CHECKF(e < 1e-5, "accumulated gradient vs one batch: rel err %.3g", e);
    CHECK(rel(loss_sum, loss_all) < 1e-6);
    /* control: averaging per-micro-batch means is a different (wrong) gradient */
    qwen2_zero_grad(&m);
    for (int k = 0; k < 3; k++)
        CHECK(qwen2_forward_backward_norm(&m, g.mb[k].ids, g.mb[k].pos, g.mb[k].targets, NULL,
                                          g.mb[k].N, 3.0 * n_mb[k], &loss_k, NULL, &err) == 0);
    m.be->ops->download_act(m.be, g_acc, m.grads, n);
    double e_wrong = sr_rel_err(g_acc, g_all, n);
    printf("  control: mean of per-micro-batch means: gradient rel err %.3g\n", e_wrong);
    CHECK(e_wrong > 1e-2);
    CHECK(qwen2_forward_backward_norm(&m, g.all.ids, g.all.pos, g.all.targets, NULL, g.all.N,
                                      0.0, &loss_k, NULL, &err) == -1);
    free(g_all);
    free(g_acc);
    qwen2_free(&m);

    /* whole steps: sr_train_step with the 3 micro-batches vs the one batch */
    float *p[2];
    double losses[2], norms[2];
    for (int split = 0; split < 2; split++) {
        load_model(&m, be);
        SrComm comm;
        sr_comm_init_single(&comm);
        sr_comm_attach(&comm, be, &err);
        SrAdamWConfig cfg;
        SrLrSchedule sched;
        golden_config(&cfg, &sched);
        SrOptimizer o;
        sr_optim_init(&o, &m, &comm, &cfg, &err);
        SrMicroBatch one = {g.all.ids, g.all.pos, g.all.targets, NULL, g.all.N};
        SrStepStats st;
        for (int s = 0; s < 2; s++) {
            CHECK(sr_train_step(&o, &sched, split ? g.mb : &one, split ? 3 : 1, &st, &err) == 0);
            CHECK(st.n_targets == n_all && st.n_tokens == g.all.N);
        }
        losses[split] = st.loss;
        norms[split] = st.grad_norm;
        p[split] = host_params(&m);
        sr_optim_free(&o);
        sr_comm_free(&comm);
        qwen2_free(&m);
    }
    double ep = sr_rel_err(p[1], p[0], n);
    printf("  2 steps, 3 micro-batches vs 1: parameter rel err %.3g, loss %.7f vs %.7f, "
           "norm %.7f vs %.7f\n", ep, losses[1], losses[0], norms[1], norms[0]);
    CHECK(ep < 1e-6);
    CHECK(rel(losses[1], losses[0]) < 1e-6 && rel(norms[1], norms[0]) < 1e-5);
    free(p[0]);
    free(p[1]);
    batch_free(&g.all);
}

/* ---- checkpoints ------------------------------------------------------------------------------ */

static void test_save_load(SrBackend *be) {
    const char *dir = sr_test_tmpdir("test_optim_state");
    SrError err;
    Qwen2Model a, b;
    SrComm comm;
    sr_comm_init_single(&comm);
    sr_comm_attach(&comm, be, &err);
    SrAdamWConfig cfg;
    SrLrSchedule sched;
    golden_config(&cfg, &sched);
    cfg.master_copy = 1; /* the checkpoint must carry the master, not just the parameters */
    load_model(&a, be);
    SrOptimizer oa, ob;
    sr_optim_init(&oa, &a, &comm, &cfg, &err);
    SrStepStats st;
    for (int s = 0; s < 2; s++) {
        Batch bt = golden_batch(s);
        SrMicroBatch mb = {bt.ids, bt.pos, bt.targets, NULL, bt.N};
        CHECK(sr_train_step(&oa, &sched, &mb, 1, &st, &err) == 0);
        batch_free(&bt);
    }
    CHECKF(sr_optim_save(&oa, dir, &err) == 0, "%s", err.msg);

    /* a fresh model at the initial weights takes the state: parameters follow the master */
    load_model(&b, be);
    sr_optim_init(&ob, &b, &comm, &cfg, &err);
    CHECKF(sr_optim_load(&ob, dir, &err) == 0, "%s", err.msg);
    CHECK(ob.step == 2);
    float *pa = host_params(&a), *pb = host_params(&b);
    CHECK(memcmp(pa, pb, a.total_numel * sizeof(float)) == 0);
    free(pa);
    free(pb);
    Batch bt = golden_batch(2);
    SrMicroBatch mb = {bt.ids, bt.pos, bt.targets, NULL, bt.N};
    SrStepStats sa, sb;
    CHECK(sr_train_step(&oa, &sched, &mb, 1, &sa, &err) == 0);
    CHECK(sr_train_step(&ob, &sched, &mb, 1, &sb, &err) == 0);
    batch_free(&bt);
    pa = host_params(&a);
    pb = host_params(&b);
    CHECK(memcmp(pa, pb, a.total_numel * sizeof(float)) == 0);
    CHECK(sa.loss == sb.loss && sa.lr == sb.lr);
    printf("  optimizer state: save after 2 steps, load, step 3: bit-identical (loss %.6f)\n",
           sb.loss);
    free(pa);
    free(pb);
    sr_optim_free(&ob);
    qwen2_free(&b);

    /* refusals: no file, and a state written for another model */
    char empty[4200];
    snprintf(empty, sizeof empty, "%s/none", dir);
    load_model(&b, be);
    sr_optim_init(&ob, &b, &comm, &cfg, &err);
    CHECK(sr_optim_load(&ob, empty, &err) == -1);
    CHECKF(strstr(err.msg, "optimizer-rank00000-of-00001.safetensors") != NULL, "%s", err.msg);
    sr_optim_free(&ob);
    qwen2_free(&b);
    Qwen2Model other;
    CHECK(qwen2_load(&other, sr_test_fixture("model/A"), be, &err) == 0);
    sr_optim_init(&ob, &other, &comm, &cfg, &err);
    CHECK(sr_optim_load(&ob, dir, &err) == -1);
    CHECKF(strstr(err.msg, "same number of processes and model") != NULL, "%s", err.msg);
    sr_optim_free(&ob);
    qwen2_free(&other);

    sr_optim_free(&oa);
    qwen2_free(&a);
    sr_comm_free(&comm);
}

/* ---- NaN / Inf -------------------------------------------------------------------------------- */

static void test_nonfinite(SrBackend *be) {
    static const char *bad = "model.layers.1.mlp.down_proj.weight";
    const float vals[2] = {NAN, INFINITY};
    for (int v = 0; v < 2; v++) {
        SrError err;
        Qwen2Model m;
        load_model(&m, be);
        SrComm comm;
        sr_comm_init_single(&comm);
        sr_comm_attach(&comm, be, &err);
        SrAdamWConfig cfg;
        SrLrSchedule sched;
        golden_config(&cfg, &sched);
        SrOptimizer o;
        sr_optim_init(&o, &m, &comm, &cfg, &err);
        const ParamInfo *pi = qwen2_param(&m, bad);
        float *h = host_params(&m);
        h[pi->offset + 17] = vals[v];
        be->ops->upload_act(be, m.params, h, m.alloc_numel);
        Batch bt = golden_batch(1);
        SrMicroBatch mb = {bt.ids, bt.pos, bt.targets, NULL, bt.N};
        SrStepStats st;
        CHECK(sr_train_step(&o, &sched, &mb, 1, &st, &err) == 0);
        CHECK(st.nonfinite == 1);
        CHECKF(strcmp(st.bad_param, bad) == 0, "bad_param '%s'", st.bad_param);
        CHECK(st.bad_grad[0] != '\0');
        CHECK(o.step == 0);
        float *h2 = host_params(&m);
        CHECK(memcmp(h, h2, m.alloc_numel * sizeof(float)) == 0); /* no update made */
        printf("  %s in %s: step skipped; first non-finite parameter %s, gradient %s\n",
               v ? "Inf" : "NaN", bad, st.bad_param, st.bad_grad);
        free(h);
        free(h2);
        batch_free(&bt);
        sr_optim_free(&o);
        sr_comm_free(&comm);
        qwen2_free(&m);
    }
    /* an invalid micro-batch is an error, not an update */
    SrError err;
    Qwen2Model m;
    load_model(&m, be);
    SrComm comm;
    sr_comm_init_single(&comm);
    sr_comm_attach(&comm, be, &err);
    SrAdamWConfig cfg;
    SrLrSchedule sched;
    golden_config(&cfg, &sched);
    SrOptimizer o;
    sr_optim_init(&o, &m, &comm, &cfg, &err);
    Batch bt = golden_batch(0);
    bt.ids[3] = 1000000;
    SrMicroBatch mb = {bt.ids, bt.pos, bt.targets, NULL, bt.N};
    SrStepStats st;
    CHECK(sr_train_step(&o, &sched, &mb, 1, &st, &err) == -1);
    CHECKF(strstr(err.msg, "micro-batch 0") && strstr(err.msg, "vocabulary"), "%s", err.msg);
    CHECK(o.step == 0);
    batch_free(&bt);
    sr_optim_free(&o);
    sr_comm_free(&comm);
    qwen2_free(&m);
}

int main(void) {
    SrBackend be;
    SrError err;
    sr_backend_init(&be, "cpu", 0, &err);
    char path[4200];
    snprintf(path, sizeof path, "%s", sr_test_fixture("optim/golden.safetensors"));
    if (safetensors_open(&G, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const StTensor *hp = gt("hparams");
    SR_ASSERT(hp->dtype == ST_F64 && hp->numel == 9);
    memcpy(HP, hp->data, sizeof HP);

    test_decay_rule(&be);
    test_schedules();
    float *p_alias = adamw_vs_torch(&be, 0);
    float *p_copy = adamw_vs_torch(&be, 1);
    Qwen2Model m;
    load_model(&m, &be);
    CHECKF(memcmp(p_alias, p_copy, m.total_numel * sizeof(float)) == 0,
           "aliased and separate master differ");
    qwen2_free(&m);
    free(p_alias);
    free(p_copy);
    train_steps_vs_torch(&be);
    test_accumulation(&be);
    test_save_load(&be);
    test_nonfinite(&be);

    safetensors_close(&G);
    sr_backend_free(&be);
    return sr_test_done();
}
