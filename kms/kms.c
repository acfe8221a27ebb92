/*
 * kms.c - backend-independent helpers of the KMS interface (kms.h): the result struct's
 * lifecycle and the NULL-safe destroy.
 */
#include "kms/kms.h"

#include <stddef.h>
#include <stdlib.h>

#include "common/secret.h"

void ks_kms_result_init(struct ks_kms_result *r)
{
    r->ciphertext.data = NULL;
    r->ciphertext.len = 0;
    r->plaintext = NULL;
    r->plaintext_len = 0;
    r->key_id = NULL;
    r->source_key_id = NULL;
}

/*
 * The plaintext is a data key or a branch key: it is wiped before it is freed (docs/style.md
 * "Memory"). Key ids are not secret. Leaves r initialized, so freeing twice is harmless.
 */
void ks_kms_result_free(struct ks_kms_result *r)
{
    if (!r)
        return;
    ks_bytes_free(&r->ciphertext);
    ks_secret_free(r->plaintext, r->plaintext_len);
    free(r->key_id);
    free(r->source_key_id);
    ks_kms_result_init(r);
}

void ks_kms_destroy(struct ks_kms *k)
{
    if (k && k->ops && k->ops->destroy)
        k->ops->destroy(k);
}
