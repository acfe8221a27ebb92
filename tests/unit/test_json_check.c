/*
 * test_json_check.c - the raw pre-scan of request bodies (common/json_check.h): NUL, lone
 * surrogates, duplicate member names (compared decoded), invalid UTF-8, strict RFC 8259 grammar,
 * the nesting cap counted as json-c counts it, and messages that name the member and the byte.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/json_check.h"
#include "common/utf8.h"

#define DEPTH 16

struct jc_case {
    const char *text;
    size_t len;
    const char *what;
};

#define JC(lit, w)                                                                                 \
    {                                                                                              \
        lit, sizeof lit - 1, w                                                                     \
    }

/* The message of a refused text (the test fails when the text is accepted). */
static const char *refused(const char *text, size_t len, struct ks_error *err)
{
    ks_status st = ks_json_check(text, len, DEPTH, err);
    cr_expect_eq(st, KS_E_INVALID, "accepted: %.*s", (int)len, text);
    cr_expect(ks_utf8_valid(err->message, strlen(err->message)), "message not UTF-8: %s",
              err->message);
    cr_expect_eq(strncmp(err->message, "body: ", 6), 0, "message: %s", err->message);
    return err->message;
}

static void expect_refused_with(const char *text, const char *needle)
{
    struct ks_error err;
    const char *msg = refused(text, strlen(text), &err);
    cr_expect(strstr(msg, needle) != NULL, "%s: message '%s' lacks '%s'", text, msg, needle);
}

Test(json_check, accepts_valid_json)
{
    static const struct jc_case ok[] = {
        JC("{}", "empty object"),
        JC(" \t\r\n{ } \r\n", "whitespace around"),
        JC("[]", "empty array (the type is json-c's business)"),
        JC("123", "top-level number"),
        JC("null", "null"),
        JC("\"x\"", "top-level string"),
        JC("{\"a\":1,\"b\":[true,false,null],\"c\":{\"a\":2}}", "same name in different objects"),
        JC("{\"a\":-0,\"b\":0.5,\"c\":1e10,\"d\":-1.25E-3,\"e\":12345678901234567890}", "numbers"),
        JC("{\"a\\/b\":\"\\/\\\\\\\"\\b\\f\\n\\r\\t\"}", "every short escape"),
        JC("{\"k\":\"\\ud83d\\ude00\"}", "a surrogate pair (U+1F600)"),
        JC("{\"k\":\"\\uD83D\\uDE00\"}", "uppercase hex pair"),
        JC("{\"k\":\"\\u00e9\\uffff\\ufffd\\u0001\"}", "BMP escapes, a real U+FFFD, U+0001"),
        JC("{\"caf\xc3\xa9\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}", "raw UTF-8 in names and values"),
        JC("{\"a\":1,\"A\":2,\"a \":3,\"\":4}", "case, spaces and the empty name differ"),
        JC("{\"ab\":1,\"a\":2,\"b\":3}", "prefixes differ"),
        JC("{\"\\u0061\":1,\"b\":{\"a\":1}}", "escaped name unique in its object"),
        JC("[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]", "16 nested arrays (the cap)"),
    };
    size_t i;
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct ks_error err;
        ks_error_clear(&err);
        cr_expect_eq(ks_json_check(ok[i].text, ok[i].len, DEPTH, &err), KS_OK, "%s: %s", ok[i].what,
                     err.message);
    }
}

Test(json_check, nul_in_member_names)
{
    struct ks_error err;
    const char *msg;

    msg = refused("{\"encryptionContext\":{\"role\\u0000=admin\":\"x\",\"role\":\"reader\"}}", 62,
                  &err);
    cr_expect(strstr(msg, "NUL") != NULL, "%s", msg);
    cr_expect(strstr(msg, "role\\x00=admin") != NULL, "whole name shown: %s", msg);
    cr_expect(strstr(msg, "in encryptionContext") != NULL, "path: %s", msg);
    cr_expect(strstr(msg, "(byte 27)") != NULL, "offset of the escape: %s", msg);

    expect_refused_with("{\"branchKeyIdentifier\\u0000junk\":\"x\"}",
                        "branchKeyIdentifier\\x00junk");
    /* A raw NUL byte inside a name. */
    msg = refused("{\"a\0b\":1}", 9, &err);
    cr_expect(strstr(msg, "NUL") != NULL && strstr(msg, "(byte 3)") != NULL, "%s", msg);
}

