/*
 * test_aws_client.c - the awsJson client of aws/aws.h against an in-process libmicrohttpd
 * server on 127.0.0.1 that plays AWS: it answers from a per-test script, records every request
 * (headers and body), counts TCP connections, and can hang to provoke timeouts. Signatures are
 * checked server-side by re-signing the received request with ks_sigv4_sign.
 *
 * Backoff never really sleeps here: every client gets sleep hooks (aws/backoff.h) that record
 * the delay asked for and a jitter that returns the ceiling, so the tests assert the retry
 * policy of docs/reference/aws-apis.md section 4 (throttling base 1 s, transient base, 20 s cap,
 * retry quota) exactly and at once.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "aws/aws.h"
#include "aws/sigv4.h"

#define TEST_AKID "AKIDEXAMPLE"
#define TEST_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TEST_TOKEN "IQoJb3JpZ2luX2VjEXAMPLETOKEN"
#define TEST_EPOCH 1704164645u /* 2024-01-02T03:04:05Z */

/* --- the fake AWS endpoint --------------------------------------------------------------- */

#define MAX_REQUESTS 256
#define MAX_HEADERS 32
#define MAX_SCRIPT 16

struct recorded {
    char method[16];
    char url[256];
    char names[MAX_HEADERS][64];
    char values[MAX_HEADERS][1024];
    size_t n_headers;
    char body[4096];
    size_t body_len;
};

struct scripted {
    unsigned status;
    const char *body;
    const char *error_header; /* X-Amzn-Errortype, or NULL */
    int hang;                 /* wait until the test releases the server */
    size_t big_body;          /* when non-zero: a body of that many 'x' */
};

struct fake {
    struct MHD_Daemon *daemon;
    uint16_t port;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int released;
    unsigned connections;
    struct recorded *requests; /* MAX_REQUESTS */
    unsigned n_requests;
    struct scripted script[MAX_SCRIPT]; /* request i gets script[min(i, n_script-1)] */
    unsigned n_script;
};

struct upload {
    char body[4096];
    size_t len;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    struct recorded *r = cls;
    if (r->n_headers < MAX_HEADERS) {
        snprintf(r->names[r->n_headers], sizeof(r->names[0]), "%s", key);
        snprintf(r->values[r->n_headers], sizeof(r->values[0]), "%s", value != NULL ? value : "");
        r->n_headers++;
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct fake *f = cls;
    struct upload *up = *con_cls;
    if (up == NULL) {
        up = calloc(1, sizeof(*up));
        *con_cls = up;
        return up != NULL ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        if (n > sizeof(up->body) - 1 - up->len) {
            n = sizeof(up->body) - 1 - up->len;
        }
        memcpy(up->body + up->len, upload_data, n);
        up->len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }
    struct scripted s = {200, "{}", NULL, 0, 0};
    pthread_mutex_lock(&f->lock);
    unsigned index = f->n_requests;
    if (f->n_requests < MAX_REQUESTS) {
        struct recorded *r = &f->requests[f->n_requests++];
        memset(r, 0, sizeof(*r));
        snprintf(r->method, sizeof(r->method), "%s", method);
        snprintf(r->url, sizeof(r->url), "%s", url);
        MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, r);
        memcpy(r->body, up->body, up->len);
        r->body_len = up->len;
    }
    if (f->n_script > 0) {
        s = f->script[index < f->n_script ? index : f->n_script - 1];
    }
    if (s.hang) {
        while (!f->released) {
            pthread_cond_wait(&f->cond, &f->lock);
        }
    }
    pthread_mutex_unlock(&f->lock);

    size_t len = s.big_body != 0 ? s.big_body : strlen(s.body);
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return MHD_NO;
    }
    if (s.big_body != 0) {
        memset(copy, 'x', len);
    } else {
        memcpy(copy, s.body, len);
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, copy, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/x-amz-json-1.1");
    MHD_add_response_header(resp, "x-amzn-RequestId", "11111111-2222-3333-4444-555555555555");
    if (s.error_header != NULL) {
        MHD_add_response_header(resp, "X-Amzn-Errortype", s.error_header);
    }
    enum MHD_Result ret = MHD_queue_response(conn, s.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)conn;
    (void)socket_context;
    struct fake *f = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        pthread_mutex_lock(&f->lock);
        f->connections++;
        pthread_mutex_unlock(&f->lock);
    }
}

static struct fake *fake_start(void)
{
    struct fake *f = calloc(1, sizeof(*f));
    cr_assert_not_null(f);
    f->requests = calloc(MAX_REQUESTS, sizeof(*f->requests));
    cr_assert_not_null(f->requests);
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = 0;
    f->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                                 NULL, NULL, on_request, f, MHD_OPTION_SOCK_ADDR,
                                 (struct sockaddr *)&sin, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                                 f, MHD_OPTION_NOTIFY_CONNECTION, on_connection, f, MHD_OPTION_END);
    cr_assert_not_null(f->daemon, "cannot start the fake AWS endpoint");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(f->daemon, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert_not_null(info);
    f->port = info->port;
    return f;
}

