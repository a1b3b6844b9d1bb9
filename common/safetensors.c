/*
 * safetensors reader (mmap), writer and HF sharded model directories: see safetensors.h.
 *
 * The reader trusts nothing in the file. Checks, in order:
 *   file >= 8 bytes; header length N <= 100 MB and 8 + N <= file size; the header is one JSON
 *   object (common/json.h: valid UTF-8, no NUL, nothing after it, truncation named; a tensor
 *   or "__metadata__" named twice is an error, inside entries the last repeated key counts);
 *   "__metadata__" (optional) is an object of strings; every other
 *   entry is {"dtype": known, "shape": [non-negative integers], "data_offsets": [b, e]} with
 *   b <= e <= data size and e - b == numel * dtype size; names unique; sorted by (b, e) the
 *   tensors tile [0, data size) exactly: the first starts at 0, each starts where the previous
 *   ended, the last ends at the end of the file. This is what the reference Rust
 *   implementation enforces, so a file we accept is one HF accepts.
 * Every failure is one line "path: what is wrong", and leaves nothing allocated or mapped.
 *
 * The writer lays tensors out in the order given, pads the header JSON with spaces to a
 * multiple of 8 bytes (so the data region starts 8-aligned), and writes through an
 * SrAtomicFile (temp + fsync + rename + fsync dir).
 */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "dtype.h"
#include "fileio.h"
#include "json.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

#define ST_MAX_HEADER ((uint64_t)100000000) /* the Rust implementation's limit */
#define ST_DEFAULT_SHARD ((size_t)5000000000ull) /* transformers' max_shard_size="5GB" */
#define ST_INDEX_NAME "model.safetensors.index.json"
#define ST_SINGLE_NAME "model.safetensors"

/* ---- dtypes ------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t size;
} DTYPES[] = {
    [ST_F32] = {"F32", 4}, [ST_BF16] = {"BF16", 2}, [ST_F16] = {"F16", 2}, [ST_F64] = {"F64", 8},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4},   [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof DTYPES / sizeof DTYPES[0]))

const char *st_dtype_name(StDType t) {
    return (t >= 0 && (int)t < N_DTYPES) ? DTYPES[t].name : "?";
}

size_t st_dtype_size(StDType t) {
    SR_ASSERT(t >= 0 && (int)t < N_DTYPES);
    return DTYPES[t].size;
}

int st_dtype_parse(const char *s, StDType *out) {
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(s, DTYPES[i].name) == 0) {
            *out = (StDType)i;
            return 0;
        }
    return -1;
}

/* ---- small helpers ----------------------------------------------------------------------- */

/* A tensor name made safe for a one-line message: control bytes become '?', long names are
 * cut. */
static const char *safe_name(const char *s, char *buf, size_t cap) {
    size_t i = 0;
    for (; s[i] && i + 4 < cap; i++) buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i]) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}
#define NAME(s) safe_name((s), namebuf, sizeof namebuf)

/* Reads a JSON number that must be a non-negative integer exactly representable as a double.
 * Returns 0 ok, -1 not an integer, -2 negative. */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (d != floor(d) || !isfinite(d)) return -1;
    if (d < 0) return -2;
    if (d > 9007199254740992.0) return -1; /* 2^53: beyond it the double is not exact */
    *out = (uint64_t)d;
    return 0;
}

static int mul_size(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out) ? -1 : 0; }

/* numel and nbytes of a shape; -1 on overflow. A zero dimension makes numel 0 whatever the
 * others are. */
static int shape_sizes(const int64_t *shape, int ndim, StDType dt, size_t *numel, size_t *nbytes) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) n = 0;
    if (n != 0)
        for (int i = 0; i < ndim; i++)
            if (mul_size(n, (size_t)shape[i], &n) != 0) return -1;
    *numel = n;
    return mul_size(n, st_dtype_size(dt), nbytes);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    /* begin offsets are recovered from the data pointers: same mapping, so comparable */
    const char *xb = x->data, *yb = y->data;
    if (xb != yb) return xb < yb ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

