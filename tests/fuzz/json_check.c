/*
 * json_check.c - fuzz target: the raw pre-scan of request bodies (common/json_check.h), the
 * first code to read a client's bytes on every route with a body. Byte 0 picks the nesting cap
 * (1..32) and the flags; the rest is the text. Its rules are monotonic, which is checked: a text
 * that passes passes with a deeper cap, and a text that passes without KS_JSON_NUL_IN_VALUES
 * passes with it. A refusal always says why ("body: ...").
 */
#include "common/json_check.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned depth, flags;
    struct ks_error err;
    const char *text;
    ks_status st;

    if (size == 0)
        return 0;
    depth = 1 + (data[0] & 31);
    flags = data[0] & 32 ? KS_JSON_NUL_IN_VALUES : 0;
    text = (const char *)data + 1;
    st = ks_json_check_ex(text, size - 1, depth, flags, &err);
    if (st == KS_OK) {
        FUZZ_CHECK(ks_json_check_ex(text, size - 1, depth + 1, flags, &err) == KS_OK);
        FUZZ_CHECK(ks_json_check_ex(text, size - 1, depth, KS_JSON_NUL_IN_VALUES, &err) == KS_OK);
    } else {
        FUZZ_CHECK(st == KS_E_INVALID && strncmp(err.message, "body: ", 6) == 0);
    }
    return 0;
}
