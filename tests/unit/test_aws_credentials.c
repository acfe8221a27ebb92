/*
 * test_aws_credentials.c - the credential providers of aws/aws.h: environment, shared files,
 * container and IMDSv2 (the last two against an in-process libmicrohttpd server on 127.0.0.1
 * playing the metadata service), static keys, and the two-stage refresh of section 5.5 driven
 * by an injected clock. The process environment is never touched: a fake getenv is injected.
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
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "aws/aws.h"

#define T0 1704164645u /* 2024-01-02T03:04:05Z */

/* --- injected environment and clock ------------------------------------------------------ */

#define MAX_VARS 16

struct fake_env {
    char names[MAX_VARS][64];
    char values[MAX_VARS][512];
    size_t n;
    uint64_t now_s;
    struct ks_clock clock;
    struct ks_aws_environment env;
};

static const char *fake_getenv(void *ctx, const char *name)
{
    struct fake_env *e = ctx;
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->names[i], name) == 0) {
            return e->values[i];
        }
    }
    return NULL;
}

static uint64_t fake_now(void *ctx)
{
    struct fake_env *e = ctx;
    return __atomic_load_n(&e->now_s, __ATOMIC_SEQ_CST) * 1000000u;
}

static void env_init(struct fake_env *e)
{
    memset(e, 0, sizeof(*e));
    e->now_s = T0;
    e->clock.now_us = fake_now;
    e->clock.ctx = e;
    e->env.getenv = fake_getenv;
    e->env.getenv_ctx = e;
    e->env.clock = &e->clock;
}

static void env_set(struct fake_env *e, const char *name, const char *value)
{
    size_t i = 0;
    while (i < e->n && strcmp(e->names[i], name) != 0) {
        i++;
    }
    cr_assert_lt(i, MAX_VARS);
    snprintf(e->names[i], sizeof(e->names[i]), "%s", name);
    snprintf(e->values[i], sizeof(e->values[i]), "%s", value);
    if (i == e->n) {
        e->n++;
    }
}

static ks_status provider(struct fake_env *e, enum ks_aws_cred_source source, const char *profile,
                          struct ks_aws_credentials_provider **p)
{
    struct ks_aws_credentials_options cfg = {0};
    char name[64] = "";
    cfg.source = source;
    if (profile != NULL) {
        snprintf(name, sizeof(name), "%s", profile);
        cfg.profile = name;
    }
    struct ks_error err = {0};
    return ks_aws_credentials_provider_create(&cfg, &e->env, p, &err);
}

/* Gets credentials and checks them; expiration is checked unless ~0. */
static void expect_creds(struct ks_aws_credentials_provider *p, const char *id, const char *secret,
                         const char *token, uint64_t expiration)
{
    struct ks_aws_credentials c;
    struct ks_error err = {0};
    cr_assert_eq(ks_aws_credentials_get(p, &c, &err), KS_OK, "%s", err.message);
    cr_expect_str_eq(c.access_key_id, id);
    cr_expect_str_eq(c.secret_access_key, secret);
    if (token == NULL) {
        cr_expect_null(c.session_token);
    } else {
        cr_expect_str_eq(c.session_token != NULL ? c.session_token : "(null)", token);
    }
    if (expiration != ~(uint64_t)0) {
        cr_expect_eq(c.expiration, expiration);
    }
    ks_aws_credentials_clear(&c);
    cr_expect_null(c.access_key_id);
}

static ks_status get_status(struct ks_aws_credentials_provider *p)
{
    struct ks_aws_credentials c;
    struct ks_error err = {0};
    ks_status st = ks_aws_credentials_get(p, &c, &err);
    if (st == KS_OK) {
        ks_aws_credentials_clear(&c);
    } else {
        cr_expect_eq(err.code, st);
        cr_expect_neq(err.message[0], '\0');
        cr_expect_null(c.access_key_id);
    }
    return st;
}

/* --- temp files --------------------------------------------------------------------------- */

struct tmpdir {
    char path[256];
    char files[8][320];
    size_t n;
};

static void tmpdir_make(struct tmpdir *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->path, sizeof(t->path), "/tmp/ks-aws-creds-XXXXXX");
    cr_assert_not_null(mkdtemp(t->path));
}

static const char *tmpdir_write(struct tmpdir *t, const char *name, const char *content)
{
    char path[320];
    snprintf(path, sizeof(path), "%s/%s", t->path, name);
    size_t i = 0;
    while (i < t->n && strcmp(t->files[i], path) != 0) {
        i++;
    }
    cr_assert_lt(i, 8);
    if (i == t->n) {
        snprintf(t->files[t->n++], sizeof(t->files[0]), "%s", path);
    }
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(content, f);
    fclose(f);
    return t->files[i];
}

static void tmpdir_remove(struct tmpdir *t)
{
    for (size_t i = t->n; i > 0; i--) {
        unlink(t->files[i - 1]);
        rmdir(t->files[i - 1]); /* directories were recorded too */
    }
    rmdir(t->path);
}

/* --- the fake metadata service ----------------------------------------------------------- */

#define MAX_ROUTES 8
#define MAX_REQUESTS 64