/* ---- reader ------------------------------------------------------------------------------- */

/* Parses and validates one tensor entry into t (name already set). */
static int parse_entry(SafeTensors *st, const cJSON *e, StTensor *t, const char *data,
                       uint64_t data_size, SrError *err) {
    char namebuf[128];
    const char *path = st->path;
    if (!cJSON_IsObject(e)) return sr_fail(err, "%s: tensor '%s': entry is not a JSON object", path, NAME(t->name));
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return sr_fail(err, "%s: tensor '%s': missing or non-string \"dtype\"", path, NAME(t->name));
    if (st_dtype_parse(dt->valuestring, &t->dtype) != 0) {
        char dbuf[64];
        return sr_fail(err, "%s: tensor '%s': unknown dtype \"%s\"", path, NAME(t->name),
                       safe_name(dt->valuestring, dbuf, sizeof dbuf));
    }
    if (!cJSON_IsArray(sh)) return sr_fail(err, "%s: tensor '%s': \"shape\" is missing or not a list", path, NAME(t->name));
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > ST_MAX_DIMS)
        return sr_fail(err, "%s: tensor '%s': %d dimensions (at most %d supported)", path, NAME(t->name), ndim, ST_MAX_DIMS);
    t->ndim = ndim;
    int i = 0;
    for (const cJSON *d = sh->child; d; d = d->next, i++) {
        uint64_t v;
        int rc = json_uint(d, &v);
        if (rc == -2) return sr_fail(err, "%s: tensor '%s': negative dimension %g in \"shape\"", path, NAME(t->name), d->valuedouble);
        if (rc != 0) return sr_fail(err, "%s: tensor '%s': \"shape\" is not a list of integers", path, NAME(t->name));
        t->shape[i] = (int64_t)v;
    }
    if (shape_sizes(t->shape, ndim, t->dtype, &t->numel, &t->nbytes) != 0)
        return sr_fail(err, "%s: tensor '%s': shape overflows the address space", path, NAME(t->name));
    uint64_t b, en;
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || json_uint(of->child, &b) != 0 ||
        json_uint(of->child->next, &en) != 0)
        return sr_fail(err, "%s: tensor '%s': \"data_offsets\" is not a pair of non-negative integers", path, NAME(t->name));
    if (b > en)
        return sr_fail(err, "%s: tensor '%s': data offsets [%" PRIu64 ", %" PRIu64 "] end before they begin", path, NAME(t->name), b, en);
    if (en > data_size)
        return sr_fail(err, "%s: tensor '%s': data offsets [%" PRIu64 ", %" PRIu64 "] run past the end of the file (data region is %" PRIu64 " bytes; truncated file?)",
                       path, NAME(t->name), b, en, data_size);
    if (en - b != t->nbytes)
        return sr_fail(err, "%s: tensor '%s': data offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64 " bytes but %s shape of %zu elements needs %zu",
                       path, NAME(t->name), b, en, en - b, DTYPES[t->dtype].name, t->numel, t->nbytes);
    t->data = data + b;
    return 0;
}

