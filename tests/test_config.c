/*
 * The option layer (common/config.h): every value, from the command line or a --config file,
 * checked against its option, with the key named (issue 9, items 10 and 12):
 *   - numbers: the whole text must be a JSON number ("3abc", "0x3", "12abc", "nan", " 3" are
 *     refused), integers whole, non-finite refused, ranges per key ("2147483648 is out of range
 *     [1, 1048576]" instead of wrapping to 0);
 *   - choices for enumerated strings (and JSON strings / lists), a choice or an index (select);
 *   - required keys; a truncated --config file said to be truncated; a repeated key in it
 *     keeps its last value;
 *   - SFT's real table: the reproducers of the issue;
 *   - --help prints the ranges and choices.
 */
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/fileio.h"
#include "harness.h"
#include "train/sft.h"

static const SrOption OPTS[] = {
    {"max_new_tokens", SR_OPT_INT, "256", "tokens", SR_RANGE(1, 1048576)},
    {"temperature", SR_OPT_FLOAT, "0.6", "temperature", SR_RANGE(0, 100)},
    {"top_p", SR_OPT_FLOAT, "0.95", "nucleus", SR_RANGE_X(0, 1, 1, 0)},
    {"beta", SR_OPT_FLOAT, "0.9", "beta", SR_RANGE_X(0, 1, 0, 1)},
    {"count", SR_OPT_INT, "0", "no declared range: must fit an int"},
    {"ratio", SR_OPT_FLOAT, "0", "no declared range: finite"},
    {"mode", SR_OPT_STR, "\"eval\"", "mode", SR_CHOICES("eval", "reward")},
    {"select", SR_OPT_STR, "\"first\"", "select", SR_CHOICES("first", "all"), SR_RANGE(0, 1000)},
    {"report_to", SR_OPT_JSON, "\"none\"", "report", SR_CHOICES("tensorboard", "none")},
    {"input", SR_OPT_STR, "null", "input", SR_REQUIRED},
    {"flag", SR_OPT_BOOL, "false", "a flag"},
    {"stop", SR_OPT_JSON, "[]", "anything JSON"},
    {"name", SR_OPT_STR, "null", "any string"},
};
#define N_OPTS ((int)(sizeof OPTS / sizeof OPTS[0]))

static const char *TMP;

/* parses "a b c" (space-separated args; "\x01" stands for an empty argument) against OPTS */
static int parse_args(SrConfig *cfg, const SrOption *opts, int n_opts, const char *line, SrError *err) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", line);
    char *argv[32];
    int argc = 0;
    for (char *t = strtok(buf, " "); t && argc < 32; t = strtok(NULL, " ")) argv[argc++] = strcmp(t, "\x01") ? t : "";
    int help = 0;
    memset(cfg, 0, sizeof *cfg);
    strcpy(err->msg, "(no message)");
    return sr_config_parse(cfg, opts, n_opts, argc, argv, &help, err);
}

/* the line is refused with exactly this message */
static void refused(const char *line, const char *want) {
    SrConfig cfg;
    SrError err;
    int rc = parse_args(&cfg, OPTS, N_OPTS, line, &err);
    CHECKF(rc == -1 && strcmp(err.msg, want) == 0, "'%s': got rc %d \"%s\", want \"%s\"", line, rc, err.msg, want);
    sr_config_free(&cfg);
}

static void accepted(const char *line, const char *key, double want) {
    SrConfig cfg;
    SrError err;
    int rc = parse_args(&cfg, OPTS, N_OPTS, line, &err);
    CHECKF(rc == 0, "'%s': %s", line, err.msg);
    if (rc == 0 && key) CHECKF(sr_config_float(&cfg, key) == want, "'%s': %s = %g", line, key, sr_config_float(&cfg, key));
    sr_config_free(&cfg);
}

