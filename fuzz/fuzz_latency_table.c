/*
 * libFuzzer harness for a latency table (engine/latency.h) as eval, GRPO's reward and the demo
 * read it: the input is the file's text, parsed and checked by latency_table_parse, the function
 * latency_table_load calls. A refused table must return nothing and a one-line message that
 * names the file; an accepted one must hold what the header promises (grids >= 1 and
 * increasing, figures finite and >= 0), give finite, non-negative lookups and T_split anywhere
 * (inside the grid, between, far beyond, at INT_MAX), and read back from its own JSON to the
 * same table. Any crash, sanitizer report or leak is a bug.
 *
 *   bash fuzz/run.sh latency_table [seconds]   (CI replays fuzz/corpus/latency_table/)
 *
 * Seeds: the shipped tables (the roofline ones of configs/latency), the table of tests/test_latency.c and
 * hand-made edge cases (one-point grids, falling segments, zeros).
 */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../engine/latency.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void finite_nonneg(double v) {
    if (!(v >= 0) || !isfinite(v)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = "/tmp/latency/table.json";
    LatencyTable *t = (LatencyTable *)1;
    SrError err;
    if (latency_table_parse(&t, (const char *)data, size, path, &err) != 0) {
        if (t != NULL || strncmp(err.msg, path, strlen(path)) != 0 || strchr(err.msg, '\n')) abort();
        return 0;
    }
    if (!t || !t->device || !t->small.name || !t->big.name || t->n_batches < 1 ||
        t->n_contexts < 1 || t->n_deltas < 1 || t->pi_context < 0)
        abort();
    for (int i = 0; i < t->n_batches; i++)
        if (t->batches[i] < 1 || (i && t->batches[i] <= t->batches[i - 1])) abort();
    for (int i = 0; i < t->n_contexts; i++)
        if (t->contexts[i] < 1 || (i && t->contexts[i] <= t->contexts[i - 1])) abort();
    for (int i = 0; i < t->n_deltas; i++)
        if (t->deltas[i] < 1 || (i && t->deltas[i] <= t->deltas[i - 1])) abort();
    for (int i = 0; i < t->n_batches * t->n_contexts; i++) finite_nonneg(t->tau_s[i]), finite_nonneg(t->tau_b[i]);
    for (int i = 0; i < t->n_deltas; i++) finite_nonneg(t->pi_s[i]), finite_nonneg(t->pi_b[i]);
    finite_nonneg(t->sigma);
    /* lookups: the grid's own points, between them, outside, and the extremes */
    const int probe[] = {INT_MIN, -1, 0, 1, 2, 3, 7, 100, 1000, 65536, 1 << 24, INT_MAX};
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
        for (size_t j = 0; j < sizeof probe / sizeof probe[0]; j++)
            for (int w = 0; w < 2; w++) finite_nonneg(latency_tau(t, (LatencyWhich)w, probe[i], probe[j]));
        for (int w = 0; w < 2; w++) finite_nonneg(latency_pi(t, (LatencyWhich)w, probe[i]));
    }
    for (int i = 0; i < t->n_batches; i++)
        for (int j = 0; j < t->n_contexts; j++)
            if (latency_tau(t, LATENCY_SMALL, t->batches[i], t->contexts[j]) != t->tau_s[i * t->n_contexts + j])
                abort();
    for (int i = 0; i < t->n_deltas; i++)
        if (fabs(latency_pi(t, LATENCY_BIG, t->deltas[i]) - t->pi_b[i]) > 1e-9 * (1 + t->pi_b[i])) abort();
    int db[3] = {1, INT_MAX, 0}, ds[3] = {INT_MAX, 5, -3};
    finite_nonneg(latency_t_split(t, 16, INT_MAX, INT_MAX, INT_MAX, 3, db, ds));
    finite_nonneg(latency_t_split(t, 1, 0, 0, 0, 0, NULL, NULL));
    finite_nonneg(latency_t_single(t, LATENCY_BIG, INT_MAX, 100, INT_MAX));
    /* the writer's text reads back to the same table */
    SrBuf b = {0};
    latency_table_to_json(t, &b);
    LatencyTable *u;
    if (latency_table_parse(&u, b.p, b.n, path, &err) != 0) abort();
    if (u->n_batches != t->n_batches || u->n_contexts != t->n_contexts || u->n_deltas != t->n_deltas ||
        u->measured != t->measured || u->sigma != t->sigma || u->pi_context != t->pi_context ||
        strcmp(u->device, t->device) || strcmp(u->small.name, t->small.name) ||
        memcmp(u->tau_s, t->tau_s, (size_t)t->n_batches * t->n_contexts * sizeof(double)) ||
        memcmp(u->pi_b, t->pi_b, (size_t)t->n_deltas * sizeof(double)))
        abort();
    latency_table_free(u);
    sr_buf_free(&b);
    latency_table_free(t);
    return 0;
}