struct route {
    const char *method;
    const char *path;
    unsigned status;
    char body[1024];
    const char *need_header; /* when set, a request without need_value gets 401 */
    char need_value[256];
};

struct seen {
    char method[16];
    char url[256];
    char header[256]; /* the route's need_header as received, "" when absent */
    char ttl[32];     /* X-aws-ec2-metadata-token-ttl-seconds */
};

struct fake {
    struct MHD_Daemon *daemon;
    uint16_t port;
    pthread_mutex_t lock;
    struct route routes[MAX_ROUTES];
    size_t n_routes;
    struct seen requests[MAX_REQUESTS];
    unsigned n_requests;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    struct fake *f = cls;
    if (*con_cls == NULL) {
        *con_cls = f; /* first call: headers only */
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    unsigned status = 404;
    char body[1024] = "";
    pthread_mutex_lock(&f->lock);
    struct seen *s = f->n_requests < MAX_REQUESTS ? &f->requests[f->n_requests++] : NULL;
    if (s != NULL) {
        memset(s, 0, sizeof(*s));
        snprintf(s->method, sizeof(s->method), "%s", method);
        snprintf(s->url, sizeof(s->url), "%s", url);
        const char *ttl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                      "X-aws-ec2-metadata-token-ttl-seconds");
        snprintf(s->ttl, sizeof(s->ttl), "%s", ttl != NULL ? ttl : "");
    }
    for (size_t i = 0; i < f->n_routes; i++) {
        const struct route *r = &f->routes[i];
        if (strcmp(r->method, method) != 0 || strcmp(r->path, url) != 0) {
            continue;
        }
        status = r->status;
        snprintf(body, sizeof(body), "%s", r->body);
        if (r->need_header != NULL) {
            const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, r->need_header);
            if (s != NULL) {
                snprintf(s->header, sizeof(s->header), "%s", v != NULL ? v : "");
            }
            if (v == NULL || strcmp(v, r->need_value) != 0) {
                status = 401;
                body[0] = '\0';
            }
        }
        break;
    }
    pthread_mutex_unlock(&f->lock);
    size_t len = strlen(body);
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return MHD_NO;
    }
    memcpy(copy, body, len + 1);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, copy, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static struct fake *fake_start(void)
{
    struct fake *f = calloc(1, sizeof(*f));
    cr_assert_not_null(f);
    pthread_mutex_init(&f->lock, NULL);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                                 NULL, NULL, on_request, f, MHD_OPTION_SOCK_ADDR,
                                 (struct sockaddr *)&sin, MHD_OPTION_END);
    cr_assert_not_null(f->daemon, "cannot start the fake metadata service");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(f->daemon, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert_not_null(info);
    f->port = info->port;
    return f;
}

