/*
 * aws_kms.c - the AWS KMS backend (kms.h): the five operations of docs/reference/aws-apis.md
 * section 2 as awsJson 1.1 calls (TrentService.<Operation>) over the shared AWS transport
 * (aws/aws.h), which signs every attempt, retries what the SDKs retry, and maps throttling to
 * KS_E_THROTTLED, an unreachable or failing (5xx) KMS to KS_E_UNAVAILABLE and every other refusal
 * to KS_E_KMS with the message "KMS <error code>" ("KMS IncorrectKeyException"); KMS's own text
 * stays in err->detail, for the log only.
 *
 * Secrets (docs/architecture.md section 9, docs/style.md "Memory"): Encrypt's plaintext and the
 * plaintexts of GenerateDataKey and Decrypt travel base64-encoded inside the JSON bodies. Requests
 * are built with common/jsonw.h, whose buffer is wiped when released, and the finished body is
 * wiped after the call. Responses are read by the wiped scanner of aws/json_scan.h rather than by
 * json-c, which would leave unwiped copies of the Plaintext member in freed memory: it picks the
 * top-level string members asked for and decodes them into buffers that are wiped when freed;
 * the response text itself is wiped by ks_aws_response_free.
 *
 * Results: out must be initialized (ks_kms_result_init); on success its previous contents are
 * released and replaced, on failure it is left untouched (as in kms/local_kms.c).
 *
 * Thread safety: the backend is read-only after creation and the transport client is
 * thread-safe (aws/aws.h), so every method may be called from any thread.
 */
#include "kms/kms.h"

#include <stdlib.h>
#include <string.h>

#include "aws/aws.h"
#include "config/config.h"
#include "common/base64.h"
#include "common/jsonw.h"
#include "common/secret.h"

/*
 * Request cap. A KMS request is at most a 4096-byte plaintext or 6144-byte ciphertext in base64,
 * two encryption contexts and ten grant tokens of up to 8192 characters each (section 2), so
 * 1 MiB is far above any valid request while still bounding a runaway one.
 */
#define REQUEST_MAX ((size_t)1 << 20)

/*
 * The KeyId ping describes when the relationship names no key (discovery): an alias that need
 * not exist. KMS answering NotFoundException (or AccessDeniedException) proves it reachable and
 * our signature acceptable to its front end.
 */
#define PING_PROBE_KEY_ID "alias/keystored-readiness-probe"

struct aws_kms {
    struct ks_kms base; /* first: kms.h "Every backend's struct starts with this" */
    struct ks_aws_client *client;
    char *ping_key_id; /* the relationship's key ARN, or NULL (discovery, mr_discovery) */
};

static const struct ks_kms_ops aws_ops;

static struct aws_kms *aws_of(struct ks_kms *k)
{
    return (struct aws_kms *)k;
}

/* ------------------------------------------------------------------------------------------ */
/* Requests                                                                                    */

/* An absent EncryptionContext is the empty context to KMS, so an empty one is left out. */
static void write_ec(struct ks_jsonw *w, const char *member, const struct ks_ec *ec)
{
    size_t i;

    if (!ec || ec->count == 0)
        return;
    ks_jsonw_key(w, member);
    ks_jsonw_object_begin(w);
    for (i = 0; i < ec->count; i++) {
        ks_jsonw_key(w, ec->entries[i].key);
        ks_jsonw_string(w, ec->entries[i].value);
    }
    ks_jsonw_object_end(w);
}

static void write_grant_tokens(struct ks_jsonw *w, const struct ks_kms_call *c)
{
    size_t i;

    if (!c || c->n_grant_tokens == 0 || !c->grant_tokens)
        return;
    ks_jsonw_key(w, "GrantTokens");
    ks_jsonw_array_begin(w);
    for (i = 0; i < c->n_grant_tokens; i++)
        ks_jsonw_string(w, c->grant_tokens[i]);
    ks_jsonw_array_end(w);
}

/*
 * Sends the request w holds (its buffer is taken and wiped here, whatever happens) and leaves
 * the response in *resp. Errors come from the transport as they are (aws/aws.h).
 */
