/*
 * test_keyring.c - the keyring module (keyring/) against docs/reference/hierarchical-keyring.md:
 * the KDF vectors of section 8.1, the EDKs made by AWS's JS keyring of section 8.2 (wrap with
 * the pinned salt and IV must give the same bytes, unwrap must open them, KAT-2L must not
 * open), the encryption context serialization order and limits of section 4, the suite table of
 * section 7, and OnEncrypt / OnDecrypt over a keystore (memory storage, local KMS): version
 * inside the EDK, filtering, per-EDK failure reasons, dependency failures, one read per version.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ec.h"
#include "common/secret.h"
#include "common/util.h"
#include "keyring/edk.h"
#include "keyring/kdf.h"
#include "keyring/keyring.h"
#include "keyring/suites.h"
#include "keystore/keystore.h"
#include "kms/kms.h"
#include "storage/storage.h"

/* --- hex helpers ------------------------------------------------------------------------- */

/* Decodes hex (spaces ignored) into a malloc'd buffer. */
static unsigned char *unhex(const char *hex, size_t *len)
{
    size_t n = 0, i;
    char *clean = malloc(strlen(hex) + 1);
    unsigned char *out;
    for (i = 0; hex[i]; i++)
        if (hex[i] != ' ')
            clean[n++] = hex[i];
    clean[n] = '\0';
    cr_assert_eq(n % 2, 0, "odd hex: %s", hex);
    out = malloc(n / 2 + 1);
    cr_assert_eq(ks_hex_decode(clean, out, n / 2), 0, "bad hex: %s", hex);
    free(clean);
    *len = n / 2;
    return out;
}

static void expect_hex(const unsigned char *got, size_t len, const char *want_hex, const char *what)
{
    size_t want_len;
    unsigned char *want = unhex(want_hex, &want_len);
    char *got_hex = malloc(2 * len + 1);
    ks_hex_encode(got, len, got_hex);
    cr_expect_eq(len, want_len, "%s: %zu bytes, want %zu", what, len, want_len);
    cr_expect(len == want_len && memcmp(got, want, len) == 0, "%s:\n got  %s\n want %s", what,
              got_hex, want_hex);
    free(got_hex);
    free(want);
}

/* --- 8.1 KDF ------------------------------------------------------------------------------ */

Test(keyring_kdf, nist_counter_mode_vectors_c1_to_c5)
{
    static const char *const v[][3] = {
        {"7dc9bdfc2534047cfe63e9eb297b77525149ed7d4afce9c6440f350e61ef3ed0",
         "77dae93e689b581d3e06eb01c8d3ba02",
         "bce898725589aec08f9834b3b80fdc3ff173907e5574e729fdce127cf76db7cc"},
        {"5016711776440a204ba9c7c0ffdcd63cb6017e93abe96eb12391d9811e09509f",
         "d2f1c09e67421b238f42a8bd52abd3fc",
         "36ceae48ed85559c5d357898765259217262ccec8a39a276555cc7e8f0fc5c61"},
        {"395a102e5336bdf11bf2edecf64236e24a704f9cd00d944775d38b3949457aec",
         "330fb77c52e5f9567594eda21bf3ad6c",
         "1637ec8d9fa3faec562fe1679ce1e492a62df42788a3cdc874c1149370fed2c2"},
        {"98c019dfef9aaf43edfab892e4f3e30180f7e4988e8395293c46f43aa6ea56bd",
         "f3a0667fdb897326bbd8305097a89447",
         "bf7056eadce97a9a64bce6eeef9b3620612333a079eb2a4091690f99a259099c"},
        {"a6ec74338cbdc0af2a9a331ad0954c9faea2cf046ce8c4f00c39e49b614b2a42",
         "eca9e92d2b197af398bf9a372d869fdc",
         "9c0b14fb64e3a3a11e2df202f8f62c0b5884bdaf5f603d2c62a0d4888cde3997"},
    };
    size_t i;
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t kl, sl;
        unsigned char *ikm = unhex(v[i][0], &kl), *salt = unhex(v[i][1], &sl), out[32];
        char what[16];
        snprintf(what, sizeof what, "C.%zu", i + 1);
        cr_assert_eq(ks_keyring_kdf(ikm, kl, salt, out), 0);
        expect_hex(out, sizeof out, v[i][2], what);
        free(ikm);
        free(salt);
    }
}

Test(keyring_kdf, refuses_a_branch_key_that_is_not_32_bytes)
{
    unsigned char key[33] = {0}, salt[16] = {0}, out[32];
    cr_expect_eq(ks_keyring_kdf(key, 31, salt, out), -1);
    cr_expect_eq(ks_keyring_kdf(key, 33, salt, out), -1);
    cr_expect_eq(ks_keyring_kdf(key, 32, salt, out), 0);
}

/* --- 8.2 EDK known answers ----------------------------------------------------------------- */

#define BK "b49c1feb97a962f52de4732242c97fea396f2f14b4b6076322ebc5cb604b2308"
#define BK_VERSION "e9ce18a3-edb5-4272-9f86-1cacb7997ff6"
#define BK_ID "bd3842ff-3076-4092-9918-4395730050b8"
#define P32 "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"

struct kat {
    const char *name;
    uint16_t suite;
    const char *id;
    const char *const *ec; /* key, value, ..., NULL */
    const char *data_key, *salt, *iv, *derived, *ser, *ciphertext;
};

static const char *const ec_empty[] = {NULL};
static const struct ks_keyring_ec EMPTY_EC = {NULL, 0, 0};
static const char *const ec_kat2[] = {"b",
                                      "2",
                                      "a",
                                      "1",
                                      "B",
                                      "3",
                                      "a_b",
                                      "4",
                                      "a-b",
                                      "5",
                                      "\xc3\xa9",
                                      "6",
                                      "aws-crypto-public-key",
                                      "AAAA",
                                      NULL};
/* ec_kat2 less the pair "B": "3". */
static const char *const ec_kat2_without_B[] = {
    "b",    "2", "a", "1", "a_b", "4", "a-b", "5", "\xc3\xa9", "6", "aws-crypto-public-key",
    "AAAA", NULL};
static const char *const ec_kat3[] = {"tenant", "acme", NULL};
static const char *const ec_kat4[] = {"a", "1", NULL};
static const char *const ec_kat5[] = {"tenant", "acme", "purpose", "kat", NULL};