Test(json_check, nul_in_values)
{
    struct ks_error err;
    const char *msg;
    expect_refused_with("{\"branchKeyIdentifier\":\"ab\\u0000cd\"}", "branchKeyIdentifier: NUL");
    expect_refused_with("{\"encryptionContext\":{\"k\":\"v\\u0000\"}}", "encryptionContext.k: NUL");
    expect_refused_with("[1,[\"\\u0000\"]]", "[1][0]: NUL");
    expect_refused_with("\"\\u0000\"", "body: NUL");
    msg = refused("{\"a\":\"x\0\"}", 10, &err);
    cr_expect(strstr(msg, "a: NUL") != NULL, "%s", msg);
}

/* KS_JSON_NUL_IN_VALUES (the keyring routes): \u0000 passes in values, never in names. */
Test(json_check, nul_in_values_allowed_by_the_flag_names_still_refused)
{
    static const struct jc_case ok[] = {
        JC("{\"encryptionContext\":{\"k\":\"a\\u0000b\"}}", "inside a context value"),
        JC("{\"k\":\"\\u0000\"}", "a value that is only NUL"),
        JC("[1,[\"\\u0000\\u0000\"]]", "in an array"),
        JC("\"\\u0000\"", "top-level string"),
    };
    static const struct jc_case bad[] = {
        JC("{\"encryptionContext\":{\"a\\u0000\":\"x\"}}", "NUL (\\u0000)"),
        JC("{\"\\u0000\":\"x\"}", "NUL (\\u0000)"),
        JC("{\"r\":[{\"k\\u0000\":1}]}", "member name \"k\\x00\" in r[0]"),
        JC("{\"a\":\"x\0\"}", "a: NUL is not allowed"),        /* a raw NUL byte: never JSON */
        JC("{\"a\":\"\\ud800\\u0000\"}", "surrogate \\ud800"), /* still refused */
        JC("{\"a\":\"\xc3\"}", "invalid UTF-8"),
    };
    size_t i;
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct ks_error err;
        ks_error_clear(&err);
        cr_expect_eq(ks_json_check_ex(ok[i].text, ok[i].len, DEPTH, KS_JSON_NUL_IN_VALUES, &err),
                     KS_OK, "%s: %s", ok[i].what, err.message);
        /* Without the flag the same text is refused (the default of every other route). */
        cr_expect_eq(ks_json_check_ex(ok[i].text, ok[i].len, DEPTH, 0, &err), KS_E_INVALID, "%s",
                     ok[i].what);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ks_error err;
        ks_error_clear(&err);
        cr_expect_eq(ks_json_check_ex(bad[i].text, bad[i].len, DEPTH, KS_JSON_NUL_IN_VALUES, &err),
                     KS_E_INVALID, "accepted: %s", bad[i].what);
        cr_expect(strstr(err.message, bad[i].what) != NULL, "message '%s' lacks '%s'", err.message,
                  bad[i].what);
    }
}

/* A value with NUL that passes the scan arrives in json-c whole, with its length. */
Test(json_check, nul_value_reaches_json_c_with_its_length)
{
    const char *text = "{\"k\":\"a\\u0000b\"}";
    struct ks_error err;
    struct json_object *o, *v;
    cr_assert_eq(ks_json_check_ex(text, strlen(text), DEPTH, KS_JSON_NUL_IN_VALUES, &err), KS_OK);
    o = json_tokener_parse(text);
    cr_assert_not_null(o);
    cr_assert(json_object_object_get_ex(o, "k", &v));
    cr_expect_eq(json_object_get_string_len(v), 3);
    cr_expect_eq(memcmp(json_object_get_string(v), "a\0b", 3), 0);
    json_object_put(o);
}

