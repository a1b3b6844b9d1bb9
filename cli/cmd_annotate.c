/*
 * splitreason annotate: mark the difficult spans of reasoning traces with <bigmodel> tags
 * (annotate/annotate.h). Thin: options -> models / tokenizer -> annotate_run -> summary.
 */
#include <stdlib.h>
#include <string.h>

#include "../annotate/annotate.h"
#include "../annotate/summary.h"
#include "../common/log.h"
#include "cli.h"

static const SrOption OPTS[] = {
    {"method", SR_OPT_STR, "null", "gap (small vs big model), entropy (small model), or judge (an LLM over HTTP)",
     SR_CHOICES("gap", "entropy", "judge"), SR_REQUIRED},
    {"input", SR_OPT_STR, "null", "JSONL or JSONL.zst of traces (OpenR1-Math rows by default)", SR_REQUIRED},
    {"output", SR_OPT_STR, "null", "annotated JSONL (appended to and resumed when it exists)", SR_REQUIRED},
    TRACE_SPEC_OPTIONS("\"generations\""),
    {"limit", SR_OPT_INT, "0", "annotate only the first N rows (after --where); 0 = all", SR_RANGE(0, SR_JSON_INT_MAX)},
    {"small", SR_OPT_STR, "null", "the small model directory (gap, entropy)"},
    {"big", SR_OPT_STR, "null", "the big model directory (gap; same tokenizer as the small one)"},
    {"tokenizer", SR_OPT_STR, "null", "tokenizer for token counts and token-aligned spans (default: --small's)"},
    {"device", SR_OPT_STR, "\"cpu\"", "cpu or cuda (gap, entropy)", SR_CHOICES("cpu", "cuda"), SR_REQUIRED},
    {"target_fraction", SR_OPT_FLOAT, "0.2", "share of each trace's tokens to mark (the paper asked for about 20%)", SR_RANGE_X(0, 1, 1, 1)},
    {"smooth_window", SR_OPT_INT, "9", "tokens of the moving average over the difficulty (1 = none)", SR_RANGE(1, 1048576)},
    {"snap", SR_OPT_STR, "\"sentence\"", "span ends sit on: line, sentence (or line), word, or token boundaries",
     SR_CHOICES("line", "sentence", "word", "token"), SR_REQUIRED},
    {"min_span_tokens", SR_OPT_INT, "8", "shortest span kept (tokens)", SR_RANGE(1, 1048576)},
    {"max_span_tokens", SR_OPT_INT, "512", "longest span (tokens; at least --min-span-tokens)", SR_RANGE(1, 1048576)},
    {"merge_gap_chars", SR_OPT_INT, "10", "spans closer than this many characters merge (the paper: 10)", SR_RANGE(0, 1e9)},
    {"gap_score", SR_OPT_STR, "\"logprob\"", "gap difficulty: logprob (big minus small log-prob), kl (KL(big||small)), logprob+kl",
     SR_CHOICES("logprob", "kl", "logprob+kl"), SR_REQUIRED},
    {"with_prompt", SR_OPT_BOOL, "true", "score the trace after the chat-templated problem"},
    {"system_prompt", SR_OPT_STR, "null", "system prompt of that template"},
    {"window_tokens", SR_OPT_INT, "4096", "tokens per forward pass (longer traces go in windows; at most the models' max_position_embeddings)", SR_RANGE(2, 16777216)},
    {"window_context", SR_OPT_INT, "1024", "context tokens carried into each later window (at most half a window is used)", SR_RANGE(1, 16777216)},
    {"judge_endpoint", SR_OPT_STR, "null", "OpenAI-compatible base URL, e.g. https://api.deepseek.com/v1"},
    {"judge_model", SR_OPT_STR, "null", "model name, e.g. deepseek-reasoner"},
    {"judge_api_key_env", SR_OPT_STR, "\"OPENAI_API_KEY\"", "environment variable holding the API key (\"\" = no key)"},
    {"judge_timeout", SR_OPT_FLOAT, "600", "seconds per request attempt", SR_RANGE_X(0, 86400, 1, 0)},
    {"judge_connect_timeout", SR_OPT_FLOAT, "15", "seconds to connect", SR_RANGE_X(0, 3600, 1, 0)},
    {"judge_retries", SR_OPT_INT, "5", "retries of a failed request (timeouts, 429, 5xx)", SR_RANGE(0, 1000)},
    {"judge_backoff", SR_OPT_FLOAT, "2", "first retry delay in seconds (doubles each retry, with jitter)", SR_RANGE(0, 86400)},
    {"judge_backoff_max", SR_OPT_FLOAT, "120", "longest retry delay (seconds)", SR_RANGE(0, 86400)},
    {"judge_parallel", SR_OPT_INT, "8", "requests in flight", SR_RANGE(1, 1024)},
    {"judge_temperature", SR_OPT_FLOAT, "0", "sampling temperature of the judge", SR_RANGE(0, 2)},
    {"judge_max_tokens", SR_OPT_INT, "0", "max_tokens of the reply (0 = not sent)", SR_RANGE(0, 16777216)},
    {"judge_prompt_file", SR_OPT_STR, "null", "system prompt template ({percent}, {chars}, {total_chars})"},
    {"judge_ca_bundle", SR_OPT_STR, "null", "CA certificates file (default: the system's)"},
    {"judge_min_similarity", SR_OPT_FLOAT, "0.8", "alignment: lowest similarity (1 - edit distance / length) accepted", SR_RANGE_X(0, 1, 1, 0)},
    {"judge_refine_radius", SR_OPT_INT, "8", "alignment: characters each end may move in boundary refinement (0: the default, 8)", SR_RANGE(0, 65536)},
    {"summary", SR_OPT_STR, "null", "summary JSON path (default: OUTPUT.summary.json)"},
    {"plot", SR_OPT_STR, "null", "summary plot (SVG) path (default: OUTPUT.summary.svg)"},
    {"strict", SR_OPT_BOOL, "false", "stop at the first malformed row or failed request"},
    {"overwrite", SR_OPT_BOOL, "false", "start the output afresh instead of resuming it"},
    {"count_rows", SR_OPT_BOOL, "true", "count the input rows first (for the progress ETA)"},
};

