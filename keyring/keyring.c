/*
 * keyring.c - OnEncrypt and OnDecrypt of the hierarchical keyring over the keystore
 * (docs/reference/hierarchical-keyring.md sections 5 and 6), and the AES-256-GCM wrap and
 * unwrap under the derived key (sections 2 and 3).
 */
#include "keyring/keyring.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/secret.h"
#include "common/utf8.h"
#include "common/util.h"

static const char *const outcome_names[KS_KEYRING_OUTCOME_COUNT] = {
    "ok", "invalid", "unable_to_decrypt", "dependency_error"};

const char *ks_keyring_outcome_name(enum ks_keyring_outcome outcome)
{
    return (unsigned)outcome < KS_KEYRING_OUTCOME_COUNT ? outcome_names[outcome] : "unknown";
}

/* 1 when a failure is the dependency's (KMS, storage, ourselves), not the caller's data. */
static int is_dependency_failure(ks_status st)
{
    int http = ks_status_http_code(st);
    return http >= 500 || http == 429;
}

enum ks_keyring_outcome ks_keyring_outcome_of(ks_status st)
{
    if (st == KS_OK)
        return KS_KEYRING_OUTCOME_OK;
    if (st == KS_E_UNABLE_TO_DECRYPT)
        return KS_KEYRING_OUTCOME_UNABLE_TO_DECRYPT;
    return is_dependency_failure(st) ? KS_KEYRING_OUTCOME_DEPENDENCY : KS_KEYRING_OUTCOME_INVALID;
}

/* --- AES-256-GCM under the derived key (section 3) ------------------------------------------ */

/* Encrypts (tag written) or decrypts (tag checked) len bytes. Returns 0, or -1 (on decrypt: the
 * tag did not verify; out is wiped). */
static int gcm(int encrypt, const unsigned char key[KS_KEYRING_DERIVED_KEY_LEN],
               const unsigned char iv[KS_KEYRING_IV_LEN], const unsigned char *aad, size_t aad_len,
               const unsigned char *in, size_t len, unsigned char *out,
               unsigned char tag[KS_KEYRING_TAG_LEN])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, ok;

    ok = ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, KS_KEYRING_IV_LEN, NULL) == 1 &&
         EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, encrypt) == 1 &&
         EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1 &&
         EVP_CipherUpdate(ctx, out, &n, in, (int)len) == 1 && (size_t)n == len;
    if (ok && !encrypt)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, KS_KEYRING_TAG_LEN, tag) == 1;
    if (ok)
        ok = EVP_CipherFinal_ex(ctx, out + len, &n) == 1 && n == 0;
    if (ok && encrypt)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, KS_KEYRING_TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
        ks_secret_wipe(out, len);
    return ok ? 0 : -1;
}

ks_status ks_keyring_wrap_raw(const struct ks_keyring_wrap_input *in, unsigned char *ciphertext,
                              struct ks_error *err)
{
    unsigned char key[KS_KEYRING_DERIVED_KEY_LEN], *aad = NULL, *o = ciphertext;
    unsigned char version[KS_KEYRING_VERSION_LEN];
    size_t aad_len = 0;
    ks_status st;

