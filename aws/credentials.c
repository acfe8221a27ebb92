/*
 * credentials.c - the credential provider of aws/aws.h (docs/reference/aws-apis.md section 5):
 * the cache every source goes through, the environment (5.1) and static sources, and the
 * helpers of aws/provider.h. The shared files are read by aws/profile.c, the container and
 * IMDS endpoints by aws/metadata.c.
 *
 * Credentials without an expiration are fetched once and kept; expiring ones are refreshed in
 * two stages (5.5, botocore): advisory when less than 15 min remain (a failure keeps the old
 * credentials) and mandatory when less than 10 min remain (a failure is an error). Fetches are
 * serialized by refresh_lock; during an advisory refresh other threads keep signing with the
 * old credentials instead of waiting for the network.
 *
 * Errors: KS_E_CONFIG only from ks_aws_credentials_provider_create (start-up); whatever keeps
 * a request from having credentials is KS_E_UNAVAILABLE (aws/provider.h).
 */
#include "aws/provider.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/secret.h"
#include "aws/http.h"

/* Section 5.5 (B-CRED): refresh windows before Expiration. */
#define ADVISORY_REFRESH_S (15u * 60u)
#define MANDATORY_REFRESH_S (10u * 60u)
#define CRED_FILE_MAX (1024u * 1024u)

struct ks_aws_credentials_provider {
    enum ks_aws_cred_source source;
    char *profile;
    struct ks_aws_credentials static_creds;
    struct ks_aws_source_env env;

    pthread_mutex_t refresh_lock; /* serializes fetches; guards imds_token */
    struct ks_aws_imds_token imds_token;

    pthread_mutex_t data_lock; /* guards cached/have_cached */
    struct ks_aws_credentials cached;
    int have_cached;
};

/* --- helpers of aws/provider.h ----------------------------------------------------------- */

