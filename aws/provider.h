/*
 * provider.h - internal to aws/: what the credential sources (docs/reference/aws-apis.md
 * section 5) share. credentials.c holds the cache and the env and static sources and
 * implements the helpers; profile.c reads the shared files (5.2); metadata.c asks the
 * container (5.3) and IMDS (5.4) endpoints.
 *
 * Every fetch returns KS_OK, KS_E_UNAVAILABLE (no usable credentials from this source right
 * now: a request-time condition, answered with 503) or KS_E_INTERNAL (out of memory). Strings
 * that may hold secrets are allocated with ks_secret_alloc and freed wiped.
 */
#ifndef KS_AWS_PROVIDER_H
#define KS_AWS_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#include "aws/aws.h"

/* A source's view of the world: getenv and the clock, both resolved (never NULL). */
struct ks_aws_source_env {
    const char *(*getenv)(void *ctx, const char *name);
    void *getenv_ctx;
    const struct ks_clock *clock;
};

/* The variable, or NULL when unset or empty. */
const char *ks_aws_env_get(const struct ks_aws_source_env *env, const char *name);
uint64_t ks_aws_env_now(const struct ks_aws_source_env *env);

/* A copy of n bytes (or of s) in a wiped-on-free buffer; NULL on OOM (or when s is NULL). */
char *ks_aws_secret_strndup(const char *s, size_t n);
char *ks_aws_secret_strdup(const char *s);

/* Fills dst with copies (token may be NULL). KS_OK, or KS_E_INTERNAL with dst cleared. */
ks_status ks_aws_credentials_set(struct ks_aws_credentials *dst, const char *id, const char *secret,
                                 const char *token, uint64_t expiration, struct ks_error *err);

/* 1 when s can go into a header value: no CR, LF or other control byte (5.3). */
int ks_aws_header_safe(const char *s);

/* 1 when s looks like an access key id: printable ASCII without spaces, not empty. */
int ks_aws_key_id_valid(const char *s);

/* Reads a whole (small) file into a wiped-on-free buffer of *cap bytes, NUL-terminated.
 * 1 read, 0 absent, -1 unreadable or over 1 MiB. */
int ks_aws_read_secret_file(const char *path, char **out, size_t *len, size_t *cap);

/* 5.2: the profile's keys from the credentials file, else the config file. */
ks_status ks_aws_profile_fetch(const struct ks_aws_source_env *env, const char *profile,
                               struct ks_aws_credentials *out, struct ks_error *err);

/* 5.3: the container credentials endpoint. */
ks_status ks_aws_metadata_container(const struct ks_aws_source_env *env,
                                    struct ks_aws_credentials *out, struct ks_error *err);

/* The IMDSv2 session token, cached by the provider under its refresh lock. */
struct ks_aws_imds_token {
    char *value; /* secret; NULL when none */
    uint64_t expiry;
};

void ks_aws_imds_token_clear(struct ks_aws_imds_token *t);

/* 5.4: the instance role's credentials; token is the caller's cache (not thread-safe: the
 * provider serializes calls). */
ks_status ks_aws_metadata_imds(const struct ks_aws_source_env *env, struct ks_aws_imds_token *token,
                               struct ks_aws_credentials *out, struct ks_error *err);

#endif
