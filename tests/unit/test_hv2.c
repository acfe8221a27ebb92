/*
 * test_hv2.c - keystore/hv2.h against docs/reference/hv2.md section 9: the MPL's three digest
 * vectors (ACTIVE, DECRYPT_ONLY, beacon), the worked example byte for byte, the empty context,
 * sort order by UTF-8 bytes, the u16 limits, the strict data model and the plaintext layout.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "common/ec.h"
#include "common/util.h"
#include "keystore/hv2.h"

static void digest_hex(const struct ks_ec *ec, char out[2 * KS_HV2_DIGEST_LEN + 1])
{
    unsigned char d[KS_HV2_DIGEST_LEN];
    struct ks_error err = {0};
    cr_assert_eq(ks_hv2_digest(ec, d, &err), KS_OK, "%s", err.message);
    ks_hex_encode(d, sizeof d, out);
}

static void mpl_common(struct ks_ec *ec)
{
    ks_ec_init(ec);
    ks_ec_set(ec, "kms-arn",
              "arn:aws:kms:us-west-2:370957321024:key/9d989aa2-2f9c-438c-a745-cc57d3ad0126");
    ks_ec_set(ec, "branch-key-id", "9747c15f-629e-42c0-aeaf-46f70a0952c4");
    ks_ec_set(ec, "hierarchy-version", "2");
    ks_ec_set(ec, "create-time", "2025-04-17T07:32:03.000429Z");
    ks_ec_set(ec, "tablename", "KeyStoreDdbTable");
    ks_ec_set(ec, "aws-crypto-ec:Robbie", "is a dog");
}

static size_t ser_len(const struct ks_ec *ec)
{
    unsigned char *ser = NULL;
    size_t len = 0;
    cr_assert_eq(ks_ec_serialize(ec, &ser, &len), 0);
    free(ser);
    return len;
}

#define MPL_VERSION "branch:version:dfb80b71-8e80-4d74-8ac0-0e940533219e"

Test(hv2, mpl_active_vector)
{
    struct ks_ec ec;
    mpl_common(&ec);
    ks_ec_set(&ec, "type", "branch:ACTIVE");
    ks_ec_set(&ec, "version", MPL_VERSION);
    char hex[97];
    digest_hex(&ec, hex);
    cr_assert_eq(ser_len(&ec), 349);
    cr_assert_str_eq(hex, "36cc88c7cd9299363da928f78b5c043d25f4e937597f6b0d552e7a14b9a194c3bb6ba9"
                          "7eb3f9e53f47968751baccba29");
    unsigned char *ser = NULL;
    size_t len = 0;
    cr_assert_eq(ks_ec_serialize(&ec, &ser, &len), 0);
    char start[64];
    ks_hex_encode(ser, 16, start);
    cr_assert_str_eq(start, "000800146177732d63727970746f2d65"); /* count 8, the custom key */
    free(ser);
    ks_ec_free(&ec);
}

Test(hv2, mpl_decrypt_only_vector)
{
    struct ks_ec ec;
    mpl_common(&ec);
    ks_ec_set(&ec, "type", MPL_VERSION);
    char hex[97];
    digest_hex(&ec, hex);
    cr_assert_eq(ser_len(&ec), 325);
    cr_assert_str_eq(hex, "6dba452d683736bf878fb0552f3e148dfde47c0b4cdfc34f418163bdb301fb90ddc5bd"
                          "e26a84a8847109c751af759015");
    ks_ec_free(&ec);
}

Test(hv2, mpl_beacon_vector)
{
    struct ks_ec ec;
    mpl_common(&ec);
    ks_ec_set(&ec, "type", "beacon:ACTIVE");
    char hex[97];
    digest_hex(&ec, hex);
    cr_assert_eq(ser_len(&ec), 287);
    cr_assert_str_eq(hex, "140f00fb646236df5c833c3c128c97123a827b0b919b2ec20b20d9c44fd56494b84cb3"
                          "ffb345f46246531da53b3c7826");
    ks_ec_free(&ec);
}

static const char worked_ser[] =
    "000700186177732d63727970746f2d65633a6465706172746d656e74000561646d696e000d6272616e63682d6b"
    "65792d6964002462626239626166312d303365362d343731362d613538362d366266323939393533313462000b"
    "6372656174652d74696d65001b323032332d30362d30335431393a30333a32392e3335383030305a0011686965"
    "7261726368792d76657273696f6e00013200076b6d732d61726e004b61726e3a6177733a6b6d733a75732d7765"
    "73742d323a3131313132323232333333333a6b65792f31323334616263642d313261622d333463642d35366566"
    "2d31323334353637383930616200097461626c656e616d6500084b657953746f72650004747970650033627261"
    "6e63683a76657273696f6e3a38336565633030372d353635392d343535342d626631312d363939623930663431"
    "616336";

static void worked_example(struct ks_ec *ec)
{
    ks_ec_init(ec);
    ks_ec_set(ec, "type", "branch:version:83eec007-5659-4554-bf11-699b90f41ac6");
    ks_ec_set(ec, "tablename", "KeyStore");
    ks_ec_set(ec, "kms-arn",
              "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab");
    ks_ec_set(ec, "hierarchy-version", "2");
    ks_ec_set(ec, "create-time", "2023-06-03T19:03:29.358000Z");
    ks_ec_set(ec, "branch-key-id", "bbb9baf1-03e6-4716-a586-6bf29995314b");
    ks_ec_set(ec, "aws-crypto-ec:department", "admin");
}

