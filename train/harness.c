/*
 * The trainer harness (see harness.h): setup (checkpoint pick, policy, tokenizer, optimizer),
 * checkpoints and resume, the metrics writer, counters and MFU, the progress line.
 */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/fileio.h"
#include "../common/log.h"
#include "checkpoint.h"

/* ---- the rules of shared settings ---------------------------------------------------------- */

int harness_config_min_lr_rate(const SrConfig *cfg, double *min_lr_rate, SrError *err) {
    *min_lr_rate = -1.0;
    if (sr_config_has(cfg, "min_lr_rate")) *min_lr_rate = sr_config_float(cfg, "min_lr_rate");
    const cJSON *kw = sr_config_get(cfg, "lr_scheduler_kwargs");
    if (!kw || cJSON_IsNull(kw)) return 0;
    if (!cJSON_IsObject(kw)) return sr_fail(err, "lr_scheduler_kwargs must be an object, e.g. {\"min_lr_rate\": 0.1}");
    for (const cJSON *it = kw->child; it; it = it->next) {
        if (strcmp(it->string, "min_lr_rate") == 0 && cJSON_IsNumber(it)) *min_lr_rate = it->valuedouble;
        else {
            char k[72];
            return sr_fail(err, "lr_scheduler_kwargs: '%s' is not supported (only min_lr_rate)",
                           sr_oneline(it->string, k, sizeof k));
        }
    }
    return 0;
}

int harness_config_report_tensorboard(const SrConfig *cfg) {
    const cJSON *rt = sr_config_get(cfg, "report_to");
    int tb = 0;
    if (cJSON_IsString(rt)) {
        tb = !strcmp(rt->valuestring, "tensorboard") || !strcmp(rt->valuestring, "all");
    } else if (cJSON_IsArray(rt)) {
        for (const cJSON *it = rt->child; it; it = it->next)
            if (cJSON_IsString(it) && !strcmp(it->valuestring, "tensorboard")) tb = 1;
    }
    return tb;
}

int harness_config_resume(const SrConfig *cfg, const char **resume, SrError *err) {
    const cJSON *r = sr_config_get(cfg, "resume_from_checkpoint");
    *resume = NULL;
    if (cJSON_IsTrue(r)) *resume = "latest";
    else if (cJSON_IsString(r) && r->valuestring[0]) {
        *resume = !strcmp(r->valuestring, "true") ? "latest" : r->valuestring;
    } else if (r && !cJSON_IsNull(r) && !cJSON_IsFalse(r) && !cJSON_IsString(r))
        return sr_fail(err, "resume_from_checkpoint must be a checkpoint directory, true or false");
    return 0;
}

