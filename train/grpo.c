/*
 * The GRPO trainer (see grpo.h; its settings are in grpo_options.c): setup (the policy through
 * the harness, the big model, the reference, the engines, the data), one generation window
 * (rollouts, rewards, dynamic sampling, gathered advantages, old / reference log-probs, the
 * rollout log), one optimizer step on its share of the window, the logging window,
 * checkpoints and exact resume.
 */
#include "grpo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/fileio.h"
#include "../common/log.h"
#include "../common/rng.h"
#include "../eval/benchmarks.h"
#include "../eval/eval.h"
#include "../model/model_stats.h"
#include "grpo_rollout.h"
#include "harness.h"
#include "train_step.h"

/* ---- metrics of the logging window -------------------------------------------------------- */

/* Each metric is a sum and a count over the window (a generation or a step adds one value);
 * logged as their mean, except the *_seconds sums. */
enum {
    M_REWARD, M_REWARD_STD, M_LEN_MEAN, M_LEN_MIN, M_LEN_MAX, M_CLIPPED, M_KL, M_ENTROPY, M_CLIP_LOW,
    M_CLIP_HIGH, M_CLIP_REGION, M_ZERO_STD, M_ACCURACY, M_OFFLOAD, M_SPANS, M_SWITCHES, M_LATENCY,
    M_ROUNDS, M_GEN_S, M_TRAIN_S, M_IS_DIFF_MEAN, M_IS_DIFF_MAX, M_IS_MIN, M_IS_MEAN, M_IS_MAX, M_FIXED
};
static const char *const METRIC_NAMES[M_FIXED] = {
    "reward", "reward_std", "completions/mean_length", "completions/min_length",
    "completions/max_length", "completions/clipped_ratio", "kl", "entropy", "clip_ratio/low_mean",
    "clip_ratio/high_mean", "clip_ratio/region_mean", "frac_reward_zero_std", "accuracy",
    "offload_share", "spans_per_completion", "switches_per_completion", "modelled_latency",
    "dynamic_sampling_rounds", "generation_seconds", "training_seconds",
    /* the importance-sampling correction (sampler vs trainer log-probs), when it is on */
    "sampling/sampling_logp_difference/mean", "sampling/sampling_logp_difference/max",
    "sampling/importance_sampling_ratio/min", "sampling/importance_sampling_ratio/mean",
    "sampling/importance_sampling_ratio/max",
};
/* then rewards/<name>/mean and rewards/<name>/std per reward function */
#define M_MAX (M_FIXED + 2 * GRPO_MAX_REWARDS)

typedef struct Window {
    double sum[M_MAX], n[M_MAX];
} Window;

static void win_add(Window *w, int k, double v) {
    if (isnan(v)) return;
    w->sum[k] += v;
    w->n[k] += 1;
}

/* ---- run state ------------------------------------------------------------------------------ */

typedef struct Trainer {
    TrainHarness h;
    const GrpoOptions *o;
    EvalBenchmark data;          /* prompts and gold answers */
    int32_t **prompt_ids;        /* per dataset row, built on first use */
    int *prompt_lens;
    long long *order, order_epoch; /* the epoch's permutation of the rows */
    SrBackend *be;
    Qwen2Model big, ref;
    int big_ready, ref_ready;
    Engine *es, *eb;
    LatencyTable *lat;
    GrpoRewardSpec rs;
    GrpoGenerate gen;
    int32_t stop_ids[2];
    int P, G, window;            /* prompts per process per generation, group size, steps per generation */
    /* the current generation: this process's rollouts and the loss's rows */
    GrpoRollout *ro;
    int n_ro;
    GrpoBatch batch;
    double *adv;
    Window win;
    double gen_reward, gen_accuracy, gen_offload; /* the last generation's means */
} Trainer;

/* ---- data ------------------------------------------------------------------------------------- */

/* the next prompt of the data order (Fisher-Yates over sr_rng_stream(seed, epoch), as SFT) */
static long long next_prompt(Trainer *t) {
    TrainHarness *h = &t->h;
    long long N = t->data.n;
    if (h->data_cursor >= N) {
        h->data_epoch++;
        h->data_cursor = 0;
    }
    if (!t->order || t->order_epoch != h->data_epoch) {
        if (!t->order) t->order = sr_malloc((size_t)N * sizeof(long long));
        for (long long i = 0; i < N; i++) t->order[i] = i;
        uint64_t rng = sr_rng_stream(t->o->seed, (uint64_t)h->data_epoch);
        for (long long i = N - 1; i > 0; i--) {
            long long j = (long long)(sr_rng_u64(&rng) % (uint64_t)(i + 1));
            long long x = t->order[i];
            t->order[i] = t->order[j];
            t->order[j] = x;
        }
        t->order_epoch = h->data_epoch;
    }
    return t->order[h->data_cursor++];
}

