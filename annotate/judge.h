/*
 * The LLM judge: an OpenAI-compatible chat-completions endpoint (DeepSeek, OpenAI, vLLM, a
 * local server) asked to quote the most difficult snippets of a trace, verbatim, summing to
 * about target_fraction of it (the paper's method). The snippets are then aligned back into
 * the trace by annotate/align.h.
 *
 * Transport: libcurl, several requests in flight (multi interface), TLS verification on
 * (peer and host; a CA bundle may be given), no redirects followed (the key must not travel to
 * another host), a connect timeout and a total timeout per attempt. Transient failures
 * (connection errors, timeouts, HTTP 408/409/429/5xx, a body that is not a chat completion)
 * are retried with exponential backoff and jitter, honouring Retry-After; other HTTP errors
 * fail the request at once. The API key is read from the environment variable named by
 * api_key_env and only ever placed in the Authorization header: it is never printed, logged,
 * or written, and is masked in any server text that is reported.
 *
 * Reply format asked for (the paper's delimiters, which survive LaTeX better than JSON):
 *   -----SNIPPET START-----
 *   <verbatim text>
 *   -----SNIPPET END-----
 * Also accepted: SENTENCE START/END delimiters, a JSON array of strings or {"snippets": [...]},
 * and, failing all, one snippet per non-empty line. A leading <think>...</think> is skipped.
 */
#ifndef SR_ANNOTATE_JUDGE_H
#define SR_ANNOTATE_JUDGE_H

#include <stddef.h>

#include "../common/error.h"

typedef struct JudgeConfig {
    const char *endpoint;      /* base URL (".../v1") or the full ".../chat/completions" URL */
    const char *model;
    const char *api_key_env;   /* "" = send no key (a local server) */
    double timeout_s;          /* per attempt, whole request */
    double connect_timeout_s;
    int retries;               /* attempts after the first */
    double backoff_s;          /* first retry delay; doubles, +-50% jitter */
    double backoff_max_s;
    int parallel;              /* requests in flight */
    double temperature;
    int max_tokens;            /* 0: not sent */
    double target_fraction;
    const char *ca_bundle;     /* NULL: the system's */
    const char *system_prompt; /* NULL: built in; {percent} {chars} {total_chars} are filled */
    unsigned long long seed;   /* jitter */
} JudgeConfig;

typedef struct JudgeRequest {
    const char *problem;       /* may be NULL */
    const char *trace;
    size_t len;
} JudgeRequest;

typedef struct JudgeReply {
    int ok;
    char **snippets;
    int n_snippets;
    char error[512];           /* when !ok: what went wrong (key masked) */
    int attempts;
    long http_status;
    double seconds;
    long prompt_tokens, completion_tokens; /* from "usage", -1 when absent */
} JudgeReply;

typedef struct Judge Judge;

int judge_open(Judge **j, const JudgeConfig *cfg, SrError *err);
void judge_close(Judge *j);
const char *judge_url(const Judge *j);

/* Runs n requests (at most cfg.parallel at once) until each succeeded or ran out of attempts;
 * done(ctx, i) is called as request i finishes (completion order). Returns 0 when the loop
 * ran (individual failures are in rep[i]), -1 only for an internal error. */
int judge_run(Judge *j, const JudgeRequest *req, JudgeReply *rep, int n,
              void (*done)(void *ctx, int i), void *ctx, SrError *err);
void judge_reply_free(JudgeReply *r);

/* Exposed for tests. */
int judge_parse_snippets(const char *content, char ***out, int *n);
char *judge_build_body(const JudgeConfig *cfg, const JudgeRequest *req);
/* the built-in system prompt template */
extern const char *const JUDGE_SYSTEM_PROMPT;

#endif
