/*
 * The trainer harness (train/harness.h) on its own, without SFT's loop, on the toy model of
 * sft_fixture.h:
 *   - the rules of the shared settings (lr_scheduler_kwargs, report_to, resume_from_checkpoint);
 *   - the checkpoint to resume from ("latest" = the newest complete one; a path without DONE
 *     refused);
 *   - loading: the policy with the tags; a sequence past the positions and a step past the
 *     memory refused with the setting named;
 *   - the metrics writer: metrics.jsonl + TensorBoard, the history rewritten on resume;
 *   - trainer_state.json as checkpoint_parse_state reads it back, the trainer's keys inside;
 *   - FLOPs, MFU, the counters and the logging window;
 *   - save + resume: the optimizer, weights, counters, data position (through the seek
 *     callback), history and the trainer's own keys come back; another global micro-batch is
 *     refused;
 *   - a non-finite step: its record and its message.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#pragma GCC diagnostic ignored "-Wunused-function" /* the fixture's shard maker is not needed here */
#include "sft_fixture.h"
#include "train/checkpoint.h"
#include "train/harness.h"

static char MODEL[512];

static const SrOption OPTS[] = {
    {"min_lr_rate", SR_OPT_FLOAT, "null", "floor", SR_RANGE(0, 1)},
    {"lr_scheduler_kwargs", SR_OPT_JSON, "null", "TRL form"},
    {"report_to", SR_OPT_JSON, "\"tensorboard\"", "where", SR_CHOICES("tensorboard", "all", "none")},
    {"resume_from_checkpoint", SR_OPT_JSON, "null", "resume"},
};
#define N_OPTS ((int)(sizeof OPTS / sizeof OPTS[0]))

static void test_config_rules(void) {
    SrConfig cfg;
    SrError err;
    double mlr;
    const char *res;
    const char *a[] = {NULL};
    CHECK(toy_config_parse(&cfg, OPTS, N_OPTS, a) == 0);
    CHECK(harness_config_min_lr_rate(&cfg, &mlr, &err) == 0 && mlr == -1.0);
    CHECK(harness_config_report_tensorboard(&cfg) == 1);
    CHECK(harness_config_resume(&cfg, &res, &err) == 0 && res == NULL);
    sr_config_free(&cfg);

    const char *b[] = {"--min-lr-rate", "0.2", "--lr-scheduler-kwargs", "{\"min_lr_rate\": 0.1}", "--report-to",
                       "[\"none\", \"tensorboard\"]", "--resume-from-checkpoint", "true", NULL};
    CHECK(toy_config_parse(&cfg, OPTS, N_OPTS, b) == 0);
    CHECK(harness_config_min_lr_rate(&cfg, &mlr, &err) == 0 && mlr == 0.1); /* the kwargs win */
    CHECK(harness_config_report_tensorboard(&cfg) == 1);
    CHECK(harness_config_resume(&cfg, &res, &err) == 0 && res && !strcmp(res, "latest"));
    sr_config_free(&cfg);

    const char *c[] = {"--lr-scheduler-kwargs", "{\"num_cycles\": 2}", "--report-to", "none",
                       "--resume-from-checkpoint", "out/checkpoint-4", NULL};
    CHECK(toy_config_parse(&cfg, OPTS, N_OPTS, c) == 0);
    CHECKF(harness_config_min_lr_rate(&cfg, &mlr, &err) == -1 && strstr(err.msg, "'num_cycles' is not supported"),
           "%s", err.msg);
    CHECK(harness_config_report_tensorboard(&cfg) == 0);
    CHECK(harness_config_resume(&cfg, &res, &err) == 0 && res && !strcmp(res, "out/checkpoint-4"));
    sr_config_free(&cfg);

    const char *d[] = {"--lr-scheduler-kwargs", "[1]", "--resume-from-checkpoint", "3", "--report-to", "all", NULL};
    CHECK(toy_config_parse(&cfg, OPTS, N_OPTS, d) == 0);
    CHECKF(harness_config_min_lr_rate(&cfg, &mlr, &err) == -1 && strstr(err.msg, "must be an object"), "%s", err.msg);
    CHECK(harness_config_report_tensorboard(&cfg) == 1);
    CHECKF(harness_config_resume(&cfg, &res, &err) == -1 && strstr(err.msg, "resume_from_checkpoint"), "%s", err.msg);
    sr_config_free(&cfg);
}