static const struct kat kats[] = {
    {"KAT-1", 0x0478, BK_ID, ec_empty, P32, "000102030405060708090a0b0c0d0e0f",
     "a0a1a2a3a4a5a6a7a8a9aaab", "a48ad5c27413f5c5faee86fdf296d3b28cc1317a68e87119cf1f523e4b2a15e4",
     "",
     "000102030405060708090a0b0c0d0e0fa0a1a2a3a4a5a6a7a8a9aaabe9ce18a3edb542729f861cacb7997ff6bdd"
     "d61d82f14ccc4aff340ccb765b52a967fc62cf28a1ae1266c5a405f204313227fe5fd50de07eba99ba5383d09db8"
     "9"},
    {"KAT-2", 0x0478, BK_ID, ec_kat2, P32, "101112131415161718191a1b1c1d1e1f",
     "b0b1b2b3b4b5b6b7b8b9babb", "a7531e713416df382fc2de351bd48732ce48a0fffa289a12e4cfc1eabfbb956c",
     "0007 0001 42 0001 33 0001 61 0001 31 0003 612d62 0001 35 0003 615f62 0001 34 0015 "
     "6177732d63727970746f2d7075626c69632d6b6579 0004 41414141 0001 62 0001 32 0002 c3a9 0001 36",
     "101112131415161718191a1b1c1d1e1fb0b1b2b3b4b5b6b7b8b9babbe9ce18a3edb542729f861cacb7997ff6717"
     "a737c6492ac5d60df090ffa517fa1aee9c2128c414c074fa7d7157626159d8f69bf53248c4c90e5c9373717cae86"
     "6"},
    {"KAT-3", 0x0014, BK_ID, ec_kat3, "404142434445464748494a4b4c4d4e4f",
     "202122232425262728292a2b2c2d2e2f", "c0c1c2c3c4c5c6c7c8c9cacb",
     "e830d2993e7e0e1b1d24fd40001773e01dfb13fdae49a843293afcd03aa68acd",
     "0001000674656e616e74000461636d65",
     "202122232425262728292a2b2c2d2e2fc0c1c2c3c4c5c6c7c8c9cacbe9ce18a3edb542729f861cacb7997ff65c1"
     "faca9096e2122e39bb3e6bda78cb638f9ef4cc0a9cba2a19beaa2f4526fe5"},
    {"KAT-4", 0x0346, "branch-\xc3\xbc-1", ec_kat4,
     "505152535455565758595a5b5c5d5e5f6061626364656667", "303132333435363738393a3b3c3d3e3f",
     "d0d1d2d3d4d5d6d7d8d9dadb", "dbf67238160de093c45c5d59d600888a058eef79a76ba91bf10ecb5057dc1c19",
     "0001000161000131",
     "303132333435363738393a3b3c3d3e3fd0d1d2d3d4d5d6d7d8d9dadbe9ce18a3edb542729f861cacb7997ff60c2"
     "5989d5840da36d13065dc37cf7b06162f587810f6f019b9a415ec419df3d1ddbaddb5dd6ce48b"},
    {"KAT-5", 0x0578, BK_ID, ec_kat5, P32, "404142434445464748494a4b4c4d4e4f",
     "e0e1e2e3e4e5e6e7e8e9eaeb", "310f02a4bcdfb0d1f2da6b344c2888cde1ae76474059be4c86f0709168634270",
     "00020007707572706f736500036b6174000674656e616e74000461636d65",
     "404142434445464748494a4b4c4d4e4fe0e1e2e3e4e5e6e7e8e9eaebe9ce18a3edb542729f861cacb7997ff6b79"
     "c732404a7ff4d3667a5ed934ef49014fe368b6f2ef336505b85067362da17c001959b8713e46783bde5e8beb909d"
     "3"},
};

/* Sets a pair given as C strings. */
static int set_c(struct ks_keyring_ec *ec, const char *key, const char *value)
{
    return ks_keyring_ec_set(ec, key, strlen(key), value, strlen(value));
}

static void ec_from(struct ks_keyring_ec *ec, const char *const *kv)
{
    ks_keyring_ec_init(ec);
    for (; kv && kv[0]; kv += 2)
        cr_assert_eq(set_c(ec, kv[0], kv[1]), 0);
}

Test(keyring_kat, derived_keys_and_serialized_contexts)
{
    size_t i;
    for (i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        size_t kl, sl, ser_len;
        unsigned char *bk = unhex(BK, &kl), *salt = unhex(kats[i].salt, &sl), k[32], *ser;
        struct ks_keyring_ec ec;
        ec_from(&ec, kats[i].ec);
        cr_assert_eq(ks_keyring_kdf(bk, kl, salt, k), 0);
        expect_hex(k, sizeof k, kats[i].derived, kats[i].name);
        cr_assert_eq(ks_keyring_ec_serialize(&ec, &ser, &ser_len), 0);
        expect_hex(ser, ser_len, kats[i].ser, kats[i].name);
        free(ser);
        ks_keyring_ec_free(&ec);
        free(bk);
        free(salt);
    }
}

Test(keyring_kat, wrap_with_pinned_salt_and_iv_gives_aws_bytes)
{
    size_t i;
    for (i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        const struct ks_keyring_suite *suite = ks_keyring_suite_find(kats[i].suite);
        size_t kl, dl, sl, il;
        unsigned char *bk = unhex(BK, &kl), *dk = unhex(kats[i].data_key, &dl);
        unsigned char *salt = unhex(kats[i].salt, &sl), *iv = unhex(kats[i].iv, &il), ct[92];
        struct ks_keyring_wrap_input in = {
            bk, kl, kats[i].id, strlen(kats[i].id), BK_VERSION, NULL, dk, dl, salt, iv};
        struct ks_keyring_ec ec;
        struct ks_error err;

        cr_assert_not_null(suite, "%s", kats[i].name);
        cr_assert_eq(dl, suite->data_key_len, "%s", kats[i].name);
        ec_from(&ec, kats[i].ec);
        in.ec = &ec;
        cr_assert_eq(ks_keyring_wrap_raw(&in, ct, &err), KS_OK, "%s: %s", kats[i].name,
                     err.message);
        expect_hex(ct, KS_KEYRING_EDK_OVERHEAD + dl, kats[i].ciphertext, kats[i].name);
        ks_keyring_ec_free(&ec);
        free(bk);
        free(dk);
        free(salt);
        free(iv);
    }
}

