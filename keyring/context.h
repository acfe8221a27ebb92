/*
 * context.h - the encryption context of the keyring routes: a map of UTF-8 strings kept sorted
 * by the unsigned bytes of the keys (a proper prefix first), each key and value carried with its
 * length, so that a value may hold U+0000 as the ESDK allows
 * (docs/reference/hierarchical-keyring.md section 4). Keys may not hold U+0000 (json-c keeps member
 * names as C strings). common/ec.h stays the C-string context of branch keys and KMS calls; this
 * one serves the keyring alone. Every key and value is stored with a NUL after its bytes for
 * display. Not thread-safe per instance.
 */
#ifndef KS_KEYRING_CONTEXT_H
#define KS_KEYRING_CONTEXT_H

#include <stddef.h>

#include "common/status.h"

struct ks_keyring_ec_entry {
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
};

struct ks_keyring_ec {
    struct ks_keyring_ec_entry *entries;
    size_t count;
    size_t cap;
};

void ks_keyring_ec_init(struct ks_keyring_ec *ec);
void ks_keyring_ec_free(struct ks_keyring_ec *ec);

/* Inserts or replaces key (copies both). Returns 0, or -1 on OOM (ec unchanged). */
int ks_keyring_ec_set(struct ks_keyring_ec *ec, const char *key, size_t key_len, const char *value,
                      size_t value_len);

/*
 * The limits and rules of section 4: fewer than 65536 pairs, every key and value shorter than
 * 65536 bytes and well-formed UTF-8, no key holding U+0000. KS_E_INVALID naming the rule otherwise
 * (refused, never truncated).
 */
ks_status ks_keyring_check_ec(const struct ks_keyring_ec *ec, struct ks_error *err);

/*
 * SER(ec) of section 4 into a malloc'd buffer: a u16 count, then per pair (in key byte order)
 * u16 key length, key, u16 value length, value, big-endian; zero bytes for an empty context (*out
 * is then a valid 1-byte allocation). Returns 0, or -1 when over the u16 limits or on OOM.
 */
int ks_keyring_ec_serialize(const struct ks_keyring_ec *ec, unsigned char **out, size_t *len);

#endif
