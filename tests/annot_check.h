/*
 * Checks of an annotate output file, shared by the end-to-end tests (header-only):
 *   - each row's tags pair up (open, close, ...), none nested, none left open;
 *   - the annotated text minus its tags is the trace; "spans" are exactly where the tags are
 *     (character offsets), sorted, disjoint, not touching;
 *   - every span end is a token edge of the trace's tokenization (never splits a token) and a
 *     character boundary;
 *   - (boundary_kind >= 0) every span end sits on a line or sentence end, re-derived here
 *     independently of annotate/spans.c;
 *   - offload counts agree with the spans; source_line/trace_index pairs are unique.
 * Fills an AnnotCheck with what it saw (for target checks by the caller).
 */
#ifndef SR_TESTS_ANNOT_CHECK_H
#define SR_TESTS_ANNOT_CHECK_H

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../common/jsonl.h"
#include "../data/tokenizer.h"
#include "harness.h"

typedef struct AnnotCheck {
    long rows, spans, bad_rows, off_token_edge, off_boundary, forced;
    double share_sum, share_min, share_max;
    long long keys[4096];
    long n_keys;
} AnnotCheck;

/* byte offset of code point index cp in s */
static size_t ac_byte_of(const char *s, size_t n, long cp) {
    long k = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (k == cp) return i;
            k++;
        }
    }
    return n;
}

static int ac_is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* a line or sentence boundary at byte b of s: after a newline, or after [.!?] (+ a closing
 * bracket or quote, + spaces) that is followed by whitespace; the text's ends count */
static int ac_natural_boundary(const char *s, size_t n, size_t b) {
    if (b == 0 || b >= n) return 1;
    if (s[b - 1] == '\n') return 1;
    size_t p = b;
    int ws = 0;
    while (p > 0 && (s[p - 1] == ' ' || s[p - 1] == '\t')) p--, ws = 1;
    if (p == 0) return 0;
    char c = s[p - 1];
    int term = c == '.' || c == '!' || c == '?';
    if (!term && p > 1 && (c == ')' || c == '"' || c == '\'')) term = s[p - 2] == '.' || s[p - 2] == '!' || s[p - 2] == '?';
    return term && (ws || ac_is_ws(s[b]));
}

