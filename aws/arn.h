/*
 * arn.h - AWS KMS key ARN parsing and multi-region key (MRK) matching, as the MPL does
 * (docs/reference/branch-key-store.md section 7; MPL AwsArnParsing.dfy,
 * AwsKmsMrkMatchForDecrypt.dfy). The one ARN parser of keystored: config/ checks configured ARNs
 * and keystore/ stored `kms-arn` values with it, so both accept and refuse the same strings.
 * Thread-safe, no allocation.
 */
#ifndef KS_AWS_ARN_H
#define KS_AWS_ARN_H

#include <stddef.h>

/* An ARN is 1..2048 characters, counted in UTF-16 code units as the MPL counts string lengths
 * (docs/reference/branch-key-store.md sections 5 and 7). */
#define KS_ARN_MAX 2048
/* The longest UTF-8 encoding of such an ARN (at most 3 bytes per UTF-16 code unit): buffers that
 * hold any valid ARN have KS_ARN_MAX_BYTES + 1 bytes. */
#define KS_ARN_MAX_BYTES (3 * KS_ARN_MAX)

/* Views into the parsed string: each field is [ptr, ptr+len). */
struct ks_arn_field {
    const char *ptr;
    size_t len;
};

struct ks_arn {
    struct ks_arn_field partition, service, region, account, resource_type, resource_id;
};

enum ks_arn_result {
    KS_ARN_OK = 0,
    KS_ARN_INVALID, /* not a KMS ARN of the shape arn:partition:kms:region:account:type/id */
    KS_ARN_ALIAS,   /* a valid alias ARN: the key store requires a key ARN */
};

/* Parses a key ARN. On KS_ARN_OK or KS_ARN_ALIAS, out points into arn (which must outlive it). */
enum ks_arn_result ks_arn_parse(const char *arn, struct ks_arn *out);

/*
 * Same, and on KS_ARN_INVALID sets *reason (when reason is not NULL) to a static phrase naming the
 * first rule broken, such as "empty region" (for configuration error messages).
 */
enum ks_arn_result ks_arn_parse_reason(const char *arn, struct ks_arn *out, const char **reason);

/* 1 when arn is valid UTF-8 of 1..KS_ARN_MAX UTF-16 code units (the length rule alone). */
int ks_arn_length_ok(const char *arn);

/* 1 when arn is a valid key ARN whose resource id starts with "mrk-". */
int ks_arn_is_mrk(const struct ks_arn *arn);

/*
 * MrkMatch(a, b): equal strings, or both MRKs equal in partition, service, account and resource
 * (the region may differ). Non-MRK ARNs compare by exact equality. Invalid ARNs never match.
 */
int ks_arn_mrk_match(const char *a, const char *b);

/*
 * Writes arn with its region replaced by region into out (used by mr_discovery for MRKs).
 * Returns 0, or -1 when arn is invalid or out is too small.
 */
int ks_arn_with_region(const char *arn, const char *region, char *out, size_t out_size);

#endif