int harness_options_from_config(HarnessOptions *o, const SrConfig *cfg, SrError *err) {
    memset(o, 0, sizeof *o);
    o->model_name_or_path = sr_config_str(cfg, "model_name_or_path");
    o->dataset_path = sr_config_str(cfg, "dataset_path");
    o->output_dir = sr_config_str(cfg, "output_dir");
    o->logging_dir = sr_config_str(cfg, "logging_dir");
    o->device = sr_config_str(cfg, "device");
    o->learning_rate = sr_config_float(cfg, "learning_rate");
    o->weight_decay = sr_config_float(cfg, "weight_decay");
    o->adam_beta1 = sr_config_float(cfg, "adam_beta1");
    o->adam_beta2 = sr_config_float(cfg, "adam_beta2");
    o->adam_epsilon = sr_config_float(cfg, "adam_epsilon");
    o->max_grad_norm = sr_config_float(cfg, "max_grad_norm");
    o->num_train_epochs = sr_config_float(cfg, "num_train_epochs");
    o->max_steps = (long)sr_config_int(cfg, "max_steps");
    o->per_device_train_batch_size = (int)sr_config_int(cfg, "per_device_train_batch_size");
    o->lr_scheduler_type = sr_config_str(cfg, "lr_scheduler_type");
    o->warmup_ratio = sr_config_float(cfg, "warmup_ratio");
    o->warmup_steps = sr_config_float(cfg, "warmup_steps");
    o->gradient_checkpointing = sr_config_bool(cfg, "gradient_checkpointing");
    o->bf16 = sr_config_bool(cfg, "bf16");
    o->logging_steps = (int)sr_config_int(cfg, "logging_steps");
    o->save_steps = (int)sr_config_int(cfg, "save_steps");
    o->save_total_limit = sr_config_has(cfg, "save_total_limit") ? (int)sr_config_int(cfg, "save_total_limit") : 0;
    o->peak_tflops = sr_config_float(cfg, "peak_tflops");
    /* the TRL forms of min_lr_rate (lr_scheduler_kwargs), report_to and resume_from_checkpoint */
    if (harness_config_min_lr_rate(cfg, &o->min_lr_rate, err)) return -1;
    o->report_tensorboard = harness_config_report_tensorboard(cfg);
    if (harness_config_resume(cfg, &o->resume_from_checkpoint, err)) return -1;

    /* the ranges, choices and required keys are checked by the option layer (the trainer's
     * table); what is left here are the rules between keys */
    if (!o->device) o->device = "cpu";
    if (!o->lr_scheduler_type) o->lr_scheduler_type = "linear";
    if (o->max_steps <= 0 && !(o->num_train_epochs > 0))
        return sr_fail(err, "set max_steps > 0 or num_train_epochs > 0");
    if (!strcmp(o->lr_scheduler_type, "cosine_with_min_lr") && o->min_lr_rate < 0)
        return sr_fail(err, "cosine_with_min_lr needs min_lr_rate (or lr_scheduler_kwargs {\"min_lr_rate\": x})");
    if (o->min_lr_rate < 0) o->min_lr_rate = 0.0;
    return 0;
}

/* ---- lifetime -------------------------------------------------------------------------------- */

void harness_init(TrainHarness *h, const HarnessOptions *o, SrComm *comm, const cJSON *effective_config) {
    memset(h, 0, sizeof *h);
    h->o = *o;
    h->comm = comm;
    h->root = comm->rank == 0;
    h->config = effective_config;
    h->tty = isatty(STDERR_FILENO);
    h->t_start = sr_now();
    h->log_history = cJSON_CreateArray();
}

void harness_free(TrainHarness *h) {
    if (h->opt_ready) sr_optim_free(&h->opt);
    if (h->tok) tokenizer_free(h->tok);
    if (h->m.info) qwen2_free(&h->m);
    if (h->be_ready) sr_backend_free(&h->be);
    h->opt_ready = h->be_ready = 0;
    h->tok = NULL;
    if (h->metrics) fclose(h->metrics);
    if (h->tb_ready) sr_tb_close(&h->tb);
    cJSON_Delete(h->log_history);
    cJSON_Delete(h->resumed_state);
    h->resumed_state = NULL;
    h->metrics = NULL;
    h->tb_ready = 0;
    h->log_history = NULL;
}

/* ---- setup ---------------------------------------------------------------------------------- */

static void mfu_init(TrainHarness *h);

int harness_pick_checkpoint(TrainHarness *h, SrError *err) {
    const HarnessOptions *o = &h->o;
    h->ckpt[0] = '\0';
    if (!o->resume_from_checkpoint) return 0;
    if (strcmp(o->resume_from_checkpoint, "latest") == 0) {
        int step;
        int f = checkpoint_find_latest(o->output_dir, h->ckpt, sizeof h->ckpt, &step, err);
        if (f < 0) return -1;
        if (f == 0) {
            sr_log("resume_from_checkpoint: no complete checkpoint in %s, starting from the beginning", o->output_dir);
            h->ckpt[0] = '\0';
        }
        return 0;
    }
    if (!checkpoint_is_complete(o->resume_from_checkpoint))
        return sr_fail(err, "%s: not a complete checkpoint (missing or no DONE marker)", o->resume_from_checkpoint);
    snprintf(h->ckpt, sizeof h->ckpt, "%s", o->resume_from_checkpoint);
    return 0;
}

