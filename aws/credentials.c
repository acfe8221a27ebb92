/*
 * aws_credentials.c - the credential providers of aws/aws.h (docs/reference/aws-apis.md
 * section 5): environment (5.1), shared files (5.2), container (5.3), EC2 IMDSv2 (5.4) and
 * static keys from the config.
 *
 * Every source goes through one cache: credentials without an expiration are fetched once and
 * kept; expiring ones are refreshed in two stages (5.5, botocore): advisory when less than
 * 15 min remain (a failure keeps the old credentials) and mandatory when less than 10 min remain
 * (a failure is an error). Fetches are serialized by refresh_lock; during an advisory refresh
 * other threads keep signing with the old credentials instead of waiting for the network.
 *
 * Test hooks (all read through struct ks_aws_environment, so tests inject them):
 *   KEYSTORED_CONTAINER_CREDENTIALS_HOST  replaces "http://169.254.170.2" as the base of
 *                                         AWS_CONTAINER_CREDENTIALS_RELATIVE_URI;
 *   AWS_EC2_METADATA_SERVICE_ENDPOINT     the SDKs' own IMDS endpoint override.
 *
 * Secrets (secret keys, session tokens, the IMDS token, metadata responses, credential files)
 * live in buffers wiped before release. Metadata responses are parsed by a small flat-JSON
 * reader below rather than json-c, whose internal copies of the strings would be freed unwiped.
 */
#include "aws/aws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/secbuf.h"
#include "common/secret.h"

/* Section 5.5 (B-CRED): refresh windows before Expiration. */
#define ADVISORY_REFRESH_S (15u * 60u)
#define MANDATORY_REFRESH_S (10u * 60u)
/* Section 5.4: token TTL requested, and how long it is cached (aws-c-auth uses 21595 s). */
#define IMDS_TOKEN_TTL "21600"
#define IMDS_TOKEN_CACHE_S 21595u
#define IMDS_TIMEOUT_MS 1000L /* C-AUTH / B-CRED: 1 s */
#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"
#define CONTAINER_DEFAULT_HOST "http://169.254.170.2"
#define CONTAINER_CONNECT_TIMEOUT_MS 2000L
#define CONTAINER_TIMEOUT_MS 5000L
#define METADATA_MAX_BODY (64u * 1024u)
#define CRED_FILE_MAX (1024u * 1024u)

struct ks_aws_credentials_provider {
    enum ks_aws_cred_source source;
    char *profile;
    struct ks_aws_credentials static_creds;
    const char *(*getenv_fn)(void *ctx, const char *name);
    void *getenv_ctx;
    const struct ks_clock *clock;

    pthread_mutex_t refresh_lock; /* serializes fetches; guards imds_token */
    char *imds_token;             /* secret */
    uint64_t imds_token_expiry;

    pthread_mutex_t data_lock; /* guards cached/have_cached */
    struct ks_aws_credentials cached;
    int have_cached;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    /* Reference counted: aws_client.c initialises too. */
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* --- small helpers ----------------------------------------------------------------------- */

static const char *env_get(const struct ks_aws_credentials_provider *p, const char *name)
{
    const char *v = p->getenv_fn != NULL ? p->getenv_fn(p->getenv_ctx, name) : getenv(name);
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

static uint64_t now_seconds(const struct ks_aws_credentials_provider *p)
{
    return p->clock->now_us(p->clock->ctx) / 1000000u;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = (char *)ks_secret_alloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static char *dup_str(const char *s)
{
    return s != NULL ? dup_n(s, strlen(s)) : NULL;
}

void ks_aws_credentials_clear(struct ks_aws_credentials *c)
{
    if (c == NULL) {
        return;
    }
    ks_secret_free_string(c->access_key_id);
    ks_secret_free_string(c->secret_access_key);
    ks_secret_free_string(c->session_token);
    memset(c, 0, sizeof(*c));
}

static ks_status creds_set(struct ks_aws_credentials *dst, const char *id, const char *secret,
                           const char *token, uint64_t expiration, struct ks_error *err)
{
    memset(dst, 0, sizeof(*dst));
    dst->access_key_id = dup_str(id);
    dst->secret_access_key = dup_str(secret);
    dst->session_token = dup_str(token);
    dst->expiration = expiration;
    if (dst->access_key_id == NULL || dst->secret_access_key == NULL ||
        (token != NULL && dst->session_token == NULL)) {
        ks_aws_credentials_clear(dst);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    return KS_OK;
}

static ks_status creds_copy(const struct ks_aws_credentials *src, struct ks_aws_credentials *dst,
                            struct ks_error *err)
{
    return creds_set(dst, src->access_key_id, src->secret_access_key, src->session_token,
                     src->expiration, err);
}

/* Header values must not be able to inject lines (5.3: reject CR or LF). */
static int header_safe(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\r' || ch == '\n' || ch == 0x7f || (ch < 0x20 && ch != '\t')) {
            return 0;
        }
    }
    return 1;
}

/* An access key id is an identifier: printable ASCII without spaces. */
static int key_id_valid(const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (*s <= 0x20 || *s >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/*
 * ISO-8601 UTC as the metadata services and AWS_CREDENTIAL_EXPIRATION write it:
 * YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM). 0 and *out set, or -1.
 */
static int parse_iso8601(const char *s, uint64_t *out)
{
    int y, mo, d, h, mi, sec;
    if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec)) {
        return -1;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return -1;
    }
    const char *t = s + 19;
    if (*t == '.') {
        t++;
        if (*t < '0' || *t > '9') {
            return -1;
        }
        while (*t >= '0' && *t <= '9') {
            t++;
        }
    }
    int64_t offset = 0;
    if ((*t == 'Z' || *t == 'z') && t[1] == '\0') {
        offset = 0;
    } else if ((*t == '+' || *t == '-') && strlen(t) == 6 && t[3] == ':') {
        int oh, om;
        if (digits(t + 1, 2, &oh) || digits(t + 4, 2, &om) || oh > 23 || om > 59) {
            return -1;
        }
        offset = (*t == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
    } else {
        return -1;
    }
    int64_t epoch =
        days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    if (epoch <= 0) {
        return -1;
    }
    *out = (uint64_t)epoch;
    return 0;
}

/* --- a flat JSON reader for credential documents ----------------------------------------- */

struct jscan {
    const char *p;
    const char *end;
};

static void js_ws(struct jscan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) {
        s->p++;
    }
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') {
            v |= (unsigned)(ch - '0');
        } else if (ch >= 'a' && ch <= 'f') {
            v |= (unsigned)(ch - 'a' + 10);
        } else if (ch >= 'A' && ch <= 'F') {
            v |= (unsigned)(ch - 'A' + 10);
        } else {
            return -1;
        }
    }
    *out = v;
    return 0;
}