    /* The key comes from the key store, which only hands out 32-byte keys: anything else is
     * our bug, never the caller's (docs/reference/hierarchical-keyring.md section 2). */
    if (in->branch_key_len != KS_KEYRING_BRANCH_KEY_LEN)
        return ks_error_set(err, KS_E_INTERNAL, "branch key is not 32 bytes");
    if (ks_keyring_version_encode(in->version, version) != 0)
        return ks_error_set(err, KS_E_INVALID, "branch key version is not a lowercase UUID");
    if ((st = ks_keyring_check_ec(in->ec, err)) != KS_OK)
        return st;
    if (ks_keyring_aad(in->branch_key_id, in->branch_key_id_len, version, in->ec, &aad, &aad_len) !=
        0)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    memcpy(o, in->salt, KS_KEYRING_SALT_LEN);
    o += KS_KEYRING_SALT_LEN;
    memcpy(o, in->iv, KS_KEYRING_IV_LEN);
    o += KS_KEYRING_IV_LEN;
    memcpy(o, version, KS_KEYRING_VERSION_LEN);
    o += KS_KEYRING_VERSION_LEN;
    st = KS_OK;
    if (ks_keyring_kdf(in->branch_key, in->branch_key_len, in->salt, key) != 0 ||
        gcm(1, key, in->iv, aad, aad_len, in->data_key, in->data_key_len, o,
            o + in->data_key_len) != 0) {
        ks_secret_wipe(ciphertext, KS_KEYRING_EDK_OVERHEAD + in->data_key_len);
        st = ks_error_set(err, KS_E_INTERNAL, "AES-GCM wrap failed");
    }
    ks_secret_wipe(key, sizeof key);
    free(aad);
    return st;
}

ks_status ks_keyring_unwrap_raw(const unsigned char *branch_key, size_t branch_key_len,
                                const char *branch_key_id, size_t branch_key_id_len,
                                const struct ks_keyring_ec *ec, const unsigned char *ciphertext,
                                size_t ciphertext_len, size_t data_key_len, unsigned char *data_key,
                                struct ks_error *err)
{
    unsigned char key[KS_KEYRING_DERIVED_KEY_LEN], tag[KS_KEYRING_TAG_LEN], *aad = NULL;
    struct ks_keyring_edk_fields f;
    size_t aad_len = 0;
    ks_status st;

    if (ks_keyring_edk_split(ciphertext, ciphertext_len, data_key_len, &f) != 0)
        return ks_error_set(err, KS_E_UNABLE_TO_DECRYPT, "wrong length (%zu bytes; %zu expected)",
                            ciphertext_len, KS_KEYRING_EDK_OVERHEAD + data_key_len);
    if (branch_key_len != KS_KEYRING_BRANCH_KEY_LEN)
        return ks_error_set(err, KS_E_INTERNAL, "branch key is not 32 bytes");
    if ((st = ks_keyring_check_ec(ec, err)) != KS_OK)
        return st;
    /* The AAD takes the version bytes from the ciphertext (as AWS's JS keyring does); they
     * name the version that was read, so this equals the MPL's choice (section 3). */
    if (ks_keyring_aad(branch_key_id, branch_key_id_len, f.version, ec, &aad, &aad_len) != 0)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    memcpy(tag, f.tag, sizeof tag);
    if (ks_keyring_kdf(branch_key, branch_key_len, f.salt, key) != 0)
        st = ks_error_set(err, KS_E_INTERNAL, "key derivation failed");
    else if (gcm(0, key, f.iv, aad, aad_len, f.encrypted, data_key_len, data_key, tag) != 0)
        st = ks_error_set(err, KS_E_UNABLE_TO_DECRYPT, "authentication failed");
    ks_secret_wipe(key, sizeof key);
    free(aad);
    return st;
}

/* --- OnEncrypt (section 5) ------------------------------------------------------------------ */

void ks_keyring_wrap_result_free(struct ks_keyring_wrap_result *r)
{
    if (!r)
        return;
    free(r->version);
    ks_secret_free(r->data_key, r->data_key_len);
    free(r->ciphertext);
    memset(r, 0, sizeof *r);
}

/* The data key to wrap: a copy of the caller's, or N fresh bytes from the CSPRNG. */
static ks_status take_data_key(const struct ks_keyring_suite *suite, const unsigned char *given,
                               size_t given_len, struct ks_keyring_wrap_result *out,
                               struct ks_error *err)
{
    if (given && given_len != suite->data_key_len)
        return ks_error_set(err, KS_E_INVALID, "dataKey: %zu bytes; algorithm suite %s needs %zu",
                            given_len, suite->id_text, suite->data_key_len);
    out->data_key_len = suite->data_key_len;
    out->data_key = given ? ks_secret_dup(given, given_len) : ks_secret_alloc(suite->data_key_len);
    if (!out->data_key)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    out->generated = !given;
    if (!given && RAND_priv_bytes(out->data_key, (int)suite->data_key_len) != 1)
        return ks_error_set(err, KS_E_INTERNAL, "random source failed");
    return KS_OK;
}

