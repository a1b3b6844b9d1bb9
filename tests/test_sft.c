/*
 * The SFT trainer (train/sft.h, train/checkpoint.h) on the toy world of sft_fixture.h:
 *   - options: TRL names parsed, bad settings refused with a message;
 *   - learning: the loss falls and the model learns to place both tags (held-out precision and
 *     recall near 1 after, near 0 before); metrics.jsonl, TensorBoard events, checkpoint
 *     layout (an HF model directory + optimizer + trainer_state.json + DONE), pruning to
 *     save_total_limit;
 *   - gradient accumulation: 4 sequences as 1 x 4, 2 x 2 and 4 x 1 micro-batches give the same
 *     loss, gradient norm and weights (the loss is normalised by the global target count);
 *   - exact resume: stopped at step 6 (stop_after_steps) and resumed to 12 == straight 12
 *     steps, bit for bit (every logged loss, the final weights and optimizer state), across an
 *     epoch boundary, with a window of logging_steps 4 spanning the interruption;
 *   - SIGKILL in the middle of writing a checkpoint (the binary, SR_TEST_KILL_IN_CHECKPOINT):
 *     the previous checkpoint stays loadable, the half-written one is ignored, and resuming
 *     from it ends bit-identical to the uninterrupted run;
 *   - a NaN/Inf run stops naming the step and the tensor, keeping the last good checkpoint;
 *   - shards that do not fit the tokenizer (vocabulary) or max_length are refused at start.
 */
#define _GNU_SOURCE /* memmem in proc_util.h */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "proc_util.h"
#include "shard_craft.h"
#include "sft_fixture.h"
#include "trainer_fixture.h"
#include "train/checkpoint.h"
#include "train/sft.h"

static char MODEL[512], TRAIN[512], EVAL[512];

/* runs sft in-process with the base settings + the given overrides */
static int run_sft(const char *out, const char *const *extra, SftResult *res, SrError *err) {
    const char *kv[64];
    const char *base[] = {"--model-name-or-path", MODEL, "--dataset-path", TRAIN, "--output-dir", out,
                          "--per-device-train-batch-size", "4", "--max-length", "128", "--learning-rate", "3e-3",
                          "--lr-scheduler-type", "cosine_with_min_lr", "--min-lr-rate", "0.1",
                          "--warmup-ratio", "0.1", "--weight-decay", "0.01", "--logging-steps", "1",
                          "--seed", "7", "--report-to", "none", NULL};
    SrConfig cfg;
    if (trainer_args(kv, 64, base, extra) < 0 || toy_config_parse(&cfg, SFT_OPTIONS, SFT_N_OPTIONS, kv))
        return sr_fail(err, "bad test config");
    SftOptions o;
    int rc = sft_options_from_config(&o, &cfg, err);
    if (!rc) {
        SrComm comm;
        sr_comm_init_single(&comm);
        rc = sft_run(&o, cfg.root, &comm, res, err);
        sr_comm_free(&comm);
    }
    sr_config_free(&cfg);
    return rc;
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = sr_test_read_file(a, &na), *y = sr_test_read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static int exists(const char *dir, const char *name) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

/* the path of an entry of dir whose name starts with prefix (e.g. the temp directory
 * "checkpoint-8.tmp-<pid>" of a killed run), in buf; 0 if there is none */
static int find_prefixed(const char *dir, const char *prefix, char *buf, size_t n) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && !found && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            snprintf(buf, n, "%s/%s", dir, e->d_name);
            found = 1;
        }
    if (d) closedir(d);
    return found;
}

