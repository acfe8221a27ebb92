/*
 * aws_client.c - the awsJson 1.0/1.1 client of aws/aws.h: POST / with the whole input as one
 * JSON body (docs/reference/aws-apis.md section 1), signed per attempt with SigV4 (section 6), sent
 * with libcurl, retried like the SDKs' standard mode (section 4).
 *
 * Connection reuse: a libcurl easy handle keeps its connection cache, so the client keeps a
 * small LIFO pool of idle handles under a mutex. A call takes one (or creates one when the pool
 * is empty), uses it for all its attempts and gives it back; sequential calls therefore reuse
 * one warm TLS connection, and N concurrent threads end up with N warm handles. A CURLSH shares
 * the DNS cache and TLS session ids between the handles, so a handle that has to connect
 * resumes the TLS session instead of doing a full handshake. The connection cache itself is not
 * shared: libcurl documents CURL_LOCK_DATA_CONNECT as unsafe across threads before 8.x.
 *
 * Retry quota: one token bucket per client (section 4, B-RETRY quota.py): 500 tokens, a retry
 * costs 5 (10 after a timeout), a success without retries adds 1 back, a success after retries
 * returns the cost of its last acquisition; an empty bucket stops retrying.
 *
 * Backoff: full jitter, rand[0,1) * min(base * 2^i, 20 s), where base is base_delay_ms (default
 * 50 ms) for 5xx, network errors and timeouts, and a fixed 1000 ms for throttling (section 4,
 * "Suggested keystored policy"). base_delay_ms does not scale the throttling base, so that a
 * DynamoDB caller that sets 25 ms still backs off 1 s on throttling, as the SDKs do.
 *
 * Bodies: the request body is never copied (CURLOPT_POSTFIELDS points at the caller's buffer)
 * and never written anywhere else. The response body (it carries KMS plaintexts) is collected in
 * a ks_secbuf (grows by allocate-copy-wipe, capped at KS_AWS_MAX_RESPONSE) and is wiped on every
 * path. Only error bodies, which carry no key material, are handed to json-c.
 */
#include "aws/aws.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/secbuf.h"
#include "common/secret.h"
#include "aws/sigv4.h"

#define KS_AWS_MAX_RESPONSE (4u * 1024u * 1024u) /* a KMS/DynamoDB reply is far smaller */
#define KS_AWS_POOL_MAX 16                       /* idle handles kept warm */
#define KS_AWS_USER_AGENT "keystored/0.1 aws-kms-hierarchy" /* branch-key-store.md section 7 */

/* Section 4 defaults and the B-RETRY quota constants. */
#define DEFAULT_CONNECT_TIMEOUT_MS 2000L
#define DEFAULT_REQUEST_TIMEOUT_MS 10000L
#define DEFAULT_MAX_ATTEMPTS 3u
#define DEFAULT_BASE_DELAY_MS 50u
#define THROTTLE_BASE_DELAY_MS 1000u
#define MAX_BACKOFF_MS 20000u
#define QUOTA_INITIAL 500u
#define QUOTA_RETRY_COST 5u
#define QUOTA_TIMEOUT_COST 10u
#define QUOTA_SUCCESS_REFUND 1u

struct ks_aws_client {
    char *service;
    char *region;
    char *url;  /* endpoint with path "/" */
    char *host; /* Host header value, exactly as curl would send it */
    char *content_type;
    char *target_prefix;
    struct ks_aws_credentials_provider *credentials;
    ks_status service_error;
    long connect_timeout_ms;
    long request_timeout_ms;
    unsigned max_attempts;
    unsigned base_delay_ms;
    const struct ks_clock *clock;

    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

    pthread_mutex_t lock; /* guards idle[] and quota */
    CURL *idle[KS_AWS_POOL_MAX];
    size_t idle_count;
    unsigned quota;
};

/* --- libcurl global state ---------------------------------------------------------------- */

