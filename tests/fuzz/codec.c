/*
 * codec.c - fuzz target: the byte-level decoders every request and stored item passes through
 * (common/base64.h, common/utf8.h). base64: what decodes is canonical, so encoding it gives the
 * input back. UTF-8: ks_utf8_valid agrees with decoding sequence by sequence, a decoded scalar
 * encodes back to the same bytes, and ks_utf8_display always writes a NUL-terminated, valid
 * UTF-8 text within its buffer, whatever the bytes.
 */
#include "common/base64.h"
#include "common/secret.h"
#include "common/utf8.h"
#include "tests/fuzz/fuzz.h"

static void base64(const uint8_t *data, size_t size)
{
    unsigned char *raw = NULL;
    size_t raw_len = 0;

    if (ks_base64_decode((const char *)data, size, &raw, &raw_len) == 0) {
        char *again = ks_base64_encode(raw, raw_len);
        FUZZ_CHECK(again && strlen(again) == size && memcmp(again, data, size) == 0);
        free(again);
        ks_secret_free(raw, raw_len);
    } else {
        FUZZ_CHECK(raw == NULL);
    }
}

static void utf8(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t i = 0, units = 0, n;
    uint32_t cp;
    char enc[4], shown[KS_UTF8_NAME_SHOWN];

    while (i < size && (n = ks_utf8_decode(s + i, size - i, &cp)) != 0) {
        FUZZ_CHECK(n <= size - i && ks_utf8_encode(cp, enc) == n && memcmp(enc, s + i, n) == 0);
        units += cp > 0xFFFF ? 2 : 1;
        i += n;
    }
    FUZZ_CHECK(ks_utf8_valid(s, size) == (i == size));
    if (i == size)
        FUZZ_CHECK(ks_utf8_utf16_length(s, size) == units);
    for (size_t out_size = 4; out_size <= sizeof shown; out_size += 32) {
        n = ks_utf8_display(s, size, shown, out_size);
        FUZZ_CHECK(n < out_size && shown[n] == '\0' && strlen(shown) == n);
        FUZZ_CHECK(ks_utf8_valid(shown, n));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    base64(data, size);
    utf8(data, size);
    return 0;
}
