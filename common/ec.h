/*
 * ec.h - an encryption context: a map of UTF-8 strings kept sorted by key bytes, so that the
 * canonical serialization (docs/architecture.md section 5: u16 count, entries sorted by UTF-8 key
 * bytes, each u16 length + key + u16 length + value, big-endian) falls out of iteration order. Keys
 * and values are NUL-terminated and may not contain NUL. Not thread-safe per instance.
 */
#ifndef KS_COMMON_EC_H
#define KS_COMMON_EC_H

#include <stddef.h>

struct ks_ec_entry {
    char *key;
    char *value;
};

struct ks_ec {
    struct ks_ec_entry *entries;
    size_t count;
    size_t cap;
};

void ks_ec_init(struct ks_ec *ec);
void ks_ec_free(struct ks_ec *ec);

/* Inserts or replaces key (copies both strings). Returns 0, or -1 on OOM (ec unchanged). */
int ks_ec_set(struct ks_ec *ec, const char *key, const char *value);

/* The value for key, or NULL. */
const char *ks_ec_get(const struct ks_ec *ec, const char *key);

/* Removes key if present; returns 1 if removed, 0 if absent. */
int ks_ec_remove(struct ks_ec *ec, const char *key);

/* dst (initialized, replaced) gets a deep copy of src. Returns 0, or -1 on OOM. */
int ks_ec_copy(struct ks_ec *dst, const struct ks_ec *src);

/* 1 when both hold the same pairs. */
int ks_ec_equal(const struct ks_ec *a, const struct ks_ec *b);

/*
 * Canonical serialization (above) into a malloc'd buffer. Returns 0, or -1 when an entry or the
 * count does not fit in u16, or on OOM. An empty context serializes to zero bytes (as the ESDK
 * does), *out is then a valid 1-byte allocation with *len 0.
 */
int ks_ec_serialize(const struct ks_ec *ec, unsigned char **out, size_t *len);

#endif
