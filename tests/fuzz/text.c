/*
 * text.c - fuzz target: the small text parsers that read stored or peer-supplied strings: KMS
 * key ARNs (aws/arn.h; configured, stored in items as `kms-arn`, given as terminalKmsArn), item
 * `create-time` values (keystore/create_time.h), AWS timestamps (aws/time.h; credential
 * expirations from the metadata service) and the AWS shared credentials/config files
 * (aws/profile.h). Byte 0 picks the parser, the rest is the text. A valid ARN moved to another
 * region is still valid there and matches itself as an MRK when it is one.
 */
#include "aws/arn.h"
#include "aws/profile.h"
#include "aws/time.h"
#include "keystore/create_time.h"
#include "tests/fuzz/fuzz.h"

static void arn(const char *s)
{
    char moved[KS_ARN_MAX_BYTES + 1];
    const char *reason = NULL;
    struct ks_arn a, b;
    enum ks_arn_result r = ks_arn_parse_reason(s, &a, &reason);

    if (r != KS_ARN_OK) {
        FUZZ_CHECK(r != KS_ARN_INVALID || reason != NULL);
        FUZZ_CHECK(ks_arn_with_region(s, "us-west-2", moved, sizeof moved) == -1 ||
                   r == KS_ARN_ALIAS);
        return;
    }
    FUZZ_CHECK(ks_arn_length_ok(s) && ks_arn_mrk_match(s, s));
    if (ks_arn_with_region(s, "us-west-2", moved, sizeof moved) == 0 && ks_arn_length_ok(moved)) {
        FUZZ_CHECK(ks_arn_parse(moved, &b) == KS_ARN_OK);
        FUZZ_CHECK(b.region.len == 9 && memcmp(b.region.ptr, "us-west-2", 9) == 0);
        FUZZ_CHECK(!ks_arn_is_mrk(&a) || ks_arn_mrk_match(s, moved));
    }
}

static void create_time(const char *s)
{
    int64_t us;
    if (ks_create_time_parse(s, &us) == 0)
        FUZZ_CHECK(ks_create_time_cmp(s, "v", s, "v") == 0);
}

static void aws_time(const char *s)
{
    uint64_t t;
    if (ks_aws_time_parse_iso8601(s, &t) == 0)
        FUZZ_CHECK(t > 0);
}

static void profile(char *s, int config_file)
{
    struct ks_aws_profile_values v = {0};
    FUZZ_CHECK(ks_aws_profile_parse(s, "default", config_file, &v) == 0);
    ks_aws_profile_values_clear(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    if (size == 0)
        return 0;
    s = fuzz_cstr(data + 1, size - 1);
    switch (data[0] % 5) {
    case 0:
        arn(s);
        break;
    case 1:
        create_time(s);
        break;
    case 2:
        aws_time(s);
        break;
    default:
        profile(s, data[0] % 5 == 4);
        break;
    }
    free(s);
    return 0;
}
