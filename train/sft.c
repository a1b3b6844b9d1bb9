/*
 * The SFT trainer (see sft.h): options, the check of the shards against the model, held-out
 * evaluation with tag metrics, and the training loop. Around the step, the trainer harness
 * (harness.h) loads the policy, writes metrics / TensorBoard / progress and checkpoints, and
 * resumes exactly.
 */
#include "sft.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "../common/rng.h"
#include "../data/shards.h"
#include "../data/tokenizer.h"
#include "checkpoint.h"
#include "harness.h"
#include "../model/model.h"
#include "../model/model_eval.h"
#include "../model/model_stats.h"
#include "optim.h"
#include "train_step.h"

/* ---- options ------------------------------------------------------------------------------ */

/* Defaults are TRL SFTConfig's (transformers TrainingArguments') where one exists. */
const SrOption SFT_OPTIONS[] = {
    {"model_name_or_path", SR_OPT_STR, "null", "HF model directory to fine-tune (config.json, safetensors, tokenizer)"},
    {"dataset_path", SR_OPT_STR, "null", "training shards: a `splitreason prepare` output directory", SR_REQUIRED},
    {"eval_dataset_path", SR_OPT_STR, "null", "held-out shards (prepare run on other rows) for the eval loss and tag metrics (\"\": none)"},
    {"output_dir", SR_OPT_STR, "null", "checkpoints, metrics.jsonl and TensorBoard events go here", SR_REQUIRED},
    {"device", SR_OPT_STR, "\"cpu\"", "cpu or cuda (one GPU per process: local rank)", SR_CHOICES("cpu", "cuda"), SR_REQUIRED},
    /* any rate a float holds: a huge one is how a test makes a step go non-finite */
    {"learning_rate", SR_OPT_FLOAT, "2e-05", "peak learning rate (AdamW)", SR_RANGE(0, 1e30)},
    {"num_train_epochs", SR_OPT_FLOAT, "3", "epochs over the training shards (when max_steps <= 0)", SR_RANGE(0, 1e6)},
    {"max_steps", SR_OPT_INT, "-1", "optimizer steps; > 0 overrides num_train_epochs", SR_RANGE(-1, 1e9)},
    {"per_device_train_batch_size", SR_OPT_INT, "8", "packed sequences per micro-batch per process", SR_RANGE(1, 65536)},
    {"per_device_eval_batch_size", SR_OPT_INT, "8", "packed sequences per eval forward per process", SR_RANGE(1, 65536)},
    {"gradient_accumulation_steps", SR_OPT_INT, "1", "micro-batches per optimizer step", SR_RANGE(1, 65536)},
    {"max_length", SR_OPT_INT, "1024", "longest packed sequence accepted (the shards' max_length must not exceed it)", SR_RANGE(2, 1048576)},
    HARNESS_OPTIMIZER_OPTIONS
    {"seed", SR_OPT_INT, "42", "seed of the data order", SR_RANGE(0, SR_JSON_INT_MAX)},
    {"gradient_checkpointing", SR_OPT_BOOL, "true", "recompute each layer in the backward (less memory, same gradients)"},
    {"bf16", SR_OPT_BOOL, "true", "bf16 weights/activations with fp32 master and optimizer state (CUDA; the CPU computes in fp32)"},
    {"logging_steps", SR_OPT_INT, "10", "log (metrics.jsonl, TensorBoard, stderr) every N steps", SR_RANGE(1, 1e9)},
    {"save_steps", SR_OPT_INT, "500", "write checkpoint-<step>/ every N steps (and at the end)", SR_RANGE(1, 1e9)},
    {"save_total_limit", SR_OPT_INT, "null", "keep only the last N checkpoints (default, or 0: all)", SR_RANGE(0, 1e9)},
    {"eval_steps", SR_OPT_INT, "null", "evaluate on eval_dataset_path every N steps (and at the end; default, or 0: only at the end)", SR_RANGE(0, 1e9)},
    {"eval_on_start", SR_OPT_BOOL, "false", "evaluate before the first step too"},
    HARNESS_OUTPUT_OPTIONS
    {"stop_after_steps", SR_OPT_INT, "0", "stop (with a checkpoint) after this step as if interrupted; the schedule still runs to max_steps", SR_RANGE(0, 1e9)},
    {"peak_tflops", SR_OPT_FLOAT, "0", "peak dense TFLOP/s of one device for MFU (0: from the GPU's name; none on the CPU)", SR_RANGE(0, 1e9)},
};
_Static_assert(sizeof SFT_OPTIONS / sizeof SFT_OPTIONS[0] == SFT_N_OPTIONS, "SFT_N_OPTIONS");