static int parse_header(SafeTensors *st, const char *hdr, size_t hdr_len, uint64_t data_size,
                        SrError *err) {
    char namebuf[128];
    const char *path = st->path;
    /* HF pads the header with spaces; the JSON layer allows white space after the value */
    cJSON *root = sr_json_parse_object_all_keys(hdr, hdr_len, err);
    if (!root) return sr_fail_prefix(err, "%s: header (%zu bytes)", path, hdr_len);
    int rc = -1;
    StTensor **order = NULL;
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) n++;
    st->tensors = sr_calloc((size_t)n, sizeof(StTensor));
    const char *data = (const char *)st->map + 8 + hdr_len;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (st->metadata_json) {
                sr_fail(err, "%s: duplicate \"__metadata__\"", path);
                goto done;
            }
            if (!cJSON_IsObject(e)) {
                sr_fail(err, "%s: \"__metadata__\" is not a JSON object", path);
                goto done;
            }
            for (const cJSON *kv = e->child; kv; kv = kv->next)
                if (!cJSON_IsString(kv)) {
                    sr_fail(err, "%s: \"__metadata__\" value for '%s' is not a string", path, NAME(kv->string));
                    goto done;
                }
            st->metadata_json = cJSON_PrintUnformatted(e);
            continue;
        }
        StTensor *t = &st->tensors[st->n_tensors++];
        t->name = sr_strdup(e->string);
        if (parse_entry(st, e, t, data, data_size, err) != 0) goto done;
    }
    /* unique names */
    order = sr_malloc(sizeof(StTensor *) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) order[i] = &st->tensors[i];
    qsort(order, (size_t)n, sizeof *order, cmp_tensor_name);
    for (int i = 1; i < n; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            sr_fail(err, "%s: duplicate tensor name '%s' in the header", path, NAME(order[i]->name));
            goto done;
        }
    /* the tensors must tile the data region */
    qsort(order, (size_t)n, sizeof *order, cmp_tensor_offset);
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        uint64_t b = (uint64_t)((const char *)order[i]->data - data);
        if (b != pos) {
            if (b > pos)
                sr_fail(err, "%s: gap in the data: bytes [%" PRIu64 ", %" PRIu64 ") belong to no tensor (next is '%s')", path, pos, b, NAME(order[i]->name));
            else
                sr_fail(err, "%s: tensor '%s' at data offset %" PRIu64 " overlaps the tensor '%s' that ends at %" PRIu64, path,
                        NAME(order[i]->name), b, order[i - 1]->name, pos);
            goto done;
        }
        pos = b + order[i]->nbytes;
    }
    if (pos != data_size) {
        sr_fail(err, "%s: %" PRIu64 " trailing bytes after the last tensor (tensors end at data offset %" PRIu64 ", the data region is %" PRIu64 " bytes)",
                path, data_size - pos, pos, data_size);
        goto done;
    }
    rc = 0;
done:
    free(order);
    cJSON_Delete(root);
    return rc;
}

static int parse_image(SafeTensors *st, SrError *err);