/* probe_ms > 0: one attempt within probe_ms (readiness, aws/aws.h ks_aws_call_probe). */
static ks_status kms_call_within(struct aws_kms *k, const char *operation, struct ks_jsonw *w,
                                 long probe_ms, struct ks_aws_response *resp, struct ks_error *err)
{
    struct ks_aws_error aws_err;
    size_t len = 0;
    char *body;
    ks_status st;

    ks_jsonw_object_end(w);
    body = ks_jsonw_take(w, &len);
    if (!body)
        return ks_error_set(err, KS_E_INTERNAL,
                            "AWS KMS %s: request over %zu bytes or out of memory", operation,
                            REQUEST_MAX);
    memset(&aws_err, 0, sizeof aws_err);
    st = probe_ms > 0
             ? ks_aws_call_probe(k->client, operation, body, len, probe_ms, resp, &aws_err, err)
             : ks_aws_call(k->client, operation, body, len, resp, &aws_err, err);
    ks_secret_free(body, len); /* Encrypt's body carries the plaintext */
    return st;
}

static ks_status kms_call(struct aws_kms *k, const char *operation, struct ks_jsonw *w,
                          struct ks_aws_response *resp, struct ks_error *err)
{
    return kms_call_within(k, operation, w, 0, resp, err);
}

/* KMS's own wording for a missing required member, without a round trip. */
static ks_status missing_member(struct ks_error *err, const char *member)
{
    ks_error_set(err, KS_E_KMS, "KMS ValidationException");
    ks_error_set_detail(err,
                        "ValidationException: 1 validation error detected: Value null at '%s' "
                        "failed to satisfy constraint: Member must not be null",
                        member);
    return KS_E_KMS;
}

/* ------------------------------------------------------------------------------------------ */
/* Results                                                                                     */

enum { F_CIPHERTEXT, F_PLAINTEXT, F_KEY_ID, F_SOURCE_KEY_ID, F_COUNT };

#define WANT_CIPHERTEXT (1u << F_CIPHERTEXT)
#define WANT_PLAINTEXT (1u << F_PLAINTEXT)
#define WANT_KEY_ID (1u << F_KEY_ID)
#define WANT_SOURCE_KEY_ID (1u << F_SOURCE_KEY_ID)

static ks_status malformed(struct ks_error *err, const char *operation, const char *what)
{
    return ks_error_set(err, KS_E_KMS, "AWS KMS %s: malformed response: %s", operation, what);
}

/*
 * Reads the members in want out of a successful response into *out (see the file comment for
 * out's rules). A plaintext must be plaintext_len bytes when plaintext_len is not 0. Every
 * member in want is required: KMS always returns them on success (section 2).
 */
static ks_status read_result(const char *operation, const struct ks_aws_response *resp,
                             unsigned want, size_t plaintext_len, struct ks_kms_result *out,
                             struct ks_error *err)
{
    struct ks_json_scan_field f[F_COUNT] = {
        [F_CIPHERTEXT] = {.name = "CiphertextBlob"},
        [F_PLAINTEXT] = {.name = "Plaintext"},
        [F_KEY_ID] = {.name = "KeyId"},
        [F_SOURCE_KEY_ID] = {.name = "SourceKeyId"},
    };
    static const char *const names[F_COUNT] = {"CiphertextBlob", "Plaintext", "KeyId",
                                               "SourceKeyId"};
    struct ks_kms_result res;
    ks_status st = KS_OK;
    size_t i;

    /* Only the members asked for are decoded: a Plaintext this operation does not return is
     * never copied out of the (wiped) response. */
    for (i = 0; i < F_COUNT; i++)
        if (!(want & (1u << i)))
            f[i].name = NULL;
    if (!resp->body || ks_json_scan_object(resp->body, resp->len, f, F_COUNT) != 0)
        return malformed(err, operation, "not a JSON object");
    for (i = 0; i < F_COUNT; i++)
        if ((want & (1u << i)) && (!f[i].value || f[i].len == 0)) {
            ks_json_scan_free(f, F_COUNT);
            return ks_error_set(err, KS_E_KMS, "AWS KMS %s: malformed response: no %s", operation,
                                names[i]);
        }

