/*
 * DeepSeek-R1-Distill chat template (see chat_template.h).
 */
#include "chat_template.h"

#include <stdlib.h>
#include <string.h>

static const char *think_prefix(const ChatTemplate *t) {
    return t->think_prefix ? t->think_prefix : R1_THINK_PREFIX;
}

char *chat_prompt_text(const ChatTemplate *t, const char *prompt) {
    const char *sys = t->system ? t->system : "";
    const char *tp = think_prefix(t);
    size_t n = strlen(sys) + strlen(R1_USER_TEXT) + strlen(prompt) + strlen(R1_ASSISTANT_TEXT) +
               strlen(tp) + 1;
    char *s = sr_malloc(n);
    snprintf(s, n, "%s%s%s%s%s", sys, R1_USER_TEXT, prompt, R1_ASSISTANT_TEXT, tp);
    return s;
}

const char *chat_completion_text(const ChatTemplate *t, const char *text, size_t len,
                                 size_t *out_len) {
    const char *tp = think_prefix(t);
    size_t k = strlen(tp);
    if (k > 0 && len >= k && memcmp(text, tp, k) == 0) {
        text += k;
        len -= k;
    }
    *out_len = len;
    return text;
}

int chat_encode(const ChatTemplate *t, const Tokenizer *tok, const char *prompt,
                const char *completion, size_t completion_len, int32_t **ids, size_t *n,
                size_t *n_prompt, SrError *err) {
    *ids = NULL;
    *n = *n_prompt = 0;
    int32_t bos = tokenizer_bos_id(tok), eos = tokenizer_eos_id(tok);
    /* no BOS token: none is written, as HF's template renders an unset bos_token as "" */
    int add_bos = t->add_bos && bos >= 0;
    if (eos < 0) return sr_fail(err, "the tokenizer has no EOS token");
    char *p = chat_prompt_text(t, prompt);
    int32_t *pi = NULL, *ci = NULL;
    size_t np = 0, nc = 0;
    size_t clen;
    const char *ctext = chat_completion_text(t, completion, completion_len, &clen);
    int rc = tokenizer_encode(tok, p, strlen(p), &pi, &np, err);
    if (!rc) rc = tokenizer_encode(tok, ctext, clen, &ci, &nc, err);
    free(p);
    if (rc) {
        free(pi);
        free(ci);
        return -1;
    }
    size_t total = (add_bos ? 1 : 0) + np + nc + 1, k = 0;
    int32_t *out = sr_malloc(total * sizeof(int32_t));
    if (add_bos) out[k++] = bos;
    memcpy(out + k, pi, np * sizeof(int32_t));
    k += np;
    *n_prompt = k;
    memcpy(out + k, ci, nc * sizeof(int32_t));
    k += nc;
    out[k++] = eos;
    free(pi);
    free(ci);
    *ids = out;
    *n = k;
    return 0;
}
