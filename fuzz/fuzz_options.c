/*
 * libFuzzer harness for the option layer (common/config.h) against a real command's table,
 * SFT's (train/sft.h, the largest: numbers with ranges, choices, JSON options, required keys).
 * The input's first byte chooses what the rest is:
 *   even: a --config file's text, read by sr_config_parse_json (what `--config FILE` runs);
 *   odd:  a command line, one argument per line, read by sr_config_parse (a "--config" argument
 *         is dropped: the harness reads no files).
 * Accepted settings then go through sft_options_from_config (the command's rules between keys).
 * What was accepted must hold what the table promises: every number finite, whole for an
 * integer, inside its range; every string of an enumerated option one of its choices. A refused
 * input must give one line.
 *
 * Build and run:  bash fuzz/run.sh options [seconds]   (replayed by ctest: fuzz_options)
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../train/sft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_choice(const SrOption *o, const char *s) {
    for (int i = 0; o->choices[i]; i++)
        if (strcmp(o->choices[i], s) == 0) return 1;
    return 0;
}

/* every accepted value against its option (required ones set, after a whole command line) */
static void check_values(const SrConfig *cfg, int required_checked) {
    for (int i = 0; i < SFT_N_OPTIONS; i++) {
        const SrOption *o = &SFT_OPTIONS[i];
        const cJSON *v = sr_config_get(cfg, o->key);
        if (cJSON_IsNull(v)) {
            if (o->required && required_checked) abort();
            continue;
        }
        switch (o->type) {
        case SR_OPT_INT:
        case SR_OPT_FLOAT: {
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) abort();
            double x = v->valuedouble;
            if (o->type == SR_OPT_INT && x != floor(x)) abort();
            if (o->has_range && ((o->min_open ? x <= o->min : x < o->min) || (o->max_open ? x >= o->max : x > o->max)))
                abort();
            break;
        }
        case SR_OPT_STR:
            if (!cJSON_IsString(v) || (o->choices && !o->has_range && !is_choice(o, v->valuestring))) abort();
            break;
        case SR_OPT_BOOL:
            if (!cJSON_IsBool(v)) abort();
            break;
        case SR_OPT_JSON:
            if (o->choices && cJSON_IsString(v) && !is_choice(o, v->valuestring)) abort();
            break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    SrConfig cfg = {0};
    SrError err;
    int rc, help = 0;
    if (!(data[0] & 1)) {
        rc = sr_config_parse_json(&cfg, SFT_OPTIONS, SFT_N_OPTIONS, text, n, "fuzz.json", &err);
    } else {
        /* one argument per line; NUL bytes end an argument early, as they would in argv */
        char *buf = malloc(n + 1);
        char **argv = malloc((n + 1) * sizeof(char *));
        if (!buf || !argv) {
            free(buf);
            free(argv);
            return 0;
        }
        memcpy(buf, text, n);
        buf[n] = '\0';
        int argc = 0;
        for (char *p = buf, *nl; p && p <= buf + n; p = nl ? nl + 1 : NULL) {
            nl = memchr(p, '\n', (size_t)(buf + n - p));
            if (nl) *nl = '\0';
            if (strncmp(p, "--config", 8) == 0) continue; /* no files */
            argv[argc++] = p;
        }
        rc = sr_config_parse(&cfg, SFT_OPTIONS, SFT_N_OPTIONS, argc, argv, &help, &err);
        free(argv);
        if (rc == 0 && !help) check_values(&cfg, 1);
        if (rc == 0 && !help) {
            SftOptions o;
            if (sft_options_from_config(&o, &cfg, &err) != 0 && strchr(err.msg, '\n')) abort();
        }
        sr_config_free(&cfg);
        free(buf);
        if (rc != 0 && strchr(err.msg, '\n')) abort();
        return 0;
    }
    if (rc == 0) {
        check_values(&cfg, 0);
        SftOptions o;
        if (sft_options_from_config(&o, &cfg, &err) != 0 && strchr(err.msg, '\n')) abort();
    } else if (strchr(err.msg, '\n')) {
        abort();
    }
    sr_config_free(&cfg);
    return 0;
}
