/*
 * test_arn.c - KMS key ARN parsing, MRK detection, MrkMatch and region rewriting
 * (docs/reference/branch-key-store.md section 7; MPL AwsArnParsing.dfy,
 * AwsKmsMrkMatchForDecrypt.dfy). aws/arn.h is the one parser config/ and keystore/ share: the
 * length rule counts UTF-16 code units, the reasons are those config/ puts in its messages.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "aws/arn.h"

#define KEY_ID "1234abcd-12ab-34cd-56ef-1234567890ab"
#define ARN_E1 "arn:aws:kms:us-east-1:111122223333:key/" KEY_ID
#define ARN_W2 "arn:aws:kms:us-west-2:111122223333:key/" KEY_ID
#define MRK_E1 "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
#define MRK_W2 "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"

static int field_eq(const struct ks_arn_field *f, const char *s)
{
    return f->len == strlen(s) && memcmp(f->ptr, s, f->len) == 0;
}

Test(arn, parse_fields)
{
    struct ks_arn a;
    cr_assert_eq(ks_arn_parse(ARN_E1, &a), KS_ARN_OK);
    cr_expect(field_eq(&a.partition, "aws"));
    cr_expect(field_eq(&a.service, "kms"));
    cr_expect(field_eq(&a.region, "us-east-1"));
    cr_expect(field_eq(&a.account, "111122223333"));
    cr_expect(field_eq(&a.resource_type, "key"));
    cr_expect(field_eq(&a.resource_id, KEY_ID));
}

Test(arn, resource_value_may_contain_slash)
{
    struct ks_arn a;
    cr_assert_eq(ks_arn_parse("arn:aws:kms:us-east-1:111122223333:key/abc/def/", &a), KS_ARN_OK);
    cr_expect(field_eq(&a.resource_type, "key"));
    cr_expect(field_eq(&a.resource_id, "abc/def/"));
}

Test(arn, other_partitions)
{
    struct ks_arn a;
    cr_expect_eq(ks_arn_parse("arn:aws-cn:kms:cn-north-1:111122223333:key/k", &a), KS_ARN_OK);
    cr_expect(field_eq(&a.partition, "aws-cn"));
    cr_expect_eq(ks_arn_parse("arn:aws-us-gov:kms:us-gov-west-1:1:key/k", &a), KS_ARN_OK);
}

Test(arn, alias_arns)
{
    struct ks_arn a;
    cr_expect_eq(ks_arn_parse("arn:aws:kms:us-east-1:111122223333:alias/my-alias", &a),
                 KS_ARN_ALIAS);
    cr_expect_eq(ks_arn_parse("arn:aws:kms:us-east-1:111122223333:alias/a/b", &a), KS_ARN_ALIAS);
    /* An alias needs a name too. */
    cr_expect_eq(ks_arn_parse("arn:aws:kms:us-east-1:111122223333:alias/", &a), KS_ARN_INVALID);
}

Test(arn, invalid_arns)
{
    static const char *const bad[] = {
        "",
        KEY_ID,                                                /* bare key id */
        "alias/my-alias",                                      /* bare alias */
        "arn:aws:kms:us-east-1:111122223333",                  /* 5 parts */
        "arn:aws:kms:us-east-1:111122223333:key/" KEY_ID ":x", /* 7 parts */
        "arn:aws:kms:us-east-1:111122223333:key:" KEY_ID,      /* ':' in resource */
        "arn::kms:us-east-1:111122223333:key/k",               /* empty partition */
        "arn:aws::us-east-1:111122223333:key/k",               /* empty service */
        "arn:aws:kms::111122223333:key/k",                     /* empty region */
        "arn:aws:kms:us-east-1::key/k",                        /* empty account */
        "arn:aws:kms:us-east-1:111122223333:",                 /* empty resource */
        "arn:aws:kms:us-east-1:111122223333:key",              /* no '/' */
        "arn:aws:kms:us-east-1:111122223333:key/",             /* empty key id */
        "arn:aws:kms:us-east-1:111122223333:/k",               /* empty resource type */
        "arn:aws:kms:us-east-1:111122223333:grant/k",          /* other resource type */
        "arn:aws:kms:us-east-1:111122223333:Key/k",            /* type is case-sensitive */
        "arn:aws:s3:us-east-1:111122223333:key/k",             /* not kms */
        "ARN:aws:kms:us-east-1:111122223333:key/k",            /* "arn" is case-sensitive */
        "arm:aws:kms:us-east-1:111122223333:key/k",
        ":::::",
        "arn:aws:kms:us-east-1:111122223333:key/k:",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ks_arn a;
        cr_expect_eq(ks_arn_parse(bad[i], &a), KS_ARN_INVALID, "\"%s\"", bad[i]);
    }
}

