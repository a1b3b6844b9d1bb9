/*
 * A toy world for the SFT tests, made in a few milliseconds: a 256-token tokenizer (+ BOS,
 * EOS and the two tags), a tiny Qwen2 model directory, and shards of a synthetic language in
 * which the tags are learnable from the previous token:
 *
 *   outside a span: tokens drawn uniformly from 0..19 except 6; after a 5 comes <bigmodel>
 *   inside a span:  tokens drawn uniformly from 0..19 except 5; after a 6 comes </bigmodel>
 *
 * Each document is BOS, three prompt tokens (not in the loss), then the completion and EOS
 * (in the loss), 30..110 tokens in all; documents are packed greedily into sequences of
 * max_length. A model that learned the bigrams "5 -> <bigmodel>" and "6 -> </bigmodel>" places
 * every tag; the content tokens stay at ln(19) = 2.94 nats.
 */
#ifndef SR_TESTS_SFT_FIXTURE_H
#define SR_TESTS_SFT_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/fileio.h"
#include "common/rng.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "model/model.h"

#define TOY_EOS 256
#define TOY_BOS 257
#define TOY_OPEN 258
#define TOY_CLOSE 259
#define TOY_TOK_VOCAB 260
#define TOY_ALPHABET 20 /* content tokens 0..19 */

/* vocab.json (a0..a255), empty merges.txt, tokenizer_config.json with BOS / EOS */
static int toy_tokenizer_dir(const char *dir) {
    SrError err;
    if (sr_mkdir_p(dir, &err)) return -1;
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputc('{', f);
    for (int i = 0; i < 256; i++) fprintf(f, "%s\"a%d\": %d", i ? ", " : "", i, i);
    fputs("}\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    f = fopen(path, "w");
    if (!f) return -1;
    fclose(f);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "{\"added_tokens_decoder\": {"
               "\"256\": {\"content\": \"<｜end▁of▁sentence｜>\", \"special\": true},"
               "\"257\": {\"content\": \"<｜begin▁of▁sentence｜>\", \"special\": true}},"
               " \"bos_token\": \"<｜begin▁of▁sentence｜>\", \"eos_token\": \"<｜end▁of▁sentence｜>\","
               " \"pad_token\": \"<｜end▁of▁sentence｜>\", \"unk_token\": \"<｜end▁of▁sentence｜>\"}\n");
    fclose(f);
    return 0;
}

static void toy_config(Qwen2Config *c) {
    memset(c, 0, sizeof *c);
    c->vocab_size = 264;
    c->hidden_size = 32;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 4;
    c->num_key_value_heads = 2;
    c->head_dim = 8;
    c->intermediate_size = 64;
    c->max_position_embeddings = 256;
    c->rope_theta = 10000.0f;
    c->rms_norm_eps = 1e-6f;
    c->initializer_range = 0.02f;
    c->tie_word_embeddings = 1;
    c->bos_token_id = TOY_BOS;
    c->eos_token_id = TOY_EOS;
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "float32");
}

/* model_dir: a random toy Qwen2 with the toy tokenizer (+ tags), as `init` writes one */
static int toy_model_dir(const char *dir, uint64_t seed) {
    SrError err;
    if (toy_tokenizer_dir(dir)) return -1;
    Tokenizer *tok;
    if (tokenizer_load(&tok, dir, &err)) {
        fprintf(stderr, "toy tokenizer: %s\n", err.msg);
        return -1;
    }
    int32_t a = -1, b = -1;
    int rc = tokenizer_add_bigmodel_tokens(tok, &a, &b, &err);
    rc = (!rc && a == TOY_OPEN && b == TOY_CLOSE && tokenizer_vocab_size(tok) == TOY_TOK_VOCAB) ? 0 : -1;
    if (rc) fprintf(stderr, "toy tokenizer: tags at %d %d, %d ids\n", a, b, tokenizer_vocab_size(tok));
    if (!rc) rc = tokenizer_save(tok, dir, &err);
    tokenizer_free(tok);
    SrBackend be;
    Qwen2Config c;
    toy_config(&c);
    Qwen2Model m;
    if (!rc) rc = sr_backend_init(&be, "cpu", 0, &err);
    if (!rc) {
        rc = qwen2_build(&m, &c, &be, &err);
        if (!rc) {
            qwen2_init_random(&m, seed);
            rc = qwen2_save(&m, dir, 0 /* ST_F32 */, &err);
            qwen2_free(&m);
        }
        sr_backend_free(&be);
    }
    if (rc) fprintf(stderr, "toy model: %s\n", err.msg);
    return rc;
}

