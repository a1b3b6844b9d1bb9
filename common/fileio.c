/*
 * File helpers: see fileio.h. POSIX only (open/fsync/rename/mkstemp/nftw). The temp-path
 * registry, the signal handler and the stale sweeps are in tempclean.c.
 */
#define _GNU_SOURCE /* nftw's FTW_DEPTH / FTW_PHYS */
#include "fileio.h"

#include <zstd.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

int sr_read_file(const char *path, char **data, size_t *len, SrError *err) {
    *data = NULL;
    if (len) *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sr_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return sr_fail(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return sr_fail(err, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size, got = 0;
    char *buf = sr_malloc(n + 1);
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            close(fd);
            free(buf);
            if (r == 0) return sr_fail(err, "%s: file shrank while reading (%zu of %zu bytes)", path, got, n);
            return sr_fail(err, "%s: read error: %s", path, strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    if (len) *len = n;
    return 0;
}

/* The directory part of path ("." when there is none); malloc'd. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return sr_strdup(".");
    if (slash == path) return sr_strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = sr_malloc(n + 1);
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

/* the last path component */
static const char *base_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int fsync_path(const char *path, int dir) {
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

static int atomic_open_at(SrAtomicFile *af, const char *path, SrError *err);

int sr_atomic_open(SrAtomicFile *af, const char *path, SrError *err) {
    af->fd = -1;
    af->path = NULL;
    af->tmp_path = NULL;
    af->reg = -1;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return sr_fail(err, "%s: is a directory", path);
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return sr_fail(err, "%s: not a regular file (a device or a pipe cannot be replaced atomically)", path);
    /* through a symbolic link the file it names is replaced, not the link (renaming over the
     * link would turn it into a file: /dev/stdout is one) */
    char *real = NULL;
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
        real = realpath(path, NULL);
        if (real && (!strncmp(real, "/proc/", 6) || !strncmp(real, "/dev/", 5))) {
            free(real);
            return sr_fail(err, "%s: names a process's descriptor or a device; it cannot be replaced atomically", path);
        }
        if (real) path = real;
    }
    int rc = atomic_open_at(af, path, err);
    free(real);
    return rc;
}

static int atomic_open_at(SrAtomicFile *af, const char *path, SrError *err) {
    sr_sweep_stale(path);
    size_t n = strlen(path) + 40;
    char *tmp = sr_malloc(n);
    /* the pid lets a later run tell a dead process's leftover from a live one's */
    snprintf(tmp, n, "%s.tmp.%ld.XXXXXX", path, (long)getpid());
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return sr_fail(err, "%s: cannot create a temporary file next to it: %s", path, strerror(e));
    }
    /* mkstemp makes the file 0600; a saved model should be readable like any other file. */
    if (fchmod(fd, 0644) != 0) { /* not fatal: the data is still right */ }
    af->fd = fd;
    af->path = sr_strdup(path);
    af->tmp_path = tmp;
    af->reg = sr_temp_register(tmp, 0);
    return 0;
}

int sr_atomic_write(SrAtomicFile *af, const void *data, size_t n, SrError *err) {
    SR_ASSERT(af->fd >= 0);
    const char *p = data;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = write(af->fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            sr_fail(err, "%s: write failed: %s", af->path, strerror(e));
            sr_atomic_abort(af);
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

void sr_atomic_abort(SrAtomicFile *af) {
    if (af->fd >= 0) {
        close(af->fd);
        af->fd = -1;
    }
    if (af->tmp_path) {
        unlink(af->tmp_path);
        free(af->tmp_path);
        af->tmp_path = NULL;
    }
    sr_temp_unregister(af->reg);
    af->reg = -1;
    free(af->path);
    af->path = NULL;
}

int sr_atomic_commit(SrAtomicFile *af, SrError *err) {
    SR_ASSERT(af->fd >= 0);
    const char *hook = getenv("SR_TEST_FAIL_WRITE");
    if (hook && *hook && strcmp(hook, base_of(af->path)) == 0) {
        sr_fail(err, "%s: write failed: %s (simulated by SR_TEST_FAIL_WRITE)", af->path, strerror(ENOSPC));
        sr_atomic_abort(af);
        return -1;
    }
    if (fsync(af->fd) != 0) {
        sr_fail(err, "%s: fsync failed: %s", af->path, strerror(errno));
        sr_atomic_abort(af);
        return -1;
    }
    int rc = close(af->fd);
    af->fd = -1;
    if (rc != 0) {
        sr_fail(err, "%s: close failed: %s", af->path, strerror(errno));
        sr_atomic_abort(af);
        return -1;
    }
    if (rename(af->tmp_path, af->path) != 0) {
        sr_fail(err, "%s: cannot rename the temporary file over it: %s", af->path, strerror(errno));
        sr_atomic_abort(af);
        return -1;
    }
    free(af->tmp_path);
    af->tmp_path = NULL;
    sr_temp_unregister(af->reg);
    af->reg = -1;
    /* Make the rename itself durable. */
    char *dir = dir_of(af->path);
    int ok = fsync_path(dir, 1) == 0;
    if (!ok) sr_fail(err, "%s: fsync of directory %s failed: %s", af->path, dir, strerror(errno));
    free(dir);
    free(af->path);
    af->path = NULL;
    return ok ? 0 : -1;
}

int sr_write_file_atomic(const char *path, const void *data, size_t len, SrError *err) {
    SrAtomicFile af;
    if (sr_atomic_open(&af, path, err) != 0) return -1;
    if (sr_atomic_write(&af, data, len, err) != 0) return -1;
    return sr_atomic_commit(&af, err);
}

int sr_write_file_zstd_atomic(const char *path, const void *data, size_t len, int level,
                              SrError *err) {
    size_t cap = ZSTD_compressBound(len);
    void *buf = sr_malloc(cap ? cap : 1);
    size_t c = ZSTD_compress(buf, cap, data, len, level);
    if (ZSTD_isError(c)) {
        free(buf);
        return sr_fail(err, "%s: zstd: %s", path, ZSTD_getErrorName(c));
    }
    int rc = sr_write_file_atomic(path, buf, c, err);
    free(buf);
    return rc;
}

int sr_mkdir_p(const char *dir, SrError *err) {
    size_t n = strlen(dir);
    if (n == 0) return sr_fail(err, "mkdir: empty directory name");
    char *p = sr_strdup(dir);
    /* Create each prefix that ends before a '/', then the whole path. */
    for (size_t i = 1; i <= n; i++) {
        if (i < n && p[i] != '/') continue;
        char saved = p[i];
        p[i] = '\0';
        struct stat sb;
        int rc = mkdir(p, 0755), e = errno;
        if (rc != 0 && !(stat(p, &sb) == 0 && S_ISDIR(sb.st_mode))) {
            sr_fail(err, "%s: cannot create directory %s: %s", dir, p, strerror(e));
            free(p);
            return -1;
        }
        p[i] = saved;
    }
    struct stat sb;
    int ok = stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode);
    free(p);
    if (!ok) return sr_fail(err, "%s: exists and is not a directory", dir);
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

int sr_rmtree(const char *path, SrError *err) {
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0 && errno != ENOENT) return sr_fail(err, "%s: cannot remove (%s)", path, strerror(errno));
        return 0;
    }
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return sr_fail(err, "%s: cannot remove the directory (%s)", path, strerror(errno));
    return 0;
}

/* ---- atomic directories ---------------------------------------------------------------------- */

static char *suffixed(const char *path, const char *suffix, long pid) {
    size_t n = strlen(path) + strlen(suffix) + 24;
    char *p = sr_malloc(n);
    snprintf(p, n, "%s%s%ld", path, suffix, pid);
    return p;
}

/* a path without trailing slashes ("out/" and "out" name the same directory, and the temp and
 * backup names must be siblings of it, not children) */
static char *strip_slashes(const char *path) {
    char *p = sr_strdup(path);
    for (size_t n = strlen(p); n > 1 && p[n - 1] == '/'; n--) p[n - 1] = '\0';
    return p;
}

int sr_atomic_dir_open(SrAtomicDir *d, const char *path, SrError *err) {
    memset(d, 0, sizeof *d);
    d->reg = -1;
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode)) return sr_fail(err, "%s: exists and is not a directory", path);
    /* an existing directory by its real path: "." or a link to a directory names the
     * directory itself, whose siblings the temp and backup names must be */
    char *p = realpath(path, NULL);
    if (!p) p = strip_slashes(path);
    char *parent = dir_of(p);
    int rc = sr_mkdir_p(parent, err);
    free(parent);
    if (rc) {
        free(p);
        return -1;
    }
    sr_sweep_stale(p);
    d->path = p;
    d->tmp = suffixed(p, ".tmp-", (long)getpid());
    d->owner = 1;
    /* a leftover of this very pid (an earlier failed attempt of this process) is ours */
    rc = sr_rmtree(d->tmp, err);
    if (!rc && mkdir(d->tmp, 0755) != 0)
        rc = sr_fail(err, "%s: cannot create the temporary directory %s (%s)", path, d->tmp, strerror(errno));
    if (rc) {
        free(d->tmp);
        free(d->path);
        memset(d, 0, sizeof *d);
        d->reg = -1;
        return -1;
    }
    d->reg = sr_temp_register(d->tmp, 1);
    return 0;
}

