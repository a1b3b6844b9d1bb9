/*
 * Encoding: text -> ids, step for step as Hugging Face `tokenizers` does it for Qwen2:
 *   0. invalid UTF-8 -> U+FFFD per maximal invalid subpart (HF only ever sees a str);
 *   1. added tokens that are not "normalized" split the raw text (leftmost-longest, with the
 *      lstrip / rstrip / single_word rules of HF's AddedVocabulary::find_matches);
 *   2. each remaining piece is NFC-normalised, then split by the "normalized" added tokens;
 *   3. each remaining piece is cut by the Qwen2 regex (written out below as a hand-made
 *      matcher: one pass, no backtracking needed);
 *   4. each pre-token's bytes are merged by BPE rank (lowest rank first, leftmost on ties,
 *      with a heap as HF's Word::merge_all), after a whole-word vocabulary check that is
 *      memoised per id.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

typedef struct IdBuf {
    int32_t *ids;
    size_t n, cap;
} IdBuf;

static inline void emit(IdBuf *b, int32_t id) {
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 256;
        b->ids = sr_realloc(b->ids, b->cap * sizeof *b->ids);
    }
    b->ids[b->n++] = id;
}

typedef struct HeapItem {
    int32_t rank, pos, id;
} HeapItem;

/* Per-call scratch, grown on demand. */
typedef struct Scratch {
    int32_t *cp;      /* code points of a piece */
    unsigned char *cl; /* their classes */
    uint32_t *off;    /* byte offset of each code point (+ one past the end) */
    size_t cap_chars;
    int32_t *sym_id, *sym_prev, *sym_next; /* BPE symbols */
    unsigned char *sym_alive;
    size_t cap_sym;
    HeapItem *heap;
    size_t cap_heap;
} Scratch;

static void scratch_free(Scratch *s) {
    free(s->cp);
    free(s->cl);
    free(s->off);
    free(s->sym_id);
    free(s->sym_prev);
    free(s->sym_next);
    free(s->sym_alive);
    free(s->heap);
}

/* ---- BPE ------------------------------------------------------------------------------- */

static inline int heap_less(const HeapItem *a, const HeapItem *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(Scratch *sc, size_t *n, HeapItem it) {
    if (*n == sc->cap_heap) {
        sc->cap_heap = sc->cap_heap ? sc->cap_heap * 2 : 64;
        sc->heap = sr_realloc(sc->heap, sc->cap_heap * sizeof *sc->heap);
    }
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&it, &sc->heap[p])) break;
        sc->heap[i] = sc->heap[p];
        i = p;
    }
    sc->heap[i] = it;
}

static HeapItem heap_pop(Scratch *sc, size_t *n) {
    HeapItem top = sc->heap[0], last = sc->heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(&sc->heap[c + 1], &sc->heap[c])) c++;
        if (!heap_less(&sc->heap[c], &last)) break;
        sc->heap[i] = sc->heap[c];
        i = c;
    }
    if (*n) sc->heap[i] = last;
    return top;
}