/*
 * Reads a JSON string at s->p. With out != NULL decodes it into a new wiped-on-free buffer
 * (decoded text is never longer than the raw text). 0, or -1 when malformed.
 */
static int js_string(struct jscan *s, char **out)
{
    if (s->p >= s->end || *s->p != '"') {
        return -1;
    }
    const char *start = ++s->p;
    while (s->p < s->end && *s->p != '"') {
        if ((unsigned char)*s->p < 0x20) {
            return -1;
        }
        s->p += (*s->p == '\\') ? 2 : 1;
    }
    if (s->p >= s->end) {
        return -1;
    }
    const char *stop = s->p++;
    if (out == NULL) {
        return 0;
    }
    char *buf = (char *)ks_secret_alloc((size_t)(stop - start) + 1);
    if (buf == NULL) {
        return -1;
    }
    size_t n = 0;
    for (const char *q = start; q < stop; q++) {
        if (*q != '\\') {
            buf[n++] = *q;
            continue;
        }
        q++;
        unsigned cp;
        switch (*q) {
        case '"':
        case '\\':
        case '/':
            buf[n++] = *q;
            continue;
        case 'b':
            buf[n++] = '\b';
            continue;
        case 'f':
            buf[n++] = '\f';
            continue;
        case 'n':
            buf[n++] = '\n';
            continue;
        case 'r':
            buf[n++] = '\r';
            continue;
        case 't':
            buf[n++] = '\t';
            continue;
        case 'u':
            if (stop - q < 5 || hex4(q + 1, &cp) != 0) {
                goto bad;
            }
            q += 4;
            if (cp >= 0xd800 && cp < 0xdc00) {
                unsigned lo;
                if (stop - q < 7 || q[1] != '\\' || q[2] != 'u' || hex4(q + 3, &lo) != 0 ||
                    lo < 0xdc00 || lo > 0xdfff) {
                    goto bad;
                }
                q += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                goto bad;
            }
            if (cp == 0) {
                goto bad; /* an embedded NUL would truncate the C string */
            }
            if (cp < 0x80) {
                buf[n++] = (char)cp;
            } else if (cp < 0x800) {
                buf[n++] = (char)(0xc0 | (cp >> 6));
                buf[n++] = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                buf[n++] = (char)(0xe0 | (cp >> 12));
                buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                buf[n++] = (char)(0x80 | (cp & 0x3f));
            } else {
                buf[n++] = (char)(0xf0 | (cp >> 18));
                buf[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                buf[n++] = (char)(0x80 | (cp & 0x3f));
            }
            continue;
        default:
            goto bad;
        }
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
bad:
    ks_secret_free(buf, (size_t)(stop - start) + 1);
    return -1;
}

/* Skips any JSON value (nested ones by bracket depth). 0, or -1. */
static int js_skip_value(struct jscan *s)
{
    js_ws(s);
    if (s->p >= s->end) {
        return -1;
    }
    if (*s->p == '"') {
        return js_string(s, NULL);
    }
    if (*s->p == '{' || *s->p == '[') {
        int depth = 0;
        while (s->p < s->end) {
            char ch = *s->p;
            if (ch == '"') {
                if (js_string(s, NULL) != 0) {
                    return -1;
                }
                continue;
            }
            if (ch == '{' || ch == '[') {
                if (++depth > 32) {
                    return -1;
                }
            } else if (ch == '}' || ch == ']') {
                if (--depth == 0) {
                    s->p++;
                    return 0;
                }
            }
            s->p++;
        }
        return -1;
    }
    const char *start = s->p;
    while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']' && *s->p != ' ' &&
           *s->p != '\n' && *s->p != '\r' && *s->p != '\t') {
        s->p++;
    }
    return s->p > start ? 0 : -1;
}

struct js_field {
    const char *name;
    char **value; /* set when the member is a string; NULL-initialised by the caller */
};

/* Reads a JSON object, extracting the string members named in fields. 0, or -1 when the text
 * is not a JSON object. On -1 the extracted values are the caller's to free. */
static int js_object(const char *text, size_t len, struct js_field *fields, size_t n_fields)
{
    struct jscan s = {text, text + len};
    js_ws(&s);
    if (s.p >= s.end || *s.p != '{') {
        return -1;
    }
    s.p++;
    js_ws(&s);
    if (s.p < s.end && *s.p == '}') {
        return 0;
    }
    for (;;) {
        char *key = NULL;
        js_ws(&s);
        if (js_string(&s, &key) != 0) {
            return -1;
        }
        js_ws(&s);
        if (s.p >= s.end || *s.p != ':') {
            ks_secret_free_string(key);
            return -1;
        }
        s.p++;
        js_ws(&s);
        struct js_field *f = NULL;
        for (size_t i = 0; i < n_fields; i++) {
            if (strcmp(key, fields[i].name) == 0) {
                f = &fields[i];
            }
        }
        ks_secret_free_string(key);
        if (f != NULL && s.p < s.end && *s.p == '"') {
            char *v = NULL;
            if (js_string(&s, &v) != 0) {
                return -1;
            }
            ks_secret_free_string(*f->value); /* a repeated member: the last one wins */
            *f->value = v;
        } else if (js_skip_value(&s) != 0) {
            return -1;
        }
        js_ws(&s);
        if (s.p < s.end && *s.p == ',') {
            s.p++;
            continue;
        }
        if (s.p < s.end && *s.p == '}') {
            return 0;
        }
        return -1;
    }
}

/* --- HTTP for the metadata services ------------------------------------------------------ */

static void slist_free_wiped(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l != NULL; l = l->next) {
        OPENSSL_cleanse(l->data, strlen(l->data));
    }
    curl_slist_free_all(list);
}

