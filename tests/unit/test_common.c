/*
 * test_common.c - the small shared utilities of common/: strict base64 (RFC 4648), the
 * encryption context map and its canonical serialization (docs/architecture.md section 5), the JSON
 * writer (escaping, ill-formed UTF-8, base64 values, the cap), util (UUIDv4, create-time format
 * of docs/reference/branch-key-store.md section 2, hex), UTF-8 (validity, decode/encode, the
 * display copy for messages), secure buffers, and the status table (docs/style.md "Errors": every
 * status has an HTTP code and an exception name; messages stay valid UTF-8, cut on a boundary).
 */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/base64.h"
#include "common/ec.h"
#include "common/jsonw.h"
#include "common/secret.h"
#include "common/status.h"
#include "common/utf8.h"
#include "common/util.h"

/* --- base64 ------------------------------------------------------------------------------ */

/* RFC 4648 section 10 test vectors. */
static const char *const rfc4648[][2] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

Test(common_base64, rfc4648_vectors_encode)
{
    size_t i;
    for (i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        char *e = ks_base64_encode(rfc4648[i][0], strlen(rfc4648[i][0]));
        cr_assert_not_null(e);
        cr_expect_str_eq(e, rfc4648[i][1], "encode(\"%s\")", rfc4648[i][0]);
        free(e);
    }
}

Test(common_base64, rfc4648_vectors_decode)
{
    size_t i;
    for (i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        unsigned char *out = NULL;
        size_t out_len = 99;
        cr_assert_eq(ks_base64_decode(rfc4648[i][1], strlen(rfc4648[i][1]), &out, &out_len), 0,
                     "decode(\"%s\")", rfc4648[i][1]);
        cr_expect_eq(out_len, strlen(rfc4648[i][0]));
        cr_expect_eq(memcmp(out, rfc4648[i][0], out_len), 0);
        free(out);
    }
}

Test(common_base64, binary_round_trip_every_length)
{
    unsigned char data[300];
    size_t len, i;
    for (i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(255 - i);
    for (len = 0; len <= sizeof data; len++) {
        char *e = ks_base64_encode(data, len);
        unsigned char *out = NULL;
        size_t out_len = 0;
        cr_assert_not_null(e);
        cr_assert_eq(strlen(e), 4 * ((len + 2) / 3));
        cr_assert_eq(ks_base64_decode(e, strlen(e), &out, &out_len), 0, "len %zu", len);
        cr_assert_eq(out_len, len);
        cr_assert_eq(memcmp(out, data, len), 0);
        free(out);
        free(e);
    }
}

Test(common_base64, decode_refuses_non_canonical)
{
    static const char *const bad[] = {
        "Zg",       /* missing padding */
        "Zg=",      /* short padding */
        "Zg===",    /* extra padding */
        "Z===",     /* three pads */
        "====",     /* only padding */
        "Zh==",     /* non-zero trailing bits (4) */
        "Zm9=",     /* non-zero trailing bits (2) */
        "Zm 9v",    /* whitespace */
        "Zm9v\n",   /* newline */
        " Zm9v",    /* leading space */
        "Zg==Zg==", /* padding in the middle */
        "Zm9v-_8=", /* URL-safe alphabet */
        "Zg=a",     /* padding not at the end */
        "Z=g=",     /* padding inside the last quantum */
        "Zm9v*A==", /* not in the alphabet */
        "A",        /* length 1 */
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char *out = (unsigned char *)"untouched";
        size_t out_len = 0;
        cr_expect_eq(ks_base64_decode(bad[i], strlen(bad[i]), &out, &out_len), -1, "\"%s\"",
                     bad[i]);
    }
}

Test(common_base64, decode_refuses_embedded_nul)
{
    unsigned char *out = NULL;
    size_t out_len = 0;
    cr_expect_eq(ks_base64_decode("Zg\0=", 4, &out, &out_len), -1);
    cr_expect_eq(ks_base64_decode("Zm9v\0\0\0\0", 8, &out, &out_len), -1);
}

Test(common_base64, decode_respects_len)
{
    unsigned char *out = NULL;
    size_t out_len = 0;
    /* Only the first 4 characters are decoded. */
    cr_assert_eq(ks_base64_decode("Zm9vYmFy", 4, &out, &out_len), 0);
    cr_expect_eq(out_len, 3);
    cr_expect_eq(memcmp(out, "foo", 3), 0);
    free(out);
    cr_assert_eq(ks_base64_decode("AA==", 4, &out, &out_len), 0);
    cr_expect_eq(out_len, 1);
    cr_expect_eq(out[0], 0);
    free(out);
}

/* --- ec ---------------------------------------------------------------------------------- */

Test(common_ec, set_get_replace_remove)
{
    struct ks_ec ec;
    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, "b", "2"), 0);
    cr_assert_eq(ks_ec_set(&ec, "a", "1"), 0);
    cr_expect_eq(ec.count, 2);
    cr_expect_str_eq(ks_ec_get(&ec, "a"), "1");
    cr_expect_str_eq(ks_ec_get(&ec, "b"), "2");
    cr_expect_null(ks_ec_get(&ec, "c"));
    cr_assert_eq(ks_ec_set(&ec, "a", "one"), 0);
    cr_expect_eq(ec.count, 2);
    cr_expect_str_eq(ks_ec_get(&ec, "a"), "one");
    cr_expect_eq(ks_ec_remove(&ec, "a"), 1);
    cr_expect_eq(ks_ec_remove(&ec, "a"), 0);
    cr_expect_null(ks_ec_get(&ec, "a"));
    cr_expect_eq(ec.count, 1);
    ks_ec_free(&ec);
    cr_expect_eq(ec.count, 0);
    ks_ec_free(&ec); /* twice is harmless */
}