static int seek_data(void *ctx, long long epoch, long long cursor, SrError *err) {
    Trainer *t = ctx;
    (void)err;
    t->h.data_epoch = epoch;
    t->h.data_cursor = cursor;
    return 0;
}

/* the prompt ids of row r: the chat template, left-truncated to max_prompt_length */
static int prompt_of(Trainer *t, long long r, SrError *err) {
    if (t->prompt_ids[r]) return 0;
    int32_t *ids;
    int n;
    if (eval_prompt_ids(t->h.tok, t->data.items[r].problem, t->o->system_prompt, NULL, &ids, &n, err))
        return sr_fail_prefix(err, "%s: problem %s", t->o->harness.dataset_path, t->data.items[r].id);
    int keep = n > t->o->max_prompt_length ? t->o->max_prompt_length : n;
    if (keep < n) memmove(ids, ids + (n - keep), (size_t)keep * sizeof(int32_t));
    t->prompt_ids[r] = ids;
    t->prompt_lens[r] = keep;
    return 0;
}

/* ---- one generation ----------------------------------------------------------------------------- */

static void free_generation(Trainer *t) {
    grpo_rollout_batch_free(&t->batch);
    for (int i = 0; i < t->n_ro; i++) grpo_rollout_free(&t->ro[i]);
    t->n_ro = 0;
    free(t->adv);
    t->adv = NULL;
}

static double nanmean(const double *x, int n, int stride) {
    double s = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[(size_t)i * stride])) s += x[(size_t)i * stride], k++;
    return k ? s / k : NAN;
}

static double nanstd(const double *x, int n, int stride) {
    double m = nanmean(x, n, stride), s = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[(size_t)i * stride])) s += (x[(size_t)i * stride] - m) * (x[(size_t)i * stride] - m), k++;
    return k > 1 ? sqrt(s / (k - 1)) : NAN;
}

/* the columns gathered from every process, per completion */
enum { C_REWARD, C_LEN, C_TRUNC, C_ACC, C_SHARE, C_SPANS, C_SWITCHES, C_LAT, C_FUNCS };

static int switches_of(const RolloutAccount *a) {
    int s = a->switches;
    for (int i = 0; i < a->switches; i++) s += a->delta_small && a->delta_small[i] > 0;
    return s;
}

