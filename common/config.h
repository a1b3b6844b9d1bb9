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
#include <math.h>

#include "error.h"

typedef enum { SR_OPT_STR, SR_OPT_INT, SR_OPT_FLOAT, SR_OPT_BOOL, SR_OPT_JSON } SrOptType;

/*
 * One option of a command. Every value, from the command line or from a --config file, is
 * checked against it, and a bad one is refused with the key named:
 *   "--max-new-tokens: 2147483648 is out of range [1, 1048576]"
 *   "run.json: warmup_ratio: 2 is out of range [0, 1]"
 * - a number option's command-line value must be a whole JSON number ("3abc", "0x3", "nan",
 *   "1e999" are refused); an SR_OPT_INT must be a whole number; non-finite numbers never pass;
 * - SR_RANGE(lo, hi) ([lo, hi]) and SR_RANGE_X(lo, hi, lo_excluded, hi_excluded) (e.g.
 *   (0, 1]) bound INT and FLOAT options (SR_INF: no upper bound). An INT option without a range must fit in an
 *   int, which is what most callers store it in; a FLOAT one must be finite;
 * - SR_CHOICES("a", "b") lists the values a STR option (or each string of a JSON option's
 *   string or list) may take; a STR option with choices AND a range also takes a whole
 *   number in the range (e.g. select: "first", "all", ... or an index);
 * - SR_REQUIRED: the option must be set (by the file or the command line); a missing one is
 *   a bad command line.
 * A default is ours, so it must pass its own checks (sr_config_parse asserts it).
 * `--help` prints the range, the choices and whether the option is required.
 */
typedef struct SrOption {
    const char *key;   /* snake_case, e.g. "max_new_tokens" (on the command line --max-new-tokens) */
    SrOptType type;
    const char *dflt;  /* default as JSON text ("null" = unset) */
    const char *help;
    /* checks: zero means none; set them with the macros below */
    int has_range;
    double min, max;
    int min_open, max_open;      /* the range excludes min / max */
    const char *const *choices;  /* NULL-terminated */
    int required;
} SrOption;

#define SR_INF INFINITY
#define SR_RANGE(lo, hi) .has_range = 1, .min = (lo), .max = (hi)
#define SR_RANGE_X(lo, hi, lo_excluded, hi_excluded) \
    .has_range = 1, .min = (lo), .max = (hi), .min_open = (lo_excluded), .max_open = (hi_excluded)
#define SR_CHOICES(...) .choices = (const char *const[]){__VA_ARGS__, NULL}
#define SR_REQUIRED .required = 1
/* 2^53 - 1: the largest integer a JSON number (a double) holds exactly (seeds, row limits) */
#define SR_JSON_INT_MAX 9007199254740991.0

typedef struct SrConfig {
    cJSON *root;
} SrConfig;

/* Parses argv (after the command name) into cfg against opts (n_opts entries): every value
 * checked as SrOption says, then the required options. Positional arguments are not accepted.
 * Returns 0, or -1 with err (always a bad command line or --config file). If "--help" is
 * present, *want_help is set and parsing stops early. */
int sr_config_parse(SrConfig *cfg, const SrOption *opts, int n_opts, int argc, char **argv,
                    int *want_help, SrError *err);
void sr_config_free(SrConfig *cfg);
/* A user's text for a one-line message: cut to what buf holds (n - 4 bytes, then "..."),
 * control bytes as '?'. Values use a 72-byte buf, paths a 512-byte one. Returns buf. */
const char *sr_oneline(const char *s, char *buf, size_t n);
/* Parses a --config file's text (a JSON object) into cfg as sr_config_parse does for
 * `--config PATH` (the defaults first, then the file's keys, checked; no required check);
 * path names the file in errors. For tests and fuzzing: the file reader calls the same code. */
int sr_config_parse_json(SrConfig *cfg, const SrOption *opts, int n_opts, const char *text,
                         size_t len, const char *path, SrError *err);
/* Prints "  --max-new-tokens N   help (default: 64; 1..1048576)" lines for each option to f. */
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
