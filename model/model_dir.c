/*
 * Model directories (see model_dir.h): the one writer of a model's files, and its atomic form.
 */
#include "model_dir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/fileio.h"

int model_dir_write_generation_config(const char *dir, const Qwen2Config *c, SrError *err) {
    char text[512], *p = sr_path_join(dir, "generation_config.json");
    int n = snprintf(text, sizeof text, "{\n  \"_from_model_config\": true,\n");
    if (c->bos_token_id >= 0) n += snprintf(text + n, sizeof text - n, "  \"bos_token_id\": %d,\n", c->bos_token_id);
    if (c->eos_token_id >= 0) n += snprintf(text + n, sizeof text - n, "  \"eos_token_id\": %d,\n", c->eos_token_id);
    n += snprintf(text + n, sizeof text - n, "  \"do_sample\": true,\n  \"temperature\": 0.6,\n  \"top_p\": 0.95\n}\n");
    int rc = sr_write_file_atomic(p, text, (size_t)n, err);
    free(p);
    return rc;
}

int model_dir_write(const Qwen2Model *m, const Tokenizer *tok, const char *dir, int st_dtype,
                    SrError *err) {
    if (qwen2_save(m, dir, st_dtype, err)) return -1;
    if (tok && tokenizer_save(tok, dir, err)) return -1;
    return model_dir_write_generation_config(dir, &m->cfg, err);
}

/* 1 if dir is missing, empty, or holds a config.json */
static int replaceable(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT;
    int empty = 1;
    struct dirent *e;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    if (empty) return 1;
    char *cfg = sr_path_join(dir, "config.json");
    int ok = sr_file_exists(cfg);
    free(cfg);
    return ok;
}

int model_dir_save(const Qwen2Model *m, const Tokenizer *tok, const char *dir, int st_dtype,
                   SrError *err) {
    struct stat sb;
    if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode)) return sr_fail(err, "%s: exists and is not a directory", dir);
    if (!replaceable(dir))
        return sr_fail(err, "%s: exists and is not a model directory (no config.json): refusing to "
                            "replace it (choose a new or empty directory)", dir);
    SrAtomicDir d;
    if (sr_atomic_dir_open(&d, dir, err)) return -1;
    if (model_dir_write(m, tok, d.tmp, st_dtype, err)) {
        sr_atomic_dir_abort(&d);
        return -1;
    }
    return sr_atomic_dir_commit(&d, err);
}
