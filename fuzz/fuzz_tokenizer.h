/*
 * What the two tokenizer harnesses (fuzz_tokenizer_json.c, fuzz_tokenizer_files.c) do with a
 * tokenizer that loaded: encode the text, decode the ids (whole and streamed), decode ids made
 * from the input's bytes, add the <bigmodel> tokens and encode again. Invariants that hold for
 * any table: every id encode gives is a token of the tokenizer, and decoding never fails.
 */
#ifndef SR_FUZZ_TOKENIZER_H
#define SR_FUZZ_TOKENIZER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../data/tokenizer.h"

static void fuzz_tokenizer_roundtrip(const Tokenizer *tok, const char *text, size_t len) {
    SrError err;
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(tok, text, len, &ids, &n, &err) != 0) abort();
    for (size_t i = 0; i < n; i++)
        if (!tokenizer_id_to_token(tok, ids[i])) abort(); /* encode made an id with no token */
    char *out = NULL;
    size_t out_len = 0;
    if (tokenizer_decode(tok, ids, n, &out, &out_len, &err) != 0) abort();
    /* the stream gives the same bytes */
    TokenizerStream st;
    tokenizer_stream_init(&st);
    size_t streamed = 0;
    for (size_t i = 0; i < n; i++) {
        char *p = NULL;
        size_t pn = 0;
        if (tokenizer_stream_put(tok, &st, ids[i], &p, &pn, &err) != 0) abort();
        if (streamed + pn > out_len || memcmp(out + streamed, p, pn) != 0) abort();
        streamed += pn;
        free(p);
    }
    char tail[8];
    size_t tn = tokenizer_stream_flush(&st, tail);
    if (streamed + tn != out_len || memcmp(out + streamed, tail, tn) != 0) abort();
    free(out);
    free(ids);
}

static void fuzz_tokenizer_exercise(Tokenizer *tok, const char *text, size_t len,
                                    const uint8_t *data, size_t size) {
    fuzz_tokenizer_roundtrip(tok, text, len);
    /* ids from the input's bytes: small ones, ones past the end, negative ones */
    size_t n = size / 4 < 64 ? size / 4 : 64;
    int32_t ids[64];
    for (size_t i = 0; i < n; i++) memcpy(&ids[i], data + 4 * i, 4);
    for (size_t i = 0; i < n; i += 2) ids[i] = (int32_t)((uint32_t)ids[i] % (uint32_t)(tokenizer_vocab_size(tok) + 8));
    char *out = NULL;
    size_t out_len;
    SrError err;
    if (tokenizer_decode(tok, ids, n, &out, &out_len, &err) != 0) abort();
    free(out);
    for (int32_t id = -2; id < tokenizer_vocab_size(tok) + 2 && id < 64; id++) {
        tokenizer_id_to_token(tok, id);
        tokenizer_is_special(tok, id);
    }
    int32_t o, c;
    if (tokenizer_add_bigmodel_tokens(tok, &o, &c, &err) == 0) {
        if (tokenizer_token_id(tok, "<bigmodel>") != o || tokenizer_token_id(tok, "</bigmodel>") != c) abort();
        fuzz_tokenizer_roundtrip(tok, text, len);
    }
}

#endif
