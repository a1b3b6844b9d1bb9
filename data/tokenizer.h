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
 *
 * Parity contract (tests/test_tokenizer.c checks ~3,700 texts against HF tokenizers 0.23.3):
 *   - ids equal HF's Tokenizer.encode(text, add_special_tokens=False): no BOS/EOS is added;
 *   - invalid UTF-8: HF only ever sees a str, so bytes are first decoded as Python's
 *     bytes.decode("utf-8", errors="replace") does: each maximal invalid subpart becomes one
 *     U+FFFD (then NFC etc. as usual). decode() of those ids gives U+FFFD, not the bad bytes;
 *   - Unicode tables are HF's, not the newest: \p{L}/\p{N}/\s as Oniguruma's Unicode 16,
 *     NFC as HF's Unicode 9.0 normaliser (data/tokenizer_text.c; verified over every code
 *     point by scripts/make_tokenizer_golden.py --check-unicode);
 *   - added tokens follow HF's AddedVocabulary: tokens with normalized=false split the raw
 *     text first, normalized ones the NFC text; lstrip / rstrip / single_word as HF.
 * Round trip: decode(encode(x)) == x for valid UTF-8 x that is already NFC (and holds no
 * "<\bigmodel>" and no lstrip/rstrip added token); other text comes back in its NFC form, as
 * with HF. decode returns the exact bytes; HF's decode returns them as a lossy-UTF-8 str.
 * Threads: a loaded Tokenizer may encode/decode from many threads at once; adding tokens
 * must not run concurrently with anything else on the same Tokenizer.
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

/* path: a tokenizer.json file, or a directory holding tokenizer.json or vocab.json+merges.txt.
 * A tokenizer_config.json in the directory (or beside a file named tokenizer.json) adds
 * "added_tokens_decoder" (ids and flags) and names bos/eos/pad; special tokens it names that
 * are no token yet are appended as special tokens in HF's order (bos, eos, unk, sep, pad, cls, mask, additional_special_tokens). Without a
 * tokenizer.json the Qwen2Tokenizer defaults apply: unk/eos/pad "<|endoftext|>" when the
 * config does not name them. (So a DeepSeek-R1-Distill config without added_tokens_decoder
 * gets its bos/eos appended at 151643, 151644, as HF's Qwen2Tokenizer would; the model's real
 * ids come with its tokenizer.json or an added_tokens_decoder.)
 * Only the Qwen2 pipeline is accepted from a tokenizer.json (NFC or no normalizer, the Split
 * regex above + ByteLevel, BPE without dropout/byte fallback); anything else is an error.
 * Errors (one line naming the file): missing files, bad JSON (see common/json.h: one value,
 * UTF-8, no NUL; a repeated key keeps its last value, as Python and HF do), a file over 1 GiB,
 * a vocab entry or added token whose id is not a non-negative integer, two tokens on one id
 * (HF would silently keep one of them), a merges line that is not "left right", a merges.txt
 * that is not UTF-8, a merge naming a token (or making a token) that is not in the vocabulary
 * (as HF: "Token ... out of vocabulary").
 * Id bound: every id a file names must be below 2 * N + 1024, where N is the number of tokens
 * the files declare up to that point (vocab entries, then added tokens), and below 2^24. HF
 * accepts sparse ids, but a 33-byte vocab.json naming id 67108864 would cost gigabytes of
 * per-id tables: such a table is refused, naming the file, the token, the id and the bound. */
int tokenizer_load(Tokenizer **out, const char *path, SrError *err);

/* The bytes of one tokenizer file, for tokenizer_load_texts; data NULL = the file is absent.
 * name is what messages call it (the path). */
typedef struct TokenizerText {
    const char *data;
    size_t len;
    const char *name;
} TokenizerText;

/* tokenizer_load from memory: the same code reads the same files. With tokenizer_json the
 * vocabulary, merges and added tokens come from it (vocab_json and merges_txt are ignored);
 * else vocab_json and merges_txt are both required and the Qwen2Tokenizer defaults apply.
 * config_json (tokenizer_config.json) is optional. tokenizer_load reads the files and calls
 * this; the fuzz harnesses call it directly. */
typedef struct TokenizerTexts {
    TokenizerText tokenizer_json, vocab_json, merges_txt, config_json;
} TokenizerTexts;
int tokenizer_load_texts(Tokenizer **out, const TokenizerTexts *texts, SrError *err);
void tokenizer_free(Tokenizer *tok);

/* Adds an added token (matched before BPE), with HF's AddedToken(content, special) flags
 * (normalized = !special, no lstrip/rstrip/single_word). id < 0: the token's vocab id if
 * content is a vocab token (as HF), else the next free id (max id + 1).
 * Returns the token's id (the existing id if it is already present), or -1 if id belongs to
 * another token or is beyond the id bound of tokenizer_load (2 x tokens + 1024, 2^24). */
int32_t tokenizer_add_token(Tokenizer *tok, const char *content, int special, int32_t id);
/* Adds <bigmodel> and </bigmodel> if missing; returns 0 and their ids. They are added as
 * special=false (text decoders that skip special tokens keep them) and normalized=false
 * (matched on the raw text), and are written so by tokenizer_save. Fails (-1, err) when they
 * cannot be added (no id left below 2^24); callers must check. */
int tokenizer_add_bigmodel_tokens(Tokenizer *tok, int32_t *open_id, int32_t *close_id,
                                  SrError *err);

/* Encodes len bytes of text (need not be NUL-terminated; invalid UTF-8 is encoded as HF does).
 * *ids is malloc'd (caller frees). */
int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int32_t **ids,
                     size_t *n_ids, SrError *err);
/* Decodes ids to bytes (malloc'd, NUL-terminated, *out_len excludes the NUL).
 * An id the tokenizer does not have (negative, >= tokenizer_vocab_size, or a hole) decodes to
 * nothing, as HF's decode skips it: a model's embedding is usually larger than its tokenizer
 * (R1-distill: 151936 rows, 151665 ids), and such an id must not stop a generation's text. */
int tokenizer_decode(const Tokenizer *tok, const int32_t *ids, size_t n_ids, char **out,
                     size_t *out_len, SrError *err);

/* Streaming decode: bytes of complete UTF-8 characters are released as soon as they are
 * known; an incomplete trailing sequence is held back until the next token (or flush). */
typedef struct TokenizerStream {
    unsigned char pending[8];
    int n_pending;
} TokenizerStream;
void tokenizer_stream_init(TokenizerStream *s);
/* Appends the decoded bytes of id to the stream (nothing for an id the tokenizer does not
 * have, as tokenizer_decode); writes the releasable bytes into *out (malloc'd, caller frees)
 * and their count into *out_len. */
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
 * AutoTokenizer.from_pretrained(dir) gives the same ids. Atomic per file.
 * (dir is created if missing. The loaded tokenizer_config.json is kept, chat template
 * included, with tokenizer_class set to "Qwen2Tokenizer"; the loaded tokenizer.json's
 * post_processor is kept. Checked by scripts/make_tokenizer_golden.py --check-saved.) */
int tokenizer_save(const Tokenizer *tok, const char *dir, SrError *err);

#endif
