/*
 * The model against Hugging Face transformers (fixtures made by scripts/make_model_golden.py):
 * logits, loss, per-token log-probs and every parameter gradient, for
 *   A: tied embeddings, Hq = Hkv, one document, F32 weights;
 *   B: untied, GQA (Hq = 4 Hkv), explicit head_dim, three PACKED documents, BF16 weights.
 * Then: per-token loss weights, gradient accumulation, lm_head chunking, save -> reload
 * round trips (F32 and BF16), and strict loading (missing / misshapen / unexpected tensors).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/safetensors.h"
#include "harness.h"
#include "model/model.h"

typedef struct Golden {
    SafeTensors st;
    int N, V;
    int32_t *ids, *pos, *targets;
    float *logits, *logprob, loss;
} Golden;

static float *tensor_f32(const SafeTensors *st, const char *name, size_t *numel) {
    const StTensor *t = safetensors_find(st, name);
    if (!t) return NULL;
    float *x = malloc(t->numel * sizeof(float));
    SrError err;
    if (st_tensor_to_f32(t, x, &err)) {
        free(x);
        return NULL;
    }
    if (numel) *numel = t->numel;
    return x;
}

static int32_t *tensor_i32(const SafeTensors *st, const char *name, int *n) {
    const StTensor *t = safetensors_find(st, name);
    if (!t || t->dtype != ST_I32) return NULL;
    int32_t *x = malloc(t->nbytes);
    memcpy(x, t->data, t->nbytes);
    *n = (int)t->numel;
    return x;
}

static int golden_open(Golden *g, const char *dir) {
    char path[1100];
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    SrError err;
    memset(g, 0, sizeof *g);
    if (safetensors_open(&g->st, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    int n1, n2, n3;
    g->ids = tensor_i32(&g->st, "input_ids", &n1);
    g->pos = tensor_i32(&g->st, "position_ids", &n2);
    g->targets = tensor_i32(&g->st, "targets", &n3);
    size_t nl;
    g->logits = tensor_f32(&g->st, "logits", &nl);
    g->logprob = tensor_f32(&g->st, "logprob", NULL);
    float *loss = tensor_f32(&g->st, "loss", NULL);
    if (!g->ids || !g->pos || !g->targets || !g->logits || !g->logprob || !loss) return -1;
    g->loss = loss[0];
    free(loss);
    g->N = n1;
    g->V = (int)(nl / (size_t)n1);
    return (n1 == n2 && n2 == n3) ? 0 : -1;
}

static void golden_close(Golden *g) {
    free(g->ids);
    free(g->pos);
    free(g->targets);
    free(g->logits);
    free(g->logprob);
    safetensors_close(&g->st);
}

static float *download_params(const Qwen2Model *m, void *buf) {
    float *x = malloc(m->total_numel * sizeof(float));
    m->be->ops->download_act(m->be, x, buf, m->total_numel);
    return x;
}

/* compares every parameter gradient with grad.<name>; returns the worst relative error */
static double check_grads(const Qwen2Model *m, const Golden *g, double scale, const char *tag) {
    float *grads = download_params(m, m->grads);
    double worst = 0;
    const char *worst_name = "";
    int missing = 0;
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->info[i];
        char name[128];
        snprintf(name, sizeof name, "grad.%s", p->name);
        size_t n = 0;
        float *ref = tensor_f32(&g->st, name, &n);
        if (!ref || n != p->numel) {
            missing++;
            free(ref);
            continue;
        }
        if (scale != 1.0)
            for (size_t j = 0; j < n; j++) ref[j] = (float)(ref[j] * scale);
        double e = sr_rel_err(grads + p->offset, ref, n);
        CHECKF(e < 1e-3, "%s: gradient of %s: relative error %.3g", tag, p->name, e);
        if (e > worst) {
            worst = e;
            worst_name = p->name;
        }
        free(ref);
    }
    CHECKF(missing == 0, "%s: %d gradients missing from the golden file", tag, missing);
    printf("  %s: worst parameter-gradient rel err %.3g (%s)\n", tag, worst, worst_name);
    free(grads);
    return worst;
}

