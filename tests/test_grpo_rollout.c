/*
 * GRPO's rollouts and their assembly into the loss's rows (train/grpo_rollout.h), on the demo
 * task's models (the tagged small policy fixture and the shipped big model):
 *   - split rollouts: the big model wrote some tokens; the loss mask is 1 exactly on the small
 *     model's sampled ids (0 on the span and the appended </bigmodel>); the accounting adds up;
 *   - small rollouts: every id is the policy's; tags priced as spans (big tokens inside them);
 *   - groups: rows in runs of G, group = row / G, the prompt shared;
 *   - determinism: the same (seed, generation, slot, g) gives the same ids whether decoded in one
 *     batch or alone, another generation or slot gives others;
 *   - rewards: a gold that does not parse makes accuracy "none", the row's reward NaN, its
 *     advantage 0 and the group's statistics leave it out; flat groups; the spec's errors;
 *   - the rollout log line: strict JSON, null for none.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer.h"
#include "eval/benchmarks.h"
#include "eval/eval.h"
#include "harness.h"
#include "train/grpo.h"
#include "train/grpo_rollout.h"

typedef struct World {
    SrBackend be;
    Qwen2Model small, big;
    Tokenizer *tok;
    int32_t open_id, close_id;
    Engine *es, *eb;
    int32_t stop[1];
    int32_t *prompt[2];
    int plen[2];
} World;

static int world_open(World *w) {
    SrError err;
    memset(w, 0, sizeof *w);
    const char *pol = sr_test_fixture("demo_task_small_tagged");
    if (sr_backend_init(&w->be, "cpu", 0, &err) || qwen2_load(&w->small, pol, &w->be, &err) ||
        qwen2_load(&w->big, "assets/demo_task/big", &w->be, &err) || tokenizer_load(&w->tok, pol, &err) ||
        tokenizer_add_bigmodel_tokens(w->tok, &w->open_id, &w->close_id, &err)) {
        fprintf(stderr, "world: %s\n", err.msg);
        return -1;
    }
    EngineOptions eo = {0};
    eo.kv_bytes = engine_kv_bytes_for(&w->small, &eo, 64 * 400);
    if (engine_open(&w->es, &w->small, &eo, &err)) return -1;
    eo.kv_bytes = engine_kv_bytes_for(&w->big, &eo, 64 * 400);
    if (engine_open(&w->eb, &w->big, &eo, &err)) return -1;
    const char *probs[2] = {"Fill in the blanks.\nA) g __ -> __\nB) + __ -> __\nC) = __ -> __\nD) k __ -> __\n"
                            "E) - __ -> __\nF) + __ -> __\nStart: 37",
                            "Fill in the blanks.\nA) + __ -> __\nB) f __ -> __\nC) = __ -> __\nD) - __ -> __\n"
                            "E) h __ -> __\nF) = __ -> __\nStart: 23"};
    for (int p = 0; p < 2; p++)
        if (eval_prompt_ids(w->tok, probs[p], NULL, NULL, &w->prompt[p], &w->plen[p], &err)) return -1;
    w->stop[0] = tokenizer_eos_id(w->tok);
    return 0;
}

static void world_close(World *w) {
    for (int p = 0; p < 2; p++) free(w->prompt[p]);
    if (w->es) engine_close(w->es);
    if (w->eb) engine_close(w->eb);
    qwen2_free(&w->small);
    qwen2_free(&w->big);
    tokenizer_free(w->tok);
    sr_backend_free(&w->be);
}

static GrpoGenerate gen_of(World *w, SplitMode mode, int G) {
    GrpoGenerate g = {0};
    split_config_default(&g.cfg);
    g.cfg.mode = mode;
    g.cfg.max_new_tokens = 160;
    g.cfg.sampling = (SrSampling){1.0f, 0, 1.0f};
    g.cfg.open_id = w->open_id;
    g.cfg.close_id = w->close_id;
    g.cfg.stop_ids = w->stop;
    g.cfg.n_stop_ids = 1;
    g.cfg.vocab_limit = tokenizer_vocab_size(w->tok);
    g.small = w->es;
    g.big = w->eb;
    g.tok = w->tok;
    g.num_generations = G;
    return g;
}

static int same_ids(const GrpoRollout *a, const GrpoRollout *b) {
    return a->r.n == b->r.n && memcmp(a->r.ids, b->r.ids, (size_t)a->r.n * sizeof(int32_t)) == 0;
}

static void test_split(World *w) {
    enum { G = 8 };
    GrpoGenerate gen = gen_of(w, SPLIT_MODE_SPLIT, G);
    int32_t *pp[2] = {w->prompt[0], w->prompt[1]};
    int slots[2] = {0, 1}, rows[2] = {5, 9};
    GrpoRollout ro[2 * G];
    SrError err;
    int rc = grpo_rollouts_generate(&gen, 0, 42, pp, w->plen, slots, rows, 2, ro, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    GrpoBatch b;
    grpo_rollouts_to_batch(ro, 2 * G, G, 1, 1, &b);
    CHECK(b.n_rows == 2 * G && b.n_groups == 2);
    int big_rows = 0, bad_mask = 0, bad_acc = 0, bad_group = 0, spans = 0;
    for (int i = 0; i < 2 * G; i++) {
        const GrpoRollout *x = &ro[i];
        const GrpoRow *r = &b.rows[i];
        bad_group += r->group != i / G || r->prompt_ids != w->prompt[i / G] || x->prompt_index != rows[i / G] ||
                     x->g != i % G;
        big_rows += x->r.big_tokens > 0;
        spans += x->acc.switches;
        bad_acc += x->acc.small_tokens + x->acc.big_tokens != x->r.n || x->acc.ctx != x->n_prompt + x->r.n;
        for (int t = 0; t < x->r.n; t++) {
            int want = x->r.owner[t] == 's' && !(t > 0 && x->r.ids[t] == w->close_id && x->r.owner[t - 1] == 'b');
            bad_mask += r->loss_mask[t] != want;
            /* the sampler's log-probs travel as the importance-sampling input (NaN: appended) */
            bad_mask += !(isnan(r->sampling_logp[t]) ? isnan(x->r.logprobs[t]) : r->sampling_logp[t] == x->r.logprobs[t]);
        }
        bad_mask += x->truncated != !(x->r.n > 0 && x->r.ids[x->r.n - 1] == w->stop[0]);
    }
    CHECKF(big_rows > 0, "no split rollout offloaded (%d spans)", spans);
    CHECKF(bad_mask == 0, "%d loss-mask / log-prob / truncation mismatches", bad_mask);
    CHECK(bad_acc == 0);
    CHECK(bad_group == 0);
    fprintf(stderr, "  split: %d of %d rollouts offloaded, %d spans\n", big_rows, 2 * G, spans);

    /* completion (slot 1, g 3) decoded alone: the same ids; another generation: other ids */
    GrpoRollout one[G], other[2 * G];
    rc = grpo_rollouts_generate(&gen, 0, 42, pp + 1, w->plen + 1, slots + 1, rows + 1, 1, one, &err);
    CHECKF(rc == 0, "%s", err.msg);
    int same = 0;
    for (int g = 0; !rc && g < G; g++) same += same_ids(&one[g], &ro[G + g]);
    CHECKF(same == G, "alone vs in a batch: %d of %d completions equal", same, G);
    rc = grpo_rollouts_generate(&gen, 1, 42, pp, w->plen, slots, rows, 2, other, &err);
    int diff = 0;
    for (int i = 0; !rc && i < 2 * G; i++) diff += !same_ids(&other[i], &ro[i]);
    CHECKF(diff >= G, "generation 1 repeats generation 0 (%d of %d differ)", diff, 2 * G);
    /* and the G completions of one prompt are not copies of each other */
    int copies = 0;
    for (int g = 1; g < G; g++) copies += same_ids(&ro[0], &ro[g]);
    CHECK(copies < G - 1);
    for (int i = 0; i < G; i++) grpo_rollout_free(&one[i]);
    for (int i = 0; i < 2 * G; i++) grpo_rollout_free(&other[i]);
    grpo_rollout_batch_free(&b);
    for (int i = 0; i < 2 * G; i++) grpo_rollout_free(&ro[i]);
}

