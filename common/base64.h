/*
 * base64.h - standard alphabet (RFC 4648 section 4) with padding, strict on decode: no
 * whitespace, no missing or extra padding, no non-zero trailing bits. Thread-safe.
 */
#ifndef KS_COMMON_BASE64_H
#define KS_COMMON_BASE64_H

#include <stddef.h>

/* Returns a malloc'd NUL-terminated string, or NULL on OOM. */
char *ks_base64_encode(const void *data, size_t len);

/*
 * Decodes text (len chars) into a malloc'd buffer (*out, *out_len); returns 0, or -1 when the
 * text is not canonical base64 or on OOM (nothing allocated then; a partly decoded buffer is
 * wiped before it is freed, so the text may be a secret).
 */
int ks_base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len);

#endif