static void parity(const char *cfg_name, int lm_chunk, SrBackend *be) {
    char rel[64];
    snprintf(rel, sizeof rel, "model/%s", cfg_name);
    const char *dir = sr_test_fixture(rel);
    char dirbuf[1024];
    snprintf(dirbuf, sizeof dirbuf, "%s", dir);
    Golden g;
    CHECKF(golden_open(&g, dirbuf) == 0, "cannot read %s/golden.safetensors", dirbuf);
    Qwen2Model m;
    SrError err = {{0}};
    int rc = qwen2_load(&m, dirbuf, be, &err);
    CHECKF(rc == 0, "qwen2_load %s: %s", dirbuf, err.msg);
    if (rc) return;
    m.lm_chunk = lm_chunk;
    int N = g.N, V = g.V;
    CHECK(V == m.cfg.vocab_size);
    printf("config %s: N=%d V=%d tied=%d Hq=%d Hkv=%d D=%d lm_chunk=%d\n", cfg_name, N, V,
           m.cfg.tie_word_embeddings, m.cfg.num_attention_heads, m.cfg.num_key_value_heads,
           m.cfg.head_dim, lm_chunk);

    /* logits */
    float *logits = malloc((size_t)N * V * sizeof(float));
    CHECK(qwen2_logits(&m, g.ids, g.pos, N, logits, &err) == 0);
    double e_logits = sr_rel_err(logits, g.logits, (size_t)N * V);
    printf("  logits rel err %.3g\n", e_logits);
    CHECKF(e_logits < 1e-4, "%s logits rel err %.3g", cfg_name, e_logits);

    /* loss, log-probs, gradients */
    float loss = 0, *lp = malloc((size_t)N * sizeof(float));
    CHECK(qwen2_forward(&m, g.ids, g.pos, g.targets, NULL, N, &loss, lp, &err) == 0);
    double dl = fabs((double)loss - g.loss);
    printf("  loss %.7f (ref %.7f, diff %.3g)\n", loss, g.loss, dl);
    CHECKF(dl < 1e-5 * (1 + fabs(g.loss)), "%s loss %.7f vs %.7f", cfg_name, loss, g.loss);
    double e_lp = sr_rel_err(lp, g.logprob, (size_t)N);
    CHECKF(e_lp < 1e-5, "%s logprob rel err %.3g", cfg_name, e_lp);
    for (int i = 0; i < N; i++)
        if (g.targets[i] < 0) CHECKF(lp[i] == 0.0f, "logprob[%d] = %g for a masked token", i, lp[i]);
    qwen2_zero_grad(&m);
    CHECK(qwen2_backward(&m, &err) == 0);
    check_grads(&m, &g, 1.0, cfg_name);

    /* accumulation: a second backward of the same forward doubles every gradient */
    CHECK(qwen2_backward(&m, &err) == 0);
    check_grads(&m, &g, 2.0, "accumulated x2");

    /* the fused training step (lm_head backward inside the forward) gives the same loss,
     * log-probs and gradients */
    {
        float loss_f = 0, *lp_f = malloc((size_t)N * sizeof(float));
        qwen2_zero_grad(&m);
        CHECK(qwen2_forward_backward(&m, g.ids, g.pos, g.targets, NULL, N, &loss_f, lp_f, &err) == 0);
        CHECKF(fabs((double)loss_f - loss) <= 1e-6 * (1 + fabs(loss)), "fused loss %.7f vs %.7f", loss_f, loss);
        CHECK(sr_rel_err(lp_f, lp, (size_t)N) < 1e-6);
        check_grads(&m, &g, 1.0, "fused forward_backward");
        /* and a backward after it recomputes the head: gradients double */
        CHECK(qwen2_backward(&m, &err) == 0);
        check_grads(&m, &g, 2.0, "fused + backward");
        free(lp_f);
    }

    /* per-token weights: loss = -sum w_i logprob_i / #targets, gradient scales per token;
     * weights 0 on the first half and 1 on the rest equal a forward with targets masked */
    float *w = malloc((size_t)N * sizeof(float));
    double ref = 0;
    int nv = 0;
    for (int i = 0; i < N; i++) {
        w[i] = 0.25f + 0.125f * (float)(i % 7);
        if (g.targets[i] >= 0) {
            ref -= w[i] * (double)g.logprob[i];
            nv++;
        }
    }
    ref /= nv;
    CHECK(qwen2_forward(&m, g.ids, g.pos, g.targets, w, N, &loss, NULL, &err) == 0);
    CHECKF(fabs(loss - ref) < 1e-5 * (1 + fabs(ref)), "weighted loss %.7f vs %.7f", loss, ref);
    {
        int32_t *t2 = malloc((size_t)N * sizeof(int32_t));
        int half = N / 2;
        for (int i = 0; i < N; i++) {
            w[i] = i < half ? 0.0f : 1.0f;
            t2[i] = i < half ? -1 : g.targets[i];
        }
        /* masked forward: grads and loss scaled by n_valid(masked) / n_valid(all) */
        qwen2_zero_grad(&m);
        float l1, l2;
        CHECK(qwen2_forward(&m, g.ids, g.pos, t2, NULL, N, &l1, NULL, &err) == 0);
        CHECK(qwen2_backward(&m, &err) == 0);
        float *ga = download_params(&m, m.grads);
        int nv2 = 0;
        for (int i = 0; i < N; i++) nv2 += t2[i] >= 0;
        qwen2_zero_grad(&m);
        CHECK(qwen2_forward(&m, g.ids, g.pos, g.targets, w, N, &l2, NULL, &err) == 0);
        CHECK(qwen2_backward(&m, &err) == 0);
        float *gb = download_params(&m, m.grads);
        double s = (double)nv2 / nv;
        CHECKF(fabs(l2 - l1 * s) < 1e-6, "0/1 weights loss %.7f vs masked %.7f", l2, l1 * s);
        for (size_t i = 0; i < m.total_numel; i++) ga[i] = (float)(ga[i] * s);
        double e = sr_rel_err(gb, ga, m.total_numel);
        CHECKF(e < 1e-5, "0/1 weights gradient vs masked targets: rel err %.3g", e);
        free(ga);
        free(gb);
        free(t2);
    }

    free(w);
    free(lp);
    free(logits);
    qwen2_free(&m);
    golden_close(&g);
}