/* Decodes, judges and assembles generation k (its first optimizer step is step + 1). */
static int generate_window(Trainer *t, long long k, int step, SrError *err) {
    const GrpoOptions *o = t->o;
    TrainHarness *h = &t->h;
    SrComm *comm = h->comm;
    int P = t->P, G = t->G, W = comm->size, PG = P * W;
    free_generation(t);
    t->ro = t->ro ? t->ro : sr_calloc((size_t)P * G, sizeof(GrpoRollout));
    GrpoRollout *spare = NULL, *round_ro = sr_calloc((size_t)P * G, sizeof(GrpoRollout));
    int n_spare = 0, kept = 0, rounds = 0, rc = 0;
    int32_t **pp = sr_malloc((size_t)P * sizeof(int32_t *));
    int *lens = sr_malloc((size_t)P * sizeof(int)), *slots = sr_malloc((size_t)P * sizeof(int));
    int *rows = sr_malloc((size_t)P * sizeof(int));
    qwen2_release_workspace(&h->m, QWEN2_WS_TRAIN);
    for (int round = 0; !rc; round++) {
        rounds++;
        /* every process draws the whole round's prompts (the data order stays in step); this one
         * decodes its slice while it still needs groups */
        int need = P - kept, np = 0;
        for (int i = 0; i < PG; i++) {
            long long r = next_prompt(t);
            if (i / P != comm->rank || i % P >= need) continue;
            if (prompt_of(t, r, err)) {
                rc = -1;
                break;
            }
            pp[np] = t->prompt_ids[r];
            lens[np] = t->prompt_lens[r];
            slots[np] = round * PG + i;
            rows[np] = (int)r;
            np++;
        }
        if (!rc) rc = grpo_rollouts_generate(&t->gen, k, o->seed, pp, lens, slots, rows, np, round_ro, err);
        for (int p = 0; p < np; p++) {
            GrpoRollout *grp = round_ro + (size_t)p * G;
            if (!rc)
                for (int g = 0; g < G; g++) grpo_rollout_judge(&t->rs, &grp[g], t->data.items[grp[g].prompt_index].answer);
            if (!rc && (!o->dynamic_sampling || !grpo_group_flat(grp, G)) && kept < P) {
                memcpy(t->ro + (size_t)kept * G, grp, (size_t)G * sizeof *grp);
                kept++;
            } else if (!rc && o->dynamic_sampling && kept + n_spare < P) {
                spare = sr_realloc(spare, (size_t)(n_spare + 1) * G * sizeof *grp);
                memcpy(spare + (size_t)n_spare * G, grp, (size_t)G * sizeof *grp);
                n_spare++;
            } else {
                for (int g = 0; g < G; g++) grpo_rollout_free(&grp[g]);
            }
        }
        memset(round_ro, 0, (size_t)P * G * sizeof *round_ro); /* its groups moved or freed */
        /* another round while any process lacks groups (failures travel with the count) */
        double x[2] = {(double)(P - kept), rc ? 1.0 : 0.0};
        sr_comm_allreduce_host(comm, x, 2);
        if (x[1] > 0) {
            if (!rc) rc = sr_fail(err, "rollouts failed on another process");
            break;
        }
        if (!o->dynamic_sampling || x[0] == 0 || round + 1 >= o->dynamic_sampling_max_rounds) break;
    }
    /* fill with the dropped groups, oldest first; free the rest */
    for (int s = 0; s < n_spare; s++) {
        if (!rc && kept < P) {
            memcpy(t->ro + (size_t)kept * G, spare + (size_t)s * G, (size_t)G * sizeof *spare);
            kept++;
        } else {
            for (int g = 0; g < G; g++) grpo_rollout_free(&spare[(size_t)s * G + g]);
        }
    }
    free(spare);
    free(round_ro);
    free(pp);
    free(lens);
    free(slots);
    free(rows);
    t->n_ro = kept * G;
    if (rc) return -1;

    /* gather every process's per-completion figures; advantages over the whole batch */
    int K = t->rs.n, C = C_FUNCS + K, NG = PG * G;
    double *col = sr_calloc((size_t)NG * C, sizeof(double));
    for (int i = 0; i < t->n_ro; i++) {
        const GrpoRollout *x = &t->ro[i];
        double *c = col + ((size_t)comm->rank * P * G + i) * C;
        c[C_REWARD] = x->reward;
        c[C_LEN] = x->r.n;
        c[C_TRUNC] = x->truncated;
        c[C_ACC] = x->accuracy;
        c[C_SHARE] = x->offload_share;
        c[C_SPANS] = x->acc.switches;
        c[C_SWITCHES] = switches_of(&x->acc);
        c[C_LAT] = x->latency;
        for (int f = 0; f < K; f++) c[C_FUNCS + f] = x->rewards[f];
    }
    sr_comm_allreduce_host(comm, col, NG * C); /* one process's values + zeros: exact */
    double *rw = sr_malloc((size_t)NG * sizeof(double)), *adv = sr_malloc((size_t)NG * sizeof(double));
    int *grp = sr_malloc((size_t)NG * sizeof(int));
    for (int i = 0; i < NG; i++) rw[i] = col[(size_t)i * C + C_REWARD], grp[i] = i / G;
    GrpoAdvStats as;
    grpo_advantages(rw, grp, NG, o->loss.scale_rewards, adv, &as);
    t->adv = sr_malloc((size_t)(P * G) * sizeof(double));
    for (int i = 0; i < P * G; i++) t->adv[i] = t->ro[i].advantage = adv[(size_t)comm->rank * P * G + i];
    /* the generation's metrics */
    Window *w = &t->win;
    win_add(w, M_REWARD, as.reward_mean);
    win_add(w, M_REWARD_STD, as.reward_std);
    win_add(w, M_ZERO_STD, as.frac_reward_zero_std);
    double lmin = INFINITY, lmax = 0;
    for (int i = 0; i < NG; i++) {
        double l = col[(size_t)i * C + C_LEN];
        if (l < lmin) lmin = l;
        if (l > lmax) lmax = l;
    }
    win_add(w, M_LEN_MEAN, nanmean(col + C_LEN, NG, C));
    win_add(w, M_LEN_MIN, lmin);
    win_add(w, M_LEN_MAX, lmax);
    win_add(w, M_CLIPPED, nanmean(col + C_TRUNC, NG, C));
    win_add(w, M_ACCURACY, nanmean(col + C_ACC, NG, C));
    win_add(w, M_OFFLOAD, nanmean(col + C_SHARE, NG, C));
    win_add(w, M_SPANS, nanmean(col + C_SPANS, NG, C));
    win_add(w, M_SWITCHES, nanmean(col + C_SWITCHES, NG, C));
    win_add(w, M_LATENCY, nanmean(col + C_LAT, NG, C));
    win_add(w, M_ROUNDS, rounds);
    for (int f = 0; f < K; f++) {
        win_add(w, M_FIXED + 2 * f, nanmean(col + C_FUNCS + f, NG, C));
        win_add(w, M_FIXED + 2 * f + 1, nanstd(col + C_FUNCS + f, NG, C));
    }
    t->gen_reward = as.reward_mean;
    t->gen_accuracy = nanmean(col + C_ACC, NG, C);
    t->gen_offload = nanmean(col + C_SHARE, NG, C);
    free(col);
    free(rw);
    free(adv);
    free(grp);

    /* the loss's rows, old and reference log-probs */
    int W_steps = t->window;
    grpo_rollouts_to_batch(t->ro, t->n_ro, G, o->rollout_mode == SPLIT_MODE_SPLIT,
                           o->loss.vllm_importance_sampling_correction, &t->batch);
    qwen2_release_workspace(&h->m, QWEN2_WS_INFER);
    double **lp = sr_calloc((size_t)t->n_ro, sizeof(double *));
    int skip = o->loss.mask_truncated_completions;
    if (!rc && W_steps > 1) {
        rc = grpo_batch_logprobs(&h->m, &t->batch, o->temperature, skip, 0, lp, err);
        for (int i = 0; i < t->n_ro; i++) t->batch.rows[i].old_logp = lp[i], lp[i] = NULL;
    }
    if (!rc && t->ref_ready) {
        rc = grpo_batch_logprobs(&t->ref, &t->batch, o->temperature, skip, 0, lp, err);
        for (int i = 0; i < t->n_ro; i++) t->batch.rows[i].ref_logp = lp[i], lp[i] = NULL;
        qwen2_release_workspace(&t->ref, QWEN2_WS_TRAIN);
    }
    for (int i = 0; i < t->n_ro; i++) free(lp[i]);
    free(lp);

    /* the rollout log */
    if (!rc) {
        char name[96];
        if (comm->rank == 0) snprintf(name, sizeof name, "step-%06d.jsonl.zst", step + 1);
        else snprintf(name, sizeof name, "step-%06d.rank-%d.jsonl.zst", step + 1, comm->rank);
        char *dir = sr_path_join(o->harness.output_dir, "rollouts");
        char *path = sr_path_join(dir, name);
        char **ids = sr_malloc((size_t)t->data.n * sizeof(char *));
        for (int i = 0; i < t->data.n; i++) ids[i] = t->data.items[i].id;
        SrBuf b = {0};
        grpo_rollouts_jsonl(&b, &t->rs, t->ro, t->n_ro, step + 1, ids);
        rc = sr_mkdir_p(dir, err);
        if (!rc) rc = sr_write_file_zstd_atomic(path, b.p ? b.p : "", b.n, 3, err);
        sr_buf_free(&b);
        free(ids);
        free(dir);
        free(path);
    }
    return rc;
}

