/*
 * config.c - YAML (libyaml document API) -> one immutable, validated struct ks_config
 * (docs/architecture.md section 4).
 *
 * The whole file is loaded into a libyaml document first, then walked by schema-driven functions
 * that fill the struct and record every problem they meet instead of stopping at the first one:
 * an operator fixing a config wants the full list at once (docs/architecture.md section 4, "Invalid
 * config stops the start with every error listed"). Each error carries the 1-based line and column
 * of the offending node; the list is sorted by position before it is returned. Any error discards
 * the partially built struct, so a returned config is always complete and valid.
 *
 * Values that are secrets (static credentials, grant tokens) or stand in for them (tenant token
 * hashes) are never echoed into messages, and the scalar buffers of the libyaml document are wiped
 * before they are freed.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <yaml.h>

#include "common/secret.h"
#include "common/util.h"

/* Longest dotted path of a node in messages ("key_stores[12].storage.credentials.source"). */
#define PATH_LEN 160
/* Longest echo of a user value in a message, quotes and escapes included. */
#define SHOW_LEN 200
/* A config file larger than this is surely a mistake (and would only waste memory). */
#define MAX_FILE_BYTES (16u * 1024u * 1024u)

/* Grant tokens: at most 10, each 1..8192 characters (MPL M/Index.dfy; the KMS API's own limits). */
#define MAX_GRANT_TOKENS 10
#define MAX_GRANT_TOKEN_CHARS 8192
/* docs/reference/branch-key-store.md section 7: an ARN is 1..2048 characters. */
#define MAX_ARN_CHARS 2048
/*
 * The MPL models the cache counts and durations as CountingNumber (int32 >= 1); ttlSeconds is a
 * PositiveLong, but we bound it to int32 too so that ttl * 1e6 microseconds cannot overflow.
 */
#define CACHE_MAX 2147483647u

#define LOCAL_ARN_PREFIX "arn:aws:kms:local:000000000000:key/"

struct config_error {
    size_t line;
    size_t column;
    size_t seq; /* insertion order, to keep the sort stable */
    char *text;
};

struct parser {
    const char *name; /* file name used in messages */
    yaml_document_t *doc;
    struct ks_config *cfg;
    struct config_error *errors;
    size_t n_errors;
    size_t cap_errors;
    int oom;
    /* Set once kms_relationships / key_stores parsed as lists: only then can references into
     * them be checked (otherwise every reference would add a second, misleading error). */
    int have_relationships;
    int have_key_stores;
};

/* One allowed key of a mapping and, after get_fields, where it was found. */
struct field {
    const char *key;
    yaml_node_t *key_node;
    yaml_node_t *value;
};

#define BIT(i) (1u << (i))

/* ---------------------------------------------------------------------------------------- */
/* Error list                                                                               */
/* ---------------------------------------------------------------------------------------- */

static void add_error_va(struct parser *p, size_t line, size_t column, const char *fmt, va_list ap)
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
        struct config_error *grown = realloc(p->errors, cap * sizeof *grown);
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

static void add_error_at(struct parser *p, size_t line, size_t column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_error_at(struct parser *p, size_t line, size_t column, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error_va(p, line, column, fmt, ap);
    va_end(ap);
}

/* Reports a problem at a node; libyaml marks are 0-based, messages are 1-based. */
static void add_error(struct parser *p, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_error(struct parser *p, const yaml_node_t *node, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error_va(p, node->start_mark.line + 1, node->start_mark.column + 1, fmt, ap);
    va_end(ap);
}

static int compare_errors(const void *a, const void *b)
{
    const struct config_error *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->column != y->column)
        return x->column < y->column ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* Sorted, one error per line, each line ending in '\n'. NULL on OOM. */
static char *join_errors(struct parser *p)
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

static void free_errors(struct parser *p)
{
    size_t i;
    for (i = 0; i < p->n_errors; i++)
        free(p->errors[i].text);
    free(p->errors);
    p->errors = NULL;
    p->n_errors = p->cap_errors = 0;
}

/* Out-of-band text for errors that happen before or without a parser (OOM, unreadable file). */
static char *format_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *format_text(const char *fmt, ...)
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

static yaml_node_t *node_at(struct parser *p, int id)
{
    return yaml_document_get_node(p->doc, id);
}

static const char *scalar_text(const yaml_node_t *n)
{
    /* libyaml NUL-terminates every scalar value. */
    return (const char *)n->data.scalar.value;
}

static int scalar_eq(const yaml_node_t *n, const char *s)
{
    size_t len = strlen(s);
    return n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
           memcmp(n->data.scalar.value, s, len) == 0;
}

/* YAML 1.1 core null: an empty or ~/null plain scalar ("key:" with nothing after it). */
static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    return n->data.scalar.length == 0 || scalar_eq(n, "~") || scalar_eq(n, "null") ||
           scalar_eq(n, "Null") || scalar_eq(n, "NULL");
}

static const char *kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return is_null(n) ? "empty" : "a scalar";
    }
}

/*
 * A scalar quoted for a message, escaped so that one error stays on one line, truncated to fit.
 * Never call this on a secret (credentials, grant tokens, token hashes).
 */
static const char *show(const yaml_node_t *n, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
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
            buf[at++] = hex[c >> 4];
            buf[at++] = hex[c & 15];
        } else {
            buf[at++] = (char)c;
        }
    }
    buf[at++] = '"';
    buf[at] = '\0';
    return buf;
}

/* What a node is, for "X is <this>; expected Y": the quoted value of a scalar, else its kind. */
static const char *describe(const yaml_node_t *n, char *buf, size_t size)
{
    if (n->type == YAML_SCALAR_NODE && !is_null(n))
        return show(n, buf, size);
    return kind(n);
}

static const char *where(const char *path)
{
    return *path ? path : "top level";
}

/* A path that does not fit ends in "..."; it only names the place in a message. */
static const char *mark_truncated(char *out, int len)
{
    if (len < 0 || len >= PATH_LEN)
        memcpy(out + PATH_LEN - 4, "...", 4);
    return out;
}

static const char *join_path(char *out, const char *base, const char *key)
{
    return mark_truncated(out, snprintf(out, PATH_LEN, "%s%s%s", base, *base ? "." : "", key));
}

static const char *index_path(char *out, const char *base, size_t i)
{
    return mark_truncated(out, snprintf(out, PATH_LEN, "%s[%zu]", base, i));
}

static void list_keys(char *out, size_t size, const struct field *f, size_t n, unsigned mask)
{
    size_t i, at = 0;
    out[0] = '\0';
    for (i = 0; i < n; i++) {
        int len;
        if (!(mask & BIT(i)))
            continue;
        len = snprintf(out + at, size - at, "%s%s", at ? ", " : "", f[i].key);
        if (len < 0 || (size_t)len >= size - at)
            return;
        at += (size_t)len;
    }
}

/* The value of key in a mapping (first occurrence), or NULL. */
static yaml_node_t *map_value(struct parser *p, yaml_node_t *map, const char *key)
{
    yaml_node_pair_t *pair;
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = node_at(p, pair->key);
        if (k && scalar_eq(k, key))
            return node_at(p, pair->value);
    }
    return NULL;
}

/*
 * Matches the keys of a mapping against the allowed fields. Reports a non-mapping node, keys that
 * are not scalars, repeated keys (libyaml's document API accepts them; the later one is reported
 * and ignored) and unknown keys. Fills f[i].key_node and f[i].value (NULL when absent).
 * Returns 0 when node is a mapping, -1 otherwise.
 */
static int get_fields(struct parser *p, yaml_node_t *map, const char *path, struct field *f,
                      size_t n)
{
    yaml_node_pair_t *pair, *prev;
    char keys[PATH_LEN * 2];
    char shown[SHOW_LEN];
    size_t i;

    for (i = 0; i < n; i++)
        f[i].key_node = f[i].value = NULL;
    if (map->type != YAML_MAPPING_NODE) {
        add_error(p, map, "%s is %s; expected a mapping", where(path), kind(map));
        return -1;
    }
    for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = node_at(p, pair->key), *v = node_at(p, pair->value);
        yaml_node_t *first = NULL;
        if (!k || !v)
            continue;
        if (k->type != YAML_SCALAR_NODE) {
            add_error(p, k, "%s has a key that is %s; expected a plain key name", where(path),
                      kind(k));
            continue;
        }
        for (prev = map->data.mapping.pairs.start; prev < pair && !first; prev++) {
            yaml_node_t *pk = node_at(p, prev->key);
            if (pk && pk->type == YAML_SCALAR_NODE &&
                pk->data.scalar.length == k->data.scalar.length &&
                memcmp(pk->data.scalar.value, k->data.scalar.value, k->data.scalar.length) == 0)
                first = pk;
        }
        if (first) {
            add_error(p, k, "%s: duplicate key %s (first at line %zu); expected each key once",
                      where(path), show(k, shown, sizeof shown), first->start_mark.line + 1);
            continue;
        }
        for (i = 0; i < n && !scalar_eq(k, f[i].key); i++)
            ;
        if (i == n) {
            if (n == 0) {
                add_error(p, k, "%s: unknown key %s; expected an empty mapping {}", where(path),
                          show(k, shown, sizeof shown));
            } else {
                list_keys(keys, sizeof keys, f, n, ~0u);
                add_error(p, k, "%s: unknown key %s; expected one of %s", where(path),
                          show(k, shown, sizeof shown), keys);
            }
            continue;
        }
        f[i].key_node = k;
        f[i].value = v;
    }
    return 0;
}