int harness_load(TrainHarness *h, SrError *err) {
    const HarnessOptions *o = &h->o;
    SrComm *comm = h->comm;
    int dev = strcmp(o->device, "cuda") == 0 ? comm->local_rank : 0;
    if (sr_backend_init(&h->be, o->device, dev, err)) return -1;
    h->be_ready = 1;
    if (sr_comm_attach(comm, &h->be, err)) return -1;
    if (h->root && h->be.device == SR_DEVICE_CPU && o->bf16)
        sr_log("note: bf16 applies to CUDA; the CPU backend trains in fp32");
    if (h->root && h->be.device == SR_DEVICE_CUDA && !o->bf16)
        sr_log("note: the CUDA backend computes in bf16 (fp32 master weights and optimizer state) whatever bf16 says");

    /* the model (and tokenizer) come from the checkpoint when resuming */
    const char *src = h->ckpt[0] ? h->ckpt : o->model_name_or_path;
    if (qwen2_load(&h->m, src, &h->be, err)) return -1;
    if (tokenizer_load(&h->tok, src, err)) return -1;
    if (tokenizer_add_bigmodel_tokens(h->tok, &h->open_id, &h->close_id, err))
        return sr_fail_prefix(err, "%s", src);
    if (tokenizer_vocab_size(h->tok) > h->m.cfg.vocab_size)
        return sr_fail(err, "%s: the tokenizer (with the <bigmodel> tags) has %d ids but vocab_size is %d",
                       src, tokenizer_vocab_size(h->tok), h->m.cfg.vocab_size);
    h->m.grad_checkpointing = o->gradient_checkpointing;
    mfu_init(h);
    return 0;
}

int harness_check_fit(TrainHarness *h, const char *what, int max_length, long long tokens_per_micro_batch,
                      SrError *err) {
    const Qwen2Config *c = &h->m.cfg;
    if (max_length > c->max_position_embeddings)
        return sr_fail(err, "%s %d exceeds the model's max_position_embeddings %d", what, max_length,
                       c->max_position_embeddings);
    /* training holds gradients, AdamW state and activations besides the weights: refuse what
     * cannot fit before they are allocated (on the CPU; the GPU backend reports its own) */
    if (h->be.device == SR_DEVICE_CPU) {
        uint64_t act = qwen2_config_train_act_bytes(c, tokens_per_micro_batch, h->o.gradient_checkpointing, 4);
        if (qwen2_config_check_memory(c, 8.0 + 8.0 / h->comm->size, act,
                                      "fp32 weights, gradients, this rank's AdamW state, activations", err))
            return sr_fail_prefix(err, "%s", h->ckpt[0] ? h->ckpt : h->o.model_name_or_path);
    }
    return 0;
}

int harness_total_steps(TrainHarness *h, long long units_per_epoch, int steps_per_unit, SrError *err) {
    const HarnessOptions *o = &h->o;
    if (units_per_epoch < 1) units_per_epoch = 1;
    double total = o->max_steps > 0 ? (double)o->max_steps
                                    : ceil(o->num_train_epochs * (double)units_per_epoch) * steps_per_unit;
    if (total > 1e9) return sr_fail(err, "%.0f optimizer steps is too many", total);
    h->total_steps = (int)total;
    return 0;
}

int harness_setup_optim(TrainHarness *h, SrError *err) {
    const HarnessOptions *o = &h->o;
    if (sr_lr_schedule_init(&h->sched, o->lr_scheduler_type, o->learning_rate, h->total_steps, o->warmup_steps,
                            o->warmup_ratio, o->min_lr_rate, err))
        return -1;
    SrAdamWConfig ac;
    sr_adamw_config_default(&ac);
    ac.beta1 = (float)o->adam_beta1;
    ac.beta2 = (float)o->adam_beta2;
    ac.eps = (float)o->adam_epsilon;
    ac.weight_decay = (float)o->weight_decay;
    ac.max_grad_norm = (float)o->max_grad_norm;
    if (sr_optim_init(&h->opt, &h->m, h->comm, &ac, err)) return -1;
    h->opt_ready = 1;
    return 0;
}

