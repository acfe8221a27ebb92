/*
 * create_time.h - parsing and ordering the `create-time` of items (issue 14). Thread-safe.
 */
#ifndef KS_KEYSTORE_CREATE_TIME_H
#define KS_KEYSTORE_CREATE_TIME_H

#include <stdint.h>

/*
 * Parses a create-time as the MPL runtimes write it (section 10): "YYYY-MM-DDTHH:MM:SS", an
 * optional fraction of 1..9 digits, then "Z" or "+HH:MM"/"-HH:MM". The fraction is read as a
 * decimal fraction of a second (Java's zero-padded milliseconds thus read as microseconds: an
 * error under one second). Go's local time with a literal Z cannot be told apart and is read as
 * UTC. 0 and *epoch_us set, or -1 when it does not parse.
 */
int ks_create_time_parse(const char *s, int64_t *epoch_us);

/* Compares two versions in listing order (newest first); for tests and the sort. */
int ks_create_time_cmp(const char *time_a, const char *version_a, const char *time_b,
                       const char *version_b);

#endif