static HarnessOptions base_options(const char *out) {
    HarnessOptions o = {.model_name_or_path = MODEL, .output_dir = out, .device = "cpu", .learning_rate = 1e-2,
                        .adam_beta1 = 0.9, .adam_beta2 = 0.999, .adam_epsilon = 1e-8, .max_grad_norm = 1.0,
                        .lr_scheduler_type = "constant", .logging_steps = 1, .save_steps = 1,
                        .per_device_train_batch_size = 1, .num_train_epochs = 1, .dataset_path = "toy"};
    return o;
}

static void touch(const char *dir, const char *name) {
    SrError err;
    char p[1200];
    CHECK(sr_mkdir_p(dir, &err) == 0);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    sr_test_write_file(p, "", 0);
}

static void test_pick_checkpoint(void) {
    SrComm comm;
    sr_comm_init_single(&comm);
    SrError err;
    const char *out = sr_test_tmpdir("harness_pick");
    HarnessOptions o = base_options(out);
    o.resume_from_checkpoint = "latest";
    TrainHarness h;
    harness_init(&h, &o, &comm, NULL);
    CHECK(harness_pick_checkpoint(&h, &err) == 0 && h.ckpt[0] == '\0'); /* none yet: a fresh run */
    char p[1200];
    snprintf(p, sizeof p, "%s/checkpoint-3", out);
    touch(p, "DONE");
    snprintf(p, sizeof p, "%s/checkpoint-12", out);
    touch(p, "DONE");
    snprintf(p, sizeof p, "%s/checkpoint-20", out); /* incomplete: never resumed from */
    touch(p, "config.json");
    CHECK(harness_pick_checkpoint(&h, &err) == 0 && strstr(h.ckpt, "/checkpoint-12") &&
          !strcmp(strstr(h.ckpt, "/checkpoint-12"), "/checkpoint-12"));
    harness_free(&h);
    o.resume_from_checkpoint = p;
    harness_init(&h, &o, &comm, NULL);
    CHECKF(harness_pick_checkpoint(&h, &err) == -1 && strstr(err.msg, "checkpoint-20: not a complete checkpoint"),
           "%s", err.msg);
    harness_free(&h);
    sr_comm_free(&comm);
}

static void test_load_and_fit(void) {
    SrComm comm;
    sr_comm_init_single(&comm);
    SrError err;
    HarnessOptions o = base_options(sr_test_tmpdir("harness_load"));
    TrainHarness h;
    harness_init(&h, &o, &comm, NULL);
    CHECKF(harness_load(&h, &err) == 0, "%s", err.msg);
    CHECK(h.open_id == TOY_OPEN && h.close_id == TOY_CLOSE && tokenizer_vocab_size(h.tok) == TOY_TOK_VOCAB);
    CHECK(harness_check_fit(&h, "max_length", 128, 128, &err) == 0);
    CHECKF(harness_check_fit(&h, "max_length", 512, 512, &err) == -1 && strstr(err.msg, "max_length 512") &&
               strstr(err.msg, "max_position_embeddings 256"), "%s", err.msg);
    /* 2^40 tokens of activations fit in no machine's memory */
    CHECKF(harness_check_fit(&h, "max_prompt_length", 128, 1LL << 40, &err) == -1 && strstr(err.msg, MODEL),
           "%s", err.msg);
    /* FLOPs: 6 per matmul weight and token, 12 per layer, head, head dim and attended key */
    Qwen2Config c;
    toy_config(&c);
    double C = 32, QD = 4 * 8, KVD = 2 * 8, I = 64;
    double per_tok = 6.0 * ((C * QD + 2 * C * KVD + QD * C + 3 * C * I) * 2 + C * c.vocab_size);
    double f = harness_train_flops(&h, 10, 55);
    CHECKF(fabs(f - (per_tok * 10 + 12.0 * 2 * 4 * 8 * 55)) < 1e-9 * f, "%.17g", f);
    CHECK(harness_mfu(&h, f, 0.5) == -1.0); /* no peak known on the CPU */
    harness_free(&h);

    o.peak_tflops = 2.0; /* given: 1e12 FLOPs in 0.25 s on a 2 TFLOP/s device is 2 x its peak */
    harness_init(&h, &o, &comm, NULL);
    CHECKF(harness_load(&h, &err) == 0, "%s", err.msg);
    CHECK(h.peak_flops == 2e12 && fabs(harness_mfu(&h, 1e12, 0.25) - 2.0) < 1e-12 && harness_mfu(&h, 1e12, 0) == -1.0);
    harness_free(&h);

    o.model_name_or_path = "/nonexistent/model";
    harness_init(&h, &o, &comm, NULL);
    CHECKF(harness_load(&h, &err) == -1 && strstr(err.msg, "/nonexistent/model"), "%s", err.msg);
    harness_free(&h);
    sr_comm_free(&comm);
}