/* Reports keys present but not valid for the chosen variant (e.g. key_file on an aws one). */
static void reject_fields(struct parser *p, const char *path, const struct field *f, size_t n,
                          unsigned allowed, const char *variant)
{
    char keys[PATH_LEN * 2];
    size_t i;

    for (i = 0; i < n; i++) {
        if (!f[i].value || (allowed & BIT(i)))
            continue;
        list_keys(keys, sizeof keys, f, n, allowed);
        add_error(p, f[i].key_node, "%s: key \"%s\" is not valid for %s; expected only %s",
                  where(path), f[i].key, variant, keys);
    }
}

static yaml_node_t *require(struct parser *p, yaml_node_t *map, const char *path,
                            const struct field *f, const char *expect)
{
    if (!f->value)
        add_error(p, map, "%s: missing required key \"%s\"; expected %s", where(path), f->key,
                  expect);
    return f->value;
}

static char *dup_string(struct parser *p, const char *s)
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
static char *get_string(struct parser *p, yaml_node_t *n, const char *path, const char *expect)
{
    if (n->type != YAML_SCALAR_NODE || is_null(n)) {
        add_error(p, n, "%s is %s; expected %s", path, kind(n), expect);
        return NULL;
    }
    if (n->data.scalar.length == 0) {
        add_error(p, n, "%s is empty; expected %s", path, expect);
        return NULL;
    }
    if (memchr(n->data.scalar.value, '\0', n->data.scalar.length)) {
        add_error(p, n, "%s contains a NUL character; expected %s", path, expect);
        return NULL;
    }
    return dup_string(p, scalar_text(n));
}

/* An unsigned decimal integer in min..max. Quoted scalars are strings in YAML, not numbers. */
static int get_uint(struct parser *p, yaml_node_t *n, const char *path, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    char shown[SHOW_LEN];
    const char *s;
    uint64_t v = 0;
    int negative = 0, overflow = 0;

    if (n->type != YAML_SCALAR_NODE || is_null(n) ||
        n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        add_error(p, n, "%s is %s%s; expected an integer in %" PRIu64 "..%" PRIu64, path,
                  n->type == YAML_SCALAR_NODE && !is_null(n) ? "the string " : "",
                  describe(n, shown, sizeof shown), min, max);
        return -1;
    }
    s = scalar_text(n);
    if (*s == '-' || *s == '+')
        negative = *s++ == '-';
    if (*s == '\0' || strspn(s, "0123456789") != strlen(s) ||
        (size_t)(s - scalar_text(n)) + strlen(s) != n->data.scalar.length) {
        add_error(p, n, "%s is %s; expected an integer in %" PRIu64 "..%" PRIu64, path,
                  show(n, shown, sizeof shown), min, max);
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
        add_error(p, n, "%s is %s, out of range; expected an integer in %" PRIu64 "..%" PRIu64,
                  path, show(n, shown, sizeof shown), min, max);
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

static char *get_name(struct parser *p, yaml_node_t *n, const char *path)
{
    char shown[SHOW_LEN];
    char *s = get_string(p, n, path, "a name of 1..64 characters from A-Z a-z 0-9 _ . -");
    /* Kept even when invalid, so that references to it do not add errors of their own. */
    if (s && !valid_name(s))
        add_error(p, n,
                  "%s %s is not a valid name; expected 1..64 characters from A-Z a-z 0-9 _ . -",
                  path, show(n, shown, sizeof shown));
    return s;
}

/*
 * AWS regions are lowercase letters, digits and '-'. The region becomes part of a host name and of
 * the SigV4 credential scope, so anything else is refused here rather than sent over the network.
 */
static char *get_region(struct parser *p, yaml_node_t *n, const char *path)
{
    char shown[SHOW_LEN];
    char *s = get_string(p, n, path, "an AWS region such as us-west-2");
    size_t len;
    if (!s)
        return NULL;
    len = strlen(s);
    if (len > 64 || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != len) {
        add_error(p, n,
                  "%s %s is not a valid AWS region; expected lowercase letters, digits and - "
                  "(such as us-west-2)",
                  path, show(n, shown, sizeof shown));
    }
    return s;
}

static char *get_endpoint(struct parser *p, yaml_node_t *n, const char *path)
{
    char shown[SHOW_LEN];
    char *s = get_string(p, n, path, "an http:// or https:// URL");
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
        add_error(p, n, "%s %s is not a URL; expected an http:// or https:// URL with a host", path,
                  show(n, shown, sizeof shown));
    return s;
}

/* ---------------------------------------------------------------------------------------- */
/* listen                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static const char listen_oom[] = "out of memory";

/* RFC 1123 host name: dot-separated labels of 1..63 letters, digits and '-', no edge '-'. */
static int valid_hostname(const char *s)
{
    size_t len = strlen(s), label = 0, i;
    if (len == 0 || len > 253)
        return 0;
    for (i = 0; i <= len; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   (c == '-' && label > 0)) {
            label++;
        } else {
            return 0;
        }
    }
    return 1;
}

/* A host as the server binds it: IPv6 literal (no brackets), IPv4 literal or host name. */
static const char *check_host(const char *host)
{
    unsigned char addr[16];
    if (strchr(host, ':'))
        return inet_pton(AF_INET6, host, addr) == 1 ? NULL : "has an invalid IPv6 address";
    if (strspn(host, "0123456789.") == strlen(host))
        return inet_pton(AF_INET, host, addr) == 1 ? NULL : "has an invalid IPv4 address";
    return valid_hostname(host) ? NULL : "has an invalid host name";
}

/*
 * Splits "host:port", "[ipv6]:port". Returns NULL and a malloc'd host (brackets removed) on
 * success, else a static description of the problem (listen_oom when allocation failed).
 */
static const char *split_listen(const char *s, char **host, uint16_t *port)
{
    const char *h = s, *colon, *problem;
    size_t host_len, i, digits;
    unsigned long value = 0;
    char *copy;

    *host = NULL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return "has no closing ] after the IPv6 address";
        if (close[1] != ':')
            return "has no :port after the IPv6 address";
        h = s + 1;
        host_len = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return "has no :port";
        host_len = (size_t)(colon - s);
        if (memchr(s, ':', host_len))
            return "has an IPv6 address without brackets";
    }
    if (host_len == 0)
        return "has no host";
    digits = strlen(colon + 1);
    if (digits == 0 || digits > 5 || strspn(colon + 1, "0123456789") != digits)
        return "has a port that is not a number in 0..65535";
    for (i = 1; i <= digits; i++)
        value = value * 10 + (unsigned long)(colon[i] - '0');
    if (value > 65535)
        return "has a port that is not a number in 0..65535";
    copy = strndup(h, host_len);
    if (!copy)
        return listen_oom;
    problem = check_host(copy);
    if (s[0] == '[' && !problem && !strchr(copy, ':'))
        problem = "has brackets around something that is not an IPv6 address";
    if (problem) {
        free(copy);
        return problem;
    }
    *host = copy;
    *port = (uint16_t)value;
    return NULL;
}

ks_status ks_config_parse_listen(const char *text, char **host, uint16_t *port,
                                 struct ks_error *err)
{
    const char *problem;
    if (!text || !host || !port)
        return ks_error_set(err, KS_E_INVALID, "listen address missing");
    problem = split_listen(text, host, port);
    if (problem == listen_oom)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    if (problem)
        return ks_error_set(err, KS_E_INVALID, "listen address %s; expected host:port", problem);
    return KS_OK;
}

static void parse_listen(struct parser *p, yaml_node_t *n)
{
    char shown[SHOW_LEN];
    const char *problem;
    char *text = get_string(p, n, "listen", "host:port such as 127.0.0.1:8080");
    char *host = NULL;
    uint16_t port = 0;

    if (!text)
        return;
    problem = split_listen(text, &host, &port);
    if (problem == listen_oom) {
        p->oom = 1;
    } else if (problem) {
        add_error(p, n,
                  "listen %s %s; expected host:port with an IPv4 address, a host name or a "
                  "quoted \"[IPv6]:port\", port 0..65535",
                  show(n, shown, sizeof shown), problem);
    } else {
        free(p->cfg->listen_host);
        p->cfg->listen_host = host;
        p->cfg->listen_port = port;
    }
    free(text);
}

/* ---------------------------------------------------------------------------------------- */
/* server and cache                                                                         */
/* ---------------------------------------------------------------------------------------- */