Test(common_ec, empty_key_and_value_allowed)
{
    struct ks_ec ec;
    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, "", ""), 0);
    cr_expect_str_eq(ks_ec_get(&ec, ""), "");
    ks_ec_free(&ec);
}

Test(common_ec, sorted_by_unsigned_key_bytes)
{
    /* 'B' 0x42 < 'a' 0x61 < 'b' < "\xc3\xa9" (e-acute, high bytes sort last as unsigned). */
    static const char *const in[] = {"\xc3\xa9", "b", "B", "a", "ab", ""};
    static const char *const sorted[] = {"", "B", "a", "ab", "b", "\xc3\xa9"};
    struct ks_ec ec;
    size_t i;
    ks_ec_init(&ec);
    for (i = 0; i < 6; i++)
        cr_assert_eq(ks_ec_set(&ec, in[i], "v"), 0);
    cr_assert_eq(ec.count, 6);
    for (i = 0; i < 6; i++)
        cr_expect_str_eq(ec.entries[i].key, sorted[i], "entry %zu", i);
    ks_ec_free(&ec);
}

Test(common_ec, many_entries_stay_sorted)
{
    struct ks_ec ec;
    char k[16];
    size_t i;
    ks_ec_init(&ec);
    for (i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "k%03zu", (i * 37) % 200);
        cr_assert_eq(ks_ec_set(&ec, k, k), 0);
    }
    cr_assert_eq(ec.count, 200);
    for (i = 1; i < ec.count; i++)
        cr_assert(strcmp(ec.entries[i - 1].key, ec.entries[i].key) < 0);
    ks_ec_free(&ec);
}

Test(common_ec, copy_and_equal)
{
    struct ks_ec a, b;
    ks_ec_init(&a);
    ks_ec_init(&b);
    cr_assert_eq(ks_ec_set(&a, "x", "1"), 0);
    cr_assert_eq(ks_ec_set(&a, "y", "2"), 0);
    cr_assert_eq(ks_ec_set(&b, "old", "gone"), 0);
    cr_assert_eq(ks_ec_copy(&b, &a), 0);
    cr_expect(ks_ec_equal(&a, &b));
    cr_expect_null(ks_ec_get(&b, "old"));
    cr_assert_eq(ks_ec_set(&b, "y", "3"), 0);
    cr_expect_not(ks_ec_equal(&a, &b));
    cr_assert_eq(ks_ec_set(&b, "y", "2"), 0);
    cr_assert_eq(ks_ec_set(&b, "z", "2"), 0);
    cr_expect_not(ks_ec_equal(&a, &b));
    ks_ec_free(&a);
    ks_ec_free(&b);
}

Test(common_ec, serialization_bytes)
{
    static const unsigned char expected[] = {
        0x00, 0x03,                                        /* count */
        0x00, 0x01, 'a',  0x00, 0x01, '1',                 /* a=1 */
        0x00, 0x02, 'b',  'c',  0x00, 0x00,                /* bc="" */
        0x00, 0x02, 0xc3, 0xa9, 0x00, 0x03, 'x', 'y', 'z', /* e-acute=xyz */
    };
    struct ks_ec ec;
    unsigned char *out = NULL;
    size_t len = 0;
    ks_ec_init(&ec);
    /* Inserted out of order: serialization is by sorted key bytes. */
    cr_assert_eq(ks_ec_set(&ec, "\xc3\xa9", "xyz"), 0);
    cr_assert_eq(ks_ec_set(&ec, "bc", ""), 0);
    cr_assert_eq(ks_ec_set(&ec, "a", "1"), 0);
    cr_assert_eq(ks_ec_serialize(&ec, &out, &len), 0);
    cr_assert_eq(len, sizeof expected);
    cr_expect_eq(memcmp(out, expected, len), 0);
    free(out);
    ks_ec_free(&ec);
}

Test(common_ec, serialization_empty_is_zero_bytes)
{
    struct ks_ec ec;
    unsigned char *out = NULL;
    size_t len = 99;
    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_serialize(&ec, &out, &len), 0);
    cr_expect_eq(len, 0);
    cr_expect_not_null(out);
    free(out);
}

