/*
 * The LLM judge over HTTP(S) with libcurl (see judge.h).
 *
 * judge_run keeps a table of requests, each pending / in flight / done, with its attempt
 * count and the time it may start again. The loop starts pending requests whose time has
 * come while fewer than `parallel` are in flight, lets curl move the transfers
 * (curl_multi_perform + curl_multi_poll), and classifies every finished transfer: a parsed
 * chat completion finishes the request; a transient failure schedules a retry (exponential
 * backoff with jitter, or the server's Retry-After); a permanent one finishes it as failed.
 */
#include "judge.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/buf.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/rng.h"

const char *const JUDGE_SYSTEM_PROMPT =
    "You annotate chains of thought for SplitReason, where a small reasoning model hands the "
    "hardest parts of its reasoning to a larger model. Read the chain of thought and quote its "
    "most difficult snippets: the steps where a small model is most likely to go wrong "
    "(non-trivial derivations, key insights, tricky algebra, case analysis, checking a subtle "
    "point).\n"
    "Rules:\n"
    "1) Copy every snippet VERBATIM from the chain of thought, character for character, "
    "including LaTeX, punctuation and line breaks. Do not paraphrase, abbreviate with "
    "ellipses, or correct anything.\n"
    "2) Each snippet is one contiguous passage of one or more whole sentences; snippets do not "
    "overlap.\n"
    "3) Together the snippets should cover about {percent}% of the chain of thought (about "
    "{chars} of its {total_chars} characters).\n"
    "4) Output only the snippets, in the order they appear, each wrapped exactly like this:\n"
    "-----SNIPPET START-----\n"
    "<verbatim text>\n"
    "-----SNIPPET END-----";

struct Judge {
    JudgeConfig cfg;
    char *url;
    char *auth_header;     /* "Authorization: Bearer ..." or NULL */
    char *key;             /* for masking server text; never printed */
    CURLM *multi;
    uint64_t rng;
};

/* a judge reply larger than this is refused (the transfer fails) */
#define JUDGE_MAX_REPLY_BYTES ((size_t)64 << 20)

/* ---- prompt ----------------------------------------------------------------------------- */

/* the system prompt with {percent}, {chars}, {total_chars} filled in */
static char *fill_template(const char *tmpl, double fraction, size_t total_chars) {
    SrBuf b = {0};
    char num[64];
    for (const char *s = tmpl; *s;) {
        if (!strncmp(s, "{percent}", 9)) {
            snprintf(num, sizeof num, "%.0f", 100.0 * fraction);
            sr_buf_str(&b, num);
            s += 9;
        } else if (!strncmp(s, "{chars}", 7)) {
            snprintf(num, sizeof num, "%.0f", fraction * (double)total_chars);
            sr_buf_str(&b, num);
            s += 7;
        } else if (!strncmp(s, "{total_chars}", 13)) {
            snprintf(num, sizeof num, "%zu", total_chars);
            sr_buf_str(&b, num);
            s += 13;
        } else {
            sr_buf_add(&b, s, 1);
            s++;
        }
    }
    return sr_buf_take(&b);
}

static size_t count_chars(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

char *judge_build_body(const JudgeConfig *cfg, const JudgeRequest *req) {
    size_t chars = count_chars(req->trace, req->len);
    char *sys = fill_template(cfg->system_prompt ? cfg->system_prompt : JUDGE_SYSTEM_PROMPT,
                              cfg->target_fraction, chars);
    SrBuf u = {0};
    if (req->problem) {
        sr_buf_str(&u, "Problem:\n");
        sr_buf_str(&u, req->problem);
        sr_buf_str(&u, "\n\n");
    }
    sr_buf_str(&u, "Chain of thought:\n");
    sr_buf_add(&u, req->trace, req->len);
    char tail[256];
    snprintf(tail, sizeof tail,
             "\n\nQuote the most difficult snippets (about %.0f%% of the chain of thought, "
             "verbatim), each between -----SNIPPET START----- and -----SNIPPET END-----.",
             100.0 * cfg->target_fraction);
    sr_buf_str(&u, tail);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "model", cfg->model ? cfg->model : "");
    cJSON *msgs = cJSON_AddArrayToObject(body, "messages");
    cJSON *m1 = cJSON_CreateObject();
    cJSON_AddStringToObject(m1, "role", "system");
    cJSON_AddStringToObject(m1, "content", sys);
    cJSON_AddItemToArray(msgs, m1);
    cJSON *m2 = cJSON_CreateObject();
    cJSON_AddStringToObject(m2, "role", "user");
    cJSON_AddStringToObject(m2, "content", u.p);
    cJSON_AddItemToArray(msgs, m2);
    cJSON_AddNumberToObject(body, "temperature", cfg->temperature);
    if (cfg->max_tokens > 0) cJSON_AddNumberToObject(body, "max_tokens", cfg->max_tokens);
    cJSON_AddFalseToObject(body, "stream");
    char *txt = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    free(sys);
    sr_buf_free(&u);
    return txt;
}