static void parse_server(struct parser *p, yaml_node_t *n)
{
    enum {
        SV_THREADS,
        SV_BODY,
        SV_DEPTH,
        SV_TIMEOUT,
        SV_MAX_CONN,
        SV_MAX_CONN_IP,
        SV_HEADER_TIMEOUT,
        SV_MAX_URI,
        SV_MAX_HEADER,
        SV_READY_INTERVAL,
        SV_READY_TIMEOUT,
        SV_COUNT
    };
    struct field f[SV_COUNT] = {
        [SV_THREADS] = {.key = "threads"},
        [SV_BODY] = {.key = "max_body_bytes"},
        [SV_DEPTH] = {.key = "max_json_depth"},
        [SV_TIMEOUT] = {.key = "connection_timeout_seconds"},
        [SV_MAX_CONN] = {.key = "max_connections"},
        [SV_MAX_CONN_IP] = {.key = "max_connections_per_ip"},
        [SV_HEADER_TIMEOUT] = {.key = "header_timeout_seconds"},
        [SV_MAX_URI] = {.key = "max_uri_bytes"},
        [SV_MAX_HEADER] = {.key = "max_header_bytes"},
        [SV_READY_INTERVAL] = {.key = "readiness_interval_ms"},
        [SV_READY_TIMEOUT] = {.key = "readiness_timeout_ms"},
    };
    static const uint64_t min[SV_COUNT] = {1, 1024, 2, 1, 0, 0, 1, 256, 1024, 100, 100};
    static const uint64_t max[SV_COUNT] = {256,  16777216, 64,      3600,    1000000, 1000000,
                                           3600, 1048576,  1048576, 3600000, 60000};
    struct ks_server_config *s = &p->cfg->server;
    char path[PATH_LEN];
    uint64_t v[SV_COUNT];
    size_t i;

    if (get_fields(p, n, "server", f, SV_COUNT) < 0)
        return;
    for (i = 0; i < SV_COUNT; i++) {
        if (!f[i].value ||
            get_uint(p, f[i].value, join_path(path, "server", f[i].key), min[i], max[i], &v[i]))
            continue;
        switch (i) {
        case SV_THREADS:
            s->threads = (unsigned)v[i];
            break;
        case SV_BODY:
            s->max_body_bytes = (size_t)v[i];
            break;
        case SV_DEPTH:
            s->max_json_depth = (unsigned)v[i];
            break;
        case SV_TIMEOUT:
            s->connection_timeout_seconds = (unsigned)v[i];
            break;
        case SV_MAX_CONN:
            s->max_connections = (unsigned)v[i];
            break;
        case SV_MAX_CONN_IP:
            s->max_connections_per_ip = (unsigned)v[i];
            break;
        case SV_HEADER_TIMEOUT:
            s->header_timeout_seconds = (unsigned)v[i];
            break;
        case SV_MAX_URI:
            s->max_uri_bytes = (size_t)v[i];
            break;
        case SV_MAX_HEADER:
            s->max_header_bytes = (size_t)v[i];
            break;
        case SV_READY_INTERVAL:
            s->readiness_interval_ms = (unsigned)v[i];
            break;
        default:
            s->readiness_timeout_ms = (unsigned)v[i];
            break;
        }
    }
}

static yaml_node_t *first_of(yaml_node_t *a, yaml_node_t *b, yaml_node_t *fallback)
{
    return a ? a : b ? b : fallback;
}

/*
 * Cache settings and their consistency rules (docs/reference/cache.md section 4: SPEC storm
 * tracking "Consistency", MPL ConsistentSettings and CheckCache).
 */
static void parse_cache(struct parser *p, yaml_node_t *n)
{
    enum { C_CAPACITY, C_TTL, C_PERIOD, C_INTERVAL, C_FAN_OUT, C_IN_FLIGHT, C_COUNT };
    struct field f[C_COUNT] = {
        [C_CAPACITY] = {.key = "capacity"},
        [C_TTL] = {.key = "ttl_seconds"},
        [C_PERIOD] = {.key = "grace_period_seconds"},
        [C_INTERVAL] = {.key = "grace_interval_seconds"},
        [C_FAN_OUT] = {.key = "fan_out"},
        [C_IN_FLIGHT] = {.key = "in_flight_ttl_seconds"},
    };
    struct ks_cache_config *c = &p->cfg->cache;
    uint64_t *dst[C_COUNT] = {&c->capacity,
                              &c->ttl_seconds,
                              &c->grace_period_seconds,
                              &c->grace_interval_seconds,
                              &c->fan_out,
                              &c->in_flight_ttl_seconds};
    char path[PATH_LEN];
    size_t i;
    int ok = 1;

    if (get_fields(p, n, "cache", f, C_COUNT) < 0)
        return;
    for (i = 0; i < C_COUNT; i++)
        if (f[i].value &&
            get_uint(p, f[i].value, join_path(path, "cache", f[i].key),
                     /* capacity 0 is the MPL's "No" cache (LocalCMC(0)): every get reads
                      * storage and KMS, concurrent misses still share one fetch */
                     i == C_CAPACITY ? 0 : 1, CACHE_MAX, dst[i]))
            ok = 0;
    if (!ok)
        return;
    /* Each rule is reported at the setting the operator wrote, else at the other one. */
    if (c->grace_interval_seconds > c->grace_period_seconds)
        add_error(p, first_of(f[C_INTERVAL].value, f[C_PERIOD].value, n),
                  "cache.grace_interval_seconds (%" PRIu64
                  ") is greater than cache.grace_period_seconds (%" PRIu64
                  "); expected grace_interval_seconds <= grace_period_seconds",
                  c->grace_interval_seconds, c->grace_period_seconds);
    if (c->in_flight_ttl_seconds > c->grace_period_seconds)
        add_error(p, first_of(f[C_IN_FLIGHT].value, f[C_PERIOD].value, n),
                  "cache.in_flight_ttl_seconds (%" PRIu64
                  ") is greater than cache.grace_period_seconds (%" PRIu64
                  "); expected in_flight_ttl_seconds <= grace_period_seconds",
                  c->in_flight_ttl_seconds, c->grace_period_seconds);
    if (c->grace_interval_seconds > c->in_flight_ttl_seconds)
        add_error(p, first_of(f[C_INTERVAL].value, f[C_IN_FLIGHT].value, n),
                  "cache.grace_interval_seconds (%" PRIu64
                  ") is greater than cache.in_flight_ttl_seconds (%" PRIu64
                  "); expected grace_interval_seconds <= in_flight_ttl_seconds",
                  c->grace_interval_seconds, c->in_flight_ttl_seconds);
    if (c->ttl_seconds <= c->grace_period_seconds)
        add_error(p, first_of(f[C_TTL].value, f[C_PERIOD].value, n),
                  "cache.ttl_seconds (%" PRIu64
                  ") is not greater than cache.grace_period_seconds (%" PRIu64
                  "); expected ttl_seconds > grace_period_seconds",
                  c->ttl_seconds, c->grace_period_seconds);
}

/* ---------------------------------------------------------------------------------------- */
/* KMS relationships                                                                        */
/* ---------------------------------------------------------------------------------------- */

enum arn_check { ARN_OK = 0, ARN_INVALID, ARN_ALIAS };

/*
 * ARN validity of the key store (docs/reference/branch-key-store.md section 7; MPL
 * AwsArnParsing.dfy and KmsArn.dfy): 1..2048 characters, exactly 6 ':'-separated parts "arn",
 * partition, "kms", region, account, resource; resource is "<type>/<non-empty value>" with type key
 * or alias, and the key store refuses alias.
 */
static enum arn_check check_arn(const char *s, const char **detail)
{
    const char *part[6], *at = s, *slash;
    size_t len[6], count = 0, units = ks_utf8_utf16_length(s, strlen(s));

    if (units < 1 || units > MAX_ARN_CHARS) {
        *detail = "not 1..2048 characters long";
        return ARN_INVALID;
    }
    for (;;) {
        const char *colon = strchr(at, ':');
        if (count == 6) {
            count++;
            break;
        }
        part[count] = at;
        len[count] = colon ? (size_t)(colon - at) : strlen(at);
        count++;
        if (!colon)
            break;
        at = colon + 1;
    }
    if (count != 6) {
        *detail = "not exactly 6 ':'-separated parts";
        return ARN_INVALID;
    }
    if (len[0] != 3 || memcmp(part[0], "arn", 3) != 0) {
        *detail = "does not start with arn:";
        return ARN_INVALID;
    }
    if (len[1] == 0) {
        *detail = "empty partition";
        return ARN_INVALID;
    }
    if (len[2] != 3 || memcmp(part[2], "kms", 3) != 0) {
        *detail = "service is not kms";
        return ARN_INVALID;
    }
    if (len[3] == 0) {
        *detail = "empty region";
        return ARN_INVALID;
    }
    if (len[4] == 0) {
        *detail = "empty account";
        return ARN_INVALID;
    }
    slash = memchr(part[5], '/', len[5]);
    if (!slash || slash + 1 == part[5] + len[5]) {
        *detail = "resource is not key/<key id>";
        return ARN_INVALID;
    }
    if ((size_t)(slash - part[5]) == 5 && memcmp(part[5], "alias", 5) == 0)
        return ARN_ALIAS;
    if ((size_t)(slash - part[5]) != 3 || memcmp(part[5], "key", 3) != 0) {
        *detail = "resource is not key/<key id>";
        return ARN_INVALID;
    }
    return ARN_OK;
}