static void test_options(void) {
    SrError err;
    SftResult res;
    const char *bad1[] = {"--lr-scheduler-type", "cosine_with_min_lr", "--min-lr-rate", "null", NULL};
    SrConfig cfg;
    const char *kv[] = {"--model-name-or-path", "m", "--dataset-path", "d", "--output-dir", "o",
                        "--lr-scheduler-type", "cosine_with_min_lr", NULL};
    CHECK(toy_config_parse(&cfg, SFT_OPTIONS, SFT_N_OPTIONS, kv) == 0);
    SftOptions o;
    CHECK(sft_options_from_config(&o, &cfg, &err) == -1 && strstr(err.msg, "min_lr_rate"));
    sr_config_free(&cfg);
    /* TRL's lr_scheduler_kwargs form, resume true */
    const char *kv2[] = {"--model-name-or-path", "m", "--dataset-path", "d", "--output-dir", "o",
                         "--lr-scheduler-type", "cosine_with_min_lr", "--lr-scheduler-kwargs", "{\"min_lr_rate\": 0.1}",
                         "--resume-from-checkpoint", "true", NULL};
    CHECK(toy_config_parse(&cfg, SFT_OPTIONS, SFT_N_OPTIONS, kv2) == 0);
    CHECK(sft_options_from_config(&o, &cfg, &err) == 0 && o.harness.min_lr_rate == 0.1 &&
          o.harness.resume_from_checkpoint && !strcmp(o.harness.resume_from_checkpoint, "latest") &&
          o.harness.report_tensorboard);
    sr_config_free(&cfg);
    const char *kv3[] = {"--model-name-or-path", "m", "--dataset-path", "d", "--output-dir", "o", "--eval-steps", "5", NULL};
    CHECK(toy_config_parse(&cfg, SFT_OPTIONS, SFT_N_OPTIONS, kv3) == 0);
    CHECK(sft_options_from_config(&o, &cfg, &err) == -1 && strstr(err.msg, "eval_dataset_path"));
    sr_config_free(&cfg);
    (void)bad1;
    (void)res;
}