/* ---- reply parsing ------------------------------------------------------------------------ */

static void add_snippet(char ***out, int *n, int *cap, const char *s, size_t len) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *out = sr_realloc(*out, (size_t)*cap * sizeof(char *));
    }
    char *c = sr_malloc(len + 1);
    memcpy(c, s, len);
    c[len] = '\0';
    (*out)[(*n)++] = c;
}

/* "-----SNIPPET START-----" ... "-----SNIPPET END-----" (or SENTENCE) blocks */
static int parse_delimited(const char *s, char ***out, int *n, int *cap) {
    static const char *const kinds[] = {"SNIPPET", "SENTENCE"};
    for (int k = 0; k < 2; k++) {
        char start[32], end[32];
        snprintf(start, sizeof start, "%s START", kinds[k]);
        snprintf(end, sizeof end, "%s END", kinds[k]);
        const char *p = s;
        int found = 0;
        while ((p = strstr(p, start))) {
            p += strlen(start);
            while (*p == '-' || *p == ' ') p++;
            if (*p == '\r') p++;
            if (*p == '\n') p++;
            const char *e = strstr(p, end);
            if (!e) break;
            const char *q = e; /* back over the dashes and the line break before END */
            while (q > p && (q[-1] == '-' || q[-1] == ' ')) q--;
            if (q > p && q[-1] == '\n') q--;
            if (q > p && q[-1] == '\r') q--;
            if (q > p) add_snippet(out, n, cap, p, (size_t)(q - p));
            found = 1;
            p = e + strlen(end);
        }
        if (found) return 1;
    }
    return 0;
}

static int parse_json(const char *s, char ***out, int *n, int *cap) {
    const char *a = strchr(s, '['), *o = strchr(s, '{');
    const char *start = !a ? o : !o ? a : (a < o ? a : o);
    if (!start) return 0;
    /* the reply's content is prose with a JSON value somewhere in it: here, and only here,
     * text after the value is expected (the reply itself went through sr_json_parse, so the
     * content holds no NUL and is valid UTF-8) */
    const char *end_ptr = NULL;
    cJSON *j = cJSON_ParseWithOpts(start, &end_ptr, 0);
    if (!j) return 0;
    const cJSON *arr = cJSON_IsArray(j) ? j : cJSON_GetObjectItemCaseSensitive(j, "snippets");
    int ok = 0;
    if (cJSON_IsArray(arr)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, arr) {
            if (cJSON_IsString(e)) add_snippet(out, n, cap, e->valuestring, strlen(e->valuestring));
        }
        ok = 1;
    }
    cJSON_Delete(j);
    return ok;
}

int judge_parse_snippets(const char *content, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    int cap = 0;
    const char *s = content;
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t') s++;
    if (!strncmp(s, "<think>", 7)) { /* a reasoning model's thoughts inline */
        const char *e = strstr(s, "</think>");
        if (e) s = e + 8;
    }
    if (parse_delimited(s, out, n, &cap)) return 0;
    if (parse_json(s, out, n, &cap)) return 0;
    /* one snippet per non-empty line, list markers and quotes removed */
    for (const char *p = s; *p;) {
        const char *e = strchr(p, '\n');
        if (!e) e = p + strlen(p);
        const char *a = p, *z = e;
        while (a < z && (*a == ' ' || *a == '\t' || *a == '\r')) a++;
        while (z > a && (z[-1] == ' ' || z[-1] == '\t' || z[-1] == '\r')) z--;
        if (z - a >= 2 && (*a == '-' || *a == '*') && a[1] == ' ') a += 2;
        if (z - a >= 2 && *a == '"' && z[-1] == '"') a++, z--;
        if (z > a && strncmp(a, "```", 3) != 0) add_snippet(out, n, &cap, a, (size_t)(z - a));
        p = *e ? e + 1 : e;
    }
    return 0;
}

