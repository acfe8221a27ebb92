/*
 * json_scan.c - fuzz target: the reader of AWS response bodies that carry secrets
 * (aws/json_scan.h): KMS plaintexts, metadata credentials, awsJson errors. The input is the
 * response body. A picked member's value is NUL-terminated at its reported length and holds no
 * NUL (an escaped NUL is malformed); on failure every field is left empty.
 */
#include "aws/json_scan.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ks_json_scan_field f[] = {{.name = "Plaintext"}, {.name = "KeyId"}, {.name = "__type"},
                                     {.name = "message"},   {.name = "Token"}, {.name = NULL}};
    const size_t n = sizeof f / sizeof f[0];

    if (ks_json_scan_object((const char *)data, size, f, n) == 0) {
        for (size_t i = 0; i < n; i++)
            if (f[i].value)
                FUZZ_CHECK(f[i].seen && f[i].len < f[i].cap && strlen(f[i].value) == f[i].len);
    } else {
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(f[i].value == NULL);
    }
    ks_json_scan_free(f, n);
    return 0;
}