Test(common_ec, serialization_u16_lengths)
{
    struct ks_ec ec;
    unsigned char *out = NULL;
    size_t len = 0;
    char *big = malloc(65537);
    cr_assert_not_null(big);
    memset(big, 'v', 65535);
    big[65535] = '\0';
    ks_ec_init(&ec);
    /* 65535 bytes fits in u16. */
    cr_assert_eq(ks_ec_set(&ec, "k", big), 0);
    cr_assert_eq(ks_ec_serialize(&ec, &out, &len), 0);
    cr_expect_eq(len, 2 + 2 + 1 + 2 + 65535);
    cr_expect_eq(out[5], 0xff);
    cr_expect_eq(out[6], 0xff);
    free(out);
    /* 65536 does not, as a value or as a key. */
    big[65535] = 'v';
    big[65536] = '\0';
    cr_assert_eq(ks_ec_set(&ec, "k", big), 0);
    cr_expect_eq(ks_ec_serialize(&ec, &out, &len), -1);
    ks_ec_free(&ec);
    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, big, "v"), 0);
    cr_expect_eq(ks_ec_serialize(&ec, &out, &len), -1);
    ks_ec_free(&ec);
    free(big);
}

/* --- jsonw ------------------------------------------------------------------------------- */

static char *take(struct ks_jsonw *w, size_t *len)
{
    char *s = ks_jsonw_take(w, len);
    cr_assert_not_null(s, "writer failed");
    return s;
}

Test(common_jsonw, structure_and_commas)
{
    struct ks_jsonw w;
    size_t len = 0;
    char *s;
    ks_jsonw_init(&w, 4096);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "a");
    ks_jsonw_array_begin(&w);
    ks_jsonw_int(&w, 1);
    ks_jsonw_bool(&w, 1);
    ks_jsonw_bool(&w, 0);
    ks_jsonw_null(&w);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "b");
    ks_jsonw_string(&w, "c");
    ks_jsonw_object_end(&w);
    ks_jsonw_array_begin(&w);
    ks_jsonw_array_end(&w);
    ks_jsonw_array_end(&w);
    ks_jsonw_key(&w, "d");
    ks_jsonw_int(&w, LLONG_MIN);
    ks_jsonw_key(&w, "e");
    ks_jsonw_object_begin(&w);
    ks_jsonw_object_end(&w);
    ks_jsonw_object_end(&w);
    s = take(&w, &len);
    cr_expect_str_eq(s, "{\"a\":[1,true,false,null,{\"b\":\"c\"},[]],\"d\":-9223372036854775808,"
                        "\"e\":{}}");
    cr_expect_eq(len, strlen(s));
    ks_secret_free_string(s);
    ks_jsonw_free(&w);
}

Test(common_jsonw, escaping)
{
    struct ks_jsonw w;
    char *s;
    ks_jsonw_init(&w, 4096);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "k\"\\");
    ks_jsonw_string(&w, "q\" b\\ n\n r\r t\t \x01\x1f\x7f / \xc3\xa9 \x08\x0c");
    ks_jsonw_object_end(&w);
    s = take(&w, NULL);
    cr_expect_str_eq(s, "{\"k\\\"\\\\\":\"q\\\" b\\\\ n\\n r\\r t\\t \\u0001\\u001f\x7f / "
                        "\xc3\xa9 \\u0008\\u000c\"}");
    ks_secret_free_string(s);
}

Test(common_jsonw, ill_formed_utf8_becomes_replacement_escapes)
{
    struct ks_jsonw w;
    char *s;
    struct json_object *o;
    ks_jsonw_init(&w, 4096);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "a\xc3\x28");
    ks_jsonw_string(&w, "\xed\xa0\x80|\xf0\x9f\x98|\xff|\xc3\xa9|\xf0\x9f\x98\x80");
    ks_jsonw_object_end(&w);
    s = take(&w, NULL);
    /* Each byte that starts no well-formed sequence is one \ufffd; valid text is untouched. */
    cr_expect_str_eq(s, "{\"a\\ufffd(\":\"\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd|"
                        "\xc3\xa9|\xf0\x9f\x98\x80\"}");
    cr_expect(ks_utf8_valid(s, strlen(s)));
    o = json_tokener_parse(s);
    cr_expect_not_null(o, "not JSON: %s", s);
    json_object_put(o);
    ks_secret_free_string(s);
}

Test(common_jsonw, string_len_with_nul_and_round_trip_through_json_c)
{
    static const char raw[] = "a\0b\"c\\\x01\xe2\x82\xac";
    struct ks_jsonw w;
    struct json_object *o, *v;
    char *s;
    ks_jsonw_init(&w, 4096);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "v");
    ks_jsonw_string_len(&w, raw, sizeof raw - 1);
    ks_jsonw_object_end(&w);
    s = take(&w, NULL);
    cr_expect_not_null(strstr(s, "a\\u0000b"));
    o = json_tokener_parse(s);
    cr_assert_not_null(o, "not JSON: %s", s);
    cr_assert(json_object_object_get_ex(o, "v", &v));
    cr_expect_eq((size_t)json_object_get_string_len(v), sizeof raw - 1);
    cr_expect_eq(memcmp(json_object_get_string(v), raw, sizeof raw - 1), 0);
    json_object_put(o);
    ks_secret_free_string(s);
}