/* The local KMS names its keys arn:aws:kms:local:000000000000:key/<lowercase uuid>. */
static int valid_local_arn(const char *s)
{
    size_t prefix = sizeof LOCAL_ARN_PREFIX - 1;
    return strncmp(s, LOCAL_ARN_PREFIX, prefix) == 0 && ks_uuid_is_valid(s + prefix);
}

static char *get_arn(struct parser *p, yaml_node_t *n, const char *path, int local)
{
    char shown[SHOW_LEN];
    const char *detail = "";
    char *s = get_string(p, n, path, "a KMS key ARN");
    enum arn_check check;

    if (!s)
        return NULL;
    check = check_arn(s, &detail);
    if (check == ARN_ALIAS)
        add_error(p, n, "%s: KMS alias ARN not allowed; expected a key ARN", path);
    else if (check == ARN_INVALID)
        add_error(p, n,
                  "%s %s is not a valid KMS key ARN (%s); expected "
                  "arn:<partition>:kms:<region>:<account>:key/<key id>",
                  path, show(n, shown, sizeof shown), detail);
    else if (local && !valid_local_arn(s))
        add_error(p, n,
                  "%s %s is not a local KMS key ARN; expected " LOCAL_ARN_PREFIX "<lowercase UUID>",
                  path, show(n, shown, sizeof shown));
    return s;
}

/* KMSConfiguration union (docs/reference/branch-key-store.md section 7): exactly one member. */
static void parse_kms_configuration(struct parser *p, yaml_node_t *n, const char *path,
                                    struct ks_kms_config *kms, int local)
{
    enum { K_KEY_ARN, K_MR_KEY_ARN, K_DISCOVERY, K_MR_DISCOVERY, K_COUNT };
    static const enum ks_kms_config_kind kinds[K_COUNT] = {KS_KMS_KEY_ARN, KS_KMS_MR_KEY_ARN,
                                                           KS_KMS_DISCOVERY, KS_KMS_MR_DISCOVERY};
    struct field f[K_COUNT] = {
        [K_KEY_ARN] = {.key = "kms_key_arn"},
        [K_MR_KEY_ARN] = {.key = "kms_mr_key_arn"},
        [K_DISCOVERY] = {.key = "discovery"},
        [K_MR_DISCOVERY] = {.key = "mr_discovery"},
    };
    const char *one_of = "exactly one of kms_key_arn, kms_mr_key_arn, discovery, mr_discovery";
    char sub[PATH_LEN], region_path[PATH_LEN];
    int first = -1, i;

    if (get_fields(p, n, path, f, K_COUNT) < 0)
        return;
    for (i = 0; i < K_COUNT; i++) {
        if (!f[i].value)
            continue;
        if (first < 0)
            first = i;
        else
            add_error(p, f[i].key_node, "%s has both %s and %s; expected %s", path, f[first].key,
                      f[i].key, one_of);
    }
    if (first < 0) {
        add_error(p, n, "%s has no KMS configuration; expected %s", path, one_of);
        return;
    }
    kms->kind = kinds[first];
    join_path(sub, path, f[first].key);
    /* The local KMS has one kind of key and no multi-region keys or discovery. */
    if (local && first != K_KEY_ARN) {
        add_error(p, f[first].key_node,
                  "%s is not supported by a local relationship; expected kms_key_arn", sub);
        return;
    }
    switch (first) {
    case K_KEY_ARN:
    case K_MR_KEY_ARN:
        kms->arn = get_arn(p, f[first].value, sub, local);
        break;
    case K_DISCOVERY:
        if (!is_null(f[first].value))
            get_fields(p, f[first].value, sub, NULL, 0);
        break;
    default: {
        struct field r[1] = {{.key = "region"}};
        if (get_fields(p, f[first].value, sub, r, 1) < 0)
            break;
        if (require(p, f[first].value, sub, &r[0], "the region to decrypt in"))
            kms->region = get_region(p, r[0].value, join_path(region_path, sub, "region"));
        break;
    }
    }
}

static void parse_credentials(struct parser *p, yaml_node_t *n, const char *path,
                              struct ks_aws_credentials_options *cred)
{
    enum { CR_SOURCE, CR_PROFILE, CR_ACCESS_KEY_ID, CR_SECRET, CR_SESSION, CR_COUNT };
    static const struct {
        const char *name;
        enum ks_aws_cred_source source;
    } sources[] = {{"env", KS_AWS_CRED_ENV},
                   {"profile", KS_AWS_CRED_PROFILE},
                   {"container", KS_AWS_CRED_CONTAINER},
                   {"imds", KS_AWS_CRED_IMDS},
                   {"static", KS_AWS_CRED_STATIC}};
    struct field f[CR_COUNT] = {
        [CR_SOURCE] = {.key = "source"},
        [CR_PROFILE] = {.key = "profile"},
        [CR_ACCESS_KEY_ID] = {.key = "access_key_id"},
        [CR_SECRET] = {.key = "secret_access_key"},
        [CR_SESSION] = {.key = "session_token"},
    };
    const char *expect_source = "env, profile, container, imds or static";
    char sub[PATH_LEN], variant[32], shown[SHOW_LEN];
    unsigned allowed = BIT(CR_SOURCE);
    yaml_node_t *v;
    size_t i;

    if (get_fields(p, n, path, f, CR_COUNT) < 0)
        return;
    v = require(p, n, path, &f[CR_SOURCE], expect_source);
    if (!v)
        return;
    for (i = 0; i < sizeof sources / sizeof sources[0] && !scalar_eq(v, sources[i].name); i++)
        ;
    if (i == sizeof sources / sizeof sources[0]) {
        add_error(p, v, "%s is %s; expected %s", join_path(sub, path, "source"),
                  describe(v, shown, sizeof shown), expect_source);
        return;
    }
    cred->source = sources[i].source;
    if (cred->source == KS_AWS_CRED_PROFILE)
        allowed |= BIT(CR_PROFILE);
    if (cred->source == KS_AWS_CRED_STATIC)
        allowed |= BIT(CR_ACCESS_KEY_ID) | BIT(CR_SECRET) | BIT(CR_SESSION);
    snprintf(variant, sizeof variant, "source %s", sources[i].name);
    reject_fields(p, path, f, CR_COUNT, allowed, variant);

    if (cred->source == KS_AWS_CRED_PROFILE) {
        cred->profile = f[CR_PROFILE].value
                            ? get_string(p, f[CR_PROFILE].value, join_path(sub, path, "profile"),
                                         "an AWS profile name")
                            : dup_string(p, "default");
    } else if (cred->source == KS_AWS_CRED_STATIC) {
        if (require(p, n, path, &f[CR_ACCESS_KEY_ID], "an access key id"))
            cred->access_key_id =
                get_string(p, f[CR_ACCESS_KEY_ID].value, join_path(sub, path, "access_key_id"),
                           "an access key id");
        if (require(p, n, path, &f[CR_SECRET], "a secret access key"))
            cred->secret_access_key =
                get_string(p, f[CR_SECRET].value, join_path(sub, path, "secret_access_key"),
                           "a secret access key");
        if (f[CR_SESSION].value)
            cred->session_token = get_string(
                p, f[CR_SESSION].value, join_path(sub, path, "session_token"), "a session token");
    }
}

static void parse_grant_tokens(struct parser *p, yaml_node_t *n, const char *path,
                               struct ks_kms_rel_config *rel)
{
    yaml_node_item_t *item;
    size_t count;
    char sub[PATH_LEN];

    if (n->type != YAML_SEQUENCE_NODE) {
        add_error(p, n, "%s is %s; expected a list of at most %d grant tokens", path, kind(n),
                  MAX_GRANT_TOKENS);
        return;
    }
    count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > MAX_GRANT_TOKENS)
        add_error(p, n, "%s has %zu grant tokens; expected at most %d", path, count,
                  MAX_GRANT_TOKENS);
    if (count == 0)
        return;
    rel->grant_tokens = calloc(count, sizeof *rel->grant_tokens);
    if (!rel->grant_tokens) {
        p->oom = 1;
        return;
    }
    for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
        yaml_node_t *v = node_at(p, *item);
        char *s;
        size_t units;
        if (!v)
            continue;
        index_path(sub, path, (size_t)(item - n->data.sequence.items.start));
        s = get_string(p, v, sub, "a grant token of 1..8192 characters");
        if (!s)
            continue;
        rel->grant_tokens[rel->n_grant_tokens++] = s;
        /* The MPL counts characters in UTF-16 code units. */
        units = ks_utf8_utf16_length(s, strlen(s));
        if (units > MAX_GRANT_TOKEN_CHARS)
            add_error(p, v, "%s is %zu characters long; expected 1..%d characters", sub, units,
                      MAX_GRANT_TOKEN_CHARS);
    }
}