static char *with_suffix(const char *path, const char *suffix) {
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *s = sr_malloc(n);
    snprintf(s, n, "%s%s", path, suffix);
    return s;
}

static int options(const SrConfig *cfg, AnnotateOptions *o, SrError *err) {
    memset(o, 0, sizeof *o);
    /* the table checks each value (choices, ranges, required); here: what they mean together */
    int m = annotate_method_from_name(sr_config_str(cfg, "method"));
    SR_ASSERT(m >= 0); /* SR_CHOICES */
    o->method = (AnnotateMethod)m;
    o->input = sr_config_str(cfg, "input");
    o->output = sr_config_str(cfg, "output");
    if (trace_spec_from_config(&o->trace, cfg, err)) return -1;
    o->limit = (long)sr_config_int(cfg, "limit");
    double f = sr_config_float(cfg, "target_fraction");
    o->span.target_fraction = f;
    o->span.smooth_window = (int)sr_config_int(cfg, "smooth_window");
    o->span.snap = spans_snap_from_name(sr_config_str(cfg, "snap"));
    SR_ASSERT(o->span.snap >= 0); /* SR_CHOICES */
    o->span.min_tokens = (int)sr_config_int(cfg, "min_span_tokens");
    o->span.max_tokens = (int)sr_config_int(cfg, "max_span_tokens");
    o->span.merge_gap_chars = (int)sr_config_int(cfg, "merge_gap_chars");
    if (o->span.max_tokens < o->span.min_tokens)
        return sr_fail(err, "--max-span-tokens (%d) is less than --min-span-tokens (%d)",
                       o->span.max_tokens, o->span.min_tokens);
    const char *gs = sr_config_str(cfg, "gap_score");
    o->gap_score = !strcmp(gs, "logprob") ? GAP_LOGPROB : !strcmp(gs, "kl") ? GAP_KL : GAP_LOGPROB_KL;
    o->with_prompt = sr_config_bool(cfg, "with_prompt");
    o->system_prompt = sr_config_str(cfg, "system_prompt");
    o->window = (int)sr_config_int(cfg, "window_tokens");
    o->context = (int)sr_config_int(cfg, "window_context");
    JudgeConfig *j = &o->judge;
    j->endpoint = sr_config_str(cfg, "judge_endpoint");
    j->model = sr_config_str(cfg, "judge_model");
    j->api_key_env = sr_config_str(cfg, "judge_api_key_env");
    if (!j->api_key_env) j->api_key_env = "";
    j->timeout_s = sr_config_float(cfg, "judge_timeout");
    j->connect_timeout_s = sr_config_float(cfg, "judge_connect_timeout");
    j->retries = (int)sr_config_int(cfg, "judge_retries");
    j->backoff_s = sr_config_float(cfg, "judge_backoff");
    j->backoff_max_s = sr_config_float(cfg, "judge_backoff_max");
    j->parallel = (int)sr_config_int(cfg, "judge_parallel");
    j->temperature = sr_config_float(cfg, "judge_temperature");
    j->max_tokens = (int)sr_config_int(cfg, "judge_max_tokens");
    j->target_fraction = f;
    j->ca_bundle = sr_config_str(cfg, "judge_ca_bundle");
    o->align.min_similarity = sr_config_float(cfg, "judge_min_similarity");
    o->align.radius = (int)sr_config_int(cfg, "judge_refine_radius");
    o->summary_path = sr_config_str(cfg, "summary");
    o->plot_path = sr_config_str(cfg, "plot");
    o->strict = sr_config_bool(cfg, "strict");
    o->overwrite = sr_config_bool(cfg, "overwrite");
    o->count_rows = sr_config_bool(cfg, "count_rows");
    o->small_path = sr_config_str(cfg, "small");
    o->big_path = sr_config_str(cfg, "big");
    o->tokenizer_path = sr_config_str(cfg, "tokenizer");
    if (!o->tokenizer_path) o->tokenizer_path = o->small_path;
    if (o->method != ANNOTATE_JUDGE && !o->small_path)
        return sr_fail(err, "--method %s needs --small DIR", annotate_method_name(o->method));
    if (o->method == ANNOTATE_GAP && !o->big_path) return sr_fail(err, "--method gap needs --big DIR");
    if (o->method == ANNOTATE_JUDGE && !o->tokenizer_path)
        return sr_fail(err, "--method judge needs --tokenizer (token counts and token-aligned spans)");
    return 0;
}

