/*
 * A mock OpenAI-compatible chat-completions server for the judge tests, in-process: a thread
 * accepts connections on 127.0.0.1 (an ephemeral port) and answers each request in its own
 * thread. It reads the trace out of the user message and quotes about `fraction` of it as
 * snippets, perturbing some (a changed character, a dropped end, an ellipsis, doubled spaces)
 * so only a fuzzy matcher finds them. Modes add the failures a real endpoint has:
 *   MOCK_GOOD     answers at once
 *   MOCK_NOISE    also quotes two snippets that are not in the text
 *   MOCK_SLOW     the first attempt per trace sleeps `slow_s` before answering; when the
 *                 client hangs up first (its timeout), the attempt counts as `abandoned`
 *   MOCK_FLAKY    per trace: HTTP 500, then 429 (Retry-After: 0), then a body that is not
 *                 JSON, then the answer
 *   MOCK_DOWN     always 503
 *   MOCK_AUTH     401 whose body echoes the bearer token, unless it equals `key`
 * Every mode also answers 401 when `key` is set and the Authorization header differs.
 * The server counts what the tests check instead of timing it: `max_in_flight` (most requests
 * being answered at once) and `abandoned`; with `gather` = k the answers wait for requests in
 * groups of k (the 1st..kth, then the next k, ...; at most 10 s), so a client that really keeps
 * k requests in flight is seen doing so, and one that sends them one by one is caught.
 * The server stops when told, or by itself after `max_life_s` (so a hung test cannot leave it
 * running). Header-only (static functions): include it in one test file.
 */
#ifndef SR_TESTS_MOCK_JUDGE_H
#define SR_TESTS_MOCK_JUDGE_H

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MOCK_GOOD, MOCK_NOISE, MOCK_SLOW, MOCK_FLAKY, MOCK_DOWN, MOCK_AUTH };

#define MOCK_MAX_TRACES 256

typedef struct MockJudge {
    int fd, port, mode;
    double fraction, slow_s, max_life_s;
    double delay_s;               /* every answer waits this long (kill/resume tests) */
    const char *key;              /* expected bearer token (NULL: none checked) */
    atomic_int stop, active, requests;
    atomic_int in_flight, max_in_flight, abandoned, arrivals;
    int gather;                   /* answers wait for groups of this many requests (0: no) */
    pthread_t thread;
    pthread_mutex_t mu;
    unsigned long long seen[MOCK_MAX_TRACES]; /* trace hashes */
    int attempts[MOCK_MAX_TRACES];
    int n_seen;
} MockJudge;

static double mock_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static unsigned long long mock_hash(const char *s, size_t n) {
    unsigned long long h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* the attempt number (1, 2, ...) of this trace */
static int mock_attempt(MockJudge *m, const char *trace, size_t n) {
    unsigned long long h = mock_hash(trace, n);
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_seen && m->seen[i] != h) i++;
    if (i == m->n_seen && m->n_seen < MOCK_MAX_TRACES) m->seen[m->n_seen++] = h;
    int a = i < MOCK_MAX_TRACES ? ++m->attempts[i] : 1;
    pthread_mutex_unlock(&m->mu);
    return a;
}