static void test_command_line(void) {
    /* the reproducers: no wrapping, no junk after the number */
    refused("--input x --max-new-tokens 2147483648", "--max-new-tokens: 2147483648 is out of range [1, 1048576]");
    refused("--input x --max-new-tokens 4294967299", "--max-new-tokens: 4294967299 is out of range [1, 1048576]");
    refused("--input x --max-new-tokens 3abc", "--max-new-tokens: '3abc' is not an integer");
    refused("--input x --max-new-tokens 0x3", "--max-new-tokens: '0x3' is not an integer");
    refused("--input x --max-new-tokens=12abc", "--max-new-tokens: '12abc' is not an integer");
    refused("--input x --max-new-tokens -5", "--max-new-tokens: -5 is out of range [1, 1048576]");
    refused("--input x --max-new-tokens 0", "--max-new-tokens: 0 is out of range [1, 1048576]");
    refused("--input x --max-new-tokens 2.5", "--max-new-tokens: 2.5 is not a whole number");
    refused("--input x --max-new-tokens 1e999", "--max-new-tokens: inf is not a finite number");
    refused("--input x --max-new-tokens \x01", "--max-new-tokens: '' is not an integer");
    refused("--input x --max-new-tokens +3", "--max-new-tokens: '+3' is not an integer");
    refused("--input x --max-new-tokens 03", "--max-new-tokens: '03' is not an integer");
    refused("--input x --max-new-tokens 3.", "--max-new-tokens: '3.' is not an integer");
    refused("--input x --max-new-tokens true", "--max-new-tokens: 'true' is not an integer");
    refused("--input x --temperature -1", "--temperature: -1 is out of range [0, 100]");
    refused("--input x --temperature nan", "--temperature: 'nan' is not a number");
    refused("--input x --temperature inf", "--temperature: 'inf' is not a number");
    refused("--input x --top-p 2", "--top-p: 2 is out of range (0, 1]");
    refused("--input x --top-p 0", "--top-p: 0 is out of range (0, 1]");
    refused("--input x --beta 1", "--beta: 1 is out of range [0, 1)");
    refused("--input x --count 2147483648", "--count: 2147483648 is out of range [-2147483648, 2147483647]");
    refused("--input x --ratio -1e309", "--ratio: -inf is not a finite number");
    refused("--input x --mode bogus", "--mode: 'bogus' is not one of eval, reward");
    refused("--input x --select -1", "--select: '-1' is not one of first, all, or a whole number in [0, 1000]");
    refused("--input x --select 1001", "--select: '1001' is not one of first, all, or a whole number in [0, 1000]");
    refused("--input x --report-to bogus", "--report-to: 'bogus' is not one of tensorboard, none");
    refused("--input x --report-to [\"none\",\"x\"]", "--report-to: 'x' is not one of tensorboard, none");
    refused("--input x --report-to 3", "--report-to: 3 is not one of tensorboard, none");
    refused("--input x --flag=maybe", "--flag: 'maybe' is not true or false");
    refused("--max-new-tokens 5", "--input is required");
    refused("--input x --bogus 1", "command line: unknown option 'bogus' (see --help)");
    refused("--input x --max-new-tokens", "--max-new-tokens needs a value");
    refused("--input x stray", "unexpected argument 'stray' (options are --key value)");

    accepted("--input x --max-new-tokens 1048576", "max_new_tokens", 1048576);
    accepted("--input x --max-new-tokens 1e3", "max_new_tokens", 1000);
    accepted("--input x --max-new-tokens=7", "max_new_tokens", 7);
    accepted("--input x --max_new_tokens 7", "max_new_tokens", 7);
    accepted("--input x --temperature 0", "temperature", 0);
    accepted("--input x --temperature -0", "temperature", 0);
    accepted("--input x --top-p 1", "top_p", 1);
    accepted("--input x --beta 0", "beta", 0);
    accepted("--input x --count -2147483648", "count", -2147483648.0);
    accepted("--input x --ratio 1e300", "ratio", 1e300);
    accepted("--input x --select 3 --mode reward --report-to [\"tensorboard\",\"none\"] --report-to none", NULL, 0);
    accepted("--input x --stop [\"a\"] --name 12abc", NULL, 0);
    /* values of the right kind land in the config */
    SrConfig cfg;
    SrError err;
    CHECK(parse_args(&cfg, OPTS, N_OPTS, "--input x --flag --select all --name 3 --max-new-tokens null", &err) == 0);
    CHECK(sr_config_bool(&cfg, "flag") && strcmp(sr_config_str(&cfg, "select"), "all") == 0);
    CHECK(strcmp(sr_config_str(&cfg, "name"), "3") == 0 && !sr_config_has(&cfg, "max_new_tokens"));
    sr_config_free(&cfg);
    CHECK(parse_args(&cfg, OPTS, N_OPTS, "--input x --flag false", &err) == 0 && !sr_config_bool(&cfg, "flag"));
    sr_config_free(&cfg);
    /* --help stops before the checks (nothing required then) */
    int help = 0;
    char *hv[] = {"--max-new-tokens", "0", "--help"};
    CHECK(sr_config_parse(&cfg, OPTS, N_OPTS, 3, hv, &help, &err) == 0 && help);
    sr_config_free(&cfg);
}

static char *write_cfg(const char *name, const char *text) {
    char *p = sr_path_join(TMP, name);
    sr_test_write_file(p, text, strlen(text));
    return p;
}