int sft_options_from_config(SftOptions *o, const SrConfig *cfg, SrError *err) {
    memset(o, 0, sizeof *o);
    if (harness_options_from_config(&o->harness, cfg, err)) return -1;
    o->harness.eval_steps = sr_config_has(cfg, "eval_steps") ? (int)sr_config_int(cfg, "eval_steps") : 0;
    o->eval_dataset_path = sr_config_str(cfg, "eval_dataset_path");
    if (o->eval_dataset_path && !o->eval_dataset_path[0]) o->eval_dataset_path = NULL; /* "" = none */
    o->per_device_eval_batch_size = (int)sr_config_int(cfg, "per_device_eval_batch_size");
    o->gradient_accumulation_steps = (int)sr_config_int(cfg, "gradient_accumulation_steps");
    o->max_length = (int)sr_config_int(cfg, "max_length");
    o->seed = (uint64_t)sr_config_int(cfg, "seed");
    o->eval_on_start = sr_config_bool(cfg, "eval_on_start");
    o->stop_after_steps = (long)sr_config_int(cfg, "stop_after_steps");

    /* the rules between keys the harness does not know */
    if (!o->harness.model_name_or_path && !o->harness.resume_from_checkpoint)
        return sr_fail(err, "model_name_or_path is required (an HF model directory)");
    if ((o->harness.eval_steps > 0 || o->eval_on_start) && !o->eval_dataset_path)
        return sr_fail(err, "eval_steps / eval_on_start need eval_dataset_path (held-out shards)");
    return 0;
}

/* ---- the data against the model ------------------------------------------------------------ */

/* obj[key] as a number (compared as a double: a value out of any id's range cannot wrap into one) */
static int index_num(const cJSON *obj, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) return 0;
    *out = v->valuedouble;
    return 1;
}

/* Refuses shards made with another tokenizer, ids the model cannot embed, or sequences longer
 * than max_length / the model's positions. (Opening the set checked every id against its
 * vocab_size, so the ids stay below the model's vocab_size once that is checked here.) */
static int check_shards(const char *dir, ShardSet *set, const Tokenizer *tok, const Qwen2Model *m,
                        int max_length, SrError *err) {
    const cJSON *idx = shardset_index(set);
    double vocab = -1;
    index_num(idx, "vocab_size", &vocab); /* an integer in [1, 2^31) (checked at open) */
    int tv = tokenizer_vocab_size(tok);
    if (vocab != tv)
        return sr_fail(err, "%s: the shards were prepared with a tokenizer of %.0f ids, but the model's "
                            "tokenizer has %d: re-run `splitreason prepare --tokenizer MODEL_DIR`",
                       dir, vocab, tv);
    if (vocab > m->cfg.vocab_size)
        return sr_fail(err, "%s: token ids go up to %.0f but the model's vocab_size is %d", dir, vocab - 1,
                       m->cfg.vocab_size);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(idx, "tokenizer");
    static const char *const keys[][2] = {{"bigmodel_open_id", SR_BIGMODEL_OPEN},
                                          {"bigmodel_close_id", SR_BIGMODEL_CLOSE}};
    for (int k = 0; k < 2 && t; k++) {
        double id;
        if (index_num(t, keys[k][0], &id) && id != tokenizer_token_id(tok, keys[k][1]))
            return sr_fail(err, "%s: %s is id %.17g in the shards but %d in the model's tokenizer", dir,
                           keys[k][1], id, tokenizer_token_id(tok, keys[k][1]));
    }
    double eos;
    if (t && index_num(t, "eos_id", &eos) && eos != tokenizer_eos_id(tok))
        return sr_fail(err, "%s: the end-of-sequence id is %.17g in the shards but %d in the model's tokenizer",
                       dir, eos, tokenizer_eos_id(tok));
    int ml = shardset_max_length(set);
    if (ml > max_length)
        return sr_fail(err, "%s: sequences of up to %d tokens, longer than max_length %d: re-run prepare "
                            "with --max-length %d or raise max_length",
                       dir, ml, max_length, max_length);
    if (ml > m->cfg.max_position_embeddings)
        return sr_fail(err, "%s: sequences of up to %d tokens, more than the model's max_position_embeddings %d",
                       dir, ml, m->cfg.max_position_embeddings);
    return 0;
}