int harness_agree(TrainHarness *h, int rc, SrError *err, const char *what) {
    double f = rc ? 1.0 : 0.0;
    sr_comm_allreduce_host(h->comm, &f, 1);
    if (f > 0 && !rc) sr_fail(err, "%s failed on another process", what);
    return f > 0 ? -1 : 0;
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

double harness_epoch(const TrainHarness *h) {
    return (double)h->data_epoch + (h->n_sequences > 0 ? (double)h->data_cursor / (double)h->n_sequences : 0.0);
}

cJSON *harness_trainer_state(const TrainHarness *h, int step, cJSON *trainer_keys) {
    const HarnessOptions *o = &h->o;
    cJSON *s = cJSON_CreateObject();
    /* transformers' TrainerState keys */
    cJSON_AddNullToObject(s, "best_metric");
    cJSON_AddNullToObject(s, "best_model_checkpoint");
    cJSON_AddNumberToObject(s, "epoch", harness_epoch(h));
    cJSON_AddNumberToObject(s, "eval_steps", o->eval_steps);
    cJSON_AddNumberToObject(s, "global_step", step);
    cJSON_AddFalseToObject(s, "is_hyper_param_search");
    cJSON_AddTrueToObject(s, "is_local_process_zero");
    cJSON_AddTrueToObject(s, "is_world_process_zero");
    cJSON_AddItemToObject(s, "log_history", cJSON_Duplicate(h->log_history, 1));
    cJSON_AddNumberToObject(s, "logging_steps", o->logging_steps);
    cJSON_AddNumberToObject(s, "max_steps", h->total_steps);
    cJSON_AddNumberToObject(s, "num_input_tokens_seen", h->tokens_seen);
    cJSON_AddNumberToObject(s, "num_train_epochs", o->num_train_epochs);
    cJSON_AddNumberToObject(s, "save_steps", o->save_steps);
    cJSON_AddNumberToObject(s, "total_flos", h->total_flos);
    cJSON_AddNumberToObject(s, "train_batch_size", o->per_device_train_batch_size);
    cJSON_AddNullToObject(s, "trial_name");
    cJSON_AddNullToObject(s, "trial_params");
    /* ours: what an exact resume needs */
    cJSON *x = cJSON_AddObjectToObject(s, "splitreason");
    cJSON_AddNumberToObject(x, "format_version", 1);
    cJSON_AddNumberToObject(x, "world_size", h->comm->size);
    cJSON_AddNumberToObject(x, "optimizer_step", h->opt.step);
    cJSON *d = cJSON_AddObjectToObject(x, "data");
    cJSON_AddStringToObject(d, "dataset_path", o->dataset_path);
    cJSON_AddNumberToObject(d, "n_sequences", (double)h->n_sequences);
    cJSON_AddNumberToObject(d, "global_micro_batch", (double)h->global_micro_batch);
    cJSON_AddNumberToObject(d, "epoch", (double)h->data_epoch);
    cJSON_AddNumberToObject(d, "cursor", (double)h->data_cursor);
    for (cJSON *it; trainer_keys && (it = trainer_keys->child);) {
        cJSON_DetachItemViaPointer(trainer_keys, it);
        cJSON_AddItemToObject(x, it->string, it);
    }
    cJSON_Delete(trainer_keys);
    cJSON *w = cJSON_AddObjectToObject(x, "log_window");
    cJSON_AddNumberToObject(w, "loss_sum", h->win_loss);
    cJSON_AddNumberToObject(w, "steps", h->win_steps);
    cJSON_AddNumberToObject(x, "train_seconds", h->train_seconds);
    if (h->config) cJSON_AddItemToObject(x, "config", cJSON_Duplicate(h->config, 1));
    return s;
}

int harness_save(TrainHarness *h, int step, cJSON *trainer_keys, SrError *err) {
    cJSON *state = NULL;
    if (h->root) state = harness_trainer_state(h, step, trainer_keys);
    else cJSON_Delete(trainer_keys);
    CheckpointSave cs = {h->o.output_dir, step, &h->opt, h->tok, state, h->o.save_total_limit};
    double t0 = sr_now();
    char path[4096];
    int rc = checkpoint_save(&cs, path, sizeof path, err);
    cJSON_Delete(state);
    if (rc) return sr_fail_prefix(err, "checkpoint at step %d", step);
    if (h->root) {
        harness_clear_line(h);
        sr_log("saved %s (%.1fs)", path, sr_now() - t0);
    }
    return 0;
}

/* Warns about settings that differ from the checkpoint's run (they change what is resumed). */
static void compare_config(const cJSON *saved, const cJSON *now) {
    if (!cJSON_IsObject(saved) || !cJSON_IsObject(now)) return;
    static const char *const ignore[] = {"resume_from_checkpoint", "stop_after_steps", "output_dir",
                                         "logging_dir", "report_to", "model_name_or_path", "config"};
    for (const cJSON *it = now->child; it; it = it->next) {
        int skip = 0;
        for (size_t i = 0; i < sizeof ignore / sizeof ignore[0]; i++) skip |= !strcmp(it->string, ignore[i]);
        if (skip) continue;
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(saved, it->string);
        if (s && !cJSON_Compare(s, it, 1)) {
            char *a = cJSON_PrintUnformatted(s), *b = cJSON_PrintUnformatted(it);
            sr_log("warning: %s was %s in the checkpoint's run and is %s now", it->string, a, b);
            free(a);
            free(b);
        }
    }
}

int harness_resume(TrainHarness *h, HarnessSeekFn seek, void *seek_ctx, SrError *err) {
    const char *ckpt = h->ckpt;
    if (!ckpt[0]) return 0;
    CheckpointState st;
    if (checkpoint_read_state(ckpt, &st, err)) return -1;
    int rc = 0, step = st.global_step;
    if (st.world_size != h->comm->size)
        rc = sr_fail(err, "%s: written by %d processes, this run has %d: resume with the same number", ckpt,
                     st.world_size, h->comm->size);
    if (!rc && st.global_micro_batch != h->global_micro_batch)
        rc = sr_fail(err, "%s: per_device_train_batch_size differs from the checkpoint's run (the data "
                          "position would not be a batch boundary)", ckpt);
    if (!rc && st.n_sequences != h->n_sequences)
        rc = sr_fail(err, "%s: the checkpoint's run had %lld training sequences, %s has %lld", ckpt,
                     st.n_sequences, h->o.dataset_path, h->n_sequences);
    if (!rc) rc = sr_optim_load(&h->opt, ckpt, err);
    if (!rc && h->opt.step != step)
        rc = sr_fail(err, "%s: optimizer step %d but global_step %d", ckpt, h->opt.step, step);
    if (!rc) {
        h->data_epoch = st.data_epoch;
        h->data_cursor = st.data_cursor;
        rc = seek(seek_ctx, h->data_epoch, h->data_cursor, err);
    }
    if (!rc) {
        h->win_loss = st.window_loss_sum;
        h->win_steps = st.window_steps;
        h->tokens_seen = st.tokens_seen;
        h->total_flos = st.total_flos;
        h->train_seconds = st.train_seconds;
        if (h->root) compare_config(st.config, h->config);
        rc = harness_restore_history(h, st.log_history, err);
    }
    if (!rc) {
        cJSON_Delete(h->resumed_state);
        h->resumed_state = st.json; /* the trainer's own keys are read from it */
        st.json = NULL;
    }
    checkpoint_state_free(&st);
    if (!rc && h->root)
        sr_log("resumed from %s: step %d, data epoch %lld cursor %lld", ckpt, step, h->data_epoch, h->data_cursor);
    return rc;
}

int harness_start(TrainHarness *h, HarnessSetupFn setup, HarnessSeekFn seek, HarnessSetupFn restore, void *ctx,
                  SrError *err) {
    int rc = harness_pick_checkpoint(h, err);
    if (!rc) rc = setup(ctx, err);
    rc = harness_agree(h, rc, err, "setup");
    if (!rc && h->ckpt[0]) rc = harness_agree(h, harness_resume(h, seek, ctx, err), err, "resume");
    if (!rc && h->ckpt[0] && restore) rc = harness_agree(h, restore(ctx, err), err, "resume");
    /* resume rewrites metrics.jsonl, so the outputs open after it */
    if (!rc) rc = harness_agree(h, harness_open_outputs(h, err), err, "opening the outputs");
    if (!rc) h->start_step = h->opt.step;
    return rc;
}

/* ---- the metrics writer ------------------------------------------------------------------- */

int harness_open_outputs(TrainHarness *h, SrError *err) {
    const HarnessOptions *o = &h->o;
    if (!h->root) return 0;
    if (sr_mkdir_p(o->output_dir, err)) return -1;
    char *path = sr_path_join(o->output_dir, "metrics.jsonl");
    h->metrics = fopen(path, "a");
    int rc = h->metrics ? 0 : sr_fail(err, "%s: cannot open (%s)", path, strerror(errno));
    free(path);
    if (rc) return -1;
    if (o->report_tensorboard) {
        char *dir = o->logging_dir ? sr_strdup(o->logging_dir) : sr_path_join(o->output_dir, "runs");
        rc = sr_mkdir_p(dir, err) || sr_tb_open(&h->tb, dir, err);
        free(dir);
        if (rc) return -1;
        h->tb_ready = 1;
    }
    return 0;
}

void harness_record(TrainHarness *h, cJSON *rec) {
    if (!h->root) {
        cJSON_Delete(rec);
        return;
    }
    if (h->metrics) {
        char *line = cJSON_PrintUnformatted(rec);
        fprintf(h->metrics, "%s\n", line);
        fflush(h->metrics);
        free(line);
    }
    cJSON_AddItemToArray(h->log_history, rec);
}

void harness_scalar(TrainHarness *h, const char *tag, int step, double v) {
    if (!h->tb_ready || !isfinite(v)) return;
    SrError e;
    if (sr_tb_scalar(&h->tb, tag, step, (float)v, &e)) {
        sr_log("warning: %s (TensorBoard logging stops)", e.msg);
        sr_tb_close(&h->tb);
        h->tb_ready = 0;
    }
}

int harness_restore_history(TrainHarness *h, const cJSON *history, SrError *err) {
    if (history) {
        cJSON_Delete(h->log_history);
        h->log_history = cJSON_Duplicate(history, 1);
    }
    if (!h->root) return 0;
    if (sr_mkdir_p(h->o.output_dir, err)) return -1;
    char *path = sr_path_join(h->o.output_dir, "metrics.jsonl");
    SrAtomicFile af;
    int rc = sr_atomic_open(&af, path, err);
    for (const cJSON *it = h->log_history->child; it && !rc; it = it->next) {
        char *line = cJSON_PrintUnformatted(it);
        rc = sr_atomic_write(&af, line, strlen(line), err) || sr_atomic_write(&af, "\n", 1, err);
        free(line);
    }
    if (!rc) rc = sr_atomic_commit(&af, err);
    else sr_atomic_abort(&af);
    free(path);
    return rc;
}

/* ---- counters and MFU --------------------------------------------------------------------- */

/* FLOPs of the matmuls a token goes through, forward + backward (6 per weight), without the
 * attention scores (counted per step from the positions) and the embedding lookup. */
static double matmul_flops_per_token(const Qwen2Config *c) {
    double C = c->hidden_size, QD = (double)c->num_attention_heads * c->head_dim;
    double KVD = (double)c->num_key_value_heads * c->head_dim, I = c->intermediate_size;
    double per_layer = C * QD + 2 * C * KVD + QD * C + 3 * C * I;
    return 6.0 * (per_layer * c->num_hidden_layers + C * (double)c->vocab_size);
}

/* Dense bf16 peak of the GPUs we know by name (per device), 0 if unknown. */
static double guess_peak_flops(const SrBackend *be) {
    if (be->device != SR_DEVICE_CUDA) return 0.0;
    char name[256] = "";
    sr_cuda_device_name(be->device_index, name, sizeof name);
    if (strstr(name, "H100") || strstr(name, "H200") || strstr(name, "H800") || strstr(name, "GH200"))
        return 989e12;
    if (strstr(name, "B200")) return 2250e12;
    if (strstr(name, "A100") || strstr(name, "A800")) return 312e12;
    if (strstr(name, "L40S")) return 362e12;
    if (strstr(name, "4090")) return 165e12;
    return 0.0;
}

static void mfu_init(TrainHarness *h) {
    const Qwen2Config *c = &h->m.cfg;
    h->flops_per_token = matmul_flops_per_token(c);
    /* QK^T and PV, 2 FLOPs each per key and head dim, x3 for the backward */
    h->flops_per_key = 12.0 * c->num_hidden_layers * c->num_attention_heads * c->head_dim;
    h->peak_flops = h->o.peak_tflops > 0 ? h->o.peak_tflops * 1e12 : guess_peak_flops(&h->be);
}

double harness_train_flops(const TrainHarness *h, double n_tokens, double attended_keys) {
    return h->flops_per_token * n_tokens + h->flops_per_key * attended_keys;
}

double harness_mfu(const TrainHarness *h, double flops, double dt) {
    return h->peak_flops > 0 && dt > 0 ? flops / dt / (h->peak_flops * h->comm->size) : -1.0;
}

int harness_nonfinite(TrainHarness *h, int step, const SrStepStats *st, SrError *err) {
    char where[400];
    snprintf(where, sizeof where, "%s%s%s%s",
             st->bad_param[0] ? "first non-finite parameter: " : "every parameter is finite", st->bad_param,
             st->bad_grad[0] ? "; first non-finite gradient (from the output back): " : "", st->bad_grad);
    if (h->root) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "step", step);
        cJSON_AddNullToObject(r, "loss");
        cJSON_AddStringToObject(r, "error", "non-finite loss or gradient norm");
        cJSON_AddStringToObject(r, "bad_parameter", st->bad_param);
        cJSON_AddStringToObject(r, "bad_gradient", st->bad_grad);
        harness_record(h, r);
    }
    return sr_fail(err, "step %d: the %s is %g (%s); stopped without an update, the last good checkpoint "
                        "is the latest in %s",
                   step, isfinite(st->loss) ? "gradient norm" : "loss", isfinite(st->loss) ? st->grad_norm : st->loss,
                   where, h->o.output_dir);
}

