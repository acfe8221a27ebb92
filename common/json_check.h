/*
 * json_check.h - a raw pre-scan of an untrusted JSON text (a request body) before json-c parses
 * it. json-c 0.16 keeps member names as C strings, keeps the last of duplicate members, turns a
 * lone UTF-16 surrogate into U+FFFD and offers no hook for any of it, so this scan refuses, with
 * the byte offset and the member path:
 *   - NUL anywhere in a string, raw or as \u0000 (member names and values), except \u0000 in
 *     values with KS_JSON_NUL_IN_VALUES (below);
 *   - a lone UTF-16 surrogate escape (a high one not followed by a low one, a low one alone);
 *   - a member name given twice in one object, compared after unescaping ("a" and "\u0061");
 *   - bytes that are not well-formed UTF-8, and unescaped control characters (RFC 8259 section 7);
 *   - anything that is not RFC 8259 JSON, nesting deeper than max_depth, and data after the value.
 * It is iterative (the stack holds max_depth frames) and uses memory proportional to len.
 * Thread-safe (no shared state).
 */
#ifndef KS_COMMON_JSON_CHECK_H
#define KS_COMMON_JSON_CHECK_H

#include <stddef.h>

#include "common/status.h"

/*
 * Flags of ks_json_check_ex. KS_JSON_NUL_IN_VALUES lets string values (never member names) hold
 * \u0000: the keyring routes take encryption context values with any character, as the ESDK
 * allows, and read them with their lengths (docs/reference/hierarchical-keyring.md section 4).
 * json-c keeps member names as C strings, so a NUL there is refused in every mode, and a raw
 * NUL byte stays an unescaped control character (RFC 8259 section 7).
 */
#define KS_JSON_NUL_IN_VALUES 0x1u

/*
 * KS_OK when the len bytes of text are one JSON value (any type, surrounded by optional
 * whitespace) that passes the rules above with at most max_depth nested arrays and objects (the
 * same count as json_tokener_new_ex). Otherwise KS_E_INVALID with a message that starts "body: "
 * and names the rule, where (member path) and the byte offset; KS_E_INTERNAL when out of memory.
 */
ks_status ks_json_check(const char *text, size_t len, unsigned max_depth, struct ks_error *err);

/* ks_json_check with flags (KS_JSON_*; 0 is ks_json_check). */
ks_status ks_json_check_ex(const char *text, size_t len, unsigned max_depth, unsigned flags,
                           struct ks_error *err);

#endif
