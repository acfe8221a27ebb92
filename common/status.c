/*
 * status.c - the one table: status -> HTTP code -> exception name (docs/architecture.md section 3).
 *
 * Exception names follow the MPL where it has one: KeyStoreException for validation and item
 * problems (docs/reference/branch-key-store.md section 8), VersionRaceException (hv-2 model),
 * KeyManagementException and KeyStorageException for dependency failures (hv-2 model). Failures
 * the MPL has no name for (HTTP-level ones) use plain service names.
 */
#include "common/status.h"

#include <stdarg.h>
#include <stdio.h>

#include "common/utf8.h"

static const struct {
    int http;
    const char *exception;
    const char *text;
} status_table[KS_STATUS_COUNT] = {
    [KS_OK] = {200, "", "ok"},
    [KS_E_INVALID] = {400, "KeyStoreException", "invalid request"},
    [KS_E_UNAUTHENTICATED] = {401, "UnauthorizedException", "unauthenticated"},
    [KS_E_FORBIDDEN] = {403, "AccessDeniedException", "forbidden"},
    [KS_E_NOT_FOUND] = {404, "KeyStoreException", "not found"},
    [KS_E_NO_ROUTE] = {404, "NotFoundException", "no such route"},
    [KS_E_METHOD] = {405, "MethodNotAllowedException", "method not allowed"},
    [KS_E_ALREADY_EXISTS] = {409, "AlreadyExistsException", "already exists"},
    [KS_E_VERSION_RACE] = {409, "VersionRaceException", "version race"},
    [KS_E_TOO_LARGE] = {413, "PayloadTooLargeException", "request body too large"},
    [KS_E_MEDIA_TYPE] = {415, "UnsupportedMediaTypeException", "unsupported media type"},
    [KS_E_URI_TOO_LONG] = {414, "UriTooLongException", "request URI too long"},
    [KS_E_HEADERS_TOO_BIG] = {431, "RequestHeaderFieldsTooLargeException",
                              "request header fields too large"},
    [KS_E_THROTTLED] = {429, "ThrottlingException", "throttled"},
    [KS_E_KMS] = {502, "KeyManagementException", "KMS failure"},
    [KS_E_STORAGE] = {502, "KeyStorageException", "storage failure"},
    [KS_E_CORRUPT] = {502, "BranchKeyCiphertextException", "invalid stored item"},
    [KS_E_UNAVAILABLE] = {503, "ServiceUnavailableException", "dependency unavailable"},
    [KS_E_INTERNAL] = {500, "InternalServerError", "internal error"},
    [KS_E_CONFIG] = {500, "ConfigurationException", "invalid configuration"},
    /* The ESDK's name for a keyring that could not decrypt any data key
     * (docs/reference/hierarchical-keyring.md section 6). */
    [KS_E_UNABLE_TO_DECRYPT] = {400, "UnableToDecryptException", "unable to decrypt"},
    [KS_E_MUTATION_CONFLICT] = {409, "MutationConflictException", "mutation conflict"},
    [KS_E_UNEXPECTED_STATE] = {409, "UnexpectedStateException", "unexpected item state"},
    [KS_E_MUTATION_INVALID] = {400, "MutationInvalidException", "invalid mutation"},
    [KS_E_UNSUPPORTED] = {400, "UnsupportedFeatureException", "unsupported feature"},
    [KS_E_MUTATION_VERIFICATION] = {502, "MutationVerificationException",
                                    "mutation verification failed"},
    [KS_E_MUTATION_FROM] = {502, "MutationFromException", "KMS refused the original side"},
    [KS_E_MUTATION_TO] = {502, "MutationToException", "KMS refused the terminal side"},
};

static int valid(ks_status status)
{
    return (int)status >= 0 && status < KS_STATUS_COUNT;
}

const char *ks_strerror(ks_status status)
{
    return valid(status) ? status_table[status].text : "unknown status";
}

int ks_status_http_code(ks_status status)
{
    return valid(status) ? status_table[status].http : 500;
}

const char *ks_status_exception(ks_status status)
{
    return valid(status) ? status_table[status].exception : "InternalServerError";
}

/*
 * Formats into a scratch buffer larger than the message, then copies it for display: the
 * arguments may carry untrusted names (a member name, a key store name from the URL), so the
 * message keeps only well-formed UTF-8 and is cut on a character boundary, never inside one.
 */
static void format_display(char *out, size_t out_size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void format_display(char *out, size_t out_size, const char *fmt, va_list ap)
{
    char scratch[2 * KS_ERROR_DETAIL_MAX];
    int n = vsnprintf(scratch, sizeof scratch, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof scratch ? (size_t)n : sizeof scratch - 1;
    ks_utf8_display(scratch, len, out, out_size);
}

ks_status ks_error_set(struct ks_error *err, ks_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        format_display(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->detail[0] = '\0';
    }
    return code;
}

void ks_error_set_detail(struct ks_error *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        format_display(err->detail, sizeof err->detail, fmt, ap);
        va_end(ap);
    }
}

void ks_error_clear(struct ks_error *err)
{
    if (err) {
        err->code = KS_OK;
        err->message[0] = '\0';
        err->detail[0] = '\0';
    }
}
