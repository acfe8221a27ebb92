/*
 * mutation_kms.c - the KMS side of mutations (docs/reference/mutations.md sections 3, 4 and 13):
 * the relationship rules of a strategy, the reEncrypt and decryptEncrypt strategies, the system
 * key (trustStorage or a KMS-signed commitment and index), and a page's KMS calls run
 * concurrently under two caps (per mutation and per relationship).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/base64.h"
#include "common/secret.h"
#include "keystore/mutation_internal.h"

#define KEY_LEN 32
#define ENC_MAX 6144
#define TRUST_STORAGE "trustStorage"
#define SIGN_PLAINTEXT "sign"
/* KMS calls in flight on one relationship across every request of this process (section 13):
 * two large mutations together stay under KMS's per-account request rates. */
#define REL_KMS_CAP 64

/* --- the per-relationship cap ------------------------------------------------------------- */

/*
 * One gate per KMS backend, keyed by the backend (rel->kms), which lives as long as the process
 * and is shared by every configuration snapshot: each snapshot has its own copy of a
 * relationship, so the copy's address would give each reload a fresh cap.
 *
 * The table is process-wide mutable state, an exception to docs/style.md "No mutable globals"
 * on purpose: the cap bounds what every mutation of every request sends to one KMS at once, so it
 * must be shared by all of them, and it holds only counters (no configuration).
 */
struct gate {
    const struct ks_kms *kms;
    unsigned in_flight;
};

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static struct gate gates[64];
static size_t n_gates;

/* The gate of rel's KMS backend, added on first use; NULL when the table is full (no cap). */
static struct gate *gate_of(const struct ks_kms_relationship *rel)
{
    size_t i;
    for (i = 0; i < n_gates; i++)
        if (gates[i].kms == rel->kms)
            return &gates[i];
    if (n_gates == sizeof gates / sizeof gates[0])
        return NULL;
    gates[n_gates].kms = rel->kms;
    gates[n_gates].in_flight = 0;
    return &gates[n_gates++];
}

static void gate_enter(const struct ks_kms_relationship *rel)
{
    struct gate *g;
    pthread_mutex_lock(&gate_lock);
    g = gate_of(rel);
    while (g && g->in_flight >= REL_KMS_CAP)
        pthread_cond_wait(&gate_cond, &gate_lock);
    if (g)
        g->in_flight++;
    pthread_mutex_unlock(&gate_lock);
}