void judge_reply_free(JudgeReply *r) {
    for (int i = 0; i < r->n_snippets; i++) free(r->snippets[i]);
    free(r->snippets);
    r->snippets = NULL;
    r->n_snippets = 0;
}

/* ---- open / close ---------------------------------------------------------------------------- */

int judge_open(Judge **out, const JudgeConfig *cfg, SrError *err) {
    *out = NULL;
    if (!cfg->endpoint || !cfg->endpoint[0]) return sr_fail(err, "the judge needs --judge-endpoint (an OpenAI-compatible base URL)");
    if (strncmp(cfg->endpoint, "https://", 8) && strncmp(cfg->endpoint, "http://", 7))
        return sr_fail(err, "--judge-endpoint %s: expected an http:// or https:// URL", cfg->endpoint);
    if (!cfg->model || !cfg->model[0]) return sr_fail(err, "the judge needs --judge-model");
    const char *key = NULL;
    if (cfg->api_key_env && cfg->api_key_env[0]) {
        key = getenv(cfg->api_key_env);
        if (!key || !key[0])
            return sr_fail(err, "the judge's API key: environment variable %s is not set (or give "
                           "--judge-api-key-env \"\" for a server that needs no key)", cfg->api_key_env);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return sr_fail(err, "libcurl: global init failed");
    Judge *j = sr_calloc(1, sizeof *j);
    j->cfg = *cfg;
    if (j->cfg.parallel < 1) j->cfg.parallel = 1;
    if (j->cfg.retries < 0) j->cfg.retries = 0;
    if (j->cfg.timeout_s <= 0) j->cfg.timeout_s = 300;
    if (j->cfg.connect_timeout_s <= 0) j->cfg.connect_timeout_s = 10;
    if (j->cfg.backoff_s <= 0) j->cfg.backoff_s = 2;
    if (j->cfg.backoff_max_s <= 0) j->cfg.backoff_max_s = 120;
    size_t n = strlen(cfg->endpoint);
    while (n > 0 && cfg->endpoint[n - 1] == '/') n--;
    const char *suffix = "/chat/completions";
    size_t ls = strlen(suffix);
    int has = n >= ls && memcmp(cfg->endpoint + n - ls, suffix, ls) == 0;
    j->url = sr_malloc(n + ls + 1);
    memcpy(j->url, cfg->endpoint, n);
    memcpy(j->url + n, has ? "" : suffix, has ? 1 : ls + 1);
    if (has) j->url[n] = '\0';
    if (key) {
        size_t k = strlen(key);
        j->key = sr_strdup(key);
        j->auth_header = sr_malloc(k + 32);
        snprintf(j->auth_header, k + 32, "Authorization: Bearer %s", key);
    }
    j->multi = curl_multi_init();
    SR_ASSERT(j->multi);
    j->rng = cfg->seed ? cfg->seed : 0x5EEDULL;
    *out = j;
    return 0;
}

void judge_close(Judge *j) {
    if (!j) return;
    if (j->multi) curl_multi_cleanup(j->multi);
    if (j->key) memset(j->key, 0, strlen(j->key));
    if (j->auth_header) memset(j->auth_header, 0, strlen(j->auth_header));
    free(j->key);
    free(j->auth_header);
    free(j->url);
    free(j);
    curl_global_cleanup();
}

const char *judge_url(const Judge *j) { return j->url; }

/* ---- transfers --------------------------------------------------------------------------------- */

enum { ST_PENDING, ST_FLIGHT, ST_DONE };

typedef struct Xfer {
    int state;
    double not_before;      /* sr_now() time it may (re)start */
    double t_first;
    CURL *easy;
    struct curl_slist *hdr;
    char *body;
    SrBuf resp;
    double retry_after;     /* seconds from a Retry-After header; < 0 none */
    char errbuf[CURL_ERROR_SIZE];
} Xfer;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
    SrBuf *b = ud;
    /* a reply is a chat completion of a few kB: a server that sends more is not answering */
    if (b->n + size * nmemb > JUDGE_MAX_REPLY_BYTES) return 0; /* curl stops: write error */
    sr_buf_add(b, ptr, size * nmemb);
    return size * nmemb;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud) {
    Xfer *x = ud;
    size_t n = size * nmemb;
    if (n > 12 && strncasecmp(ptr, "retry-after:", 12) == 0) {
        char tmp[64];
        size_t k = n - 12 < sizeof tmp - 1 ? n - 12 : sizeof tmp - 1;
        memcpy(tmp, ptr + 12, k);
        tmp[k] = '\0';
        char *end;
        double v = strtod(tmp, &end);
        if (end != tmp && v >= 0) x->retry_after = v; /* an HTTP date is ignored: backoff applies */
    }
    return n;
}