/* ---- one optimizer step --------------------------------------------------------------------------- */

/* the rows [r0, r0 + n) of the generation as a batch of their own (a view) */
static GrpoBatch rows_view(const GrpoBatch *b, int r0, int n) {
    GrpoBatch v = {b->rows + r0, n, 0};
    return v;
}

static int train_step(Trainer *t, int step, SrStepStats *st, GrpoLossResult *lr, int want_entropy,
                      SrError *err) {
    const GrpoOptions *o = t->o;
    TrainHarness *h = &t->h;
    SrComm *comm = h->comm;
    int per_step = o->harness.per_device_train_batch_size * o->gradient_accumulation_steps;
    int chunks = o->steps_per_generation / o->gradient_accumulation_steps;
    int c = (step % t->window) % chunks;
    GrpoBatch sb = rows_view(&t->batch, c * per_step, per_step);
    const double *adv = t->adv + (size_t)c * per_step;

    /* the global batch's totals; the tokens trained on */
    GrpoTotals tot;
    grpo_batch_totals(&o->loss, &sb, &tot);
    double x[3] = {tot.n_seqs, tot.num_items, 0};
    for (int i = 0; i < sb.n_rows; i++) x[2] += sb.rows[i].n_prompt + sb.rows[i].n_completion;
    sr_comm_allreduce_host(comm, x, 3);
    tot.n_seqs = (int)x[0];
    tot.num_items = x[1];
    memset(st, 0, sizeof *st);
    st->n_tokens = x[2];
    st->n_targets = x[1];

    /* on a logging step the entropy of the policy (before the update) over the first
     * entropy_max_tokens loss tokens, from the loss's own forward */
    double ent_max = want_entropy ? (double)o->entropy_max_tokens : 0.0;
    int rc = 0;
    qwen2_zero_grad(&h->m);
    grpo_loss_begin(lr);
    for (int k = 0; k < o->gradient_accumulation_steps && !rc; k++) {
        int r0 = k * o->harness.per_device_train_batch_size;
        GrpoBatch mb = rows_view(&sb, r0, o->harness.per_device_train_batch_size);
        if (grpo_loss_backward_part(&h->m, &mb, &o->loss, adv + r0, &tot, 0, ent_max, lr, err)) {
            sr_fail_prefix(err, "step %d, micro-batch %d of process %d", step + 1, k, comm->rank);
            rc = -1;
        }
    }
    /* the metric sums of every process (minima and maxima apart) */
    GrpoLossSums *a = &lr->acc;
    double s[13] = {lr->loss, a->kl_sum, a->low_sum, a->high_sum, a->region_sum, a->count,
                    a->is_sum, a->is_n, a->diff_sum, a->diff_n, a->ent_sum, a->ent_n, rc ? 1.0 : 0.0};
    sr_comm_allreduce_host(comm, s, 13);
    double mx[3] = {isfinite(a->is_max) ? a->is_max : -1e300, isfinite(a->is_min) ? -a->is_min : -1e300,
                    a->diff_n ? a->diff_max : -1e300};
    sr_comm_allmax_host(comm, mx, 3);
    if (s[12] > 0) {
        if (!rc) sr_fail(err, "step %d: the loss failed on another process", step + 1);
        return -1;
    }
    lr->loss = s[0];
    a->kl_sum = s[1], a->low_sum = s[2], a->high_sum = s[3], a->region_sum = s[4], a->count = s[5];
    a->is_sum = s[6], a->is_n = s[7], a->diff_sum = s[8], a->diff_n = s[9];
    a->ent_sum = s[10], a->ent_n = s[11];
    a->is_max = mx[0], a->is_min = -mx[1], a->diff_max = mx[2];
    lr->num_items_in_batch = tot.num_items;
    grpo_loss_finish(lr);
    st->loss = lr->loss;
    if (want_entropy && s[11] > 0) win_add(&t->win, M_ENTROPY, s[10] / s[11]);
    return sr_train_step_apply(&h->opt, &h->sched, st);
}