void harness_step_done(TrainHarness *h, const SrStepStats *st, double flops, double dt) {
    h->tokens_seen += st->n_tokens;
    h->total_flos += flops;
    h->train_seconds += dt;
    h->win_loss += st->loss;
    h->win_steps++;
    h->win_tokens += st->n_tokens;
    h->win_time += dt;
}

void harness_window_reset(TrainHarness *h) {
    h->win_loss = h->win_tokens = h->win_time = 0;
    h->win_steps = 0;
}

/* ---- stderr --------------------------------------------------------------------------------- */

static void fmt_eta(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) s = 0;
    long v = (long)(s + 0.5);
    if (v >= 3600) snprintf(buf, n, "%ldh%02ldm", v / 3600, (v / 60) % 60);
    else snprintf(buf, n, "%ldm%02lds", v / 60, v % 60);
}

void harness_progress(const TrainHarness *h, int step, int full, const char *fields_fmt, ...) {
    if (!h->root || (!full && !h->tty)) return;
    char fields[512];
    va_list ap;
    va_start(ap, fields_fmt);
    vsnprintf(fields, sizeof fields, fields_fmt, ap);
    va_end(ap);
    double el = sr_now() - h->t_start;
    int done = step - h->start_step;
    char eta[32];
    fmt_eta(eta, sizeof eta, done > 0 ? el / done * (h->total_steps - step) : -1);
    fprintf(stderr, "%s[splitreason] step %d/%d (%.1f%%) | %s | eta %s%s", h->tty ? "\r\033[K" : "", step,
            h->total_steps, 100.0 * step / h->total_steps, fields, eta, full || !h->tty ? "\n" : "");
    fflush(stderr);
}

void harness_clear_line(const TrainHarness *h) {
    if (h->root && h->tty) fprintf(stderr, "\r\033[K");
}