/* curl_global_init must run once before any handle exists; it is reference counted, so
 * aws_credentials.c calling it too is fine. A pthread_once is the one piece of static state. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *handle, curl_lock_data data, curl_lock_access access, void *ctx)
{
    (void)handle;
    (void)access;
    struct ks_aws_client *c = ctx;
    pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *handle, curl_lock_data data, void *ctx)
{
    (void)handle;
    struct ks_aws_client *c = ctx;
    pthread_mutex_unlock(&c->share_locks[data]);
}

/* --- small helpers ----------------------------------------------------------------------- */

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}

/* Uniform in [0, 1) from OpenSSL's CSPRNG (never the C library's PRNG). 0 if the RNG fails: no wait
 * is still a correct (if impolite) backoff. */
static double random_unit(void)
{
    uint32_t r;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1) {
        return 0.0;
    }
    return (double)r / 4294967296.0;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000u), .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Section 4: sleep_i = rand[0,1) * min(base * 2^i, 20 s), i = 0 for the first retry. */
static uint64_t backoff_ms(unsigned base_ms, unsigned retry_index)
{
    uint64_t ceiling = base_ms;
    for (unsigned i = 0; i < retry_index && ceiling < MAX_BACKOFF_MS; i++) {
        ceiling *= 2u;
    }
    if (ceiling > MAX_BACKOFF_MS) {
        ceiling = MAX_BACKOFF_MS;
    }
    return (uint64_t)(random_unit() * (double)ceiling);
}

static uint64_t now_seconds(const struct ks_clock *clock)
{
    return clock->now_us(clock->ctx) / 1000000u;
}

/* --- endpoint ---------------------------------------------------------------------------- */

/*
 * Parses scheme://host[:port] into the URL to POST to (path "/", section 1) and the Host header.
 * The port is kept in Host only when it is not the scheme's default, which is what curl itself
 * sends; the header is sent explicitly anyway so that what is signed is what goes on the wire.
 */
static ks_status parse_endpoint(struct ks_aws_client *c, const char *endpoint, struct ks_error *err)
{
    ks_status st = KS_E_CONFIG;
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *url = NULL;
    CURLU *u = curl_url();
    if (u == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    if (curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        ks_error_set(err, st, "AWS endpoint '%s' is not a URL", endpoint);
        goto out;
    }
    if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
        ks_error_set(err, st, "AWS endpoint '%s' must be http or https", endpoint);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        ks_error_set(err, st, "AWS endpoint must not carry credentials");
        goto out;
    }
    long default_port = strcmp(scheme, "https") == 0 ? 443 : 80;
    long port_number = default_port;
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK) {
        port_number = strtol(port, NULL, 10);
    }
    char hostbuf[512];
    int n = port_number == default_port
                ? snprintf(hostbuf, sizeof(hostbuf), "%s", host)
                : snprintf(hostbuf, sizeof(hostbuf), "%s:%ld", host, port_number);
    if (n < 0 || (size_t)n >= sizeof(hostbuf)) {
        ks_error_set(err, st, "AWS endpoint host is too long");
        goto out;
    }
    if (curl_url_set(u, CURLUPART_PATH, "/", 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_QUERY, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
        ks_error_set(err, st, "AWS endpoint '%s' is not a URL", endpoint);
        goto out;
    }
    c->url = dup_string(url);
    c->host = dup_string(hostbuf);
    if (c->url == NULL || c->host == NULL) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        goto out;
    }
    st = KS_OK;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_free(url);
    curl_url_cleanup(u);
    return st;
}

/* --- create / destroy -------------------------------------------------------------------- */

static int valid_name(const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.')) {
            return 0;
        }
    }
    return 1;
}