Test(common_jsonw, base64_value)
{
    static const unsigned char key[4] = {0xfb, 0xff, 0x00, 0x01};
    struct ks_jsonw w;
    char *s;
    ks_jsonw_init(&w, 4096);
    ks_jsonw_array_begin(&w);
    ks_jsonw_base64(&w, key, sizeof key);
    ks_jsonw_base64(&w, key, 0);
    ks_jsonw_base64(&w, "foobar", 6);
    ks_jsonw_array_end(&w);
    s = take(&w, NULL);
    cr_expect_str_eq(s, "[\"+/8AAQ==\",\"\",\"Zm9vYmFy\"]");
    ks_secret_free_string(s);
}

/* Writes ["<n x's>"] (n + 4 chars) under cap max. */
static char *array_of_string(size_t n, size_t max)
{
    struct ks_jsonw w;
    char *big = malloc(n + 1), *s;
    cr_assert_not_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    ks_jsonw_init(&w, max);
    ks_jsonw_array_begin(&w);
    ks_jsonw_string(&w, big);
    ks_jsonw_array_end(&w);
    s = ks_jsonw_take(&w, NULL);
    ks_jsonw_free(&w);
    free(big);
    return s;
}

Test(common_jsonw, cap_exact_fits_one_more_fails)
{
    size_t sizes[] = {1, 10, 200, 251, 252, 253, 1000, 5000};
    size_t i;
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char *s = array_of_string(n, n + 4);
        cr_assert_not_null(s, "n=%zu with max=n+4 should fit", n);
        cr_expect_eq(strlen(s), n + 4);
        ks_secret_free_string(s);
        s = array_of_string(n, n + 3);
        cr_expect_null(s, "n=%zu with max=n+3 must fail", n);
    }
}

Test(common_jsonw, failed_writer_stays_failed)
{
    struct ks_jsonw w;
    ks_jsonw_init(&w, 8);
    ks_jsonw_string(&w, "0123456789"); /* 12 chars: over the cap */
    cr_expect(w.out.failed);
    ks_jsonw_free(&w);
    ks_jsonw_init(&w, 8);
    ks_jsonw_string(&w, "0123456789");
    ks_jsonw_int(&w, 1); /* would fit on its own */
    cr_expect_null(ks_jsonw_take(&w, NULL));
    ks_jsonw_free(&w);
}

Test(common_jsonw, take_resets_writer)
{
    struct ks_jsonw w;
    char *a, *b;
    ks_jsonw_init(&w, 64);
    ks_jsonw_int(&w, 1);
    a = take(&w, NULL);
    ks_jsonw_int(&w, 2);
    b = take(&w, NULL);
    cr_expect_str_eq(a, "1");
    cr_expect_str_eq(b, "2"); /* no leading comma from the first document */
    ks_secret_free_string(a);
    ks_secret_free_string(b);
    ks_jsonw_free(&w);
}

/* --- util -------------------------------------------------------------------------------- */

Test(common_util, uuid_v4_format)
{
    char prev[KS_UUID_LEN + 1] = "";
    int i;
    for (i = 0; i < 1000; i++) {
        char u[KS_UUID_LEN + 1];
        cr_assert_eq(ks_uuid_v4(u), 0);
        cr_assert_eq(strlen(u), KS_UUID_LEN);
        cr_assert(ks_uuid_is_valid(u), "%s", u);
        cr_assert_eq(u[14], '4', "version nibble: %s", u);
        cr_assert(strchr("89ab", u[19]) != NULL, "variant: %s", u);
        cr_assert_str_neq(u, prev);
        memcpy(prev, u, sizeof u);
    }
}

Test(common_util, uuid_is_valid)
{
    cr_expect(ks_uuid_is_valid("0b9e5ac2-4a1e-4a4b-9f6a-2a1b7a0c3d11"));
    cr_expect(ks_uuid_is_valid("00000000-0000-0000-0000-000000000000"));
    cr_expect_not(ks_uuid_is_valid("0B9E5AC2-4A1E-4A4B-9F6A-2A1B7A0C3D11"));  /* uppercase */
    cr_expect_not(ks_uuid_is_valid("0b9e5ac2-4a1e-4a4b-9f6a-2a1b7a0c3d1"));   /* 35 */
    cr_expect_not(ks_uuid_is_valid("0b9e5ac2-4a1e-4a4b-9f6a-2a1b7a0c3d111")); /* 37 */
    cr_expect_not(ks_uuid_is_valid("0b9e5ac24-a1e-4a4b-9f6a-2a1b7a0c3d11"));  /* hyphen */
    cr_expect_not(ks_uuid_is_valid("0b9e5ac2-4a1e-4a4b-9f6a-2a1b7a0c3d1g"));  /* non-hex */
    cr_expect_not(ks_uuid_is_valid("0b9e5ac2x4a1e-4a4b-9f6a-2a1b7a0c3d11"));
    cr_expect_not(ks_uuid_is_valid("{b9e5ac2-4a1e-4a4b-9f6a-2a1b7a0c3d1}"));
    cr_expect_not(ks_uuid_is_valid(""));
}