static void fake_stop(struct fake *f)
{
    pthread_mutex_lock(&f->lock);
    f->released = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    MHD_stop_daemon(f->daemon);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    free(f->requests);
    free(f);
}

static void fake_script(struct fake *f, const struct scripted *s, unsigned n)
{
    cr_assert_leq(n, MAX_SCRIPT);
    memcpy(f->script, s, n * sizeof(*s));
    f->n_script = n;
}

static const char *header_of(const struct recorded *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->names[i], name) == 0) {
            return r->values[i];
        }
    }
    return NULL;
}

/* --- test fixtures ----------------------------------------------------------------------- */

/* A clock that moves one second forward on every reading. */
struct tick_clock {
    uint64_t start_us;
    unsigned long ticks;
};

static uint64_t tick_now(void *ctx)
{
    struct tick_clock *t = ctx;
    unsigned long n = __atomic_fetch_add(&t->ticks, 1ul, __ATOMIC_SEQ_CST);
    return t->start_us + (uint64_t)n * 1000000u;
}

/* Sleep hooks: record each delay, jitter = the ceiling (the largest the policy allows). */
#define MAX_SLEEPS 256
struct sleep_log {
    pthread_mutex_t lock;
    uint64_t delays[MAX_SLEEPS];
    size_t n;
};

static void record_sleep(void *ctx, uint64_t ms)
{
    struct sleep_log *l = ctx;
    pthread_mutex_lock(&l->lock);
    if (l->n < MAX_SLEEPS) {
        l->delays[l->n] = ms;
    }
    l->n++;
    pthread_mutex_unlock(&l->lock);
}

static uint64_t jitter_is_ceiling(void *ctx, uint64_t ceiling_ms)
{
    (void)ctx;
    return ceiling_ms;
}

struct setup {
    struct sleep_log sleeps;
    struct fake *fake;
    struct ks_aws_credentials_provider *creds;
    struct ks_aws_client *client;
    struct tick_clock tick;
    struct ks_clock clock;
    char endpoint[64];
};

static void setup_client_base(struct setup *s, const char *token, unsigned max_attempts,
                              long timeout_ms, const char *endpoint, unsigned base_delay_ms)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->sleeps.lock, NULL);
    if (endpoint == NULL) {
        s->fake = fake_start();
        snprintf(s->endpoint, sizeof(s->endpoint), "http://127.0.0.1:%u", s->fake->port);
    } else {
        snprintf(s->endpoint, sizeof(s->endpoint), "%s", endpoint);
    }
    struct ks_aws_credentials_options cfg = {0};
    cfg.source = KS_AWS_CRED_STATIC;
    char secret[] = TEST_SECRET;
    char tok[128] = "";
    cfg.secret_access_key = secret;
    if (token != NULL) {
        snprintf(tok, sizeof(tok), "%s", token);
        cfg.session_token = tok;
    }
    char akid[] = TEST_AKID;
    cfg.access_key_id = akid;
    struct ks_error err = {0};
    cr_assert_eq(ks_aws_credentials_provider_create(&cfg, NULL, &s->creds, &err), KS_OK, "%s",
                 err.message);
    s->tick.start_us = (uint64_t)TEST_EPOCH * 1000000u;
    s->clock.now_us = tick_now;
    s->clock.ctx = &s->tick;
    struct ks_aws_client_options o = {
        .service = "kms",
        .region = "us-west-2",
        .endpoint = s->endpoint,
        .json_version = "1.1",
        .target_prefix = "TrentService",
        .credentials = s->creds,
        .service_error = KS_E_KMS,
        .connect_timeout_ms = 1000,
        .request_timeout_ms = timeout_ms,
        .max_attempts = max_attempts,
        .base_delay_ms = base_delay_ms,
        .clock = &s->clock,
        .dependency = "KMS",
        .sleep = {record_sleep, jitter_is_ceiling, &s->sleeps},
    };
    cr_assert_eq(ks_aws_client_create(&o, &s->client, &err), KS_OK, "%s", err.message);
}

static void setup_client(struct setup *s, const char *token, unsigned max_attempts, long timeout_ms,
                         const char *endpoint)
{
    setup_client_base(s, token, max_attempts, timeout_ms, endpoint, 1);
}

/* Asserts the recorded delays are exactly want[0..n). */
static void expect_sleeps(struct setup *s, const uint64_t *want, size_t n)
{
    cr_expect_eq(s->sleeps.n, n, "%zu sleeps, expected %zu", s->sleeps.n, n);
    for (size_t i = 0; i < n && i < s->sleeps.n; i++) {
        cr_expect_eq(s->sleeps.delays[i], want[i], "sleep %zu: %llu ms, expected %llu", i,
                     (unsigned long long)s->sleeps.delays[i], (unsigned long long)want[i]);
    }
}