ks_status ks_keyring_wrap(const struct ks_keyring_source *src, const char *branch_key_id,
                          const struct ks_keyring_ec *ec, const struct ks_keyring_suite *suite,
                          const unsigned char *data_key, size_t data_key_len,
                          struct ks_keyring_wrap_result *out, struct ks_error *err)
{
    struct ks_keyring_wrap_result r = {0};
    unsigned char salt_iv[KS_KEYRING_SALT_LEN + KS_KEYRING_IV_LEN];
    struct ks_keyring_wrap_input in;
    const struct ks_materials *m;
    struct ks_key_ref *ref = NULL;
    ks_status st;

    if ((st = ks_keyring_check_ec(ec, err)) != KS_OK ||
        (st = take_data_key(suite, data_key, data_key_len, &r, err)) != KS_OK)
        goto done;
    if ((st = ks_keystore_get_active(src->keystore, src->relationship, src->reader, branch_key_id,
                                     &ref, err)) != KS_OK)
        goto done;
    m = ks_key_ref_materials(ref);
    r.version = strdup(m->version ? m->version : "");
    r.ciphertext_len = KS_KEYRING_EDK_OVERHEAD + r.data_key_len;
    r.ciphertext = malloc(r.ciphertext_len);
    if (!r.version || !r.ciphertext) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        goto done;
    }
    /* Fresh salt and IV per wrap: a (salt, IV) pair must never repeat under one branch key. */
    if (RAND_bytes(salt_iv, sizeof salt_iv) != 1) {
        st = ks_error_set(err, KS_E_INTERNAL, "random source failed");
        goto done;
    }
    in = (struct ks_keyring_wrap_input){
        m->key,     m->key_len,     branch_key_id, strlen(branch_key_id),        m->version, ec,
        r.data_key, r.data_key_len, salt_iv,       salt_iv + KS_KEYRING_SALT_LEN};
    st = ks_keyring_wrap_raw(&in, r.ciphertext, err);
done:
    if (ref)
        ks_key_ref_release(ref);
    if (st == KS_OK)
        *out = r;
    else
        ks_keyring_wrap_result_free(&r);
    return st;
}

/* --- the session: each (id, version) read once per request or batch ---------------------- */

struct session_entry {
    char *branch_key_id;
    unsigned char version[KS_KEYRING_VERSION_LEN];
    struct ks_key_ref *ref; /* NULL when the read failed */
    struct ks_error err;    /* the failure, remembered */
};

struct ks_keyring_session {
    struct ks_keyring_source src;
    struct session_entry *entries;
    size_t count, cap;
};

struct ks_keyring_session *ks_keyring_session_new(const struct ks_keyring_source *src)
{
    struct ks_keyring_session *s = calloc(1, sizeof *s);
    if (s)
        s->src = *src;
    return s;
}

void ks_keyring_session_free(struct ks_keyring_session *s)
{
    size_t i;
    if (!s)
        return;
    for (i = 0; i < s->count; i++) {
        free(s->entries[i].branch_key_id);
        if (s->entries[i].ref)
            ks_key_ref_release(s->entries[i].ref);
    }
    free(s->entries);
    free(s);
}

size_t ks_keyring_session_reads(const struct ks_keyring_session *s)
{
    return s->count;
}

