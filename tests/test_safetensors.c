/*
 * safetensors reader/writer and sharded model directories (common/safetensors.c).
 *
 *   golden     tests/fixtures/formats/golden.safetensors (written by safetensors.torch) read
 *              and converted to fp32 bit-exactly against golden_expected.json (torch's values)
 *   tiny llama the shipped HF checkpoint: names in header order, dtypes, shapes, sample values
 *              and sums against tiny_llama_expected.json; re-saved by C it is byte-identical
 *   writer     files and shards written here, reopened and compared; the same files were
 *              checked once with safetensors/torch/transformers by
 *              `scripts/make_formats_golden.py verify-c build/test_tmp/test_safetensors`
 *   bad input  every malformed file fails with one line that starts with the file's path and
 *              names the problem (run under ASan: no crash, no leak)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/dtype.h"
#include "common/fileio.h"
#include "common/safetensors.h"
#include "harness.h"

static cJSON *load_json(const char *path) {
    char *text = sr_test_read_file(path, NULL);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", path);
        return NULL;
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

static int hexval(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

static int shape_is(const StTensor *t, const cJSON *shape) {
    if (cJSON_GetArraySize(shape) != t->ndim) return 0;
    int i = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++)
        if ((int64_t)d->valuedouble != t->shape[i]) return 0;
    return 1;
}

/* ---- golden file written by safetensors.torch ------------------------------------------- */
static void test_golden(void) {
    SafeTensors st;
    SrError err;
    cJSON *exp = load_json(sr_test_fixture("formats/golden_expected.json"));
    CHECK(exp != NULL);
    if (!exp) return;
    int rc = safetensors_open(&st, sr_test_fixture("formats/golden.safetensors"), &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc != 0) {
        cJSON_Delete(exp);
        return;
    }
    const cJSON *tensors = cJSON_GetObjectItem(exp, "tensors");
    CHECK(st.n_tensors == cJSON_GetArraySize(tensors));
    cJSON *meta = cJSON_Parse(st.metadata_json ? st.metadata_json : "null");
    CHECKF(cJSON_Compare(meta, cJSON_GetObjectItem(exp, "metadata"), 1), "metadata %s", st.metadata_json);
    cJSON_Delete(meta);
    int n_float = 0, n_scalar = 0, n_empty = 0;
    for (const cJSON *e = tensors->child; e; e = e->next) {
        const StTensor *t = safetensors_find(&st, e->string);
        CHECKF(t != NULL, "tensor %s missing", e->string);
        if (!t) continue;
        CHECKF(strcmp(st_dtype_name(t->dtype), cJSON_GetObjectItem(e, "dtype")->valuestring) == 0, "%s dtype %s",
               e->string, st_dtype_name(t->dtype));
        CHECKF(shape_is(t, cJSON_GetObjectItem(e, "shape")), "%s shape", e->string);
        if (t->ndim == 0) {
            n_scalar++;
            CHECK(t->numel == 1);
        }
        if (t->numel == 0) n_empty++;
        /* raw bytes */
        const char *hex = cJSON_GetObjectItem(e, "raw_hex")->valuestring;
        CHECKF(strlen(hex) == 2 * t->nbytes, "%s nbytes %zu", e->string, t->nbytes);
        int raw_ok = strlen(hex) == 2 * t->nbytes;
        for (size_t i = 0; raw_ok && i < t->nbytes; i++)
            raw_ok = ((const unsigned char *)t->data)[i] == (hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
        CHECKF(raw_ok, "%s raw bytes differ", e->string);
        /* fp32 conversion: bit-exact against torch's .float() */
        float *f = malloc((t->numel ? t->numel : 1) * sizeof(float));
        const cJSON *bits = cJSON_GetObjectItem(e, "f32_bits");
        SrError cerr;
        int crc = st_tensor_to_f32(t, f, &cerr);
        if (bits) {
            n_float++;
            CHECKF(crc == 0, "%s: %s", e->string, cerr.msg);
            CHECK((size_t)cJSON_GetArraySize(bits) == t->numel);
            int i = 0, bad = 0;
            for (const cJSON *b = bits->child; b && crc == 0; b = b->next, i++) {
                int32_t got;
                memcpy(&got, &f[i], 4);
                if (got != (int32_t)b->valuedouble) bad++;
            }
            CHECKF(bad == 0, "%s: %d values differ from torch", e->string, bad);
        } else {
            CHECKF(crc == -1 && strstr(cerr.msg, e->string) && strstr(cerr.msg, st_dtype_name(t->dtype)),
                   "%s: converting a non-float dtype should fail naming it", e->string);
        }
        free(f);
    }
    CHECK(n_float == 12 && n_scalar == 3 && n_empty == 3);
    /* every dtype of the enum appears */
    for (int d = 0; d <= ST_BOOL; d++) {
        int seen = 0;
        for (int i = 0; i < st.n_tensors; i++) seen |= st.tensors[i].dtype == (StDType)d;
        CHECKF(seen, "dtype %s not covered", st_dtype_name((StDType)d));
        StDType back;
        CHECK(st_dtype_parse(st_dtype_name((StDType)d), &back) == 0 && back == (StDType)d);
    }
    StDType dummy;
    CHECK(st_dtype_parse("F8_E4M3", &dummy) == -1);
    CHECK(safetensors_find(&st, "nope") == NULL);
    safetensors_close(&st);
    safetensors_close(&st); /* closing twice is harmless */
    cJSON_Delete(exp);
}

/* ---- the shipped HF checkpoint ---------------------------------------------------------- */
static void test_tiny_llama(const char *tmp) {
    StModel m;
    SrError err;
    cJSON *exp = load_json(sr_test_fixture("formats/tiny_llama_expected.json"));
    CHECK(exp != NULL);
    if (!exp) return;
    int rc = st_model_open(&m, sr_test_data("tiny_llama_verl"), &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc != 0) {
        cJSON_Delete(exp);
        return;
    }
    const cJSON *tensors = cJSON_GetObjectItem(exp, "tensors");
    CHECK(m.n_files == 1 && st_model_count(&m) == 39 && cJSON_GetArraySize(tensors) == 39);
    CHECK(m.files[0].metadata_json && strcmp(m.files[0].metadata_json, "{\"format\":\"pt\"}") == 0);
    int i = 0;
    for (const cJSON *e = tensors->child; e && i < m.files[0].n_tensors; e = e->next, i++) {
        const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
        const StTensor *t = &m.files[0].tensors[i];
        CHECKF(strcmp(t->name, name) == 0, "header order: #%d is %s, expected %s", i, t->name, name);
        const char *file;
        const StTensor *ft = st_model_find(&m, name, &file);
        CHECK(ft == t && file && strstr(file, "model.safetensors"));
        CHECK(strcmp(st_dtype_name(t->dtype), cJSON_GetObjectItem(e, "dtype")->valuestring) == 0);
        CHECKF(shape_is(t, cJSON_GetObjectItem(e, "shape")), "%s shape", name);
        float *f = malloc(t->numel * sizeof(float));
        CHECK(st_tensor_to_f32(t, f, &err) == 0);
        const cJSON *idx = cJSON_GetObjectItem(e, "sample_index")->child;
        const cJSON *bits = cJSON_GetObjectItem(e, "sample_f32_bits")->child;
        for (; idx && bits; idx = idx->next, bits = bits->next) {
            int32_t got;
            memcpy(&got, &f[(size_t)idx->valuedouble], 4);
            CHECKF(got == (int32_t)bits->valuedouble, "%s[%d]", name, (int)idx->valuedouble);
        }
        double sum = 0, want = cJSON_GetObjectItem(e, "sum_f64")->valuedouble;
        for (size_t k = 0; k < t->numel; k++) sum += f[k];
        CHECKF(fabs(sum - want) <= 1e-9 * (1 + fabs(want)), "%s sum %.17g vs %.17g", name, sum, want);
        free(f);
    }
    CHECK(st_model_find(&m, "model.layers.4.mlp.up_proj.weight", NULL) == NULL);
    const StTensor *down = st_model_find(&m, "model.layers.3.mlp.down_proj.weight", NULL);
    CHECK(down && down->dtype == ST_BF16 && down->ndim == 2 && down->shape[0] == 128 && down->shape[1] == 344);

    /* re-save: single file (byte-identical to HF's) and shards; reopen and compare */
    int n = st_model_count(&m);
    StWriteTensor *w = calloc((size_t)n, sizeof *w);
    for (int k = 0; k < n; k++) {
        const StTensor *t = &m.files[0].tensors[k];
        w[k] = (StWriteTensor){t->name, t->dtype, t->ndim, {0}, t->data};
        memcpy(w[k].shape, t->shape, sizeof t->shape);
    }
    char *single = sr_path_join(tmp, "c_tiny_llama");
    char *sharded = sr_path_join(tmp, "c_tiny_llama_sharded");
    CHECK(st_model_save(single, w, n, 0, &err) == 0);
    char *p1 = sr_path_join(single, "model.safetensors");
    size_t la, lb;
    char *a = sr_test_read_file(p1, &la), *b = sr_test_read_file(sr_test_data("tiny_llama_verl/model.safetensors"), &lb);
    CHECKF(a && b && la == lb && memcmp(a, b, la) == 0, "C's model.safetensors is not byte-identical to HF's");
    free(a);
    free(b);
    free(p1);
    rc = st_model_save(sharded, w, n, 300000, &err);
    CHECKF(rc == 0, "%s", err.msg);
    /* transformers needs the config next to the weights (for verify-c) */
    char *cfg = sr_test_read_file(sr_test_data("tiny_llama_verl/config.json"), &la);
    char *cfg_out = sr_path_join(sharded, "config.json");
    CHECK(cfg && sr_write_file_atomic(cfg_out, cfg, la, &err) == 0);
    free(cfg);
    free(cfg_out);
    StModel m2;
    rc = st_model_open(&m2, sharded, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECKF(m2.n_files == 7, "%d shards", m2.n_files); /* greedy split of 1.59 MB at 300 kB */
        CHECK(st_model_count(&m2) == n);
        int same = 1;
        for (int k = 0; k < n; k++) {
            const StTensor *x = &m.files[0].tensors[k], *y = st_model_find(&m2, x->name, NULL);
            same &= y && y->dtype == x->dtype && y->nbytes == x->nbytes && memcmp(y->data, x->data, x->nbytes) == 0 &&
                    memcmp(y->shape, x->shape, sizeof x->shape) == 0 && y->ndim == x->ndim;
        }
        CHECK(same);
        st_model_close(&m2);
    }
    free(w);
    free(single);
    free(sharded);
    st_model_close(&m);
    cJSON_Delete(exp);
}

/* ---- writer ---------------------------------------------------------------------------- */

/* The tensors scripts/make_formats_golden.py c_written_expected() checks (keep in step). */
#define N_W 8
typedef struct WriteSet {
    float f32[12];
    uint16_t bf16[5], f16[6];
    float scalar, one;
    int32_t i32[4];
    uint8_t u8[3];
    StWriteTensor t[N_W];
} WriteSet;

static void write_set_make(WriteSet *s) {
    for (int i = 0; i < 12; i++) s->f32[i] = (float)(i - 5) * 0.375f;
    for (int i = 0; i < 5; i++) s->bf16[i] = sr_f32_to_bf16((float)(i - 2) * 1.5f);
    for (int i = 0; i < 6; i++) s->f16[i] = sr_f32_to_f16((float)i / 8.0f - 0.25f);
    s->scalar = 42.5f;
    s->one = 1.0f;
    int32_t i32[4] = {-1, 0, 7, 2147483647};
    uint8_t u8[3] = {0, 128, 255};
    memcpy(s->i32, i32, sizeof i32);
    memcpy(s->u8, u8, sizeof u8);
    /* given out of name order: the writer keeps this order, the index is sorted */
    s->t[0] = (StWriteTensor){"w.f32", ST_F32, 2, {3, 4}, s->f32};
    s->t[1] = (StWriteTensor){"w.bf16", ST_BF16, 1, {5}, s->bf16};
    s->t[2] = (StWriteTensor){"w.f16", ST_F16, 2, {2, 3}, s->f16};
    s->t[3] = (StWriteTensor){"w.scalar", ST_F32, 0, {0}, &s->scalar};
    s->t[4] = (StWriteTensor){"w.empty", ST_F32, 2, {0, 3}, NULL};
    s->t[5] = (StWriteTensor){"w.i32", ST_I32, 1, {4}, s->i32};
    s->t[6] = (StWriteTensor){"w.u8", ST_U8, 1, {3}, s->u8};
    s->t[7] = (StWriteTensor){"name \"quoted\" \\ \xc3\xbc", ST_F32, 1, {1}, &s->one};
}

static int matches_set(const StTensor *t, const StWriteTensor *w) {
    size_t nb = st_dtype_size(w->dtype);
    for (int d = 0; d < w->ndim; d++) nb *= (size_t)w->shape[d];
    return t && t->dtype == w->dtype && t->ndim == w->ndim && memcmp(t->shape, w->shape, sizeof(int64_t) * (size_t)w->ndim) == 0 &&
           t->nbytes == nb && (nb == 0 || memcmp(t->data, w->data, nb) == 0);
}

/* number of entries in dir whose name ends with suffix (or contains it, when contains=1) */
static int count_files_ex(const char *dir, const char *suffix, int contains) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    size_t ls = strlen(suffix);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (contains ? strstr(de->d_name, suffix) != NULL : (l >= ls && strcmp(de->d_name + l - ls, suffix) == 0)) n++;
    }
    closedir(d);
    return n;
}
static int count_files(const char *dir, const char *suffix) { return count_files_ex(dir, suffix, 0); }

