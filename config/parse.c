/*
 * parse.c - the YAML-node helper of config/ (config/parse.h): the error list, node lookups,
 * mapping-key matching and the typed getters every section parser uses
 * (docs/architecture.md section 4).
 */
#include "config/config.h"
#include "config/parse.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* ---------------------------------------------------------------------------------------- */
/* Error list                                                                               */
/* ---------------------------------------------------------------------------------------- */

static void add_error_va(struct ks_config_parser *p, size_t line, size_t column, const char *fmt,
                         va_list ap)
{
    va_list copy;
    int prefix_len, what_len;
    char *text;

    if (p->oom)
        return;
    va_copy(copy, ap);
    what_len = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    prefix_len = snprintf(NULL, 0, "%s:%zu:%zu: ", p->name, line, column);
    if (what_len < 0 || prefix_len < 0) {
        p->oom = 1;
        return;
    }
    text = malloc((size_t)prefix_len + (size_t)what_len + 1);
    if (!text) {
        p->oom = 1;
        return;
    }
    snprintf(text, (size_t)prefix_len + 1, "%s:%zu:%zu: ", p->name, line, column);
    vsnprintf(text + prefix_len, (size_t)what_len + 1, fmt, ap);

    if (p->n_errors == p->cap_errors) {
        size_t cap = p->cap_errors ? 2 * p->cap_errors : 8;
        struct ks_config_problem *grown = realloc(p->errors, cap * sizeof *grown);
        if (!grown) {
            free(text);
            p->oom = 1;
            return;
        }
        p->errors = grown;
        p->cap_errors = cap;
    }
    p->errors[p->n_errors].line = line;
    p->errors[p->n_errors].column = column;
    p->errors[p->n_errors].seq = p->n_errors;
    p->errors[p->n_errors].text = text;
    p->n_errors++;
}

void ks_config_error_at(struct ks_config_parser *p, size_t line, size_t column, const char *fmt,
                        ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error_va(p, line, column, fmt, ap);
    va_end(ap);
}

/* libyaml marks are 0-based, messages are 1-based. */
void ks_config_error(struct ks_config_parser *p, const yaml_node_t *node, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error_va(p, node->start_mark.line + 1, node->start_mark.column + 1, fmt, ap);
    va_end(ap);
}

static int compare_errors(const void *a, const void *b)
{
    const struct ks_config_problem *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->column != y->column)
        return x->column < y->column ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* Sorted, one error per line, each line ending in '\n'. NULL on OOM. */
char *ks_config_join_errors(struct ks_config_parser *p)
{
    size_t i, total = 1, at = 0;
    char *out;

    qsort(p->errors, p->n_errors, sizeof *p->errors, compare_errors);
    for (i = 0; i < p->n_errors; i++)
        total += strlen(p->errors[i].text) + 1;
    out = malloc(total);
    if (!out)
        return NULL;
    for (i = 0; i < p->n_errors; i++) {
        size_t len = strlen(p->errors[i].text);
        memcpy(out + at, p->errors[i].text, len);
        at += len;
        out[at++] = '\n';
    }
    out[at] = '\0';
    return out;
}

void ks_config_free_errors(struct ks_config_parser *p)
{
    size_t i;
    for (i = 0; i < p->n_errors; i++)
        free(p->errors[i].text);
    free(p->errors);
    p->errors = NULL;
    p->n_errors = p->cap_errors = 0;
}

/* Out-of-band text for errors that happen before or without a parser (OOM, unreadable file). */
char *ks_config_format(const char *fmt, ...)
{
    va_list ap;
    int len;
    char *out;

    va_start(ap, fmt);
    len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;
    out = malloc((size_t)len + 1);
    if (!out)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(out, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Nodes                                                                                    */
/* ---------------------------------------------------------------------------------------- */

yaml_node_t *ks_config_node(struct ks_config_parser *p, int id)
{
    return yaml_document_get_node(p->doc, id);
}

const char *ks_config_text(const yaml_node_t *n)
{
    /* libyaml NUL-terminates every scalar value. */
    return (const char *)n->data.scalar.value;
}

int ks_config_scalar_is(const yaml_node_t *n, const char *s)
{
    size_t len = strlen(s);
    return n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
           memcmp(n->data.scalar.value, s, len) == 0;
}

/* YAML 1.1 core null: an empty or ~/null plain scalar ("key:" with nothing after it). */
int ks_config_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    return n->data.scalar.length == 0 || ks_config_scalar_is(n, "~") ||
           ks_config_scalar_is(n, "null") || ks_config_scalar_is(n, "Null") ||
           ks_config_scalar_is(n, "NULL");
}

const char *ks_config_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return ks_config_is_null(n) ? "empty" : "a scalar";
    }
}