static void teardown_client(struct setup *s)
{
    pthread_mutex_destroy(&s->sleeps.lock);
    ks_aws_client_destroy(s->client);
    ks_aws_credentials_provider_destroy(s->creds);
    if (s->fake != NULL) {
        fake_stop(s->fake);
    }
}

static ks_status call(struct setup *s, const char *op, const char *body,
                      struct ks_aws_response *resp, struct ks_aws_error *aerr, struct ks_error *err)
{
    return ks_aws_call(s->client, op, body, strlen(body), resp, aerr, err);
}

/* "20240102T030405Z" -> epoch seconds. */
static uint64_t amz_date_epoch(const char *d)
{
    struct tm tm = {0};
    cr_assert_not_null(strptime(d, "%Y%m%dT%H%M%SZ", &tm), "bad X-Amz-Date %s", d);
    return (uint64_t)timegm(&tm);
}

/* Re-signs the received request the way AWS would and compares the Authorization header. */
static void verify_signature(const struct recorded *r, const char *token)
{
    const char *auth = header_of(r, "Authorization");
    const char *date = header_of(r, "X-Amz-Date");
    cr_assert_not_null(auth);
    cr_assert_not_null(date);
    const char *sh = strstr(auth, "SignedHeaders=");
    cr_assert_not_null(sh);
    sh += strlen("SignedHeaders=");
    char names[512];
    size_t n = strcspn(sh, ",");
    cr_assert_lt(n, sizeof(names));
    memcpy(names, sh, n);
    names[n] = '\0';
    struct ks_sigv4_header headers[16];
    size_t count = 0;
    char *save = NULL;
    for (char *name = strtok_r(names, ";", &save); name != NULL;
         name = strtok_r(NULL, ";", &save)) {
        if (strcmp(name, "x-amz-date") == 0 || strcmp(name, "x-amz-security-token") == 0) {
            continue; /* the signer adds these itself */
        }
        const char *v = header_of(r, name);
        cr_assert_not_null(v, "signed header %s was not sent", name);
        cr_assert_lt(count, 16);
        headers[count].name = name;
        headers[count].value = v;
        count++;
    }
    struct ks_sigv4_request req = {
        .method = r->method,
        .path = r->url,
        .headers = headers,
        .header_count = count,
        .body = r->body,
        .body_len = r->body_len,
        .region = "us-west-2",
        .service = "kms",
    };
    struct ks_sigv4_credentials c = {TEST_AKID, TEST_SECRET, token};
    struct ks_sigv4_result res;
    struct ks_error err = {0};
    cr_assert_eq(ks_sigv4_sign(&req, &c, amz_date_epoch(date), &res, &err), KS_OK, "%s",
                 err.message);
    cr_expect_str_eq(res.authorization, auth, "the signature does not verify");
    ks_sigv4_result_free(&res);
}

/* --- success ------------------------------------------------------------------------------ */

Test(aws_client, success_request_shape_and_signature)
{
    struct setup s;
    setup_client(&s, NULL, 0, 2000, NULL);
    struct scripted ok = {200, "{\"KeyId\":\"arn:aws:kms:us-west-2:1:key/k\"}", NULL, 0, 0};
    fake_script(s.fake, &ok, 1);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    struct ks_error err = {0};
    const char *body = "{\"KeyId\":\"alias/x\",\"NumberOfBytes\":32}";
    cr_assert_eq(call(&s, "GenerateDataKey", body, &resp, &aerr, &err), KS_OK, "%s", err.message);
    cr_expect_str_eq(resp.body, "{\"KeyId\":\"arn:aws:kms:us-west-2:1:key/k\"}");
    cr_expect_eq(resp.len, strlen(resp.body));
    cr_expect_eq(aerr.attempts, 1);
    cr_expect_eq(aerr.http_status, 200);
    ks_aws_response_free(&resp);
    cr_expect_null(resp.body);

    cr_assert_eq(s.fake->n_requests, 1);
    const struct recorded *r = &s.fake->requests[0];
    cr_expect_str_eq(r->method, "POST");
    cr_expect_str_eq(r->url, "/");
    cr_expect_str_eq(header_of(r, "X-Amz-Target"), "TrentService.GenerateDataKey");
    cr_expect_str_eq(header_of(r, "Content-Type"), "application/x-amz-json-1.1");
    char host[64];
    snprintf(host, sizeof(host), "127.0.0.1:%u", s.fake->port);
    cr_expect_str_eq(header_of(r, "Host"), host);
    cr_expect_str_eq(header_of(r, "X-Amz-Date"), "20240102T030405Z");
    cr_expect_null(header_of(r, "X-Amz-Security-Token"));
    cr_expect_null(header_of(r, "Expect"));
    cr_expect_not_null(strstr(header_of(r, "User-Agent"), "aws-kms-hierarchy"));
    const char *auth = header_of(r, "Authorization");
    cr_expect_not_null(strstr(auth, "AWS4-HMAC-SHA256 Credential=" TEST_AKID
                                    "/20240102/us-west-2/kms/aws4_request"),
                       "%s", auth);
    cr_expect_not_null(strstr(auth, "SignedHeaders=content-type;host;x-amz-date;x-amz-target,"),
                       "%s", auth);
    cr_expect_eq(r->body_len, strlen(body));
    cr_expect_eq(memcmp(r->body, body, r->body_len), 0);
    verify_signature(r, NULL);
    teardown_client(&s);
}