static void parse_relationship(struct parser *p, yaml_node_t *n, const char *path,
                               struct ks_kms_rel_config *rel)
{
    enum { R_NAME, R_TYPE, R_KEY_FILE, R_KMS, R_REGION, R_ENDPOINT, R_CREDS, R_GRANTS, R_COUNT };
    struct field f[R_COUNT] = {
        [R_NAME] = {.key = "name"},         [R_TYPE] = {.key = "type"},
        [R_KEY_FILE] = {.key = "key_file"}, [R_KMS] = {.key = "kms_configuration"},
        [R_REGION] = {.key = "region"},     [R_ENDPOINT] = {.key = "endpoint"},
        [R_CREDS] = {.key = "credentials"}, [R_GRANTS] = {.key = "grant_tokens"},
    };
    char sub[PATH_LEN], shown[SHOW_LEN];
    yaml_node_t *v;

    if (get_fields(p, n, path, f, R_COUNT) < 0)
        return;
    if (require(p, n, path, &f[R_NAME], "a unique relationship name"))
        rel->name = get_name(p, f[R_NAME].value, join_path(sub, path, "name"));
    v = require(p, n, path, &f[R_TYPE], "local or aws");
    if (!v)
        return;
    if (scalar_eq(v, "local")) {
        rel->type = KS_KMS_LOCAL;
        reject_fields(p, path, f, R_COUNT, BIT(R_NAME) | BIT(R_TYPE) | BIT(R_KEY_FILE) | BIT(R_KMS),
                      "a local relationship");
        if (require(p, n, path, &f[R_KEY_FILE], "the path of the local KMS key file"))
            rel->key_file =
                get_string(p, f[R_KEY_FILE].value, join_path(sub, path, "key_file"), "a file path");
        if (f[R_KMS].value) {
            rel->has_kms_configuration = 1;
            parse_kms_configuration(p, f[R_KMS].value, join_path(sub, path, "kms_configuration"),
                                    &rel->kms, 1);
        }
    } else if (scalar_eq(v, "aws")) {
        rel->type = KS_KMS_AWS;
        reject_fields(p, path, f, R_COUNT, ~BIT(R_KEY_FILE), "an aws relationship");
        if (require(p, n, path, &f[R_REGION], "the AWS region of KMS"))
            rel->region = get_region(p, f[R_REGION].value, join_path(sub, path, "region"));
        if (f[R_ENDPOINT].value)
            rel->endpoint = get_endpoint(p, f[R_ENDPOINT].value, join_path(sub, path, "endpoint"));
        if (require(p, n, path, &f[R_CREDS], "credentials: {source: ...}"))
            parse_credentials(p, f[R_CREDS].value, join_path(sub, path, "credentials"),
                              &rel->credentials);
        if (require(p, n, path, &f[R_KMS],
                    "kms_key_arn, kms_mr_key_arn, discovery or "
                    "mr_discovery")) {
            rel->has_kms_configuration = 1;
            parse_kms_configuration(p, f[R_KMS].value, join_path(sub, path, "kms_configuration"),
                                    &rel->kms, 0);
        }
        if (f[R_GRANTS].value)
            parse_grant_tokens(p, f[R_GRANTS].value, join_path(sub, path, "grant_tokens"), rel);
    } else {
        add_error(p, v, "%s is %s; expected local or aws", join_path(sub, path, "type"),
                  describe(v, shown, sizeof shown));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Lists of named entries                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Items of a required, non-empty list; NULL (error reported) otherwise. */
static yaml_node_item_t *list_items(struct parser *p, yaml_node_t *n, const char *path,
                                    const char *what, size_t *count)
{
    *count = 0;
    if (n->type != YAML_SEQUENCE_NODE) {
        add_error(p, n, "%s is %s; expected a list of %s", path, kind(n), what);
        return NULL;
    }
    *count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (*count == 0) {
        add_error(p, n, "%s is empty; expected a non-empty list of %s", path, what);
        return NULL;
    }
    return n->data.sequence.items.start;
}

/* Reports that item `later` of a list repeats `key`'s value of item `earlier`. */
static void report_duplicate(struct parser *p, yaml_node_t *list, const char *section,
                             size_t earlier, size_t later, const char *key)
{
    yaml_node_item_t *items = list->data.sequence.items.start;
    yaml_node_t *first = map_value(p, node_at(p, items[earlier]), key);
    yaml_node_t *again = map_value(p, node_at(p, items[later]), key);
    char shown[SHOW_LEN];

    if (!first || !again)
        return;
    add_error(p, again, "%s[%zu].%s %s is already used by %s[%zu] (line %zu); expected a unique %s",
              section, later, key, show(again, shown, sizeof shown), section, earlier,
              first->start_mark.line + 1, key);
}

static void parse_relationships(struct parser *p, yaml_node_t *n)
{
    struct ks_config *cfg = p->cfg;
    yaml_node_item_t *items;
    char path[PATH_LEN];
    size_t count, i, j;

    items = list_items(p, n, "kms_relationships", "KMS relationships", &count);
    if (!items)
        return;
    cfg->kms_relationships = calloc(count, sizeof *cfg->kms_relationships);
    if (!cfg->kms_relationships) {
        p->oom = 1;
        return;
    }
    cfg->n_kms_relationships = count;
    p->have_relationships = 1;
    for (i = 0; i < count; i++) {
        struct ks_kms_rel_config *rel = &cfg->kms_relationships[i];
        yaml_node_t *item = node_at(p, items[i]);
        if (!item)
            continue;
        parse_relationship(p, item, index_path(path, "kms_relationships", i), rel);
        for (j = 0; rel->name && j < i; j++) {
            if (cfg->kms_relationships[j].name &&
                strcmp(cfg->kms_relationships[j].name, rel->name) == 0) {
                report_duplicate(p, n, "kms_relationships", j, i, "name");
                break;
            }
        }
    }
}

/* DynamoDB table names: 3..255 characters of A-Z a-z 0-9 _ . - (DynamoDB naming rules). */
static int valid_table_name(const char *s)
{
    size_t len = strlen(s);
    return len >= 3 && len <= 255 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

static void parse_storage(struct parser *p, yaml_node_t *n, const char *path,
                          struct ks_storage_config *st)
{
    enum { ST_TYPE, ST_PATH, ST_TABLE, ST_REGION, ST_ENDPOINT, ST_CREDS, ST_COUNT };
    struct field f[ST_COUNT] = {
        [ST_TYPE] = {.key = "type"},         [ST_PATH] = {.key = "path"},
        [ST_TABLE] = {.key = "table"},       [ST_REGION] = {.key = "region"},
        [ST_ENDPOINT] = {.key = "endpoint"}, [ST_CREDS] = {.key = "credentials"},
    };
    char sub[PATH_LEN], shown[SHOW_LEN];
    yaml_node_t *v;

    if (get_fields(p, n, path, f, ST_COUNT) < 0)
        return;
    v = require(p, n, path, &f[ST_TYPE], "sqlite or dynamodb");
    if (!v)
        return;
    if (scalar_eq(v, "sqlite")) {
        st->type = KS_STORAGE_SQLITE;
        reject_fields(p, path, f, ST_COUNT, BIT(ST_TYPE) | BIT(ST_PATH), "sqlite storage");
        if (require(p, n, path, &f[ST_PATH], "the path of the SQLite database"))
            st->path = get_string(p, f[ST_PATH].value, join_path(sub, path, "path"), "a file path");
    } else if (scalar_eq(v, "dynamodb")) {
        st->type = KS_STORAGE_DYNAMODB;
        reject_fields(p, path, f, ST_COUNT, ~BIT(ST_PATH), "dynamodb storage");
        if (require(p, n, path, &f[ST_TABLE], "the DynamoDB table name")) {
            st->table = get_string(p, f[ST_TABLE].value, join_path(sub, path, "table"),
                                   "a DynamoDB table name");
            if (st->table && !valid_table_name(st->table))
                add_error(p, f[ST_TABLE].value,
                          "%s %s is not a valid DynamoDB table name; expected 3..255 "
                          "characters from A-Z a-z 0-9 _ . -",
                          sub, show(f[ST_TABLE].value, shown, sizeof shown));
        }
        if (require(p, n, path, &f[ST_REGION], "the AWS region of the table"))
            st->region = get_region(p, f[ST_REGION].value, join_path(sub, path, "region"));
        if (f[ST_ENDPOINT].value)
            st->endpoint = get_endpoint(p, f[ST_ENDPOINT].value, join_path(sub, path, "endpoint"));
        if (require(p, n, path, &f[ST_CREDS], "credentials: {source: ...}"))
            parse_credentials(p, f[ST_CREDS].value, join_path(sub, path, "credentials"),
                              &st->credentials);
    } else {
        add_error(p, v, "%s is %s; expected sqlite or dynamodb", join_path(sub, path, "type"),
                  describe(v, shown, sizeof shown));
    }
}

static void parse_key_store(struct parser *p, yaml_node_t *n, const char *path,
                            struct ks_key_store_config *ks)
{
    enum { S_NAME, S_LOGICAL, S_ID, S_REL, S_STORAGE, S_COUNT };
    struct field f[S_COUNT] = {
        [S_NAME] = {.key = "name"},       [S_LOGICAL] = {.key = "logical_key_store_name"},
        [S_ID] = {.key = "key_store_id"}, [S_REL] = {.key = "kms_relationship"},
        [S_STORAGE] = {.key = "storage"},
    };
    char sub[PATH_LEN], shown[SHOW_LEN];

    if (get_fields(p, n, path, f, S_COUNT) < 0)
        return;
    if (require(p, n, path, &f[S_NAME], "a unique key store name"))
        ks->name = get_name(p, f[S_NAME].value, join_path(sub, path, "name"));
    if (require(p, n, path, &f[S_LOGICAL], "the logical key store name"))
        ks->logical_key_store_name =
            get_string(p, f[S_LOGICAL].value, join_path(sub, path, "logical_key_store_name"),
                       "a non-empty logical key store name");
    if (f[S_ID].value)
        ks->key_store_id =
            get_string(p, f[S_ID].value, join_path(sub, path, "key_store_id"), "a key store id");
    if (require(p, n, path, &f[S_REL], "the name of a KMS relationship")) {
        join_path(sub, path, "kms_relationship");
        ks->kms_relationship = get_string(p, f[S_REL].value, sub, "the name of a KMS relationship");
        if (ks->kms_relationship && p->have_relationships &&
            !ks_config_kms_relationship(p->cfg, ks->kms_relationship, &ks->kms_relationship_index))
            add_error(p, f[S_REL].value,
                      "%s %s names no KMS relationship; expected one of the names under "
                      "kms_relationships",
                      sub, show(f[S_REL].value, shown, sizeof shown));
    }
    if (require(p, n, path, &f[S_STORAGE], "storage: {type: sqlite|dynamodb, ...}"))
        parse_storage(p, f[S_STORAGE].value, join_path(sub, path, "storage"), &ks->storage);
}

static void parse_key_stores(struct parser *p, yaml_node_t *n)
{
    struct ks_config *cfg = p->cfg;
    yaml_node_item_t *items;
    char path[PATH_LEN];
    size_t count, i, j;

    items = list_items(p, n, "key_stores", "key stores", &count);
    if (!items)
        return;
    cfg->key_stores = calloc(count, sizeof *cfg->key_stores);
    if (!cfg->key_stores) {
        p->oom = 1;
        return;
    }
    cfg->n_key_stores = count;
    p->have_key_stores = 1;
    for (i = 0; i < count; i++) {
        struct ks_key_store_config *ks = &cfg->key_stores[i];
        yaml_node_t *item = node_at(p, items[i]);
        if (!item)
            continue;
        parse_key_store(p, item, index_path(path, "key_stores", i), ks);
        for (j = 0; ks->name && j < i; j++) {
            if (cfg->key_stores[j].name && strcmp(cfg->key_stores[j].name, ks->name) == 0) {
                report_duplicate(p, n, "key_stores", j, i, "name");
                break;
            }
        }
        /* docs/architecture.md section 1: two physical stores never share a logical name (it is
         * bound into every KMS encryption context and every cache identifier). */
        for (j = 0; ks->logical_key_store_name && j < i; j++) {
            if (cfg->key_stores[j].logical_key_store_name &&
                strcmp(cfg->key_stores[j].logical_key_store_name, ks->logical_key_store_name) ==
                    0) {
                report_duplicate(p, n, "key_stores", j, i, "logical_key_store_name");
                break;
            }
        }
    }
}

/* A tenant's list of key store or relationship names -> indexes. */
static void parse_refs(struct parser *p, yaml_node_t *n, const char *path, int key_stores,
                       size_t **out, size_t *n_out)
{
    const char *what = key_stores ? "key store" : "KMS relationship";
    const char *section = key_stores ? "key_stores" : "kms_relationships";
    char sub[PATH_LEN], shown[SHOW_LEN], plural[32];
    yaml_node_item_t *items;
    size_t count, i, j;

    snprintf(plural, sizeof plural, "%s names", what);
    items = list_items(p, n, path, plural, &count);
    if (!items)
        return;
    *out = calloc(count, sizeof **out);
    if (!*out) {
        p->oom = 1;
        return;
    }
    for (i = 0; i < count; i++) {
        yaml_node_t *v = node_at(p, items[i]);
        size_t idx = 0;
        char *name;
        int found;
        if (!v)
            continue;
        index_path(sub, path, i);
        name = get_string(p, v, sub, plural);
        if (!name)
            continue;
        found = key_stores ? ks_config_key_store(p->cfg, name, &idx) != NULL
                           : ks_config_kms_relationship(p->cfg, name, &idx) != NULL;
        free(name);
        if (!(key_stores ? p->have_key_stores : p->have_relationships))
            continue; /* the section itself is wrong and already reported */
        if (!found) {
            add_error(p, v, "%s %s names no %s; expected one of the names under %s", sub,
                      show(v, shown, sizeof shown), what, section);
            continue;
        }
        for (j = 0; j < *n_out && (*out)[j] != idx; j++)
            ;
        if (j < *n_out) {
            add_error(p, v, "%s %s is listed twice; expected each name once", sub,
                      show(v, shown, sizeof shown));
            continue;
        }
        (*out)[(*n_out)++] = idx;
    }
}

/* Returns 1 when the tenant's token hash was valid (and stored). */
static int parse_tenant(struct parser *p, yaml_node_t *n, const char *path,
                        struct ks_tenant_config *t)
{
    enum { T_NAME, T_TOKEN, T_ROLE, T_KEY_STORES, T_RELS, T_PARTITION, T_COUNT };
    struct field f[T_COUNT] = {
        [T_NAME] = {.key = "name"},
        [T_TOKEN] = {.key = "token_sha256"},
        [T_ROLE] = {.key = "role"},
        [T_KEY_STORES] = {.key = "key_stores"},
        [T_RELS] = {.key = "kms_relationships"},
        [T_PARTITION] = {.key = "partition"},
    };
    const char *expect_token = "the SHA-256 of the tenant's token as 64 hexadecimal digits";
    char sub[PATH_LEN], shown[SHOW_LEN];
    yaml_node_t *v;
    int token_ok = 0;

    if (get_fields(p, n, path, f, T_COUNT) < 0)
        return 0;
    if (require(p, n, path, &f[T_NAME], "a unique tenant name"))
        t->name = get_name(p, f[T_NAME].value, join_path(sub, path, "name"));
    /* The hash stands in for a bearer token: its value is never put in a message. */
    v = require(p, n, path, &f[T_TOKEN], expect_token);
    if (v) {
        join_path(sub, path, "token_sha256");
        if (v->type != YAML_SCALAR_NODE || is_null(v))
            add_error(p, v, "%s is %s; expected %s", sub, kind(v), expect_token);
        else if (v->data.scalar.length != 64 || strlen(scalar_text(v)) != 64 ||
                 ks_hex_decode(scalar_text(v), t->token_sha256, sizeof t->token_sha256) != 0)
            add_error(p, v, "%s is not 64 hexadecimal digits; expected %s", sub, expect_token);
        else
            token_ok = 1;
    }
    v = require(p, n, path, &f[T_ROLE], "reader or admin");
    if (v) {
        if (scalar_eq(v, "reader"))
            t->role = KS_ROLE_READER;
        else if (scalar_eq(v, "admin"))
            t->role = KS_ROLE_ADMIN;
        else
            add_error(p, v, "%s is %s; expected reader or admin", join_path(sub, path, "role"),
                      describe(v, shown, sizeof shown));
    }
    if (require(p, n, path, &f[T_KEY_STORES], "the list of key stores the tenant may use"))
        parse_refs(p, f[T_KEY_STORES].value, join_path(sub, path, "key_stores"), 1,
                   &t->key_store_indexes, &t->n_key_stores);
    if (require(p, n, path, &f[T_RELS], "the list of KMS relationships the tenant may use"))
        parse_refs(p, f[T_RELS].value, join_path(sub, path, "kms_relationships"), 0,
                   &t->kms_relationship_indexes, &t->n_kms_relationships);
    if (f[T_PARTITION].value) {
        t->partition = get_string(p, f[T_PARTITION].value, join_path(sub, path, "partition"),
                                  "a non-empty cache partition name");
    } else if (t->name) {
        /* The prefix keeps default partitions apart from any explicit one an operator picks
         * for sharing (docs/architecture.md section 1, "cache partition"). */
        t->partition = format_text("tenant:%s", t->name);
        if (!t->partition)
            p->oom = 1;
    }
    return token_ok;
}

static void parse_tenants(struct parser *p, yaml_node_t *n)
{
    struct ks_config *cfg = p->cfg;
    yaml_node_item_t *items;
    unsigned char *token_ok;
    char path[PATH_LEN];
    size_t count, i, j;

    items = list_items(p, n, "tenants", "tenants", &count);
    if (!items)
        return;
    cfg->tenants = calloc(count, sizeof *cfg->tenants);
    token_ok = calloc(count, 1);
    if (!cfg->tenants || !token_ok) {
        free(token_ok);
        p->oom = 1;
        return;
    }
    cfg->n_tenants = count;
    for (i = 0; i < count; i++) {
        struct ks_tenant_config *t = &cfg->tenants[i];
        yaml_node_t *item = node_at(p, items[i]);
        if (!item)
            continue;
        token_ok[i] = (unsigned char)parse_tenant(p, item, index_path(path, "tenants", i), t);
        for (j = 0; t->name && j < i; j++) {
            if (cfg->tenants[j].name && strcmp(cfg->tenants[j].name, t->name) == 0) {
                report_duplicate(p, n, "tenants", j, i, "name");
                break;
            }
        }
        /* One token must identify one tenant, or authentication would be ambiguous. */
        for (j = 0; token_ok[i] && j < i; j++) {
            if (token_ok[j] && memcmp(cfg->tenants[j].token_sha256, t->token_sha256,
                                      sizeof t->token_sha256) == 0) {
                add_error(p, map_value(p, item, "token_sha256"),
                          "tenants[%zu].token_sha256 is the same as that of tenants[%zu]; "
                          "expected a different token for each tenant",
                          i, j);
                break;
            }
        }
    }
    free(token_ok);
}

static void parse_root(struct parser *p, yaml_node_t *root)
{
    enum { TOP_LISTEN, TOP_SERVER, TOP_RELS, TOP_KEY_STORES, TOP_CACHE, TOP_TENANTS, TOP_COUNT };
    struct field f[TOP_COUNT] = {
        [TOP_LISTEN] = {.key = "listen"},
        [TOP_SERVER] = {.key = "server"},
        [TOP_RELS] = {.key = "kms_relationships"},
        [TOP_KEY_STORES] = {.key = "key_stores"},
        [TOP_CACHE] = {.key = "cache"},
        [TOP_TENANTS] = {.key = "tenants"},
    };

    if (!root) {
        add_error_at(p, 1, 1,
                     "the configuration is empty; expected a mapping with kms_relationships, "
                     "key_stores and tenants");
        return;
    }
    if (get_fields(p, root, "", f, TOP_COUNT) < 0)
        return;
    if (f[TOP_LISTEN].value)
        parse_listen(p, f[TOP_LISTEN].value);
    if (f[TOP_SERVER].value)
        parse_server(p, f[TOP_SERVER].value);
    if (f[TOP_CACHE].value)
        parse_cache(p, f[TOP_CACHE].value);
    /* Fixed order, whatever the file's: key stores refer to relationships, tenants to both. */
    if (require(p, root, "", &f[TOP_RELS], "a list of KMS relationships"))
        parse_relationships(p, f[TOP_RELS].value);
    if (require(p, root, "", &f[TOP_KEY_STORES], "a list of key stores"))
        parse_key_stores(p, f[TOP_KEY_STORES].value);
    if (require(p, root, "", &f[TOP_TENANTS], "a list of tenants"))
        parse_tenants(p, f[TOP_TENANTS].value);
}

/* ---------------------------------------------------------------------------------------- */
/* Load                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static int set_defaults(struct ks_config *cfg, const char *host, uint16_t port)
{
    cfg->listen_host = strdup(host);
    cfg->listen_port = port;
    cfg->server.threads = 4;
    cfg->server.max_body_bytes = 65536;
    cfg->server.max_json_depth = 16;
    cfg->server.connection_timeout_seconds = 30;
    cfg->server.max_connections = 0;        /* 0: derived from RLIMIT_NOFILE at start */
    cfg->server.max_connections_per_ip = 0; /* 0: no per-address cap */
    cfg->server.header_timeout_seconds = 10;
    cfg->server.max_uri_bytes = 8192;
    cfg->server.max_header_bytes = 16384;
    cfg->server.readiness_interval_ms = 5000;
    cfg->server.readiness_timeout_ms = 2000;
    /* MPL DefaultStorm() (docs/reference/cache.md section 4) and the hierarchical keyring's 600 s
     * ttl. */
    cfg->cache.capacity = 1000;
    cfg->cache.ttl_seconds = 600;
    cfg->cache.grace_period_seconds = 10;
    cfg->cache.grace_interval_seconds = 1;
    cfg->cache.fan_out = 20;
    cfg->cache.in_flight_ttl_seconds = 10;
    return cfg->listen_host ? 0 : -1;
}

static void add_syntax_error(struct parser *p, const yaml_parser_t *yp, const char *yaml,
                             size_t len)
{
    const char *problem = yp->problem ? yp->problem : "unknown problem";

    if (yp->error == YAML_MEMORY_ERROR) {
        p->oom = 1;
    } else if (yp->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark. */
        size_t line = 1, column = 1, i;
        for (i = 0; i < yp->problem_offset && i < len; i++) {
            if (yaml[i] == '\n') {
                line++;
                column = 1;
            } else {
                column++;
            }
        }
        add_error_at(p, line, column, "invalid input: %s; expected UTF-8 text", problem);
    } else if (yp->context) {
        add_error_at(p, yp->problem_mark.line + 1, yp->problem_mark.column + 1,
                     "YAML syntax error: %s (%s at line %zu); expected valid YAML", problem,
                     yp->context, yp->context_mark.line + 1);
    } else {
        add_error_at(p, yp->problem_mark.line + 1, yp->problem_mark.column + 1,
                     "YAML syntax error: %s; expected valid YAML", problem);
    }
}

/* The document holds copies of every scalar, secrets included: wipe them before freeing. */
static void wipe_document(yaml_document_t *doc)
{
    yaml_node_t *n;
    for (n = doc->nodes.start; n && n < doc->nodes.top; n++)
        if (n->type == YAML_SCALAR_NODE && n->data.scalar.value)
            OPENSSL_cleanse(n->data.scalar.value, n->data.scalar.length);
}

static void wipe_parser(yaml_parser_t *yp)
{
    if (yp->buffer.start)
        OPENSSL_cleanse(yp->buffer.start, (size_t)(yp->buffer.end - yp->buffer.start));
    if (yp->raw_buffer.start)
        OPENSSL_cleanse(yp->raw_buffer.start, (size_t)(yp->raw_buffer.end - yp->raw_buffer.start));
}

/* Loads the one document of the buffer and walks it. */
static void load_document(struct parser *p, const char *yaml, size_t len)
{
    yaml_parser_t yp;
    yaml_document_t doc, extra;

    if (!yaml_parser_initialize(&yp)) {
        p->oom = 1;
        return;
    }
    yaml_parser_set_input_string(&yp, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&yp, &doc)) {
        add_syntax_error(p, &yp, yaml, len);
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        p->doc = &doc;
        parse_root(p, root);
        if (root) {
            /* A second document would be silently ignored; say so instead. */
            if (!yaml_parser_load(&yp, &extra)) {
                add_syntax_error(p, &yp, yaml, len);
            } else {
                yaml_node_t *again = yaml_document_get_root_node(&extra);
                if (again)
                    add_error(p, again,
                              "a second YAML document starts here; expected exactly one "
                              "document");
                wipe_document(&extra);
                yaml_document_delete(&extra);
            }
        }
        p->doc = NULL;
        wipe_document(&doc);
        yaml_document_delete(&doc);
    }
    wipe_parser(&yp);
    yaml_parser_delete(&yp);
}

ks_status ks_config_load_buffer(const char *name, const char *yaml, size_t len,
                                struct ks_config **out, char **errors)
{
    struct parser p;
    ks_status status = KS_OK;

