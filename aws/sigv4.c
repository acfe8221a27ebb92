/*
 * sigv4.c - AWS Signature Version 4 for non-S3 services (docs/reference/aws-apis.md section 6).
 *
 * The rules below follow IAM-SIGV4 and aws-c-auth's aws_signing.c, and are pinned down by the
 * aws-c-auth test vectors in tests/data/sigv4/ (tests/unit/test_sigv4.c runs all of them).
 * Only OpenSSL 3 (EVP digest and EVP_Q_mac HMAC) is used.
 */
#include "aws/sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/secret.h"
#include "common/util.h"

#define SHA256_LEN 32
#define SCOPE_TERMINATOR "aws4_request"
/* 9999-12-31T23:59:59Z: X-Amz-Date has four year digits. */
#define MAX_EPOCH_SECONDS 253402300799ULL

/*
 * A growable string. Errors are sticky (failed is set and later appends do nothing), so a
 * builder can append many pieces and check once. Every buffer is wiped when freed, because the
 * canonical request can hold the session token.
 */
struct sbuf {
    char *data;
    size_t len;
    size_t cap;
    int failed;
};

static void sbuf_free(struct sbuf *b)
{
    if (b->data != NULL) {
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    memset(b, 0, sizeof(*b));
}

static int sbuf_reserve(struct sbuf *b, size_t extra)
{
    if (b->failed) {
        return -1;
    }
    if (extra > SIZE_MAX - b->len - 1) {
        b->failed = 1;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 128;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    /* Not realloc: the old block may hold the token and must be wiped before it is released. */
    char *data = malloc(cap);
    if (data == NULL) {
        b->failed = 1;
        return -1;
    }
    if (b->data != NULL) {
        memcpy(data, b->data, b->len + 1);
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    } else {
        data[0] = '\0';
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static void sbuf_append(struct sbuf *b, const void *p, size_t n)
{
    if (sbuf_reserve(b, n) != 0) {
        return;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
}

static void sbuf_puts(struct sbuf *b, const char *s)
{
    sbuf_append(b, s, strlen(s));
}

static void sbuf_putc(struct sbuf *b, char c)
{
    sbuf_append(b, &c, 1);
}

/* Hands the string over to the caller (heap, NUL-terminated); the buffer is left empty. */
static char *sbuf_take(struct sbuf *b)
{
    if (b->failed || sbuf_reserve(b, 0) != 0) {
        return NULL;
    }
    char *s = b->data;
    memset(b, 0, sizeof(*b));
    return s;
}

/* RFC 3986 unreserved characters: the only bytes SigV4's URI encoding leaves as they are. */
static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/*
 * SigV4 URI encoding (IAM-SIGV4 "URI-encode each byte"; aws-c-auth
 * aws_byte_buf_append_encoding_uri_path/_param): common/util.h's ks_percent_encode, which keeps
 * the unreserved bytes and writes %XX in uppercase hex. keep_slash is set for paths, where '/'
 * separates segments.
 */
static void sbuf_put_encoded(struct sbuf *b, const char *s, size_t n, int keep_slash)
{
    size_t need = ks_percent_encode(s, n, keep_slash, NULL, 0);
    if (sbuf_reserve(b, need) != 0) {
        return;
    }
    ks_percent_encode(s, n, keep_slash, b->data + b->len, need + 1);
    b->len += need;
}

/* ----- validation: keep the inputs from breaking the structure of what is signed or sent ----- */

/* RFC 9110 tchar: what a method and a header name may contain. */
static int is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_token(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (; *s; s++) {
        if (!is_tchar((unsigned char)*s)) {
            return 0;
        }
    }
    return 1;
}

/* Region and service become parts of the '/'-separated credential scope. */
static int is_scope_part(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!is_unreserved(c)) {
            return 0;
        }
    }
    return 1;
}

/* Visible ASCII without space: access key ids, tokens and payload hashes end up in headers. */
static int is_visible(const char *s, const char *also_forbidden)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || strchr(also_forbidden, c) != NULL) {
            return 0;
        }
    }
    return 1;
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * A header value may contain obs-fold line breaks (CR/LF followed by SP or HT; vector
 * get-header-value-multiline) but no bare line break, which would let a value smuggle a
 * header into the request, and no other control byte.
 */
static int is_header_value(const char *s)
{
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n') {
            size_t j = i;
            while (s[j] == '\r' || s[j] == '\n') {
                j++;
            }
            if (s[j] != ' ' && s[j] != '\t') {
                return 0;
            }
            i = j - 1;
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static int name_in(const char *name, const char *const *list)
{
    for (; *list != NULL; list++) {
        if (strcasecmp(name, *list) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Not signed: proxies add or rewrite them (aws-c-auth aws_signing.c s_skipped_headers). */
static const char *const skipped_headers[] = {"user-agent",
                                              "x-amzn-trace-id",
                                              "connection",
                                              "expect",
                                              "sec-websocket-key",
                                              "sec-websocket-protocol",
                                              "sec-websocket-version",
                                              "upgrade",
                                              NULL};

/* The signer adds these itself (aws-c-auth s_forbidden_headers). */
static const char *const forbidden_headers[] = {"authorization", "x-amz-date",
                                                "x-amz-security-token", NULL};

/* ----- crypto ----- */

static int sha256(const void *data, size_t len, unsigned char out[SHA256_LEN])
{
    unsigned int out_len = 0;
    if (EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL) != 1 || out_len != SHA256_LEN) {
        return -1;
    }
    return 0;
}

static int hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                       unsigned char out[SHA256_LEN])
{
    size_t out_len = 0;
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, data, len, out, SHA256_LEN,
                  &out_len) == NULL ||
        out_len != SHA256_LEN) {
        return -1;
    }
    return 0;
}

/*
 * kSigning from the secret (aws-apis.md section 6 point 6):
 * kDate = HMAC("AWS4" + secret, date), kRegion, kService, then HMAC(kService, "aws4_request").
 * "AWS4" + secret is built in a ks_secret buffer and every intermediate key is wiped.
 */
static int derive_signing_key(const char *secret, const char *date, const char *region,
                              const char *service, unsigned char key[SHA256_LEN])
{
    size_t secret_len = strlen(secret);
    unsigned char *k_secret = ks_secret_alloc(4 + secret_len);
    if (k_secret == NULL) {
        return -1;
    }
    memcpy(k_secret, "AWS4", 4);
    memcpy(k_secret + 4, secret, secret_len);

    unsigned char a[SHA256_LEN], b[SHA256_LEN];
    int rc = hmac_sha256(k_secret, 4 + secret_len, date, strlen(date), a);
    ks_secret_free(k_secret, 4 + secret_len);
    if (rc == 0) {
        rc = hmac_sha256(a, SHA256_LEN, region, strlen(region), b);
    }
    if (rc == 0) {
        rc = hmac_sha256(b, SHA256_LEN, service, strlen(service), a);
    }
    if (rc == 0) {
        rc = hmac_sha256(a, SHA256_LEN, SCOPE_TERMINATOR, strlen(SCOPE_TERMINATOR), key);
    }
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    return rc;
}

/* ----- canonical URI ----- */

/*
 * Path normalisation as aws-c-auth s_append_normalized_path (vectors get-relative-*,
 * get-slash-*, get-slashes-*): split on '/', drop empty and "." segments, let ".." pop the
 * previous segment, join with single slashes after a leading '/', and keep a trailing '/'.
 */
static void normalize_path(const char *path, struct sbuf *out)
{
    size_t n = strlen(path);
    /* Segment starts and lengths on a stack; at most n/2 + 1 segments. */
    size_t max = n / 2 + 1;
    size_t *starts = calloc(max, sizeof(*starts));
    size_t *lens = calloc(max, sizeof(*lens));
    if (starts == NULL || lens == NULL) {
        out->failed = 1;
        free(starts);
        free(lens);
        return;
    }
    size_t depth = 0;
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && path[j] != '/') {
            j++;
        }
        size_t len = j - i;
        if (len == 0 || (len == 1 && path[i] == '.')) {
            /* contributes nothing */
        } else if (len == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (depth > 0) {
                depth--;
            }
        } else if (depth < max) {
            starts[depth] = i;
            lens[depth] = len;
            depth++;
        }
        i = j + 1;
    }
    int ends_with_slash = n > 0 && path[n - 1] == '/';
    sbuf_putc(out, '/');
    for (size_t k = 0; k < depth; k++) {
        sbuf_append(out, path + starts[k], lens[k]);
        if (k + 1 < depth || ends_with_slash) {
            sbuf_putc(out, '/');
        }
    }
    free(starts);
    free(lens);
}

