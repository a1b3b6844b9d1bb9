/*
 * Settings of a command: a JSON object built from, in order,
 *   1. the command's declared defaults (SrOption table),
 *   2. a JSON config file (--config FILE), whose key names follow TRL's SFTConfig /
 *      GRPOConfig where one exists,
 *   3. --key value overrides on the command line ("--max-new-tokens 64" sets max_new_tokens;
 *      a value that parses as JSON is taken as JSON, anything else as a string; a flag with no
 *      value is true; "a.b" keys address nested objects).
 * Unknown keys are an error naming the key (a typo must not silently do nothing).
 */
#ifndef SR_COMMON_CONFIG_H
#define SR_COMMON_CONFIG_H

#include <cjson/cJSON.h>

#include "error.h"

typedef enum { SR_OPT_STR, SR_OPT_INT, SR_OPT_FLOAT, SR_OPT_BOOL, SR_OPT_JSON } SrOptType;

typedef struct SrOption {
    const char *key;   /* snake_case, e.g. "max_new_tokens" (on the command line --max-new-tokens) */
    SrOptType type;
    const char *dflt;  /* default as JSON text ("null" = unset) */
    const char *help;
} SrOption;

typedef struct SrConfig {
    cJSON *root;
} SrConfig;

/* Parses argv (after the command name) into cfg against opts (n_opts entries).
 * Positional arguments are not accepted. Returns 0, or -1 with err. If "--help" is present,
 * *want_help is set and parsing stops early. */
int sr_config_parse(SrConfig *cfg, const SrOption *opts, int n_opts, int argc, char **argv,
                    int *want_help, SrError *err);
void sr_config_free(SrConfig *cfg);
/* Prints "  --max-new-tokens N   help (default: 64)" lines for each option to f. */
void sr_config_print_help(FILE *f, const SrOption *opts, int n_opts);
/* Prints the effective config as one JSON line to stderr, prefixed by "config: ". */
void sr_config_print(const SrConfig *cfg);

int sr_config_has(const SrConfig *cfg, const char *key);  /* present and not null */
const char *sr_config_str(const SrConfig *cfg, const char *key);  /* NULL if unset/null */
long long sr_config_int(const SrConfig *cfg, const char *key);
double sr_config_float(const SrConfig *cfg, const char *key);
int sr_config_bool(const SrConfig *cfg, const char *key);
cJSON *sr_config_get(const SrConfig *cfg, const char *key);

#endif
