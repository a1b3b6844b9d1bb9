/*
 * libFuzzer harness for GRPO batches: the input is a JSONL(.zst) file of rows as
 * `splitreason grpo-loss` reads them (train/grpo_loss.h grpo_batch_read), and every batch that
 * reads goes through the loss arithmetic (advantages, grpo_loss in every aggregation, token and
 * sequence level, with the importance-sampling correction when the rows carry sampler
 * log-probs) with the rows' own log-probs standing in for the policy's. A crash, a sanitizer
 * report, a malformed row whose error does not name the file, or a d loss / d logprob on a token
 * out of the loss is a bug.
 *
 * Build and run (clang with libFuzzer):  bash fuzz/run.sh grpo_batch [seconds]
 * CI replays fuzz/corpus/grpo_batch/ through fuzz/replay.c (ctest "fuzz_grpo_batch").
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../train/grpo_loss.h"

static char fuzz_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void fuzz_cleanup(void);
void fuzz_cleanup(void) {
    if (fuzz_path[0]) unlink(fuzz_path);
}

static void run_loss(const GrpoBatch *b, int variant) {
    int n = b->n_rows;
    double *rewards = malloc((size_t)n * sizeof(double)), *adv = malloc((size_t)n * sizeof(double));
    int *group = malloc((size_t)n * sizeof(int));
    size_t n_tok = 0;
    for (int i = 0; i < n; i++) {
        rewards[i] = b->rows[i].reward, group[i] = b->rows[i].group;
        n_tok += (size_t)b->rows[i].n_completion;
    }
    GrpoLossConfig c;
    grpo_loss_config_default(&c);
    c.loss_type = (GrpoLossType)(variant % 4);
    c.scale_rewards = (GrpoScale)(variant % 3);
    c.importance_sampling_level = (GrpoIsLevel)(variant / 4 % 2);
    c.beta = variant % 2 ? 0.04 : 0.0;
    c.mask_truncated_completions = variant / 2 % 2;
    c.vllm_importance_sampling_mode = (GrpoVisMode)(variant % 4);
    c.epsilon_high = 0.28;
    grpo_advantages(rewards, group, n, c.scale_rewards, adv, NULL);
    double *logp = calloc(n_tok ? n_tok : 1, sizeof(double));
    double *dloss = calloc(n_tok ? n_tok : 1, sizeof(double));
    GrpoSeq *seqs = calloc((size_t)n, sizeof(GrpoSeq));
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        const GrpoRow *r = &b->rows[i];
        if (isnan(adv[i]) || isinf(adv[i])) abort(); /* advantages are always numbers */
        for (int t = 0; t < r->n_completion; t++)
            logp[o + t] = r->old_logp ? r->old_logp[t] - 0.01 * t : -1.0;
        seqs[i] = (GrpoSeq){r->n_completion, logp + o, r->old_logp, r->ref_logp,
                            r->sampling_logp, adv[i], r->truncated, r->loss_mask};
        o += (size_t)r->n_completion;
    }
    GrpoLossResult res;
    SrError err = {{0}};
    if (grpo_loss(&c, seqs, n, dloss, &res, &err) == 0) {
        o = 0;
        for (int i = 0; i < n; i++) {
            const GrpoRow *r = &b->rows[i];
            int out = c.mask_truncated_completions && r->truncated;
            for (int t = 0; t < r->n_completion; t++)
                if ((out || (r->loss_mask && !r->loss_mask[t])) && dloss[o + t] != 0) abort();
            o += (size_t)r->n_completion;
        }
    } else if (!err.msg[0]) {
        abort();
    }
    free(rewards);
    free(adv);
    free(group);
    free(logp);
    free(dloss);
    free(seqs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fuzz_path[0]) snprintf(fuzz_path, sizeof fuzz_path, "/tmp/fuzz_grpo_batch.%d.jsonl", (int)getpid());
    FILE *f = fopen(fuzz_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
    GrpoBatch b;
    SrError err = {{0}};
    if (grpo_batch_read(&b, fuzz_path, &err) == 0) {
        if (b.n_rows <= 0 || b.n_groups <= 0 || b.n_groups > b.n_rows) abort();
        for (int v = 0; v < 8; v++) run_loss(&b, v + (int)(size % 3) * 8);
        grpo_batch_free(&b);
    } else if (strncmp(err.msg, fuzz_path, strlen(fuzz_path)) != 0) {
        abort(); /* "PATH: ..." or "PATH:LINE: ..." */
    }
    return 0;
}