Test(json_check, lone_surrogates)
{
    expect_refused_with("{\"branchKeyIdentifier\":\"\\ud800\"}",
                        "unpaired UTF-16 surrogate \\ud800");
    expect_refused_with("{\"branchKeyIdentifier\":\"\\uDC00\"}",
                        "unpaired UTF-16 surrogate \\uDC00");
    expect_refused_with("{\"b\":\"\\udbff\"}", "surrogate");
    expect_refused_with("{\"b\":\"x\\ud800y\"}", "surrogate");
    expect_refused_with("{\"b\":\"\\ud800\\u0041\"}", "surrogate \\ud800");
    expect_refused_with("{\"b\":\"\\ud800\\ud800\"}", "surrogate \\ud800");
    expect_refused_with("{\"b\":\"\\ude00\\ud83d\"}", "surrogate \\ude00"); /* reversed pair */
    expect_refused_with("{\"b\":\"\\ud800\\n\"}", "surrogate");
    expect_refused_with("{\"b\":\"\\ud800", "end of input"); /* an unterminated string is syntax */
    expect_refused_with("{\"encryptionContext\":{\"k\":\"\\ud800\"}}", "encryptionContext.k");
    expect_refused_with("{\"\\udfff\":1}", "member name \"\\udfff\"");
}

Test(json_check, duplicate_member_names)
{
    expect_refused_with("{\"branchKeyIdentifier\":\"dup2\",\"branchKeyIdentifier\":\"dup3\"}",
                        "member name \"branchKeyIdentifier\": given more than once (byte 30)");
    expect_refused_with("{\"a\":1,\"\\u0061\":2}", "member name \"a\": given more than once");
    expect_refused_with("{\"encryptionContext\":{\"k\":\"1\",\"\\u006b\":\"2\"}}",
                        "\"k\" in encryptionContext: given more than once");
    expect_refused_with("{\"x\":1,\"y\":2,\"z\":3,\"y\":4}", "\"y\"");
    expect_refused_with("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", "given more than once");
    expect_refused_with("{\"\\/\":1,\"/\":2}", "given more than once");
    expect_refused_with("{\"\":1,\"\":2}", "member name \"\"");
    expect_refused_with("[{\"a\":1},{\"b\":1,\"b\":2}]", "\"b\" in [1]");
    /* The outer object's names survive the inner object's (arena and records unwind). */
    expect_refused_with("{\"a\":{\"x\":1,\"y\":2},\"b\":{\"x\":1},\"a\":3}", "\"a\": given more");
}

Test(json_check, many_members_without_duplicates)
{
    size_t n = 5000, i, o = 0;
    char *text = malloc(n * 16 + 8);
    struct ks_error err;
    cr_assert_not_null(text);
    text[o++] = '{';
    for (i = 0; i < n; i++)
        o += (size_t)snprintf(text + o, 32, "%s\"m%zu\":%zu", i ? "," : "", (n - i) * 7919 % n, i);
    text[o++] = '}';
    cr_expect_eq(ks_json_check(text, o, DEPTH, &err), KS_OK, "%s", err.message);
    /* The same with one name repeated at the end. */
    o--;
    o += (size_t)snprintf(text + o, 32, ",\"m17\":0}");
    cr_expect_eq(ks_json_check(text, o, DEPTH, &err), KS_E_INVALID);
    cr_expect(strstr(err.message, "\"m17\"") != NULL, "%s", err.message);
    free(text);
}

