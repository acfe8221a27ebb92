/*
 * aws.h - the AWS module used by kms/aws_kms.c and storage/dynamodb.c: credentials
 * (docs/reference/aws-apis.md section 5), and an awsJson 1.0/1.1 client (section 1) that signs
 * every attempt with SigV4 (aws/sigv4.h), sends it over libcurl with connection reuse and timeouts,
 * and retries what the AWS SDKs' standard mode retries (section 4, aws/backoff.h).
 *
 * The module, one job per unit: sigv4.c (the signer), client.c (transport, handle pool,
 * retries), backoff.c (retry policy and quota), http.c (libcurl set-up, wiped header lists),
 * credentials.c (provider cache and refresh; env and static sources), profile.c (shared
 * credentials/config files), metadata.c (container and IMDS endpoints), json_scan.c (the wiped
 * JSON reader), time.c (ISO-8601). This header is the umbrella: it includes the public ones.
 * aws/ includes nothing above common/.
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
#include "aws/backoff.h"
#include "aws/json_scan.h"
#include "aws/sigv4.h"
#include "aws/time.h"

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

/*
 * Current credentials, copied into *out (clear with ks_aws_credentials_clear). Any failure to
 * obtain usable credentials at request time (variables unset, files without the profile,
 * metadata endpoints unreachable or refusing, credentials expired) is KS_E_UNAVAILABLE (503)
 * with a message naming the source, never KS_E_CONFIG, which is for start-up only
 * (ks_aws_credentials_provider_create); KS_E_INTERNAL is allocation failure.
 */
ks_status ks_aws_credentials_get(struct ks_aws_credentials_provider *p,
                                 struct ks_aws_credentials *out, struct ks_error *err);

/* --- awsJson client --------------------------------------------------------------------- */

struct ks_aws_client_options {
    const char *service;       /* signing name: "kms", "dynamodb" */
    const char *dependency;    /* name in error messages: "KMS", "DynamoDB"; NULL: service */
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
    struct ks_aws_sleep sleep;    /* backoff hooks, copied; zeroed: really sleep (backoff.h) */
};

struct ks_aws_client;

ks_status ks_aws_client_create(const struct ks_aws_client_options *opts, struct ks_aws_client **out,
                               struct ks_error *err);
void ks_aws_client_destroy(struct ks_aws_client *c);

/* A full-jitter backoff wait through the client's sleep hooks (backoff.h), for callers that
 * retry above the transport (DynamoDB transaction conflicts). Returns the delay. Thread-safe. */
uint64_t ks_aws_client_backoff(struct ks_aws_client *c, unsigned base_ms, unsigned retry_index);

/* A fixed wait through the client's sleep hooks (polling). Thread-safe. */
void ks_aws_client_pause(struct ks_aws_client *c, uint64_t ms);

/* Tokens left in the client's retry quota (section 4), for tests. Thread-safe. */
unsigned ks_aws_client_retry_tokens(struct ks_aws_client *c);

/* A service error as the wire carried it (section 1: sanitized __type, message/Message). */
struct ks_aws_error {
    long http_status;    /* 0 when no response arrived */
    char type[128];      /* e.g. "AccessDeniedException"; "" when none */
    char message[512];   /* service free text, printable ASCII, truncated: may name accounts and
                            roles, so it belongs in logs (err->detail), never in a reply */
    char request_id[64]; /* x-amzn-RequestId; "" when none */
    unsigned attempts;   /* attempts made */
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
 *   KS_E_THROTTLED   still throttled: message "<dependency> <code>" ("KMS ThrottlingException"),
 *   KS_E_UNAVAILABLE unreachable, timed out, or 5xx: "<dependency> unavailable (<reason>)",
 *   opts.service_error  any other service error: "<dependency> <code>"
 *                    ("DynamoDB ResourceNotFoundException"; "<dependency> HTTP <status>" without
 *                    a code),
 *   what ks_aws_credentials_get returned when no credentials could be had,
 * with aws_err (may be NULL) describing the last response. err->message is client-safe; AWS's
 * free text, the request id and curl's reason go to err->detail (log only). The request body is
 * never logged; it may contain key material, so it is the caller's to wipe.
 */
ks_status ks_aws_call(struct ks_aws_client *c, const char *operation, const char *request_json,
                      size_t request_len, struct ks_aws_response *resp,
                      struct ks_aws_error *aws_err, struct ks_error *err);

/*
 * One attempt of ks_aws_call within timeout_ms (connect included; 0 or more than the client's
 * request timeout: the client's), no retry and no backoff: for readiness probes, which must
 * answer on a short deadline and must never hold a shutdown for the whole retry budget
 * (docs/architecture.md section 10). The results are those of ks_aws_call.
 */
#define KS_AWS_PROBE_TIMEOUT_MS 2000L
ks_status ks_aws_call_probe(struct ks_aws_client *c, const char *operation,
                            const char *request_json, size_t request_len, long timeout_ms,
                            struct ks_aws_response *resp, struct ks_aws_error *aws_err,
                            struct ks_error *err);

#endif