/*
 * Canonical URI. Non-S3 services normalise the path as sent (already encoded once), then encode
 * it again ("double encoding", tests/data/sigv4/README.md "Path encoding"), so "%20" on
 * the wire is signed as "%2520".
 */
static void append_canonical_uri(const struct ks_sigv4_request *req, struct sbuf *out)
{
    const char *path = (req->path != NULL && req->path[0] != '\0') ? req->path : "/";
    struct sbuf normalized = {0};
    normalize_path(path, &normalized);
    if (normalized.failed) {
        out->failed = 1;
    } else {
        sbuf_put_encoded(out, normalized.data, normalized.len, 1);
    }
    sbuf_free(&normalized);
}

/* ----- canonical query ----- */

struct query_param {
    char *key;   /* encoded */
    char *value; /* encoded */
};

struct query_list {
    struct query_param *items;
    size_t count;
    size_t cap;
};

static void query_list_free(struct query_list *q)
{
    for (size_t i = 0; i < q->count; i++) {
        /* Values can be the session token. */
        ks_secret_free_string(q->items[i].key);
        ks_secret_free_string(q->items[i].value);
    }
    free(q->items);
    memset(q, 0, sizeof(*q));
}

/* Takes raw (unencoded) key and value bytes; stores their canonical encoding. */
static int query_list_add(struct query_list *q, const char *key, size_t key_len, const char *value,
                          size_t value_len)
{
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 8;
        struct query_param *items = realloc(q->items, cap * sizeof(*items));
        if (items == NULL) {
            return -1;
        }
        q->items = items;
        q->cap = cap;
    }
    struct sbuf k = {0}, v = {0};
    sbuf_put_encoded(&k, key, key_len, 0);
    sbuf_put_encoded(&v, value, value_len, 0);
    char *ks = sbuf_take(&k);
    char *vs = sbuf_take(&v);
    sbuf_free(&k);
    sbuf_free(&v);
    if (ks == NULL || vs == NULL) {
        ks_secret_free_string(ks);
        ks_secret_free_string(vs);
        return -1;
    }
    q->items[q->count].key = ks;
    q->items[q->count].value = vs;
    q->count++;
    return 0;
}