static void test_small(World *w) {
    enum { G = 8 };
    GrpoGenerate gen = gen_of(w, SPLIT_MODE_SMALL, G);
    int32_t *pp[1] = {w->prompt[0]};
    int slots[1] = {0}, rows[1] = {0};
    GrpoRollout ro[G];
    SrError err;
    int rc = grpo_rollouts_generate(&gen, 0, 42, pp, w->plen, slots, rows, 1, ro, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    int tagged = 0, bad = 0;
    for (int g = 0; g < G; g++) {
        const GrpoRollout *x = &ro[g];
        int opens = 0, inside = 0, in = 0;
        for (int t = 0; t < x->r.n; t++) {
            bad += x->r.owner[t] != 's';
            /* inside a span everything up to </bigmodel> is the big model's (a nested
             * <bigmodel> too); outside, <bigmodel> opens one */
            if (in && x->r.ids[t] != w->close_id) inside++;
            else if (x->r.ids[t] == w->open_id) opens++, in = 1;
            else if (x->r.ids[t] == w->close_id) in = 0;
        }
        tagged += opens > 0;
        bad += x->acc.switches != opens || x->acc.big_tokens != inside ||
               x->acc.small_tokens + x->acc.big_tokens != x->r.n;
    }
    CHECKF(bad == 0, "%d small-mode accounting mismatches", bad);
    CHECKF(tagged > 0, "the tagged policy wrote no <bigmodel> in %d small rollouts", G);
    GrpoBatch b;
    grpo_rollouts_to_batch(ro, G, G, 0, 0, &b);
    CHECK(b.rows[0].loss_mask == NULL && b.rows[0].sampling_logp == NULL && b.n_groups == 1);
    grpo_rollout_batch_free(&b);
    for (int g = 0; g < G; g++) grpo_rollout_free(&ro[g]);
}

static void test_rewards(void) {
    SrError err;
    cJSON *funcs = cJSON_Parse("[\"accuracy\", \"format\"]"), *w = cJSON_Parse("[2, 0.5]");
    GrpoRewardSpec s;
    CHECK(grpo_reward_spec_init(&s, funcs, w, &err) == 0);
    CHECK(s.n == 2 && s.weights[0] == 2 && s.grader != NULL);
    const char *right = "Start: 37\nA) g 37 -> 52\n</think>\n\n\\boxed{52}";
    GrpoRollout ro[4];
    memset(ro, 0, sizeof ro);
    for (int i = 0; i < 4; i++) ro[i].text = (char *)right, ro[i].text_len = strlen(right);
    grpo_rollout_judge(&s, &ro[0], "52");
    grpo_rollout_judge(&s, &ro[1], "51");
    CHECKF(ro[0].rewards[0] == 1 && ro[1].rewards[0] == 0 && ro[0].accuracy == 1, "accuracy %g %g",
           ro[0].rewards[0], ro[1].rewards[0]);
    CHECKF(ro[0].reward == 2 + 0.5 * ro[0].rewards[1], "weighted sum %g", ro[0].reward);
    /* accuracy alone, a gold that does not parse: none -> NaN reward */
    cJSON *acc = cJSON_Parse("\"accuracy\"");
    GrpoRewardSpec a;
    CHECK(grpo_reward_spec_init(&a, acc, NULL, &err) == 0);
    grpo_rollout_judge(&a, &ro[2], "\\frac{");
    grpo_rollout_judge(&a, &ro[3], "52");
    grpo_rollout_judge(&a, &ro[0], "51");
    grpo_rollout_judge(&a, &ro[1], "52");
    CHECKF(isnan(ro[2].reward) && isnan(ro[2].accuracy), "unparseable gold: reward %g", ro[2].reward);
    double r[4], adv[4];
    int grp[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; i++) r[i] = ro[i].reward;
    GrpoAdvStats st;
    grpo_advantages(r, grp, 4, GRPO_SCALE_GROUP, adv, &st);
    CHECKF(adv[2] == 0 && adv[0] < 0 && adv[1] > 0 && fabs(adv[0] + adv[1] + adv[3]) < 1e-9,
           "advantages %g %g %g %g", adv[0], adv[1], adv[2], adv[3]);
    CHECKF(fabs(st.reward_mean - 2.0 / 3.0) < 1e-12, "mean over the judged rows %g", st.reward_mean);
    /* flat groups: all equal, or fewer than two judged */
    CHECK(!grpo_group_flat(ro, 4));
    CHECK(grpo_group_flat(ro + 1, 1));
    ro[0].reward = ro[1].reward = ro[3].reward = 1;
    CHECK(grpo_group_flat(ro, 4));
    ro[1].reward = NAN, ro[3].reward = NAN;
    CHECK(grpo_group_flat(ro, 4));
    /* the log line: strict JSON, none as null */
    SrBuf o = {0};
    char *ids[1] = {"\"p0\""};
    ro[2].prompt_index = 0;
    grpo_rollouts_jsonl(&o, &a, &ro[2], 1, 7, ids);
    cJSON *line = cJSON_ParseWithLength(o.p, o.n);
    CHECK(line != NULL);
    const cJSON *rw = cJSON_GetObjectItemCaseSensitive(line, "rewards");
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rw, "accuracy")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(line, "reward")));
    CHECK(cJSON_GetObjectItemCaseSensitive(line, "step")->valuedouble == 7);
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(line, "prompt_id")->valuestring, "p0"));
    cJSON_Delete(line);
    sr_buf_free(&o);
    for (int i = 0; i < 4; i++) ro[i].text = NULL;
    grpo_reward_spec_free(&s);
    grpo_reward_spec_free(&a);
    /* the spec's errors */
    cJSON *bad1 = cJSON_Parse("[\"accuracy\", \"speed\"]"), *bad2 = cJSON_Parse("[\"format\", \"format\"]");
    cJSON *w3 = cJSON_Parse("[1, 2, 3]");
    CHECK(grpo_reward_spec_init(&s, bad1, NULL, &err) != 0 && strstr(err.msg, "reward_funcs[1]"));
    CHECK(grpo_reward_spec_init(&s, bad2, NULL, &err) != 0 && strstr(err.msg, "twice"));
    CHECK(grpo_reward_spec_init(&s, funcs, w3, &err) != 0 && strstr(err.msg, "reward_weights"));
    cJSON_Delete(bad1);
    cJSON_Delete(bad2);
    cJSON_Delete(w3);
    cJSON_Delete(funcs);
    cJSON_Delete(w);
    cJSON_Delete(acc);
}

