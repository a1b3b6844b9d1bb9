/*
 * JSONL input: plain or zstd-compressed (".zst", or any file that starts with the zstd magic),
 * read line by line with line numbers, any line length, "-" for stdin. Blank lines are skipped
 * (but counted in the line numbers, so an error names the line an editor shows).
 *
 *   JsonlReader r;
 *   if (jsonl_open(&r, path, err)) ...
 *   while ((got = jsonl_next(&r, err)) == 1) use(r.line, r.len, r.lineno);
 *   jsonl_close(&r);
 *
 * r.line is NUL-terminated and owned by the reader (valid until the next call); a trailing
 * "\n" or "\r\n" is removed. bytes_in counts the bytes consumed from the file (compressed
 * bytes for .zst), for progress against the file size.
 */
#ifndef SR_DATA_JSONL_H
#define SR_DATA_JSONL_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "error.h"

typedef struct JsonlReader {
    char *path;
    FILE *f;
    int is_stdin, zstd;
    void *dctx;              /* ZSTD_DCtx when zstd */
    unsigned char *inbuf;    /* compressed bytes (zstd) */
    size_t in_len, in_pos, in_cap;
    char *buf;               /* decoded bytes not yet returned as lines */
    size_t buf_len, buf_pos, buf_cap;
    int eof;                 /* no more bytes from the file */
    int frame_open;          /* zstd: inside a frame (EOF here = truncated file) */
    char *line;              /* the current line */
    size_t len, line_cap;
    long lineno;
    long long bytes_in, file_size; /* file_size: -1 when unknown (stdin, pipe) */
} JsonlReader;

int jsonl_open(JsonlReader *r, const char *path, SrError *err);
/* 1 = got a line (r->line, r->len, r->lineno), 0 = end of file, -1 = read error */
int jsonl_next(JsonlReader *r, SrError *err);
void jsonl_close(JsonlReader *r);

/* Parses the current line strictly (common/json.h: one value, UTF-8, no NUL in strings, last
 * duplicate key wins). Returns the value, or NULL with err "PATH:LINE: what is wrong". */
cJSON *jsonl_parse_line(const JsonlReader *r, SrError *err);

/* Number of non-blank lines of a file (reads it once); -1 with err on failure. */
long jsonl_count_lines(const char *path, SrError *err);

#endif
