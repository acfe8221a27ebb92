/*
 * sigv4.c - fuzz target: the SigV4 signer's canonicalisation (aws/sigv4.h): path normalisation
 * and double encoding, query sorting and encoding, header trimming, folding and sorting, body
 * hash. The input is an HTTP request as in the vendored vectors (tests/data/sigv4/<name>/
 * request.txt):
 *
 *   METHOD /path?query HTTP/1.1\n
 *   Name:value\n           (one header a line, up to an empty line; a line without ':' is a
 *   ...                     header with an empty value)
 *   \n
 *   body
 *
 * An odd-length input is signed with a session token too. A signature must be 64 lowercase hex
 * digits, the canonical request must start with the method, and signing twice gives the same
 * result.
 */
#include <ctype.h>

#include "aws/sigv4.h"
#include "tests/fuzz/fuzz.h"

#define MAX_HEADERS 64

struct parsed {
    char *request_line;
    char *lines[MAX_HEADERS];
    struct ks_sigv4_header headers[MAX_HEADERS];
    size_t n;
};

static void parse_headers(const uint8_t **data, size_t *size, struct parsed *p)
{
    while (*size && p->n < MAX_HEADERS) {
        char *line = fuzz_line(data, size), *colon;
        if (line[0] == '\0') {
            free(line);
            return;
        }
        p->lines[p->n] = line;
        colon = strchr(line, ':');
        p->headers[p->n].name = line;
        p->headers[p->n].value = colon ? colon + 1 : "";
        if (colon)
            *colon = '\0';
        p->n++;
    }
}

static void check_result(const struct ks_sigv4_result *r, const char *method)
{
    size_t mlen = strlen(method);

    FUZZ_CHECK(strlen(r->signature) == KS_SIGV4_SIGNATURE_HEX_LEN);
    for (size_t i = 0; i < KS_SIGV4_SIGNATURE_HEX_LEN; i++)
        FUZZ_CHECK(isxdigit((unsigned char)r->signature[i]) &&
                   !isupper((unsigned char)r->signature[i]));
    FUZZ_CHECK(strncmp(r->canonical_request, method, mlen) == 0 &&
               r->canonical_request[mlen] == '\n');
    FUZZ_CHECK(r->add_header_count >= 2 && r->add_header_count <= KS_SIGV4_MAX_ADD_HEADERS);
    FUZZ_CHECK(r->authorization == r->add_headers[r->add_header_count - 1].value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct ks_sigv4_credentials creds = {"AKIDEXAMPLE",
                                               "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                               size % 2 ? "fuzz-session-token" : NULL};
    struct ks_sigv4_request req = {0};
    struct ks_sigv4_result a, b;
    struct ks_error err;
    struct parsed p = {0};
    char *target, *query, *version;
    ks_status st;

    p.request_line = fuzz_line(&data, &size);
    parse_headers(&data, &size, &p);
    /* "METHOD target HTTP/1.1": the target runs to the last space (the vectors have paths
     * with spaces in them). */
    target = strchr(p.request_line, ' ');
    if (target) {
        *target++ = '\0';
        if ((version = strrchr(target, ' ')) != NULL)
            *version = '\0';
        if ((query = strchr(target, '?')) != NULL)
            *query++ = '\0';
        req = (struct ks_sigv4_request){p.request_line, target, query,       p.headers, p.n,
                                        data,           size,   "us-east-1", "service"};
        st = ks_sigv4_sign(&req, &creds, 1440938160, &a, &err);
        if (st == KS_OK) {
            check_result(&a, req.method);
            FUZZ_CHECK(ks_sigv4_sign(&req, &creds, 1440938160, &b, &err) == KS_OK);
            FUZZ_CHECK(strcmp(a.canonical_request, b.canonical_request) == 0 &&
                       strcmp(a.signature, b.signature) == 0);
            ks_sigv4_result_free(&b);
            ks_sigv4_result_free(&a);
        } else {
            FUZZ_CHECK(st == KS_E_INVALID || st == KS_E_INTERNAL);
            FUZZ_CHECK(a.canonical_request == NULL && a.authorization == NULL);
        }
    }
    for (size_t i = 0; i < p.n; i++)
        free(p.lines[i]);
    free(p.request_line);
    return 0;
}