/* Appends "name: value" (value may be a secret). 0, or -1 (list unchanged). */
static int header_add(struct curl_slist **list, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    if (line == NULL) {
        return -1;
    }
    snprintf(line, n, "%s: %s", name, value);
    struct curl_slist *next = curl_slist_append(*list, line);
    OPENSSL_cleanse(line, n);
    free(line);
    if (next == NULL) {
        return -1;
    }
    *list = next;
    return 0;
}

/*
 * One metadata request. No proxy (a proxy must never see the metadata service), no redirects,
 * http/https only. KS_OK with *status and body filled (any HTTP status), KS_E_UNAVAILABLE when
 * nothing came back.
 */
static ks_status http_fetch(const char *method, const char *url, struct curl_slist *headers,
                            struct curl_slist *resolve, long connect_ms, long timeout_ms,
                            long *status, struct ks_secbuf *body, struct ks_error *err)
{
    CURL *h = curl_easy_init();
    if (h == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "keystored/0.1");
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (resolve != NULL) {
        curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, ks_secbuf_curl_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    CURLcode rc = curl_easy_perform(h);
    *status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        ks_secbuf_free(body);
        return ks_error_set(err, KS_E_UNAVAILABLE, "credentials endpoint: %s",
                            curl_easy_strerror(rc));
    }
    return KS_OK;
}

/* Status of a metadata HTTP error: 5xx is the service being down, anything else means this
 * host has no usable credentials there (a configuration problem). */
static ks_status metadata_http_error(const char *what, long status, struct ks_error *err)
{
    return ks_error_set(err, status >= 500 ? KS_E_UNAVAILABLE : KS_E_CONFIG, "%s returned HTTP %ld",
                        what, status);
}

/* Parses the credential document of the container and IMDS endpoints (5.3, 5.4). */
static ks_status parse_credential_document(const char *what, const struct ks_secbuf *body,
                                           struct ks_aws_credentials *out, struct ks_error *err)
{
    char *id = NULL, *secret = NULL, *token = NULL, *expiration = NULL, *code = NULL;
    char *message = NULL;
    struct js_field fields[] = {
        {"AccessKeyId", &id}, {"SecretAccessKey", &secret},
        {"Token", &token},    {"Expiration", &expiration},
        {"Code", &code},      {"Message", &message},
    };
    ks_status st = KS_E_CONFIG;
    uint64_t exp = 0;
    if (body->data == NULL || js_object(body->data, body->len, fields, 6) != 0) {
        ks_error_set(err, st, "%s: credentials response is not a JSON object", what);
    } else if (code != NULL && strcmp(code, "Success") != 0) {
        char safe[64] = "";
        for (size_t i = 0; code[i] != '\0' && i + 1 < sizeof(safe); i++) {
            safe[i] = (code[i] > 0x20 && code[i] < 0x7f) ? code[i] : '?';
        }
        ks_error_set(err, st, "%s: credentials response Code %s", what, safe);
    } else if (!key_id_valid(id) || secret == NULL || secret[0] == '\0' || !header_safe(secret) ||
               (token != NULL && !header_safe(token))) {
        ks_error_set(err, st, "%s: credentials response lacks AccessKeyId/SecretAccessKey", what);
    } else if (expiration != NULL && parse_iso8601(expiration, &exp) != 0) {
        ks_error_set(err, st, "%s: credentials response has a bad Expiration", what);
    } else {
        out->access_key_id = id;
        out->secret_access_key = secret;
        out->session_token = (token != NULL && token[0] != '\0') ? token : NULL;
        out->expiration = exp;
        if (out->session_token == NULL) {
            ks_secret_free_string(token);
        }
        id = secret = token = NULL;
        st = KS_OK;
    }
    ks_secret_free_string(id);
    ks_secret_free_string(secret);
    ks_secret_free_string(token);
    ks_secret_free_string(expiration);
    ks_secret_free_string(code);
    ks_secret_free_string(message);
    return st;
}

/* --- 5.1 environment --------------------------------------------------------------------- */