/* "arn:aws:kms:us-east-1:111122223333:key/" padded with 'a' to total length len. */
static char *arn_of_length(size_t len)
{
    static const char prefix[] = "arn:aws:kms:us-east-1:111122223333:key/";
    char *s = malloc(len + 1);
    cr_assert_not_null(s);
    memcpy(s, prefix, sizeof prefix - 1);
    memset(s + sizeof prefix - 1, 'a', len - (sizeof prefix - 1));
    s[len] = '\0';
    return s;
}

Test(arn, length_limit_2048)
{
    struct ks_arn a;
    char *ok = arn_of_length(KS_ARN_MAX), *too_long = arn_of_length(KS_ARN_MAX + 1);
    cr_expect_eq(KS_ARN_MAX, 2048);
    cr_expect_eq(ks_arn_parse(ok, &a), KS_ARN_OK);
    cr_expect_eq(ks_arn_parse(too_long, &a), KS_ARN_INVALID);
    free(ok);
    free(too_long);
}

static int is_mrk(const char *s)
{
    struct ks_arn a;
    if (ks_arn_parse(s, &a) != KS_ARN_OK)
        return 0;
    return ks_arn_is_mrk(&a);
}

Test(arn, mrk_detection)
{
    struct ks_arn a;
    cr_expect(is_mrk(MRK_E1));
    cr_expect(is_mrk("arn:aws:kms:us-east-1:1:key/mrk-x"));
    cr_expect_not(is_mrk(ARN_E1));
    cr_expect_not(is_mrk("arn:aws:kms:us-east-1:1:key/MRK-x"));
    cr_expect_not(is_mrk("arn:aws:kms:us-east-1:1:key/mrkx"));
    cr_expect_not(is_mrk("arn:aws:kms:us-east-1:1:key/xmrk-x"));
    /* An alias named mrk-... is not an MRK. */
    cr_assert_eq(ks_arn_parse("arn:aws:kms:us-east-1:1:alias/mrk-x", &a), KS_ARN_ALIAS);
    cr_expect_not(ks_arn_is_mrk(&a));
}

struct match_case {
    const char *a, *b;
    int match;
    const char *what;
};