/*
 * A scalar quoted for a message, escaped so that one error stays on one line, truncated to fit.
 * Never call this on a secret (credentials, grant tokens, token hashes).
 */
const char *ks_config_show(const yaml_node_t *n, char *buf, size_t size)
{
    const unsigned char *s = n->data.scalar.value;
    size_t i, at = 0;

    buf[at++] = '"';
    for (i = 0; i < n->data.scalar.length; i++) {
        unsigned char c = s[i];
        if (at + 8 >= size) {
            memcpy(buf + at, "...", 3);
            at += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            buf[at++] = '\\';
            buf[at++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            buf[at++] = '\\';
            buf[at++] = 'x';
            ks_hex_encode(&c, 1, buf + at); /* the check above left room for its NUL */
            at += 2;
        } else {
            buf[at++] = (char)c;
        }
    }
    buf[at++] = '"';
    buf[at] = '\0';
    return buf;
}

/* What a node is, for "X is <this>; expected Y": the quoted value of a scalar, else its kind. */
const char *ks_config_describe(const yaml_node_t *n, char *buf, size_t size)
{
    if (n->type == YAML_SCALAR_NODE && !ks_config_is_null(n))
        return ks_config_show(n, buf, size);
    return ks_config_kind(n);
}

const char *ks_config_where(const char *path)
{
    return *path ? path : "top level";
}

/* A path that does not fit ends in "..."; it only names the place in a message. */
static const char *mark_truncated(char *out, int len)
{
    if (len < 0 || len >= KS_CONFIG_PATH_LEN)
        memcpy(out + KS_CONFIG_PATH_LEN - 4, "...", 4);
    return out;
}

const char *ks_config_join_path(char *out, const char *base, const char *key)
{
    return mark_truncated(out,
                          snprintf(out, KS_CONFIG_PATH_LEN, "%s%s%s", base, *base ? "." : "", key));
}

const char *ks_config_index_path(char *out, const char *base, size_t i)
{
    return mark_truncated(out, snprintf(out, KS_CONFIG_PATH_LEN, "%s[%zu]", base, i));
}

static void list_keys(char *out, size_t size, const struct ks_config_field *f, size_t n,
                      unsigned mask)
{
    size_t i, at = 0;
    out[0] = '\0';
    for (i = 0; i < n; i++) {
        int len;
        if (!(mask & KS_CONFIG_BIT(i)))
            continue;
        len = snprintf(out + at, size - at, "%s%s", at ? ", " : "", f[i].key);
        if (len < 0 || (size_t)len >= size - at)
            return;
        at += (size_t)len;
    }
}

/* The value of key in a mapping (first occurrence), or NULL. */
yaml_node_t *ks_config_map_value(struct ks_config_parser *p, yaml_node_t *map, const char *key)
{
    yaml_node_pair_t *pair;
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = ks_config_node(p, pair->key);
        if (k && ks_config_scalar_is(k, key))
            return ks_config_node(p, pair->value);
    }
    return NULL;
}

/*
 * Matches the keys of a mapping against the allowed fields. Reports a non-mapping node, keys that
 * are not scalars, repeated keys (libyaml's document API accepts them; the later one is reported
 * and ignored) and unknown keys. Fills f[i].key_node and f[i].value (NULL when absent).
 * Returns 0 when node is a mapping, -1 otherwise.
 */
int ks_config_get_fields(struct ks_config_parser *p, yaml_node_t *map, const char *path,
                         struct ks_config_field *f, size_t n)
{
    yaml_node_pair_t *pair, *prev;
    char keys[KS_CONFIG_PATH_LEN * 2];
    char shown[KS_CONFIG_SHOW_LEN];
    size_t i;