void sr_atomic_dir_join(SrAtomicDir *d, const char *path, long owner_pid) {
    memset(d, 0, sizeof *d);
    d->reg = -1;
    d->path = strip_slashes(path);
    d->tmp = suffixed(d->path, ".tmp-", owner_pid);
}

/* fsync of every regular file directly in dir (the writers make flat directories) */
static int fsync_files(const char *dir, SrError *err) {
    DIR *dd = opendir(dir);
    if (!dd) return sr_fail(err, "%s: cannot list (%s)", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(dd))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *f = sr_path_join(dir, e->d_name);
        struct stat sb;
        if (lstat(f, &sb) == 0 && S_ISREG(sb.st_mode) && fsync_path(f, 0) != 0)
            rc = sr_fail(err, "%s: fsync failed (%s)", f, strerror(errno));
        free(f);
    }
    closedir(dd);
    if (!rc && fsync_path(dir, 1) != 0) rc = sr_fail(err, "%s: fsync failed (%s)", dir, strerror(errno));
    return rc;
}

int sr_atomic_dir_commit(SrAtomicDir *d, SrError *err) {
    SR_ASSERT(d->owner && d->tmp);
    if (fsync_files(d->tmp, err) != 0) {
        sr_atomic_dir_abort(d);
        return -1;
    }
    char *old = suffixed(d->path, ".old-", (long)getpid());
    char *parent = dir_of(d->path);
    int rc = 0, moved = 0;
    struct stat sb;
    if (lstat(d->path, &sb) == 0) {
        /* keep the old directory until the new one is in place (a crash in between leaves
         * only the backup, which the next sr_sweep_stale of this path puts back) */
        if (sr_rmtree(old, err) != 0) rc = -1;
        else if (rename(d->path, old) != 0)
            rc = sr_fail(err, "%s: cannot move the old directory aside to %s (%s)", d->path, old, strerror(errno));
        else moved = 1;
    }
    if (!rc && rename(d->tmp, d->path) != 0) {
        rc = sr_fail(err, "%s: cannot rename %s into place (%s)", d->path, d->tmp, strerror(errno));
        if (moved && rename(old, d->path) == 0) moved = 0; /* the old one is back */
    }
    if (!rc) {
        sr_temp_unregister(d->reg);
        d->reg = -1;
        free(d->tmp);
        d->tmp = NULL;
        if (fsync_path(parent, 1) != 0)
            rc = sr_fail(err, "%s: fsync of directory %s failed (%s)", d->path, parent, strerror(errno));
        if (moved) {
            SrError e2;
            if (sr_rmtree(old, &e2) != 0) sr_log("%s", e2.msg); /* the new one is in place */
        }
    }
    free(parent);
    free(old);
    sr_atomic_dir_abort(d);
    return rc;
}

