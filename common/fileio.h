/*
 * Small file helpers shared by every stage that reads or writes files.
 *
 *   sr_read_file         whole file into memory (NUL-terminated), errors name the file
 *   sr_write_file_atomic one-shot atomic write
 *   SrAtomicFile         streaming atomic write for large files (checkpoints, safetensors):
 *                        data goes to "<path>.tmp.XXXXXX" in the same directory, which is
 *                        fsync'd, renamed over <path>, and then the directory is fsync'd, so a
 *                        crash leaves either the old file or the new one, never a torn file.
 *   sr_mkdir_p           mkdir -p
 *   sr_path_join         "dir/name" (malloc'd)
 */
#ifndef SR_COMMON_FILEIO_H
#define SR_COMMON_FILEIO_H

#include <stddef.h>

#include "error.h"

/* Reads the whole file; *data is malloc'd with a NUL after the last byte (free it). len may
 * be NULL. */
int sr_read_file(const char *path, char **data, size_t *len, SrError *err);

typedef struct SrAtomicFile {
    int fd;          /* -1 when not open */
    char *path;      /* final path */
    char *tmp_path;  /* temp file in the same directory */
} SrAtomicFile;

int sr_atomic_open(SrAtomicFile *af, const char *path, SrError *err);
/* Writes all n bytes (retries short writes and EINTR). On failure the temp file is removed. */
int sr_atomic_write(SrAtomicFile *af, const void *data, size_t n, SrError *err);
/* fsync + close + rename over the final path + fsync of the directory. On failure the temp
 * file is removed and the old file (if any) is untouched. */
int sr_atomic_commit(SrAtomicFile *af, SrError *err);
/* Closes and removes the temp file (safe to call after a failed write or a commit). */
void sr_atomic_abort(SrAtomicFile *af);

/* Like sr_read_file, but a zstd-compressed file (zstd frame magic, e.g. *.zst) is
 * decompressed (every frame, streaming). */
int sr_read_file_zstd(const char *path, char **data, size_t *len, SrError *err);

int sr_write_file_atomic(const char *path, const void *data, size_t len, SrError *err);

/* Creates dir and its missing parents (mode 0755); ok if it already exists as a directory. */
int sr_mkdir_p(const char *dir, SrError *err);

/* "dir/name" (no double slash when dir ends in '/'); malloc'd. */
char *sr_path_join(const char *dir, const char *name);

/* 1 if path exists and is a regular file (following links), else 0. */
int sr_file_exists(const char *path);

#endif