/* ---- logging ------------------------------------------------------------------------------------ */

static const char *metric_name(const Trainer *t, int k, char *buf, size_t n) {
    if (k < M_FIXED) return METRIC_NAMES[k];
    int f = (k - M_FIXED) / 2;
    snprintf(buf, n, "rewards/%s/%s", reward_kind_name(t->rs.kinds[f]), (k - M_FIXED) % 2 ? "std" : "mean");
    return buf;
}

static int n_metrics(const Trainer *t) { return M_FIXED + 2 * t->rs.n; }

static void log_step(Trainer *t, int step, const SrStepStats *st) {
    TrainHarness *h = &t->h;
    Window *w = &t->win;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "step", step);
    cJSON_AddNumberToObject(r, "epoch", harness_epoch(h));
    cJSON_AddNumberToObject(r, "loss", h->win_loss / h->win_steps);
    cJSON_AddNumberToObject(r, "learning_rate", st->lr);
    cJSON_AddNumberToObject(r, "grad_norm", st->grad_norm);
    cJSON_AddNumberToObject(r, "num_tokens", h->tokens_seen);
    harness_scalar(h, "train/loss", step, h->win_loss / h->win_steps);
    harness_scalar(h, "train/learning_rate", step, st->lr);
    harness_scalar(h, "train/grad_norm", step, st->grad_norm);
    char buf[96], tag[128];
    for (int k = 0; k < n_metrics(t); k++) {
        const char *name = metric_name(t, k, buf, sizeof buf);
        int is_sum = k == M_GEN_S || k == M_TRAIN_S;
        if (w->n[k] == 0) {
            cJSON_AddNullToObject(r, name);
            continue;
        }
        double v = is_sum ? w->sum[k] : w->sum[k] / w->n[k];
        cJSON_AddNumberToObject(r, name, v);
        snprintf(tag, sizeof tag, "train/%s", name);
        harness_scalar(h, tag, step, v);
    }
    harness_record(h, r);
    /* a window without a generation (num_iterations, steps_per_generation) shows the last one's */
    double reward = w->n[M_REWARD] > 0 ? w->sum[M_REWARD] / w->n[M_REWARD] : t->gen_reward;
    double acc = w->n[M_ACCURACY] > 0 ? w->sum[M_ACCURACY] / w->n[M_ACCURACY] : t->gen_accuracy;
    double off = w->n[M_OFFLOAD] > 0 ? w->sum[M_OFFLOAD] / w->n[M_OFFLOAD] : t->gen_offload;
    harness_progress(h, step, 1, "loss %.4g | reward %.3f | accuracy %.3f | offload %.3f | kl %.3g | lr %.3g | gen %.1fs train %.1fs",
                     h->win_loss / h->win_steps, reward, acc, off, w->n[M_KL] ? w->sum[M_KL] / w->n[M_KL] : 0.0, st->lr,
                     w->sum[M_GEN_S], w->sum[M_TRAIN_S]);
    memset(w, 0, sizeof *w);
    harness_window_reset(h);
}