/* BPE of one pre-token's bytes w[0..n). */
static void bpe_merge(const Tokenizer *tok, const unsigned char *w, size_t n, IdBuf *out,
                      Scratch *sc) {
    if (n > sc->cap_sym) {
        sc->cap_sym = n * 2;
        sc->sym_id = sr_realloc(sc->sym_id, sc->cap_sym * sizeof(int32_t));
        sc->sym_prev = sr_realloc(sc->sym_prev, sc->cap_sym * sizeof(int32_t));
        sc->sym_next = sr_realloc(sc->sym_next, sc->cap_sym * sizeof(int32_t));
        sc->sym_alive = sr_realloc(sc->sym_alive, sc->cap_sym);
    }
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = tok->byte_id[w[i]];
        if (id < 0) continue; /* a byte missing from the vocab is dropped, as HF does without unk */
        sc->sym_id[m] = id;
        sc->sym_prev[m] = m - 1;
        sc->sym_next[m] = m + 1;
        sc->sym_alive[m] = 1;
        m++;
    }
    if (m == 0) return;
    sc->sym_next[m - 1] = -1;
    size_t hn = 0;
    int32_t rank, nid;
    for (int32_t i = 0; i + 1 < m; i++)
        if (tok_merge_lookup(tok, sc->sym_id[i], sc->sym_id[i + 1], &rank, &nid))
            heap_push(sc, &hn, (HeapItem){rank, i, nid});
    while (hn) {
        HeapItem top = heap_pop(sc, &hn);
        int32_t pos = top.pos;
        if (!sc->sym_alive[pos]) continue;
        int32_t nx = sc->sym_next[pos];
        if (nx < 0) continue;
        /* an expired entry: the pair at pos changed since it was pushed */
        if (!tok_merge_lookup(tok, sc->sym_id[pos], sc->sym_id[nx], &rank, &nid) || nid != top.id)
            continue;
        sc->sym_id[pos] = nid;
        sc->sym_alive[nx] = 0;
        int32_t nn = sc->sym_next[nx];
        sc->sym_next[pos] = nn;
        if (nn >= 0) sc->sym_prev[nn] = pos;
        int32_t pv = sc->sym_prev[pos];
        if (pv >= 0 && tok_merge_lookup(tok, sc->sym_id[pv], nid, &rank, &nid))
            heap_push(sc, &hn, (HeapItem){rank, pv, nid});
        nid = sc->sym_id[pos];
        if (nn >= 0 && tok_merge_lookup(tok, nid, sc->sym_id[nn], &rank, &nid))
            heap_push(sc, &hn, (HeapItem){rank, pos, nid});
    }
    for (int32_t i = 0; i >= 0; i = sc->sym_next[i]) emit(out, sc->sym_id[i]);
}

static void bpe_word(const Tokenizer *tok, const unsigned char *w, size_t n, IdBuf *out,
                     Scratch *sc) {
    if (n == 1) {
        if (tok->byte_id[w[0]] >= 0) emit(out, tok->byte_id[w[0]]);
        return;
    }
    int32_t whole = tok_vocab_lookup(tok, (const char *)w, n);
    unsigned char state = 0;
    if (whole >= 0) {
        if (tok->ignore_merges) {
            emit(out, whole);
            return;
        }
        /* Most pre-tokens are one vocab token; whether BPE really yields it is a property of
         * the token alone, so it is worked out once and remembered (relaxed atomics: every
         * thread that races here stores the same value). */
        state = __atomic_load_n(&tok->whole_ok[whole], __ATOMIC_RELAXED);
        if (state == 1) {
            emit(out, whole);
            return;
        }
    }
    size_t before = out->n;
    bpe_merge(tok, w, n, out, sc);
    if (whole >= 0 && state == 0) {
        unsigned char v = (out->n - before == 1 && out->ids[before] == whole) ? 1 : 2;
        __atomic_store_n(&tok->whole_ok[whole], v, __ATOMIC_RELAXED);
    }
}

/* ---- the Qwen2 split regex ------------------------------------------------------------- */

static inline int32_t ascii_lower(int32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Length (in code points) of the regex match starting at code point i of m:
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N} |
 *   ' '?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 * Alternatives are tried in order (leftmost-first, as Oniguruma does). */
