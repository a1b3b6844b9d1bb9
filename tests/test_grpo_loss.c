/*
 * The GRPO loss against TRL 1.16's GRPOTrainer (fixtures by scripts/make_grpo_fixtures.py:
 * a tiny Qwen2, 35 settings: loss_type x beta x scale_rewards with num_iterations 2, a
 * truncated row and a "none" reward, then truncation kept, sequence level, delta, no KL bias
 * correction, the four importance-sampling modes and a loss mask (TRL's tool_mask)): loss within 1e-5, advantages, KL and
 * clip ratios, every parameter's gradient within 1e-3 relative.
 * Then unit checks of the arithmetic: advantages (NaN rewards excluded, scales), and
 * d loss / d logprob against central finite differences of grpo_loss itself.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/safetensors.h"
#include "harness.h"
#include "model/model.h"
#include "train/grpo_loss.h"

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void check_parity(void) {
    SrError err;
    char path[1024];
    cJSON *root = sr_json_read_object_file(sr_test_fixture("grpo/cases.json"), &err);
    CHECKF(root, "%s", err.msg);
    if (!root) return;
    SafeTensors st;
    int st_ok = safetensors_open(&st, sr_test_fixture("grpo/grads.safetensors"), &err) == 0;
    CHECKF(st_ok, "%s", err.msg);
    SrBackend be;
    CHECK(sr_backend_init(&be, "cpu", 0, &err) == 0);
    Qwen2Model m = {0};
    int ok = qwen2_load(&m, sr_test_fixture("grpo/model"), &be, &err) == 0;
    CHECKF(ok, "%s", err.msg);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    int n_cases = 0;
    for (const cJSON *cs = cases ? cases->child : NULL; ok && st_ok && cs; cs = cs->next) {
        const char *name = cJSON_GetObjectItemCaseSensitive(cs, "name")->valuestring;
        snprintf(path, sizeof path, "grpo/%s",
                 cJSON_GetObjectItemCaseSensitive(cs, "batch")->valuestring);
        GrpoBatch b;
        if (grpo_batch_read(&b, sr_test_fixture(path), &err)) {
            CHECKF(0, "%s", err.msg);
            continue;
        }
        GrpoLossConfig c;
        grpo_loss_config_default(&c);
        CHECKF(grpo_loss_config_from_json(&c, cJSON_GetObjectItemCaseSensitive(cs, "config"), &err) == 0,
               "%s: %s", name, err.msg);
        qwen2_zero_grad(&m);
        GrpoStepResult r;
        /* every other case in micro-batches of a row or two: the same loss and gradients */
        int rc = grpo_loss_backward(&m, &b, &c, n_cases % 2 ? 12 : 0, &r, &err);
        CHECKF(rc == 0, "%s: %s", name, err.msg);
        if (rc) {
            grpo_batch_free(&b);
            continue;
        }
        n_cases++;
        double want = num(cs, "loss");
        CHECKF(fabs(r.loss.loss - want) <= 1e-5, "%s: loss %.9g, TRL %.9g", name, r.loss.loss, want);
        const cJSON *adv = cJSON_GetObjectItemCaseSensitive(cs, "advantages");
        int i = 0;
        for (const cJSON *a = adv->child; a && i < b.n_rows; a = a->next, i++)
            CHECKF(fabs(r.advantages[i] - a->valuedouble) <= 1e-5 * (1 + fabs(a->valuedouble)),
                   "%s: advantage[%d] %.9g, TRL %.9g", name, i, r.advantages[i], a->valuedouble);
        CHECKF(fabs(r.loss.kl - num(cs, "kl")) <= 1e-5, "%s: kl %.9g, TRL %.9g", name, r.loss.kl,
               num(cs, "kl"));
        const cJSON *clip = cJSON_GetObjectItemCaseSensitive(cs, "clip_ratio");
        CHECKF(fabs(r.loss.clip_region_mean - num(clip, "region_mean")) <= 1e-6 &&
                   fabs(r.loss.clip_low_mean - num(clip, "low_mean")) <= 1e-6 &&
                   fabs(r.loss.clip_high_mean - num(clip, "high_mean")) <= 1e-6 &&
                   fabs(r.loss.clip_low_min - num(clip, "low_min")) <= 1e-6 &&
                   fabs(r.loss.clip_high_max - num(clip, "high_max")) <= 1e-6,
               "%s: clip ratios %g %g %g %g %g", name, r.loss.clip_low_mean,
               r.loss.clip_high_mean, r.loss.clip_region_mean, r.loss.clip_low_min,
               r.loss.clip_high_max);
        /* every parameter's gradient: ||ours - TRL|| <= 1e-3 ||TRL|| */
        double worst = 0;
        const char *worst_name = "";
        for (int p = 0; p < m.n_params; p++) {
            const ParamInfo *pi = &m.info[p];
            char key[300];
            snprintf(key, sizeof key, "%s/%s", name, pi->name);
            const StTensor *t = safetensors_find(&st, key);
            if (!t || t->numel != pi->numel) {
                CHECKF(0, "%s: no gradient %s in the fixture", name, key);
                continue;
            }
            float *ref = malloc(t->numel * sizeof(float));
            st_tensor_to_f32(t, ref, &err);
            const float *g = (const float *)m.grads + pi->offset;
            double e = sr_rel_err(g, ref, pi->numel), rn = 0;
            for (size_t k = 0; k < pi->numel; k++) rn += (double)ref[k] * ref[k];
            if (sqrt(rn) < 1e-9) { /* an all-zero gradient must be ours too */
                double on = 0;
                for (size_t k = 0; k < pi->numel; k++) on += (double)g[k] * g[k];
                e = sqrt(on) < 1e-9 ? 0 : INFINITY;
            }
            if (!(e <= worst)) worst = e, worst_name = pi->name;
            free(ref);
        }
        CHECKF(worst <= 1e-3, "%s: gradient of %s off by %.3g relative", name, worst_name, worst);
        free(r.advantages);
        grpo_batch_free(&b);
    }
    CHECKF(n_cases == 35, "%d cases compared", n_cases);
    if (ok) qwen2_free(&m);
    sr_backend_free(&be);
    if (st_ok) safetensors_close(&st);
    cJSON_Delete(root);
}