/* ---- GRPO's part of a checkpoint and of a resume --------------------------------------------------- */

static cJSON *trainer_keys(const Trainer *t) {
    cJSON *k = cJSON_CreateObject();
    cJSON *r = cJSON_AddObjectToObject(k, "rng");
    cJSON_AddStringToObject(r, "data_order", "Fisher-Yates over splitmix64, stream = epoch");
    cJSON_AddStringToObject(r, "rollouts", "splitmix64 stream (slot << 32 | g) of grpo_rollout_seed(seed, generation)");
    cJSON_AddNumberToObject(r, "seed", (double)t->o->seed);
    cJSON *w = cJSON_AddArrayToObject(k, "grpo_window"); /* [sum, n] per metric */
    for (int i = 0; i < n_metrics(t); i++) {
        cJSON *p = cJSON_CreateArray();
        cJSON_AddItemToArray(p, cJSON_CreateNumber(t->win.sum[i]));
        cJSON_AddItemToArray(p, cJSON_CreateNumber(t->win.n[i]));
        cJSON_AddItemToArray(w, p);
    }
    return k;
}

static int restore_keys(void *ctx, SrError *err) {
    Trainer *t = ctx;
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(t->h.resumed_state, "splitreason");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(sp, "grpo_window");
    if (!cJSON_IsArray(w) || cJSON_GetArraySize(w) != n_metrics(t))
        return sr_fail(err, "%s/trainer_state.json: splitreason.grpo_window must hold %d [sum, n] pairs (a GRPO "
                       "checkpoint with the same reward_funcs)", t->h.ckpt, n_metrics(t));
    for (int i = 0; i < n_metrics(t); i++) {
        const cJSON *p = cJSON_GetArrayItem(w, i);
        const cJSON *s = cJSON_GetArrayItem(p, 0), *n = cJSON_GetArrayItem(p, 1);
        if (!cJSON_IsNumber(s) || !cJSON_IsNumber(n))
            return sr_fail(err, "%s/trainer_state.json: splitreason.grpo_window[%d] must be [sum, n]", t->h.ckpt, i);
        t->win.sum[i] = s->valuedouble;
        t->win.n[i] = n->valuedouble;
    }
    return 0;
}

/* ---- setup and teardown -------------------------------------------------------------------------- */

static void trainer_free(Trainer *t) {
    free_generation(t);
    free(t->ro);
    if (t->es) engine_close(t->es);
    if (t->eb) engine_close(t->eb);
    if (t->big_ready) qwen2_free(&t->big);
    if (t->ref_ready) qwen2_free(&t->ref);
    if (t->lat) latency_table_free(t->lat);
    grpo_reward_spec_free(&t->rs);
    for (int i = 0; t->prompt_ids && i < t->data.n; i++) free(t->prompt_ids[i]);
    free(t->prompt_ids);
    free(t->prompt_lens);
    free(t->order);
    eval_benchmark_free(&t->data);
    harness_free(&t->h);
}

