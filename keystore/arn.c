#include "keystore/arn.h"

#include <stdio.h>
#include <string.h>

static int field_is(const struct ks_arn_field *f, const char *s)
{
    return f->len == strlen(s) && memcmp(f->ptr, s, f->len) == 0;
}

static int field_eq(const struct ks_arn_field *a, const struct ks_arn_field *b)
{
    return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

enum ks_arn_result ks_arn_parse(const char *arn, struct ks_arn *out)
{
    struct ks_arn_field parts[6];
    const char *p = arn, *colon, *slash;
    size_t n = 0, len = strlen(arn);

    /* 1..2048 chars; exactly 6 ':'-separated parts (the resource may contain ':'? No: the MPL
     * splits on every ':' and requires exactly 6). */
    if (len == 0 || len > KS_ARN_MAX)
        return KS_ARN_INVALID;
    for (;;) {
        colon = strchr(p, ':');
        if (n == 6)
            return KS_ARN_INVALID;
        parts[n].ptr = p;
        parts[n].len = colon ? (size_t)(colon - p) : strlen(p);
        n++;
        if (!colon)
            break;
        p = colon + 1;
    }
    if (n != 6 || !field_is(&parts[0], "arn") || parts[1].len == 0 || !field_is(&parts[2], "kms") ||
        parts[3].len == 0 || parts[4].len == 0)
        return KS_ARN_INVALID;
    /* resource = type "/" value; the value is non-empty and may itself contain '/'. */
    slash = memchr(parts[5].ptr, '/', parts[5].len);
    if (!slash)
        return KS_ARN_INVALID;
    out->partition = parts[1];
    out->service = parts[2];
    out->region = parts[3];
    out->account = parts[4];
    out->resource_type.ptr = parts[5].ptr;
    out->resource_type.len = (size_t)(slash - parts[5].ptr);
    out->resource_id.ptr = slash + 1;
    out->resource_id.len = parts[5].len - out->resource_type.len - 1;
    if (out->resource_id.len == 0)
        return KS_ARN_INVALID;
    if (field_is(&out->resource_type, "alias"))
        return KS_ARN_ALIAS;
    if (!field_is(&out->resource_type, "key"))
        return KS_ARN_INVALID;
    return KS_ARN_OK;
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
