/*
 * sigv4.h - AWS Signature Version 4 (HMAC-SHA256) for non-S3 services: the signer the KMS and
 * DynamoDB backends call once per HTTP request (docs/reference/aws-apis.md section 6).
 *
 * The caller describes the request exactly as it will be sent (method, encoded path, query,
 * headers, body), the credentials and the signing time; ks_sigv4_sign returns the canonical
 * request, the string to sign, the signature and the headers the caller must add (X-Amz-Date,
 * X-Amz-Security-Token when a token is present, Authorization). It implements the one mode KMS
 * and DynamoDB need: path normalised and encoded a second time, body hashed, session token
 * signed, signature in the Authorization header. S3's rules, presigned URLs and unsigned
 * tokens have no caller and are not implemented (tests/unit/test_sigv4.c lists the vendored
 * vectors dropped for that reason).
 *
 * The signer never logs, and its error messages never contain the secret, the session token or
 * derived keys. The derived signing key lives only on the stack of ks_sigv4_sign and is wiped
 * with OPENSSL_cleanse before it returns. All functions are thread-safe (no shared state).
 */
#ifndef KS_AWS_SIGV4_H
#define KS_AWS_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define KS_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define KS_SIGV4_SIGNATURE_HEX_LEN 64 /* hex of an HMAC-SHA256 */
#define KS_SIGV4_AMZ_DATE_LEN 16      /* "YYYYMMDDTHHMMSSZ" */
#define KS_SIGV4_MAX_ADD_HEADERS 3    /* X-Amz-Date, X-Amz-Security-Token, Authorization */

/* One header, borrowed strings. */
struct ks_sigv4_header {
    const char *name;
    const char *value;
};

/*
 * The request to sign. All strings are borrowed for the duration of the call and must be
 * NUL-terminated.
 */
struct ks_sigv4_request {
    const char *method; /* "POST" */
    const char *path;   /* as sent on the wire, already percent-encoded; NULL or "" means "/" */
    const char *query;  /* as sent, without '?'; NULL or "" for none */
    const struct ks_sigv4_header *headers; /* as sent, in order; must include Host */
    size_t header_count;
    const void *body; /* may be NULL when body_len is 0 */
    size_t body_len;
    const char *region;  /* "us-east-1" */
    const char *service; /* "kms", "dynamodb" */
};

/* Borrowed for the duration of the call; the signer copies nothing of the secret. */
struct ks_sigv4_credentials {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "" when the credentials are long-term */
};

/*
 * Output of ks_sigv4_sign. Every pointer is heap memory owned by the struct and released (after
 * being wiped: the canonical request and the headers can hold the session token) by
 * ks_sigv4_result_free. The struct may be copied by value; pointers stay valid until freed once.
 */
struct ks_sigv4_result {
    char *canonical_request; /* for debugging and tests; contains the token when it is signed */
    char *string_to_sign;
    char *signed_headers;   /* "host;x-amz-date" */
    char *credential_scope; /* "20150830/us-east-1/service/aws4_request" */
    char amz_date[KS_SIGV4_AMZ_DATE_LEN + 1];
    char signature[KS_SIGV4_SIGNATURE_HEX_LEN + 1];
    /* The Authorization header value (also the last entry of add_headers). */
    char *authorization;
    /* The headers to append to the request, in this order: X-Amz-Date, X-Amz-Security-Token
     * (when a token is present), Authorization. Names are static strings, values are owned by
     * the result. */
    struct ks_sigv4_header add_headers[KS_SIGV4_MAX_ADD_HEADERS];
    size_t add_header_count;
};

/*
 * Signs req with creds at epoch_seconds (UTC; injected so that callers and tests control the
 * clock). On success fills *out (which the caller releases with ks_sigv4_result_free) and returns
 * KS_OK. On failure returns KS_E_INVALID (bad input: a forbidden or malformed header, a bad
 * percent-escape, missing fields) or KS_E_INTERNAL (allocation or OpenSSL failure), fills err
 * (may be NULL) and leaves *out zeroed with nothing to free.
 *
 * The caller must not pass Authorization, X-Amz-Date or X-Amz-Security-Token: the signer adds
 * them. Headers that
 * proxies rewrite (User-Agent, X-Amzn-Trace-Id, Connection, Expect, Upgrade, Sec-WebSocket-*) are
 * not signed, as in aws-c-auth. Thread-safe.
 */
ks_status ks_sigv4_sign(const struct ks_sigv4_request *req,
                        const struct ks_sigv4_credentials *creds, uint64_t epoch_seconds,
                        struct ks_sigv4_result *out, struct ks_error *err);

/* Wipes and frees everything *result owns and zeroes it. NULL and a zeroed struct are no-ops. */
void ks_sigv4_result_free(struct ks_sigv4_result *result);

#endif