/*
 * Splits the query as sent into parameters, decodes each key and value and stores the canonical
 * re-encoding (aws-c-auth: decode, then encode, so "%E1%88%B4" and raw "ሴ" sign the same;
 * vectors get-vanilla-query-order-encoded, get-vanilla-utf8-query). A parameter without '='
 * gets an empty value. Empty pieces ("a=1&&b=2") are ignored.
 */
static ks_status parse_query(const char *query, struct query_list *q, struct ks_error *err)
{
    const char *p = query;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, '&');
        size_t piece_len = end ? (size_t)(end - p) : strlen(p);
        if (piece_len > 0) {
            const char *eq = memchr(p, '=', piece_len);
            size_t key_len = eq ? (size_t)(eq - p) : piece_len;
            const char *val = eq ? eq + 1 : p + piece_len;
            size_t val_len = eq ? piece_len - key_len - 1 : 0;
            /* '+' stays '+': it is not a space in SigV4 (aws-c-auth decoding). */
            size_t dk_len = 0, dv_len = 0;
            char *dk = ks_percent_decode(p, key_len, 0, &dk_len);
            char *dv = ks_percent_decode(val, val_len, 0, &dv_len);
            ks_status st = KS_OK;
            if (dk == NULL || dv == NULL) {
                st = ks_error_set(err, KS_E_INVALID, "sigv4: malformed percent-escape in query");
            } else if (query_list_add(q, dk, dk_len, dv, dv_len) != 0) {
                st = ks_error_set(err, KS_E_INTERNAL, "sigv4: out of memory");
            }
            free(dk);
            free(dv);
            if (st != KS_OK) {
                return st;
            }
        }
        p = end ? end + 1 : NULL;
    }
    return KS_OK;
}