    ks_kms_result_init(&res);
    if (want & WANT_CIPHERTEXT) {
        if (ks_base64_decode(f[F_CIPHERTEXT].value, f[F_CIPHERTEXT].len, &res.ciphertext.data,
                             &res.ciphertext.len) != 0)
            st = malformed(err, operation, "CiphertextBlob is not base64");
    }
    if (st == KS_OK && (want & WANT_PLAINTEXT)) {
        /* ks_base64_decode wipes a partly decoded plaintext when the text turns out bad. */
        if (ks_base64_decode(f[F_PLAINTEXT].value, f[F_PLAINTEXT].len, &res.plaintext,
                             &res.plaintext_len) != 0)
            st = malformed(err, operation, "Plaintext is not base64");
        else if (plaintext_len && res.plaintext_len != plaintext_len)
            st = ks_error_set(err, KS_E_KMS,
                              "AWS KMS %s: malformed response: Plaintext is %zu bytes, asked "
                              "for %zu",
                              operation, res.plaintext_len, plaintext_len);
    }
    if (st == KS_OK && (want & WANT_KEY_ID) && !(res.key_id = strdup(f[F_KEY_ID].value)))
        st = ks_error_set(err, KS_E_INTERNAL, "AWS KMS %s: out of memory", operation);
    if (st == KS_OK && (want & WANT_SOURCE_KEY_ID) &&
        !(res.source_key_id = strdup(f[F_SOURCE_KEY_ID].value)))
        st = ks_error_set(err, KS_E_INTERNAL, "AWS KMS %s: out of memory", operation);
    ks_json_scan_free(f, F_COUNT);
    if (st == KS_OK) {
        ks_kms_result_free(out);
        *out = res;
    } else {
        ks_kms_result_free(&res);
    }
    return st;
}

/* Sends w, reads the result, and wipes the response. */
static ks_status call_for_result(struct aws_kms *k, const char *operation, struct ks_jsonw *w,
                                 unsigned want, size_t plaintext_len, struct ks_kms_result *out,
                                 struct ks_error *err)
{
    struct ks_aws_response resp = {NULL, 0};
    ks_status st = kms_call(k, operation, w, &resp, err);

    if (st == KS_OK)
        st = read_result(operation, &resp, want, plaintext_len, out, err);
    ks_aws_response_free(&resp);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Operations                                                                                  */

static ks_status generate_data_key_common(struct ks_kms *kms, const struct ks_kms_call *c,
                                          const char *operation, const char *key_id,
                                          size_t number_of_bytes, const struct ks_ec *ec,
                                          unsigned want, struct ks_kms_result *out,
                                          struct ks_error *err)
{
    struct ks_jsonw w;

    if (!key_id)
        return missing_member(err, "keyId");
    ks_jsonw_init(&w, REQUEST_MAX);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "KeyId");
    ks_jsonw_string(&w, key_id);
    /* NumberOfBytes rather than KeySpec: the interface asks for a length, as the MPL does
     * (exactly one of the two may be given, section 2). */
    ks_jsonw_key(&w, "NumberOfBytes");
    ks_jsonw_int(&w, (long long)number_of_bytes);
    write_ec(&w, "EncryptionContext", ec);
    write_grant_tokens(&w, c);
    return call_for_result(aws_of(kms), operation, &w, want,
                           (want & WANT_PLAINTEXT) ? number_of_bytes : 0, out, err);
}

static ks_status aws_generate_data_key_without_plaintext(
    struct ks_kms *k, const struct ks_kms_call *c, const char *key_id, size_t number_of_bytes,
    const struct ks_ec *ec, struct ks_kms_result *out, struct ks_error *err)
{
    return generate_data_key_common(k, c, "GenerateDataKeyWithoutPlaintext", key_id,
                                    number_of_bytes, ec, WANT_CIPHERTEXT | WANT_KEY_ID, out, err);
}

static ks_status aws_generate_data_key(struct ks_kms *k, const struct ks_kms_call *c,
                                       const char *key_id, size_t number_of_bytes,
                                       const struct ks_ec *ec, struct ks_kms_result *out,
                                       struct ks_error *err)
{
    return generate_data_key_common(k, c, "GenerateDataKey", key_id, number_of_bytes, ec,
                                    WANT_CIPHERTEXT | WANT_PLAINTEXT | WANT_KEY_ID, out, err);
}

static ks_status aws_encrypt(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                             const unsigned char *plaintext, size_t plaintext_len,
                             const struct ks_ec *ec, struct ks_kms_result *out,
                             struct ks_error *err)
{
    struct ks_jsonw w;