int safetensors_open(SafeTensors *st, const char *path, SrError *err) {
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sr_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return sr_fail(err, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return sr_fail(err, "%s: file is %zu bytes, too short for the 8-byte header length", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) return sr_fail(err, "%s: mmap failed: %s", path, strerror(map_errno));
    st->path = sr_strdup(path);
    st->map = map;
    st->map_size = size;
    st->mapped = 1;
    return parse_image(st, err);
}

int safetensors_open_memory(SafeTensors *st, const char *name, const void *data, size_t size, SrError *err) {
    memset(st, 0, sizeof *st);
    if (size < 8) return sr_fail(err, "%s: file is %zu bytes, too short for the 8-byte header length", name, size);
    st->path = sr_strdup(name);
    st->map = (void *)data; /* not ours: never unmapped */
    st->map_size = size;
    return parse_image(st, err);
}

/* the header length, then the header, over the image in st->map; closes st on failure */
static int parse_image(SafeTensors *st, SrError *err) {
    const char *path = st->path;
    void *map = st->map;
    size_t size = st->map_size;
    uint64_t n;
    memcpy(&n, map, 8);
    if (n > ST_MAX_HEADER) {
        sr_fail(err, "%s: header length %" PRIu64 " exceeds the %" PRIu64 "-byte limit", path, n, ST_MAX_HEADER);
        goto fail;
    }
    if (n > size - 8) {
        sr_fail(err, "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes)", path, n, size);
        goto fail;
    }
    if (parse_header(st, (const char *)map + 8, (size_t)n, size - 8 - n, err) != 0) goto fail;
    return 0;
fail:
    safetensors_close(st);
    return -1;
}

void safetensors_close(SafeTensors *st) {
    if (st->tensors)
        for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    if (st->metadata_json) cJSON_free(st->metadata_json);
    if (st->map && st->mapped) munmap(st->map, st->map_size);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const StTensor *safetensors_find(const SafeTensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

int st_tensor_to_f32(const StTensor *t, float *dst, SrError *err) {
    const unsigned char *src = t->data;
    switch (t->dtype) {
    case ST_F32:
        if (t->nbytes) memcpy(dst, src, t->nbytes);
        return 0;
    case ST_BF16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = sr_bf16_to_f32(h);
        }
        return 0;
    case ST_F16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = sr_f16_to_f32(h);
        }
        return 0;
    default: {
        char namebuf[128];
        return sr_fail(err, "tensor '%s': dtype %s cannot be converted to fp32 (only F32, BF16, F16)",
                       NAME(t->name), st_dtype_name(t->dtype));
    }
    }
}

/* ---- writer ------------------------------------------------------------------------------- */

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Checks what a caller could get wrong; fills nbytes[i]. */
static int validate_write(const char *path, const StWriteTensor *t, int n, size_t *nbytes,
                          SrError *err) {
    char namebuf[128];
    if (n < 0) return sr_fail(err, "%s: negative tensor count %d", path, n);
    for (int i = 0; i < n; i++) {
        if (!t[i].name) return sr_fail(err, "%s: tensor %d has no name", path, i);
        if (strcmp(t[i].name, "__metadata__") == 0) return sr_fail(err, "%s: a tensor cannot be named __metadata__", path);
        if (t[i].dtype < 0 || (int)t[i].dtype >= N_DTYPES)
            return sr_fail(err, "%s: tensor '%s': invalid dtype %d", path, NAME(t[i].name), (int)t[i].dtype);
        if (t[i].ndim < 0 || t[i].ndim > ST_MAX_DIMS)
            return sr_fail(err, "%s: tensor '%s': %d dimensions", path, NAME(t[i].name), t[i].ndim);
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] < 0) return sr_fail(err, "%s: tensor '%s': negative dimension", path, NAME(t[i].name));
        size_t numel;
        if (shape_sizes(t[i].shape, t[i].ndim, t[i].dtype, &numel, &nbytes[i]) != 0)
            return sr_fail(err, "%s: tensor '%s': shape overflows", path, NAME(t[i].name));
        if (nbytes[i] && !t[i].data) return sr_fail(err, "%s: tensor '%s': no data", path, NAME(t[i].name));
    }
    const char **names = sr_malloc(sizeof(char *) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) names[i] = t[i].name;
    qsort(names, (size_t)n, sizeof *names, cmp_cstr);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            sr_fail(err, "%s: duplicate tensor name '%s'", path, NAME(names[i]));
            free(names);
            return -1;
        }
    free(names);
    return 0;
}

int safetensors_write(const char *path, const StWriteTensor *t, int n, SrError *err) {
    size_t *nbytes = sr_malloc(sizeof(size_t) * (size_t)(n > 0 ? n : 1));
    if (validate_write(path, t, n, nbytes, err) != 0) {
        free(nbytes);
        return -1;
    }
    /* header: {"__metadata__":{"format":"pt"},"name":{"dtype":"F32","shape":[..],"data_offsets":[b,e]},...} */
    SrBuf h = {0};
    sr_buf_str(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        sr_buf_add(&h, ",", 1);
        sr_buf_json_string(&h, t[i].name, strlen(t[i].name));
        sr_buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", DTYPES[t[i].dtype].name);
        for (int d = 0; d < t[i].ndim; d++) sr_buf_printf(&h, d ? ",%" PRId64 : "%" PRId64, t[i].shape[d]);
        sr_buf_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + nbytes[i]);
        off += nbytes[i];
    }
    sr_buf_add(&h, "}", 1);
    while (h.n % 8) sr_buf_add(&h, " ", 1);
    uint64_t hlen = h.n;

    SrAtomicFile af;
    int rc = -1;
    if (sr_atomic_open(&af, path, err) != 0) goto done;
    if (sr_atomic_write(&af, &hlen, 8, err) != 0 || sr_atomic_write(&af, h.p, h.n, err) != 0) goto done;
    for (int i = 0; i < n; i++)
        if (nbytes[i] && sr_atomic_write(&af, t[i].data, nbytes[i], err) != 0) goto done;
    rc = sr_atomic_commit(&af, err);