static void gate_leave(const struct ks_kms_relationship *rel)
{
    struct gate *g;
    pthread_mutex_lock(&gate_lock);
    g = gate_of(rel);
    if (g && g->in_flight > 0)
        g->in_flight--;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

void ks_mut_gate_enter(const struct ks_kms_relationship *rel)
{
    gate_enter(rel);
}

void ks_mut_gate_leave(const struct ks_kms_relationship *rel)
{
    gate_leave(rel);
}

/* --- relationship rules (section 4; issue 10) --------------------------------------------- */

/*
 * May rel use arn? A strict kms_key_arn / kms_mr_key_arn relationship only its own ARN; a
 * discovery relationship any ARN named by the item or the request. mr_discovery is read-only
 * in a mutation (it cannot encrypt under a named key).
 */
static int rel_may_use(const struct ks_kms_relationship *rel, const char *arn)
{
    switch (rel->kind) {
    case KS_KMS_KEY_ARN:
    case KS_KMS_MR_KEY_ARN:
        return strcmp(rel->arn, arn) == 0;
    case KS_KMS_DISCOVERY:
        return 1;
    case KS_KMS_MR_DISCOVERY:
        return 0;
    }
    return 0;
}

static ks_status refuse(const struct ks_kms_relationship *rel, const char *role, const char *arn,
                        struct ks_error *err)
{
    return ks_error_set(err, KS_E_UNSUPPORTED,
                        "strategy: KMS relationship '%s' cannot %s under %s (a %s relationship "
                        "must be discovery or name that key)",
                        rel->name, role, arn, role);
}

ks_status ks_mut_check_strategy(const struct ks_mutation_strategy *s, const char *original_arn,
                                const char *terminal_arn, struct ks_error *err)
{
    if (s->kind == KS_STRATEGY_REENCRYPT) {
        if (!rel_may_use(s->reencrypt, original_arn))
            return refuse(s->reencrypt, "reEncrypt", original_arn, err);
        if (!rel_may_use(s->reencrypt, terminal_arn))
            return refuse(s->reencrypt, "reEncrypt", terminal_arn, err);
        return KS_OK;
    }
    if (!rel_may_use(s->decrypt, original_arn))
        return refuse(s->decrypt, "decrypt", original_arn, err);
    if (!rel_may_use(s->encrypt, terminal_arn))
        return refuse(s->encrypt, "encrypt", terminal_arn, err);
    return KS_OK;
}

/* --- KMS calls ---------------------------------------------------------------------------- */

/*
 * A KMS refusal on one side becomes MutationFromException / MutationToException naming the KMS
 * error code (err->message is "KMS <code>", aws/ and kms/ keep AWS's text in detail) and the
 * ARN (issue 10). Throttling and unreachable KMS keep their own status (429 / 503).
 */
ks_status ks_mut_side_error(ks_status st, int terminal_side, const char *op, const char *arn,
                            struct ks_error *err)
{
    char kms_msg[KS_ERROR_MESSAGE_MAX];
    if (st != KS_E_KMS)
        return st;
    memcpy(kms_msg, err->message, sizeof kms_msg);
    kms_msg[sizeof kms_msg - 1] = '\0';
    return ks_error_set(err, terminal_side ? KS_E_MUTATION_TO : KS_E_MUTATION_FROM,
                        "%s refused on the %s side (%s): %s", op,
                        terminal_side ? "terminal" : "original", arn, kms_msg);
}

static struct ks_kms_call call_of(const struct ks_kms_relationship *rel)
{
    struct ks_kms_call c = {rel->grant_tokens, rel->n_grant_tokens};
    return c;
}

static ks_status do_decrypt(const struct ks_kms_relationship *rel, const char *arn,
                            const struct ks_bytes *enc, const struct ks_ec *ec,
                            struct ks_kms_result *r, struct ks_error *err)
{
    struct ks_kms_call call = call_of(rel);
    ks_status st;
    gate_enter(rel);
    st = rel->kms->ops->decrypt(rel->kms, &call, arn, enc->data, enc->len, ec, r, err);
    gate_leave(rel);
    st = ks_mut_counted(rel, KS_KMS_OP_DECRYPT, st);
    if (st == KS_OK && (!r->key_id || strcmp(r->key_id, arn) != 0))
        st = ks_error_set(err, KS_E_KMS, "Invalid response from KMS Decrypt: Invalid Key Id");
    if (st == KS_OK && (!r->plaintext || r->plaintext_len != KEY_LEN))
        st = ks_error_set(err, KS_E_KMS, "Invalid response from KMS Decrypt");
    return st;
}

static ks_status do_encrypt(const struct ks_kms_relationship *rel, const char *arn,
                            const unsigned char *pt, size_t pt_len, const struct ks_ec *ec,
                            struct ks_bytes *out, struct ks_error *err)
{
    struct ks_kms_call call = call_of(rel);
    struct ks_kms_result r;
    ks_status st;
    ks_kms_result_init(&r);
    gate_enter(rel);
    st = rel->kms->ops->encrypt(rel->kms, &call, arn, pt, pt_len, ec, &r, err);
    gate_leave(rel);
    st = ks_mut_counted(rel, KS_KMS_OP_ENCRYPT, st);
    if (st == KS_OK && (!r.key_id || strcmp(r.key_id, arn) != 0 || r.ciphertext.len < 1 ||
                        r.ciphertext.len > ENC_MAX))
        st = ks_error_set(err, KS_E_KMS, "Invalid response from KMS Encrypt");
    if (st == KS_OK) {
        *out = r.ciphertext;
        r.ciphertext.data = NULL;
        r.ciphertext.len = 0;
    }
    ks_kms_result_free(&r);
    return st;
}

static ks_status do_re_encrypt(const struct ks_kms_relationship *rel, const struct ks_bytes *enc,
                               const char *src_arn, const struct ks_ec *src_ec, const char *dst_arn,
                               const struct ks_ec *dst_ec, struct ks_bytes *out,
                               struct ks_error *err)
{
    struct ks_kms_call call = call_of(rel);
    struct ks_kms_result r;
    ks_status st;
    ks_kms_result_init(&r);
    gate_enter(rel);
    st = rel->kms->ops->re_encrypt(rel->kms, &call, enc->data, enc->len, src_ec, src_arn, dst_arn,
                                   dst_ec, &r, err);
    gate_leave(rel);
    st = ks_mut_counted(rel, KS_KMS_OP_RE_ENCRYPT, st);
    if (st == KS_OK && (!r.key_id || !r.source_key_id || strcmp(r.key_id, dst_arn) != 0 ||
                        strcmp(r.source_key_id, src_arn) != 0))
        st = ks_error_set(err, KS_E_KMS, "Invalid response from KMS ReEncrypt: Invalid Key Id");
    if (st == KS_OK && (r.ciphertext.len < 1 || r.ciphertext.len > ENC_MAX))
        st = ks_error_set(err, KS_E_KMS, "Invalid response from KMS ReEncrypt");
    if (st == KS_OK && out) {
        *out = r.ciphertext;
        r.ciphertext.data = NULL;
        r.ciphertext.len = 0;
    }
    ks_kms_result_free(&r);
    return st;
}

static ks_status do_generate(const struct ks_kms_relationship *rel, const char *arn,
                             const struct ks_ec *ec, struct ks_bytes *out, struct ks_error *err)
{
    struct ks_kms_call call = call_of(rel);
    struct ks_kms_result r;
    ks_status st;
    ks_kms_result_init(&r);
    gate_enter(rel);
    st = rel->kms->ops->generate_data_key_without_plaintext(rel->kms, &call, arn, KEY_LEN, ec, &r,
                                                            err);
    gate_leave(rel);
    st = ks_mut_counted(rel, KS_KMS_OP_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT, st);
    if (st == KS_OK && (!r.key_id || strcmp(r.key_id, arn) != 0 || r.ciphertext.len < 1 ||
                        r.ciphertext.len > ENC_MAX))
        st = ks_error_set(err, KS_E_KMS,
                          "Invalid response from KMS GenerateDataKeyWithoutPlaintext");
    if (st == KS_OK) {
        *out = r.ciphertext;
        r.ciphertext.data = NULL;
        r.ciphertext.len = 0;
    }
    ks_kms_result_free(&r);
    return st;
}

static ks_status item_enc(const struct ks_item *item, struct ks_bytes *out, struct ks_error *err)
{
    const struct ks_attr *a = ks_item_get(item, KS_ATTR_ENC);
    out->data = (unsigned char *)(a ? a->value : NULL);
    out->len = a ? a->len : 0;
    if (!a || a->type != KS_ATTR_B || a->len < 1)
        return ks_error_set(err, KS_E_CORRUPT, "item without enc");
    return KS_OK;
}

ks_status ks_mut_verify(const struct ks_keystore *ks, const struct ks_mutation_strategy *s,
                        const struct ks_item *item, int terminal_side, struct ks_error *err)
{
    const char *arn = ks_item_get_s(item, KS_ATTR_KMS_ARN);
    struct ks_bytes enc;
    struct ks_ec ec;
    ks_status st;

    if (!arn)
        return ks_error_set(err, KS_E_CORRUPT, "item without kms-arn");
    if ((st = item_enc(item, &enc, err)) != KS_OK)
        return st;
    /* An HV-2 item only decrypts with its digest check (section 12). */
    if (ks_mut_item_hv(item) == 2) {
        unsigned char key[KEY_LEN];
        if (s->kind != KS_STRATEGY_DECRYPT_ENCRYPT)
            return ks_error_set(err, KS_E_UNSUPPORTED,
                                "strategy: hierarchy version 2 items need decryptEncrypt");
        st = ks_mut_hv2_unwrap(ks, terminal_side ? s->encrypt : s->decrypt, item, terminal_side,
                               key, err);
        OPENSSL_cleanse(key, sizeof key);
        return st;
    }
    ks_ec_init(&ec);
    if ((st = ks_mut_item_ec(ks, item, &ec, err)) != KS_OK)
        goto out;
    if (s->kind == KS_STRATEGY_REENCRYPT) {
        st = do_re_encrypt(s->reencrypt, &enc, arn, &ec, arn, &ec, NULL, err);
        st = ks_mut_side_error(st, terminal_side, "ReEncrypt", arn, err);
    } else {
        struct ks_kms_result r;
        ks_kms_result_init(&r);
        st = do_decrypt(terminal_side ? s->encrypt : s->decrypt, arn, &enc, &ec, &r, err);
        ks_kms_result_free(&r);
        st = ks_mut_side_error(st, terminal_side, "Decrypt", arn, err);
    }
out:
    ks_ec_free(&ec);
    return st;
}

/* ReEncrypt failed: tell the sides apart by decrypting the source through the same
 * relationship (one extra call, only on failure). */
static ks_status re_encrypt_side(const struct ks_mutation_strategy *s, const struct ks_bytes *enc,
                                 const char *src_arn, const struct ks_ec *src_ec,
                                 const char *dst_arn, ks_status st, struct ks_error *err)
{
    struct ks_kms_result r;
    struct ks_error probe;
    int source_ok;
    if (st != KS_E_KMS)
        return st;
    ks_kms_result_init(&r);
    ks_error_clear(&probe);
    source_ok = do_decrypt(s->reencrypt, src_arn, enc, src_ec, &r, &probe) == KS_OK;
    ks_kms_result_free(&r);
    return ks_mut_side_error(st, source_ok, "ReEncrypt", source_ok ? dst_arn : src_arn, err);
}

ks_status ks_mut_transform(const struct ks_keystore *ks, const struct ks_mutation_strategy *s,
                           const struct ks_item *item, const struct ks_mut_props *terminal,
                           struct ks_item *out, struct ks_error *err)
{
    const char *src_arn = ks_item_get_s(item, KS_ATTR_KMS_ARN);
    struct ks_bytes enc, new_enc = {0};
    struct ks_ec src_ec, dst_ec;
    ks_status st;

    if (terminal->hv == 2 || ks_mut_item_hv(item) == 2) {
        if (s->kind != KS_STRATEGY_DECRYPT_ENCRYPT)
            return ks_error_set(err, KS_E_UNSUPPORTED,
                                "strategy: a hierarchy version 2 mutation needs decryptEncrypt");
        return ks_mut_hv2_transform(ks, s, item, terminal, out, err);
    }
    ks_ec_init(&src_ec);
    ks_ec_init(&dst_ec);
    if ((st = item_enc(item, &enc, err)) != KS_OK ||
        (st = ks_mut_item_with_props(item, terminal, out, err)) != KS_OK ||
        (st = ks_mut_item_ec(ks, item, &src_ec, err)) != KS_OK ||
        (st = ks_mut_item_ec(ks, out, &dst_ec, err)) != KS_OK)
        goto done;
    if (s->kind == KS_STRATEGY_REENCRYPT) {
        st = do_re_encrypt(s->reencrypt, &enc, src_arn, &src_ec, terminal->kms_arn, &dst_ec,
                           &new_enc, err);
        if (st != KS_OK)
            st = re_encrypt_side(s, &enc, src_arn, &src_ec, terminal->kms_arn, st, err);
    } else {
        struct ks_kms_result r;
        ks_kms_result_init(&r);
        st = do_decrypt(s->decrypt, src_arn, &enc, &src_ec, &r, err);
        st = ks_mut_side_error(st, 0, "Decrypt", src_arn, err);
        if (st == KS_OK) {
            st = do_encrypt(s->encrypt, terminal->kms_arn, r.plaintext, r.plaintext_len, &dst_ec,
                            &new_enc, err);
            st = ks_mut_side_error(st, 1, "Encrypt", terminal->kms_arn, err);
        }
        ks_kms_result_free(&r); /* wipes the plaintext key */
    }
    if (st == KS_OK && ks_item_set_b(out, KS_ATTR_ENC, new_enc.data, new_enc.len) != 0)
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
done:
    ks_bytes_free(&new_enc);
    ks_ec_free(&src_ec);
    ks_ec_free(&dst_ec);
    return st;
}

/* The new ACTIVE's enc from the new version's (terminal -> terminal, section 4 table). */
static ks_status rotate_active_enc(const struct ks_mutation_strategy *s, const char *arn,
                                   const struct ks_bytes *version_enc, const struct ks_ec *vec,
                                   const struct ks_ec *aec, struct ks_bytes *out,
                                   struct ks_error *err)
{
    struct ks_kms_result r;
    ks_status st;
    if (s->kind == KS_STRATEGY_REENCRYPT)
        return ks_mut_side_error(
            do_re_encrypt(s->reencrypt, version_enc, arn, vec, arn, aec, out, err), 1, "ReEncrypt",
            arn, err);
    ks_kms_result_init(&r);
    st = do_decrypt(s->encrypt, arn, version_enc, vec, &r, err);
    if (st == KS_OK)
        st = do_encrypt(s->encrypt, arn, r.plaintext, r.plaintext_len, aec, out, err);
    ks_kms_result_free(&r);
    return ks_mut_side_error(st, 1, "Encrypt", arn, err);
}

ks_status ks_mut_rotate(const struct ks_keystore *ks, const struct ks_mutation_strategy *s,
                        const struct ks_item *old_active, const struct ks_mut_props *terminal,
                        const char *now, struct ks_item *version, struct ks_item *active,
                        struct ks_error *err)
{
    const struct ks_kms_relationship *rel =
        s->kind == KS_STRATEGY_REENCRYPT ? s->reencrypt : s->encrypt;
    char uuid[KS_UUID_LEN + 1], vtype[64];
    struct ks_item shaped;
    struct ks_ec vec, aec;
    struct ks_bytes venc = {0}, aenc = {0};
    ks_status st;

    ks_item_init(&shaped);
    ks_ec_init(&vec);
    ks_ec_init(&aec);
    if (ks_uuid_v4(uuid) != 0) {
        st = ks_error_set(err, KS_E_INTERNAL, "random source failed");
        goto out;
    }
    snprintf(vtype, sizeof vtype, "%s%s", KS_TYPE_VERSION_PREFIX, uuid);
    /* The old ACTIVE in the terminal state, retyped as a new version (as VersionKey does). */
    if ((st = ks_mut_item_with_props(old_active, terminal, &shaped, err)) != KS_OK ||
        (st = ks_mut_item_ec(ks, &shaped, &vec, err)) != KS_OK)
        goto out;
    if (ks_ec_set(&vec, KS_ATTR_TYPE, vtype) || ks_ec_set(&vec, KS_ATTR_CREATE_TIME, now) ||
        (ks_ec_remove(&vec, KS_ATTR_VERSION), 0) || ks_ec_copy(&aec, &vec) ||
        ks_ec_set(&aec, KS_ATTR_TYPE, KS_TYPE_ACTIVE) || ks_ec_set(&aec, KS_ATTR_VERSION, vtype)) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        goto out;
    }
    if (terminal->hv == 2) {
        st = ks_mut_hv2_rotate(s, &vec, &aec, terminal->kms_arn, &venc, &aenc, err);
    } else {
        st = ks_mut_side_error(do_generate(rel, terminal->kms_arn, &vec, &venc, err), 1,
                               "GenerateDataKeyWithoutPlaintext", terminal->kms_arn, err);
        if (st == KS_OK)
            st = rotate_active_enc(s, terminal->kms_arn, &venc, &vec, &aec, &aenc, err);
    }
    if (st == KS_OK && (st = ks_mut_ec_item(&vec, &venc, version, err)) == KS_OK)
        st = ks_mut_ec_item(&aec, &aenc, active, err);
out:
    ks_item_free(&shaped);
    ks_ec_free(&vec);
    ks_ec_free(&aec);
    ks_bytes_free(&venc);
    ks_bytes_free(&aenc);
    return st;
}