static size_t regex_match(const int32_t *cp, const unsigned char *cl, size_t i, size_t m) {
    if (cp[i] == '\'' && i + 1 < m) {
        int32_t c1 = ascii_lower(cp[i + 1]);
        if (c1 == 0x17F) c1 = 's'; /* LATIN SMALL LETTER LONG S case-folds to s */
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if (i + 2 < m) {
            int32_t c2 = ascii_lower(cp[i + 2]);
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
                return i + 3;
        }
    }
    int c = cl[i];
    size_t j;
    if (c == TOK_CL_LETTER) {
        for (j = i + 1; j < m && cl[j] == TOK_CL_LETTER; j++) {}
        return j;
    }
    if ((c == TOK_CL_OTHER || c == TOK_CL_SPACE) && i + 1 < m && cl[i + 1] == TOK_CL_LETTER) {
        for (j = i + 2; j < m && cl[j] == TOK_CL_LETTER; j++) {}
        return j;
    }
    if (c == TOK_CL_NUMBER) return i + 1;
    size_t k = (cp[i] == ' ' && i + 1 < m && cl[i + 1] == TOK_CL_OTHER) ? i + 1 : i;
    if (cl[k] == TOK_CL_OTHER) {
        for (j = k + 1; j < m && cl[j] == TOK_CL_OTHER; j++) {}
        while (j < m && cl[j] == TOK_CL_NEWLINE) j++;
        return j;
    }
    /* whitespace: c is SPACE or NEWLINE */
    size_t last_nl = (size_t)-1;
    for (j = i; j < m && (cl[j] == TOK_CL_SPACE || cl[j] == TOK_CL_NEWLINE); j++)
        if (cl[j] == TOK_CL_NEWLINE) last_nl = j;
    if (last_nl != (size_t)-1) return last_nl + 1; /* \s*[\r\n]+ */
    if (j == m) return j;                          /* \s+(?!\S) at the end */
    if (j - i >= 2) return j - 1;                  /* \s+(?!\S): leave one before the \S */
    return j;                                      /* \s+ */
}

static const unsigned char ascii_class[128] = {
    /* 0x00 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 3, 3, 4, 0, 0,
    /* 0x10 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x20 */ 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x30 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0,
    /* 0x40 */ 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x50 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    /* 0x60 */ 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x70 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
};

/* Pre-tokenizes the (valid UTF-8, normalised) piece s[0..n) and BPE-encodes each pre-token. */
static void encode_pretokens(const Tokenizer *tok, const char *s, size_t n, IdBuf *out,
                             Scratch *sc) {
    if (n + 1 > sc->cap_chars) {
        sc->cap_chars = (n + 1) * 2;
        sc->cp = sr_realloc(sc->cp, sc->cap_chars * sizeof *sc->cp);
        sc->cl = sr_realloc(sc->cl, sc->cap_chars);
        sc->off = sr_realloc(sc->off, sc->cap_chars * sizeof *sc->off);
    }
    const unsigned char *u = (const unsigned char *)s;
    size_t m = 0;
    for (size_t i = 0; i < n; m++) {
        sc->off[m] = (uint32_t)i;
        if (u[i] < 0x80) {
            sc->cp[m] = u[i];
            sc->cl[m] = ascii_class[u[i]];
            i++;
        } else {
            int32_t c;
            i += (size_t)tok_utf8_next(u + i, &c);
            sc->cp[m] = c;
            sc->cl[m] = (unsigned char)tok_cp_class(c);
        }
    }
    sc->off[m] = (uint32_t)n;
    for (size_t i = 0; i < m;) {
        size_t j = regex_match(sc->cp, sc->cl, i, m);
        bpe_word(tok, u + sc->off[i], sc->off[j] - sc->off[i], out, sc);
        i = j;
    }
}

/* ---- added tokens ---------------------------------------------------------------------- */

typedef struct Segment {
    size_t a, b;
    int added; /* index into tok->added, -1 for text */
} Segment;

typedef struct SegBuf {
    Segment *seg;
    size_t n, cap;
} SegBuf;

static void seg_push(SegBuf *sb, size_t a, size_t b, int added) {
    if (sb->n == sb->cap) {
        sb->cap = sb->cap ? sb->cap * 2 : 16;
        sb->seg = sr_realloc(sb->seg, sb->cap * sizeof *sb->seg);
    }
    sb->seg[sb->n++] = (Segment){a, b, added};
}

static int32_t cp_before(const unsigned char *s, size_t i, size_t *start) {
    size_t j = i - 1;
    while (j > 0 && (s[j] & 0xC0) == 0x80) j--;
    int32_t cp;
    tok_utf8_next(s + j, &cp);
    if (start) *start = j;
    return cp;
}