/* the shipped recipes parse, and the paper's holds its settings */
static void test_recipes(void) {
    const char *files[2] = {"configs/grpo/r1_distill_qwen_1.5b.json", "configs/grpo/tiny_cpu.json"};
    for (int i = 0; i < 2; i++) {
        size_t n;
        char *text = sr_test_read_file(files[i], &n);
        CHECKF(text != NULL, "%s", files[i]);
        if (!text) continue;
        SrConfig cfg;
        SrError err;
        GrpoOptions o;
        int rc = sr_config_parse_json(&cfg, GRPO_OPTIONS, GRPO_N_OPTIONS, text, n, files[i], &err);
        if (!rc) rc = grpo_options_from_config(&o, &cfg, &err);
        CHECKF(rc == 0, "%s: %s", files[i], err.msg);
        if (!rc && i == 0) {
            CHECK(o.system_prompt && !strcmp(o.system_prompt, EVAL_GRPO_SYSTEM_PROMPT));
            CHECK(o.num_generations == 21 && o.max_completion_length == 4096 && o.temperature == 0.7);
            CHECK(o.harness.learning_rate == 1e-6 && o.loss.beta == 0.04 && o.loss.epsilon == 0.2 &&
                  o.harness.min_lr_rate == 0.1);
            CHECK(o.harness.warmup_ratio == 0.1 && o.harness.bf16 && !strcmp(o.harness.device, "cuda"));
            CHECK(!strcmp(o.harness.lr_scheduler_type, "cosine_with_min_lr"));
            GrpoRewardSpec s;
            CHECK(grpo_reward_spec_init(&s, o.reward_funcs, o.reward_weights, &err) == 0 && s.n == 3 &&
                  s.kinds[0] == REWARD_ACCURACY && s.kinds[1] == REWARD_TAG_COUNT && s.kinds[2] == REWARD_FORMAT &&
                  s.weights[0] == 1 && s.weights[1] == 1 && s.weights[2] == 1);
            grpo_reward_spec_free(&s);
        }
        if (!rc && i == 1) CHECK(o.rollout_mode == SPLIT_MODE_SPLIT && o.latency_table != NULL);
        if (text) sr_config_free(&cfg);
        free(text);
    }
}