Test(keyring_kat, unwrap_opens_aws_edks)
{
    size_t i;
    for (i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        const struct ks_keyring_suite *suite = ks_keyring_suite_find(kats[i].suite);
        size_t kl, cl;
        unsigned char *bk = unhex(BK, &kl), *ct = unhex(kats[i].ciphertext, &cl), dk[32];
        struct ks_error err;
        struct ks_keyring_ec ec;

        ec_from(&ec, kats[i].ec);
        cr_assert_eq(ks_keyring_unwrap_raw(bk, kl, kats[i].id, strlen(kats[i].id), &ec, ct, cl,
                                           suite->data_key_len, dk, &err),
                     KS_OK, "%s: %s", kats[i].name, err.message);
        expect_hex(dk, suite->data_key_len, kats[i].data_key, kats[i].name);
        /* One flipped bit anywhere in the ciphertext fails the tag check. */
        ct[cl - 1] ^= 0x01;
        cr_expect_eq(ks_keyring_unwrap_raw(bk, kl, kats[i].id, strlen(kats[i].id), &ec, ct, cl,
                                           suite->data_key_len, dk, &err),
                     KS_E_UNABLE_TO_DECRYPT, "%s", kats[i].name);
        ct[cl - 1] ^= 0x01;
        ct[30] ^= 0x80; /* the version bytes enter the AAD */
        cr_expect_eq(ks_keyring_unwrap_raw(bk, kl, kats[i].id, strlen(kats[i].id), &ec, ct, cl,
                                           suite->data_key_len, dk, &err),
                     KS_E_UNABLE_TO_DECRYPT, "%s", kats[i].name);
        ks_keyring_ec_free(&ec);
        free(bk);
        free(ct);
    }
}

Test(keyring_kat, kat2l_locale_order_does_not_open_and_wrong_inputs_fail)
{
    static const char kat2l[] =
        "101112131415161718191a1b1c1d1e1fb0b1b2b3b4b5b6b7b8b9babbe9ce18a3edb542729f861cacb7997ff6"
        "717a737c6492ac5d60df090ffa517fa1aee9c2128c414c074fa7d7157626159d5f70b7dbcd0027eefc56f7634"
        "c20a96e";
    size_t kl, cl, cl2;
    unsigned char *bk = unhex(BK, &kl), *ct = unhex(kat2l, &cl), dk[32];
    unsigned char *good = unhex(kats[1].ciphertext, &cl2);
    struct ks_keyring_ec ec, other;
    struct ks_error err;

    ec_from(&ec, ec_kat2);
    cr_expect_eq(ks_keyring_unwrap_raw(bk, kl, BK_ID, strlen(BK_ID), &ec, ct, cl, 32, dk, &err),
                 KS_E_UNABLE_TO_DECRYPT);
    cr_expect_str_eq(err.message, "authentication failed");
    /* The right EDK under a context missing one pair, or with another id, or another suite. */
    ec_from(&other, ec_kat2_without_B);
    cr_expect_eq(
        ks_keyring_unwrap_raw(bk, kl, BK_ID, strlen(BK_ID), &other, good, cl2, 32, dk, &err),
        KS_E_UNABLE_TO_DECRYPT);
    cr_expect_eq(ks_keyring_unwrap_raw(bk, kl, "other", 5, &ec, good, cl2, 32, dk, &err),
                 KS_E_UNABLE_TO_DECRYPT);
    cr_expect_eq(ks_keyring_unwrap_raw(bk, kl, BK_ID, strlen(BK_ID), &ec, good, cl2, 24, dk, &err),
                 KS_E_UNABLE_TO_DECRYPT);
    cr_expect(strstr(err.message, "wrong length") != NULL, "%s", err.message);
    cr_expect_eq(ks_keyring_unwrap_raw(bk, kl, BK_ID, strlen(BK_ID), &ec, good, cl2, 32, dk, &err),
                 KS_OK);
    ks_keyring_ec_free(&ec);
    ks_keyring_ec_free(&other);
    free(bk);
    free(ct);
    free(good);
}

Test(keyring_kat, aad_of_kat1_and_kat4)
{
    unsigned char version[16], *aad;
    size_t len;
    struct ks_keyring_ec ec;

    cr_assert_eq(ks_keyring_version_encode(BK_VERSION, version), 0);
    ks_keyring_ec_init(&ec);
    cr_assert_eq(ks_keyring_aad(BK_ID, strlen(BK_ID), version, &ec, &aad, &len), 0);
    expect_hex(aad, len,
               "6177732d6b6d732d686965726172636879"
               "62643338343266662d333037362d343039322d393931382d343339353733303035306238"
               "e9ce18a3edb542729f861cacb7997ff6",
               "KAT-1 AAD (69 bytes, empty context adds nothing)");
    free(aad);
    ec_from(&ec, ec_kat4);
    cr_assert_eq(ks_keyring_aad("branch-\xc3\xbc-1", 11, version, &ec, &aad, &len), 0);
    expect_hex(aad, len,
               "6177732d6b6d732d686965726172636879 6272616e63682dc3bc2d31 "
               "e9ce18a3edb542729f861cacb7997ff6 0001000161000131",
               "KAT-4 AAD");
    free(aad);
    ks_keyring_ec_free(&ec);
}

/* --- encryption context order and limits (section 4) -------------------------------------- */

static void expect_ser(const char *const *kv, const char *want)
{
    unsigned char *ser;
    size_t len;
    struct ks_keyring_ec ec;
    ec_from(&ec, kv);
    cr_assert_eq(ks_keyring_ec_serialize(&ec, &ser, &len), 0);
    expect_hex(ser, len, want, want);
    free(ser);
    ks_keyring_ec_free(&ec);
}

Test(keyring_ec, utf8_byte_order_not_locale_or_code_unit_order)
{
    /* Locale order would put "a" before "B"; byte order puts B (0x42) first. */
    static const char *const ab[] = {"a", "1", "B", "2", NULL};
    /* U+00E9 (c3a9) after "z"; U+FF61 (efbda1) before U+1F600 (f09f9880), although in UTF-16
     * code units the surrogate d83d sorts before ff61. */
    static const char *const non_ascii[] = {
        "\xf0\x9f\x98\x80", "4", "\xef\xbd\xa1", "3", "z", "2", "\xc3\xa9", "1", NULL};
    /* A proper prefix sorts first. */
    static const char *const prefix[] = {"ab", "2", "a", "1", NULL};

    expect_ser(ab, "0002 0001 42 0001 32 0001 61 0001 31");
    expect_ser(non_ascii, "0004 0001 7a 0001 32 0002 c3a9 0001 31 0003 efbda1 0001 33 "
                          "0004 f09f9880 0001 34");
    expect_ser(prefix, "0002 0001 61 0001 31 0002 6162 0001 32");
    expect_ser(ec_empty, "");
}

