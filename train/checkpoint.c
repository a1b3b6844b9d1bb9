/*
 * Training checkpoints (see checkpoint.h): written through the atomic directory writer
 * (common/fileio.h SrAtomicDir) with DONE last, prune; find the latest complete one.
 */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/fileio.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/safetensors.h"
#include "../model/model_dir.h"

int checkpoint_is_complete(const char *dir) {
    char *p = sr_path_join(dir, "DONE");
    int ok = sr_file_exists(p);
    free(p);
    return ok;
}

/* "checkpoint-123" -> 123; -1 for anything else (including "checkpoint-123.tmp", and
 * "checkpoint-0123": the path is rebuilt from the step, so only the name we write counts) */
static long parse_step(const char *name) {
    size_t np = strlen(CHECKPOINT_PREFIX);
    if (strncmp(name, CHECKPOINT_PREFIX, np) != 0 || !name[np]) return -1;
    if (name[np] == '0' && name[np + 1]) return -1;
    long v = 0;
    for (const char *s = name + np; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

static int is_tmp_dir(const char *name) {
    size_t n = strlen(name), np = strlen(CHECKPOINT_PREFIX);
    return n > np + 4 && strncmp(name, CHECKPOINT_PREFIX, np) == 0 && strcmp(name + n - 4, ".tmp") == 0;
}

typedef struct CkptList {
    int n;
    long *steps;
    char **tmp; /* stale .tmp directory names */
    int n_tmp;
} CkptList;

static void list_free(CkptList *l) {
    free(l->steps);
    for (int i = 0; i < l->n_tmp; i++) free(l->tmp[i]);
    free(l->tmp);
    memset(l, 0, sizeof *l);
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* complete checkpoints of dir, sorted by step; 0 entries if dir does not exist */
static int list_checkpoints(const char *dir, CkptList *l, SrError *err) {
    memset(l, 0, sizeof *l);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        return sr_fail(err, "%s: cannot list the directory (%s)", dir, strerror(errno));
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (is_tmp_dir(e->d_name)) {
            l->tmp = sr_realloc(l->tmp, (size_t)(l->n_tmp + 1) * sizeof(char *));
            l->tmp[l->n_tmp++] = sr_strdup(e->d_name);
            continue;
        }
        long s = parse_step(e->d_name);
        if (s < 0) continue;
        char *p = sr_path_join(dir, e->d_name);
        int done = checkpoint_is_complete(p);
        free(p);
        if (!done) continue;
        l->steps = sr_realloc(l->steps, (size_t)(l->n + 1) * sizeof(long));
        l->steps[l->n++] = s;
    }
    closedir(d);
    if (l->n > 1) qsort(l->steps, (size_t)l->n, sizeof(long), cmp_long); /* steps is NULL when n is 0 */
    return 0;
}

int checkpoint_find_latest(const char *output_dir, char *path, size_t path_size, int *step,
                           SrError *err) {
    CkptList l;
    if (list_checkpoints(output_dir, &l, err)) return -1;
    int found = l.n > 0;
    if (found) {
        *step = (int)l.steps[l.n - 1];
        snprintf(path, path_size, "%s/%s%d", output_dir, CHECKPOINT_PREFIX, *step);
    }
    list_free(&l);
    return found;
}

int checkpoint_prune(const char *output_dir, int keep, SrError *err) {
    CkptList l;
    if (list_checkpoints(output_dir, &l, err)) return -1;
    char path[4096];
    int rc = 0;
    /* checkpoint-<step>.tmp-<pid>/ of processes that are gone (and the pid-less .tmp/ of
     * earlier versions) */
    sr_sweep_stale_in(output_dir, CHECKPOINT_PREFIX);
    for (int i = 0; i < l.n_tmp && !rc; i++) {
        snprintf(path, sizeof path, "%s/%s", output_dir, l.tmp[i]);
        rc = sr_rmtree(path, err);
    }
    for (int i = 0; keep > 0 && i < l.n - keep && !rc; i++) {
        snprintf(path, sizeof path, "%s/%s%ld", output_dir, CHECKPOINT_PREFIX, l.steps[i]);
        rc = sr_rmtree(path, err);
    }
    list_free(&l);
    return rc;
}

/* ---- trainer_state.json ------------------------------------------------------------------- */

/* A number field of obj (named name in messages) in [lo, hi]; integral when integer is set.
 * Absent: -1 with an error when required, else 0 and *out untouched. */
static int state_num(const cJSON *obj, const char *key, const char *name, double lo, double hi, int integer,
                     int required, double *out, const char *path, SrError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return required ? sr_fail(err, "%s: %s is missing (not a splitreason checkpoint?)", path, name) : 0;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= lo && d <= hi) || (integer && d != floor(d))) {
        char *p = cJSON_PrintUnformatted(v);
        const char *s = p ? p : "?";
        if (hi == DBL_MAX && lo == -DBL_MAX) sr_fail(err, "%s: %s must be a finite number (got %.40s)", path, name, s);
        else if (hi == DBL_MAX) sr_fail(err, "%s: %s must be a finite number >= %g (got %.40s)", path, name, lo, s);
        else sr_fail(err, "%s: %s must be %s in [%.17g, %.17g] (got %.40s)", path, name,
                     integer ? "an integer" : "a number", lo, hi, s);
        free(p);
        return -1;
    }
    *out = d;
    return 0;
}