Test(aws_client, session_token_is_sent_and_signed)
{
    struct setup s;
    setup_client(&s, TEST_TOKEN, 0, 2000, NULL);
    struct ks_aws_response resp;
    struct ks_error err = {0};
    cr_assert_eq(call(&s, "Decrypt", "{}", &resp, NULL, &err), KS_OK, "%s", err.message);
    ks_aws_response_free(&resp);
    const struct recorded *r = &s.fake->requests[0];
    cr_expect_str_eq(header_of(r, "X-Amz-Security-Token"), TEST_TOKEN);
    cr_expect_not_null(strstr(header_of(r, "Authorization"),
                              "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;"
                              "x-amz-target,"));
    verify_signature(r, TEST_TOKEN);
    teardown_client(&s);
}

Test(aws_client, empty_success_body_is_empty_object)
{
    struct setup s;
    setup_client(&s, NULL, 0, 2000, NULL);
    struct scripted ok = {200, "", NULL, 0, 0};
    fake_script(s.fake, &ok, 1);
    struct ks_aws_response resp;
    struct ks_error err = {0};
    cr_assert_eq(call(&s, "TagResource", "{}", &resp, NULL, &err), KS_OK);
    cr_expect_str_eq(resp.body, "{}");
    cr_expect_eq(resp.len, 2);
    ks_aws_response_free(&resp);
    teardown_client(&s);
}

Test(aws_client, dynamodb_json_1_0_content_type)
{
    struct setup s;
    setup_client(&s, NULL, 0, 2000, NULL);
    struct ks_aws_client *ddb = NULL;
    struct ks_aws_client_options o = {
        .service = "dynamodb",
        .region = "eu-west-1",
        .endpoint = s.endpoint,
        .json_version = "1.0",
        .target_prefix = "DynamoDB_20120810",
        .credentials = s.creds,
        .service_error = KS_E_STORAGE,
    };
    struct ks_error err = {0};
    cr_assert_eq(ks_aws_client_create(&o, &ddb, &err), KS_OK, "%s", err.message);
    struct ks_aws_response resp;
    cr_assert_eq(ks_aws_call(ddb, "GetItem", "{}", 2, &resp, NULL, &err), KS_OK, "%s", err.message);
    ks_aws_response_free(&resp);
    const struct recorded *r = &s.fake->requests[0];
    cr_expect_str_eq(header_of(r, "Content-Type"), "application/x-amz-json-1.0");
    cr_expect_str_eq(header_of(r, "X-Amz-Target"), "DynamoDB_20120810.GetItem");
    cr_expect_not_null(strstr(header_of(r, "Authorization"), "/eu-west-1/dynamodb/aws4_request"));
    ks_aws_client_destroy(ddb);
    teardown_client(&s);
}

Test(aws_client, bad_options_and_endpoints_are_config_errors)
{
    struct setup s;
    setup_client(&s, NULL, 0, 2000, NULL);
    const char *bad[] = {"ftp://127.0.0.1/", "not a url", "http://user:pw@127.0.0.1/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ks_aws_client *c = NULL;
        struct ks_aws_client_options o = {.service = "kms",
                                          .region = "us-west-2",
                                          .endpoint = bad[i],
                                          .target_prefix = "TrentService",
                                          .credentials = s.creds,
                                          .service_error = KS_E_KMS};
        struct ks_error err = {0};
        cr_expect_eq(ks_aws_client_create(&o, &c, &err), KS_E_CONFIG, "%s", bad[i]);
        cr_expect_null(c);
    }
    struct ks_aws_client *c = NULL;
    struct ks_aws_client_options o = {.service = "kms", .region = "us-west-2"};
    cr_expect_eq(ks_aws_client_create(&o, &c, NULL), KS_E_CONFIG); /* no credentials */
    /* The default endpoint is built from service and region. */
    struct ks_aws_client_options d = {.service = "kms",
                                      .region = "us-west-2",
                                      .target_prefix = "TrentService",
                                      .credentials = s.creds,
                                      .service_error = KS_E_KMS};
    cr_expect_eq(ks_aws_client_create(&d, &c, NULL), KS_OK);
    ks_aws_client_destroy(c);
    teardown_client(&s);
}

/* --- retries ------------------------------------------------------------------------------ */