/* --config FILE [extra args] is refused with "FILE" + want (want starts after the path) */
static void file_refused(const char *name, const char *text, const char *want) {
    char *p = write_cfg(name, text);
    char line[1200];
    snprintf(line, sizeof line, "--input x --config %s", p);
    SrConfig cfg;
    SrError err;
    int rc = parse_args(&cfg, OPTS, N_OPTS, line, &err);
    char full[1400];
    snprintf(full, sizeof full, "%s%s", p, want);
    CHECKF(rc == -1 && strcmp(err.msg, full) == 0, "%s: got \"%s\", want \"%s\"", name, err.msg, full);
    sr_config_free(&cfg);
    free(p);
}

static void test_config_file(void) {
    /* the same checks for values from a --config file, the file and the key named */
    file_refused("big.json", "{\"max_new_tokens\": 2147483648}", ": max_new_tokens: 2147483648 is out of range [1, 1048576]");
    file_refused("frac.json", "{\"max_new_tokens\": 3.5}", ": max_new_tokens: 3.5 is not a whole number");
    file_refused("str.json", "{\"max_new_tokens\": \"3\"}", ": max_new_tokens: '3' is not an integer");
    file_refused("inf.json", "{\"temperature\": 1e999}", ": temperature: inf is not a finite number");
    file_refused("top.json", "{\"top_p\": 2}", ": top_p: 2 is out of range (0, 1]");
    file_refused("mode.json", "{\"mode\": \"bogus\"}", ": mode: 'bogus' is not one of eval, reward");
    file_refused("rep.json", "{\"report_to\": [\"tensorboard\", 3]}", ": report_to: 3 is not one of tensorboard, none");
    file_refused("flag.json", "{\"flag\": 1}", ": flag: 1 is not true or false");
    file_refused("obj.json", "{\"name\": {\"a\": 1}}", ": name: {\"a\":1} is not a string");
    file_refused("unknown.json", "{\"bogus\": 1}", ": unknown option 'bogus' (see --help)");
    file_refused("ctrl.json", "{\"bo\\ngus\": 1}", ": unknown option 'bo?gus' (see --help)");
    /* a truncated file is said to be truncated, not "not a JSON object" (item 12) */
    file_refused("trunc.json", "{\"max_new_tokens\": 5", ": the JSON text ends early (truncated?)");
    file_refused("trailing.json", "{\"max_new_tokens\": 5} {}", ": trailing data after the JSON value at byte 22");
    file_refused("list.json", "[1]", ": not a JSON object");
    file_refused("empty.json", "", ": empty: no JSON value");
    {
        SrConfig cfg;
        SrError err;
        char line[600];
        snprintf(line, sizeof line, "--input x --config %s/nope.json", TMP);
        CHECK(parse_args(&cfg, OPTS, N_OPTS, line, &err) == -1 && strstr(err.msg, "nope.json"));
        sr_config_free(&cfg);
    }
    /* a repeated key keeps its last value (Python's json); the command line wins over the file,
     * wherever it stands; the file may set a required key; --config=FILE works too */
    char *p = write_cfg("ok.json", "{\"max_new_tokens\": 3, \"max_new_tokens\": 9, \"input\": \"f\", \"select\": 4, "
                                   "\"name\": true}");
    char line[1200];
    SrConfig cfg;
    SrError err;
    snprintf(line, sizeof line, "--temperature 1 --config %s", p);
    CHECKF(parse_args(&cfg, OPTS, N_OPTS, line, &err) == 0, "%s", err.msg);
    CHECK(sr_config_int(&cfg, "max_new_tokens") == 9 && strcmp(sr_config_str(&cfg, "input"), "f") == 0);
    CHECK(strcmp(sr_config_str(&cfg, "select"), "4") == 0 && strcmp(sr_config_str(&cfg, "name"), "true") == 0);
    sr_config_free(&cfg);
    snprintf(line, sizeof line, "--config=%s --max-new-tokens 2", p);
    CHECKF(parse_args(&cfg, OPTS, N_OPTS, line, &err) == 0 && sr_config_int(&cfg, "max_new_tokens") == 2, "%s", err.msg);
    sr_config_free(&cfg);
    free(p);
    /* from memory: what the fuzz harness and the file reader share */
    const char *t = "{\"max_new_tokens\": 0}";
    CHECK(sr_config_parse_json(&cfg, OPTS, N_OPTS, t, strlen(t), "mem.json", &err) == -1 &&
          strcmp(err.msg, "mem.json: max_new_tokens: 0 is out of range [1, 1048576]") == 0);
    sr_config_free(&cfg);
}