done:
    sr_buf_free(&h);
    free(nbytes);
    return rc;
}

/* ---- sharded model directories ------------------------------------------------------------ */

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const StModelEntry *)a)->name, ((const StModelEntry *)b)->name);
}

/* Builds the sorted lookup table; fails if a name is in two files. */
static int model_build_entries(StModel *m, SrError *err) {
    char namebuf[128];
    int total = 0;
    for (int f = 0; f < m->n_files; f++) total += m->files[f].n_tensors;
    m->entries = sr_malloc(sizeof(StModelEntry) * (size_t)(total ? total : 1));
    m->n_entries = 0;
    for (int f = 0; f < m->n_files; f++)
        for (int i = 0; i < m->files[f].n_tensors; i++)
            m->entries[m->n_entries++] = (StModelEntry){m->files[f].tensors[i].name, f, &m->files[f].tensors[i]};
    qsort(m->entries, (size_t)total, sizeof(StModelEntry), cmp_entry);
    for (int i = 1; i < total; i++)
        if (strcmp(m->entries[i - 1].name, m->entries[i].name) == 0)
            return sr_fail(err, "%s: tensor '%s' is in both %s and %s", m->dir, NAME(m->entries[i].name),
                           m->files[m->entries[i - 1].file].path, m->files[m->entries[i].file].path);
    return 0;
}

/* A shard name from an index must be a plain file name in the same directory. */
static int plain_file_name(const char *s) {
    return s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

void st_index_free(StIndex *ix) {
    for (int i = 0; i < ix->n; i++) free(ix->tensor[i]);
    for (int f = 0; f < ix->n_files; f++) free(ix->files[f]);
    free(ix->tensor);
    free(ix->file);
    free(ix->files);
    memset(ix, 0, sizeof *ix);
}

int st_index_parse(StIndex *ix, const char *text, size_t len, const char *index_path, SrError *err) {
    char namebuf[128];
    memset(ix, 0, sizeof *ix);
    cJSON *root = sr_json_parse_object(text, len, err);
    if (!root) return sr_fail_prefix(err, "%s", index_path);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return sr_fail(err, "%s: no \"weight_map\" object", index_path);
    }
    int n = cJSON_GetArraySize(wm), rc = 0;
    ix->tensor = sr_malloc(sizeof(char *) * (size_t)(n ? n : 1));
    ix->file = sr_malloc(sizeof(int) * (size_t)(n ? n : 1));
    ix->files = sr_malloc(sizeof(char *) * (size_t)(n ? n : 1));
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !plain_file_name(e->valuestring)) {
            rc = sr_fail(err, "%s: weight_map entry for '%s' is not a file name in the same directory", index_path,
                         NAME(e->string));
            break;
        }
        int f = 0; /* few shards: a linear search */
        while (f < ix->n_files && strcmp(ix->files[f], e->valuestring) != 0) f++;
        if (f == ix->n_files) ix->files[ix->n_files++] = sr_strdup(e->valuestring);
        ix->tensor[ix->n] = sr_strdup(e->string);
        ix->file[ix->n++] = f;
    }
    cJSON_Delete(root);
    if (rc) st_index_free(ix);
    return rc;
}