Test(json_check, invalid_utf8)
{
    static const struct jc_case bad[] = {
        JC("{\"a\xc3\x28\":1}", "bad continuation in a name"),
        JC("{\"a\":\"\xc0\xaf\"}", "overlong /"),
        JC("{\"a\":\"\xe0\x80\x80\"}", "overlong 3-byte"),
        JC("{\"a\":\"\xed\xa0\x80\"}", "UTF-8-encoded surrogate"),
        JC("{\"a\":\"\xf4\x90\x80\x80\"}", "above U+10FFFF"),
        JC("{\"a\":\"\xe2\x82\"}", "truncated before the quote"),
        JC("{\"a\":\"\x80\"}", "lone continuation"),
        JC("{\"a\":\"\xff\"}", "FF"),
        JC("{\"a\":\"x\xf0\x9f\x98\"}", "truncated 4-byte"),
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ks_error err;
        const char *msg = refused(bad[i].text, bad[i].len, &err);
        cr_expect(strstr(msg, "invalid UTF-8") != NULL, "%s: %s", bad[i].what, msg);
    }
}

Test(json_check, invalid_utf8_in_a_name_is_shown_escaped)
{
    struct ks_error err;
    const char *msg = refused("{\"ab\xc3\x28\":1}", 10, &err);
    cr_expect(strstr(msg, "member name \"ab\\xc3(\"") != NULL, "%s", msg);
    cr_expect(strstr(msg, "(byte 4)") != NULL, "%s", msg);
    cr_expect(memchr(msg, 0xc3, strlen(msg)) == NULL, "raw byte echoed: %s", msg);
}

Test(json_check, long_names_are_cut_on_a_character_boundary)
{
    char text[600];
    struct ks_error err;
    size_t o = 0, i;
    const char *msg;
    text[o++] = '{';
    text[o++] = '"';
    for (i = 0; i < 100; i++) {
        memcpy(text + o, "\xc3\xa9", 2); /* e-acute, two bytes */
        o += 2;
    }
    memcpy(text + o, "\\u0000\":1}", 10);
    o += 10;
    msg = refused(text, o, &err);
    cr_expect(strstr(msg, "...") != NULL, "%s", msg);
    cr_expect(strlen(msg) < sizeof err.message, "%s", msg);
}

Test(json_check, strict_grammar)
{
    static const struct jc_case bad[] = {
        JC("", "empty"),
        JC("   ", "whitespace only"),
        JC("{", "unterminated object"),
        JC("{\"a\"", "no colon"),
        JC("{\"a\":}", "no value"),
        JC("{\"a\":1,}", "trailing comma in object"),
        JC("[1,]", "trailing comma in array"),
        JC("{,}", "lone comma"),
        JC("{\"a\" 1}", "missing colon"),
        JC("{\"a\":1 \"b\":2}", "missing comma"),
        JC("{a:1}", "unquoted name"),
        JC("{'a':1}", "single quotes"),
        JC("[01]", "leading zero"),
        JC("[1.]", "no digit after the point"),
        JC("[.5]", "no digit before the point"),
        JC("[-]", "lone minus"),
        JC("[1e]", "empty exponent"),
        JC("[+1]", "plus sign"),
        JC("[NaN]", "NaN"),
        JC("[Infinity]", "Infinity"),
        JC("[TRUE]", "uppercase literal"),
        JC("[nul]", "short literal"),
        JC("[\"\\x\"]", "bad escape"),
        JC("[\"\\u00zz\"]", "bad hex"),
        JC("[\"\\u00\"]", "short hex"),
        JC("[\"\\", "backslash at the end"),
        JC("[\"a\tb\"]", "raw tab in a string"),
        JC("[\"a\nb\"]", "raw newline in a string"),
        JC("[\"abc", "unterminated string"),
        JC("{\"a\":1]", "mismatched close"),
        JC("[1}", "mismatched close in array"),
        JC("\xef\xbb\xbf{}", "byte order mark"),
        JC("{}/*c*/", "comment after"),
        JC("{} x", "trailing data"),
        JC("{}{}", "two values"),
        JC("{}\0", "a NUL after the value"),
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ks_error err;
        ks_error_clear(&err);
        refused(bad[i].text, bad[i].len, &err);
        cr_expect(strstr(err.message, "JSON") != NULL || strstr(err.message, "control") != NULL,
                  "%s: %s", bad[i].what, err.message);
    }
}