    if (!key_id)
        return missing_member(err, "keyId");
    if (!plaintext)
        return missing_member(err, "plaintext");
    ks_jsonw_init(&w, REQUEST_MAX);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "KeyId");
    ks_jsonw_string(&w, key_id);
    ks_jsonw_key(&w, "Plaintext");
    ks_jsonw_base64(&w, plaintext, plaintext_len); /* into the wiped buffer, via a wiped temp */
    write_ec(&w, "EncryptionContext", ec);
    write_grant_tokens(&w, c);
    return call_for_result(aws_of(k), "Encrypt", &w, WANT_CIPHERTEXT | WANT_KEY_ID, 0, out, err);
}

static ks_status aws_decrypt(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                             const unsigned char *ciphertext, size_t ciphertext_len,
                             const struct ks_ec *ec, struct ks_kms_result *out,
                             struct ks_error *err)
{
    struct ks_jsonw w;

    if (!ciphertext)
        return missing_member(err, "ciphertextBlob");
    ks_jsonw_init(&w, REQUEST_MAX);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "CiphertextBlob");
    ks_jsonw_base64(&w, ciphertext, ciphertext_len);
    /* Always sent when known: KMS then refuses a ciphertext of another key (section 2). */
    if (key_id) {
        ks_jsonw_key(&w, "KeyId");
        ks_jsonw_string(&w, key_id);
    }
    write_ec(&w, "EncryptionContext", ec);
    write_grant_tokens(&w, c);
    return call_for_result(aws_of(k), "Decrypt", &w, WANT_PLAINTEXT | WANT_KEY_ID, 0, out, err);
}

static ks_status aws_re_encrypt(struct ks_kms *k, const struct ks_kms_call *c,
                                const unsigned char *ciphertext, size_t ciphertext_len,
                                const struct ks_ec *source_ec, const char *source_key_id,
                                const char *destination_key_id, const struct ks_ec *destination_ec,
                                struct ks_kms_result *out, struct ks_error *err)
{
    struct ks_jsonw w;

    if (!ciphertext)
        return missing_member(err, "ciphertextBlob");
    if (!destination_key_id)
        return missing_member(err, "destinationKeyId");
    ks_jsonw_init(&w, REQUEST_MAX);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "CiphertextBlob");
    ks_jsonw_base64(&w, ciphertext, ciphertext_len);
    write_ec(&w, "SourceEncryptionContext", source_ec);
    if (source_key_id) {
        ks_jsonw_key(&w, "SourceKeyId");
        ks_jsonw_string(&w, source_key_id);
    }
    ks_jsonw_key(&w, "DestinationKeyId");
    ks_jsonw_string(&w, destination_key_id);
    write_ec(&w, "DestinationEncryptionContext", destination_ec);
    write_grant_tokens(&w, c);
    return call_for_result(aws_of(k), "ReEncrypt", &w,
                           WANT_CIPHERTEXT | WANT_KEY_ID | WANT_SOURCE_KEY_ID, 0, out, err);
}

/*
 * Readiness (kms.h: "KMS is reachable"). KMS has no key-free no-op, so this is a DescribeKey of
 * the relationship's key, or of a probe alias under discovery. Any answer from KMS counts as
 * reachable, refusals (NotFound, AccessDenied, Disabled, a rejected signature) and throttling
 * included: a disabled key or a missing permission is a per-request error, and taking the
 * whole server out of rotation for it would fail the relationships that work. Unreachable,
 * timed out or 5xx (one attempt, KS_AWS_PROBE_TIMEOUT_MS) is KS_E_UNAVAILABLE; credentials that
 * cannot be obtained keep their own status.
 */
static ks_status aws_ping(struct ks_kms *kms, struct ks_error *err)
{
    struct aws_kms *k = aws_of(kms);
    struct ks_aws_response resp = {NULL, 0};
    struct ks_jsonw w;
    ks_status st;

    ks_jsonw_init(&w, REQUEST_MAX);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "KeyId");
    ks_jsonw_string(&w, k->ping_key_id ? k->ping_key_id : PING_PROBE_KEY_ID);
    /* One attempt on the probe deadline: readiness never waits out the retries. */
    st = kms_call_within(k, "DescribeKey", &w, KS_AWS_PROBE_TIMEOUT_MS, &resp, err);
    ks_aws_response_free(&resp);
    if (st == KS_E_KMS || st == KS_E_THROTTLED) {
        ks_error_clear(err);
        return KS_OK;
    }
    return st;
}