/* The output is appended to (or truncated with --overwrite): never the input, a model's file,
 * nor the summary files. A file-system check, so it runs with the command (exit 1, as in every
 * command), not with the command-line rules. */
static int check_outputs(const SrConfig *cfg, const AnnotateOptions *o, SrError *err) {
    if (sr_check_output("--output", o->output, 0, "--input", o->input, err)) return -1;
    static const char *const models[] = {"small", "big", "tokenizer"};
    for (int k = 0; k < 3; k++) {
        char opt[32];
        snprintf(opt, sizeof opt, "--%s", models[k]);
        if (sr_check_output("--output", o->output, 0, opt, sr_config_str(cfg, models[k]), err)) return -1;
    }
    const char *sm = sr_config_str(cfg, "summary"), *pl = sr_config_str(cfg, "plot");
    if (sr_check_output("--summary", sm, 0, "--input", o->input, err) ||
        sr_check_output("--summary", sm, 0, "--output", o->output, err) ||
        sr_check_output("--plot", pl, 0, "--input", o->input, err) ||
        sr_check_output("--plot", pl, 0, "--output", o->output, err))
        return -1;
    return 0;
}

/* the command line's rules between options (exit 2 when broken) */
static int check(const SrConfig *cfg, SrError *err) {
    AnnotateOptions o;
    int rc = options(cfg, &o, err);
    trace_spec_free(&o.trace);
    return rc;
}

/* the models (gap / entropy) or just a tokenizer (judge) */
typedef struct Loaded {
    SrBackend be_s, be_b;
    Qwen2Model small, big;
    Tokenizer *tok_s, *tok_b, *tok;
    int has_s, has_b;
} Loaded;

static void unload(Loaded *l) {
    if (l->has_b) sr_unload_model_dir(&l->be_b, &l->big, l->tok_b);
    if (l->has_s) sr_unload_model_dir(&l->be_s, &l->small, l->tok_s);
    if (!l->has_s) tokenizer_free(l->tok);
}

/* 1 if both tokenizers give the same ids to a probe text with digits, LaTeX and Unicode */
static int same_tokenizer(const Tokenizer *a, const Tokenizer *b) {
    const char *probe = "Let $x^2 + 3x = 10$. Then \\frac{a}{b} … ✓ 12345 <think>\n";
    int32_t *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    int ok = tokenizer_vocab_size(a) == tokenizer_vocab_size(b) &&
             !tokenizer_encode(a, probe, strlen(probe), &ia, &na, NULL) &&
             !tokenizer_encode(b, probe, strlen(probe), &ib, &nb, NULL) && na == nb &&
             memcmp(ia, ib, na * sizeof(int32_t)) == 0;
    free(ia);
    free(ib);
    return ok;
}

static int load(const AnnotateOptions *o, const char *device, Loaded *l, SrError *err) {
    memset(l, 0, sizeof *l);
    if (o->method != ANNOTATE_JUDGE) {
        if (sr_load_model_dir(o->small_path, device, &l->be_s, &l->small, &l->tok_s, err)) return -1;
        l->has_s = 1;
        l->tok = l->tok_s;
        if (o->method == ANNOTATE_GAP) {
            if (sr_load_model_dir(o->big_path, device, &l->be_b, &l->big, &l->tok_b, err)) {
                unload(l);
                return -1;
            }
            l->has_b = 1;
            if (!same_tokenizer(l->tok_s, l->tok_b)) {
                unload(l);
                return sr_fail(err, "%s and %s do not share a tokenizer (the gap method compares the "
                               "same tokens under both models)", o->small_path, o->big_path);
            }
        }
        return 0;
    }
    if (tokenizer_load(&l->tok, o->tokenizer_path, err)) return -1;
    return 0;
}

