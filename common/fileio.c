/*
 * File helpers: see fileio.h. POSIX only (open/fsync/rename/mkstemp).
 */
#include "fileio.h"

#include <zstd.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int sr_atomic_open(SrAtomicFile *af, const char *path, SrError *err) {
    af->fd = -1;
    af->path = NULL;
    af->tmp_path = NULL;
    size_t n = strlen(path);
    char *tmp = sr_malloc(n + 16);
    snprintf(tmp, n + 16, "%s.tmp.XXXXXX", path);
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
    free(af->path);
    af->path = NULL;
}

int sr_atomic_commit(SrAtomicFile *af, SrError *err) {
    SR_ASSERT(af->fd >= 0);
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
    /* Make the rename itself durable. */
    char *dir = dir_of(af->path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ok = dfd >= 0 && fsync(dfd) == 0;
    int e = errno;
    if (dfd >= 0) close(dfd);
    if (!ok) sr_fail(err, "%s: fsync of directory %s failed: %s", af->path, dir, strerror(e));
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