/* Encoded parameters sort by key, then by value, bytewise (aws-c-auth
 * s_canonical_query_param_comparator; vector get-vanilla-query-order-encoded). */
static int compare_query_params(const void *a, const void *b)
{
    const struct query_param *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : strcmp(x->value, y->value);
}

static void append_query_list(const struct query_list *q, struct sbuf *out)
{
    for (size_t i = 0; i < q->count; i++) {
        if (i > 0) {
            sbuf_putc(out, '&');
        }
        sbuf_puts(out, q->items[i].key);
        sbuf_putc(out, '=');
        sbuf_puts(out, q->items[i].value);
    }
}

/* ----- canonical headers ----- */

struct header_entry {
    char *name;        /* lowercased copy */
    const char *value; /* borrowed, raw */
    size_t index;      /* position in the request, to keep duplicates in order */
};

/* Names sort bytewise after lowercasing; equal names keep request order, because duplicate
 * values are joined in the order sent (vectors get-header-key-duplicate,
 * get-header-value-order). qsort is not stable, hence the index. */
static int compare_headers(const void *a, const void *b)
{
    const struct header_entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0) {
        return c;
    }
    return x->index < y->index ? -1 : (x->index > y->index ? 1 : 0);
}

/* Value trimmed, inner whitespace runs (including obs-fold line breaks) collapsed to one space
 * (aws-apis.md section 6 point 1; vectors get-header-value-trim, get-header-value-multiline). */
static void append_header_value(struct sbuf *out, const char *v)
{
    while (*v && is_ws((unsigned char)*v)) {
        v++;
    }
    int pending_space = 0;
    for (; *v; v++) {
        if (is_ws((unsigned char)*v)) {
            pending_space = 1;
            continue;
        }
        if (pending_space) {
            sbuf_putc(out, ' ');
            pending_space = 0;
        }
        sbuf_putc(out, *v);
    }
}

struct header_list {
    struct header_entry *items;
    size_t count;
};

static void header_list_free(struct header_list *h)
{
    for (size_t i = 0; i < h->count; i++) {
        free(h->items[i].name);
    }
    free(h->items);
    memset(h, 0, sizeof(*h));
}

