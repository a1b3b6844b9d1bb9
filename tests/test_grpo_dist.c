/*
 * GRPO with data parallelism: two processes give the update of one process on the same global
 * batch; gradient accumulation gives the update of one micro-batch. On the demo task with split
 * rollouts (the tagged small policy fixture + the shipped big model), 3 optimizer steps.
 *
 * Two modes, one executable (as tests/test_sft_dist.c):
 *   - plain (ctest): one process, one micro-batch of 8 completions vs 2 accumulated micro-batches
 *     of 4 (steps_per_generation 2: the same generation of 2 prompts x 4): the same rewards,
 *     losses, gradient norms and weights (within float summation order);
 *   - under mpirun (tests/cli_grpo_mpi.sh runs `mpirun -np 2 test_grpo_dist`): 2 processes x 1
 *     prompt x 4 completions (rewards gathered before the advantages, ZeRO-1) vs rank 0 alone
 *     with 2 prompts x 4: the same rewards, losses, gradient norms and weights; then the
 *     2-process run stopped after step 2 and resumed = the straight 2-process run, bit for bit.
 */
#include <cjson/cJSON.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "harness.h"
#include "sft_fixture.h"
#include "trainer_fixture.h"
#include "train/grpo.h"

static char ROOT[1024], DATA[1200];

static int run_grpo(SrComm *comm, const char *out, const char *const *extra, SrError *err) {
    const char *kv[64];
    const char *base[] = {"--model-name-or-path", sr_test_fixture("demo_task_small_tagged"),
                          "--big-model-name-or-path", "assets/demo_task/big", "--rollout-mode", "split",
                          "--dataset-path", DATA, "--output-dir", out, "--reward-funcs",
                          "[\"accuracy\", \"format\", \"latency\"]", "--latency-table",
                          "configs/latency/cpu_demo.json", "--latency-penalty", "0.5", "--num-generations", "4",
                          "--max-completion-length", "120", "--learning-rate", "1e-3", "--lr-scheduler-type",
                          "cosine", "--logging-steps", "1", "--seed", "3", "--report-to", "none", "--max-steps",
                          "3", "--save-steps", "1", "--bf16", "false", "--beta", "0.04", NULL};
    SrConfig cfg;
    if (trainer_args(kv, 64, base, extra) < 0 || toy_config_parse(&cfg, GRPO_OPTIONS, GRPO_N_OPTIONS, kv))
        return sr_fail(err, "bad test config");
    GrpoOptions o;
    GrpoResult res;
    int rc = grpo_options_from_config(&o, &cfg, err);
    if (!rc) rc = grpo_run(&o, cfg.root, comm, &res, err);
    sr_config_free(&cfg);
    return rc;
}

/* rewards, losses and grad norms within tol (relative, plus 1e-9), weights within wtol (0: bit
 * for bit) */
static void compare_runs(const char *a, const char *b, double tol, double wtol, const char *what) {
    static const char *const keys[] = {"reward", "loss", "grad_norm", "kl"};
    for (int k = 0; k < 4; k++) {
        double va[8], vb[8];
        int n1 = trainer_read_metric(a, keys[k], va, 8), n2 = trainer_read_metric(b, keys[k], vb, 8);
        CHECKF(n1 == 3 && n2 == 3, "%s: %d and %d %s records", what, n1, n2, keys[k]);
        for (int s = 0; s < 3 && n1 == 3 && n2 == 3; s++)
            CHECKF(fabs(va[s] - vb[s]) <= tol * fabs(va[s]) + 1e-9, "%s: step %d %s %.9g vs %.9g", what, s + 1,
                   keys[k], va[s], vb[s]);
        if (k == 1 && n1 == 3 && n2 == 3)
            fprintf(stderr, "  %s: losses %.7g %.7g %.7g vs %.7g %.7g %.7g\n", what, va[0], va[1], va[2], vb[0],
                    vb[1], vb[2]);
    }
    double e = trainer_check_weights(a, b, 3, wtol, what);
    if (e >= 0) fprintf(stderr, "  %s: weights rel err %.3g\n", what, e);
}

/* the weights moved at all (the comparisons above could not pass by doing nothing) */
static void check_trained(const char *run) {
    SrError err;
    SrBackend be;
    sr_backend_init(&be, "cpu", 0, &err);
    Qwen2Model m0, m1;
    char p[1300];
    snprintf(p, sizeof p, "%s/checkpoint-3", run);
    if (qwen2_load(&m0, sr_test_fixture("demo_task_small_tagged"), &be, &err) == 0) {
        if (qwen2_load(&m1, p, &be, &err) == 0) {
            double e = sr_rel_err((const float *)m1.params, (const float *)m0.params, m0.total_numel);
            CHECKF(e > 1e-4, "%s: the weights barely moved (rel %.3g)", run, e);
            qwen2_free(&m1);
        }
        qwen2_free(&m0);
    }
    sr_backend_free(&be);
}

static void make_world(void) {
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && '%s' task --out '%s/task' --n-train 32 --n-heldout 2 "
             ">/dev/null 2>&1", ROOT, ROOT, sr_test_bin(), ROOT);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot make the task in %s\n", ROOT);
        exit(1);
    }
}

int main(void) {
    (void)toy_model_dir; /* sft_fixture.h's other helpers: this test makes its own world */
    (void)toy_shards;
    omp_set_num_threads(1);
    const char *tmp = getenv("SR_TMP") ? getenv("SR_TMP") : "/tmp/splitreason_test";
    snprintf(ROOT, sizeof ROOT, "%s/grpo_dist", tmp);
    snprintf(DATA, sizeof DATA, "%s/task/train.jsonl", ROOT);
    char a[1300], b[1300], c[1300];
    snprintf(a, sizeof a, "%s/a", ROOT);
    snprintf(b, sizeof b, "%s/b", ROOT);
    snprintf(c, sizeof c, "%s/c", ROOT);
    SrError err;

    if (!sr_comm_launched()) {
        make_world();
        SrComm one;
        sr_comm_init_single(&one);
        const char *e1[] = {"--per-device-train-batch-size", "8", NULL};
        const char *e2[] = {"--per-device-train-batch-size", "4", "--gradient-accumulation-steps", "2",
                            "--steps-per-generation", "2", NULL};
        CHECKF(run_grpo(&one, a, e1, &err) == 0, "%s", err.msg);
        CHECKF(run_grpo(&one, b, e2, &err) == 0, "%s", err.msg);
        compare_runs(a, b, 1e-4, 1e-5, "1 x 8 vs 2 x 4 completions");
        check_trained(a);
        sr_comm_free(&one);
        return sr_test_done();
    }

    SrComm comm;
    if (trainer_dist_init(&comm, make_world)) return 1;

    /* 2 processes x 1 prompt x 4 completions (straight; stopped after step 2 and resumed) vs
     * rank 0 alone with 2 prompts x 4 */
    if (trainer_dist_runs(&comm, run_grpo, "4", "8", a, b, c)) {
        char f[1400];
        snprintf(f, sizeof f, "%s/rollouts/step-000001.rank-1.jsonl.zst", a);
        CHECKF(sr_file_exists(f), "%s", f);
        compare_runs(a, b, 1e-4, 1e-5, "2 processes vs 1 process");
        compare_runs(a, c, 0, 0, "2 processes: stopped at 2 and resumed vs straight");
        check_trained(a);
    }
    return trainer_dist_done(&comm);
}