ks_status ks_aws_client_create(const struct ks_aws_client_options *opts, struct ks_aws_client **out,
                               struct ks_error *err)
{
    *out = NULL;
    if (opts == NULL || !valid_name(opts->service) || !valid_name(opts->region) ||
        !valid_name(opts->target_prefix) || opts->credentials == NULL ||
        (opts->json_version != NULL && strcmp(opts->json_version, "1.0") != 0 &&
         strcmp(opts->json_version, "1.1") != 0)) {
        return ks_error_set(err, KS_E_CONFIG,
                            "AWS client needs service, region, target prefix, credentials and "
                            "json_version 1.0 or 1.1");
    }
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK) {
        return ks_error_set(err, KS_E_INTERNAL, "libcurl initialisation failed");
    }
    struct ks_aws_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    c->credentials = opts->credentials;
    c->service_error = opts->service_error != KS_OK ? opts->service_error : KS_E_INTERNAL;
    c->connect_timeout_ms =
        opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    c->request_timeout_ms =
        opts->request_timeout_ms > 0 ? opts->request_timeout_ms : DEFAULT_REQUEST_TIMEOUT_MS;
    c->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : DEFAULT_MAX_ATTEMPTS;
    c->base_delay_ms = opts->base_delay_ms > 0 ? opts->base_delay_ms : DEFAULT_BASE_DELAY_MS;
    c->clock = opts->clock != NULL ? opts->clock : ks_clock_system();
    c->quota = QUOTA_INITIAL;
    pthread_mutex_init(&c->lock, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        pthread_mutex_init(&c->share_locks[i], NULL);
    }

    char content_type[64];
    snprintf(content_type, sizeof(content_type), "application/x-amz-json-%s",
             opts->json_version != NULL ? opts->json_version : "1.1");
    c->service = dup_string(opts->service);
    c->region = dup_string(opts->region);
    c->target_prefix = dup_string(opts->target_prefix);
    c->content_type = dup_string(content_type);
    c->share = curl_share_init();
    if (c->service == NULL || c->region == NULL || c->target_prefix == NULL ||
        c->content_type == NULL || c->share == NULL) {
        ks_aws_client_destroy(c);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);

    ks_status st;
    if (opts->endpoint != NULL && opts->endpoint[0] != '\0') {
        st = parse_endpoint(c, opts->endpoint, err);
    } else {
        /* The regional endpoint (B-EP); the China partition has its own domain. */
        char endpoint[256];
        int n = snprintf(endpoint, sizeof(endpoint), "https://%s.%s.amazonaws.com%s", opts->service,
                         opts->region, strncmp(opts->region, "cn-", 3) == 0 ? ".cn" : "");
        st = (n > 0 && (size_t)n < sizeof(endpoint))
                 ? parse_endpoint(c, endpoint, err)
                 : ks_error_set(err, KS_E_CONFIG, "AWS region is too long");
    }
    if (st != KS_OK) {
        ks_aws_client_destroy(c);
        return st;
    }
    *out = c;
    return KS_OK;
}

void ks_aws_client_destroy(struct ks_aws_client *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->idle_count; i++) {
        curl_easy_cleanup(c->idle[i]);
    }
    if (c->share != NULL) {
        curl_share_cleanup(c->share);
    }
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        pthread_mutex_destroy(&c->share_locks[i]);
    }
    pthread_mutex_destroy(&c->lock);
    free(c->service);
    free(c->region);
    free(c->url);
    free(c->host);
    free(c->content_type);
    free(c->target_prefix);
    free(c);
}

/* --- handle pool and retry quota --------------------------------------------------------- */

static CURL *handle_take(struct ks_aws_client *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->idle_count > 0) {
        h = c->idle[--c->idle_count];
    }
    pthread_mutex_unlock(&c->lock);
    if (h == NULL) {
        h = curl_easy_init();
    }
    return h;
}

