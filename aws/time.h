/*
 * time.h - the timestamps the AWS credential sources write: ISO-8601 / RFC 3339 UTC instants
 * such as a metadata document's "Expiration" and AWS_CREDENTIAL_EXPIRATION
 * (docs/reference/aws-apis.md section 5). Pure functions, thread-safe.
 */
#ifndef KS_AWS_TIME_H
#define KS_AWS_TIME_H

#include <stdint.h>

/*
 * Parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM) ('t' or a space may stand for 'T',
 * 'z' for 'Z'; the fraction is dropped) into seconds since the Unix epoch. 0 with *out set, or
 * -1 when s is not such a timestamp, names an impossible field (month 13, hour 24, ...) or an
 * instant at or before the epoch.
 */
int ks_aws_time_parse_iso8601(const char *s, uint64_t *out);

#endif