static void fake_stop(struct fake *f)
{
    MHD_stop_daemon(f->daemon);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* Adds or replaces the route for method+path. */
static void fake_route(struct fake *f, const char *method, const char *path, unsigned status,
                       const char *body, const char *need_header, const char *need_value)
{
    pthread_mutex_lock(&f->lock);
    size_t i = 0;
    while (i < f->n_routes &&
           (strcmp(f->routes[i].method, method) != 0 || strcmp(f->routes[i].path, path) != 0)) {
        i++;
    }
    cr_assert_lt(i, MAX_ROUTES);
    struct route *r = &f->routes[i];
    r->method = method;
    r->path = path;
    r->status = status;
    snprintf(r->body, sizeof(r->body), "%s", body);
    r->need_header = need_header;
    snprintf(r->need_value, sizeof(r->need_value), "%s", need_value != NULL ? need_value : "");
    if (i == f->n_routes) {
        f->n_routes++;
    }
    pthread_mutex_unlock(&f->lock);
}

static unsigned fake_count(struct fake *f)
{
    pthread_mutex_lock(&f->lock);
    unsigned n = f->n_requests;
    pthread_mutex_unlock(&f->lock);
    return n;
}

/* ISO-8601 for an epoch (the metadata services' Expiration). */
static void iso(uint64_t epoch, char out[32])
{
    time_t t = (time_t)epoch;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void creds_json(char *out, size_t size, const char *id, const char *secret,
                       const char *token, uint64_t expiration)
{
    char exp[32];
    iso(expiration, exp);
    snprintf(out, size,
             "{\"Code\":\"Success\",\"LastUpdated\":\"2024-01-02T00:00:00Z\",\"Type\":\"AWS-HMAC\","
             "\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"%s\",\"Token\":\"%s\","
             "\"Expiration\":\"%s\"}",
             id, secret, token, exp);
}

/* --- environment (5.1) ------------------------------------------------------------------- */

Test(aws_credentials, env_keys_and_session_token)
{
    struct fake_env e;
    env_init(&e);
    env_set(&e, "AWS_ACCESS_KEY_ID", "AKIAENV");
    env_set(&e, "AWS_SECRET_ACCESS_KEY", "envsecret");
    env_set(&e, "AWS_SESSION_TOKEN", "envtoken");
    env_set(&e, "AWS_SECURITY_TOKEN", "legacy-loses");
    struct ks_aws_credentials_provider *p = NULL;
    cr_assert_eq(provider(&e, KS_AWS_CRED_ENV, NULL, &p), KS_OK);
    expect_creds(p, "AKIAENV", "envsecret", "envtoken", 0);
    ks_aws_credentials_provider_destroy(p);
}

Test(aws_credentials, env_legacy_token_and_expiration_formats)
{
    struct fake_env e;
    env_init(&e);
    env_set(&e, "AWS_ACCESS_KEY_ID", "AKIAENV");
    env_set(&e, "AWS_SECRET_ACCESS_KEY", "envsecret");
    env_set(&e, "AWS_SECURITY_TOKEN", "legacy");
    const struct {
        const char *text;
        uint64_t epoch;
    } cases[] = {
        {"2024-01-02T05:04:05Z", T0 + 7200},         {"2024-01-02T05:04:05.123Z", T0 + 7200},
        {"2024-01-02T06:04:05+01:00", T0 + 7200},    {"2024-01-02T04:04:05-01:00", T0 + 7200},
        {"2024-02-29T03:04:05Z", T0 + 58u * 86400u}, /* a leap day */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        env_set(&e, "AWS_CREDENTIAL_EXPIRATION", cases[i].text);
        struct ks_aws_credentials_provider *p = NULL;
        cr_assert_eq(provider(&e, KS_AWS_CRED_ENV, NULL, &p), KS_OK);
        expect_creds(p, "AKIAENV", "envsecret", "legacy", cases[i].epoch);
        ks_aws_credentials_provider_destroy(p);
    }
}

Test(aws_credentials, env_missing_or_malformed_is_unavailable_at_request_time)
{
    const char *bad_expirations[] = {"tomorrow", "2024-01-02 03:04", "2024-13-02T03:04:05Z",
                                     "2024-01-02T03:04:05", "2024-01-02T03:04:05+0100"};
    struct fake_env e;
    env_init(&e);
    struct ks_aws_credentials_provider *p = NULL;
    env_set(&e, "AWS_ACCESS_KEY_ID", "AKIAENV");
    cr_assert_eq(provider(&e, KS_AWS_CRED_ENV, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE, "no secret");
    ks_aws_credentials_provider_destroy(p);
    env_set(&e, "AWS_SECRET_ACCESS_KEY", "envsecret");
    for (size_t i = 0; i < sizeof(bad_expirations) / sizeof(bad_expirations[0]); i++) {
        env_set(&e, "AWS_CREDENTIAL_EXPIRATION", bad_expirations[i]);
        cr_assert_eq(provider(&e, KS_AWS_CRED_ENV, NULL, &p), KS_OK);
        cr_expect_eq(get_status(p), KS_E_UNAVAILABLE, "%s", bad_expirations[i]);
        ks_aws_credentials_provider_destroy(p);
    }
    /* Already expired. */
    env_set(&e, "AWS_CREDENTIAL_EXPIRATION", "2024-01-02T03:00:00Z");
    cr_assert_eq(provider(&e, KS_AWS_CRED_ENV, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
}

Test(aws_credentials, env_credentials_with_expiration_are_refreshed)
{
    struct fake_env e;
    env_init(&e);
    env_set(&e, "AWS_ACCESS_KEY_ID", "AKIAONE");
    env_set(&e, "AWS_SECRET_ACCESS_KEY", "one");
    env_set(&e, "AWS_CREDENTIAL_EXPIRATION", "2024-01-02T04:04:05Z"); /* T0 + 1 h */
    struct ks_aws_credentials_provider *p = NULL;
    cr_assert_eq(provider(&e, KS_AWS_CRED_ENV, NULL, &p), KS_OK);
    expect_creds(p, "AKIAONE", "one", NULL, T0 + 3600);
    /* The environment changes, but 40 min remain: the cached ones are used. */
    env_set(&e, "AWS_ACCESS_KEY_ID", "AKIATWO");
    env_set(&e, "AWS_SECRET_ACCESS_KEY", "two");
    env_set(&e, "AWS_CREDENTIAL_EXPIRATION", "2024-01-02T05:04:05Z");
    e.now_s = T0 + 20 * 60;
    expect_creds(p, "AKIAONE", "one", NULL, T0 + 3600);
    /* 14 min left: advisory refresh picks up the new ones. */
    e.now_s = T0 + 46 * 60;
    expect_creds(p, "AKIATWO", "two", NULL, T0 + 7200);
    ks_aws_credentials_provider_destroy(p);
}

/* --- static ------------------------------------------------------------------------------ */

Test(aws_credentials, static_keys_and_bad_configs)
{
    struct fake_env e;
    env_init(&e);
    char id[] = "AKIASTATIC", secret[] = "staticsecret", token[] = "statictoken", empty[] = "";
    struct ks_aws_credentials_options cfg = {.source = KS_AWS_CRED_STATIC,
                                             .access_key_id = id,
                                             .secret_access_key = secret,
                                             .session_token = token};
    struct ks_aws_credentials_provider *p = NULL;
    struct ks_error err = {0};
    cr_assert_eq(ks_aws_credentials_provider_create(&cfg, NULL, &p, &err), KS_OK);
    expect_creds(p, "AKIASTATIC", "staticsecret", "statictoken", 0);
    expect_creds(p, "AKIASTATIC", "staticsecret", "statictoken", 0);
    ks_aws_credentials_provider_destroy(p);

    cfg.session_token = empty;
    cr_assert_eq(ks_aws_credentials_provider_create(&cfg, &e.env, &p, &err), KS_OK);
    expect_creds(p, "AKIASTATIC", "staticsecret", NULL, 0);
    ks_aws_credentials_provider_destroy(p);

    cfg.secret_access_key = NULL;
    cr_expect_eq(ks_aws_credentials_provider_create(&cfg, &e.env, &p, &err), KS_E_CONFIG);
    cr_expect_null(p);
    cfg.secret_access_key = secret;
    cfg.access_key_id = empty;
    cr_expect_eq(ks_aws_credentials_provider_create(&cfg, &e.env, &p, &err), KS_E_CONFIG);
    struct ks_aws_credentials_options none = {.source = KS_AWS_CRED_NONE};
    cr_expect_eq(ks_aws_credentials_provider_create(&none, &e.env, &p, &err), KS_E_CONFIG);
    cr_expect_eq(ks_aws_credentials_provider_create(NULL, &e.env, &p, &err), KS_E_CONFIG);
    ks_aws_credentials_provider_destroy(NULL);
}

/* --- shared files (5.2) ------------------------------------------------------------------ */

static const char *CREDENTIALS_FILE = "# a comment\n"
                                      "; another comment\n"
                                      "\n"
                                      "[default]\n"
                                      "aws_access_key_id=AKIADEFAULT\n"
                                      "aws_secret_access_key = defaultsecret   \n"
                                      "\n"
                                      "  [ work ]  # trailing comment\r\n"
                                      "\tAWS_ACCESS_KEY_ID\t=\tAKIAWORK\r\n"
                                      "aws_secret_access_key = work/secret+key # inline comment\r\n"
                                      "aws_security_token = legacytoken\r\n"
                                      "aws_session_token = worktoken\r\n"
                                      "s3 =\n"
                                      "  aws_access_key_id = NESTED-IGNORED\n"
                                      "\n"
                                      "[profile cfgstyle]\n"
                                      "aws_access_key_id = AKIANOTTHIS\n"
                                      "aws_secret_access_key = x\n"
                                      "\n"
                                      "[partial]\n"
                                      "aws_access_key_id = AKIAPARTIAL\n"
                                      "\n"
                                      "[both]\n"
                                      "aws_access_key_id = AKIAFROMCREDS\n"
                                      "aws_secret_access_key = credswins\n"
                                      "[broken\n"
                                      "aws_access_key_id = AKIABROKEN\n";

static const char *CONFIG_FILE = "[default]\n"
                                 "region = us-west-2\n"
                                 "[profile cfgstyle]\n"
                                 "region = eu-west-1\n"
                                 "aws_access_key_id = AKIACONFIG\n"
                                 "aws_secret_access_key = configsecret\n"
                                 "[profile  both]\n"
                                 "aws_access_key_id = AKIAFROMCONFIG\n"
                                 "aws_secret_access_key = configloses\n"
                                 "[onlyname]\n"
                                 "aws_access_key_id = AKIANOPREFIX\n"
                                 "aws_secret_access_key = x\n";

Test(aws_credentials, profile_files_parsing)
{
    struct tmpdir t;
    tmpdir_make(&t);
    struct fake_env e;
    env_init(&e);
    env_set(&e, "AWS_SHARED_CREDENTIALS_FILE", tmpdir_write(&t, "creds", CREDENTIALS_FILE));
    env_set(&e, "AWS_CONFIG_FILE", tmpdir_write(&t, "config", CONFIG_FILE));
    struct {
        const char *profile;
        const char *id;
        const char *secret;
        const char *token;
    } ok[] = {
        {NULL, "AKIADEFAULT", "defaultsecret", NULL},
        {"work", "AKIAWORK", "work/secret+key", "worktoken"},
        {"cfgstyle", "AKIACONFIG", "configsecret", NULL}, /* [profile x] only counts in config */
        {"both", "AKIAFROMCREDS", "credswins", NULL},     /* the credentials file wins */
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct ks_aws_credentials_provider *p = NULL;
        cr_assert_eq(provider(&e, KS_AWS_CRED_PROFILE, ok[i].profile, &p), KS_OK);
        expect_creds(p, ok[i].id, ok[i].secret, ok[i].token, 0);
        ks_aws_credentials_provider_destroy(p);
    }
    /* partial: key id without secret; onlyname: config sections need "profile "; missing. */
    const char *bad[] = {"partial", "onlyname", "missing", "broken"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ks_aws_credentials_provider *p = NULL;
        cr_assert_eq(provider(&e, KS_AWS_CRED_PROFILE, bad[i], &p), KS_OK);
        cr_expect_eq(get_status(p), KS_E_UNAVAILABLE, "%s", bad[i]);
        ks_aws_credentials_provider_destroy(p);
    }
    tmpdir_remove(&t);
}

Test(aws_credentials, profile_default_locations_under_home)
{
    struct tmpdir t;
    tmpdir_make(&t);
    struct fake_env e;
    env_init(&e);
    env_set(&e, "HOME", t.path);
    struct ks_aws_credentials_provider *p = NULL;
    cr_assert_eq(provider(&e, KS_AWS_CRED_PROFILE, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE, "no files at all");
    ks_aws_credentials_provider_destroy(p);

    char aws[300];
    snprintf(aws, sizeof(aws), "%s/.aws", t.path);
    cr_assert_eq(mkdir(aws, 0700), 0);
    tmpdir_write(&t, ".aws/config",
                 "[default]\naws_access_key_id=AKIAHOME\n"
                 "aws_secret_access_key=homesecret\n");
    cr_assert_eq(provider(&e, KS_AWS_CRED_PROFILE, "default", &p), KS_OK);
    expect_creds(p, "AKIAHOME", "homesecret", NULL, 0);
    ks_aws_credentials_provider_destroy(p);

    /* "~/" in an override is the home directory. */
    tmpdir_write(&t, "elsewhere", "[x]\naws_access_key_id=AKIATILDE\naws_secret_access_key=s\n");
    env_set(&e, "AWS_SHARED_CREDENTIALS_FILE", "~/elsewhere");
    cr_assert_eq(provider(&e, KS_AWS_CRED_PROFILE, "x", &p), KS_OK);
    expect_creds(p, "AKIATILDE", "s", NULL, 0);
    ks_aws_credentials_provider_destroy(p);
    snprintf(t.files[t.n++], sizeof(t.files[0]), "%s", aws); /* removed last */
    tmpdir_remove(&t);
}

/* --- container (5.3) --------------------------------------------------------------------- */

Test(aws_credentials, container_relative_uri_with_token)
{
    struct fake *f = fake_start();
    struct fake_env e;
    env_init(&e);
    char host[64], body[1024];
    snprintf(host, sizeof(host), "http://127.0.0.1:%u", f->port);
    env_set(&e, "KEYSTORED_CONTAINER_CREDENTIALS_HOST", host);
    env_set(&e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc");
    env_set(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.1/ignored");
    env_set(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN", "Basic c2VjcmV0");
    creds_json(body, sizeof(body), "ASIAECS", "ecs\\/secret", "ecstoken", T0 + 6 * 3600);
    fake_route(f, "GET", "/v2/credentials/abc", 200, body, "Authorization", "Basic c2VjcmV0");
    struct ks_aws_credentials_provider *p = NULL;
    cr_assert_eq(provider(&e, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
    expect_creds(p, "ASIAECS", "ecs/secret", "ecstoken", T0 + 6 * 3600);
    expect_creds(p, "ASIAECS", "ecs/secret", "ecstoken", T0 + 6 * 3600); /* cached */
    cr_expect_eq(fake_count(f), 1);
    ks_aws_credentials_provider_destroy(p);
    fake_stop(f);
}

Test(aws_credentials, container_full_uri_rereads_token_file)
{
    struct fake *f = fake_start();
    struct tmpdir t;
    tmpdir_make(&t);
    struct fake_env e;
    env_init(&e);
    char url[128], body[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/get-credentials", f->port);
    env_set(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", url);
    env_set(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN", "env-token-loses");
    env_set(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            tmpdir_write(&t, "token", "eks-token-1\n"));
    creds_json(body, sizeof(body), "ASIAEKS1", "s1", "t1", T0 + 3600);
    fake_route(f, "GET", "/get-credentials", 200, body, "Authorization", "eks-token-1");
    struct ks_aws_credentials_provider *p = NULL;
    cr_assert_eq(provider(&e, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
    expect_creds(p, "ASIAEKS1", "s1", "t1", T0 + 3600);

    /* EKS rotates the token; at 5 min before expiry the refresh must send the new one. */
    tmpdir_write(&t, "token", "eks-token-2");
    creds_json(body, sizeof(body), "ASIAEKS2", "s2", "t2", T0 + 7200);
    fake_route(f, "GET", "/get-credentials", 200, body, "Authorization", "eks-token-2");
    e.now_s = T0 + 3300;
    expect_creds(p, "ASIAEKS2", "s2", "t2", T0 + 7200);
    cr_expect_eq(fake_count(f), 2);
    cr_expect_str_eq(f->requests[1].header, "eks-token-2");
    ks_aws_credentials_provider_destroy(p);
    tmpdir_remove(&t);
    fake_stop(f);
}

Test(aws_credentials, container_forbidden_hosts_and_bad_tokens)
{
    struct fake *f = fake_start();
    struct tmpdir t;
    tmpdir_make(&t);
    char good[128];
    snprintf(good, sizeof(good), "http://127.0.0.1:%u/creds", f->port);
    fake_route(f, "GET", "/creds", 200, "{}", NULL, NULL);
    const char *hosts[] = {"http://192.0.2.1/creds",       "http://10.0.0.1:8080/creds",
                           "http://169.254.169.254/creds", "http://[2001:db8::1]/creds",
                           "ftp://127.0.0.1/creds",        "not a url"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        struct fake_env e;
        env_init(&e);
        env_set(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", hosts[i]);
        struct ks_aws_credentials_provider *p = NULL;
        cr_assert_eq(provider(&e, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
        cr_expect_eq(get_status(p), KS_E_UNAVAILABLE, "%s", hosts[i]);
        ks_aws_credentials_provider_destroy(p);
    }
    /* Header injection through the token: refused before any request is made. */
    struct fake_env e;
    env_init(&e);
    env_set(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", good);
    env_set(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN", "abc\r\nX-Injected: 1");
    struct ks_aws_credentials_provider *p = NULL;
    cr_assert_eq(provider(&e, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
    env_set(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            tmpdir_write(&t, "token", "line1\nline2\n"));
    cr_assert_eq(provider(&e, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
    env_set(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/nonexistent/ks-token");
    cr_assert_eq(provider(&e, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
    cr_expect_eq(fake_count(f), 0);

    /* No variables at all; a relative URI that is not a path. */
    struct fake_env none;
    env_init(&none);
    cr_assert_eq(provider(&none, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
    env_set(&none, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "@evil.example/x");
    cr_assert_eq(provider(&none, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
    tmpdir_remove(&t);
    fake_stop(f);
}

Test(aws_credentials, container_bad_documents)
{
    struct fake *f = fake_start();
    struct fake_env e;
    env_init(&e);
    char url[128];
    snprintf(url, sizeof(url), "http://localhost:%u/creds", f->port);
    env_set(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", url);
    const char *docs[] = {
        "not json",
        "[]",
        "{\"AccessKeyId\":\"ASIA\"}",
        "{\"Code\":\"Failed\",\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"s\"}",
        "{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"s\",\"Expiration\":\"soon\"}",
        "{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"s\\u0000\"}",
        "{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"s\",\"Token\":\"a\\r\\nb\"}",
        "{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"s\"",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        fake_route(f, "GET", "/creds", 200, docs[i], NULL, NULL);
        struct ks_aws_credentials_provider *p = NULL;
        cr_assert_eq(provider(&e, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
        cr_expect_eq(get_status(p), KS_E_UNAVAILABLE, "%s", docs[i]);
        ks_aws_credentials_provider_destroy(p);
    }
    /* Nested members are skipped; escapes decoded; no Expiration = does not expire. */
    fake_route(f, "GET", "/creds", 200,
               "{\"RoleArn\":\"arn:aws:iam::1:role/r\",\"Nested\":{\"a\":[1,{\"b\":\"}\"}]},"
               "\"AccessKeyId\":\"ASIA\\u0042C\",\"SecretAccessKey\":\"s\\\"q\\\\\","
               "\"Flag\":true,\"N\":null,\"Token\":\"\"}",
               NULL, NULL);
    struct ks_aws_credentials_provider *p = NULL;
    cr_assert_eq(provider(&e, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
    expect_creds(p, "ASIABC", "s\"q\\", NULL, 0);
    ks_aws_credentials_provider_destroy(p);
    /* A failure Code: the message says so without the document's text (it may name roles). */
    fake_route(f, "GET", "/creds", 200,
               "{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"Message\":\"arn:aws:iam::"
               "123456789012:role/r is not authorized\"}",
               NULL, NULL);
    cr_assert_eq(provider(&e, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
    struct ks_aws_credentials c;
    struct ks_error err = {0};
    cr_expect_eq(ks_aws_credentials_get(p, &c, &err), KS_E_UNAVAILABLE);
    cr_expect_not_null(strstr(err.message, "AWS credentials unavailable"), "%s", err.message);
    cr_expect_null(strstr(err.message, "123456789012"), "%s", err.message);
    cr_expect_not_null(strstr(err.detail, "AssumeRoleUnauthorizedAccess"), "%s", err.detail);
    ks_aws_credentials_provider_destroy(p);
    /* Any error status is unavailable at request time, 5xx and 4xx alike (never KS_E_CONFIG:
     * that is start-up only). */
    fake_route(f, "GET", "/creds", 503, "", NULL, NULL);
    cr_assert_eq(provider(&e, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
    fake_route(f, "GET", "/creds", 403, "", NULL, NULL);
    cr_assert_eq(provider(&e, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
    fake_stop(f);
}

/* --- refresh stages (5.5) ---------------------------------------------------------------- */

Test(aws_credentials, advisory_and_mandatory_refresh)
{
    struct fake *f = fake_start();
    struct fake_env e;
    env_init(&e);
    char url[128], body[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/creds", f->port);
    env_set(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", url);
    uint64_t exp1 = T0 + 3600;
    creds_json(body, sizeof(body), "ASIAONE", "one", "t1", exp1);
    fake_route(f, "GET", "/creds", 200, body, NULL, NULL);
    struct ks_aws_credentials_provider *p = NULL;
    cr_assert_eq(provider(&e, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
    expect_creds(p, "ASIAONE", "one", "t1", exp1);

    /* 16 min left: still fresh, no request. */
    e.now_s = exp1 - 16 * 60;
    expect_creds(p, "ASIAONE", "one", "t1", exp1);
    cr_expect_eq(fake_count(f), 1);

    /* 12 min left: advisory refresh; the endpoint fails, the old credentials are kept. */
    fake_route(f, "GET", "/creds", 500, "", NULL, NULL);
    e.now_s = exp1 - 12 * 60;
    expect_creds(p, "ASIAONE", "one", "t1", exp1);
    cr_expect_eq(fake_count(f), 2);

    /* 14 min left, endpoint back: advisory refresh succeeds. */
    uint64_t exp2 = exp1 + 3600;
    creds_json(body, sizeof(body), "ASIATWO", "two", "t2", exp2);
    fake_route(f, "GET", "/creds", 200, body, NULL, NULL);
    expect_creds(p, "ASIATWO", "two", "t2", exp2);
    cr_expect_eq(fake_count(f), 3);

    /* 9 min before the new expiry with the endpoint down: mandatory refresh fails. */
    fake_route(f, "GET", "/creds", 500, "", NULL, NULL);
    e.now_s = exp2 - 9 * 60;
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
    fake_stop(f);
}

/* Many threads asking at once while a refresh is due: one fetch, everyone served. */
struct racer {
    struct ks_aws_credentials_provider *p;
    int ok;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct ks_aws_credentials c;
    r->ok = ks_aws_credentials_get(r->p, &c, NULL) == KS_OK;
    if (r->ok) {
        ks_aws_credentials_clear(&c);
    }
    return NULL;
}

Test(aws_credentials, concurrent_first_fetch_is_serialized)
{
    struct fake *f = fake_start();
    struct fake_env e;
    env_init(&e);
    char url[128], body[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/creds", f->port);
    env_set(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", url);
    creds_json(body, sizeof(body), "ASIARACE", "r", "t", T0 + 3600);
    fake_route(f, "GET", "/creds", 200, body, NULL, NULL);
    struct ks_aws_credentials_provider *p = NULL;
    cr_assert_eq(provider(&e, KS_AWS_CRED_CONTAINER, NULL, &p), KS_OK);
    pthread_t threads[8];
    struct racer racers[8];
    for (int i = 0; i < 8; i++) {
        racers[i].p = p;
        racers[i].ok = 0;
        cr_assert_eq(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        cr_expect(racers[i].ok);
    }
    cr_expect_eq(fake_count(f), 1);
    ks_aws_credentials_provider_destroy(p);
    fake_stop(f);
}

/* --- IMDSv2 (5.4) ------------------------------------------------------------------------ */

#define ROLE_PATH "/latest/meta-data/iam/security-credentials/"

static struct fake *imds_start(struct fake_env *e, uint64_t expiration)
{
    struct fake *f = fake_start();
    env_init(e);
    char endpoint[64], body[1024];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%u/", f->port);
    env_set(e, "AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint);
    fake_route(f, "PUT", "/latest/api/token", 200, "TOKEN-A",
               "X-aws-ec2-metadata-token-ttl-seconds", "21600");
    fake_route(f, "GET", ROLE_PATH, 200, "keystored-role\n", "X-aws-ec2-metadata-token", "TOKEN-A");
    creds_json(body, sizeof(body), "ASIAIMDS", "imdssecret", "imdstoken", expiration);
    fake_route(f, "GET", ROLE_PATH "keystored-role", 200, body, "X-aws-ec2-metadata-token",
               "TOKEN-A");
    return f;
}

Test(aws_credentials, imds_v2_three_step_flow)
{
    struct fake_env e;
    struct fake *f = imds_start(&e, T0 + 6 * 3600);
    struct ks_aws_credentials_provider *p = NULL;
    cr_assert_eq(provider(&e, KS_AWS_CRED_IMDS, NULL, &p), KS_OK);
    expect_creds(p, "ASIAIMDS", "imdssecret", "imdstoken", T0 + 6 * 3600);
    cr_assert_eq(fake_count(f), 3);
    cr_expect_str_eq(f->requests[0].method, "PUT");
    cr_expect_str_eq(f->requests[0].url, "/latest/api/token");
    cr_expect_str_eq(f->requests[0].ttl, "21600");
    cr_expect_str_eq(f->requests[1].method, "GET");
    cr_expect_str_eq(f->requests[1].url, ROLE_PATH);
    cr_expect_str_eq(f->requests[1].header, "TOKEN-A");
    cr_expect_str_eq(f->requests[2].url, ROLE_PATH "keystored-role");
    cr_expect_str_eq(f->requests[2].header, "TOKEN-A");

    /* Cached until the refresh window; then the cached IMDS token is reused (no PUT). */
    expect_creds(p, "ASIAIMDS", "imdssecret", "imdstoken", ~(uint64_t)0);
    cr_expect_eq(fake_count(f), 3);
    e.now_s = T0 + 6 * 3600 - 5 * 60;
    char body[1024];
    creds_json(body, sizeof(body), "ASIAIMDS2", "s2", "t2", T0 + 12 * 3600);
    fake_route(f, "GET", ROLE_PATH "keystored-role", 200, body, "X-aws-ec2-metadata-token",
               "TOKEN-A");
    expect_creds(p, "ASIAIMDS2", "s2", "t2", T0 + 12 * 3600);
    cr_expect_eq(fake_count(f), 5);
    cr_expect_str_eq(f->requests[3].method, "GET");
    ks_aws_credentials_provider_destroy(p);
    fake_stop(f);
}

Test(aws_credentials, imds_token_expiry_and_401_fetch_a_new_token)
{
    struct fake_env e;
    struct fake *f = imds_start(&e, T0 + 3 * 3600);
    struct ks_aws_credentials_provider *p = NULL;
    cr_assert_eq(provider(&e, KS_AWS_CRED_IMDS, NULL, &p), KS_OK);
    expect_creds(p, "ASIAIMDS", "imdssecret", "imdstoken", T0 + 3 * 3600);
    cr_expect_eq(fake_count(f), 3);

    /* The service rotated its token: the old one gets 401, the provider asks for another. */
    fake_route(f, "PUT", "/latest/api/token", 200, "TOKEN-B", NULL, NULL);
    fake_route(f, "GET", ROLE_PATH, 200, "keystored-role", "X-aws-ec2-metadata-token", "TOKEN-B");
    char body[1024];
    creds_json(body, sizeof(body), "ASIAB", "b", "tb", T0 + 10 * 3600);
    fake_route(f, "GET", ROLE_PATH "keystored-role", 200, body, "X-aws-ec2-metadata-token",
               "TOKEN-B");
    e.now_s = T0 + 3 * 3600 - 60; /* mandatory window; the IMDS token is still cached */
    expect_creds(p, "ASIAB", "b", "tb", T0 + 10 * 3600);
    cr_expect_eq(fake_count(f), 7); /* GET (401), PUT, GET role, GET creds */
    cr_expect_str_eq(f->requests[3].header, "TOKEN-A");
    cr_expect_str_eq(f->requests[4].method, "PUT");

    /* Past the token's cache lifetime (21595 s) a new token is fetched up front. */
    creds_json(body, sizeof(body), "ASIAC", "c", "tc", T0 + 20 * 3600);
    fake_route(f, "GET", ROLE_PATH "keystored-role", 200, body, "X-aws-ec2-metadata-token",
               "TOKEN-B");
    e.now_s = T0 + 10 * 3600 - 60;
    expect_creds(p, "ASIAC", "c", "tc", T0 + 20 * 3600);
    cr_expect_eq(fake_count(f), 10);
    cr_expect_str_eq(f->requests[7].method, "PUT");
    ks_aws_credentials_provider_destroy(p);
    fake_stop(f);
}

Test(aws_credentials, imds_near_expiry_credentials_are_extended)
{
    /* IMDS hands out credentials with 5 min left (5.5 static stability): they are used, and
     * not refetched on every call. */
    struct fake_env e;
    struct fake *f = imds_start(&e, T0 + 300);
    struct ks_aws_credentials_provider *p = NULL;
    cr_assert_eq(provider(&e, KS_AWS_CRED_IMDS, NULL, &p), KS_OK);
    struct ks_aws_credentials c;
    cr_assert_eq(ks_aws_credentials_get(p, &c, NULL), KS_OK);
    cr_expect_geq(c.expiration, T0 + 15 * 60 + 120);
    cr_expect_leq(c.expiration, T0 + 15 * 60 + 600);
    ks_aws_credentials_clear(&c);
    expect_creds(p, "ASIAIMDS", "imdssecret", "imdstoken", ~(uint64_t)0);
    cr_expect_eq(fake_count(f), 3);
    ks_aws_credentials_provider_destroy(p);
    fake_stop(f);
}

Test(aws_credentials, imds_failures)
{
    struct fake_env e;
    struct fake *f = imds_start(&e, T0 + 3600);
    struct ks_aws_credentials_provider *p = NULL;

    env_set(&e, "AWS_EC2_METADATA_DISABLED", "TRUE");
    cr_assert_eq(provider(&e, KS_AWS_CRED_IMDS, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
    cr_expect_eq(fake_count(f), 0);
    env_set(&e, "AWS_EC2_METADATA_DISABLED", "false");

    /* No role attached. */
    fake_route(f, "GET", ROLE_PATH, 404, "", NULL, NULL);
    cr_assert_eq(provider(&e, KS_AWS_CRED_IMDS, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
    /* A role name that would change the path. */
    fake_route(f, "GET", ROLE_PATH, 200, "../../user-data", NULL, NULL);
    cr_assert_eq(provider(&e, KS_AWS_CRED_IMDS, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
    /* IMDSv2 token refused (IMDSv1 fallback is deliberately not implemented). */
    fake_route(f, "PUT", "/latest/api/token", 403, "", NULL, NULL);
    cr_assert_eq(provider(&e, KS_AWS_CRED_IMDS, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
    uint16_t port = f->port;
    fake_stop(f);

    /* Nobody listening. */
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%u", port);
    env_set(&e, "AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint);
    cr_assert_eq(provider(&e, KS_AWS_CRED_IMDS, NULL, &p), KS_OK);
    cr_expect_eq(get_status(p), KS_E_UNAVAILABLE);
    ks_aws_credentials_provider_destroy(p);
}