Test(json_check, syntax_messages_name_the_byte)
{
    expect_refused_with("{\"a\":1,}", "expected a member name, found '}' at byte 7");
    expect_refused_with("{\"a\" 1}", "expected ':', found '1' at byte 5");
    expect_refused_with("{", "unexpected end of input at byte 1");
    expect_refused_with("{} x", "unexpected data after the JSON value (byte 3)");
    expect_refused_with("[\"a\x01\"]", "[0]: unescaped control character (byte 3)");
    expect_refused_with("[\x01]", "found byte 0x01 at byte 1");
}

/* Nesting is counted as json_tokener_new_ex counts it: n containers pass with a cap of n. */
static char *nested(size_t n, size_t *len)
{
    char *s = malloc(2 * n + 1);
    memset(s, '[', n);
    memset(s + n, ']', n);
    s[2 * n] = '\0';
    *len = 2 * n;
    return s;
}

static int json_c_accepts(const char *s, size_t len, int depth)
{
    struct json_tokener *tok = json_tokener_new_ex(depth);
    struct json_object *o = json_tokener_parse_ex(tok, s, (int)len + 1);
    int ok = o != NULL;
    json_object_put(o);
    json_tokener_free(tok);
    return ok;
}

Test(json_check, depth_matches_json_c)
{
    unsigned caps[] = {2, 3, 16, 64};
    size_t c, n, len;
    for (c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        for (n = 1; n <= caps[c] + 2; n++) {
            char *s = nested(n, &len);
            struct ks_error err;
            ks_status st = ks_json_check(s, len, caps[c], &err);
            cr_expect_eq(st == KS_OK, json_c_accepts(s, len, (int)caps[c]), "cap %u, depth %zu",
                         caps[c], n);
            if (st != KS_OK)
                cr_expect(strstr(err.message, "nested deeper than") != NULL, "%s", err.message);
            free(s);
        }
    }
}

Test(json_check, deep_refusal_does_not_recurse)
{
    /* 1 MB of '[' with a cap of 64: refused at byte 64, no stack growth with the input. */
    size_t n = 1u << 20;
    char *s = malloc(n);
    struct ks_error err;
    memset(s, '[', n);
    cr_expect_eq(ks_json_check(s, n, 64, &err), KS_E_INVALID);
    cr_expect(strstr(err.message, "(byte 64)") != NULL, "%s", err.message);
    free(s);
}

Test(json_check, respects_len)
{
    struct ks_error err;
    /* The bytes after len are not read: a valid prefix passes, a cut value fails. */
    cr_expect_eq(ks_json_check("{}\"\\u0000", 2, DEPTH, &err), KS_OK);
    cr_expect_eq(ks_json_check("{\"a\":\"\xc3\xa9\"}", 8, DEPTH, &err), KS_E_INVALID);
    cr_expect_eq(ks_json_check("[\"\\ud83d\\ude00\"]", 9, DEPTH, &err), KS_E_INVALID);
}

Test(json_check, what_passes_parses_with_json_c_unchanged)
{
    /* A name accepted by the scan arrives whole in json-c: no truncation, no replacement. */
    const char *text = "{\"k\\u00e9\":\"\\ud83d\\ude00\",\"k2\":\"v\"}";
    struct ks_error err;
    struct json_object *o, *v;
    cr_assert_eq(ks_json_check(text, strlen(text), DEPTH, &err), KS_OK);
    o = json_tokener_parse(text);
    cr_assert_not_null(o);
    cr_expect(json_object_object_get_ex(o, "k\xc3\xa9", &v));
    cr_expect_str_eq(json_object_get_string(v), "\xf0\x9f\x98\x80");
    cr_expect_eq(json_object_object_length(o), 2);
    json_object_put(o);
}