/* ---- held-out evaluation --------------------------------------------------------------------- */

typedef struct EvalBuf {
    int32_t *ids, *pos, *targets, *argmax;
    float *logprob;
    size_t cap_ids, cap_pos, cap_targets, cap_argmax, cap_logprob;
} EvalBuf;

static void evalbuf_reserve(EvalBuf *b, size_t n) {
    b->ids = sr_array_reserve(b->ids, &b->cap_ids, n, sizeof *b->ids);
    b->pos = sr_array_reserve(b->pos, &b->cap_pos, n, sizeof *b->pos);
    b->targets = sr_array_reserve(b->targets, &b->cap_targets, n, sizeof *b->targets);
    b->argmax = sr_array_reserve(b->argmax, &b->cap_argmax, n, sizeof *b->argmax);
    b->logprob = sr_array_reserve(b->logprob, &b->cap_logprob, n, sizeof *b->logprob);
}

static void evalbuf_free(EvalBuf *b) {
    free(b->ids);
    free(b->pos);
    free(b->targets);
    free(b->argmax);
    free(b->logprob);
    memset(b, 0, sizeof *b);
}

/* Appends one packed sequence as the loader lays it out: pos restarts per document, the
 * target of token t is token t+1 when that one is in the same document and in the loss. */
static int append_seq(EvalBuf *b, int at, const ShardSeq *s) {
    evalbuf_reserve(b, (size_t)at + (size_t)s->n_tokens);
    int off = at;
    for (int d = 0; d < s->n_docs; d++) {
        int len = (int)s->doc_lens[d];
        for (int i = 0; i < len; i++) {
            int t = off - at + i;
            b->ids[off + i] = (int32_t)s->tokens[t];
            b->pos[off + i] = i;
            b->targets[off + i] = i + 1 < len && s->mask[t + 1] ? (int32_t)s->tokens[t + 1] : -1;
        }
        off += len;
    }
    return off;
}

enum { EV_NLL, EV_SEQ, EV_TOK, EV_TGT, EV_PO, EV_RO, EV_HO, EV_PC, EV_RC, EV_HC, EV_OP, EV_OR, EV_CONTENT, EV_N };