/* The materials of (id, version), read on first use. A failed read answers its error again. */
static ks_status session_key(struct ks_keyring_session *s, const char *id,
                             const unsigned char version[KS_KEYRING_VERSION_LEN],
                             const struct ks_materials **m, struct ks_error *err)
{
    char text[KS_KEYRING_VERSION_TEXT_LEN + 1];
    struct session_entry *e;
    size_t i;

    for (i = 0; i < s->count; i++) {
        e = &s->entries[i];
        if (memcmp(e->version, version, KS_KEYRING_VERSION_LEN) == 0 &&
            strcmp(e->branch_key_id, id) == 0)
            goto found;
    }
    if (s->count == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        struct session_entry *n = realloc(s->entries, cap * sizeof *n);
        if (!n)
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
        s->entries = n;
        s->cap = cap;
    }
    e = &s->entries[s->count];
    memset(e, 0, sizeof *e);
    e->branch_key_id = strdup(id);
    if (!e->branch_key_id)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    memcpy(e->version, version, KS_KEYRING_VERSION_LEN);
    s->count++;
    /* The version named inside the EDK, never "the current ACTIVE" (section 6). */
    ks_keyring_version_decode(version, text);
    ks_error_clear(&e->err);
    if (ks_keystore_get_version(s->src.keystore, s->src.relationship, s->src.reader, id, text,
                                &e->ref, &e->err) != KS_OK)
        e->ref = NULL;
found:
    if (!e->ref) {
        if (err)
            *err = e->err;
        return e->err.code != KS_OK ? e->err.code : KS_E_INTERNAL;
    }
    *m = ks_key_ref_materials(e->ref);
    return KS_OK;
}

/* --- OnDecrypt (section 6) ------------------------------------------------------------------ */

void ks_keyring_unwrap_result_free(struct ks_keyring_unwrap_result *r)
{
    if (!r)
        return;
    free(r->branch_key_id);
    ks_secret_free(r->data_key, r->data_key_len);
    memset(r, 0, sizeof *r);
}

/* Why each EDK failed, for the UnableToDecryptException message (never key bytes). */
struct failures {
    char text[KS_ERROR_MESSAGE_MAX];
    size_t len;
    struct ks_error dependency; /* the first dependency failure, code KS_OK when none */
};