static void check_advantages(void) {
    /* group 0: 1, 0, none, 0.5 -> mean 0.5, std 0.5; group 1: 2, 2 -> std 0 */
    double r[6] = {1.0, 0.0, NAN, 0.5, 2.0, 2.0};
    int g[6] = {0, 0, 0, 0, 1, 1};
    double a[6];
    GrpoAdvStats st;
    grpo_advantages(r, g, 6, GRPO_SCALE_GROUP, a, &st);
    CHECK(fabs(a[0] - 0.5 / (0.5 + 1e-4)) < 1e-12);
    CHECK(fabs(a[1] + 0.5 / (0.5 + 1e-4)) < 1e-12);
    CHECK(a[2] == 0.0); /* "none": no signal, and not in the mean (else the mean is 0.375) */
    CHECK(a[3] == 0.0);
    CHECK(a[4] == 0.0 && a[5] == 0.0);
    CHECK(fabs(st.frac_reward_zero_std - 2.0 / 6) < 1e-12);
    CHECK(fabs(st.reward_mean - 5.5 / 5) < 1e-12);
    grpo_advantages(r, g, 6, GRPO_SCALE_NONE, a, NULL);
    CHECK(a[0] == 0.5 && a[1] == -0.5 && a[2] == 0.0);
    grpo_advantages(r, g, 6, GRPO_SCALE_BATCH, a, NULL);
    /* batch std over {1, 0, 0.5, 2, 2}: mean 1.1, var (0.01+1.21+0.36+0.81+0.81)/4 = 0.8 */
    CHECK(fabs(a[0] - 0.5 / (sqrt(0.8) + 1e-4)) < 1e-12);
    /* a group whose only judged reward is one: nanstd is NaN -> advantage 0 */
    double r2[3] = {NAN, 3.0, NAN};
    int g2[3] = {0, 0, 0};
    grpo_advantages(r2, g2, 3, GRPO_SCALE_GROUP, a, NULL);
    CHECK(a[0] == 0.0 && a[1] == 0.0 && a[2] == 0.0);
    /* sum_then_normalize: nansum of weighted, NaN only when all are none */
    double pf[6] = {1.0, NAN, NAN, NAN, 0.5, 2.0}, w[2] = {1.0, 0.5}, out[3];
    grpo_combine_rewards(pf, w, 3, 2, out);
    CHECK(out[0] == 1.0 && isnan(out[1]) && out[2] == 1.5);
}