Test(aws_client, server_error_then_success_is_retried_and_resigned)
{
    struct setup s;
    setup_client(&s, NULL, 0, 2000, NULL);
    struct scripted script[] = {
        {500, "{\"__type\":\"KMSInternalException\",\"message\":\"boom\"}", NULL, 0, 0},
        {200, "{\"Plaintext\":\"AAAA\"}", NULL, 0, 0},
    };
    fake_script(s.fake, script, 2);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    struct ks_error err = {0};
    cr_assert_eq(call(&s, "Decrypt", "{\"CiphertextBlob\":\"AQID\"}", &resp, &aerr, &err), KS_OK,
                 "%s", err.message);
    cr_expect_eq(aerr.attempts, 2);
    cr_expect_str_eq(resp.body, "{\"Plaintext\":\"AAAA\"}");
    ks_aws_response_free(&resp);
    cr_assert_eq(s.fake->n_requests, 2);
    /* Every attempt is signed afresh: a new X-Amz-Date (the clock ticks once per reading). */
    const char *d0 = header_of(&s.fake->requests[0], "X-Amz-Date");
    const char *d1 = header_of(&s.fake->requests[1], "X-Amz-Date");
    cr_expect_str_neq(d0, d1);
    cr_expect_str_neq(header_of(&s.fake->requests[0], "Authorization"),
                      header_of(&s.fake->requests[1], "Authorization"));
    verify_signature(&s.fake->requests[0], NULL);
    verify_signature(&s.fake->requests[1], NULL);
    teardown_client(&s);
}

Test(aws_client, unavailable_after_all_attempts_return_5xx)
{
    struct setup s;
    setup_client(&s, NULL, 4, 2000, NULL);
    struct scripted e = {503, "{\"__type\":\"DependencyTimeoutException\",\"message\":\"slow\"}",
                         NULL, 0, 0};
    fake_script(s.fake, &e, 1);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    struct ks_error err = {0};
    cr_expect_eq(call(&s, "Encrypt", "{}", &resp, &aerr, &err), KS_E_UNAVAILABLE);
    cr_expect_eq(err.code, KS_E_UNAVAILABLE);
    cr_expect_eq(aerr.attempts, 4);
    cr_expect_eq(aerr.http_status, 503);
    cr_expect_str_eq(aerr.type, "DependencyTimeoutException");
    cr_expect_str_eq(err.message, "KMS unavailable (HTTP 503 DependencyTimeoutException)");
    cr_expect_null(strstr(err.message, "slow"));
    cr_expect_not_null(strstr(err.detail, "slow"), "%s", err.detail);
    cr_expect_null(resp.body);
    cr_expect_eq(s.fake->n_requests, 4);
    /* Transient base (1 ms here) doubling: 1, 2, 4. */
    const uint64_t want[] = {1, 2, 4};
    expect_sleeps(&s, want, 3);
    teardown_client(&s);
}

Test(aws_client, throttling_exhausts_attempts)
{
    struct setup s;
    setup_client(&s, NULL, 3, 2000, NULL);
    struct scripted t = {400, "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}",
                         NULL, 0, 0};
    fake_script(s.fake, &t, 1);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    struct ks_error err = {0};
    cr_expect_eq(call(&s, "GenerateDataKey", "{}", &resp, &aerr, &err), KS_E_THROTTLED);
    cr_expect_eq(aerr.attempts, 3);
    cr_expect_str_eq(aerr.type, "ThrottlingException");
    cr_expect_str_eq(aerr.message, "Rate exceeded");
    cr_expect_eq(s.fake->n_requests, 3);
    cr_expect_str_eq(err.message, "KMS ThrottlingException");
    cr_expect_not_null(strstr(err.detail, "Rate exceeded"), "%s", err.detail);
    /* Section 4: throttling waits from a 1 s base, whatever base_delay_ms says (1 ms here). */
    const uint64_t want[] = {1000, 2000};
    expect_sleeps(&s, want, 2);
    teardown_client(&s);
}

Test(aws_client, throttling_backoff_doubles_up_to_the_20_s_cap)
{
    struct setup s;
    setup_client(&s, NULL, 8, 2000, NULL);
    struct scripted t = {400, "{\"__type\":\"ThrottlingException\"}", NULL, 0, 0};
    fake_script(s.fake, &t, 1);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    cr_expect_eq(call(&s, "Encrypt", "{}", &resp, &aerr, NULL), KS_E_THROTTLED);
    cr_expect_eq(aerr.attempts, 8);
    const uint64_t want[] = {1000, 2000, 4000, 8000, 16000, 20000, 20000};
    expect_sleeps(&s, want, 7);
    teardown_client(&s);
}

Test(aws_client, default_transient_base_is_50_ms)
{
    struct setup s;
    setup_client_base(&s, NULL, 3, 2000, NULL, 0);
    struct scripted e = {502, "", NULL, 0, 0};
    fake_script(s.fake, &e, 1);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    struct ks_error err = {0};
    cr_expect_eq(call(&s, "Encrypt", "{}", &resp, &aerr, &err), KS_E_UNAVAILABLE);
    cr_expect_str_eq(err.message, "KMS unavailable (HTTP 502)");
    const uint64_t want[] = {50, 100};
    expect_sleeps(&s, want, 2);
    teardown_client(&s);
}

