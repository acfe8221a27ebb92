#include "common/base64.h"

#include <stdlib.h>

#include <openssl/crypto.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *ks_base64_encode(const void *data, size_t len)
{
    const unsigned char *in = data;
    size_t out_len = 4 * ((len + 2) / 3);
    char *out = malloc(out_len + 1);
    size_t i, o = 0;

    if (!out)
        return NULL;
    for (i = 0; i + 2 < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int value_of(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int ks_base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len)
{
    size_t pad = 0, i, o = 0, n;
    unsigned char *buf;

    if (len % 4 != 0)
        return -1;
    if (len >= 1 && text[len - 1] == '=')
        pad++;
    if (len >= 2 && text[len - 2] == '=')
        pad++;
    n = len / 4 * 3 - pad;
    buf = malloc(n ? n : 1);
    if (!buf)
        return -1;
    for (i = 0; i < len; i += 4) {
        int v[4], k;
        int last = i + 4 == len;
        for (k = 0; k < 4; k++) {
            if (last && text[i + k] == '=' && k >= 4 - (int)pad)
                v[k] = 0;
            else if ((v[k] = value_of(text[i + k])) < 0)
                goto bad;
        }
        unsigned w =
            (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        if (last && pad == 2 && (w & 0xffff))
            goto bad; /* non-zero trailing bits: not canonical */
        if (last && pad == 1 && (w & 0xff))
            goto bad;
        buf[o++] = (unsigned char)(w >> 16);
        if (o < n)
            buf[o++] = (unsigned char)(w >> 8);
        if (o < n)
            buf[o++] = (unsigned char)w;
    }
    *out = buf;
    *out_len = n;
    return 0;
bad:
    /* The partly decoded bytes may be key material (KMS plaintexts). */
    OPENSSL_cleanse(buf, n ? n : 1);
    free(buf);
    return -1;
}