/* obj[key]: NULL when absent, else it must be an object */
static int state_obj(const cJSON *obj, const char *key, const char *name, int required, const cJSON **out,
                     const char *path, SrError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v && !required) return 0;
    if (!cJSON_IsObject(v))
        return sr_fail(err, "%s: %s %s (not a splitreason checkpoint?)", path, name,
                       v ? "must be an object" : "is missing");
    *out = v;
    return 0;
}

#define MAX_STEPS 1e9        /* as sft refuses more optimizer steps */
#define MAX_COUNT 9007199254740992.0 /* 2^53: counts beyond it are not exact as JSON numbers */

int checkpoint_parse_state(const char *text, size_t len, const char *path, CheckpointState *st, SrError *err) {
    memset(st, 0, sizeof *st);
    cJSON *j = sr_json_parse_object(text, len, err);
    if (!j) return sr_fail_prefix(err, "%s", path);
    const cJSON *x, *d, *w;
    double step = 0, world = 0, ns = 0, gmb = 0, ep = 0, cur = 0, fv = 1, ws = 0;
    int rc = state_num(j, "global_step", "global_step", 0, MAX_STEPS, 1, 1, &step, path, err) ||
             state_obj(j, "splitreason", "splitreason", 1, &x, path, err) ||
             state_num(x, "format_version", "splitreason.format_version", 1, 1, 1, 0, &fv, path, err) ||
             state_num(x, "world_size", "splitreason.world_size", 1, 1 << 20, 1, 1, &world, path, err) ||
             state_obj(x, "data", "splitreason.data", 1, &d, path, err) ||
             state_num(d, "n_sequences", "splitreason.data.n_sequences", 0, MAX_COUNT, 1, 1, &ns, path, err) ||
             state_num(d, "global_micro_batch", "splitreason.data.global_micro_batch", 1, MAX_COUNT, 1, 1, &gmb,
                       path, err) ||
             state_num(d, "epoch", "splitreason.data.epoch", 0, MAX_COUNT, 1, 1, &ep, path, err) ||
             state_num(d, "cursor", "splitreason.data.cursor", 0, ns, 1, 1, &cur, path, err) ||
             state_obj(x, "log_window", "splitreason.log_window", 0, &w, path, err) ||
             state_num(w, "loss_sum", "splitreason.log_window.loss_sum", -DBL_MAX, DBL_MAX, 0, 0,
                       &st->window_loss_sum, path, err) ||
             state_num(w, "steps", "splitreason.log_window.steps", 0, step, 1, 0, &ws, path, err) ||
             state_num(j, "num_input_tokens_seen", "num_input_tokens_seen", 0, DBL_MAX, 0, 0, &st->tokens_seen,
                       path, err) ||
             state_num(j, "total_flos", "total_flos", 0, DBL_MAX, 0, 0, &st->total_flos, path, err) ||
             state_num(x, "train_seconds", "splitreason.train_seconds", 0, DBL_MAX, 0, 0, &st->train_seconds,
                       path, err) ||
             state_obj(x, "config", "splitreason.config", 0, &st->config, path, err);
    const cJSON *lh = rc ? NULL : cJSON_GetObjectItemCaseSensitive(j, "log_history");
    if (lh && !cJSON_IsArray(lh)) rc = sr_fail(err, "%s: log_history must be an array", path);
    int k = 0;
    for (const cJSON *it = lh ? lh->child : NULL; it && !rc; it = it->next, k++)
        if (!cJSON_IsObject(it)) rc = sr_fail(err, "%s: log_history[%d] must be an object", path, k);
    if (rc) {
        cJSON_Delete(j);
        memset(st, 0, sizeof *st);
        return -1;
    }
    st->json = j;
    st->log_history = lh;
    st->global_step = (int)step;
    st->world_size = (int)world;
    st->n_sequences = (long long)ns;
    st->global_micro_batch = (long long)gmb;
    st->data_epoch = (long long)ep;
    st->data_cursor = (long long)cur;
    st->window_steps = (int)ws;
    return 0;
}

