/*
 * libFuzzer harness for tokenizer.json (data/tokenizer.h): the input's first line is a text,
 * the rest a tokenizer.json. The tokenizer is loaded from memory through tokenizer_load_texts
 * (the code tokenizer_load runs on the file), then the text is encoded and decoded, ids made
 * from the input bytes (unknown, negative and padding ids among them) are decoded in one call
 * and streamed, so the encoder and the decoder run on hostile tables. A crash, sanitizer
 * report, leak, run past the timeout or an RSS past the limit is a bug; load errors are not.
 *
 *   bash fuzz/run.sh tokenizer_json [seconds]     (CI replays fuzz/corpus/tokenizer_json/)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../data/tokenizer.h"
#include "fuzz_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    const char *nl = memchr(s, '\n', size);
    size_t text_len = nl ? (size_t)(nl - s) : 0;
    const char *json = nl ? nl + 1 : s;
    size_t json_len = size - (size_t)(json - s);
    TokenizerTexts t = {{json, json_len, "tokenizer.json"}, {NULL, 0, "vocab.json"},
                        {NULL, 0, "merges.txt"}, {NULL, 0, "tokenizer_config.json"}};
    Tokenizer *tok = NULL;
    SrError err;
    if (tokenizer_load_texts(&tok, &t, &err) == 0) {
        fuzz_tokenizer_exercise(tok, s, text_len, data, size);
        tokenizer_free(tok);
    } else if (tok != NULL || strchr(err.msg, '\n')) {
        abort(); /* a failed load returns no tokenizer and one line */
    }
    return 0;
}