static void test_writer(const char *tmp) {
    WriteSet s;
    SrError err;
    write_set_make(&s);
    char *p = sr_path_join(tmp, "c_written.safetensors");
    int rc = safetensors_write(p, s.t, N_W, &err);
    CHECKF(rc == 0, "%s", err.msg);
    SafeTensors st;
    rc = safetensors_open(&st, p, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(st.n_tensors == N_W);
        for (int i = 0; i < N_W; i++) {
            CHECKF(strcmp(st.tensors[i].name, s.t[i].name) == 0, "order: %s", st.tensors[i].name);
            CHECKF(matches_set(safetensors_find(&st, s.t[i].name), &s.t[i]), "%s", s.t[i].name);
        }
        CHECK(st.metadata_json && strcmp(st.metadata_json, "{\"format\":\"pt\"}") == 0);
        uint64_t hlen;
        memcpy(&hlen, st.map, 8);
        CHECK(hlen % 8 == 0 && memcmp((char *)st.map + 8, "{\"__metadata__\":{\"format\":\"pt\"},", 32) == 0);
        CHECK(((const char *)st.map)[8 + hlen - 1] == ' ' || ((const char *)st.map)[8 + hlen - 1] == '}');
        float f[12];
        CHECK(st_tensor_to_f32(safetensors_find(&st, "w.f16"), f, &err) == 0 && f[0] == -0.25f && f[5] == 0.375f);
        CHECK(st_tensor_to_f32(safetensors_find(&st, "w.bf16"), f, &err) == 0 && f[0] == -3.0f && f[4] == 3.0f);
        /* the same image from memory (what the fuzz harness reads): the same tensors */
        SafeTensors sm;
        int mrc = safetensors_open_memory(&sm, "mem", st.map, st.map_size, &err);
        CHECKF(mrc == 0, "%s", err.msg);
        if (mrc == 0) {
            CHECK(sm.n_tensors == N_W && !sm.mapped);
            for (int i = 0; i < N_W; i++) CHECKF(matches_set(safetensors_find(&sm, s.t[i].name), &s.t[i]), "mem %s", s.t[i].name);
            safetensors_close(&sm);
        }
        CHECK(safetensors_open_memory(&sm, "mem", st.map, st.map_size - 1, &err) == -1 && strncmp(err.msg, "mem: ", 5) == 0);
        safetensors_close(&st);
    }
    /* the index: a repeated tensor name keeps its last shard (Python's json, as transformers reads it) */
    {
        StIndex ix;
        const char *t = "{\"metadata\": {}, \"weight_map\": {\"a\": \"x.safetensors\", \"b\": \"y.safetensors\", "
                        "\"a\": \"y.safetensors\"}}";
        int irc = st_index_parse(&ix, t, strlen(t), "ix.json", &err);
        CHECKF(irc == 0, "%s", err.msg);
        if (irc == 0) {
            CHECK(ix.n == 2 && ix.n_files == 1 && strcmp(ix.files[0], "y.safetensors") == 0);
            st_index_free(&ix);
        }
        CHECK(st_index_parse(&ix, t, strlen(t) - 1, "ix.json", &err) == -1 && strstr(err.msg, "ix.json: ") == err.msg &&
              strstr(err.msg, "ends early"));
    }
    /* no temp files left behind */
    CHECK(count_files_ex(tmp, ".tmp.", 1) == 0);
    free(p);

    /* sharded: 40-byte shards -> several files; index written; find reports the shard */
    char *sd = sr_path_join(tmp, "c_sharded");
    rc = st_model_save(sd, s.t, N_W, 40, &err);
    CHECKF(rc == 0, "%s", err.msg);
    StModel m;
    rc = st_model_open(&m, sd, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        /* sizes 48 | 10+12+4+0 | 16+3+4: the greedy split gives 3 shards */
        CHECKF(m.n_files == 3, "%d shards", m.n_files);
        CHECK(st_model_count(&m) == N_W);
        for (int i = 0; i < N_W; i++) CHECKF(matches_set(st_model_find(&m, s.t[i].name, NULL), &s.t[i]), "%s", s.t[i].name);
        const char *file;
        st_model_find(&m, "w.f32", &file);
        CHECK(file && strstr(file, "model-00001-of-00003.safetensors"));
        st_model_find(&m, "w.u8", &file);
        CHECK(file && strstr(file, "model-00003-of-00003.safetensors"));
        st_model_close(&m);
    }
    char *idx_path = sr_path_join(sd, "model.safetensors.index.json");
    cJSON *idx = load_json(idx_path);
    CHECK(idx && cJSON_GetObjectItem(cJSON_GetObjectItem(idx, "metadata"), "total_size")->valuedouble == 48 + 10 + 12 + 4 + 0 + 16 + 3 + 4);
    CHECK(idx && cJSON_GetArraySize(cJSON_GetObjectItem(idx, "weight_map")) == N_W);
    cJSON_Delete(idx);

    /* re-saving into the same directory leaves exactly one consistent checkpoint */
    char *dd = sr_path_join(tmp, "c_resave");
    CHECK(st_model_save(dd, s.t, N_W, 40, &err) == 0);            /* 3 shards */
    CHECK(count_files(dd, "-of-00003.safetensors") == 3);
    CHECK(st_model_save(dd, s.t, N_W, 70, &err) == 0);            /* 2 shards: the 3 old ones go */
    CHECK(count_files(dd, ".safetensors") == 2 && count_files(dd, "-of-00002.safetensors") == 2);
    CHECK(st_model_save(dd, s.t, N_W, 0, &err) == 0);             /* single file: index and shards go */
    CHECK(count_files(dd, ".safetensors") == 1 && count_files(dd, ".json") == 0);
    CHECK(st_model_save(dd, s.t, N_W, 40, &err) == 0);            /* shards again: model.safetensors goes */
    CHECK(count_files(dd, ".safetensors") == 3 && count_files(dd, "index.json") == 1);
    rc = st_model_open(&m, dd, &err);
    CHECKF(rc == 0 && m.n_files == 3, "%s", rc ? err.msg : "");
    if (rc == 0) st_model_close(&m);

    /* writer errors */
    StWriteTensor dup[2] = {s.t[0], s.t[0]};
    char *bad = sr_path_join(tmp, "bad_write.safetensors");
    CHECK(safetensors_write(bad, dup, 2, &err) == -1 && strstr(err.msg, "duplicate tensor name 'w.f32'"));
    CHECK(st_model_save(dd, dup, 2, 40, &err) == -1 && strstr(err.msg, "duplicate"));
    StWriteTensor neg = {"neg", ST_F32, 1, {-1}, s.f32};
    CHECK(safetensors_write(bad, &neg, 1, &err) == -1 && strstr(err.msg, "negative"));
    StWriteTensor meta = {"__metadata__", ST_F32, 1, {1}, s.f32};
    CHECK(safetensors_write(bad, &meta, 1, &err) == -1 && strstr(err.msg, "__metadata__"));
    CHECK(!sr_file_exists(bad));
    char *nodir = sr_path_join(tmp, "no/such/dir/x.safetensors");
    CHECK(safetensors_write(nodir, s.t, N_W, &err) == -1 && strstr(err.msg, nodir) == err.msg);
    free(nodir);
    free(bad);
    free(dd);
    free(idx_path);
    free(sd);
}

