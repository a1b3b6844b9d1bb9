/*
 * The file plumbing shared by every stage that reads or writes files.
 *
 *   sr_read_file         whole file into memory (NUL-terminated), errors name the file
 *   sr_write_file_atomic one-shot atomic write (sr_write_file_zstd_atomic: zstd-compressed)
 *   SrAtomicFile         streaming atomic write (outputs, checkpoints, safetensors): data goes
 *                        to "<path>.tmp.<pid>.XXXXXX" in the same directory, which is fsync'd,
 *                        renamed over <path>, and then the directory is fsync'd, so a crash
 *                        leaves either the old file or the new one, never a torn file.
 *   SrAtomicDir          atomic directory (model directories, checkpoints): files go into
 *                        "<dir>.tmp-<pid>/"; commit fsyncs every file and the directory, moves
 *                        an existing <dir> aside to "<dir>.old-<pid>", renames the new one in,
 *                        fsyncs the parent and only then removes the old one.
 *   sr_check_output      refuses an output that would destroy an input (same file by device +
 *                        inode, through links and other spellings; an input inside an output
 *                        directory that is replaced)
 *   temp-path registry   the temp paths above are registered while they exist; after
 *                        sr_cleanup_on_signals() a SIGINT / SIGTERM / SIGHUP removes them
 *                        before the process dies of the signal. SIGKILL cannot be caught: what
 *                        a dead process left is swept the next time the same path is written
 *                        (names carry the pid; only our patterns, only dead pids).
 *   sr_mkdir_p, sr_rmtree, sr_path_join
 *
 * Test hook: SR_TEST_FAIL_WRITE=<name> makes every atomic write of a file called <name> (the
 * last path component) fail at commit as a full disk would ("No space left on device"), so a
 * test can fail a multi-file write half-way (e.g. =merges.txt while `init` writes a model
 * directory) and check what is left.
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
    int reg;         /* slot in the temp-path registry, -1 if none */
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
/* The same, zstd-compressed in one frame at level (1..19): what sr_read_file_zstd and the
 * JSONL reader read back (e.g. a *.jsonl.zst log written once per step). */
int sr_write_file_zstd_atomic(const char *path, const void *data, size_t len, int level,
                              SrError *err);

/* Creates dir and its missing parents (mode 0755); ok if it already exists as a directory. */
int sr_mkdir_p(const char *dir, SrError *err);

/* rm -rf path (no error if it does not exist; links are removed, not followed). */
int sr_rmtree(const char *path, SrError *err);

/* ---- atomic directories -------------------------------------------------------------------- */

typedef struct SrAtomicDir {
    char *path;  /* the final directory */
    char *tmp;   /* "<path>.tmp-<pid>": write the files here */
    int owner;   /* 1: this process created tmp and commits or aborts it */
    int reg;     /* slot in the temp-path registry, -1 if none */
} SrAtomicDir;

/* Sweeps what dead processes left next to path, then creates the parents and a fresh empty
 * "<path>.tmp-<pid>/". Fails when path exists and is not a directory. */
int sr_atomic_dir_open(SrAtomicDir *d, const char *path, SrError *err);
/* Another process's (e.g. MPI rank 0's) open directory, by its pid: d->tmp is where to write;
 * only the owner commits or aborts (sr_atomic_dir_abort on a joined one only frees). */
void sr_atomic_dir_join(SrAtomicDir *d, const char *path, long owner_pid);
/* fsyncs every file of tmp and tmp itself, swaps it into place (the old directory, if any,
 * is kept under "<path>.old-<pid>" until the new one is in place, then removed), fsyncs the
 * parent. On failure the old directory is still (or again) at path and tmp is removed. */
int sr_atomic_dir_commit(SrAtomicDir *d, SrError *err);
/* Removes tmp (owner) and frees; safe after a commit or a failed commit. */
void sr_atomic_dir_abort(SrAtomicDir *d);

/* ---- outputs vs inputs ---------------------------------------------------------------------- */

/* 0 when writing output cannot destroy input; else -1 with one line naming both options.
 * output_is_dir = 0: output is a file (NULL or "-" = stdout: always fine); it must not be a
 * directory nor the same file as input (device + inode; "-" as input = stdin), nor an existing
 * file inside input when input is a directory (a model or tokenizer directory). A device or
 * pipe (/dev/null) is always fine.
 * output_is_dir = 1: output is a directory whose content is replaced; it must not be a file,
 * and input must not be the directory itself nor anything inside it.
 * A path that does not exist yet cannot be the other one. */
int sr_check_output(const char *out_opt, const char *output, int output_is_dir,
                    const char *in_opt, const char *input, SrError *err);

/* ---- temp paths: signal cleanup and stale sweeps (common/tempclean.c) ----------------------- */

/* Installs the SIGINT / SIGTERM / SIGHUP handler that removes the registered temp paths and
 * re-raises the signal (signals that are ignored stay ignored). Called once by a program's
 * main (the library never installs handlers by itself); safe to call again. */
void sr_cleanup_on_signals(void);
/* Registers a temp file (is_dir = 0) or a flat temp directory (1); returns a slot for
 * sr_temp_unregister, or -1 when the registry is full (then only the sweep will find it). */
int sr_temp_register(const char *path, int is_dir);
void sr_temp_unregister(int slot);

/* Removes what dead processes left next to path: files "<name>.tmp.<pid>" and
 * "<name>.tmp.<pid>.XXXXXX", directories "<name>.tmp-<pid>", and a backup "<name>.old-<pid>"
 * (put back at path when path is missing: the process died between the two renames of a
 * directory swap). Only these names, only pids that are not running; best effort (logged). */
void sr_sweep_stale(const char *path);
/* The same for every name in dir that starts with prefix (e.g. "checkpoint-"). */
void sr_sweep_stale_in(const char *dir, const char *prefix);

/* "dir/name" (no double slash when dir ends in '/'); malloc'd. */
char *sr_path_join(const char *dir, const char *name);

/* 1 if path exists and is a regular file (following links), else 0. */
int sr_file_exists(const char *path);

#endif
