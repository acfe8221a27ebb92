#include "common/ec.h"

#include <stdlib.h>
#include <string.h>

void ks_ec_init(struct ks_ec *ec)
{
    ec->entries = NULL;
    ec->count = 0;
    ec->cap = 0;
}

void ks_ec_free(struct ks_ec *ec)
{
    size_t i;
    if (!ec)
        return;
    for (i = 0; i < ec->count; i++) {
        free(ec->entries[i].key);
        free(ec->entries[i].value);
    }
    free(ec->entries);
    ks_ec_init(ec);
}

/* Position of key, or the insertion point with *found = 0 (keys compared as unsigned bytes). */
static size_t find(const struct ks_ec *ec, const char *key, int *found)
{
    size_t lo = 0, hi = ec->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ec->entries[mid].key, key); /* strcmp compares as unsigned char */
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

int ks_ec_set(struct ks_ec *ec, const char *key, const char *value)
{
    int found;
    size_t pos = find(ec, key, &found);
    char *v = strdup(value);
    char *k;

    if (!v)
        return -1;
    if (found) {
        free(ec->entries[pos].value);
        ec->entries[pos].value = v;
        return 0;
    }
    k = strdup(key);
    if (!k) {
        free(v);
        return -1;
    }
    if (ec->count == ec->cap) {
        size_t cap = ec->cap ? ec->cap * 2 : 8;
        struct ks_ec_entry *e = realloc(ec->entries, cap * sizeof *e);
        if (!e) {
            free(k);
            free(v);
            return -1;
        }
        ec->entries = e;
        ec->cap = cap;
    }
    memmove(&ec->entries[pos + 1], &ec->entries[pos], (ec->count - pos) * sizeof *ec->entries);
    ec->entries[pos].key = k;
    ec->entries[pos].value = v;
    ec->count++;
    return 0;
}

const char *ks_ec_get(const struct ks_ec *ec, const char *key)
{
    int found;
    size_t pos = find(ec, key, &found);
    return found ? ec->entries[pos].value : NULL;
}

int ks_ec_remove(struct ks_ec *ec, const char *key)
{
    int found;
    size_t pos = find(ec, key, &found);
    if (!found)
        return 0;
    free(ec->entries[pos].key);
    free(ec->entries[pos].value);
    memmove(&ec->entries[pos], &ec->entries[pos + 1], (ec->count - pos - 1) * sizeof *ec->entries);
    ec->count--;
    return 1;
}

int ks_ec_copy(struct ks_ec *dst, const struct ks_ec *src)
{
    struct ks_ec tmp;
    size_t i;
    ks_ec_init(&tmp);
    for (i = 0; i < src->count; i++) {
        if (ks_ec_set(&tmp, src->entries[i].key, src->entries[i].value) != 0) {
            ks_ec_free(&tmp);
            return -1;
        }
    }
    ks_ec_free(dst);
    *dst = tmp;
    return 0;
}

int ks_ec_equal(const struct ks_ec *a, const struct ks_ec *b)
{
    size_t i;
    if (a->count != b->count)
        return 0;
    for (i = 0; i < a->count; i++) {
        if (strcmp(a->entries[i].key, b->entries[i].key) != 0 ||
            strcmp(a->entries[i].value, b->entries[i].value) != 0)
            return 0;
    }
    return 1;
}

static void put_u16(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

int ks_ec_serialize(const struct ks_ec *ec, unsigned char **out, size_t *len)
{
    size_t total = ec->count ? 2 : 0, i, o = 0;
    unsigned char *buf;

    if (ec->count > 0xffff)
        return -1;
    for (i = 0; i < ec->count; i++) {
        size_t kl = strlen(ec->entries[i].key), vl = strlen(ec->entries[i].value);
        if (kl > 0xffff || vl > 0xffff)
            return -1;
        total += 4 + kl + vl;
    }
    buf = malloc(total ? total : 1);
    if (!buf)
        return -1;
    if (ec->count) {
        put_u16(buf, ec->count);
        o = 2;
    }
    for (i = 0; i < ec->count; i++) {
        size_t kl = strlen(ec->entries[i].key), vl = strlen(ec->entries[i].value);
        put_u16(buf + o, kl);
        memcpy(buf + o + 2, ec->entries[i].key, kl);
        o += 2 + kl;
        put_u16(buf + o, vl);
        memcpy(buf + o + 2, ec->entries[i].value, vl);
        o += 2 + vl;
    }
    *out = buf;
    *len = total;
    return 0;
}