    for (i = 0; i < n; i++)
        f[i].key_node = f[i].value = NULL;
    if (map->type != YAML_MAPPING_NODE) {
        ks_config_error(p, map, "%s is %s; expected a mapping", ks_config_where(path),
                        ks_config_kind(map));
        return -1;
    }
    for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = ks_config_node(p, pair->key), *v = ks_config_node(p, pair->value);
        yaml_node_t *first = NULL;
        if (!k || !v)
            continue;
        if (k->type != YAML_SCALAR_NODE) {
            ks_config_error(p, k, "%s has a key that is %s; expected a plain key name",
                            ks_config_where(path), ks_config_kind(k));
            continue;
        }
        for (prev = map->data.mapping.pairs.start; prev < pair && !first; prev++) {
            yaml_node_t *pk = ks_config_node(p, prev->key);
            if (pk && pk->type == YAML_SCALAR_NODE &&
                pk->data.scalar.length == k->data.scalar.length &&
                memcmp(pk->data.scalar.value, k->data.scalar.value, k->data.scalar.length) == 0)
                first = pk;
        }
        if (first) {
            ks_config_error(p, k,
                            "%s: duplicate key %s (first at line %zu); expected each key once",
                            ks_config_where(path), ks_config_show(k, shown, sizeof shown),
                            first->start_mark.line + 1);
            continue;
        }
        for (i = 0; i < n && !ks_config_scalar_is(k, f[i].key); i++)
            ;
        if (i == n) {
            if (n == 0) {
                ks_config_error(p, k, "%s: unknown key %s; expected an empty mapping {}",
                                ks_config_where(path), ks_config_show(k, shown, sizeof shown));
            } else {
                list_keys(keys, sizeof keys, f, n, ~0u);
                ks_config_error(p, k, "%s: unknown key %s; expected one of %s",
                                ks_config_where(path), ks_config_show(k, shown, sizeof shown),
                                keys);
            }
            continue;
        }
        f[i].key_node = k;
        f[i].value = v;
    }
    return 0;
}

/* Reports keys present but not valid for the chosen variant (e.g. key_file on an aws one). */
void ks_config_reject_fields(struct ks_config_parser *p, const char *path,
                             const struct ks_config_field *f, size_t n, unsigned allowed,
                             const char *variant)
{
    char keys[KS_CONFIG_PATH_LEN * 2];
    size_t i;

    for (i = 0; i < n; i++) {
        if (!f[i].value || (allowed & KS_CONFIG_BIT(i)))
            continue;
        list_keys(keys, sizeof keys, f, n, allowed);
        ks_config_error(p, f[i].key_node, "%s: key \"%s\" is not valid for %s; expected only %s",
                        ks_config_where(path), f[i].key, variant, keys);
    }
}

yaml_node_t *ks_config_require(struct ks_config_parser *p, yaml_node_t *map, const char *path,
                               const struct ks_config_field *f, const char *expect)
{
    if (!f->value)
        ks_config_error(p, map, "%s: missing required key \"%s\"; expected %s",
                        ks_config_where(path), f->key, expect);
    return f->value;
}

char *ks_config_dup(struct ks_config_parser *p, const char *s)
{
    char *d = strdup(s);
    if (!d)
        p->oom = 1;
    return d;
}

/*
 * A non-empty scalar without NUL (a double-quoted "\0" can put one in; C strings would silently
 * cut it). Returns a malloc'd copy or NULL (error reported). Never echoes the value, so it is safe
 * for secrets.
 */
char *ks_config_get_string(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                           const char *expect)
{
    if (n->type != YAML_SCALAR_NODE || ks_config_is_null(n)) {
        ks_config_error(p, n, "%s is %s; expected %s", path, ks_config_kind(n), expect);
        return NULL;
    }
    if (n->data.scalar.length == 0) {
        ks_config_error(p, n, "%s is empty; expected %s", path, expect);
        return NULL;
    }
    if (memchr(n->data.scalar.value, '\0', n->data.scalar.length)) {
        ks_config_error(p, n, "%s contains a NUL character; expected %s", path, expect);
        return NULL;
    }
    return ks_config_dup(p, ks_config_text(n));
}