static int header_list_add(struct header_list *h, const char *name, const char *value)
{
    size_t n = strlen(name);
    char *lower = malloc(n + 1);
    if (lower == NULL) {
        return -1;
    }
    for (size_t i = 0; i <= n; i++) {
        char c = name[i];
        lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    h->items[h->count].name = lower;
    h->items[h->count].value = value;
    h->items[h->count].index = h->count;
    h->count++;
    return 0;
}

/* Canonical header block ("name:v1,v2\n" per name) and the signed-header list ("a;b"). */
static void append_canonical_headers(const struct header_list *h, struct sbuf *block,
                                     struct sbuf *signed_headers)
{
    for (size_t i = 0; i < h->count; i++) {
        const struct header_entry *e = &h->items[i];
        int same_as_previous = i > 0 && strcmp(h->items[i - 1].name, e->name) == 0;
        if (same_as_previous) {
            sbuf_putc(block, ',');
        } else {
            if (i > 0) {
                sbuf_putc(block, '\n');
                sbuf_putc(signed_headers, ';');
            }
            sbuf_puts(block, e->name);
            sbuf_putc(block, ':');
            sbuf_puts(signed_headers, e->name);
        }
        append_header_value(block, e->value);
    }
    if (h->count > 0) {
        sbuf_putc(block, '\n');
    }
}

/* ----- the signer ----- */

void ks_sigv4_result_free(struct ks_sigv4_result *result)
{
    if (result == NULL) {
        return;
    }
    ks_secret_free_string(result->canonical_request);
    ks_secret_free_string(result->string_to_sign);
    ks_secret_free_string(result->signed_headers);
    ks_secret_free_string(result->credential_scope);
    ks_secret_free_string(result->authorization);
    for (size_t i = 0; i < result->add_header_count && i < KS_SIGV4_MAX_ADD_HEADERS; i++) {
        /* authorization is also the last header value; it was freed above. */
        if (result->add_headers[i].value != result->authorization) {
            char *owned = (char *)(uintptr_t)result->add_headers[i].value;
            ks_secret_free_string(owned);
        }
    }
    OPENSSL_cleanse(result, sizeof(*result));
}

/* The path and query cannot break the request line: no controls, no fragment. */
static ks_status validate_target(const struct ks_sigv4_request *req, struct ks_error *err)
{
    if (req->path != NULL && req->path[0] != '\0') {
        if (req->path[0] != '/') {
            return ks_error_set(err, KS_E_INVALID, "sigv4: path must start with '/'");
        }
        for (const char *p = req->path; *p; p++) {
            unsigned char c = (unsigned char)*p;
            if (c < 0x20 || c == 0x7f || c == '?' || c == '#') {
                return ks_error_set(err, KS_E_INVALID, "sigv4: invalid byte in path");
            }
        }
    }
    if (req->query != NULL) {
        for (const char *p = req->query; *p; p++) {
            unsigned char c = (unsigned char)*p;
            if (c < 0x20 || c == 0x7f || c == '#') {
                return ks_error_set(err, KS_E_INVALID, "sigv4: invalid byte in query");
            }
        }
    }
    return KS_OK;
}

/* Header names are tokens, values cannot smuggle lines, the signer's own are not given, and
 * Host is present (IAM-SIGV4: host must always be signed). */
static ks_status validate_headers(const struct ks_sigv4_request *req, struct ks_error *err)
{
    int has_host = 0;
    if (req->headers == NULL && req->header_count > 0) {
        return ks_error_set(err, KS_E_INVALID, "sigv4: header_count without headers");
    }
    for (size_t i = 0; i < req->header_count; i++) {
        const struct ks_sigv4_header *h = &req->headers[i];
        if (!is_token(h->name) || h->value == NULL) {
            return ks_error_set(err, KS_E_INVALID, "sigv4: invalid header name or value #%zu", i);
        }
        if (!is_header_value(h->value)) {
            return ks_error_set(err, KS_E_INVALID, "sigv4: control character in header %s",
                                h->name);
        }
        if (name_in(h->name, forbidden_headers)) {
            return ks_error_set(err, KS_E_INVALID, "sigv4: header %s is added by the signer",
                                h->name);
        }
        has_host |= strcasecmp(h->name, "host") == 0;
    }
    if (!has_host) {
        return ks_error_set(err, KS_E_INVALID, "sigv4: the Host header is required");
    }
    return KS_OK;
}

static ks_status validate(const struct ks_sigv4_request *req,
                          const struct ks_sigv4_credentials *creds, uint64_t epoch_seconds,
                          struct ks_error *err)
{
    if (req == NULL || creds == NULL) {
        return ks_error_set(err, KS_E_INVALID, "sigv4: request and credentials are required");
    }
    if (!is_token(req->method)) {
        return ks_error_set(err, KS_E_INVALID, "sigv4: missing or invalid method");
    }
    if (!is_scope_part(req->region) || !is_scope_part(req->service)) {
        return ks_error_set(err, KS_E_INVALID, "sigv4: missing or invalid region or service");
    }
    if (req->body == NULL && req->body_len > 0) {
        return ks_error_set(err, KS_E_INVALID, "sigv4: body_len without body");
    }
    if (!is_visible(creds->access_key_id, "/,=")) {
        return ks_error_set(err, KS_E_INVALID, "sigv4: missing or invalid access key id");
    }
    if (creds->secret_access_key == NULL || creds->secret_access_key[0] == '\0') {
        return ks_error_set(err, KS_E_INVALID, "sigv4: missing secret access key");
    }
    if (creds->session_token != NULL && creds->session_token[0] != '\0' &&
        !is_visible(creds->session_token, "")) {
        return ks_error_set(err, KS_E_INVALID, "sigv4: invalid session token");
    }
    if (epoch_seconds > MAX_EPOCH_SECONDS) {
        return ks_error_set(err, KS_E_INVALID, "sigv4: signing time out of range");
    }
    ks_status st = validate_target(req, err);
    return st != KS_OK ? st : validate_headers(req, err);
}

/*
 * The pieces of one signing, built step by step by the functions below and released together
 * (wiped: the canonical request holds the session token).
 */
struct signing {
    const struct ks_sigv4_request *req;
    const struct ks_sigv4_credentials *creds;
    const char *token; /* NULL when the credentials are long-term */
    char date_stamp[9];
    char payload_hash[SHA256_LEN * 2 + 1];
    struct header_list headers;
    struct query_list query;
    struct sbuf scope, header_block, signed_headers, canonical, string_to_sign;
};

static void signing_free(struct signing *s)
{
    header_list_free(&s->headers);
    query_list_free(&s->query);
    sbuf_free(&s->scope);
    sbuf_free(&s->header_block);
    sbuf_free(&s->signed_headers);
    sbuf_free(&s->canonical);
    sbuf_free(&s->string_to_sign);
    OPENSSL_cleanse(s->payload_hash, sizeof(s->payload_hash));
}

/* X-Amz-Date, the date stamp and the credential scope (aws-apis.md section 6 points 3-4). */
static ks_status step_scope(struct signing *s, uint64_t epoch_seconds, struct ks_sigv4_result *out,
                            struct ks_error *err)
{
    time_t t = (time_t)epoch_seconds;
    struct tm tm;
    if ((uint64_t)t != epoch_seconds || gmtime_r(&t, &tm) == NULL ||
        strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm) !=
            KS_SIGV4_AMZ_DATE_LEN) {
        return ks_error_set(err, KS_E_INVALID, "sigv4: signing time out of range");
    }
    memcpy(s->date_stamp, out->amz_date, 8);
    s->date_stamp[8] = '\0';
    sbuf_puts(&s->scope, s->date_stamp);
    sbuf_putc(&s->scope, '/');
    sbuf_puts(&s->scope, s->req->region);
    sbuf_putc(&s->scope, '/');
    sbuf_puts(&s->scope, s->req->service);
    sbuf_puts(&s->scope, "/" SCOPE_TERMINATOR);
    return s->scope.failed ? ks_error_set(err, KS_E_INTERNAL, "sigv4: out of memory") : KS_OK;
}

