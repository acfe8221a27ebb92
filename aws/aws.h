/*
 * aws.h - the AWS transport used by kms/aws_kms.c and storage/dynamodb.c: credentials
 * (docs/reference/aws-apis.md section 5), and an awsJson 1.0/1.1 client (section 1) that signs
 * every attempt with SigV4 (aws/sigv4.h), sends it over libcurl with connection reuse and timeouts,
 * and retries what the AWS SDKs' standard mode retries (section 4).
 *
 * Thread safety: a credentials provider and a client are each shared by all server threads;
 * every function here is thread-safe.
 * Secrets: secret keys, session tokens and response bodies marked sensitive are held in wiped
 * buffers and never logged.
 */
#ifndef KS_AWS_AWS_H
#define KS_AWS_AWS_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/util.h"

/* --- credentials ------------------------------------------------------------------------ */

enum ks_aws_cred_source {
    KS_AWS_CRED_NONE = 0, /* not given (local relationships, sqlite storage) */
    KS_AWS_CRED_ENV,
    KS_AWS_CRED_PROFILE,
    KS_AWS_CRED_CONTAINER,
    KS_AWS_CRED_IMDS,
    KS_AWS_CRED_STATIC,
};

/* Where a credentials provider gets its credentials (config/ maps YAML onto this). */
struct ks_aws_credentials_options {
    enum ks_aws_cred_source source;
    char *profile;           /* profile: name (default "default") */
    char *access_key_id;     /* static */
    char *secret_access_key; /* static; never logged */
    char *session_token;     /* static, optional */
};

struct ks_aws_credentials {
    char *access_key_id;
    char *secret_access_key; /* secret */
    char *session_token;     /* secret; NULL when none */
    uint64_t expiration;     /* epoch seconds; 0 = does not expire */
};

/* Wipes and frees the members (the struct itself is the caller's). */
void ks_aws_credentials_clear(struct ks_aws_credentials *c);

/*
 * Where the provider looks things up. Tests point these at loopback and temp files; NULL
 * members mean "the process environment" (getenv) and the system clock.
 */
struct ks_aws_environment {
    const char *(*getenv)(void *ctx, const char *name); /* NULL: getenv(3) */
    void *getenv_ctx;
    const struct ks_clock *clock; /* NULL: system clock */
};

struct ks_aws_credentials_provider;

/*
 * A provider for one config source (env | profile | container | imds | static). Temporary
 * credentials (container, IMDS, env with AWS_CREDENTIAL_EXPIRATION) are cached and refreshed
 * before they expire; refreshes are serialized. env may be NULL. Caller owns *out.
 */
ks_status ks_aws_credentials_provider_create(const struct ks_aws_credentials_options *cfg,
                                             const struct ks_aws_environment *env,
                                             struct ks_aws_credentials_provider **out,
                                             struct ks_error *err);
void ks_aws_credentials_provider_destroy(struct ks_aws_credentials_provider *p);

/* Current credentials, copied into *out (clear with ks_aws_credentials_clear). Unreachable
 * metadata endpoints are KS_E_UNAVAILABLE; bad or missing credentials KS_E_CONFIG. */
ks_status ks_aws_credentials_get(struct ks_aws_credentials_provider *p,
                                 struct ks_aws_credentials *out, struct ks_error *err);

/* --- awsJson client --------------------------------------------------------------------- */

struct ks_aws_client_options {
    const char *service;       /* signing name: "kms", "dynamodb" */
    const char *region;        /* e.g. "us-west-2" */
    const char *endpoint;      /* NULL: https://<service>.<region>.amazonaws.com */
    const char *json_version;  /* "1.1" (KMS) or "1.0" (DynamoDB): Content-Type */
    const char *target_prefix; /* "TrentService" (KMS), "DynamoDB_20120810" */
    struct ks_aws_credentials_provider *credentials; /* borrowed */
    ks_status service_error;      /* status for a non-retryable service error: KS_E_KMS or
                                     KS_E_STORAGE */
    long connect_timeout_ms;      /* 0: 2000 */
    long request_timeout_ms;      /* 0: 10000 (one attempt) */
    unsigned max_attempts;        /* 0: 3 (section 4: 3 for KMS, 4 for DynamoDB) */
    unsigned base_delay_ms;       /* 0: 50 (transient); throttling uses 1000 (section 4) */
    const struct ks_clock *clock; /* NULL: system clock (X-Amz-Date) */
};

struct ks_aws_client;

ks_status ks_aws_client_create(const struct ks_aws_client_options *opts, struct ks_aws_client **out,
                               struct ks_error *err);
void ks_aws_client_destroy(struct ks_aws_client *c);

/* A service error as the wire carried it (section 1: sanitized __type, message/Message). */
struct ks_aws_error {
    long http_status;  /* 0 when no response arrived */
    char type[128];    /* e.g. "AccessDeniedException"; "" when none */
    char message[512]; /* service message, truncated */
    unsigned attempts; /* attempts made */
};

/* Response body of a successful call: NUL-terminated JSON text in a buffer that is wiped on
 * free (KMS plaintexts travel in it). */
struct ks_aws_response {
    char *body;
    size_t len;
};
void ks_aws_response_free(struct ks_aws_response *r);

/*
 * Calls <target_prefix>.<operation> with the JSON text request_json. Each attempt is freshly
 * signed. Retries (jittered exponential backoff, full jitter, cap 20 s) on connection errors,
 * timeouts, HTTP 500/502/503/504 and the throttling/transient error codes of section 4.
 * Returns KS_OK with *resp filled; or, after the last attempt:
 *   KS_E_THROTTLED   still throttled (aws_err->type names the code),
 *   KS_E_UNAVAILABLE unreachable, timed out, or 5xx,
 *   opts.service_error  any other service error (message "<type>: <message>"),
 * with aws_err (may be NULL) describing the last response. The request body is never logged;
 * it may contain key material, so it is the caller's to wipe.
 */
ks_status ks_aws_call(struct ks_aws_client *c, const char *operation, const char *request_json,
                      size_t request_len, struct ks_aws_response *resp,
                      struct ks_aws_error *aws_err, struct ks_error *err);

#endif