/* An unsigned decimal integer in min..max. Quoted scalars are strings in YAML, not numbers. */
int ks_config_get_uint(struct ks_config_parser *p, yaml_node_t *n, const char *path, uint64_t min,
                       uint64_t max, uint64_t *out)
{
    char shown[KS_CONFIG_SHOW_LEN];
    const char *s;
    uint64_t v = 0;
    int negative = 0, overflow = 0;

    if (n->type != YAML_SCALAR_NODE || ks_config_is_null(n) ||
        n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        ks_config_error(p, n, "%s is %s%s; expected an integer in %" PRIu64 "..%" PRIu64, path,
                        n->type == YAML_SCALAR_NODE && !ks_config_is_null(n) ? "the string " : "",
                        ks_config_describe(n, shown, sizeof shown), min, max);
        return -1;
    }
    s = ks_config_text(n);
    if (*s == '-' || *s == '+')
        negative = *s++ == '-';
    if (*s == '\0' || strspn(s, "0123456789") != strlen(s) ||
        (size_t)(s - ks_config_text(n)) + strlen(s) != n->data.scalar.length) {
        ks_config_error(p, n, "%s is %s; expected an integer in %" PRIu64 "..%" PRIu64, path,
                        ks_config_show(n, shown, sizeof shown), min, max);
        return -1;
    }
    for (; *s; s++) {
        unsigned digit = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - digit) / 10)
            overflow = 1;
        else
            v = v * 10 + digit;
    }
    if (overflow || (negative && v != 0) || v < min || v > max) {
        ks_config_error(p, n,
                        "%s is %s, out of range; expected an integer in %" PRIu64 "..%" PRIu64,
                        path, ks_config_show(n, shown, sizeof shown), min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* Names of relationships, key stores and tenants: they appear in URLs and logs. */
static int valid_name(const char *s)
{
    size_t len = strlen(s);
    return len >= 1 && len <= 64 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

char *ks_config_get_name(struct ks_config_parser *p, yaml_node_t *n, const char *path)
{
    char shown[KS_CONFIG_SHOW_LEN];
    char *s = ks_config_get_string(p, n, path, "a name of 1..64 characters from A-Z a-z 0-9 _ . -");
    /* Kept even when invalid, so that references to it do not add errors of their own. */
    if (s && !valid_name(s))
        ks_config_error(
            p, n, "%s %s is not a valid name; expected 1..64 characters from A-Z a-z 0-9 _ . -",
            path, ks_config_show(n, shown, sizeof shown));
    return s;
}

/*
 * AWS regions are lowercase letters, digits and '-'. The region becomes part of a host name and of
 * the SigV4 credential scope, so anything else is refused here rather than sent over the network.
 */
char *ks_config_get_region(struct ks_config_parser *p, yaml_node_t *n, const char *path)
{
    char shown[KS_CONFIG_SHOW_LEN];
    char *s = ks_config_get_string(p, n, path, "an AWS region such as us-west-2");
    size_t len;
    if (!s)
        return NULL;
    len = strlen(s);
    if (len > 64 || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != len) {
        ks_config_error(p, n,
                        "%s %s is not a valid AWS region; expected lowercase letters, digits and - "
                        "(such as us-west-2)",
                        path, ks_config_show(n, shown, sizeof shown));
    }
    return s;
}

char *ks_config_get_endpoint(struct ks_config_parser *p, yaml_node_t *n, const char *path)
{
    char shown[KS_CONFIG_SHOW_LEN];
    char *s = ks_config_get_string(p, n, path, "an http:// or https:// URL");
    const char *rest = NULL;
    size_t i;
    int ok;

    if (!s)
        return NULL;
    if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    ok = rest && *rest && *rest != '/';
    for (i = 0; ok && s[i]; i++)
        ok = (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f;
    if (!ok)
        ks_config_error(p, n, "%s %s is not a URL; expected an http:// or https:// URL with a host",
                        path, ks_config_show(n, shown, sizeof shown));
    return s;
}

/* Items of a required, non-empty list; NULL (error reported) otherwise. */
yaml_node_item_t *ks_config_list_items(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                                       const char *what, size_t *count)
{
    *count = 0;
    if (n->type != YAML_SEQUENCE_NODE) {
        ks_config_error(p, n, "%s is %s; expected a list of %s", path, ks_config_kind(n), what);
        return NULL;
    }
    *count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (*count == 0) {
        ks_config_error(p, n, "%s is empty; expected a non-empty list of %s", path, what);
        return NULL;
    }
    return n->data.sequence.items.start;
}

/* Reports that item `later` of a list repeats `key`'s value of item `earlier`. */
void ks_config_report_duplicate(struct ks_config_parser *p, yaml_node_t *list, const char *section,
                                size_t earlier, size_t later, const char *key)
{
    yaml_node_item_t *items = list->data.sequence.items.start;
    yaml_node_t *first = ks_config_map_value(p, ks_config_node(p, items[earlier]), key);
    yaml_node_t *again = ks_config_map_value(p, ks_config_node(p, items[later]), key);
    char shown[KS_CONFIG_SHOW_LEN];

    if (!first || !again)
        return;
    ks_config_error(p, again,
                    "%s[%zu].%s %s is already used by %s[%zu] (line %zu); expected a unique %s",
                    section, later, key, ks_config_show(again, shown, sizeof shown), section,
                    earlier, first->start_mark.line + 1, key);
}