/* copies src into dst (n bytes) with the key masked and control characters flattened */
static void masked(const Judge *j, char *dst, size_t n, const char *src) {
    size_t k = 0, kl = j->key ? strlen(j->key) : 0;
    for (const char *s = src; *s && k + 4 < n;) {
        if (kl >= 4 && strncmp(s, j->key, kl) == 0) {
            memcpy(dst + k, "***", 3);
            k += 3;
            s += kl;
            continue;
        }
        dst[k++] = (*s == '\n' || *s == '\r' || *s == '\t') ? ' ' : *s;
        s++;
    }
    dst[k] = '\0';
}

static void start_xfer(Judge *j, Xfer *x, const JudgeRequest *req) {
    if (!x->body) x->body = judge_build_body(&j->cfg, req);
    sr_buf_clear(&x->resp);
    x->retry_after = -1;
    x->errbuf[0] = '\0';
    x->easy = curl_easy_init();
    SR_ASSERT(x->easy);
    CURL *e = x->easy;
    x->hdr = curl_slist_append(NULL, "Content-Type: application/json");
    x->hdr = curl_slist_append(x->hdr, "Accept: application/json");
    x->hdr = curl_slist_append(x->hdr, "Expect:"); /* no 100-continue round trip */
    if (j->auth_header) x->hdr = curl_slist_append(x->hdr, j->auth_header);
    curl_easy_setopt(e, CURLOPT_URL, j->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdr);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(x->body));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &x->resp);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(j->cfg.timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(j->cfg.connect_timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "splitreason-annotate/" SR_VERSION);
    if (j->cfg.ca_bundle) curl_easy_setopt(e, CURLOPT_CAINFO, j->cfg.ca_bundle);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_multi_add_handle(j->multi, e);
    x->state = ST_FLIGHT;
}

static void end_xfer(Judge *j, Xfer *x) {
    curl_multi_remove_handle(j->multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdr);
    x->easy = NULL;
    x->hdr = NULL;
}

/* parses a 200 body; 0 ok (rep filled), -1 not a chat completion (transient) */
static int parse_completion(const char *body, size_t len, JudgeReply *rep, char *why, size_t why_n) {
    SrError pe = {{0}};
    cJSON *j = sr_json_parse(body, len, &pe); /* strict: one value, UTF-8, no NUL in strings */
    const cJSON *ch = j ? cJSON_GetObjectItemCaseSensitive(j, "choices") : NULL;
    const cJSON *c0 = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
    const cJSON *msg = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
    const cJSON *content = msg ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
    if (!cJSON_IsString(content)) {
        if (!j) snprintf(why, why_n, "the reply is not valid JSON (%.200s)", pe.msg);
        else snprintf(why, why_n, "the reply has no choices[0].message.content");
        cJSON_Delete(j);
        return -1;
    }
    judge_parse_snippets(content->valuestring, &rep->snippets, &rep->n_snippets);
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    const cJSON *pt = usage ? cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens") : NULL;
    const cJSON *ct = usage ? cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens") : NULL;
    /* token counts a server reports: only whole numbers in range are believed */
    rep->prompt_tokens = cJSON_IsNumber(pt) && pt->valuedouble >= 0 && pt->valuedouble < 1e15 ? (long)pt->valuedouble : -1;
    rep->completion_tokens = cJSON_IsNumber(ct) && ct->valuedouble >= 0 && ct->valuedouble < 1e15 ? (long)ct->valuedouble : -1;
    cJSON_Delete(j);
    return 0;
}

static int transient_status(long s) { return s == 408 || s == 409 || s == 425 || s == 429 || s >= 500; }

