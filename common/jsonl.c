/*
 * JSONL reader over a plain or a zstd-compressed file (see jsonl.h). Bytes come in blocks
 * (fread, or ZSTD_decompressStream for .zst) into a buffer; lines are cut at '\n'. A zstd
 * file may hold several concatenated frames (as `zstd` and appenders write them); a file that
 * ends inside a frame is reported as truncated rather than silently shortened.
 */
#include "jsonl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "json.h"

#define BLOCK (1 << 16)

static int has_zstd_magic(const unsigned char *p, size_t n) {
    return n >= 4 && p[0] == 0x28 && p[1] == 0xB5 && p[2] == 0x2F && p[3] == 0xFD;
}

int jsonl_open(JsonlReader *r, const char *path, SrError *err) {
    memset(r, 0, sizeof *r);
    if (!path) return sr_fail(err, "no input file given");
    r->path = sr_strdup(path);
    r->file_size = -1;
    if (strcmp(path, "-") == 0) {
        r->f = stdin;
        r->is_stdin = 1;
    } else {
        r->f = fopen(path, "rb");
        if (!r->f) {
            sr_fail(err, "%s: cannot open (%s)", path, strerror(errno));
            free(r->path);
            r->path = NULL;
            return -1;
        }
        struct stat sb;
        if (fstat(fileno(r->f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
            sr_fail(err, "%s: is a directory, not a JSONL file", path);
            fclose(r->f);
            free(r->path);
            memset(r, 0, sizeof *r);
            return -1;
        }
        if (fstat(fileno(r->f), &sb) == 0 && S_ISREG(sb.st_mode)) r->file_size = sb.st_size;
    }
    r->in_cap = ZSTD_DStreamInSize() > BLOCK ? ZSTD_DStreamInSize() : BLOCK;
    r->inbuf = sr_malloc(r->in_cap);
    r->in_len = fread(r->inbuf, 1, r->in_cap, r->f);
    r->bytes_in = (long long)r->in_len;
    if (r->in_len < r->in_cap) {
        if (ferror(r->f)) {
            sr_fail(err, "%s: read error (%s)", path, strerror(errno));
            jsonl_close(r);
            return -1;
        }
        r->eof = 1;
    }
    size_t plen = strlen(path);
    if (plen > 4 && strcmp(path + plen - 4, ".zst") == 0 && !has_zstd_magic(r->inbuf, r->in_len)) {
        sr_fail(err, "%s: named .zst but not zstd-compressed (no zstd frame at the start)", path);
        jsonl_close(r);
        return -1;
    }
    if (has_zstd_magic(r->inbuf, r->in_len)) {
        r->zstd = 1;
        r->dctx = ZSTD_createDCtx();
        SR_ASSERT(r->dctx);
    }
    return 0;
}

void jsonl_close(JsonlReader *r) {
    if (r->f && !r->is_stdin) fclose(r->f);
    if (r->dctx) ZSTD_freeDCtx(r->dctx);
    free(r->inbuf);
    free(r->buf);
    free(r->line);
    free(r->path);
    memset(r, 0, sizeof *r);
}

static void buf_reserve(JsonlReader *r, size_t extra) {
    if (r->buf_pos > 0 && r->buf_pos == r->buf_len) r->buf_pos = r->buf_len = 0;
    if (r->buf_len + extra <= r->buf_cap) return;
    if (r->buf_pos > 0) { /* compact first */
        memmove(r->buf, r->buf + r->buf_pos, r->buf_len - r->buf_pos);
        r->buf_len -= r->buf_pos;
        r->buf_pos = 0;
    }
    while (r->buf_len + extra > r->buf_cap) r->buf_cap = r->buf_cap ? r->buf_cap * 2 : 2 * BLOCK;
    r->buf = sr_realloc(r->buf, r->buf_cap);
}

/* more compressed bytes from the file; 0 ok (possibly none left), -1 error */
static int fill_input(JsonlReader *r, SrError *err) {
    if (r->eof || r->in_pos < r->in_len) return 0;
    r->in_len = fread(r->inbuf, 1, r->in_cap, r->f);
    r->in_pos = 0;
    r->bytes_in += (long long)r->in_len;
    if (r->in_len < r->in_cap) {
        if (ferror(r->f)) return sr_fail(err, "%s: read error (%s)", r->path, strerror(errno));
        r->eof = 1;
    }
    return 0;
}

/* Appends at least one byte of decoded text to buf; returns 1, 0 at end of input, -1 error */
static int refill(JsonlReader *r, SrError *err) {
    for (;;) {
        if (fill_input(r, err)) return -1;
        if (r->in_pos >= r->in_len) {
            if (r->zstd && r->frame_open)
                return sr_fail(err, "%s: truncated zstd stream (the file ends inside a frame)",
                               r->path);
            return 0;
        }
        if (!r->zstd) {
            size_t n = r->in_len - r->in_pos;
            buf_reserve(r, n);
            memcpy(r->buf + r->buf_len, r->inbuf + r->in_pos, n);
            r->buf_len += n;
            r->in_pos = r->in_len;
            return 1;
        }
        buf_reserve(r, BLOCK);
        ZSTD_inBuffer in = {r->inbuf, r->in_len, r->in_pos};
        ZSTD_outBuffer out = {r->buf + r->buf_len, r->buf_cap - r->buf_len, 0};
        size_t ret = ZSTD_decompressStream(r->dctx, &out, &in);
        if (ZSTD_isError(ret))
            return sr_fail(err, "%s: zstd: %s (after %lld compressed bytes)", r->path,
                           ZSTD_getErrorName(ret), r->bytes_in);
        r->in_pos = in.pos;
        r->frame_open = ret != 0;
        r->buf_len += out.pos;
        if (out.pos > 0) return 1;
    }
}

static void set_line(JsonlReader *r, const char *p, size_t n) {
    if (n + 1 > r->line_cap) {
        r->line_cap = n + 1 > 2 * r->line_cap ? n + 1 : 2 * r->line_cap;
        r->line = sr_realloc(r->line, r->line_cap);
    }
    memcpy(r->line, p, n);
    if (n > 0 && p[n - 1] == '\r') n--;
    r->line[n] = '\0';
    r->len = n;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

int jsonl_next(JsonlReader *r, SrError *err) {
    size_t scan = r->buf_pos;
    for (;;) {
        char *nl = r->buf_len > scan ? memchr(r->buf + scan, '\n', r->buf_len - scan) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - (r->buf + r->buf_pos));
            r->lineno++;
            const char *start = r->buf + r->buf_pos;
            r->buf_pos += n + 1;
            if (is_blank(start, n)) {
                scan = r->buf_pos;
                continue;
            }
            set_line(r, start, n);
            return 1;
        }
        size_t have = r->buf_len - r->buf_pos;
        int got = refill(r, err);
        if (got < 0) return -1;
        scan = r->buf_pos + have; /* buf may have been compacted: resume after what we saw */
        if (got == 0) {
            if (r->buf_len == r->buf_pos) return 0;
            /* a last line without '\n' */
            r->lineno++;
            const char *start = r->buf + r->buf_pos;
            size_t n = r->buf_len - r->buf_pos;
            r->buf_pos = r->buf_len;
            if (is_blank(start, n)) return 0;
            set_line(r, start, n);
            return 1;
        }
    }
}

cJSON *jsonl_parse_line(const JsonlReader *r, SrError *err) {
    cJSON *v = sr_json_parse(r->line, r->len, err);
    if (!v) sr_fail_prefix(err, "%s:%ld", r->path, r->lineno);
    return v;
}

long jsonl_count_lines(const char *path, SrError *err) {
    JsonlReader r;
    if (jsonl_open(&r, path, err)) return -1;
    long n = 0;
    int got;
    while ((got = jsonl_next(&r, err)) == 1) n++;
    jsonl_close(&r);
    return got < 0 ? -1 : n;
}