/* GRPO data: a row without an answer takes its solution's last \boxed{} */
static void test_dataset(void) {
    char *b = eval_last_boxed("so \\boxed{1} or rather \\boxed{\\frac{1}{2}}.");
    CHECKF(b && !strcmp(b, "\\frac{1}{2}"), "%s", b ? b : "(null)");
    free(b);
    CHECK(eval_last_boxed("no box") == NULL && eval_last_boxed("\\boxed{12") == NULL &&
          eval_last_boxed("\\boxed{}") == NULL);
    const char *dir = sr_test_tmpdir("grpo_rollout");
    char path[1200];
    snprintf(path, sizeof path, "%s/rows.jsonl", dir);
    const char *rows = "{\"problem\": \"1+1\", \"solution\": \"<think>2</think> \\\\boxed{2}\"}\n"
                       "{\"problem\": \"2+2\", \"answer\": \"4\"}\n";
    sr_test_write_file(path, rows, strlen(rows));
    EvalBenchmark d;
    SrError err;
    int rc = eval_benchmark_load(&d, path, NULL, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(d.n == 2 && !strcmp(d.items[0].answer, "2") && !strcmp(d.items[1].answer, "4"));
        eval_benchmark_free(&d);
    }
    rows = "{\"problem\": \"1+1\", \"solution\": \"no box here\"}\n";
    sr_test_write_file(path, rows, strlen(rows));
    CHECK(eval_benchmark_load(&d, path, NULL, &err) != 0 && strstr(err.msg, "rows.jsonl:1") && strstr(err.msg, "boxed"));
}

int main(void) {
    omp_set_num_threads(1);
    test_dataset();
    test_recipes();
    test_rewards();
    World w;
    if (world_open(&w) == 0) {
        test_split(&w);
        test_small(&w);
    } else {
        CHECK(!"the demo models load");
    }
    world_close(&w);
    return sr_test_done();
}