static int count_lines(const char *path) {
    char *text = sr_test_read_file(path, NULL);
    if (!text) return -1;
    int n = 0;
    for (char *p = text; *p; p++) n += *p == '\n';
    free(text);
    return n;
}

static int count_prefixed(const char *dir, const char *prefix) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "ls %s 2>/dev/null | grep -c '^%s'", dir, prefix);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (f) {
        if (fscanf(f, "%d", &n) != 1) n = -1;
        pclose(f);
    }
    return n;
}

static cJSON *rec(int step, double loss) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "step", step);
    cJSON_AddNumberToObject(r, "loss", loss);
    return r;
}

static void test_metrics_writer(void) {
    SrComm comm;
    sr_comm_init_single(&comm);
    SrError err;
    const char *out = sr_test_tmpdir("harness_metrics");
    char path[1200], runs[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    snprintf(runs, sizeof runs, "%s/runs", out);
    HarnessOptions o = base_options(out);
    o.report_tensorboard = 1;
    TrainHarness h;
    harness_init(&h, &o, &comm, NULL);
    CHECKF(harness_open_outputs(&h, &err) == 0, "%s", err.msg);
    for (int s = 1; s <= 3; s++) {
        harness_record(&h, rec(s, 5.0 - s));
        harness_scalar(&h, "train/loss", s, 5.0 - s);
    }
    harness_scalar(&h, "train/loss", 4, NAN); /* skipped, not written as NaN */
    CHECK(count_lines(path) == 3 && cJSON_GetArraySize(h.log_history) == 3);
    CHECK(count_prefixed(runs, "events.out.tfevents") == 1);
    harness_free(&h);

    /* a resumed run: the history of its checkpoint (2 records) replaces the file, then appends */
    cJSON *hist = cJSON_CreateArray();
    cJSON_AddItemToArray(hist, rec(1, 4.0));
    cJSON_AddItemToArray(hist, rec(2, 3.0));
    o.report_tensorboard = 0;
    harness_init(&h, &o, &comm, NULL);
    CHECKF(harness_restore_history(&h, hist, &err) == 0, "%s", err.msg);
    CHECK(count_lines(path) == 2);
    CHECK(harness_open_outputs(&h, &err) == 0);
    harness_record(&h, rec(3, 2.5));
    CHECK(count_lines(path) == 3 && cJSON_GetArraySize(h.log_history) == 3);
    char *text = sr_test_read_file(path, NULL);
    CHECKF(text && strstr(text, "{\"step\":2,\"loss\":3}\n{\"step\":3,\"loss\":2.5}\n"), "%s", text ? text : "");
    free(text);
    CHECK(count_prefixed(runs, "events.out.tfevents") == 1); /* report_to none: no new event file */
    harness_free(&h);
    cJSON_Delete(hist);
    sr_comm_free(&comm);
}

static void test_trainer_state(void) {
    SrComm comm;
    sr_comm_init_single(&comm);
    SrError err;
    HarnessOptions o = base_options(sr_test_tmpdir("harness_state"));
    o.eval_steps = 5;
    cJSON *config = cJSON_CreateObject();
    cJSON_AddNumberToObject(config, "learning_rate", 0.01);
    TrainHarness h;
    harness_init(&h, &o, &comm, config);
    h.total_steps = 10;
    h.opt.step = 7;
    h.n_sequences = 50;
    h.global_micro_batch = 4;
    h.data_epoch = 1;
    h.data_cursor = 8;
    SrStepStats st = {.loss = 2.0, .n_tokens = 100};
    harness_step_done(&h, &st, 1000.0, 0.5);
    st.loss = 1.5;
    harness_step_done(&h, &st, 1000.0, 0.25);
    CHECK(h.win_steps == 2 && h.win_loss == 3.5 && h.win_tokens == 200 && h.win_time == 0.75);
    CHECK(h.tokens_seen == 200 && h.total_flos == 2000 && h.train_seconds == 0.75);
    harness_record(&h, rec(7, 1.5));
    CHECK(fabs(harness_epoch(&h) - 1.16) < 1e-15);

    cJSON *keys = cJSON_CreateObject();
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(keys, "rng"), "seed", 3);
    cJSON *s = harness_trainer_state(&h, 7, keys);
    char *text = cJSON_PrintUnformatted(s);
    CheckpointState cs;
    CHECKF(checkpoint_parse_state(text, strlen(text), "trainer_state.json", &cs, &err) == 0, "%s", err.msg);
    CHECK(cs.global_step == 7 && cs.world_size == 1 && cs.n_sequences == 50 && cs.global_micro_batch == 4);
    CHECK(cs.data_epoch == 1 && cs.data_cursor == 8 && cs.window_loss_sum == 3.5 && cs.window_steps == 2);
    CHECK(cs.tokens_seen == 200 && cs.total_flos == 2000 && cs.train_seconds == 0.75);
    CHECK(cJSON_GetArraySize(cs.log_history) == 1 && cJSON_Compare(cs.config, config, 1));
    checkpoint_state_free(&cs);
    /* the trainer's keys go inside "splitreason", after the data position */
    CHECKF(strstr(text, "\"cursor\":8},\"rng\":{\"seed\":3},\"log_window\""), "%s", text);
    CHECK(strstr(text, "\"max_steps\":10,") && strstr(text, "\"eval_steps\":5,") && strstr(text, "\"epoch\":1.16"));
    free(text);
    cJSON_Delete(s);

    harness_window_reset(&h);
    CHECK(h.win_steps == 0 && h.win_loss == 0 && h.win_tokens == 0 && h.win_time == 0 && h.tokens_seen == 200);
    CHECK(harness_agree(&h, 0, &err, "x") == 0 && harness_agree(&h, -1, &err, "x") == -1);

    /* a non-finite step */
    SrStepStats bad = {.loss = NAN, .grad_norm = 1.0};
    snprintf(bad.bad_grad, sizeof bad.bad_grad, "model.norm.weight");
    CHECK(harness_nonfinite(&h, 8, &bad, &err) == -1);
    CHECKF(strstr(err.msg, "step 8: the loss is nan (every parameter is finite; first non-finite gradient (from "
                           "the output back): model.norm.weight)") && strstr(err.msg, o.output_dir), "%s", err.msg);
    const cJSON *last = cJSON_GetArrayItem(h.log_history, cJSON_GetArraySize(h.log_history) - 1);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(last, "loss")) &&
          cJSON_GetObjectItemCaseSensitive(last, "step")->valuedouble == 8);
    harness_free(&h);
    cJSON_Delete(config);
    sr_comm_free(&comm);
}