/* ---- bad input ----------------------------------------------------------------------------- */

/* Writes u64 len + header + data_len zero bytes. */
static void write_st(const char *path, const char *header, size_t data_len) {
    size_t hl = strlen(header), n = 8 + hl + data_len;
    char *buf = calloc(1, n);
    uint64_t h = hl;
    memcpy(buf, &h, 8);
    memcpy(buf + 8, header, hl);
    SR_ASSERT(sr_test_write_file(path, buf, n) == 0);
    free(buf);
}

/* Opening path must fail with one line that starts with path and contains want. */
static void expect_fail(const char *path, const char *want, const char *what) {
    SafeTensors st;
    SrError err;
    strcpy(err.msg, "(no message)");
    int rc = safetensors_open(&st, path, &err);
    CHECKF(rc == -1, "%s: opened but should fail", what);
    CHECKF(strncmp(err.msg, path, strlen(path)) == 0 && strstr(err.msg, want) && !strchr(err.msg, '\n'),
           "%s: message \"%s\" should start with the path and contain \"%s\"", what, err.msg, want);
    CHECK(st.map == NULL && st.tensors == NULL && st.path == NULL); /* nothing left */
    if (rc == 0) safetensors_close(&st);
}

static void expect_model_fail(const char *dir, const char *starts, const char *want, const char *what) {
    StModel m;
    SrError err;
    strcpy(err.msg, "(no message)");
    int rc = st_model_open(&m, dir, &err);
    CHECKF(rc == -1, "%s: opened but should fail", what);
    CHECKF(strncmp(err.msg, starts, strlen(starts)) == 0 && strstr(err.msg, want) && !strchr(err.msg, '\n'),
           "%s: message \"%s\" should start with \"%s\" and contain \"%s\"", what, err.msg, starts, want);
    CHECK(m.files == NULL && m.entries == NULL);
    if (rc == 0) st_model_close(&m);
}