Test(aws_client, transient_error_code_is_retried)
{
    struct setup s;
    setup_client(&s, NULL, 0, 2000, NULL);
    struct scripted script[] = {
        {400, "{\"__type\":\"RequestTimeoutException\",\"message\":\"t\"}", NULL, 0, 0},
        {200, "{}", NULL, 0, 0},
    };
    fake_script(s.fake, script, 2);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    cr_expect_eq(call(&s, "Encrypt", "{}", &resp, &aerr, NULL), KS_OK);
    cr_expect_eq(aerr.attempts, 2);
    ks_aws_response_free(&resp);
    teardown_client(&s);
}

Test(aws_client, access_denied_is_a_service_error_without_retry)
{
    struct setup s;
    setup_client(&s, NULL, 3, 2000, NULL);
    struct scripted e = {400,
                         "{\"__type\":\"AccessDeniedException\",\"message\":\"User is not "
                         "authorized to perform kms:Decrypt\"}",
                         NULL, 0, 0};
    fake_script(s.fake, &e, 1);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    struct ks_error err = {0};
    cr_expect_eq(call(&s, "Decrypt", "{}", &resp, &aerr, &err), KS_E_KMS);
    cr_expect_eq(err.code, KS_E_KMS);
    /* The client sees the dependency and the code; AWS's text (it can name accounts and
     * roles) is only in the log-only detail. */
    cr_expect_str_eq(err.message, "KMS AccessDeniedException");
    cr_expect_not_null(strstr(err.detail, "User is not authorized to perform kms:Decrypt"), "%s",
                       err.detail);
    cr_expect_not_null(strstr(err.detail, "TrentService.Decrypt"), "%s", err.detail);
    cr_expect_str_eq(aerr.message, "User is not authorized to perform kms:Decrypt");
    cr_expect_eq(s.sleeps.n, 0, "no retry, no wait");
    cr_expect_eq(aerr.attempts, 1);
    cr_expect_eq(aerr.http_status, 400);
    cr_expect_eq(s.fake->n_requests, 1);
    teardown_client(&s);
}

Test(aws_client, validation_error_is_not_retried)
{
    struct setup s;
    setup_client(&s, NULL, 3, 2000, NULL);
    struct scripted e = {400,
                         "{\"__type\":\"ValidationException\",\"message\":\"1 validation error "
                         "detected: Value '' at 'keyId' failed to satisfy constraint\"}",
                         NULL, 0, 0};
    fake_script(s.fake, &e, 1);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    cr_expect_eq(call(&s, "Decrypt", "{}", &resp, &aerr, NULL), KS_E_KMS);
    cr_expect_str_eq(aerr.type, "ValidationException");
    cr_expect_eq(aerr.attempts, 1);
    cr_expect_eq(s.fake->n_requests, 1);
    teardown_client(&s);
}

Test(aws_client, other_http_error_without_body_is_service_error)
{
    struct setup s;
    setup_client(&s, NULL, 3, 2000, NULL);
    struct scripted e = {403, "not json", NULL, 0, 0};
    fake_script(s.fake, &e, 1);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    struct ks_error err = {0};
    cr_expect_eq(call(&s, "Decrypt", "{}", &resp, &aerr, &err), KS_E_KMS);
    cr_expect_str_eq(aerr.type, "");
    cr_expect_eq(aerr.http_status, 403);
    cr_expect_eq(aerr.attempts, 1);
    cr_expect_str_eq(err.message, "KMS HTTP 403");
    teardown_client(&s);
}

/* A port nobody listens on: bind, read the port, close. */
static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

Test(aws_client, connection_refused_is_unavailable)
{
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%u", free_port());
    struct setup s;
    setup_client(&s, NULL, 3, 2000, endpoint);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    struct ks_error err = {0};
    cr_expect_eq(call(&s, "Decrypt", "{}", &resp, &aerr, &err), KS_E_UNAVAILABLE);
    cr_expect_eq(err.code, KS_E_UNAVAILABLE);
    cr_expect_eq(aerr.attempts, 3);
    cr_expect_eq(aerr.http_status, 0);
    cr_expect_null(resp.body);
    cr_expect_str_eq(err.message, "KMS unavailable (connection failed)");
    cr_expect_not_null(strstr(err.detail, endpoint), "%s", err.detail);
    teardown_client(&s);
}

Test(aws_client, slow_server_times_out_every_attempt, .timeout = 20)
{
    struct setup s;
    setup_client(&s, NULL, 3, 200, NULL);
    struct scripted hang = {200, "{}", NULL, 1, 0};
    fake_script(s.fake, &hang, 1);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    struct ks_error err = {0};
    cr_expect_eq(call(&s, "Decrypt", "{}", &resp, &aerr, &err), KS_E_UNAVAILABLE);
    cr_expect_eq(aerr.attempts, 3);
    cr_expect_eq(aerr.http_status, 0);
    cr_expect_str_eq(err.message, "KMS unavailable (timed out)");
    cr_expect_not_null(strstr(err.detail, "imeout"), "%s", err.detail);
    /* A timeout costs 10 tokens (section 4), two retries: 20. */
    cr_expect_eq(ks_aws_client_retry_tokens(s.client), 500 - 20);
    teardown_client(&s);
}

