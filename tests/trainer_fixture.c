/*
 * The trainer tests' shared helpers (see trainer_fixture.h).
 */
#include "trainer_fixture.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "harness.h"
#include "model/model.h"

int trainer_args(const char **kv, int cap, const char *const *base, const char *const *extra) {
    int n = 0;
    for (int i = 0; base[i]; i++) {
        if (n + 1 >= cap) return -1;
        kv[n++] = base[i];
    }
    for (int i = 0; extra && extra[i]; i++) {
        if (n + 1 >= cap) return -1;
        kv[n++] = extra[i];
    }
    kv[n] = NULL;
    return n;
}

int trainer_read_metric(const char *dir, const char *key, double *v, int max) {
    char path[1300];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    char *text = sr_test_read_file(path, NULL);
    if (!text) return -1;
    int n = 0;
    for (char *line = strtok(text, "\n"); line && n < max; line = strtok(NULL, "\n")) {
        cJSON *r = cJSON_Parse(line);
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(r, key);
        if (cJSON_IsNumber(x)) v[n++] = x->valuedouble;
        cJSON_Delete(r);
    }
    free(text);
    return n;
}

double trainer_check_weights(const char *a, const char *b, int step, double wtol, const char *what) {
    SrError err;
    SrBackend be;
    sr_backend_init(&be, "cpu", 0, &err);
    Qwen2Model ma, mb;
    char pa[1300], pb[1300];
    snprintf(pa, sizeof pa, "%s/checkpoint-%d", a, step);
    snprintf(pb, sizeof pb, "%s/checkpoint-%d", b, step);
    double e = -1;
    int ok = qwen2_load(&ma, pa, &be, &err) == 0;
    CHECKF(ok, "%s", err.msg);
    int ok_b = ok && qwen2_load(&mb, pb, &be, &err) == 0;
    if (ok) CHECKF(ok_b, "%s", err.msg);
    if (ok_b) {
        e = sr_rel_err((const float *)mb.params, (const float *)ma.params, ma.total_numel);
        if (wtol == 0)
            CHECKF(memcmp(ma.params, mb.params, ma.total_numel * 4) == 0, "%s: weights differ (rel %.3g)", what, e);
        else CHECKF(e < wtol, "%s: weights rel err %.3g", what, e);
        qwen2_free(&mb);
    }
    if (ok) qwen2_free(&ma);
    sr_backend_free(&be);
    return e;
}

int trainer_dist_init(SrComm *comm, void (*make_world)(void)) {
    SrError err;
    if (sr_comm_init(comm, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    if (comm->size != 2) {
        fprintf(stderr, "run with mpirun -np 2 (got %d processes)\n", comm->size);
        sr_comm_free(comm);
        return -1;
    }
    if (comm->rank == 0) make_world();
    sr_comm_barrier(comm);
    return 0;
}

int trainer_dist_runs(SrComm *comm, TrainerRunFn run, const char *batch, const char *batch_alone, const char *a,
                      const char *b, const char *c) {
    SrError err;
    const char *e1[] = {"--per-device-train-batch-size", batch, NULL};
    CHECKF(run(comm, a, e1, &err) == 0, "rank %d: %s", comm->rank, err.msg);
    const char *e2[] = {"--per-device-train-batch-size", batch, "--stop-after-steps", "2", NULL};
    const char *e3[] = {"--per-device-train-batch-size", batch, "--resume-from-checkpoint", "true", NULL};
    CHECKF(run(comm, c, e2, &err) == 0, "rank %d: %s", comm->rank, err.msg);
    CHECKF(run(comm, c, e3, &err) == 0, "rank %d: %s", comm->rank, err.msg);
    sr_comm_barrier(comm);
    if (comm->rank != 0) return 0;
    char f[1400];
    snprintf(f, sizeof f, "%s/checkpoint-3/optimizer-rank00001-of-00002.safetensors", a);
    CHECKF(sr_file_exists(f), "%s", f);
    SrComm one;
    sr_comm_init_single(&one);
    const char *e4[] = {"--per-device-train-batch-size", batch_alone, NULL};
    CHECKF(run(&one, b, e4, &err) == 0, "%s", err.msg);
    sr_comm_free(&one);
    return 1;
}

int trainer_dist_done(SrComm *comm) {
    sr_comm_barrier(comm);
    int rank = comm->rank, rc = sr_test_done();
    sr_comm_free(comm);
    return rank == 0 ? rc : 0;
}