/* Splits s[0..n) on the matcher's tokens (HF AddedVocabulary::find_matches). */
static void split_added(const Tokenizer *tok, const TokMatcher *mt, const char *s, size_t n,
                        SegBuf *sb) {
    const unsigned char *u = (const unsigned char *)s;
    sb->n = 0;
    size_t start_offset = 0, pos = 0;
    while (pos < n) {
        /* leftmost-longest: the first position where any pattern matches, its longest */
        const TokPattern *hit = NULL;
        size_t p = pos;
        for (; p < n && !hit; p++) {
            int f = mt->first[u[p]], l = mt->first[u[p] + 1];
            for (int k = f; k < l; k++) {
                const TokPattern *pt = &mt->pats[k];
                if (pt->len <= n - p && memcmp(s + p, pt->s, pt->len) == 0) {
                    hit = pt;
                    break;
                }
            }
        }
        if (!hit) break;
        size_t start = p - 1, stop = start + hit->len;
        pos = stop;
        const TokAdded *t = &tok->added[hit->added];
        if (t->single_word) {
            int start_space = start == 0 || !tok_is_word_char(cp_before(u, start, NULL));
            int32_t nc = 0;
            if (stop < n) tok_utf8_next(u + stop, &nc);
            int stop_space = stop == n || !tok_is_word_char(nc);
            if (!start_space || !stop_space) continue;
        }
        if (t->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t st;
                int32_t c = cp_before(u, ns, &st);
                if (!tok_is_white_space(c)) break;
                ns = st;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (t->rstrip) {
            while (stop < n) {
                int32_t c;
                int k = tok_utf8_next(u + stop, &c);
                if (!tok_is_white_space(c)) break;
                stop += (size_t)k;
            }
        }
        if (start_offset < start) seg_push(sb, start_offset, start, -1);
        seg_push(sb, start, stop, hit->added);
        start_offset = stop;
    }
    if (start_offset != n) seg_push(sb, start_offset, n, -1);
}

/* Steps 2-4 for a piece of raw text between non-normalized added tokens. */
static int encode_piece(const Tokenizer *tok, const char *s, size_t n, IdBuf *out, Scratch *sc,
                        SegBuf *sb, SrError *err) {
    char *norm = NULL;
    if (tok->do_nfc) {
        long m = tok_nfc(s, n, &norm);
        if (m < 0) return sr_fail(err, "encode: NFC normalisation failed");
        s = norm;
        n = (size_t)m;
    }
    if (tok->match_norm.n_pats == 0) {
        encode_pretokens(tok, s, n, out, sc);
    } else {
        split_added(tok, &tok->match_norm, s, n, sb);
        for (size_t k = 0; k < sb->n; k++) {
            Segment g = sb->seg[k];
            if (g.added >= 0) emit(out, tok->added[g.added].id);
            else encode_pretokens(tok, s + g.a, g.b - g.a, out, sc);
        }
    }
    free(norm);
    return 0;
}

int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int32_t **ids,
                     size_t *n_ids, SrError *err) {
    *ids = NULL;
    *n_ids = 0;
    size_t clen = 0;
    char *clean = tok_utf8_sanitize(text, len, &clen);
    const char *s = clean ? clean : text;
    size_t n = clean ? clen : len;
    IdBuf out = {0};
    Scratch sc = {0};
    SegBuf raw = {0}, norm = {0};
    int rc = 0;
    if (tok->match_raw.n_pats == 0) {
        rc = encode_piece(tok, s, n, &out, &sc, &norm, err);
    } else {
        split_added(tok, &tok->match_raw, s, n, &raw);
        for (size_t k = 0; k < raw.n && rc == 0; k++) {
            Segment g = raw.seg[k];
            if (g.added >= 0) emit(&out, tok->added[g.added].id);
            else rc = encode_piece(tok, s + g.a, g.b - g.a, &out, &sc, &norm, err);
        }
    }
    free(clean);
    free(raw.seg);
    free(norm.seg);
    scratch_free(&sc);
    if (rc) {
        free(out.ids);
        return -1;
    }
    if (!out.ids) out.ids = sr_malloc(sizeof(int32_t));
    *ids = out.ids;
    *n_ids = out.n;
    return 0;
}