Test(aws_client, oversized_response_is_refused)
{
    struct setup s;
    setup_client(&s, NULL, 3, 5000, NULL);
    struct scripted big = {200, NULL, NULL, 0, 5u * 1024u * 1024u};
    fake_script(s.fake, &big, 1);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    struct ks_error err = {0};
    cr_expect_eq(call(&s, "Decrypt", "{}", &resp, &aerr, &err), KS_E_KMS);
    cr_expect_eq(aerr.attempts, 1);
    cr_expect_null(resp.body);
    teardown_client(&s);
}

/* --- error type parsing (section 1) ------------------------------------------------------- */

Test(aws_client, error_type_sanitization)
{
    struct setup s;
    setup_client(&s, NULL, 1, 2000, NULL);
    struct {
        struct scripted reply;
        const char *type;
        const char *message;
    } cases[] = {
        {{400,
          "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException\","
          "\"message\":\"Requested resource not found\"}",
          NULL, 0, 0},
         "ResourceNotFoundException",
         "Requested resource not found"},
        {{400, "{\"__type\":\"NotFoundException:http://internal.amazon.com/coral/x/\"}", NULL, 0,
          0},
         "NotFoundException",
         ""},
        {{400, "{\"__type\":\"aws.protocoltests#FooError:http://x/#y\"}", NULL, 0, 0},
         "FooError",
         ""},
        /* The header wins over the body. */
        {{400, "{\"__type\":\"BodyError\",\"message\":\"m\"}",
          "KMSInvalidStateException:http://internal.amazon.com/", 0, 0},
         "KMSInvalidStateException",
         "m"},
        /* "code" when there is no __type; capital-M Message (DynamoDB). */
        {{400, "{\"code\":\"IdempotentParameterMismatchException\",\"Message\":\"M\"}", NULL, 0, 0},
         "IdempotentParameterMismatchException",
         "M"},
        /* Hostile characters are dropped. */
        {{400, "{\"__type\":\"Bad\\nType <x>\"}", NULL, 0, 0}, "BadTypex", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake_script(s.fake, &cases[i].reply, 1);
        pthread_mutex_lock(&s.fake->lock);
        s.fake->n_requests = 0;
        pthread_mutex_unlock(&s.fake->lock);
        struct ks_aws_response resp;
        struct ks_aws_error aerr;
        struct ks_error err = {0};
        cr_expect_eq(call(&s, "Decrypt", "{}", &resp, &aerr, &err), KS_E_KMS, "case %zu", i);
        cr_expect_str_eq(aerr.type, cases[i].type, "case %zu", i);
        cr_expect_str_eq(aerr.message, cases[i].message, "case %zu", i);
    }
    teardown_client(&s);
}

/* --- connection reuse and retry quota ---------------------------------------------------- */

Test(aws_client, sequential_calls_reuse_one_connection)
{
    struct setup s;
    setup_client(&s, NULL, 0, 2000, NULL);
    for (int i = 0; i < 20; i++) {
        struct ks_aws_response resp;
        struct ks_error err = {0};
        cr_assert_eq(call(&s, "Encrypt", "{\"Plaintext\":\"AA==\"}", &resp, NULL, &err), KS_OK,
                     "%s", err.message);
        ks_aws_response_free(&resp);
    }
    cr_expect_eq(s.fake->n_requests, 20);
    cr_expect_eq(s.fake->connections, 1, "%u TCP connections for 20 calls", s.fake->connections);
    teardown_client(&s);
}

Test(aws_client, empty_retry_quota_stops_retrying)
{
    struct setup s;
    setup_client(&s, NULL, 2, 2000, NULL);
    struct scripted e = {500, "{}", NULL, 0, 0};
    fake_script(s.fake, &e, 1);
    /* 500 tokens at 5 per retry: 100 calls may retry once each. */
    for (int i = 0; i < 100; i++) {
        struct ks_aws_response resp;
        struct ks_aws_error aerr;
        cr_assert_eq(call(&s, "Encrypt", "{}", &resp, &aerr, NULL), KS_E_UNAVAILABLE);
        cr_assert_eq(aerr.attempts, 2, "call %d", i);
    }
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    cr_expect_eq(ks_aws_client_retry_tokens(s.client), 0);
    cr_expect_eq(s.sleeps.n, 100, "one backoff per paid retry");
    cr_expect_eq(call(&s, "Encrypt", "{}", &resp, &aerr, NULL), KS_E_UNAVAILABLE);
    cr_expect_eq(aerr.attempts, 1, "the bucket is empty: no retry");
    cr_expect_eq(s.sleeps.n, 100, "and no wait");
    /* Successes refill it: a success after a retry-free attempt adds 1 token, 5 make a retry. */
    struct scripted ok = {200, "{}", NULL, 0, 0};
    fake_script(s.fake, &ok, 1);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(call(&s, "Encrypt", "{}", &resp, &aerr, NULL), KS_OK);
        ks_aws_response_free(&resp);
    }
    cr_expect_eq(ks_aws_client_retry_tokens(s.client), 5);
    fake_script(s.fake, &e, 1);
    cr_expect_eq(call(&s, "Encrypt", "{}", &resp, &aerr, NULL), KS_E_UNAVAILABLE);
    cr_expect_eq(aerr.attempts, 2);
    teardown_client(&s);
}

