/*
 * sr_forced_model: writes a forced model directory (tests/forced_model.h) for the shell tests.
 *
 *   sr_forced_model --tokenizer DIR --out DIR [--start ID | --start-text TEXT] [--vocab N] ITEM...
 *     text:STRING   the tokens of STRING, in order
 *     ids:A,B,...   these ids
 *     coin:X|Y      X or Y (texts of one token each), equally likely
 *     eos           the tokenizer's EOS id
 *     at:STRING     no edge: the chain goes on from STRING's last token (a second segment,
 *                   e.g. what a small model writes after a span it handed to the big model)
 * The chain starts after the start token: by default the last token of "<think>\n", where the
 * R1 chat template's prompt ends. <bigmodel> and </bigmodel> are added to the tokenizer (as
 * `splitreason init` does), so "text:<bigmodel>" is the tag's id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/chat_template.h"
#include "forced_model.h"

static int one_token(const Tokenizer *tok, const char *text, size_t len, int32_t *id, SrError *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(tok, text, len, &ids, &n, err)) return -1;
    int rc = n == 1 ? 0 : sr_fail(err, "coin: '%.*s' is %zu tokens, not one", (int)len, text, n);
    if (!rc) *id = ids[0];
    free(ids);
    return rc;
}

static int item(ForcedChain *c, const Tokenizer *tok, const char *it, SrError *err) {
    if (!strncmp(it, "text:", 5)) return forced_chain_text(c, tok, it + 5, err);
    if (!strcmp(it, "eos")) {
        int32_t eos = tokenizer_eos_id(tok);
        if (eos < 0) return sr_fail(err, "eos: the tokenizer has no EOS");
        return forced_chain_ids(c, &eos, 1, err);
    }
    if (!strncmp(it, "at:", 3)) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (tokenizer_encode(tok, it + 3, strlen(it + 3), &ids, &n, err)) return -1;
        if (n == 0) return sr_fail(err, "at: '%s' has no tokens", it + 3);
        c->tail[0] = ids[n - 1];
        c->n_tail = 1;
        free(ids);
        return 0;
    }
    if (!strncmp(it, "ids:", 4)) {
        for (const char *p = it + 4; *p;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p) return sr_fail(err, "ids: '%s' is not a list of ids", it + 4);
            int32_t id = (int32_t)v;
            if (forced_chain_ids(c, &id, 1, err)) return -1;
            p = *end == ',' ? end + 1 : end;
            if (*end && *end != ',') return sr_fail(err, "ids: '%s' is not a list of ids", it + 4);
        }
        return 0;
    }
    if (!strncmp(it, "coin:", 5)) {
        const char *bar = strchr(it + 5, '|');
        if (!bar) return sr_fail(err, "coin: expected X|Y");
        int32_t a, b;
        if (one_token(tok, it + 5, (size_t)(bar - it - 5), &a, err) ||
            one_token(tok, bar + 1, strlen(bar + 1), &b, err))
            return -1;
        return forced_chain_coin(c, a, b, err);
    }
    return sr_fail(err, "unknown item '%s' (text:, ids:, coin:, at:, eos)", it);
}

int main(int argc, char **argv) {
    const char *tok_dir = NULL, *out = NULL, *start_text = R1_THINK_PREFIX;
    long start = -1, vocab = 0;
    int i = 1;
    for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
        if (!strcmp(argv[i], "--tokenizer")) tok_dir = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--start")) start = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--start-text")) start_text = argv[i + 1];
        else if (!strcmp(argv[i], "--vocab")) vocab = atol(argv[i + 1]);
        else break;
    }
    if (!tok_dir || !out || i >= argc) {
        fprintf(stderr, "usage: sr_forced_model --tokenizer DIR --out DIR [--start ID | --start-text T] [--vocab N] ITEM...\n");
        return 2;
    }
    SrError err;
    Tokenizer *tok = NULL;
    int32_t o, cl;
    if (tokenizer_load(&tok, tok_dir, &err) || tokenizer_add_bigmodel_tokens(tok, &o, &cl, &err)) {
        fprintf(stderr, "sr_forced_model: %s\n", err.msg);
        tokenizer_free(tok);
        return 1;
    }
    if (start < 0) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (tokenizer_encode(tok, start_text, strlen(start_text), &ids, &n, &err) || n == 0) {
            fprintf(stderr, "sr_forced_model: --start-text gives no token\n");
            free(ids);
            tokenizer_free(tok);
            return 1;
        }
        start = ids[n - 1];
        free(ids);
    }
    ForcedChain c;
    forced_chain_init(&c, (int32_t)start);
    int rc = 0;
    for (; i < argc && !rc; i++) rc = item(&c, tok, argv[i], &err);
    if (!rc) rc = forced_model_write(out, tok, &c, (int)vocab, &err);
    if (rc) fprintf(stderr, "sr_forced_model: %s\n", err.msg);
    forced_chain_free(&c);
    tokenizer_free(tok);
    return rc ? 1 : 0;
}