/* --- concurrent pages (section 13) -------------------------------------------------------- */

struct runner {
    size_t n;
    atomic_size_t next;
    atomic_int failed;
    ks_mut_job_fn job;
    void *ctx;
    ks_status *status;
    struct ks_error *errors;
};

static void *runner_main(void *arg)
{
    struct runner *r = arg;
    size_t i;
    /* After a failure the rest of the page is skipped: the page is not written anyway. */
    while (!atomic_load(&r->failed) && (i = atomic_fetch_add(&r->next, 1)) < r->n) {
        r->status[i] = r->job(r->ctx, i, &r->errors[i]);
        if (r->status[i] != KS_OK)
            atomic_store(&r->failed, 1);
    }
    return NULL;
}

ks_status ks_mut_parallel(size_t n, unsigned in_flight, ks_mut_job_fn job, void *ctx,
                          struct ks_error *err)
{
    struct runner r = {.n = n, .job = job, .ctx = ctx};
    pthread_t threads[KS_MUTATION_KMS_IN_FLIGHT_MAX];
    size_t want = n < in_flight ? n : in_flight, started = 0, i;
    ks_status st = KS_OK;

    if (n == 0)
        return KS_OK;
    atomic_init(&r.next, 0);
    atomic_init(&r.failed, 0);
    r.status = calloc(n, sizeof *r.status);
    r.errors = calloc(n, sizeof *r.errors);
    if (!r.status || !r.errors) {
        free(r.status);
        free(r.errors);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    for (i = 0; i < n; i++)
        r.status[i] = KS_OK;
    /* This thread is one of the workers; a thread that cannot start only lowers the count. */
    for (i = 1; i < want && i < KS_MUTATION_KMS_IN_FLIGHT_MAX; i++)
        if (pthread_create(&threads[started], NULL, runner_main, &r) == 0)
            started++;
    runner_main(&r);
    for (i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    for (i = 0; i < n && st == KS_OK; i++)
        if (r.status[i] != KS_OK) {
            st = r.status[i];
            if (err)
                *err = r.errors[i];
        }
    free(r.status);
    free(r.errors);
    return st;
}

/* --- system key (section 3) --------------------------------------------------------------- */

const char *ks_mut_system_key_name(const struct ks_bytes *enc)
{
    if (enc->len == strlen(TRUST_STORAGE) && memcmp(enc->data, TRUST_STORAGE, enc->len) == 0)
        return "trustStorage";
    /* A KMS ciphertext of "sign" is far longer than a few bytes. */
    return enc->len >= 32 && enc->len <= ENC_MAX ? "kmsSymmetricEncryption" : "unknown";
}

static ks_status set_bytes_value(struct ks_ec *ec, const char *key, const struct ks_bytes *b)
{
    char *s = malloc(b->len + 1);
    int rc;
    if (!s)
        return KS_E_INTERNAL;
    memcpy(s, b->data, b->len);
    s[b->len] = '\0';
    rc = strlen(s) == b->len ? ks_ec_set(ec, key, s) : -1;
    free(s);
    return rc == 0 ? KS_OK : KS_E_INTERNAL;
}

/*
 * The KMS context binding a commitment or index: {digest, uuid, branch-key-id, type}, digest
 * = base64(SHA-384(canonical content map)); hierarchy-version is signed as the constant "1"
 * (section 12), whatever the item stores.
 */
static ks_status signing_ec(const struct ks_ec *content, const char *uuid, const char *id,
                            const char *type, struct ks_ec *out, struct ks_error *err)
{
    unsigned char *ser = NULL, md[48];
    unsigned int md_len = 0;
    size_t ser_len = 0;
    char *b64 = NULL;
    ks_status st = KS_OK;

    if (ks_ec_serialize(content, &ser, &ser_len) != 0)
        return ks_error_set(err, KS_E_MUTATION_VERIFICATION, "mutation content too large to sign");
    if (EVP_Digest(ser, ser_len, md, &md_len, EVP_sha384(), NULL) != 1 || md_len != sizeof md ||
        !(b64 = ks_base64_encode(md, sizeof md)))
        st = ks_error_set(err, KS_E_INTERNAL, "digest failed");
    if (st == KS_OK &&
        (ks_ec_set(out, "digest", b64) || ks_ec_set(out, "uuid", uuid) ||
         ks_ec_set(out, KS_ATTR_BRANCH_KEY_ID, id) || ks_ec_set(out, KS_ATTR_TYPE, type)))
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    free(ser);
    free(b64);
    return st;
}

static ks_status commitment_ec(const struct ks_mutation_commitment *c, struct ks_ec *out,
                               struct ks_error *err)
{
    struct ks_ec content;
    ks_status st = KS_OK;
    ks_ec_init(&content);
    if (ks_ec_set(&content, KS_ATTR_CREATE_TIME, c->create_time) ||
        ks_ec_set(&content, KS_ATTR_HIERARCHY_VERSION, "1") ||
        set_bytes_value(&content, KS_ATTR_ORIGINAL, &c->original) ||
        set_bytes_value(&content, KS_ATTR_TERMINAL, &c->terminal) ||
        set_bytes_value(&content, KS_ATTR_INPUT, &c->input))
        st = ks_error_set(err, KS_E_MUTATION_VERIFICATION, "commitment cannot be signed");
    if (st == KS_OK)
        st = signing_ec(&content, c->uuid, c->branch_key_id, KS_TYPE_MUTATION_COMMITMENT, out, err);
    ks_ec_free(&content);
    return st;
}

static ks_status index_ec(const struct ks_mutation_index *x, struct ks_ec *out,
                          struct ks_error *err)
{
    struct ks_ec content;
    ks_status st = KS_OK;
    ks_ec_init(&content);
    if (ks_ec_set(&content, KS_ATTR_CREATE_TIME, x->create_time) ||
        ks_ec_set(&content, KS_ATTR_HIERARCHY_VERSION, "1") ||
        set_bytes_value(&content, KS_ATTR_PAGE_INDEX, &x->page_index))
        st = ks_error_set(err, KS_E_MUTATION_VERIFICATION, "index cannot be signed");
    if (st == KS_OK)
        st = signing_ec(&content, x->uuid, x->branch_key_id, KS_TYPE_MUTATION_INDEX, out, err);
    ks_ec_free(&content);
    return st;
}

static ks_status sign(const struct ks_mutation_settings *set, const struct ks_ec *ec,
                      struct ks_bytes *enc, struct ks_error *err)
{
    ks_bytes_free(enc);
    if (!set->kms_system_key)
        return ks_bytes_set(enc, TRUST_STORAGE, strlen(TRUST_STORAGE)) == 0
                   ? KS_OK
                   : ks_error_set(err, KS_E_INTERNAL, "out of memory");
    return do_encrypt(set->sys_rel, set->sys_arn, (const unsigned char *)SIGN_PLAINTEXT,
                      strlen(SIGN_PLAINTEXT), ec, enc, err);
}

static ks_status verify(const struct ks_mutation_settings *set, const struct ks_ec *ec,
                        const struct ks_bytes *enc, const char *what, struct ks_error *err)
{
    struct ks_kms_call call;
    struct ks_kms_result r;
    const char *kind = ks_mut_system_key_name(enc);
    ks_status st;

    if (!set->kms_system_key) {
        if (strcmp(kind, "trustStorage") == 0)
            return KS_OK;
        return ks_error_set(err, KS_E_MUTATION_VERIFICATION,
                            "the mutation %s is not signed with trustStorage, this key store's "
                            "system key",
                            what);
    }
    if (strcmp(kind, "kmsSymmetricEncryption") != 0)
        return ks_error_set(err, KS_E_MUTATION_VERIFICATION,
                            "the mutation %s is not signed by this key store's KMS system key",
                            what);
    call = call_of(set->sys_rel);
    ks_kms_result_init(&r);
    st = set->sys_rel->kms->ops->decrypt(set->sys_rel->kms, &call, set->sys_arn, enc->data,
                                         enc->len, ec, &r, err);
    st = ks_mut_counted(set->sys_rel, KS_KMS_OP_DECRYPT, st);
    if (st == KS_E_KMS && (strstr(err->message, "InvalidCiphertextException") ||
                           strstr(err->message, "IncorrectKeyException")))
        st = ks_error_set(err, KS_E_MUTATION_VERIFICATION,
                          "the mutation %s fails system-key verification (storage altered?)", what);
    else if (st == KS_OK && (r.plaintext_len != strlen(SIGN_PLAINTEXT) ||
                             memcmp(r.plaintext, SIGN_PLAINTEXT, r.plaintext_len) != 0))
        st = ks_error_set(err, KS_E_MUTATION_VERIFICATION,
                          "the mutation %s signature has unexpected content", what);
    ks_kms_result_free(&r);
    return st;
}

ks_status ks_mut_sign_commitment(const struct ks_mutation_settings *set,
                                 struct ks_mutation_commitment *c, struct ks_error *err)
{
    struct ks_ec ec;
    ks_status st;
    ks_ec_init(&ec);
    if ((st = commitment_ec(c, &ec, err)) == KS_OK)
        st = sign(set, &ec, &c->enc, err);
    ks_ec_free(&ec);
    return st;
}

ks_status ks_mut_sign_index(const struct ks_mutation_settings *set, struct ks_mutation_index *x,
                            struct ks_error *err)
{
    struct ks_ec ec;
    ks_status st;
    ks_ec_init(&ec);
    if ((st = index_ec(x, &ec, err)) == KS_OK)
        st = sign(set, &ec, &x->enc, err);
    ks_ec_free(&ec);
    return st;
}

ks_status ks_mut_verify_commitment(const struct ks_mutation_settings *set,
                                   const struct ks_mutation_commitment *c, struct ks_error *err)
{
    struct ks_ec ec;
    ks_status st;
    ks_ec_init(&ec);
    if ((st = commitment_ec(c, &ec, err)) == KS_OK)
        st = verify(set, &ec, &c->enc, "commitment", err);
    ks_ec_free(&ec);
    return st;
}

ks_status ks_mut_verify_index(const struct ks_mutation_settings *set,
                              const struct ks_mutation_index *x, struct ks_error *err)
{
    struct ks_ec ec;
    ks_status st;
    ks_ec_init(&ec);
    if ((st = index_ec(x, &ec, err)) == KS_OK)
        st = verify(set, &ec, &x->enc, "index", err);
    ks_ec_free(&ec);
    return st;
}
