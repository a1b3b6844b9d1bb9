/*
 * libFuzzer harness for vocab.json + merges.txt + tokenizer_config.json (data/tokenizer.h).
 * The input is cut at lines "@@" into up to four parts:
 *   text @@ vocab.json @@ merges.txt @@ tokenizer_config.json
 * (no merges part: an empty merges.txt; no config part: no tokenizer_config.json). The
 * tokenizer is loaded from memory through tokenizer_load_texts (the code tokenizer_load runs on
 * the files), then exercised as in fuzz_tokenizer.h: encode, decode, stream, unknown ids,
 * <bigmodel> tokens. A crash, sanitizer report, leak, timeout or RSS past the limit is a bug.
 *
 *   bash fuzz/run.sh tokenizer_files [seconds]    (CI replays fuzz/corpus/tokenizer_files/)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../data/tokenizer.h"
#include "fuzz_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data, *end = s + size;
    const char *part[4] = {s, NULL, NULL, NULL};
    size_t len[4] = {size, 0, 0, 0};
    int np = 1;
    for (const char *p = s; np < 4;) {
        const char *sep = NULL;
        for (const char *q = p; q + 4 <= end; q++)
            if (memcmp(q, "\n@@\n", 4) == 0) {
                sep = q;
                break;
            }
        if (!sep) break;
        len[np - 1] = (size_t)(sep - part[np - 1]);
        part[np] = sep + 4;
        len[np] = (size_t)(end - part[np]);
        np++;
        p = sep + 4;
    }
    if (np < 2) return 0; /* no vocabulary */
    TokenizerTexts t = {{NULL, 0, "tokenizer.json"},
                        {part[1], len[1], "vocab.json"},
                        {np > 2 ? part[2] : "", np > 2 ? len[2] : 0, "merges.txt"},
                        {np > 3 ? part[3] : NULL, np > 3 ? len[3] : 0, "tokenizer_config.json"}};
    Tokenizer *tok = NULL;
    SrError err;
    if (tokenizer_load_texts(&tok, &t, &err) == 0) {
        fuzz_tokenizer_exercise(tok, part[0], len[0], data, size);
        tokenizer_free(tok);
    } else if (tok != NULL || strchr(err.msg, '\n')) {
        abort(); /* a failed load returns no tokenizer and one line */
    }
    return 0;
}