Test(hv2, worked_example_bytes_and_digest)
{
    struct ks_ec ec;
    worked_example(&ec);
    unsigned char *ser = NULL;
    size_t len = 0;
    cr_assert_eq(ks_ec_serialize(&ec, &ser, &len), 0);
    cr_assert_eq(len, 318);
    char *hex = malloc(2 * len + 1);
    ks_hex_encode(ser, len, hex);
    cr_assert_str_eq(hex, worked_ser);
    free(hex);
    free(ser);
    char d[97];
    digest_hex(&ec, d);
    cr_assert_str_eq(d, "d9162a98ae0fb3c5c2348a1f1cdfa3db4468ed3879922da8619f464f60636889c82a00e0"
                        "6f15e214ca67055ee3221ff7");
    struct ks_ec kms;
    ks_ec_init(&kms);
    struct ks_error err = {0};
    cr_assert_eq(ks_hv2_kms_context(&ec, &kms, &err), KS_OK);
    cr_assert_eq(kms.count, 1);
    cr_assert_str_eq(ks_ec_get(&kms, "department"), "admin");
    ks_ec_free(&kms);
    ks_ec_free(&ec);
}

Test(hv2, empty_context_is_digest_of_nothing)
{
    struct ks_ec ec;
    ks_ec_init(&ec);
    char d[97];
    digest_hex(&ec, d);
    /* SHA-384 of the empty string. */
    cr_assert_str_eq(d, "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebf"
                        "e76f65fbd51ad2f14898b95b");
    ks_ec_free(&ec);
}

Test(hv2, sort_by_unsigned_bytes_prefix_first)
{
    struct ks_ec ec;
    ks_ec_init(&ec);
    ks_ec_set(&ec, "\xc3\xa9", "1"); /* e-acute: 0xc3 sorts after every ASCII byte */
    ks_ec_set(&ec, "ab", "2");
    ks_ec_set(&ec, "a", "3");
    unsigned char *ser = NULL;
    size_t len = 0;
    cr_assert_eq(ks_ec_serialize(&ec, &ser, &len), 0);
    char hex[128];
    ks_hex_encode(ser, len, hex);
    cr_assert_str_eq(hex, "0003"
                          "00016100013300026162000132"
                          "0002c3a9000131");
    free(ser);
    ks_ec_free(&ec);
}

Test(hv2, u16_limits)
{
    struct ks_ec ec;
    ks_ec_init(&ec);
    char *big = malloc(65537);
    memset(big, 'x', 65536);
    big[65536] = '\0';
    struct ks_error err = {0};
    unsigned char d[KS_HV2_DIGEST_LEN];
    ks_ec_set(&ec, "k", big);
    cr_assert_eq(ks_hv2_digest(&ec, d, &err), KS_E_INVALID);
    cr_assert(strstr(err.message, "value") != NULL);
    ks_ec_free(&ec);
    ks_ec_init(&ec);
    ks_ec_set(&ec, big, "v");
    cr_assert_eq(ks_hv2_digest(&ec, d, &err), KS_E_INVALID);
    cr_assert(strstr(err.message, "key") != NULL);
    ks_ec_free(&ec);
    big[65535] = '\0'; /* exactly 65535 fits */
    ks_ec_init(&ec);
    ks_ec_set(&ec, "k", big);
    cr_assert_eq(ks_hv2_digest(&ec, d, &err), KS_OK);
    ks_ec_free(&ec);
    free(big);
}

Test(hv2, strict_model_refuses_unmodeled)
{
    struct ks_ec ec, kms;
    worked_example(&ec);
    ks_ec_init(&kms);
    struct ks_error err = {0};
    ks_ec_set(&ec, "extra", "x");
    cr_assert_eq(ks_hv2_kms_context(&ec, &kms, &err), KS_E_CORRUPT);
    cr_assert(strstr(err.message, "un-modeled") != NULL);
    ks_ec_remove(&ec, "extra");
    ks_ec_set(&ec, "aws-crypto-ec:", "empty-name"); /* allowed: maps to "" */
    cr_assert_eq(ks_hv2_kms_context(&ec, &kms, &err), KS_OK);
    cr_assert_str_eq(ks_ec_get(&kms, ""), "empty-name");
    cr_assert_eq(kms.count, 2);
    ks_ec_free(&kms);
    ks_ec_free(&ec);
}

Test(hv2, pack_unpack_and_failures)
{
    struct ks_ec ec;
    worked_example(&ec);
    unsigned char key[KS_HV2_KEY_LEN], plain[KS_HV2_PLAINTEXT_LEN], out[KS_HV2_KEY_LEN];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (unsigned char)(i * 7 + 1);
    struct ks_error err = {0};
    cr_assert_eq(ks_hv2_pack(&ec, key, plain, &err), KS_OK);
    char d[97];
    ks_hex_encode(plain, KS_HV2_DIGEST_LEN, d);
    cr_assert_str_eq(d, "d9162a98ae0fb3c5c2348a1f1cdfa3db4468ed3879922da8619f464f60636889c82a00e0"
                        "6f15e214ca67055ee3221ff7");
    cr_assert_eq(ks_hv2_unpack(&ec, plain, sizeof plain, out, &err), KS_OK);
    cr_assert_eq(memcmp(out, key, sizeof key), 0);
    cr_assert_eq(ks_hv2_unpack(&ec, plain + 48, 32, out, &err), KS_E_CORRUPT);
    cr_assert(strstr(err.message, "80 bytes") != NULL);
    ks_ec_set(&ec, "tablename", "OtherName");
    cr_assert_eq(ks_hv2_unpack(&ec, plain, sizeof plain, out, &err), KS_E_CORRUPT);
    cr_assert(strstr(err.message, "digest") != NULL);
    ks_ec_free(&ec);
}