/* save (F32 and BF16) -> reload: identical parameters and config */
static void round_trip(const char *cfg_name, int dtype, SrBackend *be) {
    char rel[64], out[64];
    snprintf(rel, sizeof rel, "model/%s", cfg_name);
    const char *dname = dtype == ST_F32 ? "f32" : dtype == ST_BF16 ? "bf16" : "f16";
    snprintf(out, sizeof out, "export_%s_%s", cfg_name, dname);
    char src[1024], dst[1024];
    snprintf(src, sizeof src, "%s", sr_test_fixture(rel));
    snprintf(dst, sizeof dst, "%s", sr_test_tmpdir(out));
    SrError err = {{0}};
    Qwen2Model a, b;
    if (qwen2_load(&a, src, be, &err)) {
        CHECKF(0, "load %s: %s", src, err.msg);
        return;
    }
    CHECKF(qwen2_save(&a, dst, dtype, &err) == 0, "save %s: %s", dst, err.msg);
    CHECKF(qwen2_load(&b, dst, be, &err) == 0, "reload %s: %s", dst, err.msg);
    CHECK(b.n_params == a.n_params && b.total_numel == a.total_numel);
    CHECK(b.cfg.tie_word_embeddings == a.cfg.tie_word_embeddings);
    CHECK(b.cfg.rope_theta == a.cfg.rope_theta && b.cfg.head_dim == a.cfg.head_dim);
    CHECK(b.cfg.rms_norm_eps == a.cfg.rms_norm_eps);
    float *pa = download_params(&a, a.params), *pb = download_params(&b, b.params);
    /* A's weights are arbitrary fp32, so a 16-bit save rounds them; B's are bf16 already
     * (F16 rounds them too: its subnormals drop bits of the smallest ones) */
    int exact = dtype == ST_F32 || (dtype == ST_BF16 && strcmp(cfg_name, "B") == 0);
    double e = sr_rel_err(pb, pa, a.total_numel);
    if (exact)
        CHECKF(memcmp(pa, pb, a.total_numel * sizeof(float)) == 0,
               "%s: reloaded parameters differ (rel err %.3g)", out, e);
    else
        CHECKF(e < (dtype == ST_BF16 ? 4e-3 : 1e-3), "%s: round trip rel err %.3g", out, e);
    /* a tied model writes no lm_head.weight, as save_pretrained does */
    StModel st;
    if (st_model_open(&st, dst, &err) == 0) {
        CHECK((st_model_find(&st, "lm_head.weight", NULL) != NULL) == !a.cfg.tie_word_embeddings);
        CHECK(st_model_count(&st) == a.n_params);
        const StTensor *t = st_model_find(&st, "model.norm.weight", NULL);
        CHECK(t && (int)t->dtype == dtype);
        st_model_close(&st);
    }
    printf("  saved %s (%s) and reloaded it: %s (rel err %.3g)\n", dst, dname,
           exact ? "bit-identical" : "rounded", e);
    free(pa);
    free(pb);
    qwen2_free(&a);
    qwen2_free(&b);
}

/* writes a model dir with fixture cfg's config.json and tensors, less `drop`, with
 * `reshape` transposed, plus a tensor named `extra` (a copy of tensor `extra_src`, or of the
 * last one); loads it and expects an error naming `expect` (or success when expect is NULL) */
