/*
 * safetensors reader (mmap) and writer, and HF sharded checkpoints
 * (model.safetensors.index.json).
 *
 * File layout: u64 little-endian header length N, N bytes of JSON
 *   {"__metadata__": {...}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}
 * then the data. The reader validates everything a hostile file could lie about: N within the
 * file, valid JSON object, known dtypes, integer shapes, offsets in bounds that tile the data
 * region exactly (no gaps, no overlaps), and (e - b) == prod(shape) * dtype size.
 * The writer pads the header with spaces to a multiple of 8 bytes, writes
 * "__metadata__": {"format": "pt"}, and is atomic (temp file + fsync + rename).
 */
#ifndef SR_COMMON_SAFETENSORS_H
#define SR_COMMON_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum {
    ST_F32 = 0, ST_BF16, ST_F16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL
} StDType;

#define ST_MAX_DIMS 8

/* Note: data is only as aligned as the file's offsets (HF pads the header to 8 bytes, but a
 * BF16 tensor may be followed by an F32 one at an odd multiple of 2): read it with memcpy or
 * st_tensor_to_f32, not through a cast float pointer. */
typedef struct StTensor {
    char *name;
    StDType dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    const void *data; /* points into the mapping */
} StTensor;

typedef struct SafeTensors {
    char *path;
    void *map;
    size_t map_size;
    int n_tensors;
    StTensor *tensors; /* in header order */
    char *metadata_json; /* the "__metadata__" object as JSON text, or NULL */
    int mapped;          /* map is our mmap (safetensors_open), not the caller's memory */
} SafeTensors;

const char *st_dtype_name(StDType t); /* "F32", ... */
size_t st_dtype_size(StDType t);
int st_dtype_parse(const char *s, StDType *out); /* 0 ok, -1 unknown */

int safetensors_open(SafeTensors *st, const char *path, SrError *err);
/* The same checks on a file image in memory (what safetensors_open runs on its mapping); data
 * must outlive st (nothing is copied); name names the image in errors. */
int safetensors_open_memory(SafeTensors *st, const char *name, const void *data, size_t size,
                            SrError *err);
void safetensors_close(SafeTensors *st);
const StTensor *safetensors_find(const SafeTensors *st, const char *name);

/* Converts a F32/BF16/F16 tensor to fp32 into dst (numel floats). -1 for other dtypes. */
int st_tensor_to_f32(const StTensor *t, float *dst, SrError *err);

/* A tensor to be written. data holds numel * st_dtype_size(dtype) bytes. */
typedef struct StWriteTensor {
    const char *name;
    StDType dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} StWriteTensor;

/* Writes one file atomically. Tensors are stored in the order given. */
int safetensors_write(const char *path, const StWriteTensor *t, int n, SrError *err);

/* A model directory's weights: model.safetensors, or the shards listed in
 * model.safetensors.index.json ("weight_map": name -> file). Like transformers, a
 * model.safetensors in the directory wins over an index. Each shard is opened (mapped) once;
 * every tensor the index names must be in the shard it names, and a tensor name may not
 * appear in two shards. */
typedef struct StModelEntry {
    const char *name;        /* points into files[file].tensors[...] */
    int file;
    const StTensor *tensor;
} StModelEntry;

typedef struct StModel {
    char *dir;
    int n_files;
    SafeTensors *files;
    int n_entries;
    StModelEntry *entries;   /* every tensor of every file, sorted by name (for bsearch) */
} StModel;

int st_model_open(StModel *m, const char *dir, SrError *err);

/* model.safetensors.index.json's weight map, as st_model_open reads it: text[0, len) is one
 * JSON object (common/json.h) with a "weight_map" object of tensor name -> shard file name, each
 * a plain file name in the same directory. index_path names it in errors. */
typedef struct StIndex {
    int n;           /* entries: tensor[i] is in files[file[i]] */
    char **tensor;
    int *file;
    int n_files;
    char **files;
} StIndex;
int st_index_parse(StIndex *ix, const char *text, size_t len, const char *index_path, SrError *err);
void st_index_free(StIndex *ix);
void st_model_close(StModel *m);
/* Finds a tensor across shards; *file (optional) receives the file path that holds it. */
const StTensor *st_model_find(const StModel *m, const char *name, const char **file);
/* Total number of tensors across shards. */
int st_model_count(const StModel *m);

/* Writes a model's tensors into dir: a single model.safetensors when the total is at most
 * max_shard_bytes, else model-0000i-of-0000n.safetensors shards plus
 * model.safetensors.index.json ({"metadata": {"total_size": ...}, "weight_map": {...}}).
 * max_shard_bytes = 0 means the HF default of 5 GB. Atomic per file; the index is written last. */
int st_model_save(const char *dir, const StWriteTensor *t, int n, size_t max_shard_bytes,
                  SrError *err);

#endif