/* SFT's table: the reproducers and its defaults */
static void test_sft_table(void) {
    const char *need = "--dataset-path d --output-dir o --model-name-or-path m ";
    struct {
        const char *args, *want;
    } bad[] = {
        {"--per_device_train_batch_size 2147483648", "--per-device-train-batch-size: 2147483648 is out of range [1, 65536]"},
        {"--warmup_ratio 2", "--warmup-ratio: 2 is out of range [0, 1]"},
        {"--report_to bogus", "--report-to: 'bogus' is not one of tensorboard, all, none"},
        {"--lr-scheduler-type cosine_with_restarts", "--lr-scheduler-type: 'cosine_with_restarts' is not one of constant, "
                                                     "constant_with_warmup, linear, cosine, cosine_with_min_lr"},
        {"--device tpu", "--device: 'tpu' is not one of cpu, cuda"},
        {"--adam-beta2 1", "--adam-beta2: 1 is out of range [0, 1)"},
        {"--adam-epsilon 0", "--adam-epsilon: 0 is out of range (0, 1]"},
        {"--max-steps -2", "--max-steps: -2 is out of range [-1, 1000000000]"},
        {"--seed -1", "--seed: -1 is out of range [0, 9007199254740991]"},
        {"--gradient-accumulation-steps 0", "--gradient-accumulation-steps: 0 is out of range [1, 65536]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char line[512];
        snprintf(line, sizeof line, "%s%s", need, bad[i].args);
        SrConfig cfg;
        SrError err;
        int rc = parse_args(&cfg, SFT_OPTIONS, SFT_N_OPTIONS, line, &err);
        CHECKF(rc == -1 && strcmp(err.msg, bad[i].want) == 0, "%s: \"%s\"", bad[i].args, err.msg);
        sr_config_free(&cfg);
    }
    SrConfig cfg;
    SrError err;
    CHECK(parse_args(&cfg, SFT_OPTIONS, SFT_N_OPTIONS, "--dataset-path d", &err) == -1 &&
          strcmp(err.msg, "--output-dir is required") == 0);
    sr_config_free(&cfg);
    /* the defaults pass, and the rules between keys are sft_options_from_config's */
    CHECKF(parse_args(&cfg, SFT_OPTIONS, SFT_N_OPTIONS, need, &err) == 0, "%s", err.msg);
    SftOptions o;
    CHECKF(sft_options_from_config(&o, &cfg, &err) == 0, "%s", err.msg);
    CHECK(o.harness.per_device_train_batch_size == 8 && o.harness.report_tensorboard &&
          strcmp(o.harness.lr_scheduler_type, "linear") == 0);
    sr_config_free(&cfg);
    char line[512];
    snprintf(line, sizeof line, "%s--lr-scheduler-type cosine_with_min_lr", need);
    CHECK(parse_args(&cfg, SFT_OPTIONS, SFT_N_OPTIONS, line, &err) == 0);
    CHECK(sft_options_from_config(&o, &cfg, &err) == -1 && strstr(err.msg, "min_lr_rate"));
    sr_config_free(&cfg);
    /* a key of the file inside a message stays on one line (found by fuzz_options) */
    const char *kw = "{\"lr_scheduler_kwargs\": {\"tt\\n\\n_rate\": 0.1}}";
    CHECK(sr_config_parse_json(&cfg, SFT_OPTIONS, SFT_N_OPTIONS, kw, strlen(kw), "kw.json", &err) == 0);
    CHECKF(sft_options_from_config(&o, &cfg, &err) == -1 &&
               strcmp(err.msg, "lr_scheduler_kwargs: 'tt??_rate' is not supported (only min_lr_rate)") == 0,
           "%s", err.msg);
    sr_config_free(&cfg);
}

static void test_help(void) {
    char *p = sr_path_join(TMP, "help.txt");
    FILE *f = fopen(p, "w");
    sr_config_print_help(f, OPTS, N_OPTS);
    fclose(f);
    char *text = sr_test_read_file(p, NULL);
    CHECK(text && strstr(text, "(default: 256; range [1, 1048576])"));
    CHECK(text && strstr(text, "(default: 0.95; range (0, 1])"));
    CHECK(text && strstr(text, "(default: \"eval\"; one of: eval, reward)"));
    CHECK(text && strstr(text, "one of: first, all, or a whole number in [0, 1000])"));
    CHECK(text && strstr(text, "input (required)"));
    free(text);
    free(p);
}

int main(void) {
    TMP = sr_test_tmpdir("test_config");
    test_command_line();
    test_config_file();
    test_sft_table();
    test_help();
    return sr_test_done();
}
