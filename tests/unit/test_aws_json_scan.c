/*
 * test_aws_json_scan.c - the wiped flat JSON reader of aws/json_scan.h: what it decodes
 * (escapes, surrogate pairs), what it refuses (malformed text, lone surrogates, escaped NULs,
 * duplicate wanted members, wrong types, trailing bytes, deep nesting), and that a failed scan
 * leaves nothing allocated. The wipe itself (OPENSSL_cleanse in ks_secret_free) cannot be
 * observed without reading freed memory; the tests check every value goes through
 * ks_json_scan_free and that the fields are reset.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "aws/json_scan.h"

enum { F_A, F_B, F_COUNT };

static int scan(const char *json, struct ks_json_scan_field f[F_COUNT])
{
    f[F_A] = (struct ks_json_scan_field){.name = "a"};
    f[F_B] = (struct ks_json_scan_field){.name = "Plaintext"};
    return ks_json_scan_object(json, strlen(json), f, F_COUNT);
}

static void expect_reset(const struct ks_json_scan_field *f, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        cr_expect_null(f[i].value, "%s: field %zu not freed", what, i);
        cr_expect_eq(f[i].len, 0, "%s", what);
        cr_expect_eq(f[i].cap, 0, "%s", what);
    }
}

Test(aws_json_scan, picks_wanted_members_and_skips_the_rest)
{
    struct ks_json_scan_field f[F_COUNT];
    const char *json =
        " {\"KeyMetadata\":{\"x\":[1,2,{\"a\":\"nested, not top-level\"}],\"y\":null},"
        "\"a\":\"first\",\"n\":-1.5e3,\"t\":true,\"f\":false,"
        "\"Plaintext\":\"AAECAw==\",\"z\":\"\"} ";
    cr_assert_eq(scan(json, f), 0);
    cr_expect_str_eq(f[F_A].value, "first");
    cr_expect_eq(f[F_A].len, 5);
    cr_expect_str_eq(f[F_B].value, "AAECAw==");
    cr_expect_geq(f[F_B].cap, f[F_B].len + 1);
    ks_json_scan_free(f, F_COUNT);
    expect_reset(f, F_COUNT, "after free");
}

Test(aws_json_scan, absent_and_null_members_are_null)
{
    struct ks_json_scan_field f[F_COUNT];
    cr_assert_eq(scan("{}", f), 0);
    expect_reset(f, F_COUNT, "empty object");
    cr_assert_eq(scan("{\"a\":null,\"other\":\"x\"}", f), 0);
    cr_expect_null(f[F_A].value);
    cr_expect(f[F_A].seen);
    cr_expect_null(f[F_B].value);
    cr_expect_not(f[F_B].seen);
    ks_json_scan_free(f, F_COUNT);
}

Test(aws_json_scan, escapes_are_decoded)
{
    static const struct {
        const char *json;
        const char *value;
    } cases[] = {
        {"{\"a\":\"q\\\"b\\\\s\\/\"}", "q\"b\\s/"},
        {"{\"a\":\"\\b\\f\\n\\r\\t\"}", "\b\f\n\r\t"},
        {"{\"a\":\"\\u0041\\u00e9\\u20AC\"}", "A\xc3\xa9\xe2\x82\xac"},
        {"{\"a\":\"\\ud83d\\ude00\"}", "\xf0\x9f\x98\x80"}, /* surrogate pair */
        {"{\"a\":\"raw \xc3\xa9 utf-8\"}", "raw \xc3\xa9 utf-8"},
        {"{\"\\u0061\":\"escaped name\"}", "escaped name"}, /* names are decoded too */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ks_json_scan_field f[F_COUNT];
        cr_assert_eq(scan(cases[i].json, f), 0, "%s", cases[i].json);
        cr_expect_str_eq(f[F_A].value, cases[i].value, "%s", cases[i].json);
        cr_expect_eq(f[F_A].len, strlen(cases[i].value));
        ks_json_scan_free(f, F_COUNT);
    }
}

Test(aws_json_scan, malformed_input_is_refused_and_nothing_is_kept)
{
    static const char *const bad[] = {
        "",
        "[]",
        "\"a\"",
        "{",
        "{\"a\":\"x\"",
        "{\"a\":\"x\",}",
        "{\"a\" \"x\"}",
        "{\"a\":\"x\"} trailing",
        "{\"a\":\"x\"}{}",
        "{\"a\":\"unterminated}",
        "{\"a\":\"ctrl \x01 byte\"}",
        "{\"a\":\"bad \\x escape\"}",
        "{\"a\":\"short \\u12\"}",
        "{\"a\":\"\\ud800\"}",         /* lone high surrogate */
        "{\"a\":\"\\udc00\"}",         /* lone low surrogate */
        "{\"a\":\"\\ud800\\u0041\"}",  /* high surrogate, then not a low one */
        "{\"a\":\"nul \\u0000 cut\"}", /* would cut the C string short */
        "{\"a\":\"x\",\"a\":\"y\"}",   /* a wanted member twice */
        "{\"a\":5}",                   /* a wanted member of the wrong type */
        "{\"a\":{}}",
        "{\"x\":tru}",
        "{\"x\":[1,}",
        "{\"x\":}",
        /* The wanted value was decoded before the error: it must be released. */
        "{\"Plaintext\":\"AAAA\",\"x\":nul}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ks_json_scan_field f[F_COUNT];
        cr_expect_eq(scan(bad[i], f), -1, "accepted: %s", bad[i]);
        expect_reset(f, F_COUNT, bad[i]);
    }
    struct ks_json_scan_field f[F_COUNT] = {{.name = "a"}};
    cr_expect_eq(ks_json_scan_object(NULL, 0, f, 1), -1);
}

Test(aws_json_scan, duplicates_of_unwanted_members_are_skipped)
{
    struct ks_json_scan_field f[F_COUNT];
    cr_assert_eq(scan("{\"x\":1,\"x\":2,\"a\":\"v\"}", f), 0);
    cr_expect_str_eq(f[F_A].value, "v");
    ks_json_scan_free(f, F_COUNT);
}

Test(aws_json_scan, nesting_is_capped)
{
    char deep[200], ok[200];
    size_t n = 0, m = 0;
    n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"x\":");
    m += (size_t)snprintf(ok + m, sizeof ok - m, "{\"x\":");
    for (int i = 0; i < 40; i++)
        deep[n++] = '[';
    for (int i = 0; i < 40; i++)
        deep[n++] = ']';
    for (int i = 0; i < 20; i++)
        ok[m++] = '[';
    for (int i = 0; i < 20; i++)
        ok[m++] = ']';
    deep[n++] = '}';
    ok[m++] = '}';
    deep[n] = ok[m] = '\0';
    struct ks_json_scan_field f[F_COUNT];
    cr_expect_eq(scan(deep, f), -1, "40 levels accepted");
    cr_expect_eq(scan(ok, f), 0, "20 levels refused");
    ks_json_scan_free(f, F_COUNT);
}

Test(aws_json_scan, long_member_names_are_never_matched)
{
    char json[256];
    char name[100];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    snprintf(json, sizeof json, "{\"%s\":\"long\",\"a\":\"short\"}", name);
    struct ks_json_scan_field f[F_COUNT];
    cr_assert_eq(scan(json, f), 0);
    cr_expect_str_eq(f[F_A].value, "short");
    ks_json_scan_free(f, F_COUNT);
}