#define T8(name, b, e) "\"" name "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" #b "," #e "]}"

static void test_bad_input(const char *tmp) {
    char p[4096];
#define BAD(file, header, data_len, want)                         \
    do {                                                          \
        snprintf(p, sizeof p, "%s/%s", tmp, file);                \
        write_st(p, header, data_len);                            \
        expect_fail(p, want, file);                               \
    } while (0)

    snprintf(p, sizeof p, "%s/missing.safetensors", tmp);
    expect_fail(p, "cannot open", "missing file");
    snprintf(p, sizeof p, "%s/short.safetensors", tmp);
    sr_test_write_file(p, "\x05\0\0\0\0", 5);
    expect_fail(p, "too short", "file shorter than 8 bytes");
    snprintf(p, sizeof p, "%s/empty.safetensors", tmp);
    sr_test_write_file(p, "", 0);
    expect_fail(p, "too short", "empty file");
    {
        char buf[20] = {0};
        uint64_t n = 1000;
        memcpy(buf, &n, 8);
        snprintf(p, sizeof p, "%s/hlen_beyond.safetensors", tmp);
        sr_test_write_file(p, buf, sizeof buf);
        expect_fail(p, "runs past the end of the file", "header length beyond the file");
        n = (uint64_t)1 << 40;
        memcpy(buf, &n, 8);
        snprintf(p, sizeof p, "%s/hlen_huge.safetensors", tmp);
        sr_test_write_file(p, buf, sizeof buf);
        expect_fail(p, "exceeds the 100000000-byte limit", "header length above the cap");
    }
    /* the header goes through the strict JSON layer: it names truncation and trailing data */
    BAD("not_json.safetensors", "{\"a\": {\"dtype\": ", 0, "header (16 bytes): the JSON text ends early");
    BAD("not_json2.safetensors", "{\"a\": {\"dtype\" 1}}", 0, "header (18 bytes): not valid JSON at byte 15");
    BAD("json_trailing.safetensors", "{} x", 0, "trailing data after the JSON value at byte 3");
    BAD("not_object.safetensors", "[1, 2, 3]", 0, "not a JSON object");
    BAD("bad_utf8.safetensors", "{\"a\xff\": 1}", 0, "invalid UTF-8 at byte 3");
    BAD("nul_escape.safetensors", "{\"a\\u0000b\": {}}", 0, "NUL character");
    BAD("dup_metadata.safetensors", "{\"__metadata__\": {}, \"__metadata__\": {}}", 0, "duplicate \"__metadata__\"");
    {
        snprintf(p, sizeof p, "%s/nul.safetensors", tmp);
        char buf[8 + 8] = {0};
        uint64_t n = 8;
        memcpy(buf, &n, 8);
        memcpy(buf + 8, "{}\0     ", 8);
        sr_test_write_file(p, buf, sizeof buf);
        expect_fail(p, "NUL character", "NUL in header");
    }
    BAD("unknown_dtype.safetensors", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
        "tensor 'a': unknown dtype \"F8_E4M3\"");
    BAD("dtype_not_string.safetensors", "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "\"dtype\"");
    BAD("shape_strings.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,\"x\"],\"data_offsets\":[0,8]}}", 8,
        "tensor 'a': \"shape\" is not a list of integers");
    BAD("shape_fraction.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8,
        "not a list of integers");
    BAD("shape_not_list.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
        "\"shape\" is missing or not a list");
    BAD("shape_missing.safetensors", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "\"shape\" is missing");
    BAD("negative_dim.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2,2],\"data_offsets\":[0,16]}}", 16,
        "tensor 'a': negative dimension -2");
    BAD("too_many_dims.safetensors", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
        "9 dimensions");
    BAD("shape_overflow.safetensors",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "overflows");
    BAD("offsets_out_of_range.safetensors", "{" T8("a", 0, 8) "," T8("b", 8, 16) "}", 12,
        "tensor 'b': data offsets [8, 16] run past the end of the file");
    BAD("offsets_reversed.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8,
        "end before they begin");
    BAD("offsets_arity.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8,
        "\"data_offsets\" is not a pair");
    BAD("offsets_negative.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8,
        "\"data_offsets\" is not a pair of non-negative integers");
    BAD("overlap.safetensors", "{" T8("a", 0, 8) "," T8("b", 4, 12) "}", 12, "tensor 'b' at data offset 4 overlaps");
    BAD("gap.safetensors", "{" T8("a", 0, 8) "," T8("b", 12, 20) "}", 20, "gap in the data: bytes [8, 12)");
    BAD("gap_at_start.safetensors", "{" T8("a", 4, 12) "}", 12, "gap in the data: bytes [0, 4)");
    BAD("size_mismatch.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
        "tensor 'a': data offsets [0, 8] hold 8 bytes but F32 shape of 3 elements needs 12");
    BAD("duplicate.safetensors", "{" T8("a", 0, 8) "," T8("a", 8, 16) "}", 16, "duplicate tensor name 'a'");
    BAD("trailing.safetensors", "{" T8("a", 0, 8) "}", 12, "4 trailing bytes after the last tensor");
    BAD("trailing_no_tensors.safetensors", "{\"__metadata__\":{\"format\":\"pt\"}}", 4, "4 trailing bytes");
    BAD("meta_not_object.safetensors", "{\"__metadata__\":[1]," T8("a", 0, 8) "}", 8, "\"__metadata__\" is not a JSON object");
    BAD("meta_not_strings.safetensors", "{\"__metadata__\":{\"format\":1}," T8("a", 0, 8) "}", 8,
        "\"__metadata__\" value for 'format' is not a string");
    BAD("entry_not_object.safetensors", "{\"a\":[1,2]}", 0, "tensor 'a': entry is not a JSON object");
    BAD("control_name.safetensors", "{" T8("a\\nb", 0, 8) "," T8("a\\nb", 8, 16) "}", 16, "duplicate tensor name 'a?b'");
    /* a well-formed empty file is fine */
    snprintf(p, sizeof p, "%s/ok_empty.safetensors", tmp);
    write_st(p, "{}      ", 0);
    SafeTensors st;
    SrError err;
    CHECK(safetensors_open(&st, p, &err) == 0 && st.n_tensors == 0 && st.metadata_json == NULL);
    safetensors_close(&st);
    /* truncated: the golden file minus its last 3 bytes */
    {
        size_t n;
        char *g = sr_test_read_file(sr_test_fixture("formats/golden.safetensors"), &n);
        CHECK(g != NULL);
        if (g) {
            snprintf(p, sizeof p, "%s/truncated.safetensors", tmp);
            sr_test_write_file(p, g, n - 3);
            expect_fail(p, "run past the end of the file", "truncated file");
            snprintf(p, sizeof p, "%s/truncated_header.safetensors", tmp);
            sr_test_write_file(p, g, 100);
            expect_fail(p, "header length", "truncated inside the header");
            free(g);
        }
    }

    /* sharded directories */
    WriteSet s;
    write_set_make(&s);
    char d[4096], f[4200];
    snprintf(d, sizeof d, "%s/empty_dir", tmp);
    CHECK(sr_mkdir_p(d, &err) == 0);
    expect_model_fail(d, d, "no model.safetensors or model.safetensors.index.json", "empty dir");
    snprintf(d, sizeof d, "%s/missing_shard", tmp);
    CHECK(st_model_save(d, s.t, N_W, 40, &err) == 0);
    snprintf(f, sizeof f, "%s/model-00002-of-00003.safetensors", d);
    unlink(f);
    snprintf(f, sizeof f, "%s/model.safetensors.index.json", d);
    expect_model_fail(d, f, "shard 'model-00002-of-00003.safetensors': ", "missing shard");
    expect_model_fail(d, f, "cannot open", "missing shard");
    snprintf(d, sizeof d, "%s/absent_tensor", tmp);
    CHECK(st_model_save(d, s.t, N_W, 40, &err) == 0);
    snprintf(f, sizeof f, "%s/model.safetensors.index.json", d);
    {
        char *idx = sr_test_read_file(f, NULL);
        char *at = strstr(idx, "\"w.f32\": \"model-00001");
        SR_ASSERT(at);
        at[20] = '2'; /* w.f32 now mapped to shard 2, which does not hold it */
        sr_test_write_file(f, idx, strlen(idx));
        free(idx);
    }
    expect_model_fail(d, f, "tensor 'w.f32' is mapped to model-00002-of-00003.safetensors, which does not contain it",
                      "index naming a tensor absent from the shard");
    snprintf(d, sizeof d, "%s/bad_index", tmp);
    CHECK(sr_mkdir_p(d, &err) == 0);
    snprintf(f, sizeof f, "%s/model.safetensors.index.json", d);
    sr_test_write_file(f, "{\"weight_map\": [1]}", 19);
    expect_model_fail(d, f, "no \"weight_map\" object", "index without weight_map");
    sr_test_write_file(f, "{\"weight_map\": {\"a\": \"../x.safetensors\"}}", 41);
    expect_model_fail(d, f, "not a file name in the same directory", "index escaping the directory");
    sr_test_write_file(f, "{\"weight_map\": ", 15);
    expect_model_fail(d, f, "the JSON text ends early", "index not JSON");
    /* one tensor in two shards */
    snprintf(d, sizeof d, "%s/two_shards_same", tmp);
    CHECK(sr_mkdir_p(d, &err) == 0);
    snprintf(f, sizeof f, "%s/a.safetensors", d);
    CHECK(safetensors_write(f, s.t, 2, &err) == 0);
    snprintf(f, sizeof f, "%s/b.safetensors", d);
    CHECK(safetensors_write(f, s.t + 1, 2, &err) == 0);
    snprintf(f, sizeof f, "%s/model.safetensors.index.json", d);
    const char *two = "{\"weight_map\": {\"w.f32\": \"a.safetensors\", \"w.bf16\": \"a.safetensors\", \"w.f16\": \"b.safetensors\"}}";
    sr_test_write_file(f, two, strlen(two));
    expect_model_fail(d, d, "tensor 'w.bf16' is in both", "a tensor in two shards");
    /* a bad shard: the error names the index and the shard's own problem */
    snprintf(d, sizeof d, "%s/bad_shard", tmp);
    CHECK(st_model_save(d, s.t, N_W, 40, &err) == 0);
    snprintf(f, sizeof f, "%s/model-00003-of-00003.safetensors", d);
    sr_test_write_file(f, "short", 5);
    snprintf(f, sizeof f, "%s/model.safetensors.index.json", d);
    expect_model_fail(d, f, "too short", "a corrupt shard");
#undef BAD
}