/* checks the file; returns 0 when it could be read */
static int annot_check_file(const char *path, const Tokenizer *tok, int boundary_kind, AnnotCheck *ac) {
    memset(ac, 0, sizeof *ac);
    ac->share_min = 1e9;
    ac->share_max = -1e9;
    JsonlReader r;
    SrError err = {{0}};
    if (jsonl_open(&r, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    while (jsonl_next(&r, &err) == 1) {
        cJSON *row = cJSON_Parse(r.line);
        const cJSON *ann = cJSON_GetObjectItemCaseSensitive(row, "annotated");
        const cJSON *spans = cJSON_GetObjectItemCaseSensitive(row, "spans");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(row, "offload");
        const cJSON *line = cJSON_GetObjectItemCaseSensitive(row, "source_line");
        const cJSON *ti = cJSON_GetObjectItemCaseSensitive(row, "trace_index");
        if (!cJSON_IsString(ann) || !cJSON_IsArray(spans) || !cJSON_IsObject(off) || !cJSON_IsNumber(line) ||
            !cJSON_IsNumber(ti)) {
            ac->bad_rows++;
            cJSON_Delete(row);
            continue;
        }
        ac->rows++;
        if (ac->n_keys < 4096) ac->keys[ac->n_keys++] = ((long long)line->valuedouble << 20) | (long long)(ti->valuedouble + 1);
        /* strip tags, recording where they were (code points of the plain text) */
        const char *a = ann->valuestring;
        size_t an = strlen(a), pn = 0;
        char *plain = malloc(an + 1);
        long cp = 0, tag_cp[2048];
        int n_tags = 0, open = 0, bad = 0;
        for (size_t i = 0; i < an;) {
            if (!strncmp(a + i, "<bigmodel>", 10)) {
                if (open) bad = 1;
                open = 1;
                if (n_tags < 2048) tag_cp[n_tags++] = cp;
                i += 10;
            } else if (!strncmp(a + i, "</bigmodel>", 11)) {
                if (!open) bad = 1;
                open = 0;
                if (n_tags < 2048) tag_cp[n_tags++] = cp;
                i += 11;
            } else {
                if (((unsigned char)a[i] & 0xC0) != 0x80) cp++;
                plain[pn++] = a[i++];
            }
        }
        plain[pn] = '\0';
        if (open) bad = 1;
        int ns = cJSON_GetArraySize(spans);
        if (bad || n_tags != 2 * ns) bad = 1;
        for (int k = 0; k < ns && !bad; k++) {
            const cJSON *sp = cJSON_GetArrayItem(spans, k);
            long s0 = (long)cJSON_GetArrayItem(sp, 0)->valuedouble, s1 = (long)cJSON_GetArrayItem(sp, 1)->valuedouble;
            if (s0 != tag_cp[2 * k] || s1 != tag_cp[2 * k + 1] || s1 <= s0) bad = 1;
            if (k > 0 && s0 <= tag_cp[2 * k - 1]) bad = 1; /* disjoint, not touching */
        }
        /* token edges of the plain trace */
        int32_t *ids = NULL;
        size_t nid = 0;
        tokenizer_encode(tok, plain, pn, &ids, &nid, &err);
        unsigned char *edge = calloc(pn + 1, 1);
        size_t at = 0;
        edge[0] = 1;
        for (size_t t = 0; t < nid; t++) {
            char *b = NULL;
            size_t bl = 0;
            tokenizer_decode(tok, &ids[t], 1, &b, &bl, &err);
            free(b);
            at += bl;
            if (at <= pn) edge[at] = 1;
        }
        long tokens_in = 0;
        for (int k = 0; k < ns && !bad; k++) {
            const cJSON *sp = cJSON_GetArrayItem(spans, k);
            size_t b0 = ac_byte_of(plain, pn, (long)cJSON_GetArrayItem(sp, 0)->valuedouble);
            size_t b1 = ac_byte_of(plain, pn, (long)cJSON_GetArrayItem(sp, 1)->valuedouble);
            if (!edge[b0] || !edge[b1]) ac->off_token_edge++;
            if (boundary_kind >= 0 && (!ac_natural_boundary(plain, pn, b0) || !ac_natural_boundary(plain, pn, b1)))
                ac->off_boundary++;
            /* tokens inside: edges strictly inside (b0, b1] */
            for (size_t b = b0 + 1; b <= b1; b++) tokens_in += edge[b];
        }
        const cJSON *tk = cJSON_GetObjectItemCaseSensitive(off, "tokens");
        const cJSON *tt = cJSON_GetObjectItemCaseSensitive(off, "total_tokens");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(off, "token_share");
        if (!bad && (!cJSON_IsNumber(tk) || (long)tk->valuedouble != tokens_in || !cJSON_IsNumber(tt) ||
                     (size_t)tt->valuedouble != nid))
            bad = 2;
        if (bad) {
            ac->bad_rows++;
            fprintf(stderr, "annot_check: %s:%ld (source line %.0f): %s\n", path, r.lineno, line->valuedouble,
                    bad == 1 ? "tags/spans disagree" : "offload counts disagree with the spans");
        }
        double share = cJSON_IsNumber(sh) ? sh->valuedouble : -1;
        ac->share_sum += share;
        if (share < ac->share_min) ac->share_min = share;
        if (share > ac->share_max) ac->share_max = share;
        ac->spans += ns;
        const cJSON *det = cJSON_GetObjectItemCaseSensitive(row, "annotation_detail");
        const cJSON *fc = cJSON_GetObjectItemCaseSensitive(det, "forced_cuts");
        if (cJSON_IsNumber(fc)) ac->forced += (long)fc->valuedouble;
        free(edge);
        free(ids);
        free(plain);
        cJSON_Delete(row);
    }
    jsonl_close(&r);
    return 0;
}

/* 1 if every key appears once */
static int annot_keys_unique(const AnnotCheck *ac) {
    for (long i = 0; i < ac->n_keys; i++)
        for (long j = i + 1; j < ac->n_keys; j++)
            if (ac->keys[i] == ac->keys[j]) return 0;
    return 1;
}

#endif
