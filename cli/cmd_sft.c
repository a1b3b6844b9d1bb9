/*
 * splitreason sft: supervised fine-tuning on `prepare` shards (train/sft.h). Thin: the
 * settings (TRL's names) -> SftOptions -> communicator (single, or MPI under mpirun/srun)
 * -> sft_run -> a summary line.
 */
#include <stdio.h>

#include "../common/log.h"
#include "../train/dist.h"
#include "../train/sft.h"
#include "cli.h"

static int run(SrConfig *cfg, SrError *err) {
    SftOptions o;
    if (sft_options_from_config(&o, cfg, err)) return -1;
    SrComm comm;
    if (sr_comm_init(&comm, err)) return -1;
    SftResult res;
    int rc = sft_run(&o, cfg->root, &comm, &res, err);
    if (!rc && comm.rank == 0) {
        printf("sft: steps %d -> %d of %d, loss %.4f -> %.4f, %.1fs, checkpoint %s\n", res.start_step,
               res.end_step, res.total_steps, res.first_loss, res.last_loss, res.seconds, res.last_checkpoint);
        if (res.has_eval_last)
            printf("sft: held-out loss %.4f, <bigmodel> precision %.3f recall %.3f, </bigmodel> precision %.3f "
                   "recall %.3f, offload share %.3f (reference %.3f)\n",
                   res.eval_last.loss, res.eval_last.open_precision, res.eval_last.open_recall,
                   res.eval_last.close_precision, res.eval_last.close_recall, res.eval_last.offload_share,
                   res.eval_last.offload_share_ref);
        fflush(stdout);
    }
    sr_comm_free(&comm);
    return rc;
}

/* the settings' rules between keys (sft_options_from_config): a broken one is a bad command line */
static int check(const SrConfig *cfg, SrError *err) {
    SftOptions o;
    return sft_options_from_config(&o, cfg, err);
}

const SrCommand sr_cmd_sft = {
    "sft", "supervised fine-tuning on prepared shards (TRL SFTTrainer's recipe)",
    "splitreason sft --config FILE [--key value ...]",
    "Fine-tunes model_name_or_path on the shards in dataset_path (what `splitreason prepare`\n"
    "writes): micro-batches of packed sequences, the loss averaged over every target token of the\n"
    "global batch (gradient accumulation and data-parallel ranks give the big batch's gradient),\n"
    "AdamW (no decay on biases and norms) with ZeRO-1 under mpirun, gradient clipping, the\n"
    "transformers learning-rate schedules. Writes output_dir/checkpoint-<step>/ (an HF model\n"
    "directory + optimizer state + trainer_state.json, DONE last, atomically; the last\n"
    "save_total_limit kept), output_dir/metrics.jsonl and TensorBoard events (logging_dir).\n"
    "With eval_dataset_path: held-out loss and the precision/recall of the predicted <bigmodel>\n"
    "and </bigmodel> positions. resume_from_checkpoint (a path, or true for the latest) resumes\n"
    "exactly. A NaN/Inf loss or gradient norm stops the run naming the step and the tensor.\n"
    "Settings follow TRL's SFTConfig names; configs/sft/ has the paper's recipe and a CPU one.",
    SFT_OPTIONS, SFT_N_OPTIONS, run, NULL, check,
};