const char *ks_aws_env_get(const struct ks_aws_source_env *env, const char *name)
{
    const char *v = env->getenv != NULL ? env->getenv(env->getenv_ctx, name) : getenv(name);
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

uint64_t ks_aws_env_now(const struct ks_aws_source_env *env)
{
    return env->clock->now_us(env->clock->ctx) / 1000000u;
}

char *ks_aws_secret_strndup(const char *s, size_t n)
{
    char *d = (char *)ks_secret_alloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *ks_aws_secret_strdup(const char *s)
{
    return s != NULL ? ks_aws_secret_strndup(s, strlen(s)) : NULL;
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

ks_status ks_aws_credentials_set(struct ks_aws_credentials *dst, const char *id, const char *secret,
                                 const char *token, uint64_t expiration, struct ks_error *err)
{
    memset(dst, 0, sizeof(*dst));
    dst->access_key_id = ks_aws_secret_strdup(id);
    dst->secret_access_key = ks_aws_secret_strdup(secret);
    dst->session_token = ks_aws_secret_strdup(token);
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
    return ks_aws_credentials_set(dst, src->access_key_id, src->secret_access_key,
                                  src->session_token, src->expiration, err);
}

int ks_aws_header_safe(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\r' || ch == '\n' || ch == 0x7f || (ch < 0x20 && ch != '\t')) {
            return 0;
        }
    }
    return 1;
}

int ks_aws_key_id_valid(const char *s)
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

int ks_aws_read_secret_file(const char *path, char **out, size_t *len, size_t *cap)
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

/* --- 5.1 environment --------------------------------------------------------------------- */

static ks_status fetch_env(const struct ks_aws_source_env *env, struct ks_aws_credentials *out,
                           struct ks_error *err)
{
    const char *id = ks_aws_env_get(env, "AWS_ACCESS_KEY_ID");
    const char *secret = ks_aws_env_get(env, "AWS_SECRET_ACCESS_KEY");
    const char *token = ks_aws_env_get(env, "AWS_SESSION_TOKEN");
    const char *exp = ks_aws_env_get(env, "AWS_CREDENTIAL_EXPIRATION");
    if (token == NULL) {
        token = ks_aws_env_get(env, "AWS_SECURITY_TOKEN"); /* legacy name (B-CRED EnvProvider) */
    }
    if (!ks_aws_key_id_valid(id) || secret == NULL) {
        return ks_error_set(err, KS_E_UNAVAILABLE,
                            "AWS credentials unavailable: AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY are not set");
    }
    if (!ks_aws_header_safe(secret) || (token != NULL && !ks_aws_header_safe(token))) {
        return ks_error_set(err, KS_E_UNAVAILABLE,
                            "AWS credentials unavailable: the environment's are malformed");
    }
    uint64_t expiration = 0;
    if (exp != NULL && ks_aws_time_parse_iso8601(exp, &expiration) != 0) {
        return ks_error_set(err, KS_E_UNAVAILABLE,
                            "AWS credentials unavailable: AWS_CREDENTIAL_EXPIRATION is "
                            "not ISO-8601");
    }
    return ks_aws_credentials_set(out, id, secret, token, expiration, err);
}

/* --- the cache --------------------------------------------------------------------------- */

static ks_status fetch(struct ks_aws_credentials_provider *p, struct ks_aws_credentials *out,
                       struct ks_error *err)
{
    memset(out, 0, sizeof(*out));
    ks_status st;
    switch (p->source) {
    case KS_AWS_CRED_ENV:
        st = fetch_env(&p->env, out, err);
        break;
    case KS_AWS_CRED_PROFILE:
        st = ks_aws_profile_fetch(&p->env, p->profile, out, err);
        break;
    case KS_AWS_CRED_CONTAINER:
        st = ks_aws_metadata_container(&p->env, out, err);
        break;
    case KS_AWS_CRED_IMDS:
        st = ks_aws_metadata_imds(&p->env, &p->imds_token, out, err);
        break;
    case KS_AWS_CRED_STATIC:
        st = creds_copy(&p->static_creds, out, err);
        break;
    default:
        st = ks_error_set(err, KS_E_UNAVAILABLE, "AWS credentials unavailable: no source");
        break;
    }
    if (st == KS_OK && out->expiration != 0 && out->expiration <= ks_aws_env_now(&p->env)) {
        ks_aws_credentials_clear(out);
        st = ks_error_set(err, KS_E_UNAVAILABLE, "AWS credentials unavailable: they have expired");
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
    enum freshness f = freshness(p, ks_aws_env_now(&p->env));
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
    f = freshness(p, ks_aws_env_now(&p->env));
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
        (!ks_aws_key_id_valid(cfg->access_key_id) || cfg->secret_access_key == NULL ||
         cfg->secret_access_key[0] == '\0' || !ks_aws_header_safe(cfg->secret_access_key) ||
         (cfg->session_token != NULL && !ks_aws_header_safe(cfg->session_token)))) {
        return ks_error_set(err, KS_E_CONFIG,
                            "static AWS credentials need access_key_id and secret_access_key");
    }
    if (ks_aws_http_init(err) != KS_OK) {
        return KS_E_INTERNAL;
    }
    struct ks_aws_credentials_provider *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    p->source = cfg->source;
    p->env.getenv = env != NULL ? env->getenv : NULL;
    p->env.getenv_ctx = env != NULL ? env->getenv_ctx : NULL;
    p->env.clock = (env != NULL && env->clock != NULL) ? env->clock : ks_clock_system();
    pthread_mutex_init(&p->refresh_lock, NULL);
    pthread_mutex_init(&p->data_lock, NULL);
    p->profile = ks_aws_secret_strdup(cfg->profile != NULL && cfg->profile[0] != '\0' ? cfg->profile
                                                                                      : "default");
    ks_status st = p->profile != NULL ? KS_OK : KS_E_INTERNAL;
    if (st == KS_OK && cfg->source == KS_AWS_CRED_STATIC) {
        st = ks_aws_credentials_set(&p->static_creds, cfg->access_key_id, cfg->secret_access_key,
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
    ks_aws_imds_token_clear(&p->imds_token);
    ks_secret_free_string(p->profile);
    pthread_mutex_destroy(&p->refresh_lock);
    pthread_mutex_destroy(&p->data_lock);
    free(p);
}