static int model_open_index(StModel *m, const char *index_path, SrError *err) {
    char namebuf[128], fbuf[128];
    char *text;
    size_t len;
    if (sr_read_file(index_path, &text, &len, err) != 0) return -1;
    StIndex ix;
    int rc = st_index_parse(&ix, text, len, index_path, err);
    free(text);
    if (rc) return -1;
    rc = -1;
    m->files = sr_calloc((size_t)(ix.n_files ? ix.n_files : 1), sizeof(SafeTensors));
    for (int f = 0; f < ix.n_files; f++) {
        char *p = sr_path_join(m->dir, ix.files[f]);
        int r = safetensors_open(&m->files[f], p, err);
        free(p);
        if (r != 0) {
            sr_fail_prefix(err, "%s: shard '%s'", index_path, safe_name(ix.files[f], fbuf, sizeof fbuf));
            goto done;
        }
        m->n_files++;
    }
    for (int k = 0; k < ix.n; k++)
        if (!safetensors_find(&m->files[ix.file[k]], ix.tensor[k])) {
            sr_fail(err, "%s: tensor '%s' is mapped to %s, which does not contain it", index_path, NAME(ix.tensor[k]),
                    safe_name(ix.files[ix.file[k]], fbuf, sizeof fbuf));
            goto done;
        }
    rc = 0;
done:
    st_index_free(&ix);
    return rc;
}

int st_model_open(StModel *m, const char *dir, SrError *err) {
    memset(m, 0, sizeof *m);
    m->dir = sr_strdup(dir);
    char *single = sr_path_join(dir, ST_SINGLE_NAME);
    char *index = sr_path_join(dir, ST_INDEX_NAME);
    int rc = -1;
    if (sr_file_exists(single)) {
        m->files = sr_calloc(1, sizeof(SafeTensors));
        if (safetensors_open(&m->files[0], single, err) != 0) goto done;
        m->n_files = 1;
    } else if (sr_file_exists(index)) {
        if (model_open_index(m, index, err) != 0) goto done;
    } else {
        sr_fail(err, "%s: no %s or %s in this directory", dir, ST_SINGLE_NAME, ST_INDEX_NAME);
        goto done;
    }
    rc = model_build_entries(m, err);
done:
    free(single);
    free(index);
    if (rc != 0) st_model_close(m);
    return rc;
}

void st_model_close(StModel *m) {
    for (int f = 0; f < m->n_files; f++) safetensors_close(&m->files[f]);
    free(m->files);
    free(m->entries);
    free(m->dir);
    memset(m, 0, sizeof *m);
}

const StTensor *st_model_find(const StModel *m, const char *name, const char **file) {
    StModelEntry key = {name, 0, NULL};
    const StModelEntry *e = m->n_entries ? bsearch(&key, m->entries, (size_t)m->n_entries, sizeof key, cmp_entry) : NULL;
    if (file) *file = e ? m->files[e->file].path : NULL;
    return e ? e->tensor : NULL;
}

int st_model_count(const StModel *m) { return m->n_entries; }

/* "model-00001-of-00003.safetensors" -> 1 with *of = 3; 0 if the name is not a shard name. */
static int shard_name_parse(const char *s, int *of) {
    int i = 0, n = 0;
    if (strlen(s) != 32 || strncmp(s, "model-", 6) != 0 || strncmp(s + 11, "-of-", 4) != 0 ||
        strcmp(s + 20, ".safetensors") != 0)
        return 0;
    for (int k = 6; k < 11; k++) {
        if (s[k] < '0' || s[k] > '9') return 0;
        i = i * 10 + (s[k] - '0');
    }
    for (int k = 15; k < 20; k++) {
        if (s[k] < '0' || s[k] > '9') return 0;
        n = n * 10 + (s[k] - '0');
    }
    *of = n;
    return i;
}

/* Removes shard files of an earlier save with a different shard count (keep_of; 0 = all), as
 * transformers' save_pretrained does, so the directory holds one consistent checkpoint. */