/* one document of the toy language into ids/mask; returns its length */
static int toy_document(uint64_t *rng, int32_t *ids, uint8_t *mask, int len) {
    int n = 0, inside = 0;
    ids[n] = TOY_BOS, mask[n++] = 0;
    for (int i = 0; i < 3; i++) ids[n] = (int32_t)(sr_rng_u64(rng) % TOY_ALPHABET), mask[n++] = 0;
    while (n < len - 2) {
        int32_t t;
        do t = (int32_t)(sr_rng_u64(rng) % TOY_ALPHABET);
        while (t == (inside ? 5 : 6));
        ids[n] = t, mask[n++] = 1;
        if (!inside && t == 5) ids[n] = TOY_OPEN, mask[n++] = 1, inside = 1;
        else if (inside && t == 6) ids[n] = TOY_CLOSE, mask[n++] = 1, inside = 0;
    }
    ids[n] = TOY_EOS, mask[n++] = 1;
    return n;
}

/* Shards of n_seq sequences of up to max_length tokens (vocab_size in the header). */
static int toy_shards(const char *dir, int n_seq, int max_length, int vocab_size, uint64_t seed) {
    SrError err;
    ShardWriterOptions wo = {max_length, vocab_size, 1, 0, 4096, 3};
    ShardWriter *w;
    if (shard_writer_open(&w, dir, &wo, &err)) {
        fprintf(stderr, "toy shards: %s\n", err.msg);
        return -1;
    }
    uint64_t rng = seed;
    int32_t *ids = malloc((size_t)max_length * 4), *doc = malloc(128 * 4);
    uint8_t *mask = malloc((size_t)max_length), *dmask = malloc(128);
    int doc_lens[16];
    int rc = 0;
    for (int s = 0; s < n_seq && !rc; s++) {
        int n = 0, nd = 0;
        for (;;) {
            int len = 30 + (int)(sr_rng_u64(&rng) % 81);
            if (len > max_length) len = max_length;
            if (n + len > max_length || nd == 16) break;
            len = toy_document(&rng, doc, dmask, len);
            memcpy(ids + n, doc, (size_t)len * 4);
            memcpy(mask + n, dmask, (size_t)len);
            doc_lens[nd++] = len;
            n += len;
        }
        rc = shard_writer_add(w, ids, mask, n, doc_lens, nd, &err);
    }
    cJSON *extra = cJSON_CreateObject();
    cJSON *t = cJSON_AddObjectToObject(extra, "tokenizer");
    cJSON_AddNumberToObject(t, "vocab_size", vocab_size);
    cJSON_AddNumberToObject(t, "bos_id", TOY_BOS);
    cJSON_AddNumberToObject(t, "eos_id", TOY_EOS);
    cJSON_AddNumberToObject(t, "bigmodel_open_id", TOY_OPEN);
    cJSON_AddNumberToObject(t, "bigmodel_close_id", TOY_CLOSE);
    if (!rc) rc = shard_writer_finish(w, extra, &err);
    else shard_writer_abort(w);
    cJSON_Delete(extra);
    if (rc) fprintf(stderr, "toy shards: %s\n", err.msg);
    free(ids);
    free(doc);
    free(mask);
    free(dmask);
    return rc;
}

/* Parses "--key value" pairs (a NULL-terminated list) against opts into cfg. */
static int toy_config_parse(SrConfig *cfg, const SrOption *opts, int n_opts, const char *const *kv) {
    int argc = 0;
    while (kv[argc]) argc++;
    SrError err;
    int help = 0;
    memset(cfg, 0, sizeof *cfg);
    if (sr_config_parse(cfg, opts, n_opts, argc, (char **)kv, &help, &err)) {
        fprintf(stderr, "config: %s\n", err.msg);
        sr_config_free(cfg);
        return -1;
    }
    return 0;
}

#endif