static void failures_add(struct failures *f, size_t index, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void failures_add(struct failures *f, size_t index, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (f->len >= sizeof f->text - 1)
        return;
    n = snprintf(f->text + f->len, sizeof f->text - f->len, "%sEDK %zu: ", f->len ? "; " : "",
                 index);
    if (n > 0)
        f->len += (size_t)n < sizeof f->text - f->len ? (size_t)n : sizeof f->text - f->len - 1;
    va_start(ap, fmt);
    n = vsnprintf(f->text + f->len, sizeof f->text - f->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        f->len += (size_t)n < sizeof f->text - f->len ? (size_t)n : sizeof f->text - f->len - 1;
}

/* One kept EDK: checks before any read, then the version inside it, then AES-GCM. */
static ks_status try_edk(struct ks_keyring_session *s, const struct ks_keyring_unwrap_request *req,
                         size_t index, struct ks_keyring_unwrap_result *out, struct failures *f)
{
    const struct ks_keyring_edk *edk = &req->edks[index];
    size_t n = req->suite->data_key_len;
    struct ks_keyring_edk_fields fields;
    const struct ks_materials *m = NULL;
    struct ks_error e;
    ks_status st;
    char *id;

    ks_error_clear(&e);
    if (ks_keyring_edk_split(edk->ciphertext, edk->ciphertext_len, n, &fields) != 0) {
        failures_add(f, index, "wrong length (%zu bytes; suite %s needs %zu)", edk->ciphertext_len,
                     req->suite->id_text, KS_KEYRING_EDK_OVERHEAD + n);
        return KS_E_UNABLE_TO_DECRYPT;
    }
    if (!ks_utf8_valid((const char *)edk->provider_info, edk->provider_info_len)) {
        failures_add(f, index, "provider info is not a valid branch key id");
        return KS_E_UNABLE_TO_DECRYPT;
    }
    /* The id as a C string: provider info is raw bytes, not NUL-terminated. */
    id = ks_bytes_to_string(edk->provider_info, edk->provider_info_len);
    if (!id) {
        ks_error_set(&f->dependency, KS_E_INTERNAL, "out of memory");
        return KS_E_INTERNAL;
    }
    if (ks_keystore_check_branch_key_id(id, edk->provider_info_len, &e) != KS_OK) {
        free(id);
        failures_add(f, index, "provider info is not a valid branch key id");
        return KS_E_UNABLE_TO_DECRYPT;
    }
    st = session_key(s, id, fields.version, &m, &e);
    if (st == KS_OK) {
        out->data_key = ks_secret_alloc(n);
        st = out->data_key
                 ? ks_keyring_unwrap_raw(m->key, m->key_len, id, strlen(id), req->ec,
                                         edk->ciphertext, edk->ciphertext_len, n, out->data_key, &e)
                 : ks_error_set(&e, KS_E_INTERNAL, "out of memory");
    }
    if (st == KS_OK) {
        out->branch_key_id = id;
        out->data_key_len = n;
        out->edk_index = index;
        ks_keyring_version_decode(fields.version, out->version);
        return KS_OK;
    }
    ks_secret_free(out->data_key, n);
    out->data_key = NULL;
    free(id);
    if (is_dependency_failure(st)) {
        if (f->dependency.code == KS_OK)
            f->dependency = e;
        failures_add(f, index, "%s", e.message);
    } else if (st == KS_E_NOT_FOUND) {
        char text[KS_KEYRING_VERSION_TEXT_LEN + 1];
        ks_keyring_version_decode(fields.version, text);
        failures_add(f, index, "unknown version %s", text);
    } else {
        failures_add(f, index, "%s", e.message);
    }
    return st;
}

/* 1 when the EDK is one this call should try (provider id, then the optional id filter). */
static int edk_kept(const struct ks_keyring_unwrap_request *req, const struct ks_keyring_edk *edk)
{
    if (edk->provider_id_len != KS_KEYRING_PROVIDER_ID_LEN ||
        memcmp(edk->provider_id, KS_KEYRING_PROVIDER_ID, KS_KEYRING_PROVIDER_ID_LEN) != 0)
        return 0;
    return !req->branch_key_id ||
           (edk->provider_info_len == req->branch_key_id_len &&
            memcmp(edk->provider_info, req->branch_key_id, req->branch_key_id_len) == 0);
}

ks_status ks_keyring_unwrap(struct ks_keyring_session *s,
                            const struct ks_keyring_unwrap_request *req,
                            struct ks_keyring_unwrap_result *out, struct ks_error *err)
{
    struct ks_keyring_unwrap_result r;
    struct failures f;
    size_t i, tried = 0;
    ks_status st;

    memset(&r, 0, sizeof r);
    memset(&f, 0, sizeof f);
    ks_error_clear(&f.dependency);
    if ((st = ks_keyring_check_ec(req->ec, err)) != KS_OK)
        return st;
    for (i = 0; i < req->n_edks; i++) {
        if (!edk_kept(req, &req->edks[i]))
            continue; /* other providers' EDKs are opaque: skipped, never refused */
        tried++;
        if (try_edk(s, req, i, &r, &f) == KS_OK) {
            *out = r;
            return KS_OK;
        }
    }
    if (tried == 0)
        return ks_error_set(err, KS_E_UNABLE_TO_DECRYPT,
                            "no encrypted data key of provider aws-kms-hierarchy%s",
                            req->branch_key_id ? " for this branchKeyIdentifier" : "");
    /* A dependency that failed means the data may well decrypt later: say so, not 400. */
    if (f.dependency.code != KS_OK) {
        if (err)
            *err = f.dependency;
        return f.dependency.code;
    }
    return ks_error_set(err, KS_E_UNABLE_TO_DECRYPT, "no encrypted data key could be decrypted: %s",
                        f.text);
}