/* d loss / d logprob against central differences of the loss itself, in every mode */
static void check_dloss(void) {
    enum { B = 4, T = 5 };
    double lp[B * T], old[B * T], ref[B * T], samp[B * T];
    unsigned s = 12345;
    for (int i = 0; i < B * T; i++) {
        s = s * 1103515245u + 12345u;
        double u = (double)((s >> 8) & 0xffff) / 65536.0;
        lp[i] = -0.3 - 3.0 * u;
        s = s * 1103515245u + 12345u;
        u = (double)((s >> 8) & 0xffff) / 65536.0;
        old[i] = lp[i] + 0.7 * (u - 0.5);
        ref[i] = lp[i] + 0.9 * (u - 0.3);
        samp[i] = lp[i] - 0.4 * (u - 0.6);
    }
    int lens[B] = {5, 3, 4, 2};
    const uint8_t mask0[5] = {1, 0, 1, 1, 0}; /* row 0: two tokens out of the loss */
    double adv[B] = {1.2, -0.7, 0.0, 0.4};
    int fails = 0, runs = 0;
    for (int mode = 0; mode < 4 * 2 * 2 * 3; mode++) {
        GrpoLossConfig c;
        grpo_loss_config_default(&c);
        c.loss_type = (GrpoLossType)(mode % 4);
        c.importance_sampling_level = (GrpoIsLevel)((mode / 4) % 2);
        c.beta = (mode / 8) % 2 ? 0.04 : 0.0;
        int extra = mode / 16; /* 0 plain, 1 IS token_truncate + delta, 2 IS sequence_mask */
        c.epsilon_high = 0.28;
        c.mask_truncated_completions = 1;
        c.max_completion_length = 6;
        if (extra == 1) c.vllm_importance_sampling_mode = GRPO_VIS_TOKEN_TRUNCATE, c.delta = 1.3;
        double x[B * T];
        memcpy(x, lp, sizeof x);
        GrpoSeq seq[B];
        for (int b = 0, o = 0; b < B; o += lens[b], b++)
            seq[b] = (GrpoSeq){lens[b], x + o, old + o, ref + o, extra ? samp + o : NULL,
                               adv[b], b == 3, b == 0 && mode % 3 == 0 ? mask0 : NULL};
        int n = 0;
        for (int b = 0; b < B; b++) n += lens[b];
        double d[B * T], dd[B * T];
        GrpoLossResult res;
        SrError err;
        CHECK(grpo_loss(&c, seq, B, d, &res, &err) == 0);
        for (int i = 0; i < n; i++) {
            double h = 1e-6, keep = x[i];
            x[i] = keep + h;
            grpo_loss(&c, seq, B, dd, &res, &err);
            double up = res.loss;
            x[i] = keep - h;
            grpo_loss(&c, seq, B, dd, &res, &err);
            double dn = res.loss;
            x[i] = keep;
            double fd = (up - dn) / (2 * h);
            runs++;
            if (fabs(fd - d[i]) > 1e-6 * (1 + fabs(fd))) {
                if (fails++ < 5)
                    fprintf(stderr, "mode %d token %d: analytic %.9g, finite difference %.9g\n",
                            mode, i, d[i], fd);
            }
        }
    }
    CHECKF(fails == 0, "%d of %d derivatives off", fails, runs);
}