Test(common_util, timestamp_format)
{
    char out[28];
    ks_timestamp_iso8601(0, out);
    cr_expect_str_eq(out, "1970-01-01T00:00:00.000000Z");
    ks_timestamp_iso8601(1700000000123456ull, out);
    cr_expect_str_eq(out, "2023-11-14T22:13:20.123456Z");
    /* leap day, 1 microsecond */
    ks_timestamp_iso8601(951782400000001ull, out);
    cr_expect_str_eq(out, "2000-02-29T00:00:00.000001Z");
    ks_timestamp_iso8601(1735689599999999ull, out);
    cr_expect_str_eq(out, "2024-12-31T23:59:59.999999Z");
    cr_expect_eq(strlen(out), 27);
}

Test(common_util, system_clock_is_now)
{
    const struct ks_clock *c = ks_clock_system();
    uint64_t t = c->now_us(c->ctx);
    uint64_t a = ks_monotonic_us(), b = ks_monotonic_us();
    cr_expect_gt(t, 1700000000000000ull); /* after 2023 */
    cr_expect_geq(b, a);
}

Test(common_util, hex)
{
    static const unsigned char data[] = {0x00, 0xff, 0x10, 0xab, 0x7f};
    unsigned char out[5];
    char hex[11];
    ks_hex_encode(data, sizeof data, hex);
    cr_expect_str_eq(hex, "00ff10ab7f");
    cr_assert_eq(ks_hex_decode("00FF10aB7f", out, 5), 0);
    cr_expect_eq(memcmp(out, data, 5), 0);
    cr_expect_eq(ks_hex_decode("00ff10ab7", out, 5), -1);    /* odd / short */
    cr_expect_eq(ks_hex_decode("00ff10ab7f00", out, 5), -1); /* long */
    cr_expect_eq(ks_hex_decode("00ff10ab7g", out, 5), -1);   /* non-hex */
    cr_expect_eq(ks_hex_decode(" 0ff10ab7f", out, 5), -1);
    ks_hex_encode(data, 0, hex);
    cr_expect_str_eq(hex, "");
    cr_expect_eq(ks_hex_decode("", out, 0), 0);
}

Test(common_util, percent_encode)
{
    char out[64];
    /* Unreserved bytes stay; everything else is %XX in uppercase hex, '/' only in paths. */
    cr_expect_eq(ks_percent_encode("aZ09-._~", 8, 0, out, sizeof out), 8);
    cr_expect_str_eq(out, "aZ09-._~");
    cr_expect_eq(ks_percent_encode("a b/c+%", 7, 0, out, sizeof out), 15);
    cr_expect_str_eq(out, "a%20b%2Fc%2B%25");
    cr_expect_eq(ks_percent_encode("a b/c", 5, 1, out, sizeof out), 7);
    cr_expect_str_eq(out, "a%20b/c");
    /* Bytes >= 0x80 and NUL (len counts it) are encoded byte by byte. */
    cr_expect_eq(ks_percent_encode("\xe1\x88\xb4\0", 4, 0, out, sizeof out), 12);
    cr_expect_str_eq(out, "%E1%88%B4%00");
    /* Measuring, and a buffer one byte short: snprintf's contract, out left empty. */
    cr_expect_eq(ks_percent_encode("a b", 3, 0, NULL, 0), 5);
    cr_expect_eq(ks_percent_encode("a b", 3, 0, out, 5), 5);
    cr_expect_str_eq(out, "");
    cr_expect_eq(ks_percent_encode("a b", 3, 0, out, 6), 5);
    cr_expect_str_eq(out, "a%20b");
    cr_expect_eq(ks_percent_encode("", 0, 0, out, 1), 0);
    cr_expect_str_eq(out, "");
    /* Round trip through the decoder. */
    const char raw[] = "k=v&x y/\xff";
    size_t n = ks_percent_encode(raw, sizeof raw - 1, 0, out, sizeof out);
    size_t back_len = 0;
    char *back = ks_percent_decode(out, n, 0, &back_len);
    cr_assert_not_null(back);
    cr_expect_eq(back_len, sizeof raw - 1);
    cr_expect_eq(memcmp(back, raw, back_len), 0);
    free(back);
}

struct utf8_case {
    const char *s;
    size_t len;
    int valid;
    const char *what;
};

#define U8(lit, v, w)                                                                              \
    {                                                                                              \
        lit, sizeof lit - 1, v, w                                                                  \
    }