Test(aws_client, success_after_retry_refunds_the_retry_cost)
{
    struct setup s;
    setup_client(&s, NULL, 3, 2000, NULL);
    struct scripted script[] = {
        {503, "{}", NULL, 0, 0},
        {200, "{}", NULL, 0, 0},
    };
    fake_script(s.fake, script, 2);
    struct ks_aws_response resp;
    cr_assert_eq(call(&s, "Encrypt", "{}", &resp, NULL, NULL), KS_OK);
    ks_aws_response_free(&resp);
    cr_expect_eq(ks_aws_client_retry_tokens(s.client), 500, "5 taken, 5 refunded");
    teardown_client(&s);
}

/* --- credentials at request time ---------------------------------------------------------- */

static const char *empty_env(void *ctx, const char *name)
{
    (void)ctx;
    (void)name;
    return NULL;
}

Test(aws_client, missing_credentials_are_unavailable_and_send_nothing)
{
    struct fake *fake = fake_start();
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%u", fake->port);
    struct ks_aws_credentials_options cfg = {.source = KS_AWS_CRED_ENV};
    struct ks_aws_environment env = {.getenv = empty_env};
    struct ks_aws_credentials_provider *p = NULL;
    struct ks_error err = {0};
    /* Start-up accepts the source: the variables may be set by the time requests come. */
    cr_assert_eq(ks_aws_credentials_provider_create(&cfg, &env, &p, &err), KS_OK, "%s",
                 err.message);
    struct ks_aws_client_options o = {.service = "kms",
                                      .dependency = "KMS",
                                      .region = "us-west-2",
                                      .endpoint = endpoint,
                                      .target_prefix = "TrentService",
                                      .credentials = p,
                                      .service_error = KS_E_KMS};
    struct ks_aws_client *c = NULL;
    cr_assert_eq(ks_aws_client_create(&o, &c, &err), KS_OK, "%s", err.message);
    struct ks_aws_response resp;
    cr_expect_eq(ks_aws_call(c, "Decrypt", "{}", 2, &resp, NULL, &err), KS_E_UNAVAILABLE);
    cr_expect_eq(err.code, KS_E_UNAVAILABLE);
    cr_expect_not_null(strstr(err.message, "AWS_ACCESS_KEY_ID"), "%s", err.message);
    cr_expect_eq(fake->n_requests, 0);
    ks_aws_client_destroy(c);
    ks_aws_credentials_provider_destroy(p);
    fake_stop(fake);
}

/* Readiness probes: one attempt, no backoff, within the probe's own deadline. */
Test(aws_client, probe_makes_one_attempt_on_5xx_and_does_not_sleep)
{
    struct setup s;
    setup_client(&s, NULL, 4, 2000, NULL);
    struct scripted e = {503, "{\"__type\":\"DependencyTimeoutException\",\"message\":\"slow\"}",
                         NULL, 0, 0};
    fake_script(s.fake, &e, 1);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    struct ks_error err = {0};
    cr_expect_eq(ks_aws_call_probe(s.client, "DescribeKey", "{}", 2, 500, &resp, &aerr, &err),
                 KS_E_UNAVAILABLE);
    cr_expect_eq(aerr.attempts, 1);
    cr_expect_eq(s.fake->n_requests, 1);
    expect_sleeps(&s, NULL, 0);
    cr_expect_eq(ks_aws_client_retry_tokens(s.client), 500); /* no retry, no cost */
    teardown_client(&s);
}

Test(aws_client, probe_deadline_is_shorter_than_the_request_timeout, .timeout = 20)
{
    struct setup s;
    setup_client(&s, NULL, 3, 10000, NULL);
    struct scripted hang = {200, "{}", NULL, 1, 0};
    fake_script(s.fake, &hang, 1);
    struct ks_aws_response resp;
    struct ks_aws_error aerr;
    struct ks_error err = {0};
    uint64_t t0 = ks_monotonic_us();
    cr_expect_eq(ks_aws_call_probe(s.client, "DescribeKey", "{}", 2, 300, &resp, &aerr, &err),
                 KS_E_UNAVAILABLE);
    uint64_t took_ms = (ks_monotonic_us() - t0) / 1000u;
    cr_expect_eq(aerr.attempts, 1);
    cr_expect_str_eq(err.message, "KMS unavailable (timed out)");
    /* 300 ms deadline, not the client's 10 s x 3 attempts (a generous bound: a correctness
     * check, not a benchmark). */
    cr_expect_lt(took_ms, 5000, "probe took %llu ms", (unsigned long long)took_ms);
    teardown_client(&s);
}