/* the model pieces the loss relies on: log-probs at a temperature are log_softmax(logits / T),
 * and weights given after the forward give the same gradient as weights given before it */
static void check_model_pieces(void) {
    SrError err;
    SrBackend be;
    CHECK(sr_backend_init(&be, "cpu", 0, &err) == 0);
    Qwen2Model m = {0};
    if (qwen2_load(&m, sr_test_fixture("grpo/model"), &be, &err)) {
        CHECKF(0, "%s", err.msg);
        sr_backend_free(&be);
        return;
    }
    enum { N = 9 };
    int32_t ids[N] = {5, 9, 14, 3, 22, 7, 30, 11, 4}, pos[N] = {0, 1, 2, 3, 4, 0, 1, 2, 3};
    int32_t tgt[N] = {9, 14, -1, 22, 7, 30, 11, 4, 2};
    float w[N] = {0.5f, -1.0f, 0.0f, 2.0f, 0.25f, 1.0f, -0.5f, 0.75f, 1.5f};
    int V = m.cfg.vocab_size;
    float *logits = malloc((size_t)N * V * sizeof(float)), lp[N];
    CHECK(qwen2_logits(&m, ids, pos, N, logits, &err) == 0);
    m.logit_temperature = 0.7f;
    CHECK(qwen2_forward(&m, ids, pos, tgt, NULL, N, NULL, lp, &err) == 0);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        if (tgt[i] < 0) continue;
        double mx = -INFINITY, z = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, logits[(size_t)i * V + v] / 0.7);
        for (int v = 0; v < V; v++) z += exp(logits[(size_t)i * V + v] / 0.7 - mx);
        double want = logits[(size_t)i * V + tgt[i]] / 0.7 - mx - log(z);
        worst = fmax(worst, fabs(lp[i] - want));
    }
    CHECKF(worst < 1e-5, "log-prob at T = 0.7 off by %g", worst);
    qwen2_zero_grad(&m);
    CHECK(qwen2_backward_weights(&m, w, 3.0, &err) == 0);
    size_t n = m.total_numel;
    float *g1 = malloc(n * sizeof(float));
    memcpy(g1, m.grads, n * sizeof(float));
    qwen2_zero_grad(&m);
    CHECK(qwen2_forward_backward_norm(&m, ids, pos, tgt, w, N, 3.0, NULL, NULL, &err) == 0);
    double e = sr_rel_err(g1, (const float *)m.grads, n);
    CHECKF(e < 1e-6, "weights after the forward: gradient off by %g relative", e);
    /* and the temperature reaches the gradient: at T = 1 it differs */
    m.logit_temperature = 1.0f;
    qwen2_zero_grad(&m);
    CHECK(qwen2_forward_backward_norm(&m, ids, pos, tgt, w, N, 3.0, NULL, NULL, &err) == 0);
    CHECK(sr_rel_err(g1, (const float *)m.grads, n) > 1e-3);
    free(g1);
    free(logits);
    qwen2_free(&m);
    sr_backend_free(&be);

    /* split rollouts: the small model's sampled tokens are in the loss, <bigmodel> included */
    const char owner[] = "ssbbsssbs";
    float lps[9] = {-1, -2, -1, -1, NAN, -1, -3, -1, NAN};
    uint8_t mask[9];
    grpo_split_loss_mask(owner, lps, 9, mask);
    const uint8_t want[9] = {1, 1, 0, 0, 0, 1, 1, 0, 0};
    CHECK(memcmp(mask, want, 9) == 0);
}

int main(void) {
    check_model_pieces();
    check_advantages();
    check_dloss();
    check_parity();
    return sr_test_done();
}