static void mock_send(int fd, int status, const char *reason, const char *extra_headers, const char *body) {
    char head[512];
    size_t bl = strlen(body);
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n%s\r\n",
                      status, reason, bl, extra_headers ? extra_headers : "");
    send(fd, head, (size_t)hl, MSG_NOSIGNAL);
    for (size_t off = 0; off < bl;) {
        ssize_t w = send(fd, body + off, bl - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
}

/* appends a snippet block; `perturb` 0..4 picks a change a judge might make */
static void mock_snippet(char **out, size_t *n, size_t *cap, const char *s, size_t len, int perturb) {
    char *t = malloc(len + 16);
    size_t k = 0;
    memcpy(t, s, len);
    k = len;
    if (perturb == 1 && len > 30) t[len / 2] = t[len / 2] == 'x' ? 'y' : 'x'; /* one changed char */
    if (perturb == 2 && len > 30) k = len - 1;                               /* dropped last char */
    if (perturb == 3 && len > 30) {                                          /* trailing ellipsis */
        k = len - 5;
        memcpy(t + k, "...", 3);
        k += 3;
    }
    if (perturb == 4 && len > 30) { /* a doubled space after the first space */
        char *sp = memchr(t, ' ', k);
        if (sp) {
            memmove(sp + 1, sp, k - (size_t)(sp - t));
            k++;
        }
    }
    size_t need = *n + k + 64;
    if (need > *cap) {
        *cap = need * 2;
        *out = realloc(*out, *cap);
    }
    *n += (size_t)sprintf(*out + *n, "-----SNIPPET START-----\n");
    memcpy(*out + *n, t, k);
    *n += k;
    *n += (size_t)sprintf(*out + *n, "\n-----SNIPPET END-----\n");
    free(t);
}

/* quotes whole sentences (". " / "\n" separated) of at least 40 bytes, spread over the trace,
 * until about fraction of it is covered */
static char *mock_answer(MockJudge *m, const char *trace, size_t len) {
    char *out = NULL;
    size_t n = 0, cap = 0, covered = 0, target = (size_t)(m->fraction * (double)len);
    size_t i = 0, k = 0;
    while (i < len && covered < target) {
        size_t j = i;
        while (j < len && trace[j] != '\n' && !(trace[j] == '.' && j + 1 < len && trace[j + 1] == ' ')) j++;
        if (j < len && trace[j] == '.') j++;
        size_t a = i, b = j; /* trim */
        while (a < b && (trace[a] == ' ' || trace[a] == '\n')) a++;
        if (b - a >= 40 && b - a < 1500 && k++ % 3 == 0) {
            mock_snippet(&out, &n, &cap, trace + a, b - a, (int)(k % 5));
            covered += b - a;
        }
        i = j + 1;
    }
    if (m->mode == MOCK_NOISE) {
        const char *fake[] = {"This sentence was never in the chain of thought at all, not even close.",
                              "Quantum chromodynamics explains the confinement of quarks inside hadrons."};
        for (int f = 0; f < 2; f++) mock_snippet(&out, &n, &cap, fake[f], strlen(fake[f]), 0);
    }
    if (!out) out = calloc(1, 1);
    return out;
}

static void *mock_conn(void *arg);

typedef struct MockConn {
    MockJudge *m;
    int fd;
} MockConn;

/* has the client closed the connection (checked without blocking)? */
static int mock_hung_up(int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return 0;
    char c;
    return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0 || (p.revents & (POLLHUP | POLLERR));
}

static void mock_handle_request(MockJudge *m, int fd, char *buf, char *body);

static void mock_handle(MockJudge *m, int fd) {
    /* read headers + body */
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    long clen = -1;
    char *body = NULL;
    double t0 = mock_now();
    while (mock_now() - t0 < 10) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
        ssize_t r = recv(fd, buf + n, cap - n, 0);
        if (r <= 0) break;
        n += (size_t)r;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end) continue;
        if (clen < 0) {
            char *cl = strcasestr(buf, "content-length:");
            clen = cl && cl < end ? atol(cl + 15) : 0;
            if (strcasestr(buf, "expect: 100-continue"))
                send(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25, MSG_NOSIGNAL);
        }
        if ((long)(n - (size_t)(end + 4 - buf)) >= clen) {
            body = end + 4;
            break;
        }
    }
    if (!body) {
        free(buf);
        return;
    }
    atomic_fetch_add(&m->requests, 1);
    int now = atomic_fetch_add(&m->in_flight, 1) + 1;
    int mx = atomic_load(&m->max_in_flight);
    while (now > mx && !atomic_compare_exchange_weak(&m->max_in_flight, &mx, now)) {
    }
    mock_handle_request(m, fd, buf, body);
    atomic_fetch_sub(&m->in_flight, 1);
    free(buf);
}

