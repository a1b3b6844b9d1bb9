/*
 * Loading and saving a Qwen2ForCausalLM as a Hugging Face model directory:
 * config.json + model.safetensors (or shards with model.safetensors.index.json).
 *
 * Load is strict, because a silently half-loaded model trains into nonsense: every parameter
 * the config implies must be present with exactly that shape, and every tensor in the files
 * must be one of them. Allowed exceptions, as HF allows them: lm_head.weight may be absent
 * when the embeddings are tied (and, if present in a tied checkpoint, must equal the
 * embedding), and the rotary "inv_freq" buffers some old exports carry are ignored.
 * Save writes what save_pretrained writes: no lm_head.weight when tied.
 */
#include "model_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/dtype.h"
#include "../common/fileio.h"
#include "../common/safetensors.h"

static int shape_eq(const StTensor *t, const ParamInfo *p) {
    if (t->ndim != p->ndim) return 0;
    for (int d = 0; d < p->ndim; d++)
        if (t->shape[d] != p->shape[d]) return 0;
    return 1;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int qwen2_load(Qwen2Model *m, const char *dir, SrBackend *be, SrError *err) {
    memset(m, 0, sizeof *m);
    char *path = sr_path_join(dir, "config.json");
    Qwen2Config cfg;
    int rc = qwen2_config_load(&cfg, path, err);
    if (rc == 0) {
        rc = qwen2_build(m, &cfg, be, err);
        qwen2_config_free(&cfg);
        if (rc) sr_fail_prefix(err, "%s", path);
    }
    free(path);
    if (rc) return -1;

    StModel st;
    if (st_model_open(&st, dir, err)) {
        qwen2_free(m);
        return -1;
    }
    size_t maxn = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->info[i].numel > maxn) maxn = m->info[i].numel;
    float *buf = sr_malloc(maxn * sizeof(float));
    size_t asz = sr_act_size(be);
    rc = -1;

    /* every parameter, with its exact shape */
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->info[i];
        const char *file = NULL;
        const StTensor *t = st_model_find(&st, p->name, &file);
        if (!t) {
            sr_fail(err, "%s: tensor '%s' is missing (config.json implies it)", dir, p->name);
            goto done;
        }
        if (!shape_eq(t, p)) {
            char got[128], want[128];
            shape_str(got, sizeof got, t->ndim, t->shape);
            shape_str(want, sizeof want, p->ndim, p->shape);
            sr_fail(err, "%s: tensor '%s' has shape %s, config.json implies %s", file, p->name,
                    got, want);
            goto done;
        }
        if (st_tensor_to_f32(t, buf, err)) {
            sr_fail_prefix(err, "%s", file);
            goto done;
        }
        be->ops->upload_act(be, (char *)m->params + p->offset * asz, buf, p->numel);
    }

    /* nothing else */
    for (int f = 0; f < st.n_files; f++) {
        const SafeTensors *sf = &st.files[f];
        for (int j = 0; j < sf->n_tensors; j++) {
            const StTensor *t = &sf->tensors[j];
            if (qwen2_param(m, t->name) || ends_with(t->name, "rotary_emb.inv_freq")) continue;
            if (m->cfg.tie_word_embeddings && strcmp(t->name, "lm_head.weight") == 0) {
                /* a tied checkpoint that stored the head anyway: it must be the embedding */
                const ParamInfo *e = qwen2_param(m, "model.embed_tokens.weight");
                float *emb = sr_malloc(e->numel * sizeof(float));
                int same = shape_eq(t, e) && st_tensor_to_f32(t, buf, NULL) == 0;
                if (same) {
                    be->ops->download_act(be, emb, m->embed, e->numel);
                    same = memcmp(emb, buf, e->numel * sizeof(float)) == 0;
                }
                free(emb);
                if (same) continue;
                sr_fail(err, "%s: tensor 'lm_head.weight' differs from "
                        "'model.embed_tokens.weight' but config.json says "
                        "tie_word_embeddings = true", sf->path);
                goto done;
            }
            sr_fail(err, "%s: unexpected tensor '%s' (not a parameter of the Qwen2ForCausalLM "
                    "that config.json describes)", sf->path, t->name);
            goto done;
        }
    }
    rc = 0;
done:
    free(buf);
    st_model_close(&st);
    if (rc) qwen2_free(m);
    return rc;
}

int qwen2_save(const Qwen2Model *m, const char *dir, int st_dtype, SrError *err) {
    StDType dt = (StDType)st_dtype;
    if (dt != ST_F32 && dt != ST_BF16 && dt != ST_F16)
        return sr_fail(err, "%s: qwen2_save: dtype must be F32, BF16 or F16 (got %d)", dir,
                       st_dtype);
    if (sr_mkdir_p(dir, err)) return -1;

    char *path = sr_path_join(dir, "config.json");
    Qwen2Config cfg = m->cfg; /* shallow: raw_json stays the model's */
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "%s",
             dt == ST_F32 ? "float32" : dt == ST_BF16 ? "bfloat16" : "float16");
    int crc = qwen2_config_save(&cfg, path, err);
    free(path);
    if (crc) return -1;

    size_t n = m->total_numel;
    float *host = sr_malloc(n * sizeof(float));
    m->be->ops->download_act(m->be, host, m->params, n);
    uint16_t *half = NULL;
    if (dt != ST_F32) {
        half = sr_malloc(n * sizeof(uint16_t));
        for (size_t i = 0; i < n; i++)
            half[i] = dt == ST_BF16 ? sr_f32_to_bf16(host[i]) : sr_f32_to_f16(host[i]);
    }
    StWriteTensor *t = sr_calloc((size_t)m->n_params, sizeof(StWriteTensor));
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->info[i];
        t[i].name = p->name;
        t[i].dtype = dt;
        t[i].ndim = p->ndim;
        t[i].shape[0] = p->shape[0];
        t[i].shape[1] = p->shape[1];
        t[i].data = half ? (const void *)(half + p->offset) : (const void *)(host + p->offset);
    }
    int rc = st_model_save(dir, t, m->n_params, 0, err);
    free(t);
    free(half);
    free(host);
    return rc;
}