/* handles a finished transfer: done (ok or failed) or scheduled again */
static void finish(Judge *j, Xfer *x, CURLcode code, JudgeReply *rep) {
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    end_xfer(j, x);
    rep->attempts++;
    rep->http_status = status;
    char why[400];
    int transient;
    if (code != CURLE_OK) {
        snprintf(why, sizeof why, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
        transient = code != CURLE_UNSUPPORTED_PROTOCOL && code != CURLE_URL_MALFORMAT &&
                    code != CURLE_PEER_FAILED_VERIFICATION && code != CURLE_SSL_CACERT_BADFILE;
    } else if (status == 200) {
        if (parse_completion(x->resp.p ? x->resp.p : "", x->resp.n, rep, why, sizeof why) == 0) {
            rep->ok = 1;
            rep->error[0] = '\0';
            x->state = ST_DONE;
            return;
        }
        transient = 1;
    } else {
        char body[200];
        masked(j, body, sizeof body, x->resp.p ? x->resp.p : "");
        snprintf(why, sizeof why, "HTTP %ld: %s", status, body);
        transient = transient_status(status);
    }
    char safe[400];
    masked(j, safe, sizeof safe, why);
    if (!transient || rep->attempts > j->cfg.retries) {
        snprintf(rep->error, sizeof rep->error, "%s%s (after %d attempt%s)",
                 transient ? "" : "not retried: ", safe, rep->attempts, rep->attempts == 1 ? "" : "s");
        x->state = ST_DONE;
        return;
    }
    double delay = j->cfg.backoff_s * pow(2.0, rep->attempts - 1);
    delay *= 0.5 + (double)sr_rng_uniform(&j->rng);
    if (x->retry_after >= 0) delay = x->retry_after;
    if (delay > j->cfg.backoff_max_s) delay = j->cfg.backoff_max_s;
    sr_log("judge: attempt %d failed (%s); retrying in %.1f s", rep->attempts, safe, delay);
    x->not_before = sr_now() + delay;
    x->state = ST_PENDING;
}

int judge_run(Judge *j, const JudgeRequest *req, JudgeReply *rep, int n,
              void (*done)(void *ctx, int i), void *ctx, SrError *err) {
    Xfer *xs = sr_calloc((size_t)(n > 0 ? n : 1), sizeof(Xfer));
    for (int i = 0; i < n; i++) {
        memset(&rep[i], 0, sizeof rep[i]);
        rep[i].prompt_tokens = rep[i].completion_tokens = -1;
        xs[i].t_first = -1;
    }
    int remaining = n, in_flight = 0, rc = 0;
    while (remaining > 0) {
        double now = sr_now(), next_start = INFINITY;
        for (int i = 0; i < n && in_flight < j->cfg.parallel; i++) {
            if (xs[i].state != ST_PENDING) continue;
            if (xs[i].not_before > now) {
                if (xs[i].not_before < next_start) next_start = xs[i].not_before;
                continue;
            }
            if (xs[i].t_first < 0) xs[i].t_first = now;
            start_xfer(j, &xs[i], &req[i]);
            in_flight++;
        }
        int running = 0;
        CURLMcode mc = curl_multi_perform(j->multi, &running);
        if (mc != CURLM_OK) {
            rc = sr_fail(err, "libcurl: %s", curl_multi_strerror(mc));
            break;
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(j->multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            Xfer *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            int i = (int)(x - xs);
            finish(j, x, msg->data.result, &rep[i]);
            in_flight--;
            if (x->state == ST_DONE) {
                rep[i].seconds = sr_now() - x->t_first;
                free(x->body);
                sr_buf_free(&x->resp);
                x->body = NULL;
                remaining--;
                if (done) done(ctx, i);
            }
        }
        if (remaining == 0) break;
        int wait_ms = 200;
        if (in_flight == 0 && next_start < INFINITY) {
            double w = (next_start - sr_now()) * 1000;
            wait_ms = w < 1 ? 1 : w > 1000 ? 1000 : (int)w;
        }
        curl_multi_poll(j->multi, NULL, 0, wait_ms, NULL);
    }
    for (int i = 0; i < n; i++) {
        if (xs[i].easy) end_xfer(j, &xs[i]);
        free(xs[i].body);
        sr_buf_free(&xs[i].resp);
    }
    free(xs);
    return rc;
}