/* The payload hash line: SHA-256 of the exact body bytes, lowercase hex. */
static ks_status step_payload(struct signing *s, struct ks_error *err)
{
    unsigned char digest[SHA256_LEN];
    const struct ks_sigv4_request *req = s->req;
    if (sha256(req->body != NULL ? req->body : "", req->body_len, digest) != 0) {
        return ks_error_set(err, KS_E_INTERNAL, "sigv4: SHA-256 failed");
    }
    ks_hex_encode(digest, SHA256_LEN, s->payload_hash);
    return KS_OK;
}

/* Headers to sign: the request's own (minus the skipped ones), then X-Amz-Date and the session
 * token, which KMS and DynamoDB need signed (docs/reference/aws-apis.md section 6). */
static ks_status step_headers(struct signing *s, const char *amz_date, struct ks_error *err)
{
    const struct ks_sigv4_request *req = s->req;
    s->headers.items = calloc(req->header_count + 2, sizeof(*s->headers.items));
    if (s->headers.items == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "sigv4: out of memory");
    }
    int failed = 0;
    for (size_t i = 0; i < req->header_count && !failed; i++) {
        if (!name_in(req->headers[i].name, skipped_headers)) {
            failed = header_list_add(&s->headers, req->headers[i].name, req->headers[i].value);
        }
    }
    failed =
        failed || header_list_add(&s->headers, "x-amz-date", amz_date) != 0 ||
        (s->token != NULL && header_list_add(&s->headers, "x-amz-security-token", s->token) != 0);
    if (failed) {
        return ks_error_set(err, KS_E_INTERNAL, "sigv4: out of memory");
    }
    qsort(s->headers.items, s->headers.count, sizeof(*s->headers.items), compare_headers);
    append_canonical_headers(&s->headers, &s->header_block, &s->signed_headers);
    if (s->header_block.failed || s->signed_headers.failed) {
        return ks_error_set(err, KS_E_INTERNAL, "sigv4: out of memory");
    }
    return KS_OK;
}