Test(keyring_ec, u16_limits_are_refused_never_truncated)
{
    char *big = malloc(65537);
    struct ks_error err;
    struct ks_keyring_ec ec;
    size_t i;

    memset(big, 'k', 65536);
    big[65535] = '\0'; /* 65535 bytes: the largest that fits */
    ks_keyring_ec_init(&ec);
    cr_assert_eq(set_c(&ec, big, big), 0);
    cr_expect_eq(ks_keyring_check_ec(&ec, &err), KS_OK);
    ks_keyring_ec_free(&ec);
    big[65535] = 'k';
    big[65536] = '\0'; /* 65536 bytes */
    ks_keyring_ec_init(&ec);
    cr_assert_eq(set_c(&ec, big, "v"), 0);
    cr_expect_eq(ks_keyring_check_ec(&ec, &err), KS_E_INVALID);
    cr_expect(strstr(err.message, "key of 65536 bytes") != NULL, "%s", err.message);
    ks_keyring_ec_free(&ec);
    ks_keyring_ec_init(&ec);
    cr_assert_eq(set_c(&ec, "k", big), 0);
    cr_expect_eq(ks_keyring_check_ec(&ec, &err), KS_E_INVALID);
    cr_expect(strstr(err.message, "value of 65536 bytes") != NULL, "%s", err.message);
    ks_keyring_ec_free(&ec);
    free(big);
    /* 65535 pairs fit, 65536 do not (keys inserted in order: appends). */
    ks_keyring_ec_init(&ec);
    for (i = 0; i < 65535; i++) {
        char key[8];
        snprintf(key, sizeof key, "%06zu", i);
        cr_assert_eq(set_c(&ec, key, ""), 0);
    }
    cr_expect_eq(ks_keyring_check_ec(&ec, &err), KS_OK);
    cr_assert_eq(set_c(&ec, "999999", ""), 0);
    cr_expect_eq(ks_keyring_check_ec(&ec, &err), KS_E_INVALID);
    cr_expect(strstr(err.message, "65536 pairs") != NULL, "%s", err.message);
    ks_keyring_ec_free(&ec);
}

/* Values carry their lengths: U+0000 inside a value is serialized as its byte (section 4). */
Test(keyring_ec, a_value_with_nul_serializes_with_its_length)
{
    struct ks_keyring_ec ec;
    unsigned char *ser;
    size_t len;

    ks_keyring_ec_init(&ec);
    cr_assert_eq(ks_keyring_ec_set(&ec, "k", 1, "a\0b", 3), 0);
    cr_assert_eq(ks_keyring_ec_set(&ec, "b", 1, "\0", 1), 0);
    cr_assert_eq(ks_keyring_ec_set(&ec, "bb", 2, "x\0", 2), 0);
    cr_expect_eq(ks_keyring_check_ec(&ec, NULL), KS_OK);
    cr_assert_eq(ks_keyring_ec_serialize(&ec, &ser, &len), 0);
    /* By hand: 3 pairs; "b" -> 00; "bb" -> 78 00; "k" -> 61 00 62. */
    expect_hex(ser, len, "0003 0001 62 0001 00 0002 6262 0002 7800 0001 6b 0003 610062",
               "NUL values");
    free(ser);
    /* Replacing a value keeps its new length: "a" is not "a\0b". */
    cr_assert_eq(ks_keyring_ec_set(&ec, "k", 1, "a", 1), 0);
    cr_assert_eq(ks_keyring_ec_serialize(&ec, &ser, &len), 0);
    expect_hex(ser, len, "0003 0001 62 0001 00 0002 6262 0002 7800 0001 6b 0001 61", "replaced");
    free(ser);
    ks_keyring_ec_free(&ec);
}

Test(keyring_ec, a_key_with_nul_and_ill_formed_utf8_are_refused)
{
    unsigned char bk[32] = {1}, dk[32] = {2}, salt[16] = {0}, iv[12] = {0}, ct[92];
    struct ks_keyring_wrap_input in = {bk, 32, "id", 2, BK_VERSION, NULL, dk, 32, salt, iv};
    struct ks_keyring_ec ec;
    struct ks_error err;

    ks_keyring_ec_init(&ec);
    cr_assert_eq(ks_keyring_ec_set(&ec, "a\0", 2, "v", 1), 0);
    cr_expect_eq(ks_keyring_check_ec(&ec, &err), KS_E_INVALID);
    cr_expect(strstr(err.message, "a key holds U+0000") != NULL, "%s", err.message);
    in.ec = &ec;
    cr_expect_eq(ks_keyring_wrap_raw(&in, ct, &err), KS_E_INVALID);
    cr_expect_eq(ks_keyring_unwrap_raw(bk, 32, "id", 2, &ec, ct, 92, 32, dk, &err), KS_E_INVALID);
    ks_keyring_ec_free(&ec);
    /* A UTF-8-encoded lone surrogate (ed a0 80) in a value: still refused. */
    ks_keyring_ec_init(&ec);
    cr_assert_eq(ks_keyring_ec_set(&ec, "k", 1, "\xed\xa0\x80", 3), 0);
    cr_expect_eq(ks_keyring_check_ec(&ec, &err), KS_E_INVALID);
    cr_expect(strstr(err.message, "UTF-8") != NULL, "%s", err.message);
    ks_keyring_ec_free(&ec);
}

Test(keyring_ec, wrap_refuses_a_context_over_the_limits)
{
    unsigned char bk[32] = {1}, dk[32] = {2}, salt[16] = {0}, iv[12] = {0}, ct[92];
    char *big = malloc(65537);
    struct ks_keyring_wrap_input in = {bk, 32, "id", 2, BK_VERSION, NULL, dk, 32, salt, iv};
    struct ks_error err;
    struct ks_keyring_ec ec;

    memset(big, 'v', 65536);
    big[65536] = '\0';
    ks_keyring_ec_init(&ec);
    cr_assert_eq(set_c(&ec, "k", big), 0);
    in.ec = &ec;
    cr_expect_eq(ks_keyring_wrap_raw(&in, ct, &err), KS_E_INVALID);
    cr_expect_eq(ks_keyring_unwrap_raw(bk, 32, "id", 2, &ec, ct, 92, 32, dk, &err), KS_E_INVALID);
    ks_keyring_ec_free(&ec);
    free(big);
}