static int run(SrConfig *cfg, SrError *err) {
    AnnotateOptions o;
    if (options(cfg, &o, err) || check_outputs(cfg, &o, err)) {
        trace_spec_free(&o.trace);
        return -1;
    }
    char *prompt_text = NULL;
    const char *pf = sr_config_str(cfg, "judge_prompt_file");
    if (pf && sr_read_file(pf, &prompt_text, NULL, err)) {
        trace_spec_free(&o.trace);
        return -1;
    }
    o.judge.system_prompt = prompt_text;
    Loaded l;
    if (load(&o, sr_config_str(cfg, "device"), &l, err)) {
        free(prompt_text);
        trace_spec_free(&o.trace);
        return -1;
    }
    AnnotateModels models = {l.has_s ? &l.small : NULL, l.has_b ? &l.big : NULL, l.tok};
    AnnotateStats st;
    int rc = annotate_run(&o, &models, &st, err);
    unload(&l);
    cJSON *run_stats = cJSON_CreateObject();
    cJSON_AddNumberToObject(run_stats, "rows_read", st.rows);
    cJSON_AddNumberToObject(run_stats, "rows_filtered_out", st.filtered);
    cJSON_AddNumberToObject(run_stats, "rows_without_selected_trace", st.no_trace);
    cJSON_AddNumberToObject(run_stats, "malformed", st.malformed);
    cJSON_AddNumberToObject(run_stats, "failed", st.failed);
    cJSON_AddNumberToObject(run_stats, "traces_annotated", st.traces_done);
    cJSON_AddNumberToObject(run_stats, "traces_resumed", st.traces_resumed);
    cJSON_AddNumberToObject(run_stats, "seconds", st.seconds);
    cJSON_AddNumberToObject(run_stats, "traces_per_second", st.seconds > 0 ? st.traces_done / st.seconds : 0.0);
    cJSON_AddNumberToObject(run_stats, "tokens_per_second", st.seconds > 0 ? (double)st.tokens / st.seconds : 0.0);
    if (!rc) {
        sr_log("annotate: %ld rows read, %ld traces annotated (%ld resumed, %ld rows without a selected "
               "trace, %ld filtered out, %ld malformed, %ld failed) in %.1f s (%.2f traces/s)",
               st.rows, st.traces_done, st.traces_resumed, st.no_trace, st.filtered, st.malformed,
               st.failed, st.seconds, st.seconds > 0 ? st.traces_done / st.seconds : 0.0);
        cJSON *s = annotate_summary(o.output, run_stats, err);
        if (!s) rc = -1;
        char *sp = o.summary_path ? sr_strdup(o.summary_path) : with_suffix(o.output, ".summary.json");
        char *pp = o.plot_path ? sr_strdup(o.plot_path) : with_suffix(o.output, ".summary.svg");
        if (s) {
            annotate_summary_print(stdout, s);
            char *txt = cJSON_Print(s);
            rc = sr_write_file_atomic(sp, txt, strlen(txt), err);
            cJSON_free(txt);
            if (!rc) rc = annotate_summary_svg(s, pp, err);
            if (!rc) printf("summary: %s, plot: %s\n", sp, pp);
            cJSON_Delete(s);
        }
        free(sp);
        free(pp);
        if (!rc && st.failed > 0)
            rc = sr_fail(err, "%ld traces failed (listed above; not written): run the same command again to retry them",
                         st.failed);
    }
    cJSON_Delete(run_stats);
    free(prompt_text);
    trace_spec_free(&o.trace);
    return rc;
}

const SrCommand sr_cmd_annotate = {
    "annotate", "mark the difficult spans of reasoning traces with <bigmodel> tags",
    "splitreason annotate --method gap|entropy|judge --input FILE --output FILE [--field NAME] "
    "[--small DIR] [--big DIR] [--target-fraction F]",
    "gap: the small and big model teacher-force each trace; a token's difficulty is how much\n"
    "better the big model predicts it. entropy: the small model's predictive entropy. Both are\n"
    "smoothed, and whole sentences (--snap) are marked until --target-fraction of the tokens is\n"
    "covered. judge: an OpenAI-compatible endpoint quotes the difficult snippets verbatim (key in\n"
    "the environment variable --judge-api-key-env), which are aligned back by a fuzzy matcher.\n"
    "Each output row keeps the input fields and adds annotated, spans (character offsets),\n"
    "offload (shares), annotation (provenance), annotation_detail, source_line, trace_index.\n"
    "Rerunning the same command resumes: traces already in --output are skipped. A summary is\n"
    "printed and written to OUTPUT.summary.json and OUTPUT.summary.svg.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, NULL, check,
};
