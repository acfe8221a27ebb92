/*
 * keyring.c - fuzz target: the byte layouts of the hierarchical keyring (keyring/edk.h,
 * keyring/context.h; docs/reference/hierarchical-keyring.md sections 3, 4 and 6), which the
 * keyring routes apply to client data before any key store call: splitting an EDK ciphertext,
 * the 16-byte branch key version, and the encryption context's checks, serialisation and AAD.
 *
 * Input: byte 0 picks the data key length (16, 24 or 32); then lines: a version text, then
 * key and value lines, alternately (a value may hold NUL bytes). The whole input after byte 0 is
 * also split as a ciphertext.
 */
#include "keyring/context.h"
#include "keyring/edk.h"
#include "tests/fuzz/fuzz.h"

static void split(const uint8_t *data, size_t size, size_t key_len)
{
    struct ks_keyring_edk_fields f;

    if (ks_keyring_edk_split(data, size, key_len, &f) == 0) {
        FUZZ_CHECK(size == KS_KEYRING_EDK_OVERHEAD + key_len && f.encrypted_len == key_len);
        FUZZ_CHECK(f.salt == data && f.tag + KS_KEYRING_TAG_LEN == data + size);
    } else {
        FUZZ_CHECK(size != KS_KEYRING_EDK_OVERHEAD + key_len);
    }
}

static void version(const char *text)
{
    unsigned char raw[KS_KEYRING_VERSION_LEN];
    char back[KS_KEYRING_VERSION_TEXT_LEN + 1];

    if (ks_keyring_version_encode(text, raw) == 0) {
        ks_keyring_version_decode(raw, back);
        FUZZ_CHECK(strcmp(back, text) == 0);
    }
}

/* SER(ec): a u16 count, then u16 length and bytes per key and value (section 4). */
static size_t ser_len(const struct ks_keyring_ec *ec)
{
    size_t n = ec->count ? 2 : 0;
    for (size_t i = 0; i < ec->count; i++)
        n += 4 + ec->entries[i].key_len + ec->entries[i].value_len;
    return n;
}

static void context(const uint8_t *data, size_t size, const char *version_text)
{
    unsigned char raw[KS_KEYRING_VERSION_LEN] = {0}, *ser = NULL, *aad = NULL;
    size_t ser_n = 0, aad_n = 0;
    struct ks_keyring_ec ec;
    struct ks_error err;

    ks_keyring_ec_init(&ec);
    while (size) {
        const uint8_t *key = data, *nl = memchr(data, '\n', size);
        size_t key_len = nl ? (size_t)(nl - data) : size, value_len;
        data += nl ? key_len + 1 : key_len;
        size -= nl ? key_len + 1 : key_len;
        nl = size ? memchr(data, '\n', size) : NULL;
        value_len = nl ? (size_t)(nl - data) : size;
        if (ks_keyring_ec_set(&ec, (const char *)key, key_len, (const char *)data, value_len))
            abort();
        data += nl ? value_len + 1 : value_len;
        size -= nl ? value_len + 1 : value_len;
    }
    for (size_t i = 1; i < ec.count; i++) /* sorted by key bytes, no duplicates */
        FUZZ_CHECK(memcmp(ec.entries[i - 1].key, ec.entries[i].key,
                          ec.entries[i - 1].key_len < ec.entries[i].key_len
                              ? ec.entries[i - 1].key_len
                              : ec.entries[i].key_len) <= 0);
    if (ks_keyring_check_ec(&ec, &err) == KS_OK) {
        FUZZ_CHECK(ks_keyring_ec_serialize(&ec, &ser, &ser_n) == 0 && ser_n == ser_len(&ec));
        FUZZ_CHECK(ks_keyring_aad(version_text, strlen(version_text), raw, &ec, &aad, &aad_n) == 0);
        FUZZ_CHECK(aad_n == KS_KEYRING_PROVIDER_ID_LEN + strlen(version_text) +
                                KS_KEYRING_VERSION_LEN + ser_n);
        FUZZ_CHECK(memcmp(aad + aad_n - ser_n, ser, ser_n) == 0);
    }
    free(ser);
    free(aad);
    ks_keyring_ec_free(&ec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t key_lens[] = {16, 24, 32};
    char *text;

    if (size == 0)
        return 0;
    split(data + 1, size - 1, key_lens[data[0] % 3]);
    data++;
    size--;
    text = fuzz_line(&data, &size);
    version(text);
    context(data, size, text);
    free(text);
    return 0;
}