static ks_status fetch_env(struct ks_aws_credentials_provider *p, struct ks_aws_credentials *out,
                           struct ks_error *err)
{
    const char *id = env_get(p, "AWS_ACCESS_KEY_ID");
    const char *secret = env_get(p, "AWS_SECRET_ACCESS_KEY");
    const char *token = env_get(p, "AWS_SESSION_TOKEN");
    const char *exp = env_get(p, "AWS_CREDENTIAL_EXPIRATION");
    if (token == NULL) {
        token = env_get(p, "AWS_SECURITY_TOKEN"); /* legacy name (B-CRED EnvProvider) */
    }
    if (!key_id_valid(id) || secret == NULL) {
        return ks_error_set(err, KS_E_CONFIG,
                            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set");
    }
    if (!header_safe(secret) || (token != NULL && !header_safe(token))) {
        return ks_error_set(err, KS_E_CONFIG, "AWS credentials in the environment are malformed");
    }
    uint64_t expiration = 0;
    if (exp != NULL && parse_iso8601(exp, &expiration) != 0) {
        return ks_error_set(err, KS_E_CONFIG, "AWS_CREDENTIAL_EXPIRATION is not ISO-8601");
    }
    return creds_set(out, id, secret, token, expiration, err);
}

/* --- 5.2 shared files -------------------------------------------------------------------- */

/* Reads a whole file into a wiped-on-free buffer. 1 read, 0 absent, -1 error. */
static int read_file_secret(const char *path, char **out, size_t *len, size_t *cap)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
    }
    /* Read to a fixed cap: the files are small; a bigger one is not a credentials file. */
    size_t size = 4096, n = 0;
    char *buf = malloc(size);
    int rc = -1;
    while (buf != NULL) {
        size_t got = fread(buf + n, 1, size - n - 1, f);
        n += got;
        if (got == 0) {
            rc = ferror(f) ? -1 : 1;
            break;
        }
        if (n + 1 == size) {
            if (size >= CRED_FILE_MAX) {
                break;
            }
            char *bigger = malloc(size * 2);
            if (bigger != NULL) {
                memcpy(bigger, buf, n);
            }
            ks_secret_free(buf, size);
            buf = bigger;
            size *= 2;
        }
    }
    fclose(f);
    if (rc != 1) {
        if (buf != NULL) {
            ks_secret_free(buf, size);
        }
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    *cap = size;
    return 1;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
    return s;
}

struct profile_values {
    char *id;
    char *secret;
    char *token;
};

static void profile_values_free(struct profile_values *v)
{
    ks_secret_free_string(v->id);
    ks_secret_free_string(v->secret);
    ks_secret_free_string(v->token);
    memset(v, 0, sizeof(*v));
}

/*
 * Does section header text (between the brackets, trimmed) name the profile? In the
 * credentials file sections are [name]; in the config file [profile name], except [default]
 * (SDKREF-FILES; botocore also accepts [profile default]).
 */
static int section_matches(const char *section, const char *profile, int config_file)
{
    if (!config_file) {
        return strcmp(section, profile) == 0;
    }
    if (strcmp(profile, "default") == 0 && strcmp(section, "default") == 0) {
        return 1;
    }
    if (strncmp(section, "profile", 7) != 0 || (section[7] != ' ' && section[7] != '\t')) {
        return 0;
    }
    const char *name = section + 7;
    while (*name == ' ' || *name == '\t') {
        name++;
    }
    return strcmp(name, profile) == 0;
}

static int set_value(char **slot, const char *value)
{
    char *v = dup_str(value);
    if (v == NULL) {
        return -1;
    }
    ks_secret_free_string(*slot);
    *slot = v;
    return 0;
}

/*
 * Parses an INI-like AWS file in place (5.2): '#' and ';' comment lines, "key = value"
 * properties with keys compared case-insensitively (botocore's configparser lowercases them),
 * inline comments after whitespace, indented continuation lines of a nested property ignored.
 * A repeated key or section: the last value wins. 0, or -1 on allocation failure.
 */
static int parse_profile_file(char *text, const char *profile, int config_file,
                              struct profile_values *v)
{
    int in_profile = 0, after_property = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        int indented = line[0] == ' ' || line[0] == '\t';
        char *t = trim(line);
        if (t[0] == '\0' || t[0] == '#' || t[0] == ';') {
            continue;
        }
        if (t[0] == '[') {
            char *close = strchr(t, ']');
            after_property = 0;
            if (close == NULL) {
                in_profile = 0; /* malformed header: ignore the section */
                continue;
            }
            *close = '\0';
            in_profile = section_matches(trim(t + 1), profile, config_file);
            continue;
        }
        if (indented && after_property) {
            continue; /* a sub-property ("s3 =\n  max_concurrent_requests = 20") */
        }
        char *eq = strchr(t, '=');
        if (eq == NULL) {
            continue;
        }
        after_property = 1;
        if (!in_profile) {
            continue;
        }
        *eq = '\0';
        char *key = trim(t);
        char *value = eq + 1;
        for (char *c = value; *c != '\0'; c++) {
            if ((*c == '#' || *c == ';') && c > value && (c[-1] == ' ' || c[-1] == '\t')) {
                *c = '\0';
                break;
            }
        }
        value = trim(value);
        char **slot = NULL;
        if (strcasecmp(key, "aws_access_key_id") == 0) {
            slot = &v->id;
        } else if (strcasecmp(key, "aws_secret_access_key") == 0) {
            slot = &v->secret;
        } else if (strcasecmp(key, "aws_session_token") == 0 ||
                   (strcasecmp(key, "aws_security_token") == 0 && v->token == NULL)) {
            slot = &v->token;
        }
        if (slot != NULL && value[0] != '\0' && set_value(slot, value) != 0) {
            return -1;
        }
    }
    return 0;
}