static int remove_stale_shards(const char *dir, int keep_of, SrError *err) {
    DIR *d = opendir(dir);
    if (!d) return sr_fail(err, "%s: cannot list directory: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int of;
        if (shard_name_parse(de->d_name, &of) && of != keep_of) {
            char *p = sr_path_join(dir, de->d_name);
            if (unlink(p) != 0 && errno != ENOENT) rc = sr_fail(err, "%s: cannot remove stale shard: %s", p, strerror(errno));
            free(p);
        }
    }
    closedir(d);
    return rc;
}

static int remove_if_exists(const char *path, SrError *err) {
    if (unlink(path) != 0 && errno != ENOENT) return sr_fail(err, "%s: cannot remove stale file: %s", path, strerror(errno));
    return 0;
}

int st_model_save(const char *dir, const StWriteTensor *t, int n, size_t max_shard_bytes,
                  SrError *err) {
    if (sr_mkdir_p(dir, err) != 0) return -1;
    size_t *nbytes = sr_malloc(sizeof(size_t) * (size_t)(n > 0 ? n : 1));
    int *shard = sr_malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    char *single = sr_path_join(dir, ST_SINGLE_NAME);
    char *index = sr_path_join(dir, ST_INDEX_NAME);
    SrBuf js = {0};
    StModelEntry *names = NULL; /* (name, shard) pairs, sorted by name for the index */
    int rc = -1;
    if (validate_write(dir, t, n, nbytes, err) != 0) goto done;
    size_t max = max_shard_bytes ? max_shard_bytes : ST_DEFAULT_SHARD;
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += nbytes[i];

    if (total <= max) {
        if (safetensors_write(single, t, n, err) != 0) goto done;
        if (remove_if_exists(index, err) != 0 || remove_stale_shards(dir, 0, err) != 0) goto done;
        rc = 0;
        goto done;
    }
    /* Greedy split in the given order, like transformers: start a new shard when the next
     * tensor would overflow a non-empty one (so a tensor bigger than max gets its own). */
    int n_shards = 1;
    size_t cur = 0;
    for (int i = 0; i < n; i++) {
        if (cur > 0 && cur + nbytes[i] > max) {
            n_shards++;
            cur = 0;
        }
        shard[i] = n_shards - 1;
        cur += nbytes[i];
    }
    if (n_shards > 99999) {
        sr_fail(err, "%s: %d shards needed (at most 99999); raise max_shard_bytes", dir, n_shards);
        goto done;
    }
    for (int s = 0, first = 0; s < n_shards; s++) {
        int last = first;
        while (last < n && shard[last] == s) last++;
        char fname[64];
        snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        char *p = sr_path_join(dir, fname);
        int r = safetensors_write(p, t + first, last - first, err);
        free(p);
        if (r != 0) goto done;
        first = last;
    }
    /* a model.safetensors left from an earlier save would win over the index: remove it first */
    if (remove_if_exists(single, err) != 0) goto done;
    /* index, as transformers writes it: indent 2, keys sorted, trailing newline */
    names = sr_malloc(sizeof(StModelEntry) * (size_t)n);
    for (int i = 0; i < n; i++) names[i] = (StModelEntry){t[i].name, shard[i], NULL};
    qsort(names, (size_t)n, sizeof *names, cmp_entry);
    sr_buf_printf(&js, "{\n  \"metadata\": {\n    \"total_size\": %" PRIu64 "\n  },\n  \"weight_map\": {\n", total);
    for (int k = 0; k < n; k++) {
        sr_buf_str(&js, "    ");
        sr_buf_json_string(&js, names[k].name, strlen(names[k].name));
        sr_buf_printf(&js, ": \"model-%05d-of-%05d.safetensors\"%s\n", names[k].file + 1, n_shards, k + 1 < n ? "," : "");
    }
    sr_buf_str(&js, "  }\n}\n");
    if (sr_write_file_atomic(index, js.p, js.n, err) != 0) goto done;
    if (remove_stale_shards(dir, n_shards, err) != 0) goto done;
    rc = 0;
done:
    sr_buf_free(&js);
    free(names);
    free(nbytes);
    free(shard);
    free(single);
    free(index);
    return rc;
}