void sr_atomic_dir_abort(SrAtomicDir *d) {
    if (d->owner && d->tmp) sr_rmtree(d->tmp, NULL);
    sr_temp_unregister(d->reg);
    free(d->tmp);
    free(d->path);
    memset(d, 0, sizeof *d);
    d->reg = -1;
}

/* ---- outputs vs inputs -------------------------------------------------------------------------- */

/* 1 if path (which exists) lies inside the directory d, at any depth: walks up its real path */
static int lies_inside(const char *path, const struct stat *d) {
    char *real = realpath(path, NULL);
    if (!real) return 0;
    int inside = 0;
    for (char *slash; !inside && (slash = strrchr(real, '/'));) {
        if (slash == real) slash[1] = '\0';
        else *slash = '\0';
        struct stat ps;
        if (stat(real, &ps) == 0 && ps.st_dev == d->st_dev && ps.st_ino == d->st_ino) inside = 1;
        if (slash == real) break;
    }
    free(real);
    return inside;
}

int sr_check_output(const char *out_opt, const char *output, int output_is_dir,
                    const char *in_opt, const char *input, SrError *err) {
    if (!output || (!output_is_dir && !strcmp(output, "-"))) return 0;
    struct stat os, is;
    if (stat(output, &os) != 0) return 0; /* nothing there yet: nothing to destroy */
    if (!output_is_dir && S_ISDIR(os.st_mode))
        return sr_fail(err, "%s %s: is a directory (expected a file)", out_opt, output);
    if (output_is_dir && !S_ISDIR(os.st_mode))
        return sr_fail(err, "%s %s: exists and is not a directory", out_opt, output);
    if (!output_is_dir && !S_ISREG(os.st_mode)) return 0; /* a device or pipe (/dev/null): written as it is */
    if (!input) return 0;
    int in_stdin = !strcmp(input, "-");
    if (in_stdin ? fstat(STDIN_FILENO, &is) != 0 : stat(input, &is) != 0) return 0;
    const char *in_name = in_stdin ? "(stdin)" : input;
    if (is.st_dev == os.st_dev && is.st_ino == os.st_ino)
        return sr_fail(err, "%s %s is the same %s as %s %s: writing it would destroy the input",
                       out_opt, output, output_is_dir ? "directory" : "file", in_opt, in_name);
    if (in_stdin) return 0;
    /* a directory output replaces what is inside it */
    if (output_is_dir && lies_inside(input, &os))
        return sr_fail(err, "%s %s contains %s %s: replacing the directory would destroy the input",
                       out_opt, output, in_opt, input);
    /* an existing file inside an input directory (a model's or tokenizer's files) */
    if (!output_is_dir && S_ISDIR(is.st_mode) && lies_inside(output, &is))
        return sr_fail(err, "%s %s is a file of %s %s: replacing it could destroy the input",
                       out_opt, output, in_opt, input);
    return 0;
}

