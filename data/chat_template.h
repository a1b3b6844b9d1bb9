/*
 * The DeepSeek-R1-Distill chat template, as its tokenizer_config.json writes one user turn and
 * the assistant's reply (with the newer generation prompt that opens the thinking block):
 *
 *   <｜begin▁of▁sentence｜>{system}<｜User｜>{prompt}<｜Assistant｜><think>\n{completion}<｜end▁of▁sentence｜>
 *
 * The prompt part ends after "<think>\n" (think_prefix; "" gives the older template that
 * stops at "<｜Assistant｜>"). A completion that already starts with the think prefix (traces
 * are usually stored as "<think>\n...") has it removed, so it is not written twice; the
 * reply then continues exactly where the template left off. The end-of-sentence token is
 * appended as an id, not as text.
 */
#ifndef SR_DATA_CHAT_TEMPLATE_H
#define SR_DATA_CHAT_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "tokenizer.h"

#define R1_BOS_TEXT "<｜begin▁of▁sentence｜>"
#define R1_EOS_TEXT "<｜end▁of▁sentence｜>"
#define R1_USER_TEXT "<｜User｜>"
#define R1_ASSISTANT_TEXT "<｜Assistant｜>"
#define R1_THINK_PREFIX "<think>\n"

typedef struct ChatTemplate {
    const char *system;        /* NULL or "" = none */
    const char *think_prefix;  /* NULL = R1_THINK_PREFIX */
    int add_bos;               /* prepend the BOS token (if the tokenizer has one: with no
                                * bos_token HF's template renders none, and so do we) */
} ChatTemplate;

/* The prompt text (without BOS): "{system}<｜User｜>{prompt}<｜Assistant｜>{think_prefix}"
 * (malloc'd, NUL-terminated). */
char *chat_prompt_text(const ChatTemplate *t, const char *prompt);

/* The completion text after removing a leading think prefix; returns a pointer into text
 * and its length. */
const char *chat_completion_text(const ChatTemplate *t, const char *text, size_t len,
                                 size_t *out_len);

/* Token ids of one example: [BOS] + prompt part + completion part + [EOS]; *n_prompt is the
 * number of ids of the prompt part (with BOS). *ids is malloc'd. The prompt and the completion
 * are tokenized separately, so the boundary between them is a token boundary. A tokenizer
 * without a BOS token gets none (transformers' apply_chat_template with bos_token None
 * renders "{{bos_token}}" as nothing); one without an EOS token is an error. */
int chat_encode(const ChatTemplate *t, const Tokenizer *tok, const char *prompt,
                const char *completion, size_t completion_len, int32_t **ids, size_t *n,
                size_t *n_prompt, SrError *err);

#endif