/* Canonical request (aws-apis.md section 6 point 1). */
static ks_status step_canonical_request(struct signing *s, struct ks_error *err)
{
    ks_status st = parse_query(s->req->query, &s->query, err);
    if (st != KS_OK) {
        return st;
    }
    if (s->query.count > 1) { /* qsort(NULL, 0, ...) is undefined */
        qsort(s->query.items, s->query.count, sizeof(*s->query.items), compare_query_params);
    }
    struct sbuf *c = &s->canonical;
    sbuf_puts(c, s->req->method);
    sbuf_putc(c, '\n');
    append_canonical_uri(s->req, c);
    sbuf_putc(c, '\n');
    append_query_list(&s->query, c);
    sbuf_putc(c, '\n');
    sbuf_append(c, s->header_block.data, s->header_block.len);
    sbuf_putc(c, '\n');
    sbuf_append(c, s->signed_headers.data, s->signed_headers.len);
    sbuf_putc(c, '\n');
    sbuf_puts(c, s->payload_hash);
    return c->failed ? ks_error_set(err, KS_E_INTERNAL, "sigv4: out of memory") : KS_OK;
}

/* String to sign (point 5). */
static ks_status step_string_to_sign(struct signing *s, const char *amz_date, struct ks_error *err)
{
    unsigned char digest[SHA256_LEN];
    char hex[SHA256_LEN * 2 + 1];
    if (sha256(s->canonical.data, s->canonical.len, digest) != 0) {
        return ks_error_set(err, KS_E_INTERNAL, "sigv4: SHA-256 failed");
    }
    ks_hex_encode(digest, SHA256_LEN, hex);
    struct sbuf *b = &s->string_to_sign;
    sbuf_puts(b, KS_SIGV4_ALGORITHM "\n");
    sbuf_puts(b, amz_date);
    sbuf_putc(b, '\n');
    sbuf_append(b, s->scope.data, s->scope.len);
    sbuf_putc(b, '\n');
    sbuf_puts(b, hex);
    return b->failed ? ks_error_set(err, KS_E_INTERNAL, "sigv4: out of memory") : KS_OK;
}