typedef struct Seek {
    long long epoch, cursor;
    int calls;
} Seek;

static int seek_cb(void *ctx, long long epoch, long long cursor, SrError *err) {
    (void)err;
    Seek *s = ctx;
    s->epoch = epoch, s->cursor = cursor, s->calls++;
    return 0;
}

/* a harness on the toy model up to its optimizer; resume from ckpt when given */
static int start(TrainHarness *h, SrComm *comm, HarnessOptions *o, long long gmb, SrError *err) {
    harness_init(h, o, comm, NULL);
    h->total_steps = 4;
    h->n_sequences = 16;
    h->global_micro_batch = gmb;
    return harness_pick_checkpoint(h, err) || harness_load(h, err) || harness_setup_optim(h, err) ? -1 : 0;
}

static void test_save_resume(void) {
    SrComm comm;
    sr_comm_init_single(&comm);
    SrError err;
    const char *out = sr_test_tmpdir("harness_resume");
    HarnessOptions o = base_options(out);
    TrainHarness a;
    CHECKF(start(&a, &comm, &o, 2, &err) == 0, "%s", err.msg);
    CHECK(harness_open_outputs(&a, &err) == 0);
    /* one optimizer step on 24 toy tokens */
    enum { N = 24 };
    int32_t ids[N], pos[N], tgt[N];
    for (int i = 0; i < N; i++) ids[i] = (i * 7) % TOY_ALPHABET, pos[i] = i;
    for (int i = 0; i < N; i++) tgt[i] = i + 1 < N ? ids[i + 1] : -1;
    SrMicroBatch mb = {ids, pos, tgt, NULL, N};
    SrStepStats st;
    CHECKF(sr_train_step(&a.opt, &a.sched, &mb, 1, &st, &err) == 0 && !st.nonfinite, "%s", err.msg);
    harness_step_done(&a, &st, harness_train_flops(&a, st.n_tokens, N * (N + 1) / 2.0), 0.1);
    a.data_epoch = 0;
    a.data_cursor = 2;
    harness_record(&a, rec(1, st.loss));
    cJSON *keys = cJSON_CreateObject();
    cJSON_AddStringToObject(cJSON_AddObjectToObject(keys, "rng"), "state", "00ff");
    CHECKF(harness_save(&a, 1, keys, &err) == 0, "%s", err.msg);
    harness_record(&a, rec(2, 0.0)); /* logged after the checkpoint: dropped by the resume */

    o.resume_from_checkpoint = "latest";
    TrainHarness b;
    Seek sk = {0};
    CHECKF(start(&b, &comm, &o, 2, &err) == 0, "%s", err.msg);
    CHECKF(harness_resume(&b, seek_cb, &sk, &err) == 0, "%s", err.msg);
    CHECK(strstr(b.ckpt, "checkpoint-1") && b.opt.step == 1);
    CHECK(sk.calls == 1 && sk.epoch == 0 && sk.cursor == 2 && b.data_cursor == 2);
    CHECK(b.tokens_seen == a.tokens_seen && b.total_flos == a.total_flos && b.win_steps == 1 &&
          b.win_loss == st.loss);
    CHECK(cJSON_GetArraySize(b.log_history) == 1);
    /* the trainer's own keys come back with the checkpoint */
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(b.resumed_state, "splitreason");
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(x, "rng");
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(rng, "state")) &&
          !strcmp(cJSON_GetObjectItemCaseSensitive(rng, "state")->valuestring, "00ff"));
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    CHECK(count_lines(path) == 1);
    CHECK(b.m.total_numel == a.m.total_numel &&
          memcmp(b.m.params, a.m.params, a.m.total_numel * sizeof(float)) == 0);
    harness_free(&b);

    /* another global micro-batch: the data position would not be a batch boundary */
    CHECKF(start(&b, &comm, &o, 4, &err) == 0, "%s", err.msg);
    CHECKF(harness_resume(&b, seek_cb, &sk, &err) == -1 && strstr(err.msg, "per_device_train_batch_size differs"),
           "%s", err.msg);
    CHECK(sk.calls == 1 && b.resumed_state == NULL);
    harness_free(&b);
    harness_free(&a);
    sr_comm_free(&comm);
}

int main(void) {
    setenv("OMP_NUM_THREADS", "1", 0);
    omp_set_num_threads(1);
    snprintf(MODEL, sizeof MODEL, "%s", sr_test_tmpdir("harness_model"));
    if (toy_model_dir(MODEL, 1)) {
        fprintf(stderr, "cannot make the toy model\n");
        return 1;
    }
    test_config_rules();
    test_pick_checkpoint();
    test_load_and_fit();
    test_metrics_writer();
    test_trainer_state();
    test_save_resume();
    return sr_test_done();
}
