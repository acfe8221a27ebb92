/* context.c - the keyring's length-carrying encryption context (context.h). */
#include "keyring/context.h"

#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

#define U16_MAX 0xffffu

void ks_keyring_ec_init(struct ks_keyring_ec *ec)
{
    ec->entries = NULL;
    ec->count = 0;
    ec->cap = 0;
}

void ks_keyring_ec_free(struct ks_keyring_ec *ec)
{
    size_t i;
    if (!ec)
        return;
    for (i = 0; i < ec->count; i++) {
        free(ec->entries[i].key);
        free(ec->entries[i].value);
    }
    free(ec->entries);
    ks_keyring_ec_init(ec);
}

/* Unsigned byte order, a proper prefix first (section 4). */
static int key_cmp(const char *a, size_t a_len, const char *b, size_t b_len)
{
    int c = memcmp(a, b, a_len < b_len ? a_len : b_len);
    if (c)
        return c;
    return a_len < b_len ? -1 : a_len > b_len;
}

/* Position of key, or the insertion point with *found = 0. */
static size_t find(const struct ks_keyring_ec *ec, const char *key, size_t key_len, int *found)
{
    size_t lo = 0, hi = ec->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(ec->entries[mid].key, ec->entries[mid].key_len, key, key_len);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

/* A copy of len bytes and a NUL, or NULL. */
static char *dup_bytes(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

int ks_keyring_ec_set(struct ks_keyring_ec *ec, const char *key, size_t key_len, const char *value,
                      size_t value_len)
{
    int found;
    size_t pos = find(ec, key, key_len, &found);
    char *v = dup_bytes(value, value_len), *k;

    if (!v)
        return -1;
    if (found) {
        free(ec->entries[pos].value);
        ec->entries[pos].value = v;
        ec->entries[pos].value_len = value_len;
        return 0;
    }
    k = dup_bytes(key, key_len);
    if (k && ec->count == ec->cap) {
        size_t cap = ec->cap ? ec->cap * 2 : 8;
        struct ks_keyring_ec_entry *e = realloc(ec->entries, cap * sizeof *e);
        if (e) {
            ec->entries = e;
            ec->cap = cap;
        }
    }
    if (!k || ec->count == ec->cap) {
        free(k);
        free(v);
        return -1;
    }
    memmove(&ec->entries[pos + 1], &ec->entries[pos], (ec->count - pos) * sizeof *ec->entries);
    ec->entries[pos] = (struct ks_keyring_ec_entry){k, key_len, v, value_len};
    ec->count++;
    return 0;
}

ks_status ks_keyring_check_ec(const struct ks_keyring_ec *ec, struct ks_error *err)
{
    size_t i;
    if (ec->count > U16_MAX)
        return ks_error_set(err, KS_E_INVALID,
                            "encryptionContext: %zu pairs; at most 65535 can be serialized",
                            ec->count);
    for (i = 0; i < ec->count; i++) {
        const struct ks_keyring_ec_entry *e = &ec->entries[i];
        if (e->key_len > U16_MAX)
            return ks_error_set(err, KS_E_INVALID,
                                "encryptionContext: a key of %zu bytes; at most 65535", e->key_len);
        if (e->value_len > U16_MAX)
            return ks_error_set(err, KS_E_INVALID,
                                "encryptionContext: a value of %zu bytes; at most 65535",
                                e->value_len);
        /* The request path refuses these already (common/json_check.h); this type is also
         * filled by other callers, so the rules are checked where the bytes are used. */
        if (memchr(e->key, '\0', e->key_len))
            return ks_error_set(err, KS_E_INVALID,
                                "encryptionContext: a key holds U+0000 (keystored allows it in "
                                "values only)");
        if (!ks_utf8_valid(e->key, e->key_len) || !ks_utf8_valid(e->value, e->value_len))
            return ks_error_set(err, KS_E_INVALID, "encryptionContext: not well-formed UTF-8");
    }
    return KS_OK;
}

static unsigned char *put_field(unsigned char *p, const char *s, size_t len)
{
    p[0] = (unsigned char)(len >> 8);
    p[1] = (unsigned char)len;
    memcpy(p + 2, s, len);
    return p + 2 + len;
}

int ks_keyring_ec_serialize(const struct ks_keyring_ec *ec, unsigned char **out, size_t *len)
{
    size_t total = ec->count ? 2 : 0, i;
    unsigned char *buf, *p;

    if (ec->count > U16_MAX)
        return -1;
    for (i = 0; i < ec->count; i++) {
        if (ec->entries[i].key_len > U16_MAX || ec->entries[i].value_len > U16_MAX)
            return -1;
        total += 4 + ec->entries[i].key_len + ec->entries[i].value_len;
    }
    p = buf = malloc(total ? total : 1);
    if (!buf)
        return -1;
    if (ec->count) {
        p[0] = (unsigned char)(ec->count >> 8);
        p[1] = (unsigned char)ec->count;
        p += 2;
    }
    for (i = 0; i < ec->count; i++) {
        p = put_field(p, ec->entries[i].key, ec->entries[i].key_len);
        p = put_field(p, ec->entries[i].value, ec->entries[i].value_len);
    }
    *out = buf;
    *len = total;
    return 0;
}
