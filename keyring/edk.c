/* edk.c - EDK layout, version bytes, AAD (docs/reference/hierarchical-keyring.md sections 1-4). */
#include "keyring/edk.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"

int ks_keyring_edk_split(const unsigned char *ciphertext, size_t len, size_t data_key_len,
                         struct ks_keyring_edk_fields *out)
{
    if (len != KS_KEYRING_EDK_OVERHEAD + data_key_len)
        return -1;
    out->salt = ciphertext;
    out->iv = out->salt + KS_KEYRING_SALT_LEN;
    out->version = out->iv + KS_KEYRING_IV_LEN;
    out->encrypted = out->version + KS_KEYRING_VERSION_LEN;
    out->encrypted_len = data_key_len;
    out->tag = out->encrypted + data_key_len;
    return 0;
}

int ks_keyring_version_encode(const char *version, unsigned char out[KS_KEYRING_VERSION_LEN])
{
    char hex[2 * KS_KEYRING_VERSION_LEN + 1];
    size_t i, o = 0;

    if (!version || !ks_uuid_is_valid(version))
        return -1;
    /* The hex digits of the text with the hyphens removed, in order (RFC 4122 byte order). */
    for (i = 0; i < KS_KEYRING_VERSION_TEXT_LEN; i++)
        if (version[i] != '-')
            hex[o++] = version[i];
    hex[o] = '\0';
    return ks_hex_decode(hex, out, KS_KEYRING_VERSION_LEN);
}

void ks_keyring_version_decode(const unsigned char in[KS_KEYRING_VERSION_LEN],
                               char out[KS_KEYRING_VERSION_TEXT_LEN + 1])
{
    /* Groups of 4-2-2-2-6 bytes. */
    static const size_t group_end[] = {4, 6, 8, 10, 16};
    size_t g, b = 0, o = 0;

    for (g = 0; g < 5; g++) {
        if (g > 0)
            out[o++] = '-';
        for (; b < group_end[g]; b++) {
            ks_hex_encode(in + b, 1, out + o);
            o += 2;
        }
    }
    out[o] = '\0';
}

ks_status ks_keyring_check_ec(const struct ks_ec *ec, struct ks_error *err)
{
    size_t i;
    if (ec->count > 0xffff)
        return ks_error_set(err, KS_E_INVALID,
                            "encryptionContext: %zu pairs; at most 65535 can be serialized",
                            ec->count);
    for (i = 0; i < ec->count; i++) {
        if (strlen(ec->entries[i].key) > 0xffff)
            return ks_error_set(err, KS_E_INVALID,
                                "encryptionContext: a key of %zu bytes; at most 65535",
                                strlen(ec->entries[i].key));
        if (strlen(ec->entries[i].value) > 0xffff)
            return ks_error_set(err, KS_E_INVALID,
                                "encryptionContext: a value of %zu bytes; at most 65535",
                                strlen(ec->entries[i].value));
    }
    return KS_OK;
}

int ks_keyring_aad(const char *branch_key_id, size_t id_len,
                   const unsigned char version[KS_KEYRING_VERSION_LEN], const struct ks_ec *ec,
                   unsigned char **out, size_t *len)
{
    unsigned char *ser, *aad;
    size_t ser_len, total, o = 0;

    /* common/ec.c sorts by the keys' UTF-8 bytes and writes nothing for an empty context,
     * which is exactly SER(EC) of section 4. */
    if (ks_ec_serialize(ec, &ser, &ser_len) != 0)
        return -1;
    total = KS_KEYRING_PROVIDER_ID_LEN + id_len + KS_KEYRING_VERSION_LEN + ser_len;
    aad = malloc(total);
    if (!aad) {
        free(ser);
        return -1;
    }
    memcpy(aad, KS_KEYRING_PROVIDER_ID, KS_KEYRING_PROVIDER_ID_LEN);
    o += KS_KEYRING_PROVIDER_ID_LEN;
    memcpy(aad + o, branch_key_id, id_len);
    o += id_len;
    memcpy(aad + o, version, KS_KEYRING_VERSION_LEN);
    o += KS_KEYRING_VERSION_LEN;
    memcpy(aad + o, ser, ser_len);
    free(ser);
    *out = aad;
    *len = total;
    return 0;
}