static void edited_dir(const char *name, SrBackend *be, const char *cfg_name, const char *drop,
                       const char *reshape, const char *extra, const char *extra_src,
                       const char *expect) {
    char src[1024], dst[1024], rel[64];
    snprintf(rel, sizeof rel, "model/%s", cfg_name);
    snprintf(src, sizeof src, "%s", sr_test_fixture(rel));
    snprintf(dst, sizeof dst, "%s", sr_test_tmpdir(name));
    char p1[1200], p2[1200];
    snprintf(p1, sizeof p1, "%s/config.json", src);
    snprintf(p2, sizeof p2, "%s/config.json", dst);
    size_t len;
    char *cfg = sr_test_read_file(p1, &len);
    CHECK(cfg && sr_test_write_file(p2, cfg, len) == 0);
    free(cfg);
    SrError err = {{0}};
    StModel st;
    CHECK(st_model_open(&st, src, &err) == 0);
    const SafeTensors *f = &st.files[0];
    StWriteTensor *t = calloc((size_t)f->n_tensors + 1, sizeof *t);
    int n = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const StTensor *s = &f->tensors[i];
        if (drop && strcmp(s->name, drop) == 0) continue;
        t[n].name = s->name;
        t[n].dtype = s->dtype;
        t[n].ndim = s->ndim;
        memcpy(t[n].shape, s->shape, sizeof s->shape);
        t[n].data = s->data;
        if (reshape && strcmp(s->name, reshape) == 0 && s->ndim == 2) { /* same bytes, transposed shape */
            t[n].shape[0] = s->shape[1];
            t[n].shape[1] = s->shape[0];
        }
        n++;
    }
    if (extra) {
        t[n] = t[n - 1];
        for (int i = 0; extra_src && i < n; i++)
            if (strcmp(t[i].name, extra_src) == 0) t[n] = t[i];
        t[n].name = extra;
        n++;
    }
    CHECK(st_model_save(dst, t, n, 0, &err) == 0);
    free(t);
    st_model_close(&st);
    Qwen2Model m;
    int rc = qwen2_load(&m, dst, be, &err);
    if (!expect) {
        CHECKF(rc == 0, "%s: loading should work: %s", name, err.msg);
        if (rc == 0) qwen2_free(&m);
        return;
    }
    CHECKF(rc == -1, "%s: loading should fail", name);
    if (rc == 0) {
        qwen2_free(&m);
        return;
    }
    CHECKF(strstr(err.msg, expect) != NULL, "%s: error '%s' should mention '%s'", name, err.msg,
           expect);
    CHECKF(strchr(err.msg, '\n') == NULL, "one-line error: %s", err.msg);
    printf("  %s -> %s\n", name, err.msg);
}

int main(void) {
    SrBackend be;
    SrError err;
    if (sr_backend_init(&be, "cpu", 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    parity("A", 256, &be);  /* one lm_head chunk */
    parity("B", 7, &be);    /* N = 30 in chunks of 7 */
    parity("A", 5, &be);

    round_trip("A", ST_F32, &be);
    round_trip("B", ST_BF16, &be);
    round_trip("B", ST_F32, &be);
    round_trip("A", ST_BF16, &be);
    round_trip("B", ST_F16, &be);
    round_trip("A", ST_F16, &be);

    const char *up1 = "model.layers.1.mlp.up_proj.weight";
    const char *o0 = "model.layers.0.self_attn.o_proj.weight";
    edited_dir("bad_missing", &be, "B", up1, NULL, NULL, NULL, up1);
    edited_dir("bad_shape", &be, "B", NULL, o0, NULL, NULL, o0);
    edited_dir("bad_extra", &be, "B", NULL, NULL, "model.layers.2.mlp.up_proj.weight", NULL,
               "model.layers.2.mlp.up_proj.weight");
    edited_dir("bad_no_head", &be, "B", "lm_head.weight", NULL, NULL, NULL, "lm_head.weight");
    /* rotary inv_freq buffers of old exports are ignored */
    edited_dir("inv_freq_ok", &be, "B", NULL, NULL, "model.layers.0.self_attn.rotary_emb.inv_freq",
               NULL, NULL);
    /* tied: a stored lm_head.weight must be the embedding */
    edited_dir("tied_head_same", &be, "A", NULL, NULL, "lm_head.weight",
               "model.embed_tokens.weight", NULL);
    edited_dir("tied_head_differs", &be, "A", NULL, NULL, "lm_head.weight", up1,
               "lm_head.weight");
    sr_backend_free(&be);
    return sr_test_done();
}
