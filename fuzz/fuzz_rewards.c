/*
 * libFuzzer harness for GRPO's text rewards and the offload accounting (train/rewards.h): the
 * input is a decoded completion, bytes as they come (any UTF-8 or not, NUL bytes included),
 * through format, tag_count and coverage, whose values must stay in their ranges; the same
 * bytes read as token ids (one per byte, <bigmodel> = 1, </bigmodel> = 2) go through
 * rollout_account_from_ids, whose counts must add up.
 *
 * Build and run (clang with libFuzzer):  bash fuzz/run.sh rewards [seconds]
 * CI replays fuzz/corpus/rewards/ through fuzz/replay.c (ctest "fuzz_rewards").
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../train/rewards.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *t = (const char *)data;
    SrReward f = reward_format(t, size), tc = reward_tag_count(t, size), cv = reward_coverage(t, size);
    if (f.none || tc.none || cv.none) abort(); /* every text can be judged */
    if (!(f.value == 0 || f.value == 1 || f.value == 2)) abort();
    if (!(cv.value >= -1 && cv.value <= 1)) abort();
    double ratio = reward_coverage_ratio(t, size);
    if (!(ratio >= 0 && ratio <= 1)) abort();
    if (!isfinite(tc.value) || tc.value > 6.0) abort(); /* 2 + 2 + 2 at most */

    int n = (int)(size < 4096 ? size : 4096);
    int32_t *ids = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    for (int i = 0; i < n; i++) ids[i] = data[i] % 8; /* tags often enough to matter */
    int32_t prompt[3] = {1, 3, 4};
    RolloutAccount a;
    rollout_account_from_ids(&a, prompt, 3, ids, n, 1, 2);
    if (a.small_tokens + a.big_tokens != n || a.ctx != n + 3) abort();
    int sum_db = 0;
    for (int s = 0; s < a.switches; s++) {
        if (a.delta_big[s] < 0 || a.delta_small[s] < 0) abort();
        sum_db += a.delta_big[s];
    }
    if (sum_db > n + 3) abort(); /* the big model reads each token at most once */
    double share = rollout_offload_share(&a);
    if (!(share >= 0 && share <= 1)) abort();
    rollout_account_free(&a);
    free(ids);
    return 0;
}
