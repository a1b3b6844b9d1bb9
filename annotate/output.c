/*
 * Annotated output with resume (see output.h).
 */
#include "output.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/jsonl.h"
#include "../common/json.h"

#define SYNC_EVERY_S 5.0

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void add_key(AnnotateOut *o, long long k) {
    if (o->n_keys == o->cap_keys) {
        o->cap_keys = o->cap_keys ? 2 * o->cap_keys : 1024;
        o->keys = sr_realloc(o->keys, (size_t)o->cap_keys * sizeof(long long));
    }
    o->keys[o->n_keys++] = k;
}

/* cuts a partial last line (no '\n') off the file; returns its new size or -1 */
static long long cut_partial_tail(const char *path, SrError *err) {
    FILE *f = fopen(path, "rb+");
    if (!f) return sr_fail(err, "%s: cannot open (%s)", path, strerror(errno));
    if (fseeko(f, 0, SEEK_END) != 0) {
        fclose(f);
        return sr_fail(err, "%s: cannot seek", path);
    }
    long long size = ftello(f), keep = 0;
    char buf[4096];
    for (long long end = size; end > 0;) { /* find the last '\n' */
        long long start = end > (long long)sizeof buf ? end - (long long)sizeof buf : 0;
        fseeko(f, start, SEEK_SET);
        size_t n = fread(buf, 1, (size_t)(end - start), f);
        long long i = (long long)n - 1;
        while (i >= 0 && buf[i] != '\n') i--;
        if (i >= 0) {
            keep = start + i + 1;
            break;
        }
        end = start;
    }
    int rc = 0;
    if (keep < size) {
        sr_log("%s: removing a partial last line (%lld bytes) left by an interrupted run", path, size - keep);
        if (ftruncate(fileno(f), (off_t)keep) != 0) rc = sr_fail(err, "%s: cannot truncate (%s)", path, strerror(errno));
    }
    fclose(f);
    return rc ? -1 : keep;
}

int annotate_out_open(AnnotateOut *o, const char *path, const cJSON *provenance, int overwrite,
                      SrError *err) {
    memset(o, 0, sizeof *o);
    if (!path || !strcmp(path, "-")) return sr_fail(err, "--output must be a file (rows are appended and resumed)");
    o->path = sr_strdup(path);
    struct stat sb;
    int exists = stat(path, &sb) == 0;
    if (exists && !S_ISREG(sb.st_mode)) return sr_fail(err, "%s: exists and is not a regular file", path);
    if (exists && !overwrite) {
        if (cut_partial_tail(path, err) < 0) return -1;
        char *want = cJSON_PrintUnformatted(provenance);
        JsonlReader r;
        if (jsonl_open(&r, path, err)) {
            cJSON_free(want);
            return -1;
        }
        int got, rc = 0;
        while ((got = jsonl_next(&r, err)) == 1) {
            cJSON *row = sr_json_parse(r.line, r.len, NULL);
            const cJSON *line = row ? cJSON_GetObjectItemCaseSensitive(row, "source_line") : NULL;
            const cJSON *ti = row ? cJSON_GetObjectItemCaseSensitive(row, "trace_index") : NULL;
            const cJSON *prov = row ? cJSON_GetObjectItemCaseSensitive(row, "annotation") : NULL;
            if (!cJSON_IsNumber(line) || !cJSON_IsNumber(ti) || !prov) {
                rc = sr_fail(err, "%s:%ld: not a row this command wrote (no source_line, trace_index, "
                             "annotation); remove the file or pass --overwrite", path, r.lineno);
                cJSON_Delete(row);
                break;
            }
            char *have = cJSON_PrintUnformatted(prov);
            int same = strcmp(have, want) == 0;
            cJSON_free(have);
            if (!same) {
                rc = sr_fail(err, "%s:%ld: written with different settings (its \"annotation\" "
                             "differs from this run's); use the same command to resume, or --overwrite",
                             path, r.lineno);
                cJSON_Delete(row);
                break;
            }
            add_key(o, annotate_key((long)line->valuedouble, (int)ti->valuedouble));
            cJSON_Delete(row);
        }
        jsonl_close(&r);
        cJSON_free(want);
        if (got < 0) rc = -1;
        if (rc) {
            free(o->keys);
            free(o->path);
            memset(o, 0, sizeof *o);
            return -1;
        }
        if (o->n_keys > 0) qsort(o->keys, (size_t)o->n_keys, sizeof(long long), cmp_ll);
        for (long i = 1; i < o->n_keys; i++)
            if (o->keys[i] == o->keys[i - 1]) {
                long long k = o->keys[i];
                free(o->keys);
                free(o->path);
                memset(o, 0, sizeof *o);
                return sr_fail(err, "%s: source line %lld trace %lld appears twice", path, k >> 20,
                               (k & 0xFFFFF) - 1);
            }
        o->n_resumed = o->n_keys;
    }
    o->f = fopen(path, exists && !overwrite ? "ab" : "wb");
    if (!o->f) {
        sr_fail(err, "%s: cannot open for writing (%s)", path, strerror(errno));
        free(o->keys);
        free(o->path);
        memset(o, 0, sizeof *o);
        return -1;
    }
    o->last_sync = sr_now();
    return 0;
}