static void handle_give_back(struct ks_aws_client *c, CURL *h)
{
    pthread_mutex_lock(&c->lock);
    if (c->idle_count < KS_AWS_POOL_MAX) {
        c->idle[c->idle_count++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (h != NULL) {
        curl_easy_cleanup(h);
    }
}

/* Takes cost tokens; 0 when the bucket cannot pay (then no retry happens). */
static int quota_acquire(struct ks_aws_client *c, unsigned cost)
{
    int ok = 0;
    pthread_mutex_lock(&c->lock);
    if (c->quota >= cost) {
        c->quota -= cost;
        ok = 1;
    }
    pthread_mutex_unlock(&c->lock);
    return ok;
}

static void quota_release(struct ks_aws_client *c, unsigned amount)
{
    pthread_mutex_lock(&c->lock);
    c->quota = c->quota + amount > QUOTA_INITIAL ? QUOTA_INITIAL : c->quota + amount;
    pthread_mutex_unlock(&c->lock);
}

/* --- response collection ----------------------------------------------------------------- */

struct response_headers {
    char error_type[128];
    char request_id[64];
};

/* Copies a header value (trimmed) if name matches, case-insensitively. */
static void header_value(const char *line, size_t len, const char *name, char *out, size_t out_size)
{
    size_t nlen = strlen(name);
    if (len <= nlen || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':') {
        return;
    }
    const char *v = line + nlen + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    size_t n = (size_t)(end - v);
    if (n >= out_size) {
        n = out_size - 1;
    }
    memcpy(out, v, n);
    out[n] = '\0';
}

static size_t write_header(char *ptr, size_t size, size_t nmemb, void *ctx)
{
    struct response_headers *h = ctx;
    size_t n = size * nmemb;
    if (n > 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        memset(h, 0, sizeof(*h)); /* a new response (e.g. after 100 Continue) */
    }
    header_value(ptr, n, "x-amzn-errortype", h->error_type, sizeof(h->error_type));
    header_value(ptr, n, "x-amzn-requestid", h->request_id, sizeof(h->request_id));
    return n;
}

/* --- errors (section 1) ------------------------------------------------------------------ */

/*
 * Section 1: cut at the first ':' and keep what precedes it, then keep what follows a '#'.
 * "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException" and
 * "ThrottlingException:http://internal.amazon.com/..." both give the bare shape name.
 * Anything outside [A-Za-z0-9._-] is dropped so the type is safe to log and compare.
 */
static void sanitize_error_type(const char *raw, char *out, size_t out_size)
{
    size_t end = strcspn(raw, ":");
    const char *start = raw;
    const char *hash = memchr(raw, '#', end);
    if (hash != NULL) {
        end -= (size_t)(hash + 1 - raw);
        start = hash + 1;
    }
    size_t n = 0;
    for (size_t i = 0; i < end && n + 1 < out_size; i++) {
        char ch = start[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '.' || ch == '_' || ch == '-') {
            out[n++] = ch;
        }
    }
    out[n] = '\0';
}

/* Printable ASCII only, truncated: the message goes into logs and error replies. */
static void copy_message(const char *raw, char *out, size_t out_size)
{
    size_t n = 0;
    for (; *raw != '\0' && n + 1 < out_size; raw++) {
        unsigned char ch = (unsigned char)*raw;
        out[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    out[n] = '\0';
}

/* Fills e->type and e->message from the header and the (error) body. */
static void parse_error(const struct response_headers *h, const struct ks_secbuf *body,
                        struct ks_aws_error *e)
{
    e->type[0] = '\0';
    e->message[0] = '\0';
    const char *raw_type = h->error_type[0] != '\0' ? h->error_type : NULL;
    json_object *root = NULL;
    if (body->len > 0) {
        json_tokener *tok = json_tokener_new_ex(16);
        if (tok != NULL) {
            root = json_tokener_parse_ex(tok, body->data, (int)body->len);
            json_tokener_free(tok);
        }
        if (root != NULL && !json_object_is_type(root, json_type_object)) {
            json_object_put(root);
            root = NULL;
        }
    }
    json_object *v;
    if (raw_type == NULL && root != NULL) {
        if ((json_object_object_get_ex(root, "__type", &v) ||
             json_object_object_get_ex(root, "code", &v)) &&
            json_object_is_type(v, json_type_string)) {
            raw_type = json_object_get_string(v);
        }
    }
    if (raw_type != NULL) {
        sanitize_error_type(raw_type, e->type, sizeof(e->type));
    }
    if (root != NULL && (json_object_object_get_ex(root, "message", &v) ||
                         json_object_object_get_ex(root, "Message", &v))) {
        if (json_object_is_type(v, json_type_string)) {
            copy_message(json_object_get_string(v), e->message, sizeof(e->message));
        }
    }
    json_object_put(root);
}

/* Section 4, B-RETRY ThrottledRetryableChecker. */
static int is_throttling_code(const char *type)
{
    static const char *const codes[] = {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (strcmp(type, codes[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Section 4, B-RETRY TransientRetryableChecker. */
static int is_transient_code(const char *type)
{
    return strcmp(type, "RequestTimeout") == 0 || strcmp(type, "RequestTimeoutException") == 0 ||
           strcmp(type, "PriorRequestNotComplete") == 0;
}

/* --- one attempt ------------------------------------------------------------------------- */

enum outcome {
    OUT_OK,
    OUT_THROTTLED,         /* retryable, throttling base */
    OUT_TRANSIENT,         /* retryable: 5xx, transient code, network error */
    OUT_TIMEOUT,           /* retryable: timed out (costs more quota) */
    OUT_UNREACHABLE_FINAL, /* network failure not worth retrying (TLS verification, ...) */
    OUT_SERVICE,           /* non-retryable service error */
    OUT_TOO_LARGE,         /* response over the cap */
    OUT_INTERNAL,          /* local failure: credentials, signing, allocation */
};

static int retryable_curl_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

/* Wipes every header line (one holds the session token) before freeing the list. */
static void slist_free_wiped(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l != NULL; l = l->next) {
        OPENSSL_cleanse(l->data, strlen(l->data));
    }
    curl_slist_free_all(list);
}

static struct curl_slist *slist_add(struct curl_slist *list, const char *name, const char *value,
                                    int *failed)
{
    if (*failed) {
        return list;
    }
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    if (line == NULL) {
        *failed = 1;
        return list;
    }
    snprintf(line, n, "%s: %s", name, value);
    struct curl_slist *next = curl_slist_append(list, line);
    OPENSSL_cleanse(line, n);
    free(line);
    if (next == NULL) {
        *failed = 1;
        return list;
    }
    return next;
}

/*
 * Builds the signed header list for one attempt: Host, Content-Type and X-Amz-Target are
 * signed (section 6 point 2) together with what the signer adds (X-Amz-Date,
 * X-Amz-Security-Token, Authorization). "Expect:" stops curl from waiting for 100-continue on
 * larger bodies; User-Agent goes through CURLOPT_USERAGENT and is not signed.
 */
static ks_status build_headers(struct ks_aws_client *c, const char *target, const char *body,
                               size_t body_len, struct curl_slist **out, struct ks_error *err)
{
    *out = NULL;
    struct ks_aws_credentials creds = {0};
    ks_status st = ks_aws_credentials_get(c->credentials, &creds, err);
    if (st != KS_OK) {
        return st;
    }
    struct ks_sigv4_header headers[] = {
        {"Host", c->host},
        {"Content-Type", c->content_type},
        {"X-Amz-Target", target},
    };
    struct ks_sigv4_request req = {
        .method = "POST",
        .path = "/",
        .headers = headers,
        .header_count = sizeof(headers) / sizeof(headers[0]),
        .body = body,
        .body_len = body_len,
        .region = c->region,
        .service = c->service,
    };
    struct ks_sigv4_credentials sc = {
        .access_key_id = creds.access_key_id,
        .secret_access_key = creds.secret_access_key,
        .session_token = creds.session_token,
    };
    struct ks_sigv4_result sig;
    /* A fresh X-Amz-Date on every attempt (section 4: re-sign each retry). */
    st = ks_sigv4_sign(&req, &sc, now_seconds(c->clock), &sig, err);
    ks_aws_credentials_clear(&creds);
    if (st != KS_OK) {
        return st;
    }
    int failed = 0;
    struct curl_slist *list = NULL;
    for (size_t i = 0; i < req.header_count; i++) {
        list = slist_add(list, headers[i].name, headers[i].value, &failed);
    }
    for (size_t i = 0; i < sig.add_header_count; i++) {
        list = slist_add(list, sig.add_headers[i].name, sig.add_headers[i].value, &failed);
    }
    ks_sigv4_result_free(&sig);
    if (!failed) {
        struct curl_slist *next = curl_slist_append(list, "Expect:");
        failed = next == NULL;
        list = next != NULL ? next : list;
    }
    if (failed) {
        slist_free_wiped(list);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    *out = list;
    return KS_OK;
}

static void setup_handle(struct ks_aws_client *c, CURL *h, struct curl_slist *headers,
                         const char *body, size_t body_len, struct ks_secbuf *resp,
                         struct response_headers *rh)
{
    /* curl_easy_reset keeps the connection, DNS and TLS session caches. */
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->request_timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT, KS_AWS_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, ks_secbuf_curl_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, write_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, rh);
}

static enum outcome attempt(struct ks_aws_client *c, CURL *h, const char *target, const char *body,
                            size_t body_len, struct ks_secbuf *resp, struct ks_aws_error *e,
                            struct ks_error *err)
{
    struct curl_slist *headers = NULL;
    struct response_headers rh = {{0}, {0}};
    e->http_status = 0;
    e->type[0] = '\0';
    e->message[0] = '\0';
    if (build_headers(c, target, body, body_len, &headers, err) != KS_OK) {
        return OUT_INTERNAL;
    }
    setup_handle(c, h, headers, body, body_len, resp, &rh);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    slist_free_wiped(headers);
    if (rc != CURLE_OK) {
        if (resp->too_large) {
            ks_error_set(err, c->service_error, "%s %s: response larger than %u bytes", c->service,
                         target, KS_AWS_MAX_RESPONSE);
            return OUT_TOO_LARGE;
        }
        ks_error_set(err, KS_E_UNAVAILABLE, "%s %s: %s", c->service, target,
                     curl_easy_strerror(rc));
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            return OUT_TIMEOUT;
        }
        return retryable_curl_error(rc) ? OUT_TRANSIENT : OUT_UNREACHABLE_FINAL;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    e->http_status = status;
    if (status >= 200 && status < 300) {
        return OUT_OK;
    }
    parse_error(&rh, resp, e);
    if (is_throttling_code(e->type)) {
        ks_error_set(err, KS_E_THROTTLED, "%s %s throttled: %s", c->service, target, e->type);
        return OUT_THROTTLED;
    }
    if (is_transient_code(e->type) || status == 500 || status == 502 || status == 503 ||
        status == 504) {
        ks_error_set(err, KS_E_UNAVAILABLE, "%s %s: HTTP %ld %s%s%s", c->service, target, status,
                     e->type, e->message[0] != '\0' ? ": " : "", e->message);
        return OUT_TRANSIENT;
    }
    /* The header contract: message "<type>: <message>". */
    ks_error_set(err, c->service_error, "%s: %s", e->type[0] != '\0' ? e->type : "HTTP error",
                 e->message[0] != '\0' ? e->message : "(no message)");
    return OUT_SERVICE;
}

/* --- the call ---------------------------------------------------------------------------- */

void ks_aws_response_free(struct ks_aws_response *r)
{
    if (r == NULL) {
        return;
    }
    if (r->body != NULL) {
        ks_secret_free(r->body, r->len + 1);
    }
    r->body = NULL;
    r->len = 0;
}

/* Moves the collected body into *out: exact-size copy, the collection buffer wiped. Section 1:
 * an empty body means empty output, returned as "{}". */
static int take_body(struct ks_secbuf *b, struct ks_aws_response *out)
{
    const char *src = b->len > 0 ? b->data : "{}";
    size_t len = b->len > 0 ? b->len : 2;
    char *copy = (char *)ks_secret_alloc(len + 1);
    if (copy == NULL) {
        return -1;
    }
    memcpy(copy, src, len);
    copy[len] = '\0';
    out->body = copy;
    out->len = len;
    ks_secbuf_free(b);
    return 0;
}

ks_status ks_aws_call(struct ks_aws_client *c, const char *operation, const char *request_json,
                      size_t request_len, struct ks_aws_response *resp,
                      struct ks_aws_error *aws_err, struct ks_error *err)
{
    struct ks_aws_error local_err;
    struct ks_aws_error *e = aws_err != NULL ? aws_err : &local_err;
    struct ks_error local_detail;
    if (err == NULL) {
        err = &local_detail; /* the attempt's status travels in err */
    }
    memset(e, 0, sizeof(*e));
    resp->body = NULL;
    resp->len = 0;
    if (!valid_name(operation) || (request_json == NULL && request_len > 0)) {
        return ks_error_set(err, KS_E_INTERNAL, "invalid AWS operation");
    }
    if (request_json == NULL) {
        request_json = "{}"; /* section 1: empty input is sent as {} */
        request_len = 2;
    }
    char target[256];
    int n = snprintf(target, sizeof(target), "%s.%s", c->target_prefix, operation);
    if (n < 0 || (size_t)n >= sizeof(target)) {
        return ks_error_set(err, KS_E_INTERNAL, "AWS operation name too long");
    }
    CURL *h = handle_take(c);
    if (h == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }

    ks_status st = KS_E_INTERNAL;
    unsigned last_cost = 0; /* tokens taken for the latest retry, refunded on success */
    for (unsigned i = 0;; i++) {
        struct ks_secbuf body;
        ks_secbuf_init(&body, KS_AWS_MAX_RESPONSE);
        e->attempts = i + 1;
        enum outcome o = attempt(c, h, target, request_json, request_len, &body, e, err);
        if (o == OUT_OK) {
            if (take_body(&body, resp) != 0) {
                ks_secbuf_free(&body);
                st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
                break;
            }
            quota_release(c, i == 0 ? QUOTA_SUCCESS_REFUND : last_cost);
            ks_error_clear(err);
            st = KS_OK;
            break;
        }
        ks_secbuf_free(&body);
        switch (o) {
        case OUT_THROTTLED:
            st = KS_E_THROTTLED;
            break;
        case OUT_TRANSIENT:
        case OUT_TIMEOUT:
        case OUT_UNREACHABLE_FINAL:
            st = KS_E_UNAVAILABLE;
            break;
        case OUT_SERVICE:
        case OUT_TOO_LARGE:
            st = c->service_error;
            break;
        default:
            st = err->code != KS_OK ? err->code : KS_E_INTERNAL;
            break;
        }
        int retryable = o == OUT_THROTTLED || o == OUT_TRANSIENT || o == OUT_TIMEOUT;
        if (!retryable || i + 1 >= c->max_attempts) {
            break;
        }
        unsigned cost = o == OUT_TIMEOUT ? QUOTA_TIMEOUT_COST : QUOTA_RETRY_COST;
        if (!quota_acquire(c, cost)) {
            break; /* section 4: an empty bucket stops retrying */
        }
        last_cost = cost;
        sleep_ms(backoff_ms(o == OUT_THROTTLED ? THROTTLE_BASE_DELAY_MS : c->base_delay_ms, i));
    }
    handle_give_back(c, h);
    if (st != KS_OK) {
        err->code = st;
    }
    return st;
}