int checkpoint_read_state(const char *dir, CheckpointState *st, SrError *err) {
    memset(st, 0, sizeof *st);
    if (!checkpoint_is_complete(dir))
        return sr_fail(err, "%s: not a complete checkpoint (no DONE marker: it was interrupted "
                            "while being written)", dir);
    char *p = sr_path_join(dir, "trainer_state.json");
    char *text = NULL;
    size_t len = 0;
    int rc = sr_read_file(p, &text, &len, err);
    if (!rc) rc = checkpoint_parse_state(text, len, p, st, err);
    free(text);
    free(p);
    return rc;
}

void checkpoint_state_free(CheckpointState *st) {
    cJSON_Delete(st->json);
    memset(st, 0, sizeof *st);
}

/* ---- writing ------------------------------------------------------------------------------ */

static void maybe_kill(int step) {
    const char *k = getenv("SR_TEST_KILL_IN_CHECKPOINT");
    if (k && *k && atoi(k) == step) {
        fprintf(stderr, "[splitreason] SR_TEST_KILL_IN_CHECKPOINT=%d: killing this process "
                        "while checkpoint %d is half written\n", step, step);
        fflush(stderr);
        raise(SIGKILL);
    }
}

/* every rank learns whether any rank failed; a rank that did not fail says so in err */
static int agree(SrComm *comm, int failed, SrError *err, const char *what) {
    double f = failed ? 1.0 : 0.0;
    sr_comm_allreduce_host(comm, &f, 1);
    if (f > 0 && !failed) sr_fail(err, "%s: another rank failed", what);
    return f > 0 ? -1 : 0;
}

int checkpoint_save(const CheckpointSave *cs, char *path, size_t path_size, SrError *err) {
    SrComm *comm = cs->opt->comm;
    const Qwen2Model *m = cs->opt->m;
    int root = comm->rank == 0;
    char final[4096];
    snprintf(final, sizeof final, "%s/%s%d", cs->output_dir, CHECKPOINT_PREFIX, cs->step);
    if (path) snprintf(path, path_size, "%s", final);

    /* 1. rank 0 opens checkpoint-<step>.tmp-<pid>/; the others learn its pid */
    SrAtomicDir d;
    int rc = 0;
    if (root) rc = sr_atomic_dir_open(&d, final, err);
    if (agree(comm, rc, err, final)) return -1;
    double pid = root ? (double)getpid() : 0.0;
    sr_comm_allreduce_host(comm, &pid, 1);
    if (!root) sr_atomic_dir_join(&d, final, (long)pid);

    /* 2. every rank its optimizer slice; rank 0 the model directory and the state */
    rc = sr_optim_save(cs->opt, d.tmp, err);
    if (!rc && root) {
        int st_dtype = m->be->act_dtype == SR_BF16 ? ST_BF16 : ST_F32;
        rc = model_dir_write(m, cs->tok, d.tmp, st_dtype, err);
        if (!rc) maybe_kill(cs->step);
        if (!rc) {
            char *text = cJSON_Print(cs->trainer_state);
            char *p = sr_path_join(d.tmp, "trainer_state.json");
            rc = sr_write_file_atomic(p, text, strlen(text), err);
            free(p);
            free(text);
        }
    }
    if (agree(comm, rc, err, d.tmp)) {
        sr_atomic_dir_abort(&d);
        return -1;
    }

    /* 3. DONE last, then the swap that publishes the checkpoint, then pruning */
    if (root) {
        char done[64], *p = sr_path_join(d.tmp, "DONE");
        int n = snprintf(done, sizeof done, "step %d\n", cs->step);
        rc = sr_write_file_atomic(p, done, (size_t)n, err);
        free(p);
        if (!rc) rc = sr_atomic_dir_commit(&d, err);
        else sr_atomic_dir_abort(&d);
        if (!rc) rc = checkpoint_prune(cs->output_dir, cs->save_total_limit, err);
    } else {
        sr_atomic_dir_abort(&d);
    }
    return agree(comm, rc, err, final);
}
