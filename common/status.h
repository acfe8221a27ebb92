/*
 * status.h - the one status enum of keystored and the one table that maps each status to its
 * HTTP status code and exception name (docs/style.md "Errors"; docs/architecture.md section 3).
 *
 * Every fallible function returns ks_status and, on failure, fills a caller-owned struct ks_error
 * with a human-readable message. Messages never contain key material or tokens.
 */
#ifndef KS_COMMON_STATUS_H
#define KS_COMMON_STATUS_H

#include <stddef.h>

typedef enum ks_status {
    KS_OK = 0,
    KS_E_INVALID,           /* 400: bad input (names the field) */
    KS_E_UNAUTHENTICATED,   /* 401: missing or unknown bearer token */
    KS_E_FORBIDDEN,         /* 403: role or tenant may not use this */
    KS_E_NOT_FOUND,         /* 404: key store, branch key, version or beacon missing */
    KS_E_NO_ROUTE,          /* 404: no such route */
    KS_E_METHOD,            /* 405: route exists, method does not */
    KS_E_ALREADY_EXISTS,    /* 409: item already exists (CreateKey with a taken id) */
    KS_E_VERSION_RACE,      /* 409: ACTIVE changed under VersionKey (seed "Mitigate Update Race") */
    KS_E_TOO_LARGE,         /* 413: request body over the cap */
    KS_E_MEDIA_TYPE,        /* 415: body without Content-Type: application/json */
    KS_E_URI_TOO_LONG,      /* 414: request target over server.max_uri_bytes */
    KS_E_HEADERS_TOO_BIG,   /* 431: header section over server.max_header_bytes */
    KS_E_THROTTLED,         /* 429: dependency still throttling after retries */
    KS_E_KMS,               /* 502: KMS refused or failed */
    KS_E_STORAGE,           /* 502: storage refused or failed */
    KS_E_CORRUPT,           /* 502: a stored item is not a valid branch key item */
    KS_E_UNAVAILABLE,       /* 503: dependency unreachable / timed out, or shutting down */
    KS_E_INTERNAL,          /* 500: bug or resource exhaustion */
    KS_E_CONFIG,            /* configuration invalid (start-up only) */
    KS_E_MUTATION_CONFLICT, /* 409: another mutation in flight, or a mutation write lost a race */
    /* Mutations (docs/reference/mutations.md section 9): */
    KS_E_UNEXPECTED_STATE,      /* 409: an item in neither the original nor the terminal state */
    KS_E_MUTATION_INVALID,      /* 400: bad or stale token, commitment/index mismatch, no-op */
    KS_E_UNSUPPORTED,           /* 400: a strategy that cannot do what is asked; atomic too big */
    KS_E_MUTATION_VERIFICATION, /* 502: commitment or index fails system-key verification */
    KS_E_MUTATION_FROM,         /* 502: KMS refused the original side */
    KS_E_MUTATION_TO,           /* 502: KMS refused the terminal side */
    /* 400: keyring unwrap: no EDK decrypted, and each failed on itself (not a dependency) */
    KS_E_UNABLE_TO_DECRYPT,
    KS_STATUS_COUNT
} ks_status;

#define KS_ERROR_MESSAGE_MAX 256
#define KS_ERROR_DETAIL_MAX 512

/*
 * Caller-owned error detail, filled by the callee on failure (like curl's error buffer).
 * message goes to the client: for a dependency failure it names the dependency and its error
 * code ("KMS AccessDeniedException") and nothing else. detail goes only to the log, with the
 * request id: a dependency's free text (AWS messages can carry account ids and role ARNs).
 */
struct ks_error {
    ks_status code;
    char message[KS_ERROR_MESSAGE_MAX];
    char detail[KS_ERROR_DETAIL_MAX]; /* log only; "" when none */
};

/* Static, thread-safe. Short description of a status ("not found"). */
const char *ks_strerror(ks_status status);

/* Static, thread-safe. HTTP status code for a status (500 for KS_E_CONFIG). */
int ks_status_http_code(ks_status status);

/* Static, thread-safe. Exception name sent as error.type ("VersionRaceException", ...). */
const char *ks_status_exception(ks_status status);

/*
 * Fills err (may be NULL) with code and a printf-style message, truncated to fit; returns code so
 * that callers can write `return ks_error_set(err, KS_E_INVALID, "...")`.
 */
ks_status ks_error_set(struct ks_error *err, ks_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets err->detail (may be NULL: no-op), the log-only text; code and message are unchanged. */
void ks_error_set_detail(struct ks_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Resets err to KS_OK with an empty message. */
void ks_error_clear(struct ks_error *err);

#endif