static void mock_handle_request(MockJudge *m, int fd, char *buf, char *body) {
    /* authorization */
    char token[256] = "";
    char *auth = strcasestr(buf, "authorization: bearer ");
    if (auth && auth < body) {
        auth += 22;
        size_t k = 0;
        while (auth[k] && auth[k] != '\r' && k < sizeof token - 1) token[k] = auth[k], k++;
        token[k] = '\0';
    }
    if ((m->key && strcmp(token, m->key) != 0) || m->mode == MOCK_AUTH) {
        char msg[512];
        snprintf(msg, sizeof msg, "{\"error\": {\"message\": \"Incorrect API key provided: %s\"}}", token);
        mock_send(fd, 401, "Unauthorized", NULL, msg);
        return;
    }
    cJSON *req = cJSON_Parse(body);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(req, "messages");
    const cJSON *user = cJSON_GetArrayItem(msgs, 1);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(user, "content");
    const char *c = cJSON_IsString(content) ? content->valuestring : "";
    const char *a = strstr(c, "Chain of thought:\n");
    const char *z = strstr(c, "\n\nQuote the most difficult snippets");
    if (!a || !z || z < a) {
        mock_send(fd, 400, "Bad Request", NULL, "{\"error\": {\"message\": \"no chain of thought\"}}");
        cJSON_Delete(req);
        return;
    }
    a += strlen("Chain of thought:\n");
    int attempt = mock_attempt(m, a, (size_t)(z - a));
    if (m->mode == MOCK_DOWN) {
        mock_send(fd, 503, "Service Unavailable", NULL, "{\"error\": {\"message\": \"overloaded\"}}");
    } else if (m->mode == MOCK_FLAKY && attempt == 1) {
        mock_send(fd, 500, "Internal Server Error", NULL, "{\"error\": {\"message\": \"boom\"}}");
    } else if (m->mode == MOCK_FLAKY && attempt == 2) {
        mock_send(fd, 429, "Too Many Requests", "Retry-After: 0\r\n", "{\"error\": {\"message\": \"slow down\"}}");
    } else if (m->mode == MOCK_FLAKY && attempt == 3) {
        mock_send(fd, 200, "OK", NULL, "<html>gateway hiccup</html>");
    } else {
        if (m->mode == MOCK_SLOW && attempt == 1) {
            double t1 = mock_now();
            for (;;) { /* the hang-up is checked before `stop`, so it is never missed */
                if (mock_hung_up(fd)) {
                    atomic_fetch_add(&m->abandoned, 1);
                    cJSON_Delete(req);
                    return;
                }
                if (mock_now() - t1 >= m->slow_s || atomic_load(&m->stop)) break;
                usleep(10000);
            }
        }
        if (m->gather > 0) { /* a barrier: answer once this request's group of `gather` is here */
            int ticket = atomic_fetch_add(&m->arrivals, 1) + 1;
            int need = (ticket + m->gather - 1) / m->gather * m->gather;
            double tg = mock_now();
            while (atomic_load(&m->arrivals) < need && mock_now() - tg < 10 && !atomic_load(&m->stop))
                usleep(2000);
        }
        double t2 = mock_now();
        while (mock_now() - t2 < m->delay_s && !atomic_load(&m->stop)) usleep(5000);
        char *ans = mock_answer(m, a, (size_t)(z - a));
        cJSON *resp = cJSON_CreateObject();
        cJSON_AddStringToObject(resp, "id", "mock-1");
        cJSON_AddStringToObject(resp, "object", "chat.completion");
        cJSON *choices = cJSON_AddArrayToObject(resp, "choices");
        cJSON *ch = cJSON_CreateObject();
        cJSON *msg = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddStringToObject(msg, "content", ans);
        cJSON_AddStringToObject(ch, "finish_reason", "stop");
        cJSON_AddItemToArray(choices, ch);
        cJSON *usage = cJSON_AddObjectToObject(resp, "usage");
        cJSON_AddNumberToObject(usage, "prompt_tokens", 1000);
        cJSON_AddNumberToObject(usage, "completion_tokens", 200);
        char *txt = cJSON_PrintUnformatted(resp);
        mock_send(fd, 200, "OK", NULL, txt);
        free(txt);
        cJSON_Delete(resp);
        free(ans);
    }
    cJSON_Delete(req);
}

static void *mock_conn(void *arg) {
    MockConn *c = arg;
    mock_handle(c->m, c->fd);
    close(c->fd);
    atomic_fetch_sub(&c->m->active, 1);
    free(c);
    return NULL;
}

static void *mock_accept(void *arg) {
    MockJudge *m = arg;
    double t0 = mock_now();
    while (!atomic_load(&m->stop) && mock_now() - t0 < m->max_life_s) {
        struct pollfd p = {m->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int cfd = accept(m->fd, NULL, NULL);
        if (cfd < 0) continue;
        MockConn *c = malloc(sizeof *c);
        c->m = m;
        c->fd = cfd;
        atomic_fetch_add(&m->active, 1);
        pthread_t t;
        if (pthread_create(&t, NULL, mock_conn, c) != 0) {
            close(cfd);
            atomic_fetch_sub(&m->active, 1);
            free(c);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

/* starts the server; returns 0 and fills m->port */
static int mock_judge_start(MockJudge *m, int mode, double fraction, const char *key) {
    memset(m, 0, sizeof *m);
    m->mode = mode;
    m->fraction = fraction;
    m->key = key;
    m->slow_s = 3.0;
    m->max_life_s = 300;
    pthread_mutex_init(&m->mu, NULL);
    m->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (m->fd < 0) return -1;
    int one = 1;
    setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1 only */
    a.sin_port = 0;
    if (bind(m->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(m->fd, 64) != 0) {
        close(m->fd);
        return -1;
    }
    socklen_t al = sizeof a;
    getsockname(m->fd, (struct sockaddr *)&a, &al);
    m->port = ntohs(a.sin_port);
    if (pthread_create(&m->thread, NULL, mock_accept, m) != 0) {
        close(m->fd);
        return -1;
    }
    return 0;
}

static void mock_judge_stop(MockJudge *m) {
    atomic_store(&m->stop, 1);
    pthread_join(m->thread, NULL);
    close(m->fd);
    double t0 = mock_now(); /* let handlers finish (they watch `stop`) */
    while (atomic_load(&m->active) > 0 && mock_now() - t0 < 10) usleep(5000);
    pthread_mutex_destroy(&m->mu);
}

#endif