/* Tag statistics of one forward's rows (see SftEval), added to c. */
static void tag_stats(const EvalBuf *b, int N, int32_t open_id, int32_t close_id, double *c) {
    int in_pred = 0, in_ref = 0;
    for (int i = 0; i < N; i++) {
        if (b->pos[i] == 0) in_pred = in_ref = 0;
        int32_t ref = b->targets[i], pred = b->argmax[i];
        if (ref < 0) continue;
        c[EV_TGT] += 1;
        c[EV_NLL] -= b->logprob[i];
        c[EV_PO] += pred == open_id;
        c[EV_RO] += ref == open_id;
        c[EV_HO] += pred == open_id && ref == open_id;
        c[EV_PC] += pred == close_id;
        c[EV_RC] += ref == close_id;
        c[EV_HC] += pred == close_id && ref == close_id;
        /* span states: the reference's from its own tags, the prediction's from the model's
         * argmax at each position (teacher-forced on the reference text) */
        if (pred == open_id) in_pred = 1;
        else if (pred == close_id) in_pred = 0;
        if (ref == open_id) in_ref = 1;
        else if (ref == close_id) in_ref = 0;
        else {
            c[EV_CONTENT] += 1;
            c[EV_OR] += in_ref;
            c[EV_OP] += in_pred;
        }
    }
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

/* Evaluates the model on every sequence of set: rank r takes batches r, r + W, ... */
static int evaluate(Qwen2Model *m, SrComm *comm, ShardSet *set, int batch_seqs, int32_t open_id,
                    int32_t close_id, SftEval *ev, SrError *err) {
    double t0 = sr_now();
    double c[EV_N] = {0};
    EvalBuf b = {0};
    ShardSeq seq = {0};
    long long n = shardset_num_sequences(set);
    int rc = 0;
    for (long long i0 = (long long)comm->rank * batch_seqs; i0 < n && !rc;
         i0 += (long long)comm->size * batch_seqs) {
        int N = 0;
        for (long long i = i0; i < i0 + batch_seqs && i < n && !rc; i++) {
            if (shardset_read(set, i, &seq, err)) rc = -1;
            else N = append_seq(&b, N, &seq);
            c[EV_SEQ] += 1;
        }
        if (rc || N == 0) break;
        c[EV_TOK] += N;
        rc = qwen2_hidden_forward(m, b.ids, b.pos, N, err) ||
             qwen2_hidden_eval(m, 0, N, b.targets, b.logprob, b.argmax, err);
        if (!rc) tag_stats(&b, N, open_id, close_id, c);
    }
    shard_seq_free(&seq);
    evalbuf_free(&b);
    /* every rank reaches the allreduce; a failure travels with the sums */
    double fail[1] = {rc ? 1.0 : 0.0};
    sr_comm_allreduce_host(comm, c, EV_N);
    sr_comm_allreduce_host(comm, fail, 1);
    if (fail[0] > 0) {
        if (!rc) sr_fail(err, "evaluation failed on another rank");
        return -1;
    }
    memset(ev, 0, sizeof *ev);
    ev->loss = ratio(c[EV_NLL], c[EV_TGT]);
    ev->n_sequences = (long long)c[EV_SEQ];
    ev->n_tokens = (long long)c[EV_TOK];
    ev->n_targets = (long long)c[EV_TGT];
    ev->pred_open = (long long)c[EV_PO];
    ev->ref_open = (long long)c[EV_RO];
    ev->hit_open = (long long)c[EV_HO];
    ev->pred_close = (long long)c[EV_PC];
    ev->ref_close = (long long)c[EV_RC];
    ev->hit_close = (long long)c[EV_HC];
    ev->offload_pred = (long long)c[EV_OP];
    ev->offload_ref = (long long)c[EV_OR];
    ev->open_precision = ratio(c[EV_HO], c[EV_PO]);
    ev->open_recall = ratio(c[EV_HO], c[EV_RO]);
    ev->close_precision = ratio(c[EV_HC], c[EV_PC]);
    ev->close_recall = ratio(c[EV_HC], c[EV_RC]);
    ev->offload_share = ratio(c[EV_OP], c[EV_CONTENT]);
    ev->offload_share_ref = ratio(c[EV_OR], c[EV_CONTENT]);
    ev->seconds = sr_now() - t0;
    return 0;
}

/* ---- run state ------------------------------------------------------------------------------ */

typedef struct Trainer {
    TrainHarness h;            /* policy, tokenizer, optimizer, checkpoints, outputs (harness.h) */
    const SftOptions *o;
    ShardLoader loader;
    int loader_ready;
    ShardSet *eval_set;
} Trainer;

static void log_train(Trainer *t, int step, const SrStepStats *st, double mfu) {
    const TrainHarness *h = &t->h;
    double loss = h->win_loss / h->win_steps;
    double tps = h->win_time > 0 ? h->win_tokens / h->win_time : 0.0;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "step", step);
    cJSON_AddNumberToObject(r, "epoch", harness_epoch(&t->h));
    cJSON_AddNumberToObject(r, "loss", loss);
    cJSON_AddNumberToObject(r, "learning_rate", st->lr);
    cJSON_AddNumberToObject(r, "grad_norm", st->grad_norm);
    cJSON_AddNumberToObject(r, "tokens_per_second", tps);
    cJSON_AddNumberToObject(r, "steps_per_second", h->win_time > 0 ? h->win_steps / h->win_time : 0.0);
    if (mfu >= 0) cJSON_AddNumberToObject(r, "mfu", mfu);
    else cJSON_AddNullToObject(r, "mfu");
    cJSON_AddNumberToObject(r, "num_tokens", h->tokens_seen);
    cJSON_AddNumberToObject(r, "num_target_tokens", st->n_targets);
    harness_record(&t->h, r);
    harness_scalar(&t->h, "train/loss", step, loss);
    harness_scalar(&t->h, "train/learning_rate", step, st->lr);
    harness_scalar(&t->h, "train/grad_norm", step, st->grad_norm);
    harness_scalar(&t->h, "train/tokens_per_second", step, tps);
    harness_scalar(&t->h, "train/epoch", step, harness_epoch(&t->h));
    if (mfu >= 0) harness_scalar(&t->h, "train/mfu", step, mfu);
    harness_progress(&t->h, step, 1, "loss %.4f | lr %.3g | grad norm %.3g | %.0f tok/s", loss, st->lr,
                     st->grad_norm, tps);
    harness_window_reset(&t->h);
}