/* ---- the file helpers the writer is built on (common/fileio.c) ---------------------------- */
static void test_fileio(const char *tmp) {
    SrError err;
    char *d = sr_path_join(tmp, "a/b/c/");
    CHECK(sr_mkdir_p(d, &err) == 0 && sr_mkdir_p(d, &err) == 0); /* twice: fine */
    char *f = sr_path_join(d, "x.txt");
    CHECK(strstr(f, "a/b/c/x.txt") && !strstr(f, "//"));
    CHECK(sr_write_file_atomic(f, "old", 3, &err) == 0 && sr_write_file_atomic(f, "new!", 4, &err) == 0);
    char *text;
    size_t n;
    CHECK(sr_read_file(f, &text, &n, &err) == 0 && n == 4 && strcmp(text, "new!") == 0);
    free(text);
    CHECK(count_files_ex(d, ".tmp.", 1) == 0 && count_files(d, "") == 3); /* ., .., x.txt */
    CHECK(sr_file_exists(f) && !sr_file_exists(d));
    CHECK(sr_mkdir_p(f, &err) == -1 && strstr(err.msg, f) == err.msg); /* a file is in the way */
    CHECK(sr_read_file(d, &text, NULL, &err) == -1 && strstr(err.msg, "not a regular file") && text == NULL);
    char *missing = sr_path_join(d, "nope/y.txt");
    CHECK(sr_read_file(missing, &text, NULL, &err) == -1 && strstr(err.msg, missing) == err.msg && strstr(err.msg, "cannot open"));
    CHECK(sr_write_file_atomic(missing, "z", 1, &err) == -1 && strstr(err.msg, missing) == err.msg);
    char *j = sr_path_join("", "n");
    CHECK(strcmp(j, "n") == 0);
    free(j);
    free(missing);
    free(f);
    free(d);
}

int main(void) {
    const char *tmp = sr_test_tmpdir("test_safetensors");
    test_fileio(tmp);
    test_golden();
    test_tiny_llama(tmp);
    test_writer(tmp);
    test_bad_input(tmp);
    return sr_test_done();
}