static void test_learns(void) {
    const char *out = sr_test_tmpdir("sft_learn");
    SrError err;
    SftResult res;
    const char *extra[] = {"--eval-dataset-path", EVAL, "--eval-on-start", "--eval-steps", "100", "--max-steps", "200",
                           "--save-steps", "50", "--save-total-limit", "2", "--report-to", "tensorboard",
                           "--logging-steps", "10", "--learning-rate", "1e-2", NULL};
    int rc = run_sft(out, extra, &res, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(res.start_step == 0 && res.end_step == 200 && res.total_steps == 200);
    CHECKF(res.first_loss > 4.5 && res.last_loss < res.first_loss - 1.0, "loss %.3f -> %.3f", res.first_loss,
           res.last_loss);
    /* the content tokens are uniform over 19 (ln 19 = 2.94); the tags and EOS are certain */
    CHECKF(res.eval_last.loss < 3.2, "held-out loss %.3f", res.eval_last.loss);
    CHECK(res.has_eval_first && res.has_eval_last);
    CHECKF(res.eval_first.open_precision < 0.2 && res.eval_first.open_recall < 0.2, "before: P %.3f R %.3f",
           res.eval_first.open_precision, res.eval_first.open_recall);
    CHECKF(res.eval_last.open_precision > 0.9 && res.eval_last.open_recall > 0.9 &&
               res.eval_last.close_precision > 0.9 && res.eval_last.close_recall > 0.9,
           "after: open P %.3f R %.3f, close P %.3f R %.3f", res.eval_last.open_precision,
           res.eval_last.open_recall, res.eval_last.close_precision, res.eval_last.close_recall);
    CHECKF(res.eval_last.ref_open > 50, "%lld reference tags", res.eval_last.ref_open);
    CHECKF(fabs(res.eval_last.offload_share - res.eval_last.offload_share_ref) < 0.05 &&
               res.eval_last.offload_share_ref > 0.2 && res.eval_last.offload_share_ref < 0.8,
           "offload %.3f vs reference %.3f", res.eval_last.offload_share, res.eval_last.offload_share_ref);

    /* metrics.jsonl: one record per logged step with step and loss; evals at 0, 100, 200 */
    double steps[64], loss[64], ev[16];
    int n = trainer_read_metric(out, "loss", loss, 64);
    CHECKF(n == 20, "%d loss records", n);
    CHECK(trainer_read_metric(out, "step", steps, 64) == 23);
    CHECKF(trainer_read_metric(out, "eval_loss", ev, 16) == 3, "eval records");
    CHECK(n == 20 && loss[19] < loss[0] - 1.0);
    /* TensorBoard: an event file in output_dir/runs */
    char runs[1024];
    snprintf(runs, sizeof runs, "%s/runs", out);
    DIR *d = opendir(runs);
    int events = 0;
    for (struct dirent *e; d && (e = readdir(d));) events += strncmp(e->d_name, "events.out.tfevents.", 20) == 0;
    if (d) closedir(d);
    CHECK(events == 1);
    /* checkpoints: 150 and 200 kept (limit 2), 50 and 100 pruned; the layout */
    char ck[1024];
    snprintf(ck, sizeof ck, "%s/checkpoint-200", out);
    CHECK(!exists(out, "checkpoint-50") && !exists(out, "checkpoint-100") && exists(out, "checkpoint-150") &&
          exists(out, "checkpoint-200"));
    static const char *files[] = {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                                  "vocab.json", "merges.txt", "tokenizer_config.json",
                                  "optimizer-rank00000-of-00001.safetensors", "trainer_state.json", "DONE"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) CHECKF(exists(ck, files[i]), "%s", files[i]);
    CheckpointState st;
    CHECKF(checkpoint_read_state(ck, &st, &err) == 0, "%s", err.msg);
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(st.json, "global_step");
    CHECK(cJSON_IsNumber(gs) && gs->valueint == 200 && st.global_step == 200 && cJSON_GetArraySize(st.log_history) == 23);
    CHECK(cJSON_GetObjectItemCaseSensitive(st.config, "learning_rate") != NULL);
    CHECK(st.world_size == 1 && st.global_micro_batch == 4 && st.n_sequences == 64 && st.data_cursor % 4 == 0);
    checkpoint_state_free(&st);
    /* the checkpoint is an HF model directory the model loader reads */
    SrBackend be;
    Qwen2Model m;
    CHECK(sr_backend_init(&be, "cpu", 0, &err) == 0);
    CHECKF(qwen2_load(&m, ck, &be, &err) == 0, "%s", err.msg);
    qwen2_free(&m);
    sr_backend_free(&be);
    /* latest: 200 */
    char path[1024];
    int step = -1;
    CHECK(checkpoint_find_latest(out, path, sizeof path, &step, &err) == 1 && step == 200);
}

static void test_grad_accumulation(void) {
    SrError err;
    SftResult res;
    const char *bs[3] = {"4", "2", "1"}, *ga[3] = {"1", "2", "4"};
    double loss[3][4], gn[3][4];
    char out[3][1024];
    for (int k = 0; k < 3; k++) {
        snprintf(out[k], sizeof out[k], "%s", sr_test_tmpdir(k == 0 ? "sft_ga1" : k == 1 ? "sft_ga2" : "sft_ga4"));
        const char *extra[] = {"--per-device-train-batch-size", bs[k], "--gradient-accumulation-steps", ga[k],
                               "--max-steps", "3", "--save-steps", "3", NULL};
        int rc = run_sft(out[k], extra, &res, &err);
        CHECKF(rc == 0, "%s", err.msg);
        CHECK(trainer_read_metric(out[k], "loss", loss[k], 4) == 3 && trainer_read_metric(out[k], "grad_norm", gn[k], 4) == 3);
    }
    SrBackend be;
    sr_backend_init(&be, "cpu", 0, &err);
    Qwen2Model m[3];
    for (int k = 0; k < 3; k++) {
        char ck[1100];
        snprintf(ck, sizeof ck, "%s/checkpoint-3", out[k]);
        CHECKF(qwen2_load(&m[k], ck, &be, &err) == 0, "%s", err.msg);
    }
    for (int k = 1; k < 3; k++) {
        for (int s = 0; s < 3; s++) {
            CHECKF(fabs(loss[k][s] - loss[0][s]) < 1e-5 * loss[0][s], "step %d loss %.9g vs %.9g (x%s)", s + 1,
                   loss[k][s], loss[0][s], ga[k]);
            CHECKF(fabs(gn[k][s] - gn[0][s]) < 1e-4 * gn[0][s], "step %d grad norm %.9g vs %.9g (x%s)", s + 1,
                   gn[k][s], gn[0][s], ga[k]);
        }
        double e = sr_rel_err((const float *)m[k].params, (const float *)m[0].params, m[0].total_numel);
        CHECKF(e < 1e-5, "weights after 3 steps, %s micro-batches: rel err %.3g", ga[k], e);
    }
    /* and the steps did move the weights (the comparison is not vacuous) */
    Qwen2Model m0;
    CHECK(qwen2_load(&m0, MODEL, &be, &err) == 0);
    CHECK(sr_rel_err((const float *)m0.params, (const float *)m[0].params, m0.total_numel) > 1e-3);
    qwen2_free(&m0);
    for (int k = 0; k < 3; k++) qwen2_free(&m[k]);
    sr_backend_free(&be);
}

/* straight 12 steps vs stop at 6 + resume; the losses and final files must be identical */
static const char *RESUME_EXTRA[] = {"--max-steps", "12", "--save-steps", "4", "--gradient-accumulation-steps", "2",
                                     "--save-total-limit", "3", NULL};
static char STRAIGHT[1024];

static void test_exact_resume(void) {
    SrError err;
    SftResult res;
    snprintf(STRAIGHT, sizeof STRAIGHT, "%s", sr_test_tmpdir("sft_straight"));
    int rc = run_sft(STRAIGHT, RESUME_EXTRA, &res, &err);
    CHECKF(rc == 0, "%s", err.msg);
    const char *out = sr_test_tmpdir("sft_resume");
    const char *stop[] = {"--max-steps", "12", "--save-steps", "4", "--gradient-accumulation-steps", "2",
                          "--save-total-limit", "3", "--stop-after-steps", "6", NULL};
    rc = run_sft(out, stop, &res, &err);
    CHECKF(rc == 0 && res.end_step == 6 && exists(out, "checkpoint-6") && exists(out, "checkpoint-4"), "%s", err.msg);
    const char *again[] = {"--max-steps", "12", "--save-steps", "4", "--gradient-accumulation-steps", "2",
                           "--save-total-limit", "3", "--resume-from-checkpoint", "true", NULL};
    rc = run_sft(out, again, &res, &err);
    CHECKF(rc == 0 && res.start_step == 6 && res.end_step == 12, "%s", err.msg);
    double a[16], b[16];
    int na = trainer_read_metric(STRAIGHT, "loss", a, 16), nb = trainer_read_metric(out, "loss", b, 16);
    CHECKF(na == 12 && nb == 12, "%d and %d loss records", na, nb);
    int same = na == nb;
    for (int i = 0; i < na && i < nb; i++) same &= a[i] == b[i];
    CHECK(same);
    char x[1100], y[1100];
    snprintf(x, sizeof x, "%s/checkpoint-12/model.safetensors", STRAIGHT);
    snprintf(y, sizeof y, "%s/checkpoint-12/model.safetensors", out);
    CHECK(same_file(x, y));
    snprintf(x, sizeof x, "%s/checkpoint-12/optimizer-rank00000-of-00001.safetensors", STRAIGHT);
    snprintf(y, sizeof y, "%s/checkpoint-12/optimizer-rank00000-of-00001.safetensors", out);
    CHECK(same_file(x, y));
    /* the epoch boundary was crossed (64 sequences, 8 per step: epoch 1 starts at step 9) */
    CheckpointState st;
    snprintf(x, sizeof x, "%s/checkpoint-12", out);
    CHECK(checkpoint_read_state(x, &st, &err) == 0 && st.data_epoch == 1);
    checkpoint_state_free(&st);

    /* logging window: logging_steps 4 with the stop at 6 inside a window */
    const char *out2 = sr_test_tmpdir("sft_resume_window");
    const char *w1[] = {"--max-steps", "12", "--save-steps", "3", "--logging-steps", "4", "--stop-after-steps", "6", NULL};
    const char *w2[] = {"--max-steps", "12", "--save-steps", "3", "--logging-steps", "4", "--resume-from-checkpoint", "true", NULL};
    const char *w0[] = {"--max-steps", "12", "--save-steps", "3", "--logging-steps", "4", NULL};
    const char *out3 = sr_test_tmpdir("sft_straight_window");
    CHECK(run_sft(out2, w1, &res, &err) == 0 && run_sft(out2, w2, &res, &err) == 0 && run_sft(out3, w0, &res, &err) == 0);
    na = trainer_read_metric(out3, "loss", a, 16);
    nb = trainer_read_metric(out2, "loss", b, 16);
    CHECKF(na == 3 && nb == 3 && a[0] == b[0] && a[1] == b[1] && a[2] == b[2], "window losses (%d, %d)", na, nb);

    /* an incomplete checkpoint named explicitly is refused */
    char bad[1100];
    snprintf(bad, sizeof bad, "%s/checkpoint-77", out);
    mkdir(bad, 0755);
    const char *r3[] = {"--max-steps", "12", "--resume-from-checkpoint", bad, NULL};
    CHECK(run_sft(out, r3, &res, &err) == -1 && strstr(err.msg, "DONE"));
}

/* the binary, killed while writing checkpoint 8; then resumed */
static void test_kill_in_checkpoint(void) {
    const char *out = sr_test_tmpdir("sft_kill");
    char errf[4200];
    snprintf(errf, sizeof errf, "%s.stderr", out);
    const char *argv0[] = {sr_test_bin(), "sft", "--model-name-or-path", MODEL, "--dataset-path", TRAIN,
                           "--output-dir", out, "--per-device-train-batch-size", "4", "--max-length", "128",
                           "--learning-rate", "3e-3", "--lr-scheduler-type", "cosine_with_min_lr",
                           "--min-lr-rate", "0.1", "--warmup-ratio", "0.1", "--weight-decay", "0.01",
                           "--logging-steps", "1", "--seed", "7", "--report-to", "none",
                           "--max-steps", "12", "--save-steps", "4", "--gradient-accumulation-steps", "2",
                           "--save-total-limit", "3", NULL, NULL, NULL};
    setenv("SR_TEST_KILL_IN_CHECKPOINT", "8", 1);
    int rc = proc_run((char *const *)argv0, NULL, errf, 300);
    unsetenv("SR_TEST_KILL_IN_CHECKPOINT");
    CHECKF(rc == 128 + SIGKILL, "killed run: status %d", rc);
    char ck4[1100], ck8[1100];
    snprintf(ck4, sizeof ck4, "%s/checkpoint-4", out);
    /* the half-written checkpoint-8.tmp-<pid>/ of the killed process (the next run sweeps it) */
    int half = find_prefixed(out, "checkpoint-8.tmp", ck8, sizeof ck8);
    CHECK(checkpoint_is_complete(ck4) && half && !checkpoint_is_complete(ck8) && !exists(out, "checkpoint-8"));
    char path[1024];
    int step = -1;
    SrError err;
    CHECK(checkpoint_find_latest(out, path, sizeof path, &step, &err) == 1 && step == 4);
    /* the previous checkpoint still loads */
    SrBackend be;
    Qwen2Model m;
    sr_backend_init(&be, "cpu", 0, &err);
    CHECKF(qwen2_load(&m, ck4, &be, &err) == 0, "%s", err.msg);
    qwen2_free(&m);
    sr_backend_free(&be);
    /* resume: from checkpoint-4, to the same end as the uninterrupted run */
    int n = 0;
    while (argv0[n]) n++;
    argv0[n] = "--resume-from-checkpoint";
    argv0[n + 1] = "true";
    rc = proc_run((char *const *)argv0, NULL, errf, 300);
    CHECKF(rc == 0, "resumed run: status %d (see %s)", rc, errf);
    char *log = sr_test_read_file(errf, NULL);
    CHECKF(log && strstr(log, "resumed from") && strstr(log, "checkpoint-4"), "resume log");
    free(log);
    /* the stale .tmp is gone; 4, 8 and 12 are the last three */
    char leftover[1100];
    CHECK(!find_prefixed(out, "checkpoint-8.tmp", leftover, sizeof leftover) && exists(out, "checkpoint-8") &&
          exists(out, "checkpoint-12") &&
          checkpoint_is_complete(ck4));
    char x[1100], y[1100];
    snprintf(x, sizeof x, "%s/checkpoint-12/model.safetensors", STRAIGHT);
    snprintf(y, sizeof y, "%s/checkpoint-12/model.safetensors", out);
    CHECKF(same_file(x, y), "kill + resume vs the straight run: model.safetensors differ");
    double a[16], b[16];
    int na = trainer_read_metric(STRAIGHT, "loss", a, 16), nb = trainer_read_metric(out, "loss", b, 16);
    int same = na == 12 && nb == 12;
    for (int i = 0; same && i < 12; i++) same &= a[i] == b[i];
    CHECKF(same, "losses of kill + resume vs straight (%d, %d records)", na, nb);
}

static void test_nonfinite(void) {
    const char *out = sr_test_tmpdir("sft_nan");
    SrError err;
    SftResult res;
    const char *extra[] = {"--learning-rate", "1e30", "--lr-scheduler-type", "constant", "--max-steps", "5",
                           "--save-steps", "1", "--max-grad-norm", "0", NULL};
    int rc = run_sft(out, extra, &res, &err);
    CHECK(rc == -1);
    CHECKF(strstr(err.msg, "step 2") && (strstr(err.msg, "model.") || strstr(err.msg, "lm_head")) &&
               strstr(err.msg, "checkpoint"),
           "message: %s", err.msg);
    fprintf(stderr, "  non-finite stop: %s\n", err.msg);
    char ck[1100];
    snprintf(ck, sizeof ck, "%s/checkpoint-1", out);
    char tmp2[1100];
    CHECK(checkpoint_is_complete(ck) && !exists(out, "checkpoint-2") &&
          !find_prefixed(out, "checkpoint-2.tmp", tmp2, sizeof tmp2));
    double steps[8];
    CHECK(trainer_read_metric(out, "step", steps, 8) == 2 && steps[1] == 2); /* the bad step is recorded */
}

static void test_refused(void) {
    SrError err;
    SftResult res;
    const char *bad_vocab = sr_test_tmpdir("sft_bad_vocab");
    CHECK(toy_shards(bad_vocab, 8, 128, 300, 5) == 0);
    const char *out = sr_test_tmpdir("sft_refused");
    const char *e1[] = {"--dataset-path", bad_vocab, "--max-steps", "1", NULL};
    CHECK(run_sft(out, e1, &res, &err) == -1);
    CHECKF(strstr(err.msg, "300") && strstr(err.msg, "260") && strstr(err.msg, "prepare"), "%s", err.msg);
    const char *e2[] = {"--max-length", "64", "--max-steps", "1", NULL};
    CHECK(run_sft(out, e2, &res, &err) == -1);
    CHECKF(strstr(err.msg, "max_length 64") && strstr(err.msg, "128"), "%s", err.msg);
    const char *e3[] = {"--max-length", "512", "--max-steps", "1", NULL};
    CHECK(run_sft(out, e3, &res, &err) == -1);
    CHECKF(strstr(err.msg, "max_position_embeddings"), "%s", err.msg);
    const char *e4[] = {"--eval-dataset-path", EVAL, "--per-device-eval-batch-size", "20000000", "--max-steps", "1", NULL};
    CHECK(run_sft(out, e4, &res, &err) == -1);
    /* the option's range ([1, 65536]) refuses it on the command line, before the run's own
     * 2^31-token bound on an eval batch (a second line of defence) is reached */
    CHECKF(strstr(err.msg, "bad test config"), "%s", err.msg);
    CHECK(!exists(out, "checkpoint-1"));
}

/* the last token of the last sequence of the chunk = 4294967295 */
static void bad_last_id(uint8_t *raw, size_t *len, size_t cap, void *ctx) {
    int last = 0;
    while (craft_record(raw, *len, last + 1)) last++;
    uint8_t *r = craft_record(raw, *len, last);
    uint32_t n = craft_u32(r), nd = craft_u32(r + 4);
    craft_put_u32(r + 8 + 4 * (size_t)nd + 4 * (size_t)(n - 1), 0xffffffffu);
}

/* issue 9, item 11: an id past the vocabulary deep inside the last chunk (index and header
 * still agree with the file) is refused at start, naming the shard; nothing is trained */
static void test_bad_id_refused_at_start(void) {
    const char *data = sr_test_tmpdir("sft_bad_id_data");
    CHECK(toy_shards(data, 64, 128, TOY_TOK_VOCAB, 11) == 0);
    CHECK(craft_edit_chunk(data, "shard_00000.bin", -1, bad_last_id, NULL) == 0);
    const char *out = sr_test_tmpdir("sft_bad_id");
    SrError err;
    SftResult res;
    const char *e1[] = {"--dataset-path", data, "--max-steps", "50", NULL};
    CHECK(run_sft(out, e1, &res, &err) == -1);
    CHECKF(strstr(err.msg, "shard_00000.bin") && strstr(err.msg, "id 4294967295") && strstr(err.msg, "vocab_size 260"),
           "%s", err.msg);
    fprintf(stderr, "  bad id: %s\n", err.msg);
    CHECK(res.end_step == 0 && !exists(out, "checkpoint-1") && !exists(out, "metrics.jsonl"));
    /* the same as held-out data */
    const char *e2[] = {"--eval-dataset-path", data, "--eval-on-start", "--max-steps", "50", NULL};
    CHECK(run_sft(out, e2, &res, &err) == -1 && strstr(err.msg, "shard_00000.bin") && res.end_step == 0);
}

/* issue 9, item 12: every field of trainer_state.json a resume reads is range-checked, the
 * message naming the file and the field; an sft resume from such a checkpoint stops there */
static void test_trainer_state_fields(void) {
    char ck[1100], path[1200];
    snprintf(ck, sizeof ck, "%s/checkpoint-12", STRAIGHT);
    snprintf(path, sizeof path, "%s/trainer_state.json", ck);
    char *orig = sr_test_read_file(path, NULL);
    CHECK(orig != NULL);
    if (!orig) return;
    static const char *fields[][2] = {
        {"global_step", "global_step"}, {"splitreason.world_size", "splitreason.world_size"},
        {"splitreason.format_version", "splitreason.format_version"},
        {"splitreason.data.n_sequences", "splitreason.data.n_sequences"},
        {"splitreason.data.global_micro_batch", "splitreason.data.global_micro_batch"},
        {"splitreason.data.epoch", "splitreason.data.epoch"}, {"splitreason.data.cursor", "splitreason.data.cursor"},
        {"splitreason.log_window.loss_sum", "splitreason.log_window.loss_sum"},
        {"splitreason.log_window.steps", "splitreason.log_window.steps"},
        {"num_input_tokens_seen", "num_input_tokens_seen"}, {"total_flos", "total_flos"},
        {"splitreason.train_seconds", "splitreason.train_seconds"}};
    static const char *vals[] = {"1e12", "-1", "2.5", "1e400", "\"7\"", "null", "[]", "-1e400"};
    int all = 1, tried = 0;
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
        for (size_t v = 0; v < sizeof vals / sizeof vals[0]; v++) {
            cJSON *st = cJSON_Parse(orig), *obj = st;
            char key[128];
            snprintf(key, sizeof key, "%s", fields[f][0]);
            char *last = key, *dot;
            while ((dot = strchr(last, '.'))) {
                *dot = '\0';
                obj = cJSON_GetObjectItem(obj, last);
                last = dot + 1;
            }
            /* 1e400 cannot be printed by cJSON: put the text in by hand */
            cJSON_ReplaceItemInObject(obj, last, cJSON_CreateRaw(vals[v]));
            char *text = cJSON_PrintUnformatted(st);
            cJSON_Delete(st);
            CheckpointState cs;
            SrError err;
            int rc = checkpoint_parse_state(text, strlen(text), path, &cs, &err);
            /* some values are in range for some fields (a loss sum of -1 or 2.5, ...) */
            int ok_value = rc == 0;
            if (!ok_value) {
                tried++;
                if (strncmp(err.msg, path, strlen(path)) != 0 || !strstr(err.msg, fields[f][1])) {
                    all = 0;
                    fprintf(stderr, "  %s = %s: %s\n", fields[f][0], vals[v], err.msg);
                }
            } else {
                checkpoint_state_free(&cs);
            }
            free(text);
        }
    CHECKF(all && tried >= 80, "%d refused", tried);
    /* missing objects, wrong types, the cursor past the data, log_history entries */
    static const char *whole[][2] = {
        {"{}", "global_step is missing"},
        {"[]", "JSON object"},
        {"{\"global_step\": 3}", "splitreason is missing"},
        {"{\"global_step\": 3, \"splitreason\": 1}", "splitreason must be an object"},
        {"{\"global_step\": 3, \"splitreason\": {\"world_size\": 1}}", "splitreason.data is missing"},
        {"{\"global_step\": 3, \"splitreason\": {\"world_size\": 1, \"data\": {\"n_sequences\": 8, "
         "\"global_micro_batch\": 4, \"epoch\": 0, \"cursor\": 12}}}", "splitreason.data.cursor"},
        {"{\"global_step\": 3, \"log_history\": [1], \"splitreason\": {\"world_size\": 1, \"data\": "
         "{\"n_sequences\": 8, \"global_micro_batch\": 4, \"epoch\": 0, \"cursor\": 4}}}", "log_history[0]"},
        {"{\"global_step\": 3, \"splitreason\": {\"world_size\": 1, \"log_window\": {\"steps\": 4}, \"data\": "
         "{\"n_sequences\": 8, \"global_micro_batch\": 4, \"epoch\": 0, \"cursor\": 4}}}", "log_window.steps"},
        {"{\"global_step\": 3}{\"global_step\": 4}", "trailing data"},
        {"{\"global_step\": 3", "ends"},
    };
    for (size_t k = 0; k < sizeof whole / sizeof whole[0]; k++) {
        CheckpointState cs;
        SrError err;
        int rc = checkpoint_parse_state(whole[k][0], strlen(whole[k][0]), path, &cs, &err);
        CHECKF(rc == -1 && !strncmp(err.msg, path, strlen(path)) && strstr(err.msg, whole[k][1]), "%zu: %s", k,
               rc ? err.msg : "(accepted)");
    }
    /* the reproducer, end to end: a resume from a checkpoint with global_step 1e12 */
    const char *out = sr_test_tmpdir("sft_bad_state");
    char copy[1200];
    snprintf(copy, sizeof copy, "cp -r '%s' '%s/'", ck, out);
    CHECK(system(copy) == 0);
    snprintf(path, sizeof path, "%s/checkpoint-12/trainer_state.json", out);
    cJSON *st = cJSON_Parse(orig);
    cJSON_ReplaceItemInObject(st, "global_step", cJSON_CreateRaw("1e12"));
    char *text = cJSON_Print(st);
    sr_test_write_file(path, text, strlen(text));
    free(text);
    cJSON_Delete(st);
    SrError err;
    SftResult res;
    const char *r[] = {"--max-steps", "12", "--save-steps", "4", "--gradient-accumulation-steps", "2",
                       "--resume-from-checkpoint", "true", NULL};
    CHECK(run_sft(out, r, &res, &err) == -1);
    CHECKF(strstr(err.msg, "checkpoint-12/trainer_state.json: global_step must be an integer in [0, 1000000000] "
                           "(got 1000000000000)"), "%s", err.msg);
    fprintf(stderr, "  global_step 1e12: %s\n", err.msg);
    free(orig);
}

int main(void) {
    /* the toy model is far too small for threads to help; with other jobs on the machine,
     * OpenMP threads waiting on each other only slow it down (the spawned binary inherits
     * the variable; this process has read it already, hence omp_set_num_threads) */
    setenv("OMP_NUM_THREADS", "1", 0);
    omp_set_num_threads(1);
    snprintf(MODEL, sizeof MODEL, "%s", sr_test_tmpdir("sft_model"));
    snprintf(TRAIN, sizeof TRAIN, "%s", sr_test_tmpdir("sft_train"));
    snprintf(EVAL, sizeof EVAL, "%s", sr_test_tmpdir("sft_eval"));
    if (toy_model_dir(MODEL, 1) || toy_shards(TRAIN, 64, 128, TOY_TOK_VOCAB, 11) ||
        toy_shards(EVAL, 24, 128, TOY_TOK_VOCAB, 12)) {
        fprintf(stderr, "cannot make the toy world\n");
        return 1;
    }
    test_options();
    test_learns();
    test_grad_accumulation();
    test_exact_resume();
    test_kill_in_checkpoint();
    test_nonfinite();
    test_refused();
    test_bad_id_refused_at_start();
    test_trainer_state_fields();
    return sr_test_done();
}
