/*
 * Strict JSON input, the one way every reader of JSON text (config files, config.json,
 * tokenizer files, safetensors headers, trainer_state.json, JSONL rows) parses it:
 *
 *   - the text holds exactly one JSON value; anything but white space after it is an error
 *     (`{"a":1}{"b":2}` on one JSONL line is a malformed row, not the first object);
 *   - the text is valid UTF-8 (JSON text is UTF-8; a byte that is not is reported with its
 *     offset instead of being carried along or silently replaced);
 *   - no string holds U+0000 (cJSON keeps strings as C strings, so "\u0000" would cut the
 *     string short and drop the rest of it: `\boxed{4}\u0000 ... \boxed{5}` would grade as 4);
 *   - a key repeated in an object keeps its LAST value, as Python's json does (cJSON's lookup
 *     would find the first);
 *   - a truncated text ("the text ends inside ...") is said so, not "not valid JSON".
 *
 * Errors are one line without the file name (the caller prefixes it: "path: ..." or
 * "path:LINE: ..."), e.g. "trailing data after the JSON value at byte 7".
 */
#ifndef SR_COMMON_JSON_H
#define SR_COMMON_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "error.h"

/* Parses text[0, len) (text need not be NUL-terminated). Returns the value (cJSON_Delete it)
 * or NULL with err. */
cJSON *sr_json_parse(const char *text, size_t len, SrError *err);

/* Like sr_json_parse, and the value must be an object ("a JSON object" is named in the error). */
cJSON *sr_json_parse_object(const char *text, size_t len, SrError *err);

/* Like sr_json_parse_object, but the object's own repeated keys are all kept, in order (objects
 * inside it keep the last, as everywhere): for a format whose reader names a repeated key as
 * an error (a safetensors header: a tensor named twice). */
cJSON *sr_json_parse_object_all_keys(const char *text, size_t len, SrError *err);

/* Reads a whole file and parses it as a JSON object; errors name the file. */
cJSON *sr_json_read_object_file(const char *path, SrError *err);

/* 1 if s[0, n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF), else 0 and, when
 * bad_at is not NULL, the offset of the first bad byte. */
int sr_utf8_valid(const char *s, size_t n, size_t *bad_at);

/* Length (1..4) of the valid UTF-8 sequence at s[0, n), or 0 if it is not valid. */
int sr_utf8_seq_len(const unsigned char *s, size_t n);

#endif