static void log_eval(Trainer *t, int step, const SftEval *e) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "step", step);
    cJSON_AddNumberToObject(r, "epoch", harness_epoch(&t->h));
    cJSON_AddNumberToObject(r, "eval_loss", e->loss);
    cJSON_AddNumberToObject(r, "eval_bigmodel_open_precision", e->open_precision);
    cJSON_AddNumberToObject(r, "eval_bigmodel_open_recall", e->open_recall);
    cJSON_AddNumberToObject(r, "eval_bigmodel_close_precision", e->close_precision);
    cJSON_AddNumberToObject(r, "eval_bigmodel_close_recall", e->close_recall);
    cJSON_AddNumberToObject(r, "eval_offload_share", e->offload_share);
    cJSON_AddNumberToObject(r, "eval_offload_share_ref", e->offload_share_ref);
    cJSON_AddNumberToObject(r, "eval_predicted_open", (double)e->pred_open);
    cJSON_AddNumberToObject(r, "eval_reference_open", (double)e->ref_open);
    cJSON_AddNumberToObject(r, "eval_predicted_close", (double)e->pred_close);
    cJSON_AddNumberToObject(r, "eval_reference_close", (double)e->ref_close);
    cJSON_AddNumberToObject(r, "eval_target_tokens", (double)e->n_targets);
    cJSON_AddNumberToObject(r, "eval_runtime", e->seconds);
    harness_record(&t->h, r);
    harness_scalar(&t->h, "eval/loss", step, e->loss);
    harness_scalar(&t->h, "eval/bigmodel_open_precision", step, e->open_precision);
    harness_scalar(&t->h, "eval/bigmodel_open_recall", step, e->open_recall);
    harness_scalar(&t->h, "eval/bigmodel_close_precision", step, e->close_precision);
    harness_scalar(&t->h, "eval/bigmodel_close_recall", step, e->close_recall);
    harness_scalar(&t->h, "eval/offload_share", step, e->offload_share);
    if (t->h.root) {
        harness_clear_line(&t->h);
        sr_log("eval at step %d: loss %.4f | <bigmodel> P %.3f R %.3f (%lld predicted, %lld in the reference) | "
               "</bigmodel> P %.3f R %.3f | offload share %.3f (reference %.3f) | %.1fs",
               step, e->loss, e->open_precision, e->open_recall, e->pred_open, e->ref_open,
               e->close_precision, e->close_recall, e->offload_share, e->offload_share_ref, e->seconds);
    }
}

static int run_eval(Trainer *t, int step, SftEval *out, SrError *err) {
    SftEval e;
    if (evaluate(&t->h.m, t->h.comm, t->eval_set, t->o->per_device_eval_batch_size, t->h.open_id,
                 t->h.close_id, &e, err))
        return sr_fail_prefix(err, "eval at step %d", step);
    log_eval(t, step, &e);
    if (out) *out = e;
    return 0;
}

/* ---- SFT's part of a checkpoint and of a resume ------------------------------------------------ */

/* SFT's randomness is the data order alone: epoch e's permutation is drawn from the splitmix64
 * stream sr_rng_stream(seed, e), so (seed, epoch) is its whole state */
static cJSON *rng_state(const Trainer *t) {
    cJSON *k = cJSON_CreateObject();
    cJSON *r = cJSON_AddObjectToObject(k, "rng");
    cJSON_AddStringToObject(r, "data_order", "Fisher-Yates over splitmix64, stream = epoch");
    cJSON_AddNumberToObject(r, "seed", (double)t->o->seed);
    char hex[32];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)sr_rng_stream(t->o->seed, (uint64_t)t->h.data_epoch));
    cJSON_AddStringToObject(r, "epoch_stream_state", hex);
    return k;
}

