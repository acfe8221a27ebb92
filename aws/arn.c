/*
 * arn.c - the one KMS key ARN parser (docs/reference/branch-key-store.md section 7). The rules
 * are checked in a fixed order so that the first one broken names the problem in messages.
 */
#include "aws/arn.h"

#include <stdio.h>
#include <string.h>

#include "common/util.h"

static int field_is(const struct ks_arn_field *f, const char *s)
{
    return f->len == strlen(s) && memcmp(f->ptr, s, f->len) == 0;
}

static int field_eq(const struct ks_arn_field *a, const struct ks_arn_field *b)
{
    return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

int ks_arn_length_ok(const char *arn)
{
    size_t len = strlen(arn), units;
    if (!ks_utf8_valid(arn, len))
        return 0;
    /* Counted in UTF-16 code units, as the MPL counts: a 2048-character ARN with non-ASCII
     * characters is longer than 2048 bytes and still valid. */
    units = ks_utf8_utf16_length(arn, len);
    return units >= 1 && units <= KS_ARN_MAX;
}

/*
 * Splits on every ':' (the MPL does; a resource cannot contain ':'). Returns the number of parts,
 * 7 meaning "more than 6"; parts[0..5] are filled as far as they go.
 */
static size_t split_parts(const char *arn, struct ks_arn_field parts[6])
{
    const char *p = arn;
    size_t n = 0;

    for (;;) {
        const char *colon = strchr(p, ':');
        if (n == 6)
            return 7;
        parts[n].ptr = p;
        parts[n].len = colon ? (size_t)(colon - p) : strlen(p);
        n++;
        if (!colon)
            return n;
        p = colon + 1;
    }
}

/* The first of the rules on the 6 parts that is broken, or NULL. */
static const char *check_parts(const struct ks_arn_field parts[6])
{
    if (!field_is(&parts[0], "arn"))
        return "does not start with arn:";
    if (parts[1].len == 0)
        return "empty partition";
    if (!field_is(&parts[2], "kms"))
        return "service is not kms";
    if (parts[3].len == 0)
        return "empty region";
    if (parts[4].len == 0)
        return "empty account";
    return NULL;
}

static enum ks_arn_result invalid(const char **reason, const char *why)
{
    if (reason)
        *reason = why;
    return KS_ARN_INVALID;
}

enum ks_arn_result ks_arn_parse_reason(const char *arn, struct ks_arn *out, const char **reason)
{
    struct ks_arn_field parts[6];
    const char *slash, *why;

    if (!ks_utf8_valid(arn, strlen(arn)))
        return invalid(reason, "not valid UTF-8");
    if (!ks_arn_length_ok(arn))
        return invalid(reason, "not 1..2048 characters long");
    if (split_parts(arn, parts) != 6)
        return invalid(reason, "not exactly 6 ':'-separated parts");
    if ((why = check_parts(parts)) != NULL)
        return invalid(reason, why);
    /* resource = type "/" value; the value is non-empty and may itself contain '/'. */
    slash = memchr(parts[5].ptr, '/', parts[5].len);
    if (!slash || slash + 1 == parts[5].ptr + parts[5].len)
        return invalid(reason, "resource is not key/<key id>");
    out->partition = parts[1];
    out->service = parts[2];
    out->region = parts[3];
    out->account = parts[4];
    out->resource_type.ptr = parts[5].ptr;
    out->resource_type.len = (size_t)(slash - parts[5].ptr);
    out->resource_id.ptr = slash + 1;
    out->resource_id.len = parts[5].len - out->resource_type.len - 1;
    if (field_is(&out->resource_type, "alias"))
        return KS_ARN_ALIAS;
    if (!field_is(&out->resource_type, "key"))
        return invalid(reason, "resource is not key/<key id>");
    return KS_ARN_OK;
}

enum ks_arn_result ks_arn_parse(const char *arn, struct ks_arn *out)
{
    return ks_arn_parse_reason(arn, out, NULL);
}

int ks_arn_is_mrk(const struct ks_arn *arn)
{
    return field_is(&arn->resource_type, "key") && arn->resource_id.len >= 4 &&
           memcmp(arn->resource_id.ptr, "mrk-", 4) == 0;
}

int ks_arn_mrk_match(const char *a, const char *b)
{
    struct ks_arn pa, pb;
    if (ks_arn_parse(a, &pa) != KS_ARN_OK || ks_arn_parse(b, &pb) != KS_ARN_OK)
        return 0;
    if (strcmp(a, b) == 0)
        return 1;
    if (!ks_arn_is_mrk(&pa) || !ks_arn_is_mrk(&pb))
        return 0;
    return field_eq(&pa.partition, &pb.partition) && field_eq(&pa.service, &pb.service) &&
           field_eq(&pa.account, &pb.account) && field_eq(&pa.resource_type, &pb.resource_type) &&
           field_eq(&pa.resource_id, &pb.resource_id);
}

int ks_arn_with_region(const char *arn, const char *region, char *out, size_t out_size)
{
    struct ks_arn p;
    int n;
    if (ks_arn_parse(arn, &p) != KS_ARN_OK)
        return -1;
    n = snprintf(out, out_size, "arn:%.*s:%.*s:%s:%.*s:%.*s/%.*s", (int)p.partition.len,
                 p.partition.ptr, (int)p.service.len, p.service.ptr, region, (int)p.account.len,
                 p.account.ptr, (int)p.resource_type.len, p.resource_type.ptr,
                 (int)p.resource_id.len, p.resource_id.ptr);
    return n < 0 || (size_t)n >= out_size ? -1 : 0;
}
