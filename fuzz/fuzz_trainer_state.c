/*
 * libFuzzer harness for trainer_state.json as a resume reads it (train/checkpoint.h): the
 * input is the file's text, parsed and range-checked by checkpoint_parse_state, the function
 * checkpoint_read_state (and so `sft --resume_from_checkpoint`) calls. On success every field
 * must lie in the range the header promises; on failure the message must name the file. Any
 * crash, sanitizer report or leak is a bug.
 *
 *   bash fuzz/run.sh trainer_state [seconds]   (CI replays fuzz/corpus/trainer_state/)
 *
 * Seeds: trainer_state.json of checkpoints of a tiny `sft` run, and hand-made edge cases.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../train/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    CheckpointState st;
    SrError err;
    const char *path = "/tmp/ckpt/trainer_state.json";
    if (checkpoint_parse_state((const char *)data, size, path, &st, &err) != 0) {
        if (strncmp(err.msg, path, strlen(path)) != 0 || st.json) abort();
        return 0;
    }
    if (!st.json || st.global_step < 0 || st.global_step > 1000000000 || st.world_size < 1 ||
        st.global_micro_batch < 1 || st.n_sequences < 0 || st.data_epoch < 0 || st.data_cursor < 0 ||
        st.data_cursor > st.n_sequences || st.window_steps < 0 || st.window_steps > st.global_step ||
        !(st.tokens_seen >= 0) || !(st.total_flos >= 0) || !(st.train_seconds >= 0) ||
        st.window_loss_sum != st.window_loss_sum)
        abort();
    for (const cJSON *it = st.log_history ? st.log_history->child : NULL; it; it = it->next)
        if (!cJSON_IsObject(it)) abort();
    if (st.config && !cJSON_IsObject(st.config)) abort();
    checkpoint_state_free(&st);
    return 0;
}