/* The path from env var name, else ~/.aws/<file>; a leading "~/" is expanded. 0, or -1. */
static int profile_path(struct ks_aws_credentials_provider *p, const char *env_name,
                        const char *file, char *out, size_t out_size)
{
    const char *path = env_get(p, env_name);
    const char *home = env_get(p, "HOME");
    int n;
    if (path != NULL && strncmp(path, "~/", 2) != 0) {
        n = snprintf(out, out_size, "%s", path);
    } else if (home == NULL) {
        return -1;
    } else if (path != NULL) {
        n = snprintf(out, out_size, "%s%s", home, path + 1);
    } else {
        n = snprintf(out, out_size, "%s/.aws/%s", home, file);
    }
    return (n > 0 && (size_t)n < out_size) ? 0 : -1;
}

static ks_status fetch_profile(struct ks_aws_credentials_provider *p,
                               struct ks_aws_credentials *out, struct ks_error *err)
{
    static const struct {
        const char *env;
        const char *file;
        int config_file;
    } files[] = {
        /* 5.2: the credentials file is read first and wins. */
        {"AWS_SHARED_CREDENTIALS_FILE", "credentials", 0},
        {"AWS_CONFIG_FILE", "config", 1},
    };
    int found_file = 0;
    for (size_t i = 0; i < 2; i++) {
        char path[4096];
        if (profile_path(p, files[i].env, files[i].file, path, sizeof(path)) != 0) {
            continue;
        }
        char *text = NULL;
        size_t len = 0, cap = 0;
        int rc = read_file_secret(path, &text, &len, &cap);
        if (rc < 0) {
            return ks_error_set(err, KS_E_CONFIG, "cannot read AWS %s file", files[i].file);
        }
        if (rc == 0) {
            continue;
        }
        found_file = 1;
        struct profile_values v = {0};
        int prc = parse_profile_file(text, p->profile, files[i].config_file, &v);
        ks_secret_free(text, cap);
        if (prc != 0) {
            profile_values_free(&v);
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
        }
        if (v.id == NULL && v.secret == NULL) {
            profile_values_free(&v);
            continue;
        }
        ks_status st = KS_OK;
        if (!key_id_valid(v.id) || v.secret == NULL || !header_safe(v.secret) ||
            (v.token != NULL && !header_safe(v.token))) {
            st = ks_error_set(err, KS_E_CONFIG,
                              "AWS profile '%s' in the %s file has partial credentials", p->profile,
                              files[i].file);
        } else {
            out->access_key_id = v.id;
            out->secret_access_key = v.secret;
            out->session_token = v.token;
            out->expiration = 0;
            memset(&v, 0, sizeof(v));
        }
        profile_values_free(&v);
        return st;
    }
    return ks_error_set(err, KS_E_CONFIG,
                        found_file ? "AWS profile '%s' has no credentials"
                                   : "no AWS credentials or config file (profile '%s')",
                        p->profile);
}

/* --- 5.3 container ----------------------------------------------------------------------- */

/* 5.3: the hosts a plain-http full URI may resolve to. */
static int container_address_allowed(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        uint32_t a = ntohl(in->sin_addr.s_addr);
        return (a >> 24) == 127 || a == 0xa9fea902u /* 169.254.170.2 */ ||
               a == 0xa9feaa17u /* 169.254.170.23 */;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        static const unsigned char eks[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0,
                                              0,    0,    0,    0,    0, 0, 0, 0x23};
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               memcmp(&in6->sin6_addr, eks, sizeof(eks)) == 0;
    }
    return 0;
}

/*
 * 5.3: a full URI must be https, or http to a host whose every address is allowed. A host name
 * is resolved here and pinned with CURLOPT_RESOLVE to the addresses that were checked, so that
 * a second DNS answer cannot point curl elsewhere.
 */