/* Signature (point 6); the signing key never leaves this function's stack. */
static ks_status step_signature(struct signing *s, struct ks_sigv4_result *out,
                                struct ks_error *err)
{
    unsigned char signing_key[SHA256_LEN];
    unsigned char signature[SHA256_LEN];
    ks_status st = KS_OK;
    if (derive_signing_key(s->creds->secret_access_key, s->date_stamp, s->req->region,
                           s->req->service, signing_key) != 0 ||
        hmac_sha256(signing_key, SHA256_LEN, s->string_to_sign.data, s->string_to_sign.len,
                    signature) != 0) {
        st = ks_error_set(err, KS_E_INTERNAL, "sigv4: HMAC-SHA256 failed");
    } else {
        ks_hex_encode(signature, SHA256_LEN, out->signature);
    }
    OPENSSL_cleanse(signing_key, sizeof(signing_key));
    OPENSSL_cleanse(signature, sizeof(signature));
    return st;
}

/* Authorization header (point 7) and the headers the caller adds, in their documented order;
 * then the outputs move into *out. */
static ks_status step_result(struct signing *s, struct ks_sigv4_result *out, struct ks_error *err)
{
    struct sbuf auth = {0};
    sbuf_puts(&auth, KS_SIGV4_ALGORITHM " Credential=");
    sbuf_puts(&auth, s->creds->access_key_id);
    sbuf_putc(&auth, '/');
    sbuf_append(&auth, s->scope.data, s->scope.len);
    sbuf_puts(&auth, ", SignedHeaders=");
    sbuf_append(&auth, s->signed_headers.data, s->signed_headers.len);
    sbuf_puts(&auth, ", Signature=");
    sbuf_puts(&auth, out->signature);
    out->authorization = sbuf_take(&auth);
    sbuf_free(&auth);
    size_t n = 0;
    const char *date = (const char *)ks_secret_dup(out->amz_date, sizeof(out->amz_date));
    out->add_headers[n++] = (struct ks_sigv4_header){"X-Amz-Date", date};
    if (s->token != NULL) {
        const char *token = (const char *)ks_secret_dup(s->token, strlen(s->token) + 1);
        out->add_headers[n++] = (struct ks_sigv4_header){"X-Amz-Security-Token", token};
    }
    out->add_headers[n++] = (struct ks_sigv4_header){"Authorization", out->authorization};
    out->add_header_count = n;
    out->canonical_request = sbuf_take(&s->canonical);
    out->string_to_sign = sbuf_take(&s->string_to_sign);
    out->signed_headers = sbuf_take(&s->signed_headers);
    out->credential_scope = sbuf_take(&s->scope);
    for (size_t i = 0; i < n; i++) {
        if (out->add_headers[i].value == NULL) {
            return ks_error_set(err, KS_E_INTERNAL, "sigv4: out of memory");
        }
    }
    if (out->canonical_request == NULL || out->string_to_sign == NULL ||
        out->signed_headers == NULL || out->credential_scope == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "sigv4: out of memory");
    }
    return KS_OK;
}

ks_status ks_sigv4_sign(const struct ks_sigv4_request *req,
                        const struct ks_sigv4_credentials *creds, uint64_t epoch_seconds,
                        struct ks_sigv4_result *out, struct ks_error *err)
{
    if (out == NULL) {
        return ks_error_set(err, KS_E_INVALID, "sigv4: no result");
    }
    memset(out, 0, sizeof(*out));
    ks_status st = validate(req, creds, epoch_seconds, err);
    if (st != KS_OK) {
        return st;
    }
    struct signing s = {.req = req, .creds = creds};
    s.token = (creds->session_token != NULL && creds->session_token[0] != '\0')
                  ? creds->session_token
                  : NULL;
    if ((st = step_scope(&s, epoch_seconds, out, err)) == KS_OK &&
        (st = step_payload(&s, err)) == KS_OK &&
        (st = step_headers(&s, out->amz_date, err)) == KS_OK &&
        (st = step_canonical_request(&s, err)) == KS_OK &&
        (st = step_string_to_sign(&s, out->amz_date, err)) == KS_OK &&
        (st = step_signature(&s, out, err)) == KS_OK) {
        st = step_result(&s, out, err);
    }
    signing_free(&s);
    if (st != KS_OK) {
        ks_sigv4_result_free(out);
    }
    return st;
}