static int save(Trainer *t, int step, SrError *err) {
    return harness_save(&t->h, step, t->h.root ? rng_state(t) : NULL, err);
}

/* the data position of a resumed run (HarnessSeekFn) */
static int seek_data(void *ctx, long long epoch, long long cursor, SrError *err) {
    return shard_loader_seek(&((Trainer *)ctx)->loader, epoch, cursor, err);
}

/* ---- setup and teardown ---------------------------------------------------------------------- */

static void trainer_free(Trainer *t) {
    if (t->loader_ready) shard_loader_close(&t->loader);
    if (t->eval_set) shardset_close(t->eval_set);
    harness_free(&t->h);
}

static int setup(void *ctx, SrError *err) {
    Trainer *t = ctx;
    const SftOptions *o = t->o;
    TrainHarness *h = &t->h;
    SrComm *comm = h->comm;
    int B = o->harness.per_device_train_batch_size;
    if (harness_load(h, err) || harness_check_fit(h, "max_length", o->max_length, (long long)B * o->max_length, err))
        return -1;

    /* data */
    if (shard_loader_open(&t->loader, o->harness.dataset_path, B, o->seed, comm->rank, comm->size, err)) return -1;
    t->loader_ready = 1;
    h->n_sequences = t->loader.n;
    h->global_micro_batch = (long long)comm->size * B;
    if (check_shards(o->harness.dataset_path, t->loader.set, h->tok, &h->m, o->max_length, err)) return -1;
    if (o->eval_dataset_path) {
        if (shardset_open(&t->eval_set, o->eval_dataset_path, err)) return -1;
        if (check_shards(o->eval_dataset_path, t->eval_set, h->tok, &h->m, o->max_length, err)) return -1;
        /* an eval forward's token offsets are ints */
        if ((long long)o->per_device_eval_batch_size * shardset_max_length(t->eval_set) > INT32_MAX)
            return sr_fail(err, "%s: per_device_eval_batch_size %d x sequences of up to %d tokens is more than 2^31 "
                                "tokens in one forward", o->eval_dataset_path, o->per_device_eval_batch_size,
                           shardset_max_length(t->eval_set));
    }

    /* steps and schedule: an epoch is floor(micro-batches / accumulation) optimizer steps */
    long long micro_per_epoch = h->n_sequences / h->global_micro_batch;
    if (harness_total_steps(h, micro_per_epoch / o->gradient_accumulation_steps, 1, err)) return -1;
    return harness_setup_optim(h, err);
}

/* ---- the loop ---------------------------------------------------------------------------------- */

