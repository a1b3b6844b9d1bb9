/*
 * libFuzzer harness for the safetensors reader (common/safetensors.h): the input's first byte
 * chooses what the rest is:
 *   even: a whole .safetensors file image (header length, JSON header, data), read by
 *         safetensors_open_memory, the checks safetensors_open runs on its mapping;
 *   odd:  a model.safetensors.index.json text, read by st_index_parse (what st_model_open runs).
 * An accepted file must keep every promise of the reader: each tensor's dtype known, its shape
 * non-negative, nbytes = numel * dtype size, its bytes inside the data region, the tensors
 * tiling it; each is then read whole (to fp32 where the dtype allows), so an out-of-bounds
 * offset shows up under ASan. A refused one must give one line naming the image.
 *
 * Build and run:  bash fuzz/run.sh safetensors [seconds]    (replayed by ctest: fuzz_safetensors)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_message(const SrError *err, const char *name) {
    if (strncmp(err->msg, name, strlen(name)) != 0 || strchr(err->msg, '\n')) abort();
}

static void check_index(const char *text, size_t n) {
    StIndex ix;
    SrError err;
    if (st_index_parse(&ix, text, n, "fuzz.index.json", &err) != 0) {
        check_message(&err, "fuzz.index.json");
        return;
    }
    for (int i = 0; i < ix.n; i++) {
        if (!ix.tensor[i] || ix.file[i] < 0 || ix.file[i] >= ix.n_files) abort();
        const char *f = ix.files[ix.file[i]];
        if (!f[0] || strchr(f, '/')) abort(); /* a plain file name in the same directory */
    }
    st_index_free(&ix);
}

static void check_image(const uint8_t *image, size_t n) {
    /* an exact-size copy, so that reading one byte past the image is an ASan report */
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return;
    memcpy(buf, image, n);
    SafeTensors st;
    SrError err;
    if (safetensors_open_memory(&st, "fuzz.safetensors", buf, n, &err) != 0) {
        check_message(&err, "fuzz.safetensors");
        free(buf);
        return;
    }
    uint64_t hlen;
    memcpy(&hlen, buf, 8);
    const uint8_t *lo = buf + 8 + hlen, *hi = buf + n;
    size_t covered = 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const StTensor *t = &st.tensors[i];
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS || (int)t->dtype < 0 || (int)t->dtype > ST_BOOL) abort();
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) abort();
            numel *= (size_t)t->shape[d];
        }
        if (numel != t->numel || t->nbytes != t->numel * st_dtype_size(t->dtype)) abort();
        const uint8_t *p = t->data;
        if (p < lo || p + t->nbytes > hi) abort();
        if (safetensors_find(&st, t->name) != t) abort(); /* names are unique */
        covered += t->nbytes;
        volatile uint8_t sink = 0;
        for (size_t k = 0; k < t->nbytes; k++) sink ^= p[k];
        (void)sink;
        if ((t->dtype == ST_F32 || t->dtype == ST_BF16 || t->dtype == ST_F16) && t->numel <= ((size_t)1 << 20)) {
            float *f = malloc(t->numel * sizeof(float) + 1);
            if (f && st_tensor_to_f32(t, f, &err) != 0) abort();
            free(f);
        }
    }
    if (covered != (size_t)(hi - lo)) abort(); /* the tensors tile the data region */
    safetensors_close(&st);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] & 1) check_index((const char *)data + 1, size - 1);
    else check_image(data + 1, size - 1);
    return 0;
}