    if (errors)
        *errors = NULL;
    if (!out)
        return KS_E_INTERNAL;
    *out = NULL;
    memset(&p, 0, sizeof p);
    p.name = name ? name : "<config>";
    p.cfg = calloc(1, sizeof *p.cfg);
    if (!p.cfg || set_defaults(p.cfg, "127.0.0.1", 8080) < 0 ||
        !(p.cfg->source_name = strdup(p.name))) {
        p.oom = 1;
    } else {
        load_document(&p, yaml ? yaml : "", yaml ? len : 0);
    }

    if (p.oom) {
        status = KS_E_INTERNAL;
        if (errors)
            *errors = format_text("%s: out of memory while loading the configuration\n", p.name);
    } else if (p.n_errors) {
        status = KS_E_CONFIG;
        if (errors) {
            *errors = join_errors(&p);
            if (!*errors)
                status = KS_E_INTERNAL;
        }
    }
    free_errors(&p);
    if (status != KS_OK) {
        ks_config_free(p.cfg);
        return status;
    }
    *out = p.cfg;
    return KS_OK;
}

ks_status ks_config_load_file(const char *path, struct ks_config **out, char **errors)
{
    char reason[128];
    char *buf = NULL;
    size_t len = 0, cap = 0;
    ks_status status;
    FILE *f;

    if (errors)
        *errors = NULL;
    if (!out || !path)
        return KS_E_INTERNAL;
    *out = NULL;
    f = fopen(path, "rb");
    if (!f) {
        /* -D_GNU_SOURCE (Makefile): the GNU strerror_r returns the message. */
        const char *why = strerror_r(errno, reason, sizeof reason);
        if (errors)
            *errors = format_text("%s:1:1: cannot open the file (%s); expected a readable YAML "
                                  "file\n",
                                  path, why);
        return KS_E_CONFIG;
    }
    for (;;) {
        size_t got;
        if (len == cap) {
            char *grown;
            if (cap >= MAX_FILE_BYTES + 1)
                break;
            cap = cap ? 2 * cap : 4096;
            if (cap > MAX_FILE_BYTES + 1)
                cap = MAX_FILE_BYTES + 1;
            grown = malloc(cap);
            if (!grown) {
                status = KS_E_INTERNAL;
                goto done;
            }
            if (buf) {
                memcpy(grown, buf, len);
                OPENSSL_cleanse(buf, len);
                free(buf);
            }
            buf = grown;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        const char *why = strerror_r(errno, reason, sizeof reason);
        if (errors)
            *errors = format_text("%s:1:1: cannot read the file (%s); expected a readable YAML "
                                  "file\n",
                                  path, why);
        status = KS_E_CONFIG;
    } else if (len > MAX_FILE_BYTES) {
        if (errors)
            *errors = format_text("%s:1:1: the file is larger than %u bytes; expected a "
                                  "configuration file\n",
                                  path, MAX_FILE_BYTES);
        status = KS_E_CONFIG;
    } else {
        status = ks_config_load_buffer(path, buf, len, out, errors);
    }
done:
    fclose(f);
    if (buf) {
        OPENSSL_cleanse(buf, cap);
        free(buf);
    }
    return status;
}

/* ---------------------------------------------------------------------------------------- */
/* Embedded default, lookups, free                                                          */
/* ---------------------------------------------------------------------------------------- */

static char *join_file(const char *dir, const char *file)
{
    size_t len = strlen(dir);
    return format_text("%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", file);
}

ks_status ks_config_default(const char *data_dir, const char *listen_host, uint16_t listen_port,
                            const unsigned char admin_token_sha256[32], const char *kms_key_arn,
                            struct ks_config **out, struct ks_error *err)
{
    struct ks_config *cfg;
    struct ks_kms_rel_config *rel;
    struct ks_key_store_config *ks;
    struct ks_tenant_config *t;
    int ok;

    if (!out)
        return ks_error_set(err, KS_E_INVALID, "no output pointer");
    *out = NULL;
    if (!data_dir || !*data_dir)
        return ks_error_set(err, KS_E_INVALID, "data directory missing");
    if (!listen_host || check_host(listen_host))
        return ks_error_set(err, KS_E_INVALID,
                            "listen host is not an IPv4 address, IPv6 address or host name");
    if (!admin_token_sha256)
        return ks_error_set(err, KS_E_INVALID, "admin token hash missing");
    if (kms_key_arn && !valid_local_arn(kms_key_arn))
        return ks_error_set(err, KS_E_INVALID,
                            "kms_key_arn is not a local KMS key ARN; expected " LOCAL_ARN_PREFIX
                            "<lowercase UUID>");

    cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    ok = set_defaults(cfg, listen_host, listen_port) == 0;
    cfg->source_name = strdup("<embedded default>");
    cfg->kms_relationships = calloc(1, sizeof *cfg->kms_relationships);
    cfg->key_stores = calloc(1, sizeof *cfg->key_stores);
    cfg->tenants = calloc(1, sizeof *cfg->tenants);
    ok = ok && cfg->source_name && cfg->kms_relationships && cfg->key_stores && cfg->tenants;
    if (ok) {
        cfg->n_kms_relationships = cfg->n_key_stores = cfg->n_tenants = 1;

        rel = &cfg->kms_relationships[0];
        rel->name = strdup("local");
        rel->type = KS_KMS_LOCAL;
        rel->key_file = join_file(data_dir, "local-kms.keys");
        ok = rel->name && rel->key_file;
        if (kms_key_arn) {
            rel->has_kms_configuration = 1;
            rel->kms.kind = KS_KMS_KEY_ARN;
            rel->kms.arn = strdup(kms_key_arn);
            ok = ok && rel->kms.arn;
        }

        ks = &cfg->key_stores[0];
        ks->name = strdup("default");
        ks->logical_key_store_name = strdup("default");
        ks->kms_relationship = strdup("local");
        ks->kms_relationship_index = 0;
        ks->storage.type = KS_STORAGE_SQLITE;
        ks->storage.path = join_file(data_dir, "keystore.db");
        ok = ok && ks->name && ks->logical_key_store_name && ks->kms_relationship &&
             ks->storage.path;

        t = &cfg->tenants[0];
        t->name = strdup("admin");
        memcpy(t->token_sha256, admin_token_sha256, sizeof t->token_sha256);
        t->role = KS_ROLE_ADMIN;
        t->key_store_indexes = calloc(1, sizeof *t->key_store_indexes);
        t->kms_relationship_indexes = calloc(1, sizeof *t->kms_relationship_indexes);
        t->partition = strdup("tenant:admin");
        ok = ok && t->name && t->key_store_indexes && t->kms_relationship_indexes && t->partition;
        if (t->key_store_indexes)
            t->n_key_stores = 1;
        if (t->kms_relationship_indexes)
            t->n_kms_relationships = 1;
    }
    if (!ok) {
        ks_config_free(cfg);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    *out = cfg;
    return KS_OK;
}

const struct ks_key_store_config *ks_config_key_store(const struct ks_config *cfg, const char *name,
                                                      size_t *index)
{
    size_t i;
    if (!cfg || !name)
        return NULL;
    for (i = 0; i < cfg->n_key_stores; i++) {
        if (cfg->key_stores[i].name && strcmp(cfg->key_stores[i].name, name) == 0) {
            if (index)
                *index = i;
            return &cfg->key_stores[i];
        }
    }
    return NULL;
}

const struct ks_kms_rel_config *ks_config_kms_relationship(const struct ks_config *cfg,
                                                           const char *name, size_t *index)
{
    size_t i;
    if (!cfg || !name)
        return NULL;
    for (i = 0; i < cfg->n_kms_relationships; i++) {
        if (cfg->kms_relationships[i].name && strcmp(cfg->kms_relationships[i].name, name) == 0) {
            if (index)
                *index = i;
            return &cfg->kms_relationships[i];
        }
    }
    return NULL;
}

static void free_credentials(struct ks_aws_credentials_options *c)
{
    free(c->profile);
    ks_secret_free_string(c->access_key_id);
    ks_secret_free_string(c->secret_access_key);
    ks_secret_free_string(c->session_token);
}

void ks_config_free(struct ks_config *cfg)
{
    size_t i, j;

    if (!cfg)
        return;
    for (i = 0; i < cfg->n_kms_relationships; i++) {
        struct ks_kms_rel_config *rel = &cfg->kms_relationships[i];
        free(rel->name);
        free(rel->key_file);
        free(rel->kms.arn);
        free(rel->kms.region);
        free(rel->region);
        free(rel->endpoint);
        free_credentials(&rel->credentials);
        for (j = 0; j < rel->n_grant_tokens; j++)
            ks_secret_free_string(rel->grant_tokens[j]);
        free(rel->grant_tokens);
    }
    free(cfg->kms_relationships);
    for (i = 0; i < cfg->n_key_stores; i++) {
        struct ks_key_store_config *ks = &cfg->key_stores[i];
        free(ks->name);
        free(ks->logical_key_store_name);
        free(ks->key_store_id);
        free(ks->kms_relationship);
        free(ks->storage.path);
        free(ks->storage.table);
        free(ks->storage.region);
        free(ks->storage.endpoint);
        free_credentials(&ks->storage.credentials);
    }
    free(cfg->key_stores);
    for (i = 0; i < cfg->n_tenants; i++) {
        struct ks_tenant_config *t = &cfg->tenants[i];
        free(t->name);
        ks_secret_wipe(t->token_sha256, sizeof t->token_sha256);
        free(t->key_store_indexes);
        free(t->kms_relationship_indexes);
        free(t->partition);
    }
    free(cfg->tenants);
    free(cfg->listen_host);
    free(cfg->source_name);
    free(cfg);
}