Test(arn, mrk_match_table)
{
    static const struct match_case cases[] = {
        {ARN_E1, ARN_E1, 1, "same non-MRK string"},
        {MRK_E1, MRK_E1, 1, "same MRK string"},
        {MRK_E1, MRK_W2, 1, "MRK, region differs"},
        {MRK_W2, MRK_E1, 1, "MRK, region differs (symmetric)"},
        {ARN_E1, ARN_W2, 0, "non-MRK, region differs"},
        {MRK_E1, "arn:aws:kms:us-west-2:444455556666:key/mrk-1234abcd12ab34cd56ef1234567890ab", 0,
         "MRK, account differs"},
        {MRK_E1, "arn:aws-cn:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
         0, "MRK, partition differs"},
        {MRK_E1, "arn:aws:kms:us-west-2:111122223333:key/mrk-ffff", 0, "MRK, key differs"},
        {MRK_E1, "arn:aws:kms:us-east-1:111122223333:key/1234abcd12ab34cd56ef1234567890ab", 0,
         "MRK vs non-MRK"},
        {ARN_E1, "arn:aws:kms:us-east-1:444455556666:key/" KEY_ID, 0, "account differs"},
        {"not-an-arn", "not-an-arn", 0, "invalid ARNs never match"},
        {MRK_E1, "arn:aws:kms:us-west-2:111122223333:alias/mrk-1234abcd12ab34cd56ef1234567890ab", 0,
         "alias with the same name"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(ks_arn_mrk_match(cases[i].a, cases[i].b), cases[i].match, "%s", cases[i].what);
}

Test(arn, with_region)
{
    char out[256];
    cr_assert_eq(ks_arn_with_region(MRK_E1, "us-west-2", out, sizeof out), 0);
    cr_expect_str_eq(out, MRK_W2);
    cr_assert_eq(ks_arn_with_region(ARN_W2, "us-east-1", out, sizeof out), 0);
    cr_expect_str_eq(out, ARN_E1);
    cr_assert_eq(
        ks_arn_with_region("arn:aws:kms:us-east-1:1:key/mrk-a/b", "eu-west-1", out, sizeof out), 0);
    cr_expect_str_eq(out, "arn:aws:kms:eu-west-1:1:key/mrk-a/b");
}

Test(arn, with_region_buffer_and_input_checks)
{
    char out[sizeof MRK_W2];
    cr_expect_eq(ks_arn_with_region(MRK_E1, "us-west-2", out, sizeof out), 0); /* exact fit */
    cr_expect_str_eq(out, MRK_W2);
    cr_expect_eq(ks_arn_with_region(MRK_E1, "us-west-2", out, sizeof out - 1), -1);
    cr_expect_eq(ks_arn_with_region("nope", "us-west-2", out, sizeof out), -1);
    cr_expect_eq(
        ks_arn_with_region("arn:aws:kms:us-east-1:1:alias/a", "us-west-2", out, sizeof out), -1);
}

/* --- length in UTF-16 code units, reasons, UTF-8 ------------------------------------------ */

#define PREFIX "arn:aws:kms:us-east-1:111122223333:key/"

/*
 * PREFIX, then fill (one character of fill_units UTF-16 code units) repeated, then 'a' padding:
 * exactly units UTF-16 code units in all. Caller frees.
 */
static char *arn_of_units(const char *fill, size_t fill_units, size_t units)
{
    size_t prefix = sizeof PREFIX - 1, fill_len = strlen(fill), at = prefix, have = prefix;
    char *s = malloc(prefix + units * 4 + 1);
    cr_assert_not_null(s);
    cr_assert(units >= prefix);
    memcpy(s, PREFIX, prefix);
    while (have + fill_units <= units) {
        memcpy(s + at, fill, fill_len);
        at += fill_len;
        have += fill_units;
    }
    while (have < units) {
        s[at++] = 'a';
        have++;
    }
    s[at] = '\0';
    return s;
}

static const struct {
    const char *what, *fill;
    size_t fill_units, fill_bytes;
} wide_fills[] = {
    {"2-byte UTF-8 (e acute)", "\xc3\xa9", 1, 2},
    {"3-byte UTF-8 (euro sign)", "\xe2\x82\xac", 1, 3},
    {"4-byte UTF-8 (emoji, a surrogate pair)", "\xf0\x9f\x98\x80", 2, 4},
};

Test(arn, length_counts_utf16_code_units)
{
    size_t i;
    for (i = 0; i < sizeof wide_fills / sizeof wide_fills[0]; i++) {
        char *ok = arn_of_units(wide_fills[i].fill, wide_fills[i].fill_units, KS_ARN_MAX);
        char *too_long = arn_of_units(wide_fills[i].fill, wide_fills[i].fill_units, KS_ARN_MAX + 1);
        const char *reason = NULL;
        struct ks_arn a;

        /* Longer than 2048 bytes, yet 2048 characters as the MPL counts them. */
        cr_assert_gt(strlen(ok), KS_ARN_MAX, "%s", wide_fills[i].what);
        cr_expect_leq(strlen(ok), KS_ARN_MAX_BYTES, "%s", wide_fills[i].what);
        cr_expect(ks_arn_length_ok(ok), "%s", wide_fills[i].what);
        cr_expect_eq(ks_arn_parse(ok, &a), KS_ARN_OK, "%s", wide_fills[i].what);
        cr_expect_eq(a.resource_id.len, strlen(ok) - (sizeof PREFIX - 1), "%s", wide_fills[i].what);
        cr_expect_not(ks_arn_length_ok(too_long), "%s", wide_fills[i].what);
        cr_expect_eq(ks_arn_parse_reason(too_long, &a, &reason), KS_ARN_INVALID, "%s",
                     wide_fills[i].what);
        cr_expect_str_eq(reason ? reason : "(null)", "not 1..2048 characters long", "%s",
                         wide_fills[i].what);
        free(ok);
        free(too_long);
    }
}

Test(arn, longest_valid_arn_fits_max_bytes)
{
    /* Every unit of the resource a 3-byte character: the most bytes 2048 units can take. */
    char *widest = arn_of_units("\xe2\x82\xac", 1, KS_ARN_MAX);
    struct ks_arn a;
    cr_expect_eq(KS_ARN_MAX_BYTES, 3 * 2048);
    cr_expect_leq(strlen(widest), KS_ARN_MAX_BYTES);
    cr_expect_eq(ks_arn_parse(widest, &a), KS_ARN_OK);
    free(widest);
}

Test(arn, length_ok_bounds)
{
    char *ok = arn_of_length(KS_ARN_MAX), *too_long = arn_of_length(KS_ARN_MAX + 1);
    cr_expect_not(ks_arn_length_ok(""));
    cr_expect(ks_arn_length_ok("a"));
    cr_expect(ks_arn_length_ok(ok));
    cr_expect_not(ks_arn_length_ok(too_long));
    cr_expect_not(ks_arn_length_ok("\xff"));
    free(ok);
    free(too_long);
}

Test(arn, invalid_utf8_refused)
{
    static const char *const bad[] = {
        PREFIX "k\xff",             /* not UTF-8 at all */
        PREFIX "k\xc3",             /* sequence cut in half */
        PREFIX "k\xc0\xaf",         /* overlong '/' */
        PREFIX "k\xed\xa0\x80",     /* a UTF-16 surrogate encoded as UTF-8 */
        PREFIX "k\xf4\x90\x80\x80", /* above U+10FFFF */
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *reason = NULL;
        struct ks_arn a;
        cr_expect_eq(ks_arn_parse_reason(bad[i], &a, &reason), KS_ARN_INVALID, "case %zu", i);
        cr_expect_str_eq(reason ? reason : "(null)", "not valid UTF-8", "case %zu", i);
        cr_expect_not(ks_arn_length_ok(bad[i]), "case %zu", i);
    }
}

Test(arn, reason_names_the_first_rule_broken)
{
    static const struct {
        const char *arn, *reason;
    } cases[] = {
        {"", "not 1..2048 characters long"},
        {"arn:aws:kms:us-east-1:111122223333", "not exactly 6 ':'-separated parts"},
        {PREFIX "k:x", "not exactly 6 ':'-separated parts"},
        {"urn:aws:kms:us-east-1:1:key/k", "does not start with arn:"},
        {"arn::kms:us-east-1:1:key/k", "empty partition"},
        {"arn:aws:s3:us-east-1:1:key/k", "service is not kms"},
        {"arn:aws:kms::1:key/k", "empty region"},
        {"arn:aws:kms:us-east-1::key/k", "empty account"},
        {"arn:aws:kms:us-east-1:1:key", "resource is not key/<key id>"},
        {"arn:aws:kms:us-east-1:1:key/", "resource is not key/<key id>"},
        {"arn:aws:kms:us-east-1:1:alias/", "resource is not key/<key id>"},
        {"arn:aws:kms:us-east-1:1:keys/k", "resource is not key/<key id>"},
        /* Order: the part count before the fields, the first field before the others. */
        {"urn::s3:::", "does not start with arn:"},
        {"arn::s3:::", "empty partition"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *reason = NULL;
        struct ks_arn a;
        cr_expect_eq(ks_arn_parse_reason(cases[i].arn, &a, &reason), KS_ARN_INVALID, "\"%s\"",
                     cases[i].arn);
        cr_expect_str_eq(reason ? reason : "(null)", cases[i].reason, "\"%s\"", cases[i].arn);
    }
}

Test(arn, reason_untouched_when_valid)
{
    const char *reason = "unchanged";
    struct ks_arn a;
    cr_expect_eq(ks_arn_parse_reason(ARN_E1, &a, &reason), KS_ARN_OK);
    cr_expect_str_eq(reason, "unchanged");
    cr_expect_eq(ks_arn_parse_reason("arn:aws:kms:us-east-1:1:alias/a", &a, &reason), KS_ARN_ALIAS);
    cr_expect_str_eq(reason, "unchanged");
    /* A NULL reason is allowed. */
    cr_expect_eq(ks_arn_parse_reason("nope", &a, NULL), KS_ARN_INVALID);
}