char *sr_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = sr_malloc(a + (size_t)slash + b + 1);
    memcpy(p, dir, a);
    if (slash) p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

int sr_file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int sr_read_file_zstd(const char *path, char **data, size_t *len, SrError *err) {
    char *src = NULL;
    size_t n = 0;
    if (sr_read_file(path, &src, &n, err)) return -1;
    static const unsigned char magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
    if (n < 4 || memcmp(src, magic, 4) != 0) { /* not compressed: the bytes as they are */
        *data = src;
        if (len) *len = n;
        return 0;
    }
    ZSTD_DStream *ds = ZSTD_createDStream();
    ZSTD_initDStream(ds);
    size_t cap = n * 4 + (1 << 16), used = 0;
    char *dst = sr_malloc(cap);
    ZSTD_inBuffer in = {src, n, 0};
    size_t r = 0;
    for (;;) {
        if (cap - used < (1 << 16)) dst = sr_realloc(dst, cap *= 2);
        ZSTD_outBuffer out = {dst + used, cap - used - 1, 0};
        r = ZSTD_decompressStream(ds, &out, &in);
        if (ZSTD_isError(r)) break;
        used += out.pos;
        /* done when all input is read and the last frame is complete; no progress with
         * room left in the output means the input ended inside a frame */
        if (in.pos == in.size && (r == 0 || out.pos < out.size)) break;
    }
    ZSTD_freeDStream(ds);
    free(src);
    if (ZSTD_isError(r) || r != 0) {
        free(dst);
        return sr_fail(err, "%s: %s", path,
                       ZSTD_isError(r) ? ZSTD_getErrorName(r) : "truncated zstd frame");
    }
    dst[used] = '\0';
    *data = dst;
    if (len) *len = used;
    return 0;
}