Test(keyring_kat, wrap_refuses_bad_keys_and_versions)
{
    unsigned char bk[33] = {1}, dk[32] = {2}, salt[16] = {0}, iv[12] = {0}, ct[92];
    struct ks_keyring_wrap_input in = {bk, 31, "id", 2, BK_VERSION, &EMPTY_EC, dk, 32, salt, iv};
    struct ks_error err;

    cr_expect_eq(ks_keyring_wrap_raw(&in, ct, &err), KS_E_INTERNAL);
    in.branch_key_len = 33;
    cr_expect_eq(ks_keyring_wrap_raw(&in, ct, &err), KS_E_INTERNAL);
    cr_expect_eq(ks_keyring_unwrap_raw(bk, 33, "id", 2, &EMPTY_EC, ct, 92, 32, dk, &err),
                 KS_E_INTERNAL);
    in.branch_key_len = 32;
    in.version = "not-a-uuid";
    cr_expect_eq(ks_keyring_wrap_raw(&in, ct, &err), KS_E_INVALID);
    in.version = BK_VERSION;
    cr_expect_eq(ks_keyring_wrap_raw(&in, ct, &err), KS_OK, "%s", err.message);
}

/* --- suites and versions (sections 1 and 7) ------------------------------------------------ */

Test(keyring_suites, every_esdk_suite_and_nothing_else)
{
    static const struct {
        const char *text;
        size_t n;
    } ok[] = {{"0x0014", 16}, {"0x0046", 24}, {"0x0078", 32}, {"0x0114", 16},
              {"0x0146", 24}, {"0x0178", 32}, {"0x0214", 16}, {"0x0346", 24},
              {"0x0378", 32}, {"0x0478", 32}, {"0x0578", 32}, {"0X0578", 32}};
    static const char *const bad[] = {"0x6700",  "0x6701", "0x0000", "0478",   "0x478",
                                      "0x04788", "0x04g8", "",       "0x 478", "1x0478"};
    size_t i, count;
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        const struct ks_keyring_suite *s = ks_keyring_suite_parse(ok[i].text, strlen(ok[i].text));
        cr_assert_not_null(s, "%s", ok[i].text);
        cr_expect_eq(s->data_key_len, ok[i].n, "%s", ok[i].text);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_null(ks_keyring_suite_parse(bad[i], strlen(bad[i])), "%s", bad[i]);
    ks_keyring_suites(&count);
    cr_expect_eq(count, 11);
    cr_expect_eq(ks_keyring_suite_default()->id, 0x0478);
}

Test(keyring_edk, version_bytes_round_trip_and_refusals)
{
    unsigned char b[16];
    char text[37];
    cr_assert_eq(ks_keyring_version_encode(BK_VERSION, b), 0);
    expect_hex(b, 16, "e9ce18a3edb542729f861cacb7997ff6", "version bytes");
    ks_keyring_version_decode(b, text);
    cr_expect_str_eq(text, BK_VERSION);
    cr_expect_eq(ks_keyring_version_encode("E9CE18A3-EDB5-4272-9F86-1CACB7997FF6", b), -1);
    cr_expect_eq(ks_keyring_version_encode("e9ce18a3edb542729f861cacb7997ff6", b), -1);
    cr_expect_eq(ks_keyring_version_encode(NULL, b), -1);
}

Test(keyring_edk, split_checks_the_exact_length)
{
    unsigned char ct[100] = {0};
    struct ks_keyring_edk_fields f;
    cr_expect_eq(ks_keyring_edk_split(ct, 92, 32, &f), 0);
    cr_expect_eq(f.version, ct + 28);
    cr_expect_eq(f.encrypted, ct + 44);
    cr_expect_eq(f.tag, ct + 76);
    cr_expect_eq(ks_keyring_edk_split(ct, 91, 32, &f), -1);
    cr_expect_eq(ks_keyring_edk_split(ct, 93, 32, &f), -1);
    cr_expect_eq(ks_keyring_edk_split(ct, 84, 24, &f), 0);
    cr_expect_eq(ks_keyring_edk_split(ct, 76, 16, &f), 0);
    cr_expect_eq(ks_keyring_edk_split(ct, 92, 16, &f), -1);
}

/* --- OnEncrypt / OnDecrypt over a keystore (sections 5 and 6) ------------------------------ */

/* A KMS that forwards to the local one, or answers every Decrypt as unreachable. */
struct flaky_kms {
    struct ks_kms base;
    struct ks_kms *inner;
    int down;
};

static struct ks_kms *inner_of(struct ks_kms *k)
{
    return ((struct flaky_kms *)k)->inner;
}

static ks_status flaky_gdkwp(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                             size_t n, const struct ks_ec *ec, struct ks_kms_result *out,
                             struct ks_error *err)
{
    return inner_of(k)->ops->generate_data_key_without_plaintext(inner_of(k), c, key_id, n, ec, out,
                                                                 err);
}

static ks_status flaky_gdk(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                           size_t n, const struct ks_ec *ec, struct ks_kms_result *out,
                           struct ks_error *err)
{
    return inner_of(k)->ops->generate_data_key(inner_of(k), c, key_id, n, ec, out, err);
}

static ks_status flaky_encrypt(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                               const unsigned char *pt, size_t len, const struct ks_ec *ec,
                               struct ks_kms_result *out, struct ks_error *err)
{
    return inner_of(k)->ops->encrypt(inner_of(k), c, key_id, pt, len, ec, out, err);
}

static ks_status flaky_decrypt(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                               const unsigned char *ct, size_t len, const struct ks_ec *ec,
                               struct ks_kms_result *out, struct ks_error *err)
{
    if (((struct flaky_kms *)k)->down)
        return ks_error_set(err, KS_E_UNAVAILABLE, "KMS unavailable (timed out)");
    return inner_of(k)->ops->decrypt(inner_of(k), c, key_id, ct, len, ec, out, err);
}

static ks_status flaky_re_encrypt(struct ks_kms *k, const struct ks_kms_call *c,
                                  const unsigned char *ct, size_t len, const struct ks_ec *src_ec,
                                  const char *src_key, const char *dst_key,
                                  const struct ks_ec *dst_ec, struct ks_kms_result *out,
                                  struct ks_error *err)
{
    return inner_of(k)->ops->re_encrypt(inner_of(k), c, ct, len, src_ec, src_key, dst_key, dst_ec,
                                        out, err);
}