int sft_run(const SftOptions *o, const cJSON *effective_config, SrComm *comm, SftResult *res,
            SrError *err) {
    Trainer t;
    memset(&t, 0, sizeof t);
    memset(res, 0, sizeof *res);
    t.o = o;
    harness_init(&t.h, &o->harness, comm, effective_config);

    int rc = harness_start(&t.h, setup, seek_data, NULL, &t, err);
    if (rc) {
        trainer_free(&t);
        return -1;
    }
    const Qwen2Config *c = &t.h.m.cfg;
    int step = t.h.opt.step;
    res->start_step = step;
    res->total_steps = t.h.total_steps;
    int stop_at = t.h.total_steps;
    if (o->stop_after_steps > 0 && o->stop_after_steps < stop_at) stop_at = (int)o->stop_after_steps;
    if (t.h.root)
        sr_log("sft: %lld parameters, %lld training sequences (%d per micro-batch x %d accumulation x %d "
               "process%s), %d optimizer steps%s, schedule %s (peak lr %g, warmup %d steps), device %s, comm %s",
               qwen2_config_num_params(c), t.h.n_sequences, o->harness.per_device_train_batch_size,
               o->gradient_accumulation_steps, comm->size, comm->size > 1 ? "es" : "", t.h.total_steps,
               step > 0 ? " (resumed)" : "", sr_lr_kind_name(t.h.sched.kind), t.h.sched.lr,
               t.h.sched.kind == SR_LR_CONSTANT ? 0 : t.h.sched.warmup_steps, t.h.be.ops->name, sr_comm_kind_name(comm));

    if (t.eval_set && o->eval_on_start && step == 0) {
        rc = run_eval(&t, 0, &res->eval_first, err);
        res->has_eval_first = !rc;
    }

    int n_micro = o->gradient_accumulation_steps;
    ShardBatch *batches = sr_calloc((size_t)n_micro, sizeof(ShardBatch));
    SrMicroBatch *mb = sr_calloc((size_t)n_micro, sizeof(SrMicroBatch));
    int last_saved = step, last_eval = res->has_eval_first ? 0 : -1;
    int first = 1;
    while (!rc && step < stop_at) {
        double t0 = sr_now();
        double ctx[2] = {0, 0}; /* sum over tokens of the attended keys (pos + 1), this rank */
        for (int k = 0; k < n_micro && !rc; k++) {
            if (shard_loader_next(&t.loader, &batches[k], err)) {
                rc = -1;
                break;
            }
            mb[k] = (SrMicroBatch){batches[k].ids, batches[k].pos, batches[k].targets, NULL, batches[k].N};
            for (int i = 0; i < batches[k].N; i++) ctx[0] += batches[k].pos[i] + 1;
        }
        /* a loader failure on one rank must not leave the others in a collective */
        ctx[1] = rc ? 1.0 : 0.0;
        sr_comm_allreduce_host(comm, ctx, 2);
        if (ctx[1] > 0) {
            if (!rc) sr_fail(err, "the data loader failed on another rank");
            rc = -1;
            break;
        }
        SrStepStats st;
        if (sr_train_step(&t.h.opt, &t.h.sched, mb, n_micro, &st, err)) {
            sr_fail_prefix(err, "step %d", step + 1);
            rc = -1;
            break;
        }
        if (st.nonfinite) {
            rc = harness_nonfinite(&t.h, step + 1, &st, err);
            break;
        }
        step++;
        t.h.data_epoch = batches[n_micro - 1].next_epoch;
        t.h.data_cursor = batches[n_micro - 1].next_cursor;
        double dt = sr_now() - t0;
        double flops = harness_train_flops(&t.h, st.n_tokens, ctx[0]);
        harness_step_done(&t.h, &st, flops, dt);
        res->tokens += st.n_tokens;
        res->train_seconds += dt;
        if (first) res->first_loss = st.loss;
        first = 0;
        res->last_loss = st.loss;
        res->end_step = step;

        if (step % o->harness.logging_steps == 0 || step == t.h.total_steps) {
            log_train(&t, step, &st, harness_mfu(&t.h, flops, dt));
        } else {
            harness_progress(&t.h, step, 0, "loss %.4f | lr %.3g | grad norm %.3g | %.0f tok/s", st.loss, st.lr,
                             st.grad_norm, st.n_tokens / (dt > 0 ? dt : 1));
        }
        if (t.eval_set && o->harness.eval_steps > 0 && step % o->harness.eval_steps == 0) {
            rc = run_eval(&t, step, &res->eval_last, err);
            res->has_eval_last = !rc;
            last_eval = step;
        }
        if (!rc && (step % o->harness.save_steps == 0 || step == stop_at)) {
            rc = save(&t, step, err);
            last_saved = step;
        }
    }
    /* a run stopped by stop_after_steps ends as if interrupted: no final eval */
    if (!rc && t.eval_set && last_eval != step && step == t.h.total_steps) {
        rc = run_eval(&t, step, &res->eval_last, err);
        res->has_eval_last = !rc;
    }
    if (!rc && last_saved != step) rc = save(&t, step, err);
    if (!rc) snprintf(res->last_checkpoint, sizeof res->last_checkpoint, "%s/%s%d", o->harness.output_dir,
                      CHECKPOINT_PREFIX, step);
    for (int k = 0; k < n_micro; k++) shard_batch_free(&batches[k]);
    free(batches);
    free(mb);
    res->seconds = sr_now() - t.h.t_start;
    if (!rc && t.h.root) {
        double sps = res->train_seconds > 0 ? (res->end_step - res->start_step) / res->train_seconds : 0;
        sr_log("sft: steps %d -> %d of %d in %.1fs (%.3f steps/s, %.0f tokens/s while training)%s",
               res->start_step, step, t.h.total_steps, res->seconds, sps,
               res->train_seconds > 0 ? res->tokens / res->train_seconds : 0.0,
               step < t.h.total_steps ? " (stopped early: stop_after_steps)" : "");
    }
    trainer_free(&t);
    return rc;
}
