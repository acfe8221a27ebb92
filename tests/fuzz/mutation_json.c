/*
 * mutation_json.c - fuzz target: the JSON a mutation commitment carries (storage/item.h,
 * docs/reference/mutations.md sections 1 and 12), read back from storage on every
 * ApplyMutation: the `original`/`terminal` properties and the `input`, in their HV-1 and HV-2
 * forms. The first input byte picks the reader, the rest is the JSON. What a reader accepts must
 * be written back by the matching writer and read again to the same values.
 */
#include "common/bytes.h"
#include "common/ec.h"
#include "storage/item.h"
#include "tests/fuzz/fuzz.h"

static int same_arn(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void props(const uint8_t *data, size_t size)
{
    struct ks_ec ec, ec2;
    struct ks_bytes out = {0};
    struct ks_error err;
    char *arn = NULL, *arn2 = NULL;
    int hv = 0, hv2 = 0;

    if (ks_mutation_props_from_json_hv(data, size, &arn, &ec, &hv, &err) == KS_OK &&
        ks_mutation_props_to_json_hv(arn, &ec, hv, &out, &err) == KS_OK) {
        FUZZ_CHECK(ks_mutation_props_from_json_hv(out.data, out.len, &arn2, &ec2, &hv2, &err) ==
                   KS_OK);
        FUZZ_CHECK(same_arn(arn, arn2) && ks_ec_equal(&ec, &ec2) && hv == hv2);
        ks_ec_free(&ec2);
    }
    ks_bytes_free(&out);
    ks_ec_free(&ec);
    free(arn);
    free(arn2);
}

static void input(const uint8_t *data, size_t size)
{
    struct ks_ec ec, ec2;
    struct ks_bytes out = {0};
    struct ks_error err;
    char *arn = NULL, *arn2 = NULL;
    int hv = 0, hv2 = 0, has = 0, has2 = 0;

    if (ks_mutation_input_from_json_hv(data, size, &arn, &has, &ec, &hv, &err) == KS_OK &&
        ks_mutation_input_to_json_hv(arn, has ? &ec : NULL, hv, &out, &err) == KS_OK) {
        FUZZ_CHECK(ks_mutation_input_from_json_hv(out.data, out.len, &arn2, &has2, &ec2, &hv2,
                                                  &err) == KS_OK);
        FUZZ_CHECK(same_arn(arn, arn2) && has == has2 && ks_ec_equal(&ec, &ec2) && hv == hv2);
        ks_ec_free(&ec2);
    }
    ks_bytes_free(&out);
    ks_ec_free(&ec);
    free(arn);
    free(arn2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        input(data + 1, size - 1);
    else
        props(data + 1, size - 1);
    return 0;
}