int annotate_out_has(const AnnotateOut *o, long line, int trace_index) {
    long long k = annotate_key(line, trace_index);
    return o->n_keys > 0 && bsearch(&k, o->keys, (size_t)o->n_keys, sizeof(long long), cmp_ll) != NULL;
}

int annotate_out_write(AnnotateOut *o, const char *raw, const cJSON *add, SrError *err) {
    char *extra = cJSON_PrintUnformatted(add);
    size_t el = strlen(extra);
    SR_ASSERT(el >= 2 && extra[0] == '{' && extra[el - 1] == '}');
    /* the raw row's text up to its closing brace */
    size_t rl = strlen(raw);
    while (rl > 0 && (raw[rl - 1] == ' ' || raw[rl - 1] == '\t' || raw[rl - 1] == '\r')) rl--;
    char *line = NULL;
    size_t ll = 0;
    cJSON *row = sr_json_parse(raw, strlen(raw), NULL);
    int clash = 0;
    for (const cJSON *e = add->child; e && row; e = e->next)
        if (cJSON_GetObjectItemCaseSensitive(row, e->string)) clash = 1;
    if (row && !clash && rl > 0 && raw[rl - 1] == '}') {
        /* "{...}" + ", " + fields: keep every input byte as it was */
        int empty = cJSON_GetArraySize(row) == 0;
        ll = (rl - 1) + (empty ? 0 : 2) + (el - 2) + 2;
        line = sr_malloc(ll + 1);
        size_t k = rl - 1;
        memcpy(line, raw, k);
        if (!empty) line[k++] = ',', line[k++] = ' ';
        memcpy(line + k, extra + 1, el - 2);
        k += el - 2;
        line[k++] = '}';
        line[k++] = '\n';
        ll = k;
    } else {
        SR_ASSERT(row);
        for (const cJSON *e = add->child; e; e = e->next) {
            cJSON_DeleteItemFromObjectCaseSensitive(row, e->string);
            cJSON_AddItemToObject(row, e->string, cJSON_Duplicate(e, 1));
        }
        char *t = cJSON_PrintUnformatted(row);
        ll = strlen(t);
        line = sr_malloc(ll + 2);
        memcpy(line, t, ll);
        line[ll++] = '\n';
        cJSON_free(t);
    }
    cJSON_Delete(row);
    cJSON_free(extra);
    int rc = 0;
    if (fwrite(line, 1, ll, o->f) != ll || fflush(o->f) != 0)
        rc = sr_fail(err, "%s: write failed (%s)", o->path, strerror(errno));
    free(line);
    if (!rc && sr_now() - o->last_sync > SYNC_EVERY_S) {
        fsync(fileno(o->f));
        o->last_sync = sr_now();
    }
    return rc;
}

int annotate_out_close(AnnotateOut *o, SrError *err) {
    int rc = 0;
    if (o->f) {
        if (fflush(o->f) || fsync(fileno(o->f))) rc = sr_fail(err, "%s: flush failed (%s)", o->path, strerror(errno));
        if (fclose(o->f)) rc = sr_fail(err, "%s: close failed (%s)", o->path, strerror(errno));
    }
    free(o->keys);
    free(o->path);
    memset(o, 0, sizeof *o);
    return rc;
}