static ks_status container_check_url(const char *url, struct curl_slist **resolve,
                                     struct ks_error *err)
{
    ks_status st = KS_E_CONFIG;
    char *scheme = NULL, *host = NULL, *port = NULL;
    struct addrinfo *res = NULL;
    CURLU *u = curl_url();
    if (u == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        ks_error_set(err, st, "AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL");
        goto out;
    }
    if (strcmp(scheme, "https") == 0) {
        st = KS_OK;
        goto out;
    }
    if (strcmp(scheme, "http") != 0) {
        ks_error_set(err, st, "AWS_CONTAINER_CREDENTIALS_FULL_URI must be http or https");
        goto out;
    }
    char bare[256];
    size_t hlen = strlen(host);
    if (hlen >= sizeof(bare)) {
        ks_error_set(err, st, "container credentials host is too long");
        goto out;
    }
    if (host[0] == '[' && hlen > 2) {
        memcpy(bare, host + 1, hlen - 2);
        bare[hlen - 2] = '\0';
    } else {
        memcpy(bare, host, hlen + 1);
    }
    unsigned char probe[sizeof(struct in6_addr)];
    int literal = inet_pton(AF_INET, bare, probe) == 1 || inet_pton(AF_INET6, bare, probe) == 1;
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = literal ? AI_NUMERICHOST : 0;
    if (getaddrinfo(bare, NULL, &hints, &res) != 0 || res == NULL) {
        ks_error_set(err, KS_E_UNAVAILABLE, "cannot resolve the container credentials host");
        st = KS_E_UNAVAILABLE;
        goto out;
    }
    char pin[1024];
    int pn = snprintf(pin, sizeof(pin), "%s:%s:", host, port);
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (!container_address_allowed(ai->ai_addr)) {
            ks_error_set(err, st,
                         "AWS_CONTAINER_CREDENTIALS_FULL_URI over http must name a loopback, "
                         "169.254.170.2, 169.254.170.23 or fd00:ec2::23 host");
            goto out;
        }
        char addr[INET6_ADDRSTRLEN];
        const void *src =
            ai->ai_family == AF_INET
                ? (const void *)&((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr
                : (const void *)&((const struct sockaddr_in6 *)(const void *)ai->ai_addr)
                      ->sin6_addr;
        if (inet_ntop(ai->ai_family, src, addr, sizeof(addr)) != NULL && pn > 0 &&
            (size_t)pn < sizeof(pin)) {
            int m = snprintf(pin + pn, sizeof(pin) - (size_t)pn,
                             ai->ai_family == AF_INET6 ? "%s[%s]" : "%s%s",
                             pin[pn - 1] == ':' ? "" : ",", addr);
            pn = m > 0 ? pn + m : pn;
        }
    }
    st = KS_OK;
    if (!literal && pn > 0 && (size_t)pn < sizeof(pin)) {
        struct curl_slist *l = curl_slist_append(NULL, pin);
        if (l == NULL) {
            st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        }
        *resolve = l;
    }
out:
    if (res != NULL) {
        freeaddrinfo(res);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return st;
}

/* 5.3: the token file wins and is re-read on every fetch (EKS rotates it). A trailing newline
 * (editors add one) is dropped; any other CR or LF is refused. */
static ks_status container_auth_token(struct ks_aws_credentials_provider *p, char **out,
                                      struct ks_error *err)
{
    *out = NULL;
    const char *file = env_get(p, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (file != NULL) {
        char *text = NULL;
        size_t len = 0, cap = 0;
        if (read_file_secret(file, &text, &len, &cap) != 1) {
            return ks_error_set(err, KS_E_CONFIG,
                                "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
        }
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) {
            text[--len] = '\0';
        }
        *out = dup_n(text, len);
        ks_secret_free(text, cap);
    } else {
        const char *token = env_get(p, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
        if (token == NULL) {
            return KS_OK;
        }
        *out = dup_str(token);
    }
    if (*out == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    if (!header_safe(*out)) {
        ks_secret_free_string(*out);
        *out = NULL;
        return ks_error_set(err, KS_E_CONFIG,
                            "container authorization token contains CR, LF or control bytes");
    }
    return KS_OK;
}

static ks_status fetch_container(struct ks_aws_credentials_provider *p,
                                 struct ks_aws_credentials *out, struct ks_error *err)
{
    const char *relative = env_get(p, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env_get(p, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    char url[2048];
    struct curl_slist *resolve = NULL;
    ks_status st;
    if (relative != NULL) { /* 5.3: takes priority when set */
        const char *host = env_get(p, "KEYSTORED_CONTAINER_CREDENTIALS_HOST");
        int n = snprintf(url, sizeof(url), "%s%s", host != NULL ? host : CONTAINER_DEFAULT_HOST,
                         relative);
        if (relative[0] != '/' || !header_safe(relative) || strchr(relative, ' ') != NULL ||
            n < 0 || (size_t)n >= sizeof(url)) {
            return ks_error_set(err, KS_E_CONFIG,
                                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be a path");
        }
    } else if (full != NULL) {
        int n = snprintf(url, sizeof(url), "%s", full);
        if (n < 0 || (size_t)n >= sizeof(url) || !header_safe(full)) {
            return ks_error_set(err, KS_E_CONFIG, "AWS_CONTAINER_CREDENTIALS_FULL_URI is invalid");
        }
        st = container_check_url(url, &resolve, err);
        if (st != KS_OK) {
            return st;
        }
    } else {
        return ks_error_set(err, KS_E_CONFIG,
                            "neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor "
                            "AWS_CONTAINER_CREDENTIALS_FULL_URI is set");
    }
    char *token = NULL;
    struct curl_slist *headers = NULL;
    st = container_auth_token(p, &token, err);
    if (st == KS_OK && token != NULL && header_add(&headers, "Authorization", token) != 0) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    ks_secret_free_string(token);
    struct ks_secbuf body;
    ks_secbuf_init(&body, METADATA_MAX_BODY);
    long status = 0;
    if (st == KS_OK) {
        st = http_fetch("GET", url, headers, resolve, CONTAINER_CONNECT_TIMEOUT_MS,
                        CONTAINER_TIMEOUT_MS, &status, &body, err);
    }
    if (st == KS_OK) {
        st = status == 200
                 ? parse_credential_document("container credentials endpoint", &body, out, err)
                 : metadata_http_error("container credentials endpoint", status, err);
    }
    ks_secbuf_free(&body);
    slist_free_wiped(headers);
    curl_slist_free_all(resolve);
    return st;
}

/* --- 5.4 IMDSv2 -------------------------------------------------------------------------- */

static ks_status imds_request(const char *method, const char *url, const char *token, long *status,
                              struct ks_secbuf *body, struct ks_error *err)
{
    struct curl_slist *headers = NULL;
    int rc = token != NULL
                 ? header_add(&headers, "X-aws-ec2-metadata-token", token)
                 : header_add(&headers, "X-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL);
    if (rc != 0) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    ks_status st =
        http_fetch(method, url, headers, NULL, IMDS_TIMEOUT_MS, IMDS_TIMEOUT_MS, status, body, err);
    slist_free_wiped(headers);
    return st;
}

/* Role names are IAM names ([A-Za-z0-9+=,.@_-]); anything else would change the path. */
static int role_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > 128) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("+=,.@_-", ch) != NULL)) {
            return 0;
        }
    }
    return 1;
}

static ks_status imds_token(struct ks_aws_credentials_provider *p, const char *base,
                            struct ks_error *err)
{
    uint64_t now = now_seconds(p);
    if (p->imds_token != NULL && now < p->imds_token_expiry) {
        return KS_OK;
    }
    ks_secret_free_string(p->imds_token);
    p->imds_token = NULL;
    char url[1024];
    snprintf(url, sizeof(url), "%s/latest/api/token", base);
    struct ks_secbuf body;
    ks_secbuf_init(&body, METADATA_MAX_BODY);
    long status = 0;
    ks_status st = imds_request("PUT", url, NULL, &status, &body, err);
    if (st != KS_OK) {
        return st;
    }
    if (status != 200) {
        st = metadata_http_error("IMDS token request", status, err);
    } else if (body.data == NULL || body.len == 0 || !header_safe(body.data)) {
        st = ks_error_set(err, KS_E_UNAVAILABLE, "IMDS returned an unusable token");
    } else if ((p->imds_token = dup_n(body.data, body.len)) == NULL) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    } else {
        p->imds_token_expiry = now + IMDS_TOKEN_CACHE_S;
    }
    ks_secbuf_free(&body);
    return st;
}

/*
 * 5.5 "static stability": IMDS may hand out credentials already inside the refresh window;
 * like botocore, use them until now + 15 min + a random 2-10 min instead of refreshing on
 * every call.
 */
static void imds_extend_expiration(struct ks_aws_credentials_provider *p,
                                   struct ks_aws_credentials *c)
{
    uint64_t now = now_seconds(p);
    if (c->expiration == 0 || c->expiration >= now + ADVISORY_REFRESH_S) {
        return;
    }
    uint16_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1) {
        r = 0;
    }
    c->expiration = now + ADVISORY_REFRESH_S + 120u + (uint64_t)(r % 481u);
}

static ks_status fetch_imds(struct ks_aws_credentials_provider *p, struct ks_aws_credentials *out,
                            struct ks_error *err)
{
    const char *disabled = env_get(p, "AWS_EC2_METADATA_DISABLED");
    if (disabled != NULL && strcasecmp(disabled, "true") == 0) {
        return ks_error_set(err, KS_E_CONFIG, "IMDS is disabled (AWS_EC2_METADATA_DISABLED)");
    }
    const char *endpoint = env_get(p, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    char base[512];
    int n = snprintf(base, sizeof(base), "%s", endpoint != NULL ? endpoint : IMDS_DEFAULT_ENDPOINT);
    if (n < 0 || (size_t)n >= sizeof(base) || !header_safe(base)) {
        return ks_error_set(err, KS_E_CONFIG, "AWS_EC2_METADATA_SERVICE_ENDPOINT is invalid");
    }
    while (n > 0 && base[n - 1] == '/') {
        base[--n] = '\0';
    }
    /* A 401 means the cached token is no longer accepted: fetch a new one once (C-AUTH). */
    for (int round = 0; round < 2; round++) {
        ks_status st = imds_token(p, base, err);
        if (st != KS_OK) {
            return st;
        }
        char url[1024];
        snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", base);
        struct ks_secbuf body;
        ks_secbuf_init(&body, METADATA_MAX_BODY);
        long status = 0;
        st = imds_request("GET", url, p->imds_token, &status, &body, err);
        if (st != KS_OK) {
            return st;
        }
        if (status == 200) {
            /* The first line is the role name. */
            size_t len = body.data != NULL ? strcspn(body.data, "\r\n") : 0;
            if (!role_name_valid(body.data, len)) {
                ks_secbuf_free(&body);
                return ks_error_set(err, KS_E_CONFIG, "IMDS returned no usable role name");
            }
            n = snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%.*s",
                         base, (int)len, body.data);
            ks_secbuf_free(&body);
            st = imds_request("GET", url, p->imds_token, &status, &body, err);
            if (st != KS_OK) {
                return st;
            }
            if (status == 200) {
                st = parse_credential_document("IMDS", &body, out, err);
                ks_secbuf_free(&body);
                if (st == KS_OK) {
                    imds_extend_expiration(p, out);
                }
                return st;
            }
        }
        ks_secbuf_free(&body);
        if (status != 401) {
            return status == 404
                       ? ks_error_set(err, KS_E_CONFIG, "no IAM role is attached to this instance")
                       : metadata_http_error("IMDS", status, err);
        }
        ks_secret_free_string(p->imds_token);
        p->imds_token = NULL;
    }
    return ks_error_set(err, KS_E_UNAVAILABLE, "IMDS keeps refusing its own token");
}

/* --- the cache --------------------------------------------------------------------------- */

static ks_status fetch(struct ks_aws_credentials_provider *p, struct ks_aws_credentials *out,
                       struct ks_error *err)
{
    memset(out, 0, sizeof(*out));
    ks_status st;
    switch (p->source) {
    case KS_AWS_CRED_ENV:
        st = fetch_env(p, out, err);
        break;
    case KS_AWS_CRED_PROFILE:
        st = fetch_profile(p, out, err);
        break;
    case KS_AWS_CRED_CONTAINER:
        st = fetch_container(p, out, err);
        break;
    case KS_AWS_CRED_IMDS:
        st = fetch_imds(p, out, err);
        break;
    case KS_AWS_CRED_STATIC:
        st = creds_copy(&p->static_creds, out, err);
        break;
    default:
        st = ks_error_set(err, KS_E_CONFIG, "no AWS credentials source");
        break;
    }
    if (st == KS_OK && out->expiration != 0 && out->expiration <= now_seconds(p)) {
        ks_aws_credentials_clear(out);
        st = ks_error_set(err, KS_E_CONFIG, "the AWS credentials obtained have expired");
    }
    return st;
}

enum freshness { FRESH, ADVISORY, MANDATORY };

/* 5.5: the two refresh stages. Caller holds data_lock. */
static enum freshness freshness(const struct ks_aws_credentials_provider *p, uint64_t now)
{
    if (!p->have_cached) {
        return MANDATORY;
    }
    uint64_t exp = p->cached.expiration;
    if (exp == 0 || now + ADVISORY_REFRESH_S < exp) {
        return FRESH;
    }
    return now + MANDATORY_REFRESH_S < exp ? ADVISORY : MANDATORY;
}

ks_status ks_aws_credentials_get(struct ks_aws_credentials_provider *p,
                                 struct ks_aws_credentials *out, struct ks_error *err)
{
    memset(out, 0, sizeof(*out));
    ks_status st;
    pthread_mutex_lock(&p->data_lock);
    enum freshness f = freshness(p, now_seconds(p));
    if (f == FRESH) {
        st = creds_copy(&p->cached, out, err);
        pthread_mutex_unlock(&p->data_lock);
        return st;
    }
    pthread_mutex_unlock(&p->data_lock);

    if (f == ADVISORY) {
        if (pthread_mutex_trylock(&p->refresh_lock) != 0) {
            /* Another thread is refreshing; the current credentials are still good. */
            pthread_mutex_lock(&p->data_lock);
            st = p->have_cached ? creds_copy(&p->cached, out, err)
                                : ks_error_set(err, KS_E_INTERNAL, "credentials vanished");
            pthread_mutex_unlock(&p->data_lock);
            return st;
        }
    } else {
        pthread_mutex_lock(&p->refresh_lock);
    }
    /* Someone else may have refreshed while this thread waited. */
    pthread_mutex_lock(&p->data_lock);
    f = freshness(p, now_seconds(p));
    if (f == FRESH) {
        st = creds_copy(&p->cached, out, err);
        pthread_mutex_unlock(&p->data_lock);
        pthread_mutex_unlock(&p->refresh_lock);
        return st;
    }
    pthread_mutex_unlock(&p->data_lock);

    struct ks_aws_credentials fresh;
    st = fetch(p, &fresh, err);
    pthread_mutex_lock(&p->data_lock);
    if (st == KS_OK) {
        ks_aws_credentials_clear(&p->cached);
        p->cached = fresh;
        p->have_cached = 1;
        st = creds_copy(&p->cached, out, err);
    } else if (f == ADVISORY) {
        /* 5.5: an advisory refresh that fails keeps the old credentials. */
        st = creds_copy(&p->cached, out, err);
    }
    pthread_mutex_unlock(&p->data_lock);
    pthread_mutex_unlock(&p->refresh_lock);
    return st;
}

/* --- create / destroy -------------------------------------------------------------------- */

ks_status ks_aws_credentials_provider_create(const struct ks_aws_credentials_options *cfg,
                                             const struct ks_aws_environment *env,
                                             struct ks_aws_credentials_provider **out,
                                             struct ks_error *err)
{
    *out = NULL;
    if (cfg == NULL || cfg->source < KS_AWS_CRED_ENV || cfg->source > KS_AWS_CRED_STATIC) {
        return ks_error_set(err, KS_E_CONFIG, "no AWS credentials source configured");
    }
    if (cfg->source == KS_AWS_CRED_STATIC &&
        (!key_id_valid(cfg->access_key_id) || cfg->secret_access_key == NULL ||
         cfg->secret_access_key[0] == '\0' || !header_safe(cfg->secret_access_key) ||
         (cfg->session_token != NULL && !header_safe(cfg->session_token)))) {
        return ks_error_set(err, KS_E_CONFIG,
                            "static AWS credentials need access_key_id and secret_access_key");
    }
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK) {
        return ks_error_set(err, KS_E_INTERNAL, "libcurl initialisation failed");
    }
    struct ks_aws_credentials_provider *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    p->source = cfg->source;
    p->getenv_fn = env != NULL ? env->getenv : NULL;
    p->getenv_ctx = env != NULL ? env->getenv_ctx : NULL;
    p->clock = (env != NULL && env->clock != NULL) ? env->clock : ks_clock_system();
    pthread_mutex_init(&p->refresh_lock, NULL);
    pthread_mutex_init(&p->data_lock, NULL);
    p->profile =
        dup_str(cfg->profile != NULL && cfg->profile[0] != '\0' ? cfg->profile : "default");
    ks_status st = p->profile != NULL ? KS_OK : KS_E_INTERNAL;
    if (st == KS_OK && cfg->source == KS_AWS_CRED_STATIC) {
        st = creds_set(&p->static_creds, cfg->access_key_id, cfg->secret_access_key,
                       (cfg->session_token != NULL && cfg->session_token[0] != '\0')
                           ? cfg->session_token
                           : NULL,
                       0, err);
    }
    if (st != KS_OK) {
        ks_aws_credentials_provider_destroy(p);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    *out = p;
    return KS_OK;
}

void ks_aws_credentials_provider_destroy(struct ks_aws_credentials_provider *p)
{
    if (p == NULL) {
        return;
    }
    ks_aws_credentials_clear(&p->cached);
    ks_aws_credentials_clear(&p->static_creds);
    ks_secret_free_string(p->imds_token);
    ks_secret_free_string(p->profile);
    pthread_mutex_destroy(&p->refresh_lock);
    pthread_mutex_destroy(&p->data_lock);
    free(p);
}
