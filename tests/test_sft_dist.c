/*
 * SFT with data parallelism: two ranks give the update of one process on the same global batch.
 *
 * Two modes, one executable (as tests/test_dist.c):
 *   - plain (ctest): one process, a global batch of 2 sequences as one micro-batch of 2 vs two
 *     accumulated micro-batches of 1 (same losses, gradient norms and weights);
 *   - under mpirun (tests/cli_sft_mpi.sh runs `mpirun -np 2 test_sft_dist`): 3 SFT steps on 2
 *     ranks with 1 sequence each (ZeRO-1 optimizer shards, per-rank optimizer files) vs rank 0
 *     alone with 2 sequences per micro-batch: the same losses, gradient norms and weights
 *     (within float summation order); then the 2-rank run stopped after step 2 and resumed
 *     gives bit-identical losses and weights to the uninterrupted 2-rank run.
 */
#include <cjson/cJSON.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "sft_fixture.h"
#include "trainer_fixture.h"
#include "train/checkpoint.h"
#include "train/sft.h"

static char ROOT[1024], MODEL[1200], TRAIN[1200];

static int run_sft(SrComm *comm, const char *out, const char *const *extra, SrError *err) {
    const char *kv[64];
    const char *base[] = {"--model-name-or-path", MODEL, "--dataset-path", TRAIN, "--output-dir", out,
                          "--max-length", "128", "--learning-rate", "3e-3", "--lr-scheduler-type", "cosine",
                          "--warmup-steps", "1", "--weight-decay", "0.01", "--logging-steps", "1", "--seed", "3",
                          "--report-to", "none", "--max-steps", "3", "--save-steps", "1", NULL};
    SrConfig cfg;
    if (trainer_args(kv, 64, base, extra) < 0 || toy_config_parse(&cfg, SFT_OPTIONS, SFT_N_OPTIONS, kv))
        return sr_fail(err, "bad test config");
    SftOptions o;
    SftResult res;
    int rc = sft_options_from_config(&o, &cfg, err);
    if (!rc) rc = sft_run(&o, cfg.root, comm, &res, err);
    sr_config_free(&cfg);
    return rc;
}

/* losses / grad norms within tol, weights within wtol (0: bit for bit) */
static void compare_runs(const char *a, const char *b, double tol, double wtol, const char *what) {
    double la[8], lb[8], ga[8], gb[8];
    int n1 = trainer_read_metric(a, "loss", la, 8), n2 = trainer_read_metric(b, "loss", lb, 8);
    CHECKF(n1 == 3 && n2 == 3, "%s: %d and %d loss records", what, n1, n2);
    CHECK(trainer_read_metric(a, "grad_norm", ga, 8) == 3 && trainer_read_metric(b, "grad_norm", gb, 8) == 3);
    for (int s = 0; s < 3 && n1 == 3 && n2 == 3; s++) {
        CHECKF(fabs(la[s] - lb[s]) <= tol * la[s], "%s: step %d loss %.9g vs %.9g", what, s + 1, la[s], lb[s]);
        CHECKF(fabs(ga[s] - gb[s]) <= 10 * tol * ga[s], "%s: step %d grad norm %.9g vs %.9g", what, s + 1, ga[s], gb[s]);
    }
    double e = trainer_check_weights(a, b, 3, wtol, what);
    if (e >= 0)
        fprintf(stderr, "  %s: losses %.7f %.7f %.7f vs %.7f %.7f %.7f, weights rel err %.3g\n", what, la[0], la[1],
                la[2], lb[0], lb[1], lb[2], e);
}

static void make_world(void) {
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", ROOT, ROOT);
    if (system(cmd) != 0 || toy_model_dir(MODEL, 1) || toy_shards(TRAIN, 16, 128, TOY_TOK_VOCAB, 11)) {
        fprintf(stderr, "cannot make the toy world in %s\n", ROOT);
        exit(1);
    }
}

int main(void) {
    omp_set_num_threads(1);
    const char *tmp = getenv("SR_TMP") ? getenv("SR_TMP") : "/tmp/splitreason_test";
    snprintf(ROOT, sizeof ROOT, "%s/sft_dist", tmp);
    snprintf(MODEL, sizeof MODEL, "%s/model", ROOT);
    snprintf(TRAIN, sizeof TRAIN, "%s/train", ROOT);
    char a[1300], b[1300], c[1300];
    snprintf(a, sizeof a, "%s/a", ROOT);
    snprintf(b, sizeof b, "%s/b", ROOT);
    snprintf(c, sizeof c, "%s/c", ROOT);
    SrError err;

    if (!sr_comm_launched()) {
        make_world();
        SrComm one;
        sr_comm_init_single(&one);
        const char *e1[] = {"--per-device-train-batch-size", "2", NULL};
        const char *e2[] = {"--per-device-train-batch-size", "1", "--gradient-accumulation-steps", "2", NULL};
        CHECKF(run_sft(&one, a, e1, &err) == 0, "%s", err.msg);
        CHECKF(run_sft(&one, b, e2, &err) == 0, "%s", err.msg);
        compare_runs(a, b, 1e-5, 1e-5, "1 x 2 vs 2 x 1 sequences");
        sr_comm_free(&one);
        return sr_test_done();
    }

    SrComm comm;
    if (trainer_dist_init(&comm, make_world)) return 1;

    /* 2 ranks x 1 sequence (straight; stopped after step 2 and resumed) vs rank 0 alone with 2 */
    if (trainer_dist_runs(&comm, run_sft, "1", "2", a, b, c)) {
        compare_runs(a, b, 1e-5, 1e-5, "2 ranks vs 1 process");
        compare_runs(a, c, 0, 0, "2 ranks: stopped at 2 and resumed vs straight");
    }
    return trainer_dist_done(&comm);
}