static ks_status flaky_ping(struct ks_kms *k, struct ks_error *err)
{
    return inner_of(k)->ops->ping(inner_of(k), err);
}

static void flaky_destroy(struct ks_kms *k)
{
    (void)k;
}

static const struct ks_kms_ops flaky_ops = {
    .version = KS_KMS_OPS_VERSION,
    .name = "flaky",
    .generate_data_key_without_plaintext = flaky_gdkwp,
    .generate_data_key = flaky_gdk,
    .encrypt = flaky_encrypt,
    .decrypt = flaky_decrypt,
    .re_encrypt = flaky_re_encrypt,
    .ping = flaky_ping,
    .destroy = flaky_destroy,
};

struct fixture {
    char dir[64];
    char key_file[128];
    char arn[128];
    struct flaky_kms kms;
    struct ks_kms *local;
    struct ks_keystore *ks;
    struct ks_kms_relationship rel;
    struct ks_keyring_source src;
    char *id;
};

static struct fixture F;
static const struct ks_keyring_ec EMPTY = {NULL, 0, 0};

static void setup(void)
{
    struct ks_keystore_params p = {"ks", "logical", NULL, NULL, NULL, NULL};
    struct ks_error err;

    memset(&F, 0, sizeof F);
    memcpy(F.dir, "/tmp/ks-test-keyring-XXXXXX", sizeof "/tmp/ks-test-keyring-XXXXXX");
    cr_assert_not_null(mkdtemp(F.dir));
    snprintf(F.key_file, sizeof F.key_file, "%s/local.keys", F.dir);
    cr_assert_eq(ks_kms_local_open(F.key_file, NULL, 0, KS_KMS_LOCAL_MAY_CREATE, &F.local, &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(ks_kms_local_default_arn(F.local, F.arn, sizeof F.arn), KS_OK);
    F.kms.base.ops = &flaky_ops;
    F.kms.inner = F.local;
    cr_assert_eq(ks_storage_memory_create(&p.storage, &err), KS_OK, "%s", err.message);
    cr_assert_eq(ks_keystore_create(&p, &F.ks, &err), KS_OK, "%s", err.message);
    F.rel = (struct ks_kms_relationship){"rel", &F.kms.base, KS_KMS_KEY_ARN, F.arn, NULL, NULL,
                                         0,     NULL};
    F.src = (struct ks_keyring_source){F.ks, &F.rel, NULL};
    cr_assert_eq(ks_keystore_create_key(F.ks, &F.rel, NULL, NULL, &F.id, &err), KS_OK, "%s",
                 err.message);
}

static void teardown(void)
{
    free(F.id);
    ks_keystore_destroy(F.ks);
    ks_kms_destroy(F.local);
    unlink(F.key_file);
    rmdir(F.dir);
}

static struct ks_keyring_wrap_result wrap_ok(const struct ks_keyring_ec *ec, uint16_t suite_id)
{
    struct ks_keyring_wrap_result r;
    struct ks_error err;
    cr_assert_eq(
        ks_keyring_wrap(&F.src, F.id, ec, ks_keyring_suite_find(suite_id), NULL, 0, &r, &err),
        KS_OK, "%s", err.message);
    return r;
}

static struct ks_keyring_edk edk_of(const struct ks_keyring_wrap_result *r, const char *id)
{
    struct ks_keyring_edk e = {
        KS_KEYRING_PROVIDER_ID, KS_KEYRING_PROVIDER_ID_LEN, (const unsigned char *)id, strlen(id),
        r->ciphertext,          r->ciphertext_len};
    return e;
}

static ks_status unwrap(const struct ks_keyring_edk *edks, size_t n, const struct ks_keyring_ec *ec,
                        uint16_t suite_id, const char *filter, struct ks_keyring_unwrap_result *out,
                        struct ks_error *err)
{
    struct ks_keyring_session *s = ks_keyring_session_new(&F.src);
    struct ks_keyring_unwrap_request req = {
        edks, n, ec, ks_keyring_suite_find(suite_id), filter, filter ? strlen(filter) : 0};
    ks_status st = ks_keyring_unwrap(s, &req, out, err);
    ks_keyring_session_free(s);
    return st;
}

Test(keyring_store, wrap_then_unwrap_every_data_key_length, .init = setup, .fini = teardown)
{
    static const uint16_t suites[] = {0x0014, 0x0346, 0x0478, 0x0578};
    static const char *const kv[] = {"a", "1", "B", "2", "\xc3\xa9", "3", NULL};
    size_t i;
    struct ks_keyring_ec ec;

    ec_from(&ec, kv);
    for (i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        struct ks_keyring_wrap_result w = wrap_ok(&ec, suites[i]);
        struct ks_keyring_edk e = edk_of(&w, F.id);
        struct ks_keyring_unwrap_result u;
        struct ks_error err;
        size_t n = ks_keyring_suite_find(suites[i])->data_key_len;

        cr_expect(w.generated);
        cr_expect_eq(w.data_key_len, n);
        cr_expect_eq(w.ciphertext_len, 60 + n);
        cr_assert(ks_uuid_is_valid(w.version));
        cr_assert_eq(unwrap(&e, 1, &ec, suites[i], NULL, &u, &err), KS_OK, "%s", err.message);
        cr_expect_eq(u.data_key_len, n);
        cr_expect_eq(memcmp(u.data_key, w.data_key, n), 0);
        cr_expect_str_eq(u.version, w.version);
        cr_expect_str_eq(u.branch_key_id, F.id);
        ks_keyring_unwrap_result_free(&u);
        ks_keyring_wrap_result_free(&w);
    }
    ks_keyring_ec_free(&ec);
}

Test(keyring_store, fresh_salt_iv_and_given_data_key, .init = setup, .fini = teardown)
{
    unsigned char dk[32];
    struct ks_keyring_wrap_result a, b;
    struct ks_error err;
    struct ks_keyring_ec ec;

    memset(dk, 7, sizeof dk);
    ks_keyring_ec_init(&ec);
    cr_assert_eq(ks_keyring_wrap(&F.src, F.id, &ec, ks_keyring_suite_default(), dk, 32, &a, &err),
                 KS_OK);
    cr_assert_eq(ks_keyring_wrap(&F.src, F.id, &ec, ks_keyring_suite_default(), dk, 32, &b, &err),
                 KS_OK);
    cr_expect_not(a.generated);
    cr_expect_eq(memcmp(a.data_key, dk, 32), 0);
    /* Same key, same data key: the salt and IV (first 28 bytes) differ, so does all the rest. */
    cr_expect_neq(memcmp(a.ciphertext, b.ciphertext, 16), 0);
    cr_expect_neq(memcmp(a.ciphertext + 16, b.ciphertext + 16, 12), 0);
    ks_keyring_wrap_result_free(&b); /* b is reused by the failing calls below */
    cr_expect_eq(ks_keyring_wrap(&F.src, F.id, &ec, ks_keyring_suite_default(), dk, 24, &b, &err),
                 KS_E_INVALID);
    cr_expect(strstr(err.message, "dataKey") != NULL, "%s", err.message);
    cr_expect_eq(
        ks_keyring_wrap(&F.src, "no-such-key", &ec, ks_keyring_suite_default(), NULL, 0, &b, &err),
        KS_E_NOT_FOUND);
    ks_keyring_wrap_result_free(&a);
    ks_keyring_ec_free(&ec);
}

Test(keyring_store, uses_the_version_inside_the_edk, .init = setup, .fini = teardown)
{
    struct ks_keyring_wrap_result old = wrap_ok(&EMPTY, 0x0478), now;
    struct ks_keyring_unwrap_result u;
    struct ks_keyring_edk e;
    struct ks_error err;
    struct ks_keyring_ec ec;
    char *v2 = NULL;

    ks_keyring_ec_init(&ec);
    ks_keyring_wrap_result_free(&old);
    old = wrap_ok(&ec, 0x0478);
    cr_assert_eq(ks_keystore_version_key(F.ks, &F.rel, F.id, &v2, &err), KS_OK, "%s", err.message);
    now = wrap_ok(&ec, 0x0478);
    cr_expect_str_eq(now.version, v2);
    cr_expect_str_neq(old.version, v2);
    e = edk_of(&old, F.id);
    cr_assert_eq(unwrap(&e, 1, &ec, 0x0478, NULL, &u, &err), KS_OK, "%s", err.message);
    cr_expect_str_eq(u.version, old.version);
    ks_keyring_unwrap_result_free(&u);
    free(v2);
    ks_keyring_wrap_result_free(&old);
    ks_keyring_wrap_result_free(&now);
    ks_keyring_ec_free(&ec);
}

Test(keyring_store, skips_other_providers_and_ids_first_success_wins, .init = setup,
     .fini = teardown)
{
    struct ks_keyring_wrap_result w = wrap_ok(&EMPTY, 0x0478);
    unsigned char junk[92] = {0};
    struct ks_keyring_edk edks[4];
    struct ks_keyring_unwrap_result u;
    struct ks_error err;
    struct ks_keyring_ec ec;

    ks_keyring_ec_init(&ec);
    /* A raw AES EDK with provider info that is not UTF-8: opaque, skipped, never refused. */
    edks[0] = (struct ks_keyring_edk){"raw-aes", 7, (const unsigned char *)"\xff\xfe", 2, junk, 3};
    edks[1] = edk_of(&w, "other-id");
    edks[1].ciphertext = junk;
    edks[2] = edk_of(&w, F.id);
    edks[3] = edk_of(&w, F.id);
    cr_assert_eq(unwrap(edks, 4, &ec, 0x0478, NULL, &u, &err), KS_OK, "%s", err.message);
    cr_expect_eq(u.edk_index, 2);
    ks_keyring_unwrap_result_free(&u);
    /* With the filter, other-id is not even tried. */
    cr_assert_eq(unwrap(edks, 4, &ec, 0x0478, F.id, &u, &err), KS_OK, "%s", err.message);
    cr_expect_eq(u.edk_index, 2);
    ks_keyring_unwrap_result_free(&u);
    cr_expect_eq(unwrap(edks, 2, &ec, 0x0478, F.id, &u, &err), KS_E_UNABLE_TO_DECRYPT);
    cr_expect(strstr(err.message, "no encrypted data key") != NULL, "%s", err.message);
    cr_expect_eq(unwrap(edks, 1, &ec, 0x0478, NULL, &u, &err), KS_E_UNABLE_TO_DECRYPT);
    ks_keyring_wrap_result_free(&w);
    ks_keyring_ec_free(&ec);
}

Test(keyring_store, every_failure_reason_is_listed, .init = setup, .fini = teardown)
{
    struct ks_keyring_wrap_result w = wrap_ok(&EMPTY, 0x0478);
    unsigned char unknown[92], *copy = malloc(92);
    struct ks_keyring_edk edks[4];
    struct ks_keyring_unwrap_result u;
    struct ks_error err;
    struct ks_keyring_ec ec, other;

    ks_keyring_ec_init(&ec);
    ec_from(&other, ec_kat3);
    memcpy(unknown, w.ciphertext, 92);
    memset(unknown + 28, 0x11, 16); /* a version that does not exist */
    memcpy(copy, w.ciphertext, 92);
    edks[0] = edk_of(&w, F.id);
    edks[0].ciphertext_len = 91;
    edks[1] = edk_of(&w, F.id);
    edks[1].ciphertext = unknown;
    edks[2] = edk_of(&w, F.id);
    edks[2].provider_info = (const unsigned char *)"\xc3";
    edks[2].provider_info_len = 1;
    edks[3] = edk_of(&w, F.id);
    cr_assert_eq(unwrap(edks, 4, &other, 0x0478, NULL, &u, &err), KS_E_UNABLE_TO_DECRYPT);
    cr_expect(strstr(err.message, "EDK 0: wrong length (91 bytes; suite 0x0478 needs 92)"), "%s",
              err.message);
    cr_expect(strstr(err.message, "EDK 1: unknown version 11111111-1111-1111-1111-111111111111"),
              "%s", err.message);
    cr_expect(strstr(err.message, "EDK 2: provider info is not a valid branch key id"), "%s",
              err.message);
    cr_expect(strstr(err.message, "EDK 3: authentication failed"), "%s", err.message);
    /* The wrong suite fails on the length, before any read. */
    cr_expect_eq(unwrap(&edks[3], 1, &ec, 0x0014, NULL, &u, &err), KS_E_UNABLE_TO_DECRYPT);
    cr_expect(strstr(err.message, "needs 76"), "%s", err.message);
    free(copy);
    ks_keyring_wrap_result_free(&w);
    ks_keyring_ec_free(&ec);
    ks_keyring_ec_free(&other);
}

Test(keyring_store, a_dependency_failure_is_not_unable_to_decrypt, .init = setup, .fini = teardown)
{
    struct ks_keyring_wrap_result w = wrap_ok(&EMPTY, 0x0478);
    struct ks_keyring_edk edks[2];
    struct ks_keyring_unwrap_result u;
    struct ks_error err;
    struct ks_keyring_ec ec;

    ks_keyring_ec_init(&ec);
    edks[0] = edk_of(&w, F.id);
    edks[0].ciphertext_len = 91; /* fails on itself */
    edks[1] = edk_of(&w, F.id);  /* would open, but KMS is down */
    F.kms.down = 1;
    cr_expect_eq(unwrap(edks, 2, &ec, 0x0478, NULL, &u, &err), KS_E_UNAVAILABLE);
    cr_expect(strstr(err.message, "KMS unavailable"), "%s", err.message);
    cr_expect_eq(ks_keyring_wrap(&F.src, F.id, &ec, ks_keyring_suite_default(), NULL, 0, &w, &err),
                 KS_E_UNAVAILABLE);
    cr_expect_eq(ks_keyring_outcome_of(KS_E_UNAVAILABLE), KS_KEYRING_OUTCOME_DEPENDENCY);
    cr_expect_eq(ks_keyring_outcome_of(KS_E_THROTTLED), KS_KEYRING_OUTCOME_DEPENDENCY);
    cr_expect_eq(ks_keyring_outcome_of(KS_E_KMS), KS_KEYRING_OUTCOME_DEPENDENCY);
    cr_expect_eq(ks_keyring_outcome_of(KS_E_UNABLE_TO_DECRYPT),
                 KS_KEYRING_OUTCOME_UNABLE_TO_DECRYPT);
    cr_expect_eq(ks_keyring_outcome_of(KS_E_INVALID), KS_KEYRING_OUTCOME_INVALID);
    F.kms.down = 0;
    cr_expect_eq(unwrap(edks, 2, &ec, 0x0478, NULL, &u, &err), KS_OK, "%s", err.message);
    ks_keyring_unwrap_result_free(&u);
    ks_keyring_wrap_result_free(&w);
    ks_keyring_ec_free(&ec);
}

Test(keyring_store, a_session_reads_each_version_once, .init = setup, .fini = teardown)
{
    enum { VERSIONS = 5, PER_VERSION = 20 };
    struct ks_keyring_wrap_result w[VERSIONS * PER_VERSION];
    struct ks_keyring_session *s = ks_keyring_session_new(&F.src);
    unsigned long long before;
    struct ks_error err;
    struct ks_keyring_ec ec;
    size_t i, v;

    ks_keyring_ec_init(&ec);
    for (v = 0; v < VERSIONS; v++) {
        char *nv = NULL;
        for (i = 0; i < PER_VERSION; i++)
            w[v * PER_VERSION + i] = wrap_ok(&ec, 0x0478);
        cr_assert_eq(ks_keystore_version_key(F.ks, &F.rel, F.id, &nv, &err), KS_OK);
        free(nv);
    }
    before = ks_keystore_storage_reads(F.ks);
    for (i = 0; i < VERSIONS * PER_VERSION; i++) {
        struct ks_keyring_edk e = edk_of(&w[i], F.id);
        struct ks_keyring_unwrap_request req = {&e, 1, &ec, ks_keyring_suite_default(), NULL, 0};
        struct ks_keyring_unwrap_result u;
        cr_assert_eq(ks_keyring_unwrap(s, &req, &u, &err), KS_OK, "%s", err.message);
        cr_expect_eq(memcmp(u.data_key, w[i].data_key, 32), 0);
        ks_keyring_unwrap_result_free(&u);
        ks_keyring_wrap_result_free(&w[i]);
    }
    cr_expect_eq(ks_keyring_session_reads(s), VERSIONS);
    cr_expect_eq(ks_keystore_storage_reads(F.ks) - before, VERSIONS);
    ks_keyring_session_free(s);
    ks_keyring_ec_free(&ec);
}

Test(keyring_store, a_nul_value_is_bound_whole, .init = setup, .fini = teardown)
{
    struct ks_keyring_ec ec, cut;
    struct ks_keyring_wrap_result w;
    struct ks_keyring_unwrap_result u;
    struct ks_keyring_edk e;
    struct ks_error err;

    ks_keyring_ec_init(&ec);
    ks_keyring_ec_init(&cut);
    cr_assert_eq(ks_keyring_ec_set(&ec, "k", 1, "a\0b", 3), 0);
    cr_assert_eq(ks_keyring_ec_set(&cut, "k", 1, "a", 1), 0); /* what a C string would keep */
    w = wrap_ok(&ec, 0x0478);
    e = edk_of(&w, F.id);
    cr_expect_eq(unwrap(&e, 1, &cut, 0x0478, NULL, &u, &err), KS_E_UNABLE_TO_DECRYPT);
    cr_expect(strstr(err.message, "authentication failed") != NULL, "%s", err.message);
    cr_assert_eq(unwrap(&e, 1, &ec, 0x0478, NULL, &u, &err), KS_OK, "%s", err.message);
    cr_expect_eq(memcmp(u.data_key, w.data_key, 32), 0);
    ks_keyring_unwrap_result_free(&u);
    ks_keyring_wrap_result_free(&w);
    ks_keyring_ec_free(&ec);
    ks_keyring_ec_free(&cut);
}

Test(keyring_store, provider_info_is_raw_bytes, .init = setup, .fini = teardown)
{
    struct ks_keyring_wrap_result w = wrap_ok(&EMPTY, 0x0478);
    unsigned char info[128];
    size_t id_len = strlen(F.id);
    struct ks_keyring_unwrap_result u;
    struct ks_keyring_edk e = edk_of(&w, F.id);
    struct ks_error err;

    /* Not NUL-terminated: the bytes after the id must not count. */
    memcpy(info, F.id, id_len);
    memcpy(info + id_len, "XYZ", 3);
    e.provider_info = info;
    e.provider_info_len = id_len;
    cr_assert_eq(unwrap(&e, 1, &EMPTY, 0x0478, NULL, &u, &err), KS_OK, "%s", err.message);
    ks_keyring_unwrap_result_free(&u);
    /* A NUL inside is refused for this EDK (ids are C strings). */
    info[2] = '\0';
    cr_expect_eq(unwrap(&e, 1, &EMPTY, 0x0478, NULL, &u, &err), KS_E_UNABLE_TO_DECRYPT);
    cr_expect(strstr(err.message, "not a valid branch key id"), "%s", err.message);
    ks_keyring_wrap_result_free(&w);
}
