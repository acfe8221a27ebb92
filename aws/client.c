/*
 * client.c - the awsJson 1.0/1.1 transport of aws/aws.h: POST / with the whole input as one
 * JSON body (docs/reference/aws-apis.md section 1), signed per attempt with SigV4 (section 6),
 * sent with libcurl, retried like the SDKs' standard mode (section 4) through aws/backoff.h.
 *
 * Connection reuse: a libcurl easy handle keeps its connection cache, so the client keeps a
 * small LIFO pool of idle handles under a mutex. A call takes one (or creates one when the pool
 * is empty), uses it for all its attempts and gives it back; sequential calls therefore reuse
 * one warm TLS connection, and N concurrent threads end up with N warm handles. A CURLSH shares
 * the DNS cache and TLS session ids between the handles, so a handle that has to connect
 * resumes the TLS session instead of doing a full handshake. The connection cache itself is not
 * shared: libcurl documents CURL_LOCK_DATA_CONNECT as unsafe across threads before 8.x.
 *
 * Errors: err->message names the dependency and the error code only ("KMS
 * AccessDeniedException", "DynamoDB unavailable (timed out)"): it reaches clients. AWS's own
 * text, which can carry account ids and role ARNs, goes to err->detail (log only) and to
 * struct ks_aws_error for callers that interpret it.
 *
 * Bodies: the request body is never copied (CURLOPT_POSTFIELDS points at the caller's buffer)
 * and never written anywhere else. The response body (it carries KMS plaintexts) is collected in
 * a ks_secbuf (grows by allocate-copy-wipe, capped at KS_AWS_MAX_RESPONSE) and is wiped on every
 * path; error bodies are read with the wiped scanner of aws/json_scan.h.
 */
#include "aws/aws.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "common/secbuf.h"
#include "common/secret.h"
#include "aws/http.h"

#define KS_AWS_MAX_RESPONSE (4u * 1024u * 1024u) /* a KMS/DynamoDB reply is far smaller */
#define KS_AWS_POOL_MAX 16                       /* idle handles kept warm */
#define KS_AWS_USER_AGENT "keystored/0.1 aws-kms-hierarchy" /* branch-key-store.md section 7 */

/* Section 4 defaults. */
#define DEFAULT_CONNECT_TIMEOUT_MS 2000L
#define DEFAULT_REQUEST_TIMEOUT_MS 10000L
#define DEFAULT_MAX_ATTEMPTS 3u

struct ks_aws_client {
    char *service;
    char *dependency; /* display name in messages: "KMS", "DynamoDB" */
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
    struct ks_aws_sleep sleep;

    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

    pthread_mutex_t lock; /* guards idle[] */
    CURL *idle[KS_AWS_POOL_MAX];
    size_t idle_count;
    struct ks_aws_retry_quota quota;
};

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

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
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

/* The numbers and hooks of the options, defaults applied (section 4). */
static void apply_tuning(struct ks_aws_client *c, const struct ks_aws_client_options *opts)
{
    c->credentials = opts->credentials;
    c->service_error = opts->service_error != KS_OK ? opts->service_error : KS_E_INTERNAL;
    c->connect_timeout_ms =
        opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    c->request_timeout_ms =
        opts->request_timeout_ms > 0 ? opts->request_timeout_ms : DEFAULT_REQUEST_TIMEOUT_MS;
    c->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : DEFAULT_MAX_ATTEMPTS;
    c->base_delay_ms =
        opts->base_delay_ms > 0 ? opts->base_delay_ms : KS_AWS_BACKOFF_TRANSIENT_BASE_MS;
    c->clock = opts->clock != NULL ? opts->clock : ks_clock_system();
    c->sleep = opts->sleep;
}

