/*
 * The Qwen2 byte-level BPE tokenizer, token-for-token identical to Hugging Face `tokenizers`.
 *
 * Loading: an HF tokenizer.json, or a directory with vocab.json + merges.txt (+ the optional
 * tokenizer_config.json whose "added_tokens_decoder" lists the added/special tokens).
 * Encoding: added tokens are matched first (leftmost, longest), then each remaining piece is
 * NFC-normalised, split by the Qwen2 pre-tokenizer regex
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * mapped to the byte-level alphabet and merged by BPE rank.
 * "<\bigmodel>" in input text is read as the token "</bigmodel>" when that token exists (the
 * original SplitReason data misspelled the closing tag).
 * Decoding: ids -> bytes exactly (a streaming decoder holds back an incomplete UTF-8 character).
 */
#ifndef SR_DATA_TOKENIZER_H
#define SR_DATA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"

#define SR_BIGMODEL_OPEN "<bigmodel>"
#define SR_BIGMODEL_CLOSE "</bigmodel>"
#define SR_BIGMODEL_CLOSE_ALT "<\\bigmodel>"

typedef struct Tokenizer Tokenizer;

/* path: a tokenizer.json file, or a directory holding tokenizer.json or vocab.json+merges.txt */
int tokenizer_load(Tokenizer **out, const char *path, SrError *err);
void tokenizer_free(Tokenizer *tok);

/* Adds an added token (matched before BPE). id < 0: the next free id (max id + 1).
 * Returns the token's id (the existing id if it is already present). */
int32_t tokenizer_add_token(Tokenizer *tok, const char *content, int special, int32_t id);
/* Adds <bigmodel> and </bigmodel> if missing; returns 0 and their ids. */
int tokenizer_add_bigmodel_tokens(Tokenizer *tok, int32_t *open_id, int32_t *close_id);

/* Encodes len bytes of text (need not be NUL-terminated; invalid UTF-8 is encoded as HF does).
 * *ids is malloc'd (caller frees). */
int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int32_t **ids,
                     size_t *n_ids, SrError *err);
/* Decodes ids to bytes (malloc'd, NUL-terminated, *out_len excludes the NUL).
 * Fails on an id out of range. */
int tokenizer_decode(const Tokenizer *tok, const int32_t *ids, size_t n_ids, char **out,
                     size_t *out_len, SrError *err);

/* Streaming decode: bytes of complete UTF-8 characters are released as soon as they are
 * known; an incomplete trailing sequence is held back until the next token (or flush). */
typedef struct TokenizerStream {
    unsigned char pending[8];
    int n_pending;
} TokenizerStream;
void tokenizer_stream_init(TokenizerStream *s);
/* Appends the decoded bytes of id to the stream; writes the releasable bytes into *out
 * (malloc'd, caller frees) and their count into *out_len. */
int tokenizer_stream_put(const Tokenizer *tok, TokenizerStream *s, int32_t id, char **out,
                         size_t *out_len, SrError *err);
/* Releases whatever is held back (an invalid trailing sequence, as raw bytes). */
size_t tokenizer_stream_flush(TokenizerStream *s, char *out /* >= 8 bytes */);

/* Total number of ids (base vocab + added tokens): max id + 1 */
int32_t tokenizer_vocab_size(const Tokenizer *tok);
/* id of a token string (vocab entry or added token), -1 if none */
int32_t tokenizer_token_id(const Tokenizer *tok, const char *token);
/* the string of an id (byte-level form for vocab entries), NULL if out of range */
const char *tokenizer_id_to_token(const Tokenizer *tok, int32_t id);
int tokenizer_is_special(const Tokenizer *tok, int32_t id);
/* eos / bos / pad ids from tokenizer_config.json (-1 if unset) */
int32_t tokenizer_eos_id(const Tokenizer *tok);
int32_t tokenizer_bos_id(const Tokenizer *tok);
int32_t tokenizer_pad_id(const Tokenizer *tok);

/* Writes vocab.json, merges.txt, tokenizer_config.json (with every added token in
 * added_tokens_decoder) and tokenizer.json into dir, so that transformers'
 * AutoTokenizer.from_pretrained(dir) gives the same ids. Atomic per file. */
int tokenizer_save(const Tokenizer *tok, const char *dir, SrError *err);

#endif