static void aws_destroy(struct ks_kms *kms)
{
    struct aws_kms *k = aws_of(kms);
    ks_aws_client_destroy(k->client);
    free(k->ping_key_id);
    free(k);
}

static const struct ks_kms_ops aws_ops = {
    .version = KS_KMS_OPS_VERSION,
    .name = "aws",
    .generate_data_key_without_plaintext = aws_generate_data_key_without_plaintext,
    .generate_data_key = aws_generate_data_key,
    .encrypt = aws_encrypt,
    .decrypt = aws_decrypt,
    .re_encrypt = aws_re_encrypt,
    .ping = aws_ping,
    .destroy = aws_destroy,
};

/* ------------------------------------------------------------------------------------------ */
/* Create                                                                                      */

ks_status ks_kms_aws_create_tuned(const struct ks_kms_rel_config *cfg,
                                  struct ks_aws_credentials_provider *creds,
                                  const struct ks_kms_aws_tuning *tuning, struct ks_kms **out,
                                  struct ks_error *err)
{
    struct ks_aws_client_options o;
    struct aws_kms *k;
    ks_status st;

    if (!cfg || !out)
        return ks_error_set(err, KS_E_INTERNAL, "AWS KMS: no relationship config");
    if (cfg->type != KS_KMS_AWS)
        return ks_error_set(err, KS_E_CONFIG, "KMS relationship '%s' is not an aws relationship",
                            cfg->name ? cfg->name : "");
    if (!cfg->region || !*cfg->region)
        return ks_error_set(err, KS_E_CONFIG, "KMS relationship '%s': region is required",
                            cfg->name ? cfg->name : "");
    if (!creds)
        return ks_error_set(err, KS_E_CONFIG, "KMS relationship '%s': no credentials",
                            cfg->name ? cfg->name : "");

    k = calloc(1, sizeof *k);
    if (!k)
        return ks_error_set(err, KS_E_INTERNAL, "AWS KMS: out of memory");
    if (cfg->has_kms_configuration &&
        (cfg->kms.kind == KS_KMS_KEY_ARN || cfg->kms.kind == KS_KMS_MR_KEY_ARN) && cfg->kms.arn &&
        !(k->ping_key_id = strdup(cfg->kms.arn))) {
        free(k);
        return ks_error_set(err, KS_E_INTERNAL, "AWS KMS: out of memory");
    }

    memset(&o, 0, sizeof o);
    o.service = "kms";
    o.dependency = "KMS";
    o.region = cfg->region;
    o.endpoint = cfg->endpoint; /* NULL: https://kms.<region>.amazonaws.com */
    o.json_version = "1.1";
    o.target_prefix = "TrentService";
    o.credentials = creds;
    o.service_error = KS_E_KMS;
    o.max_attempts = 3; /* section 4: 3 attempts for KMS */
    /* The relationship's timeout_ms / max_attempts (0: defaults); tests' tuning overrides. */
    o.request_timeout_ms = (long)cfg->timeout_ms;
    if (cfg->max_attempts)
        o.max_attempts = cfg->max_attempts;
    if (tuning) {
        o.connect_timeout_ms = tuning->connect_timeout_ms;
        o.request_timeout_ms = tuning->request_timeout_ms;
        if (tuning->max_attempts)
            o.max_attempts = tuning->max_attempts;
        o.base_delay_ms = tuning->base_delay_ms;
        o.clock = tuning->clock;
    }
    st = ks_aws_client_create(&o, &k->client, err);
    if (st != KS_OK) {
        free(k->ping_key_id);
        free(k);
        return st;
    }
    k->base.ops = &aws_ops;
    *out = &k->base;
    return KS_OK;
}

ks_status ks_kms_aws_create(const struct ks_kms_rel_config *cfg,
                            struct ks_aws_credentials_provider *creds, struct ks_kms **out,
                            struct ks_error *err)
{
    return ks_kms_aws_create_tuned(cfg, creds, NULL, out, err);
}