static int setup(void *ctx, SrError *err) {
    Trainer *t = ctx;
    const GrpoOptions *o = t->o;
    TrainHarness *h = &t->h;
    SrComm *comm = h->comm;
    int L = o->max_prompt_length + o->max_completion_length;
    if (harness_load(h, err) ||
        harness_check_fit(h, "max_prompt_length + max_completion_length", L,
                          (long long)o->harness.per_device_train_batch_size * L, err))
        return -1;
    t->be = &h->be;
    if (grpo_reward_spec_init(&t->rs, o->reward_funcs, o->reward_weights, err)) return -1;
    if (!t->rs.grader) { /* the accuracy metric grades every completion */
        SrGradeOptions go;
        reward_accuracy_grade_options(&go);
        t->rs.grader = sr_grader_new(&go);
    }
    /* the data */
    if (eval_benchmark_load(&t->data, o->harness.dataset_path, NULL, err)) return sr_fail_prefix(err, "dataset_path");
    t->prompt_ids = sr_calloc((size_t)t->data.n, sizeof(int32_t *));
    t->prompt_lens = sr_calloc((size_t)t->data.n, sizeof(int));
    t->G = o->num_generations;
    t->P = o->harness.per_device_train_batch_size * o->steps_per_generation / o->num_generations;
    t->window = o->steps_per_generation / o->gradient_accumulation_steps * o->num_iterations;
    h->n_sequences = t->data.n;
    h->global_micro_batch = (long long)t->P * comm->size;
    /* the models beside the policy */
    if (o->latency_table) {
        if (latency_table_load(&t->lat, o->latency_table, err)) return sr_fail_prefix(err, "latency_table");
        t->rs.latency = t->lat;
    }
    t->rs.latency_batch = o->latency_batch;
    t->rs.latency_penalty = o->latency_penalty;
    t->rs.offload_budget = o->offload_budget;
    t->rs.offload_lambda_share = o->offload_lambda_share;
    t->rs.offload_lambda_switch = o->offload_lambda_switch;
    if (o->rollout_mode == SPLIT_MODE_SPLIT) {
        if (qwen2_load(&t->big, o->big_model_name_or_path, t->be, err))
            return sr_fail_prefix(err, "big_model_name_or_path");
        t->big_ready = 1;
        if (split_check_pair(&h->m, &t->big, h->tok, err)) return -1;
    }
    if (o->loss.beta != 0.0) { /* the reference: the original policy, also after a resume */
        if (qwen2_load(&t->ref, o->harness.model_name_or_path, t->be, err))
            return sr_fail_prefix(err, "reference model");
        t->ref_ready = 1;
    }
    /* the rollout decoder */
    SplitConfig *c = &t->gen.cfg;
    split_config_default(c);
    c->mode = o->rollout_mode;
    c->end_rule = o->span_end_rule;
    c->max_span_tokens = o->max_span_tokens;
    c->max_new_tokens = o->max_completion_length;
    c->sampling = (SrSampling){(float)o->temperature, o->top_k, (float)o->top_p};
    int n_stop = 0;
    if (tokenizer_eos_id(h->tok) >= 0) t->stop_ids[n_stop++] = tokenizer_eos_id(h->tok);
    if (h->m.cfg.eos_token_id >= 0 && h->m.cfg.eos_token_id != tokenizer_eos_id(h->tok))
        t->stop_ids[n_stop++] = h->m.cfg.eos_token_id;
    if (n_stop == 0) return sr_fail(err, "the tokenizer and the model have no EOS id: a completion could never end");
    c->stop_ids = t->stop_ids;
    c->n_stop_ids = n_stop;
    c->vocab_limit = tokenizer_vocab_size(h->tok);
    c->open_id = h->open_id;
    c->close_id = h->close_id;
    c->latency = t->lat;
    c->max_batch = 0;
    t->gen.tok = h->tok;
    t->gen.num_generations = t->G;
    t->gen.latency = t->lat;
    t->gen.latency_batch = o->latency_batch;
    EngineOptions eo = {.kv_bytes = (size_t)(o->kv_cache_gb * 1024.0 * 1024.0 * 1024.0)};
    double positions = (double)t->P * t->G * L;
    EngineOptions es_o = eo, eb_o = eo;
    if (eo.kv_bytes == 0) es_o.kv_bytes = engine_kv_bytes_for(&h->m, &eo, positions);
    if (engine_open(&t->es, &h->m, &es_o, err)) return sr_fail_prefix(err, "policy engine");
    t->gen.small = t->es;
    if (t->big_ready) {
        if (eo.kv_bytes == 0) eb_o.kv_bytes = engine_kv_bytes_for(&t->big, &eo, positions);
        if (engine_open(&t->eb, &t->big, &eb_o, err)) return sr_fail_prefix(err, "big model engine");
        t->gen.big = t->eb;
    }

    /* steps and schedule: an epoch is floor(N / prompts per generation) generations of t->window steps */
    if (harness_total_steps(h, t->data.n / h->global_micro_batch, t->window, err)) return -1;
    return harness_setup_optim(h, err);
}

/* ---- the loop ------------------------------------------------------------------------------------- */