/* The strings the client keeps and the CURLSH. KS_OK, or KS_E_INTERNAL (out of memory). */
static ks_status copy_names(struct ks_aws_client *c, const struct ks_aws_client_options *opts,
                            struct ks_error *err)
{
    char content_type[64];
    snprintf(content_type, sizeof(content_type), "application/x-amz-json-%s",
             opts->json_version != NULL ? opts->json_version : "1.1");
    c->service = dup_string(opts->service);
    c->dependency = dup_string(
        opts->dependency != NULL && opts->dependency[0] != '\0' ? opts->dependency : opts->service);
    c->region = dup_string(opts->region);
    c->target_prefix = dup_string(opts->target_prefix);
    c->content_type = dup_string(content_type);
    c->share = curl_share_init();
    if (c->service == NULL || c->dependency == NULL || c->region == NULL ||
        c->target_prefix == NULL || c->content_type == NULL || c->share == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return KS_OK;
}

static ks_status set_endpoint(struct ks_aws_client *c, const struct ks_aws_client_options *opts,
                              struct ks_error *err)
{
    if (opts->endpoint != NULL && opts->endpoint[0] != '\0') {
        return parse_endpoint(c, opts->endpoint, err);
    }
    /* The regional endpoint (B-EP); the China partition has its own domain. */
    char endpoint[256];
    int n = snprintf(endpoint, sizeof(endpoint), "https://%s.%s.amazonaws.com%s", opts->service,
                     opts->region, strncmp(opts->region, "cn-", 3) == 0 ? ".cn" : "");
    return (n > 0 && (size_t)n < sizeof(endpoint))
               ? parse_endpoint(c, endpoint, err)
               : ks_error_set(err, KS_E_CONFIG, "AWS region is too long");
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
    ks_status st = ks_aws_http_init(err);
    if (st != KS_OK) {
        return st;
    }
    struct ks_aws_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    apply_tuning(c, opts);
    ks_aws_retry_quota_init(&c->quota);
    pthread_mutex_init(&c->lock, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        pthread_mutex_init(&c->share_locks[i], NULL);
    }
    st = copy_names(c, opts, err);
    if (st == KS_OK) {
        st = set_endpoint(c, opts, err);
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
    ks_aws_retry_quota_destroy(&c->quota);
    free(c->service);
    free(c->dependency);
    free(c->region);
    free(c->url);
    free(c->host);
    free(c->content_type);
    free(c->target_prefix);
    free(c);
}

uint64_t ks_aws_client_backoff(struct ks_aws_client *c, unsigned base_ms, unsigned retry_index)
{
    return ks_aws_backoff_sleep(&c->sleep, base_ms, retry_index);
}

void ks_aws_client_pause(struct ks_aws_client *c, uint64_t ms)
{
    ks_aws_sleep_ms(&c->sleep, ms);
}

unsigned ks_aws_client_retry_tokens(struct ks_aws_client *c)
{
    return ks_aws_retry_quota_tokens(&c->quota);
}

/* --- handle pool ------------------------------------------------------------------------- */

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
    enum { F_TYPE, F_CODE, F_MESSAGE, F_MESSAGE_UPPER, F_COUNT };
    struct ks_json_scan_field f[F_COUNT] = {
        [F_TYPE] = {.name = "__type"},
        [F_CODE] = {.name = "code"},
        [F_MESSAGE] = {.name = "message"},
        [F_MESSAGE_UPPER] = {.name = "Message"},
    };
    e->type[0] = '\0';
    e->message[0] = '\0';
    snprintf(e->request_id, sizeof(e->request_id), "%s", h->request_id);
    int scanned = body->len > 0 && ks_json_scan_object(body->data, body->len, f, F_COUNT) == 0;
    const char *raw_type = h->error_type[0] != '\0' ? h->error_type : NULL;
    if (raw_type == NULL && scanned) {
        raw_type = f[F_TYPE].value != NULL ? f[F_TYPE].value : f[F_CODE].value;
    }
    if (raw_type != NULL) {
        sanitize_error_type(raw_type, e->type, sizeof(e->type));
    }
    const char *message =
        f[F_MESSAGE].value != NULL ? f[F_MESSAGE].value : f[F_MESSAGE_UPPER].value;
    if (message != NULL) {
        copy_message(message, e->message, sizeof(e->message));
    }
    ks_json_scan_free(f, F_COUNT);
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

/* A short client-safe reason for a transport failure (the curl text goes to the detail). */
static const char *network_reason(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timed out";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "host not found";
    case CURLE_COULDNT_CONNECT:
        return "connection failed";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        return "TLS failure";
    default:
        return "network error";
    }
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
    for (size_t i = 0; i < req.header_count && !failed; i++) {
        failed = ks_aws_http_header_add(&list, headers[i].name, headers[i].value) != 0;
    }
    for (size_t i = 0; i < sig.add_header_count && !failed; i++) {
        failed = ks_aws_http_header_add(&list, sig.add_headers[i].name, sig.add_headers[i].value);
    }
    ks_sigv4_result_free(&sig);
    if (!failed) {
        struct curl_slist *next = curl_slist_append(list, "Expect:");
        failed = next == NULL;
        list = next != NULL ? next : list;
    }
    if (failed) {
        ks_aws_http_headers_free(list);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    *out = list;
    return KS_OK;
}

/* What one call may spend: its attempts and the timeout of each. */
struct call_budget {
    unsigned max_attempts;
    long timeout_ms; /* whole attempt; the connect timeout never exceeds it */
};

static void setup_handle(struct ks_aws_client *c, CURL *h, const struct call_budget *b,
                         struct curl_slist *headers, const char *body, size_t body_len,
                         struct ks_secbuf *resp, struct response_headers *rh)
{
    /* curl_easy_reset keeps the connection, DNS and TLS session caches. */
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     c->connect_timeout_ms < b->timeout_ms ? c->connect_timeout_ms : b->timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, b->timeout_ms);
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

/* A transport failure: client-safe message, curl's text in the detail. */
static enum outcome network_failure(struct ks_aws_client *c, const char *target, CURLcode rc,
                                    const struct ks_secbuf *resp, struct ks_error *err)
{
    if (resp->too_large) {
        ks_error_set(err, c->service_error, "%s response too large", c->dependency);
        ks_error_set_detail(err, "%s %s: response larger than %u bytes", c->dependency, target,
                            KS_AWS_MAX_RESPONSE);
        return OUT_TOO_LARGE;
    }
    ks_error_set(err, KS_E_UNAVAILABLE, "%s unavailable (%s)", c->dependency, network_reason(rc));
    ks_error_set_detail(err, "%s %s at %s: %s", c->dependency, target, c->url,
                        curl_easy_strerror(rc));
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        return OUT_TIMEOUT;
    }
    return retryable_curl_error(rc) ? OUT_TRANSIENT : OUT_UNREACHABLE_FINAL;
}

/*
 * An HTTP error answer, classified (section 4). The message names the dependency and the error
 * code only; AWS's free text and the request id go to the detail.
 */
static enum outcome service_failure(struct ks_aws_client *c, const char *target,
                                    const struct ks_aws_error *e, struct ks_error *err)
{
    long status = e->http_status;
    enum outcome o = OUT_SERVICE;
    if (is_throttling_code(e->type)) {
        ks_error_set(err, KS_E_THROTTLED, "%s %s", c->dependency, e->type);
        o = OUT_THROTTLED;
    } else if (is_transient_code(e->type) || status == 500 || status == 502 || status == 503 ||
               status == 504) {
        ks_error_set(err, KS_E_UNAVAILABLE, "%s unavailable (HTTP %ld%s%s)", c->dependency, status,
                     e->type[0] != '\0' ? " " : "", e->type);
        o = OUT_TRANSIENT;
    } else if (e->type[0] != '\0') {
        ks_error_set(err, c->service_error, "%s %s", c->dependency, e->type);
    } else {
        ks_error_set(err, c->service_error, "%s HTTP %ld", c->dependency, status);
    }
    ks_error_set_detail(err, "%s %s: HTTP %ld %s: %s (request id %s)", c->dependency, target,
                        status, e->type[0] != '\0' ? e->type : "(no type)",
                        e->message[0] != '\0' ? e->message : "(no message)",
                        e->request_id[0] != '\0' ? e->request_id : "none");
    return o;
}

static enum outcome attempt(struct ks_aws_client *c, CURL *h, const struct call_budget *b,
                            const char *target, const char *body, size_t body_len,
                            struct ks_secbuf *resp, struct ks_aws_error *e, struct ks_error *err)
{
    struct curl_slist *headers = NULL;
    struct response_headers rh = {{0}, {0}};
    e->http_status = 0;
    e->type[0] = '\0';
    e->message[0] = '\0';
    e->request_id[0] = '\0';
    if (build_headers(c, target, body, body_len, &headers, err) != KS_OK) {
        return OUT_INTERNAL;
    }
    setup_handle(c, h, b, headers, body, body_len, resp, &rh);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    ks_aws_http_headers_free(headers);
    if (rc != CURLE_OK) {
        return network_failure(c, target, rc, resp, err);
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    e->http_status = status;
    if (status >= 200 && status < 300) {
        return OUT_OK;
    }
    parse_error(&rh, resp, e);
    return service_failure(c, target, e, err);
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

/* The status a failed attempt ends the call with, if it is the last one. */
static ks_status outcome_status(const struct ks_aws_client *c, enum outcome o,
                                const struct ks_error *err)
{
    switch (o) {
    case OUT_THROTTLED:
        return KS_E_THROTTLED;
    case OUT_TRANSIENT:
    case OUT_TIMEOUT:
    case OUT_UNREACHABLE_FINAL:
        return KS_E_UNAVAILABLE;
    case OUT_SERVICE:
    case OUT_TOO_LARGE:
        return c->service_error;
    default:
        return err->code != KS_OK ? err->code : KS_E_INTERNAL;
    }
}

/*
 * Whether to try again after attempt i failed with o, and if so waits (section 4): a retryable
 * outcome, attempts left, and the quota pays for it. *last_cost gets what the quota took.
 */
static int retry_after(struct ks_aws_client *c, const struct call_budget *b, enum outcome o,
                       unsigned i, unsigned *last_cost)
{
    int retryable = o == OUT_THROTTLED || o == OUT_TRANSIENT || o == OUT_TIMEOUT;
    if (!retryable || i + 1 >= b->max_attempts) {
        return 0;
    }
    unsigned cost = ks_aws_retry_quota_acquire(&c->quota, o == OUT_TIMEOUT);
    if (cost == 0) {
        return 0; /* section 4: an empty bucket stops retrying */
    }
    *last_cost = cost;
    /* The throttling base is not scaled by base_delay_ms, so that DynamoDB's 25 ms transient
     * base still backs off 1 s on throttling, as the SDKs do. */
    ks_aws_backoff_sleep(
        &c->sleep, o == OUT_THROTTLED ? KS_AWS_BACKOFF_THROTTLE_BASE_MS : c->base_delay_ms, i);
    return 1;
}

/* The attempts of one call on handle h. */
static ks_status call_with_retries(struct ks_aws_client *c, CURL *h, const struct call_budget *b,
                                   const char *target, const char *body, size_t body_len,
                                   struct ks_aws_response *resp, struct ks_aws_error *e,
                                   struct ks_error *err)
{
    unsigned last_cost = 0; /* tokens taken for the latest retry, refunded on success */
    for (unsigned i = 0;; i++) {
        struct ks_secbuf collected;
        ks_secbuf_init(&collected, KS_AWS_MAX_RESPONSE);
        e->attempts = i + 1;
        enum outcome o = attempt(c, h, b, target, body, body_len, &collected, e, err);
        if (o == OUT_OK) {
            int rc = take_body(&collected, resp);
            ks_secbuf_free(&collected);
            if (rc != 0) {
                return ks_error_set(err, KS_E_INTERNAL, "out of memory");
            }
            ks_aws_retry_quota_release(&c->quota, last_cost);
            ks_error_clear(err);
            return KS_OK;
        }
        ks_secbuf_free(&collected);
        ks_status st = outcome_status(c, o, err);
        if (!retry_after(c, b, o, i, &last_cost)) {
            err->code = st;
            return st;
        }
    }
}

static ks_status call_within(struct ks_aws_client *c, const struct call_budget *b,
                             const char *operation, const char *request_json, size_t request_len,
                             struct ks_aws_response *resp, struct ks_aws_error *aws_err,
                             struct ks_error *err)
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
    ks_status st = call_with_retries(c, h, b, target, request_json, request_len, resp, e, err);
    handle_give_back(c, h);
    return st;
}

ks_status ks_aws_call(struct ks_aws_client *c, const char *operation, const char *request_json,
                      size_t request_len, struct ks_aws_response *resp,
                      struct ks_aws_error *aws_err, struct ks_error *err)
{
    struct call_budget b = {c->max_attempts, c->request_timeout_ms};
    return call_within(c, &b, operation, request_json, request_len, resp, aws_err, err);
}

ks_status ks_aws_call_probe(struct ks_aws_client *c, const char *operation,
                            const char *request_json, size_t request_len, long timeout_ms,
                            struct ks_aws_response *resp, struct ks_aws_error *aws_err,
                            struct ks_error *err)
{
    struct call_budget b = {1, timeout_ms > 0 && timeout_ms < c->request_timeout_ms
                                   ? timeout_ms
                                   : c->request_timeout_ms};
    return call_within(c, &b, operation, request_json, request_len, resp, aws_err, err);
}