Test(common_util, utf8_validity)
{
    static const struct utf8_case cases[] = {
        U8("", 1, "empty"),
        U8("plain ascii", 1, "ascii"),
        U8("a\0b", 1, "NUL is a valid code point"),
        U8("\xc2\x80", 1, "U+0080"),
        U8("\xc3\xa9", 1, "U+00E9"),
        U8("\xdf\xbf", 1, "U+07FF"),
        U8("\xe0\xa0\x80", 1, "U+0800"),
        U8("\xe2\x82\xac", 1, "U+20AC"),
        U8("\xed\x9f\xbf", 1, "U+D7FF"),
        U8("\xee\x80\x80", 1, "U+E000"),
        U8("\xef\xbf\xbf", 1, "U+FFFF"),
        U8("\xf0\x90\x80\x80", 1, "U+10000"),
        U8("\xf0\x90\x8d\x88", 1, "U+10348"),
        U8("\xf4\x8f\xbf\xbf", 1, "U+10FFFF"),
        U8("\xc0\x80", 0, "overlong NUL"),
        U8("\xc0\xaf", 0, "overlong /"),
        U8("\xc1\xbf", 0, "overlong U+7F"),
        U8("\xe0\x80\x80", 0, "overlong 3-byte NUL"),
        U8("\xe0\x9f\xbf", 0, "overlong U+07FF"),
        U8("\xf0\x80\x80\x80", 0, "overlong 4-byte NUL"),
        U8("\xf0\x8f\xbf\xbf", 0, "overlong U+FFFF"),
        U8("\xed\xa0\x80", 0, "U+D800 high surrogate"),
        U8("\xed\xaf\xbf", 0, "U+DBFF"),
        U8("\xed\xb0\x80", 0, "U+DC00 low surrogate"),
        U8("\xed\xbf\xbf", 0, "U+DFFF"),
        U8("\xed\xa0\xbd\xed\xb2\xa9", 0, "CESU-8 surrogate pair"),
        U8("\xf4\x90\x80\x80", 0, "U+110000"),
        U8("\xf5\x80\x80\x80", 0, "F5 lead"),
        U8("\xf7\xbf\xbf\xbf", 0, "F7 lead"),
        U8("\xf8\x88\x80\x80\x80", 0, "5-byte form"),
        U8("\xfc\x84\x80\x80\x80\x80", 0, "6-byte form"),
        U8("\xfe", 0, "FE"),
        U8("\xff", 0, "FF"),
        U8("\x80", 0, "lone continuation"),
        U8("a\xbf", 0, "lone continuation after ascii"),
        U8("\xc3", 0, "truncated 2-byte"),
        U8("\xe2\x82", 0, "truncated 3-byte"),
        U8("\xf0\x90\x8d", 0, "truncated 4-byte"),
        U8("\xc3\x28", 0, "bad continuation"),
        U8("\xe2\x28\xa1", 0, "bad second byte"),
        U8("\xe2\x82\x28", 0, "bad third byte"),
        U8("\xf0\x90\x28\x88", 0, "bad third of four"),
        U8("ok\xc3\xa9ok\xe2\x82", 0, "valid then truncated"),
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(ks_utf8_valid(cases[i].s, cases[i].len), cases[i].valid, "%s", cases[i].what);
}

Test(common_util, utf8_respects_len)
{
    /* A valid sequence cut by len is invalid; bytes after len are not read. */
    cr_expect_not(ks_utf8_valid("\xc3\xa9", 1));
    cr_expect(ks_utf8_valid("ab\xff", 2));
}

Test(common_util, utf16_length)
{
    cr_expect_eq(ks_utf8_utf16_length("", 0), 0);
    cr_expect_eq(ks_utf8_utf16_length("abc", 3), 3);
    cr_expect_eq(ks_utf8_utf16_length("\xc3\xa9", 2), 1);
    cr_expect_eq(ks_utf8_utf16_length("\xe2\x82\xac", 3), 1);
    cr_expect_eq(ks_utf8_utf16_length("\xf0\x90\x8d\x88", 4), 2);
    cr_expect_eq(ks_utf8_utf16_length("a\xf0\x90\x8d\x88\xc3\xa9", 7), 4);
}

Test(common_utf8, decode_and_encode_round_trip)
{
    static const uint32_t cps[] = {0,      0x41,   0x7f,   0x80,    0x7ff,   0x800,   0xd7ff,
                                   0xe000, 0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff};
    size_t i;
    for (i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char b[4];
        uint32_t back = 0xffffffffu;
        size_t n = ks_utf8_encode(cps[i], b);
        cr_assert(n >= 1 && n <= 4, "U+%04X", cps[i]);
        cr_expect_eq(ks_utf8_decode(b, n, &back), n, "U+%04X", cps[i]);
        cr_expect_eq(back, cps[i]);
        cr_expect_eq(ks_utf8_decode(b, n - 1 ? n - 1 : 1, &back), n == 1 ? 1u : 0u, "cut U+%04X",
                     cps[i]);
    }
}

Test(common_utf8, encode_refuses_non_scalars)
{
    char b[4];
    cr_expect_eq(ks_utf8_encode(0xd800, b), 0);
    cr_expect_eq(ks_utf8_encode(0xdfff, b), 0);
    cr_expect_eq(ks_utf8_encode(0x110000, b), 0);
}

Test(common_utf8, decode_lengths)
{
    uint32_t cp;
    cr_expect_eq(ks_utf8_decode("\xc3\xa9x", 3, &cp), 2);
    cr_expect_eq(cp, 0xe9);
    cr_expect_eq(ks_utf8_decode("\xe2\x82\xac", 3, &cp), 3);
    cr_expect_eq(cp, 0x20ac);
    cr_expect_eq(ks_utf8_decode("\xc3\x28", 2, &cp), 0);
    cr_expect_eq(ks_utf8_decode("\xed\xa0\x80", 3, &cp), 0);
    cr_expect_eq(ks_utf8_decode("\x80", 1, &cp), 0);
}

static void expect_display(const char *s, size_t len, size_t size, const char *want)
{
    char out[256];
    size_t n;
    cr_assert(size <= sizeof out);
    memset(out, 'Z', sizeof out);
    n = ks_utf8_display(s, len, out, size);
    cr_expect_str_eq(out, want, "size %zu", size);
    cr_expect_eq(n, strlen(out));
    cr_expect(n < size);
    cr_expect(ks_utf8_valid(out, n), "%s", out);
}

Test(common_utf8, display_escapes_ill_formed_bytes_and_controls)
{
    expect_display("plain", 5, 64, "plain");
    expect_display("caf\xc3\xa9 \xf0\x9f\x98\x80", 10, 64, "caf\xc3\xa9 \xf0\x9f\x98\x80");
    expect_display("a\xc3\x28", 3, 64, "a\\xc3(");
    expect_display("role\0=admin", 11, 64, "role\\x00=admin");
    expect_display("\xed\xa0\x80", 3, 64, "\\xed\\xa0\\x80");
    expect_display("\xf4\x90\x80\x80", 4, 64, "\\xf4\\x90\\x80\\x80");
    expect_display("\xe2\x82", 2, 64, "\\xe2\\x82");
    expect_display("t\tn\n\x1b[31m\x7f", 10, 64, "t\\x09n\\x0a\\x1b[31m\\x7f");
    expect_display("", 0, 4, "");
}

Test(common_utf8, display_cuts_on_a_character_boundary)
{
    /* "abcdef" in 6 bytes (5 + NUL) does not fit: "ab..." */
    expect_display("abcdef", 6, 6, "ab...");
    expect_display("abcde", 5, 6, "abcde");
    /* Two-byte characters: never half of one before the ellipsis. */
    expect_display("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, 9, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    expect_display("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, 8, "\xc3\xa9\xc3\xa9...");
    expect_display("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, 7, "\xc3\xa9...");
    expect_display("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, 6, "\xc3\xa9...");
    expect_display("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, 5, "...");
    expect_display("\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 8, 8, "\xf0\x9f\x98\x80...");
    /* An escape is never cut either. */
    expect_display("\xff\xff\xff", 3, 8, "\\xff...");
    expect_display("xy\xff", 3, 7, "xy\\xff");
}

/* --- secret ------------------------------------------------------------------------------ */

Test(common_secret, alloc_dup_free)
{
    unsigned char *p = ks_secret_alloc(16), *q;
    size_t i;
    char *s;
    cr_assert_not_null(p);
    for (i = 0; i < 16; i++)
        cr_expect_eq(p[i], 0);
    q = ks_secret_dup("0123456789abcdef", 16);
    cr_assert_not_null(q);
    cr_expect_eq(memcmp(q, "0123456789abcdef", 16), 0);
    ks_secret_wipe(q, 16);
    for (i = 0; i < 16; i++)
        cr_expect_eq(q[i], 0);
    ks_secret_free(p, 16);
    ks_secret_free(q, 16);
    p = ks_secret_alloc(0);
    cr_expect_not_null(p);
    ks_secret_free(p, 0);
    ks_secret_free(NULL, 10);
    ks_secret_free_string(NULL);
    s = strdup("token");
    ks_secret_free_string(s);
}

/* --- status ------------------------------------------------------------------------------ */

Test(common_status, every_status_has_http_code_and_exception)
{
    int s;
    cr_expect_eq(ks_status_http_code(KS_OK), 200);
    for (s = 0; s < KS_STATUS_COUNT; s++) {
        const char *text = ks_strerror((ks_status)s);
        int http = ks_status_http_code((ks_status)s);
        cr_expect(text && *text, "status %d has no text", s);
        cr_expect(http >= 100 && http <= 599, "status %d: http %d", s, http);
        if (s == KS_OK)
            continue;
        cr_expect(ks_status_exception((ks_status)s) && *ks_status_exception((ks_status)s),
                  "status %d has no exception name", s);
        cr_expect(http >= 400, "error status %d maps to %d", s, http);
    }
}

Test(common_status, table_values)
{
    static const struct {
        ks_status st;
        int http;
        const char *exception;
    } expected[] = {
        {KS_E_INVALID, 400, "KeyStoreException"},
        {KS_E_UNAUTHENTICATED, 401, NULL},
        {KS_E_FORBIDDEN, 403, NULL},
        {KS_E_NOT_FOUND, 404, "KeyStoreException"},
        {KS_E_NO_ROUTE, 404, NULL},
        {KS_E_METHOD, 405, NULL},
        {KS_E_ALREADY_EXISTS, 409, NULL},
        {KS_E_VERSION_RACE, 409, "VersionRaceException"},
        {KS_E_TOO_LARGE, 413, NULL},
        {KS_E_MEDIA_TYPE, 415, NULL},
        {KS_E_URI_TOO_LONG, 414, "UriTooLongException"},
        {KS_E_HEADERS_TOO_BIG, 431, "RequestHeaderFieldsTooLargeException"},
        {KS_E_THROTTLED, 429, NULL},
        {KS_E_KMS, 502, "KeyManagementException"},
        {KS_E_STORAGE, 502, "KeyStorageException"},
        {KS_E_CORRUPT, 502, NULL},
        {KS_E_UNAVAILABLE, 503, NULL},
        {KS_E_INTERNAL, 500, NULL},
        {KS_E_CONFIG, 500, NULL},
        {KS_E_UNABLE_TO_DECRYPT, 400, "UnableToDecryptException"},
        {KS_E_MUTATION_CONFLICT, 409, "MutationConflictException"},
        {KS_E_UNEXPECTED_STATE, 409, "UnexpectedStateException"},
        {KS_E_MUTATION_INVALID, 400, "MutationInvalidException"},
        {KS_E_UNSUPPORTED, 400, "UnsupportedFeatureException"},
        {KS_E_MUTATION_VERIFICATION, 502, "MutationVerificationException"},
        {KS_E_MUTATION_FROM, 502, "MutationFromException"},
        {KS_E_MUTATION_TO, 502, "MutationToException"},
    };
    size_t i;
    cr_assert_eq(sizeof expected / sizeof expected[0], KS_STATUS_COUNT - 1,
                 "a status was added: extend this table");
    for (i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        cr_expect_eq(ks_status_http_code(expected[i].st), expected[i].http, "status %d",
                     (int)expected[i].st);
        if (expected[i].exception)
            cr_expect_str_eq(ks_status_exception(expected[i].st), expected[i].exception);
    }
}

Test(common_status, out_of_range)
{
    cr_expect_eq(ks_status_http_code(KS_STATUS_COUNT), 500);
    cr_expect_eq(ks_status_http_code((ks_status)-1), 500);
    cr_expect_str_eq(ks_status_exception(KS_STATUS_COUNT), "InternalServerError");
    cr_expect_not_null(ks_strerror((ks_status)1000));
}

Test(common_status, error_set_and_clear)
{
    struct ks_error err;
    char longmsg[600];
    memset(longmsg, 'm', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    cr_expect_eq(ks_error_set(&err, KS_E_INVALID, "field %s: %d", "x", 7), KS_E_INVALID);
    cr_expect_eq(err.code, KS_E_INVALID);
    cr_expect_str_eq(err.message, "field x: 7");
    cr_expect_eq(ks_error_set(&err, KS_E_KMS, "%s", longmsg), KS_E_KMS);
    cr_expect_eq(strlen(err.message), KS_ERROR_MESSAGE_MAX - 1);
    cr_expect_eq(ks_error_set(NULL, KS_E_STORAGE, "ignored"), KS_E_STORAGE);
    ks_error_clear(&err);
    cr_expect_eq(err.code, KS_OK);
    cr_expect_str_eq(err.message, "");
    ks_error_clear(NULL);
}

Test(common_status, messages_are_valid_utf8_cut_on_a_boundary)
{
    struct ks_error err;
    char longname[602];
    size_t i, len;
    /* 300 two-byte characters after a 1-byte prefix: any byte cut would land mid-sequence. */
    longname[0] = 'x';
    for (i = 0; i < 300; i++)
        memcpy(longname + 1 + 2 * i, "\xc3\xa9", 2);
    longname[601] = '\0';
    ks_error_set(&err, KS_E_INVALID, "%s", longname);
    len = strlen(err.message);
    cr_expect(len < KS_ERROR_MESSAGE_MAX);
    cr_expect(len >= KS_ERROR_MESSAGE_MAX - 8, "cut far too early: %zu", len);
    cr_expect(ks_utf8_valid(err.message, len), "%s", err.message);
    cr_expect_str_eq(err.message + len - 3, "...");
    /* Ill-formed bytes in an argument never reach the message raw. */
    ks_error_set(&err, KS_E_NOT_FOUND, "key store '%s' is not configured", "a\xc3\x28\xff");
    cr_expect_str_eq(err.message, "key store 'a\\xc3(\\xff' is not configured");
    /* A precision that cuts a sequence in half ("%.2s" of "a\xc3\xa9") leaves no half. */
    ks_error_set(&err, KS_E_INVALID, "%.2s", "a\xc3\xa9");
    cr_expect(ks_utf8_valid(err.message, strlen(err.message)), "%s", err.message);
    ks_error_set_detail(&err, "detail %s", "\xed\xa0\x80");
    cr_expect_str_eq(err.detail, "detail \\xed\\xa0\\x80");
}