int grpo_run(const GrpoOptions *o, const cJSON *effective_config, SrComm *comm, GrpoResult *res,
             SrError *err) {
    Trainer t;
    memset(&t, 0, sizeof t);
    memset(res, 0, sizeof *res);
    t.o = o;
    harness_init(&t.h, &o->harness, comm, effective_config);

    int rc = harness_start(&t.h, setup, seek_data, restore_keys, &t, err);
    if (rc) {
        trainer_free(&t);
        return -1;
    }
    int step = t.h.opt.step;
    res->start_step = step;
    res->total_steps = t.h.total_steps;
    int stop_at = t.h.total_steps;
    if (o->stop_after_steps > 0 && o->stop_after_steps < stop_at) stop_at = (int)o->stop_after_steps;
    if (t.h.root)
        sr_log("grpo: %lld parameters, %d prompts (%s), %d x %d completions per generation per process (%d "
               "process%s), %d optimizer steps per generation, %d steps%s, rollouts %s, rewards %d, device %s",
               qwen2_config_num_params(&t.h.m.cfg), t.data.n, o->harness.dataset_path, t.P, t.G, comm->size,
               comm->size > 1 ? "es" : "", t.window, t.h.total_steps, step > 0 ? " (resumed)" : "",
               split_mode_name(o->rollout_mode), t.rs.n, t.h.be.ops->name);

    int last_saved = step, first = 1;
    while (!rc && step < stop_at) {
        double t0 = sr_now();
        if (step % t.window == 0 || !t.n_ro) {
            rc = generate_window(&t, step / t.window, step, err);
            if (rc) break;
            if (first) res->first_reward = t.gen_reward;
            first = 0;
            res->last_reward = t.gen_reward;
        }
        double t1 = sr_now();
        int log_now = (step + 1) % o->harness.logging_steps == 0 || step + 1 == t.h.total_steps;
        SrStepStats st;
        GrpoLossResult lr;
        rc = train_step(&t, step, &st, &lr, log_now, err);
        if (rc) break;
        if (st.nonfinite) {
            rc = harness_nonfinite(&t.h, step + 1, &st, err);
            break;
        }
        step++;
        double t2 = sr_now();
        win_add(&t.win, M_GEN_S, t1 - t0);
        win_add(&t.win, M_TRAIN_S, t2 - t1);
        win_add(&t.win, M_KL, lr.kl);
        win_add(&t.win, M_CLIP_LOW, lr.clip_low_mean);
        win_add(&t.win, M_CLIP_HIGH, lr.clip_high_mean);
        win_add(&t.win, M_CLIP_REGION, lr.clip_region_mean);
        if (lr.has_is) {
            win_add(&t.win, M_IS_DIFF_MEAN, lr.sampling_logp_diff_mean);
            win_add(&t.win, M_IS_DIFF_MAX, lr.sampling_logp_diff_max);
            win_add(&t.win, M_IS_MIN, lr.is_ratio_min);
            win_add(&t.win, M_IS_MEAN, lr.is_ratio_mean);
            win_add(&t.win, M_IS_MAX, lr.is_ratio_max);
        }
        res->generation_seconds += t1 - t0;
        res->training_seconds += t2 - t1;
        harness_step_done(&t.h, &st, harness_train_flops(&t.h, st.n_tokens, 0), t2 - t1);
        res->end_step = step;
        if (log_now) log_step(&t, step, &st);
        else
            harness_progress(&t.h, step, 0, "loss %.4g | reward %.3f | lr %.3g", st.loss, t.gen_reward, st.lr);
        if (!rc && (step % o->harness.save_steps == 0 || step == stop_at)) {
            rc = harness_save(&t.h, step, t.h.root ? trainer_keys(&t) : NULL, err);
            last_saved = step;
        }
    }
    if (!rc && last_saved != step) rc = harness_save(&t.h, step, t.h.root ? trainer_keys(&t) : NULL, err);
    if (!rc)
        snprintf(res->last_checkpoint, sizeof res->last_checkpoint, "%s/checkpoint-%d", o->harness.output_dir, step);
    res->seconds = sr_now() - t.h.t_start;
    if (!rc && t.h.root) {
        double steps = res->end_step - res->start_step;
        sr_log("grpo: steps %d -> %d of %d in %.1fs (%.3f steps/s; %.1fs generating, %.1fs training)", res->start_step,
               step, t.h.total_steps, res->seconds, res->seconds > 0 ? steps / res->seconds : 0.0,
               res->generation_seconds, res->training_seconds);
    }
    trainer_free(&t);
    return rc;
}
