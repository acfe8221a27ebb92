/*
 * test_aws_kms.c - the AWS KMS backend (kms/aws_kms.c) over the real transport
 * (aws/client.c, aws/credentials.c) against the KMS test server
 * (tests/peers/kms-server.mjs), which checks every SigV4 signature with AWS's own signer.
 *
 * Every test starts its own peer on 127.0.0.1 with a kernel-chosen port (so tests may run in
 * parallel and share no counts or faults) and drives it through the peer's /__admin channel:
 * keys, key states, fault injection, call counts and the request log. Nothing leaves loopback.
 *
 * Needs `node` on PATH and the repository's node_modules; run from the repository root, or set
 * KS_KMS_PEER_SCRIPT to the peer's path.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "aws/aws.h"
#include "config/config.h"
#include "common/ec.h"
#include "common/util.h"
#include "kms/kms.h"

#define PEER_SCRIPT_DEFAULT "tests/peers/kms-server.mjs"
#define ACCESS_KEY_ID "AKIDTEST"
#define SECRET "kms-peer-test-secret"
#define PROBE_ALIAS "alias/keystored-readiness-probe"

static pid_t peer_pid = -1;
static char peer_url[64];

/* ---------------------------------------------------------------------------------------- */
/* The peer                                                                                  */

static void peer_start(void)
{
    const char *script = getenv("KS_KMS_PEER_SCRIPT");
    char buf[512];
    size_t len = 0;
    int fds[2];

    if (!script || !*script)
        script = PEER_SCRIPT_DEFAULT;
    cr_assert_eq(pipe(fds), 0);
    peer_pid = fork();
    cr_assert_neq(peer_pid, -1);
    if (peer_pid == 0) {
        /* The peer dies with this test process, even if the test crashes. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execlp("node", "node", script, "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        struct pollfd p = {fds[0], POLLIN, 0};
        const char *m;
        ssize_t r;

        cr_assert_gt(poll(&p, 1, 15000), 0, "the KMS peer did not start within 15 s");
        r = read(fds[0], buf + len, sizeof buf - 1 - len);
        cr_assert_gt(r, 0, "the KMS peer exited (is node installed? %s)", script);
        len += (size_t)r;
        buf[len] = '\0';
        m = strstr(buf, "kms-server listening on 127.0.0.1:");
        if (m && strchr(m, '\n')) {
            long port = strtol(m + strlen("kms-server listening on 127.0.0.1:"), NULL, 10);
            cr_assert(port > 0 && port < 65536);
            snprintf(peer_url, sizeof peer_url, "http://127.0.0.1:%ld", port);
            break;
        }
        cr_assert_lt(len, sizeof buf - 1);
    }
    close(fds[0]);
}

static void peer_stop(void)
{
    if (peer_pid > 0) {
        kill(peer_pid, SIGTERM);
        waitpid(peer_pid, NULL, 0);
        peer_pid = -1;
    }
}

struct sink {
    char *data;
    size_t len;
};

static size_t sink_write(char *p, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    char *d = realloc(s->data, s->len + size * n + 1);
    if (!d)
        return 0;
    memcpy(d + s->len, p, size * n);
    s->data = d;
    s->len += size * n;
    s->data[s->len] = '\0';
    return size * n;
}

/* One admin call; the JSON answer (caller puts it). The peer must answer 200. */
static json_object *admin(const char *method, const char *path, const char *body)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    struct sink s = {NULL, 0};
    char url[256];
    long code = 0;
    json_object *j;

    cr_assert_not_null(h);
    snprintf(url, sizeof url, "%s/__admin%s", peer_url, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    cr_assert_eq(curl_easy_perform(h), CURLE_OK, "admin %s %s", method, path);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    cr_assert_eq(code, 200, "admin %s %s: %ld %s", method, path, code, s.data ? s.data : "");
    j = json_tokener_parse(s.data ? s.data : "");
    cr_assert_not_null(j);
    free(s.data);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return j;
}

static void admin_do(const char *method, const char *path, const char *body)
{
    json_object_put(admin(method, path, body));
}

/* A new key (body: the admin create options); its first ARN, malloc'd. */
static char *create_key(const char *body)
{
    json_object *j = admin("POST", "/keys", body ? body : "{}"), *arn;
    char *out;
    cr_assert(json_object_object_get_ex(j, "arn", &arn));
    out = strdup(json_object_get_string(arn));
    json_object_put(j);
    return out;
}

/* The i-th ARN of a multi-region key made by create-options body, malloc'd. */
static void create_mrk(const char *body, char **arns, size_t n)
{
    json_object *j = admin("POST", "/keys", body), *list;
    size_t i;
    cr_assert(json_object_object_get_ex(j, "arns", &list));
    cr_assert_eq(json_object_array_length(list), n);
    for (i = 0; i < n; i++)
        arns[i] = strdup(json_object_get_string(json_object_array_get_idx(list, i)));
    json_object_put(j);
}

static void set_key(const char *what, const char *arn, const char *extra)
{
    char body[512];
    snprintf(body, sizeof body, "{\"arn\":\"%s\",%s}", arn, extra);
    admin_do("POST", what, body);
}

static int calls(const char *operation)
{
    json_object *j = admin("GET", "/counts", NULL), *ops, *n;
    int v = 0;
    cr_assert(json_object_object_get_ex(j, "operations", &ops));
    if (json_object_object_get_ex(ops, operation, &n))
        v = json_object_get_int(n);
    json_object_put(j);
    return v;
}

static void fault(const char *rule)
{
    admin_do("POST", "/faults", rule);
}

/* The request log (caller puts it) and its i-th entry (borrowed). */
static json_object *request_log(void)
{
    json_object *j = admin("GET", "/requests", NULL), *list;
    cr_assert(json_object_object_get_ex(j, "requests", &list));
    return j;
}

static json_object *log_entry(json_object *log, size_t i)
{
    json_object *list;
    cr_assert(json_object_object_get_ex(log, "requests", &list));
    cr_assert_lt(i, json_object_array_length(list));
    return json_object_array_get_idx(list, i);
}

static const char *log_string(json_object *entry, const char *member)
{
    json_object *v;
    if (!json_object_object_get_ex(entry, member, &v) || json_object_is_type(v, json_type_null))
        return NULL;
    return json_object_get_string(v);
}

/* ---------------------------------------------------------------------------------------- */
/* The backend under test                                                                   */

struct client {
    char name[16], region[32], endpoint[64], arn[256];
    char akid[64], secret[64], token[64];
    struct ks_kms_rel_config cfg;
    struct ks_aws_credentials_provider *creds;
    struct ks_kms *kms;
};

struct client_opts {
    const char *region;      /* default us-west-2 */
    const char *endpoint;    /* default the peer */
    const char *arn;         /* kms_key_arn (ping describes it); NULL: discovery */
    const char *akid;        /* default AKIDTEST */
    const char *secret;      /* default the peer's */
    const char *token;       /* default none */
    long request_timeout_ms; /* default 3000 */
};

static void client_open(struct client *c, const struct client_opts *o)
{
    struct ks_kms_aws_tuning tuning;
    struct ks_aws_credentials_options cc;
    struct ks_error err;
    ks_status st;

    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "aws");
    snprintf(c->region, sizeof c->region, "%s", o && o->region ? o->region : "us-west-2");
    snprintf(c->endpoint, sizeof c->endpoint, "%s", o && o->endpoint ? o->endpoint : peer_url);
    snprintf(c->akid, sizeof c->akid, "%s", o && o->akid ? o->akid : ACCESS_KEY_ID);
    snprintf(c->secret, sizeof c->secret, "%s", o && o->secret ? o->secret : SECRET);
    snprintf(c->token, sizeof c->token, "%s", o && o->token ? o->token : "");

    memset(&cc, 0, sizeof cc);
    cc.source = KS_AWS_CRED_STATIC;
    cc.access_key_id = c->akid;
    cc.secret_access_key = c->secret;
    cc.session_token = c->token[0] ? c->token : NULL;
    ks_error_clear(&err);
    st = ks_aws_credentials_provider_create(&cc, NULL, &c->creds, &err);
    cr_assert_eq(st, KS_OK, "credentials: %s", err.message);

    c->cfg.name = c->name;
    c->cfg.type = KS_KMS_AWS;
    c->cfg.region = c->region;
    c->cfg.endpoint = c->endpoint;
    c->cfg.has_kms_configuration = 1;
    c->cfg.kms.kind = KS_KMS_DISCOVERY;
    if (o && o->arn) {
        snprintf(c->arn, sizeof c->arn, "%s", o->arn);
        c->cfg.kms.kind = KS_KMS_KEY_ARN;
        c->cfg.kms.arn = c->arn;
    }
    memset(&tuning, 0, sizeof tuning);
    tuning.connect_timeout_ms = 1000;
    tuning.request_timeout_ms = o && o->request_timeout_ms ? o->request_timeout_ms : 3000;
    tuning.base_delay_ms = 10;
    st = ks_kms_aws_create_tuned(&c->cfg, c->creds, &tuning, &c->kms, &err);
    cr_assert_eq(st, KS_OK, "create: %s", err.message);
    cr_assert_str_eq(c->kms->ops->name, "aws");
}

static void client_close(struct client *c)
{
    ks_kms_destroy(c->kms);
    ks_aws_credentials_provider_destroy(c->creds);
    c->kms = NULL;
    c->creds = NULL;
}

/* The default client of each test. */
static struct client cl;

static void setup(void)
{
    peer_start();
    client_open(&cl, NULL);
}

static void teardown(void)
{
    client_close(&cl);
    peer_stop();
}

TestSuite(aws_kms, .init = setup, .fini = teardown, .timeout = 60);

static const struct ks_kms_call no_grants = {NULL, 0};

static void ec_of(struct ks_ec *ec, const char *k1, const char *v1, const char *k2, const char *v2)
{
    ks_ec_init(ec);
    if (k1)
        cr_assert_eq(ks_ec_set(ec, k1, v1), 0);
    if (k2)
        cr_assert_eq(ks_ec_set(ec, k2, v2), 0);
}

/*
 * A KMS refusal: the client-facing message is "KMS <code>" and nothing else (issue: AWS's text
 * can carry account ids and role ARNs); the code and KMS's own text are in the log-only detail.
 */
static void expect_kms_error(ks_status st, const struct ks_error *err, const char *type)
{
    char want[160];
    snprintf(want, sizeof want, "KMS %s", type);
    cr_assert_eq(st, KS_E_KMS, "status %d (%s), expected KS_E_KMS %s", st, err->message, type);
    cr_assert_str_eq(err->message, want);
    cr_assert(strstr(err->detail, type), "detail '%s' lacks %s", err->detail, type);
}

static void encrypt_ok(struct client *c, const char *arn, const void *pt, size_t len,
                       const struct ks_ec *ec, struct ks_kms_result *out)
{
    struct ks_error err;
    ks_status st = c->kms->ops->encrypt(c->kms, &no_grants, arn, pt, len, ec, out, &err);
    cr_assert_eq(st, KS_OK, "encrypt: %s", err.message);
    cr_assert_str_eq(out->key_id, arn);
    cr_assert_gt(out->ciphertext.len, len);
}

static ks_status decrypt(struct client *c, const char *arn, const struct ks_bytes *blob,
                         const struct ks_ec *ec, struct ks_kms_result *out, struct ks_error *err)
{
    ks_error_clear(err);
    return c->kms->ops->decrypt(c->kms, &no_grants, arn, blob->data, blob->len, ec, out, err);
}

/* ---------------------------------------------------------------------------------------- */
/* The five operations                                                                       */

Test(aws_kms, generate_data_key_without_plaintext_then_decrypt)
{
    char *arn = create_key(NULL);
    struct ks_kms_result gen, dec;
    struct ks_ec ec;
    struct ks_error err;
    ks_status st;

    ec_of(&ec, "branch-key-id", "bk-1", "tenant", "t\xc3\xbc\"/\\");
    ks_kms_result_init(&gen);
    ks_kms_result_init(&dec);
    st = cl.kms->ops->generate_data_key_without_plaintext(cl.kms, &no_grants, arn, 32, &ec, &gen,
                                                          &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_str_eq(gen.key_id, arn);
    cr_assert_null(gen.plaintext);
    cr_assert_gt(gen.ciphertext.len, 32);

    st = decrypt(&cl, arn, &gen.ciphertext, &ec, &dec, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_eq(dec.plaintext_len, 32);
    cr_assert_str_eq(dec.key_id, arn);
    cr_assert_eq(calls("GenerateDataKeyWithoutPlaintext"), 1);
    cr_assert_eq(calls("Decrypt"), 1);

    ks_kms_result_free(&gen);
    ks_kms_result_free(&dec);
    ks_ec_free(&ec);
    free(arn);
}

Test(aws_kms, generate_data_key_plaintext_matches_decrypt)
{
    char *arn = create_key(NULL);
    struct ks_kms_result gen, dec;
    struct ks_ec ec;
    struct ks_error err;
    ks_status st;

    ec_of(&ec, "k", "v", NULL, NULL);
    ks_kms_result_init(&gen);
    ks_kms_result_init(&dec);
    st = cl.kms->ops->generate_data_key(cl.kms, &no_grants, arn, 64, &ec, &gen, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_eq(gen.plaintext_len, 64);
    cr_assert_str_eq(gen.key_id, arn);
    /* No KeyId: a symmetric ciphertext names its key (section 2). */
    st = decrypt(&cl, NULL, &gen.ciphertext, &ec, &dec, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_eq(dec.plaintext_len, 64);
    cr_assert_eq(memcmp(dec.plaintext, gen.plaintext, 64), 0);
    cr_assert_str_eq(dec.key_id, arn);

    ks_kms_result_free(&gen);
    ks_kms_result_free(&dec);
    ks_ec_free(&ec);
    free(arn);
}

Test(aws_kms, encrypt_decrypt_round_trip_every_byte_value)
{
    char *arn = create_key(NULL);
    unsigned char pt[300];
    struct ks_kms_result enc, dec;
    struct ks_ec ec, reordered;
    struct ks_error err;
    size_t i;
    ks_status st;

    for (i = 0; i < sizeof pt; i++)
        pt[i] = (unsigned char)(i * 7);
    ec_of(&ec, "b", "2", "a", "1");
    ec_of(&reordered, "a", "1", "b", "2");
    ks_kms_result_init(&enc);
    ks_kms_result_init(&dec);
    encrypt_ok(&cl, arn, pt, sizeof pt, &ec, &enc);
    st = decrypt(&cl, arn, &enc.ciphertext, &reordered, &dec, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_eq(dec.plaintext_len, sizeof pt);
    cr_assert_eq(memcmp(dec.plaintext, pt, sizeof pt), 0);

    ks_kms_result_free(&enc);
    ks_kms_result_free(&dec);
    ks_ec_free(&ec);
    ks_ec_free(&reordered);
    free(arn);
}

Test(aws_kms, encrypt_with_empty_context_decrypts_with_empty_context)
{
    char *arn = create_key(NULL);
    struct ks_kms_result enc, dec;
    struct ks_ec empty, one;
    struct ks_error err;
    ks_status st;

    ec_of(&empty, NULL, NULL, NULL, NULL);
    ec_of(&one, "k", "v", NULL, NULL);
    ks_kms_result_init(&enc);
    ks_kms_result_init(&dec);
    encrypt_ok(&cl, arn, "x", 1, &empty, &enc);
    st = decrypt(&cl, arn, &enc.ciphertext, NULL, &dec, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_eq(dec.plaintext_len, 1);
    st = decrypt(&cl, arn, &enc.ciphertext, &one, &dec, &err);
    expect_kms_error(st, &err, "InvalidCiphertextException");

    ks_kms_result_free(&enc);
    ks_kms_result_free(&dec);
    ks_ec_free(&empty);
    ks_ec_free(&one);
    free(arn);
}

Test(aws_kms, re_encrypt_moves_to_the_destination_key_and_context)
{
    char *a = create_key(NULL), *b = create_key(NULL);
    struct ks_kms_result enc, re, dec;
    struct ks_ec src_ec, dst_ec;
    struct ks_error err;
    ks_status st;

    ec_of(&src_ec, "stage", "old", NULL, NULL);
    ec_of(&dst_ec, "stage", "new", "extra", "1");
    ks_kms_result_init(&enc);
    ks_kms_result_init(&re);
    ks_kms_result_init(&dec);
    encrypt_ok(&cl, a, "branch key bytes", 16, &src_ec, &enc);
    st = cl.kms->ops->re_encrypt(cl.kms, &no_grants, enc.ciphertext.data, enc.ciphertext.len,
                                 &src_ec, a, b, &dst_ec, &re, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_str_eq(re.key_id, b);
    cr_assert_str_eq(re.source_key_id, a);
    cr_assert_null(re.plaintext);

    st = decrypt(&cl, b, &re.ciphertext, &dst_ec, &dec, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_eq(dec.plaintext_len, 16);
    cr_assert_eq(memcmp(dec.plaintext, "branch key bytes", 16), 0);
    /* The new blob is under b: naming a is the wrong key. */
    st = decrypt(&cl, a, &re.ciphertext, &dst_ec, &dec, &err);
    expect_kms_error(st, &err, "IncorrectKeyException");
    /* Without SourceKeyId as well. */
    st = cl.kms->ops->re_encrypt(cl.kms, &no_grants, enc.ciphertext.data, enc.ciphertext.len,
                                 &src_ec, NULL, b, &dst_ec, &re, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_str_eq(re.source_key_id, a);
    /* The source context must match. */
    st = cl.kms->ops->re_encrypt(cl.kms, &no_grants, enc.ciphertext.data, enc.ciphertext.len,
                                 &dst_ec, a, b, &dst_ec, &re, &err);
    expect_kms_error(st, &err, "InvalidCiphertextException");

    ks_kms_result_free(&enc);
    ks_kms_result_free(&re);
    ks_kms_result_free(&dec);
    ks_ec_free(&src_ec);
    ks_ec_free(&dst_ec);
    free(a);
    free(b);
}

/* ---------------------------------------------------------------------------------------- */
/* Refusals                                                                                  */

Test(aws_kms, wrong_context_is_refused)
{
    char *arn = create_key(NULL);
    struct ks_kms_result enc, dec;
    struct ks_ec ec, changed, missing, extra;
    struct ks_error err;
    ks_status st;

    ec_of(&ec, "a", "1", "b", "2");
    ec_of(&changed, "a", "1", "b", "3");
    ec_of(&missing, "a", "1", NULL, NULL);
    ec_of(&extra, "a", "1", "b", "2");
    cr_assert_eq(ks_ec_set(&extra, "c", "3"), 0);
    ks_kms_result_init(&enc);
    ks_kms_result_init(&dec);
    encrypt_ok(&cl, arn, "secret", 6, &ec, &enc);
    st = decrypt(&cl, arn, &enc.ciphertext, &changed, &dec, &err);
    expect_kms_error(st, &err, "InvalidCiphertextException");
    st = decrypt(&cl, arn, &enc.ciphertext, &missing, &dec, &err);
    expect_kms_error(st, &err, "InvalidCiphertextException");
    st = decrypt(&cl, arn, &enc.ciphertext, &extra, &dec, &err);
    expect_kms_error(st, &err, "InvalidCiphertextException");
    cr_assert_null(dec.plaintext, "a failed call leaves the result untouched");
    /* Refusals are not retried. */
    cr_assert_eq(calls("Decrypt"), 3);

    ks_kms_result_free(&enc);
    ks_ec_free(&ec);
    ks_ec_free(&changed);
    ks_ec_free(&missing);
    ks_ec_free(&extra);
    free(arn);
}

Test(aws_kms, wrong_key_is_incorrect_key)
{
    char *a = create_key(NULL), *b = create_key(NULL);
    struct ks_kms_result enc, dec;
    struct ks_error err;
    ks_status st;

    ks_kms_result_init(&enc);
    ks_kms_result_init(&dec);
    encrypt_ok(&cl, a, "secret", 6, NULL, &enc);
    st = decrypt(&cl, b, &enc.ciphertext, NULL, &dec, &err);
    expect_kms_error(st, &err, "IncorrectKeyException");
    cr_assert_null(dec.plaintext);

    ks_kms_result_free(&enc);
    free(a);
    free(b);
}

Test(aws_kms, tampered_blob_is_invalid_ciphertext)
{
    char *arn = create_key(NULL);
    struct ks_kms_result enc, dec;
    struct ks_error err;
    size_t positions[4], i;
    ks_status st;

    ks_kms_result_init(&enc);
    ks_kms_result_init(&dec);
    encrypt_ok(&cl, arn, "0123456789abcdef", 16, NULL, &enc);
    positions[0] = enc.ciphertext.len - 1;  /* tag */
    positions[1] = enc.ciphertext.len - 20; /* body */
    positions[2] = enc.ciphertext.len - 30; /* IV */
    positions[3] = 0;                       /* version */
    for (i = 0; i < 4; i++) {
        enc.ciphertext.data[positions[i]] ^= 0x01;
        st = decrypt(&cl, arn, &enc.ciphertext, NULL, &dec, &err);
        expect_kms_error(st, &err, "InvalidCiphertextException");
        enc.ciphertext.data[positions[i]] ^= 0x01;
    }
    enc.ciphertext.len -= 1; /* truncated */
    st = decrypt(&cl, arn, &enc.ciphertext, NULL, &dec, &err);
    expect_kms_error(st, &err, "InvalidCiphertextException");
    enc.ciphertext.len += 1;
    st = decrypt(&cl, arn, &enc.ciphertext, NULL, &dec, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);

    ks_kms_result_free(&enc);
    ks_kms_result_free(&dec);
    free(arn);
}

Test(aws_kms, key_states_map_to_kms_errors)
{
    char *arn = create_key(NULL);
    struct ks_kms_result r;
    struct ks_error err;
    ks_status st;
    const char *unknown = "arn:aws:kms:us-west-2:111122223333:key/"
                          "00000000-0000-4000-8000-000000000000";

    ks_kms_result_init(&r);
    st = cl.kms->ops->generate_data_key(cl.kms, &no_grants, unknown, 32, NULL, &r, &err);
    expect_kms_error(st, &err, "NotFoundException");

    set_key("/keys/state", arn, "\"state\":\"Disabled\"");
    st = cl.kms->ops->generate_data_key(cl.kms, &no_grants, arn, 32, NULL, &r, &err);
    expect_kms_error(st, &err, "DisabledException");

    set_key("/keys/state", arn, "\"state\":\"PendingDeletion\"");
    st = cl.kms->ops->encrypt(cl.kms, &no_grants, arn, (const unsigned char *)"x", 1, NULL, &r,
                              &err);
    expect_kms_error(st, &err, "KMSInvalidStateException");

    set_key("/keys/state", arn, "\"state\":\"Enabled\"");
    set_key("/keys/deny", arn, "\"deny\":true");
    st = cl.kms->ops->generate_data_key_without_plaintext(cl.kms, &no_grants, arn, 32, NULL, &r,
                                                          &err);
    expect_kms_error(st, &err, "AccessDeniedException");

    set_key("/keys/deny", arn, "\"deny\":false");
    st = cl.kms->ops->generate_data_key_without_plaintext(cl.kms, &no_grants, arn, 32, NULL, &r,
                                                          &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    /* KMS's own validation: NumberOfBytes 1..1024. */
    st = cl.kms->ops->generate_data_key(cl.kms, &no_grants, arn, 0, NULL, &r, &err);
    expect_kms_error(st, &err, "ValidationException");
    /* None of these refusals was retried. */
    cr_assert_eq(calls("GenerateDataKey"), 3);

    ks_kms_result_free(&r);
    free(arn);
}

Test(aws_kms, multi_region_keys_decrypt_across_regions)
{
    char *arns[2];
    char *other = create_key("{\"region\":\"us-east-1\"}");
    struct client east;
    struct client_opts eo = {.region = "us-east-1"};
    struct ks_kms_result enc, dec, re;
    struct ks_ec ec;
    struct ks_error err;
    ks_status st;

    create_mrk("{\"regions\":[\"us-west-2\",\"us-east-1\"]}", arns, 2);
    cr_assert(strstr(arns[0], ":us-west-2:") && strstr(arns[0], ":key/mrk-"));
    cr_assert(strstr(arns[1], ":us-east-1:"));
    client_open(&east, &eo);
    ec_of(&ec, "k", "v", NULL, NULL);
    ks_kms_result_init(&enc);
    ks_kms_result_init(&dec);
    ks_kms_result_init(&re);

    encrypt_ok(&cl, arns[0], "mrk data", 8, &ec, &enc);
    st = decrypt(&east, arns[1], &enc.ciphertext, &ec, &dec, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_str_eq(dec.key_id, arns[1]);
    cr_assert_eq(memcmp(dec.plaintext, "mrk data", 8), 0);
    /* Signed for us-east-1: the peer saw the client's region. */
    {
        json_object *log = request_log();
        cr_assert_str_eq(log_string(log_entry(log, 1), "region"), "us-east-1");
        json_object_put(log);
    }
    /* A single-region key of the other region is not related. */
    st = decrypt(&east, other, &enc.ciphertext, &ec, &dec, &err);
    expect_kms_error(st, &err, "IncorrectKeyException");
    /* ReEncrypt from the replica to a single-region key. */
    st = east.kms->ops->re_encrypt(east.kms, &no_grants, enc.ciphertext.data, enc.ciphertext.len,
                                   &ec, arns[1], other, NULL, &re, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_str_eq(re.source_key_id, arns[1]);
    cr_assert_str_eq(re.key_id, other);

    client_close(&east);
    ks_kms_result_free(&enc);
    ks_kms_result_free(&dec);
    ks_kms_result_free(&re);
    ks_ec_free(&ec);
    free(arns[0]);
    free(arns[1]);
    free(other);
}

/* ---------------------------------------------------------------------------------------- */
/* Signing and grant tokens                                                                  */

Test(aws_kms, wrong_secret_is_refused_by_the_signature_check)
{
    char *arn = create_key(NULL);
    struct client bad;
    struct client_opts bo = {.secret = "not-the-secret"};
    struct ks_kms_result r;
    struct ks_error err;
    ks_status st;

    client_open(&bad, &bo);
    ks_kms_result_init(&r);
    st = bad.kms->ops->generate_data_key(bad.kms, &no_grants, arn, 32, NULL, &r, &err);
    expect_kms_error(st, &err, "InvalidSignatureException");
    cr_assert_null(r.plaintext);
    cr_assert_eq(calls("GenerateDataKey"), 1, "a refused signature is not retried");
    /* The same call signed with the right secret passes the same check. */
    st = cl.kms->ops->generate_data_key(cl.kms, &no_grants, arn, 32, NULL, &r, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);

    client_close(&bad);
    ks_kms_result_free(&r);
    free(arn);
}

Test(aws_kms, session_token_is_signed_and_checked)
{
    char *arn = create_key(NULL);
    struct client good, bad;
    struct client_opts go = {.akid = "ASIATEST", .secret = "temp-secret", .token = "tok-1"};
    struct client_opts bo = {.akid = "ASIATEST", .secret = "temp-secret", .token = "tok-2"};
    struct ks_kms_result r;
    struct ks_error err;
    json_object *log;
    ks_status st;

    admin_do("POST", "/credentials",
             "{\"accessKeyId\":\"ASIATEST\",\"secretAccessKey\":\"temp-secret\","
             "\"sessionToken\":\"tok-1\"}");
    client_open(&good, &go);
    client_open(&bad, &bo);
    ks_kms_result_init(&r);
    st = good.kms->ops->generate_data_key_without_plaintext(good.kms, &no_grants, arn, 32, NULL, &r,
                                                            &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    log = request_log();
    cr_assert(json_object_get_boolean(json_object_object_get(log_entry(log, 0), "sessionToken")));
    cr_assert_str_eq(log_string(log_entry(log, 0), "accessKeyId"), "ASIATEST");
    json_object_put(log);
    st = bad.kms->ops->generate_data_key_without_plaintext(bad.kms, &no_grants, arn, 32, NULL, &r,
                                                           &err);
    expect_kms_error(st, &err, "UnrecognizedClientException");

    client_close(&good);
    client_close(&bad);
    ks_kms_result_free(&r);
    free(arn);
}

Test(aws_kms, grant_tokens_are_passed_through_on_every_operation)
{
    char *a = create_key(NULL), *b = create_key(NULL);
    const char *tokens[] = {"grant-token-1", "grant-token-2"};
    struct ks_kms_call call = {tokens, 2};
    struct ks_kms_result r1, r2, r3;
    struct ks_error err;
    json_object *log;
    size_t i;

    ks_kms_result_init(&r1);
    ks_kms_result_init(&r2);
    ks_kms_result_init(&r3);
    cr_assert_eq(
        cl.kms->ops->generate_data_key_without_plaintext(cl.kms, &call, a, 32, NULL, &r1, &err),
        KS_OK, "%s", err.message);
    cr_assert_eq(cl.kms->ops->generate_data_key(cl.kms, &call, a, 32, NULL, &r2, &err), KS_OK, "%s",
                 err.message);
    cr_assert_eq(
        cl.kms->ops->encrypt(cl.kms, &call, a, (const unsigned char *)"x", 1, NULL, &r3, &err),
        KS_OK, "%s", err.message);
    cr_assert_eq(cl.kms->ops->decrypt(cl.kms, &call, a, r3.ciphertext.data, r3.ciphertext.len, NULL,
                                      &r2, &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(cl.kms->ops->re_encrypt(cl.kms, &call, r1.ciphertext.data, r1.ciphertext.len, NULL,
                                         a, b, NULL, &r3, &err),
                 KS_OK, "%s", err.message);
    log = request_log();
    for (i = 0; i < 5; i++) {
        json_object *gt = json_object_object_get(log_entry(log, i), "grantTokens");
        cr_assert_eq(json_object_array_length(gt), 2, "request %zu", i);
        cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(gt, 0)), tokens[0]);
        cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(gt, 1)), tokens[1]);
    }
    json_object_put(log);

    ks_kms_result_free(&r1);
    ks_kms_result_free(&r2);
    ks_kms_result_free(&r3);
    free(a);
    free(b);
}

Test(aws_kms, requests_carry_what_the_call_names)
{
    char *arn = create_key(NULL);
    struct ks_kms_result enc, dec;
    struct ks_ec ec;
    struct ks_error err;
    json_object *log, *e, *ctx;

    ec_of(&ec, "aws-crypto-ec:tenant", "t1", NULL, NULL);
    ks_kms_result_init(&enc);
    ks_kms_result_init(&dec);
    cr_assert_eq(cl.kms->ops->generate_data_key_without_plaintext(cl.kms, &no_grants, arn, 32, &ec,
                                                                  &enc, &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(decrypt(&cl, NULL, &enc.ciphertext, &ec, &dec, &err), KS_OK, "%s", err.message);
    log = request_log();
    e = log_entry(log, 0);
    cr_assert_eq(json_object_get_int(json_object_object_get(e, "numberOfBytes")), 32);
    cr_assert_null(log_string(e, "keySpec"));
    cr_assert_str_eq(log_string(e, "keyId"), arn);
    ctx = json_object_object_get(e, "encryptionContext");
    cr_assert_str_eq(json_object_get_string(json_object_object_get(ctx, "aws-crypto-ec:tenant")),
                     "t1");
    cr_assert_null(log_string(log_entry(log, 1), "keyId"), "Decrypt without KeyId sends none");
    cr_assert_eq(json_object_array_length(json_object_object_get(log_entry(log, 1), "grantTokens")),
                 0, "no grant tokens sent");
    json_object_put(log);

    ks_kms_result_free(&enc);
    ks_kms_result_free(&dec);
    ks_ec_free(&ec);
    free(arn);
}

/* ---------------------------------------------------------------------------------------- */
/* Retries and failures                                                                      */

Test(aws_kms, throttled_twice_then_succeeds)
{
    char *arn = create_key(NULL);
    struct ks_kms_result r;
    struct ks_error err;
    ks_status st;

    fault("{\"fault\":\"throttle\",\"count\":2}");
    ks_kms_result_init(&r);
    st = cl.kms->ops->generate_data_key(cl.kms, &no_grants, arn, 32, NULL, &r, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_eq(r.plaintext_len, 32);
    cr_assert_eq(calls("GenerateDataKey"), 3);

    ks_kms_result_free(&r);
    free(arn);
}

Test(aws_kms, throttled_forever_is_throttled)
{
    char *arn = create_key(NULL);
    struct ks_kms_result r;
    struct ks_error err;
    ks_status st;

    fault("{\"fault\":\"throttle\"}");
    ks_kms_result_init(&r);
    st = cl.kms->ops->encrypt(cl.kms, &no_grants, arn, (const unsigned char *)"x", 1, NULL, &r,
                              &err);
    cr_assert_eq(st, KS_E_THROTTLED, "status %d: %s", st, err.message);
    cr_assert_eq(calls("Encrypt"), 3, "3 attempts for KMS");
    cr_assert_null(r.key_id);

    ks_kms_result_free(&r);
    free(arn);
}

Test(aws_kms, internal_error_is_retried)
{
    char *arn = create_key(NULL);
    struct ks_kms_result r;
    struct ks_error err;
    ks_status st;

    fault("{\"fault\":\"internal\",\"count\":1}");
    ks_kms_result_init(&r);
    st = cl.kms->ops->generate_data_key_without_plaintext(cl.kms, &no_grants, arn, 32, NULL, &r,
                                                          &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_eq(calls("GenerateDataKeyWithoutPlaintext"), 2);

    fault("{\"fault\":\"internal\"}");
    st = cl.kms->ops->generate_data_key_without_plaintext(cl.kms, &no_grants, arn, 32, NULL, &r,
                                                          &err);
    cr_assert_eq(st, KS_E_UNAVAILABLE, "status %d: %s", st, err.message);
    cr_assert_eq(calls("GenerateDataKeyWithoutPlaintext"), 5);

    ks_kms_result_free(&r);
    free(arn);
}

Test(aws_kms, delay_over_the_timeout_is_unavailable)
{
    char *arn = create_key(NULL);
    struct client slow;
    struct client_opts so = {.request_timeout_ms = 300};
    struct ks_kms_result r;
    struct ks_error err;
    uint64_t t0;
    ks_status st;

    client_open(&slow, &so);
    fault("{\"fault\":\"delay\",\"ms\":2000}");
    ks_kms_result_init(&r);
    t0 = ks_monotonic_us();
    st = slow.kms->ops->generate_data_key(slow.kms, &no_grants, arn, 32, NULL, &r, &err);
    cr_assert_eq(st, KS_E_UNAVAILABLE, "status %d: %s", st, err.message);
    cr_assert_lt(ks_monotonic_us() - t0, 5000000, "gave up within the attempt timeouts");
    cr_assert_eq(calls("GenerateDataKey"), 3);
    cr_assert_null(r.plaintext);

    /* A delay under the timeout is just a slow answer. */
    admin_do("DELETE", "/faults", NULL);
    fault("{\"fault\":\"delay\",\"ms\":50,\"count\":1}");
    st = slow.kms->ops->generate_data_key(slow.kms, &no_grants, arn, 32, NULL, &r, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);

    client_close(&slow);
    ks_kms_result_free(&r);
    free(arn);
}

Test(aws_kms, dropped_connection_is_retried_then_unavailable)
{
    char *arn = create_key(NULL);
    struct ks_kms_result r;
    struct ks_error err;
    ks_status st;
    int n;

    fault("{\"fault\":\"drop\",\"count\":1}");
    ks_kms_result_init(&r);
    st = cl.kms->ops->generate_data_key(cl.kms, &no_grants, arn, 32, NULL, &r, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_eq(calls("GenerateDataKey"), 2);

    fault("{\"fault\":\"drop\"}");
    st = cl.kms->ops->generate_data_key(cl.kms, &no_grants, arn, 32, NULL, &r, &err);
    cr_assert_eq(st, KS_E_UNAVAILABLE, "status %d: %s", st, err.message);
    /* 3 attempts. The first goes out on the connection the previous call left open, and
     * libcurl itself resends a request once when a reused connection dies before any response
     * byte ("Connection died, retrying a fresh connect"), so the peer may see a fourth. */
    n = calls("GenerateDataKey") - 2;
    cr_assert(n == 3 || n == 4, "%d attempts", n);

    ks_kms_result_free(&r);
    free(arn);
}

Test(aws_kms, nothing_listening_is_unavailable)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    char url[64];
    struct client gone;
    struct client_opts go = {.endpoint = url};
    struct ks_kms_result r;
    struct ks_error err;
    ks_status st;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* A port that was free a moment ago and has no listener. */
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    close(fd);

    client_open(&gone, &go);
    ks_kms_result_init(&r);
    st = gone.kms->ops->decrypt(gone.kms, &no_grants, NULL, (const unsigned char *)"abc", 3, NULL,
                                &r, &err);
    cr_assert_eq(st, KS_E_UNAVAILABLE, "status %d: %s", st, err.message);
    st = gone.kms->ops->ping(gone.kms, &err);
    cr_assert_eq(st, KS_E_UNAVAILABLE, "status %d: %s", st, err.message);
    client_close(&gone);
}

/* ---------------------------------------------------------------------------------------- */
/* Ping                                                                                      */

Test(aws_kms, ping_describes_the_configured_key)
{
    char *arn = create_key(NULL);
    struct client c;
    struct client_opts o = {.arn = arn};
    struct ks_error err;
    json_object *log;

    client_open(&c, &o);
    cr_assert_eq(c.kms->ops->ping(c.kms, &err), KS_OK, "%s", err.message);
    log = request_log();
    cr_assert_str_eq(log_string(log_entry(log, 0), "operation"), "DescribeKey");
    cr_assert_str_eq(log_string(log_entry(log, 0), "keyId"), arn);
    cr_assert_eq(json_object_get_int(json_object_object_get(log_entry(log, 0), "status")), 200);
    json_object_put(log);
    /* A disabled key is a per-request error, not an unreachable KMS. */
    set_key("/keys/state", arn, "\"state\":\"Disabled\"");
    cr_assert_eq(c.kms->ops->ping(c.kms, &err), KS_OK, "%s", err.message);
    client_close(&c);
    free(arn);
}

Test(aws_kms, ping_under_discovery_counts_any_kms_answer)
{
    struct client bad;
    struct client_opts bo = {.secret = "wrong"};
    struct ks_error err;
    json_object *log;

    cr_assert_eq(cl.kms->ops->ping(cl.kms, &err), KS_OK, "%s", err.message);
    log = request_log();
    cr_assert_str_eq(log_string(log_entry(log, 0), "keyId"), PROBE_ALIAS);
    cr_assert_str_eq(log_string(log_entry(log, 0), "type"), "NotFoundException");
    json_object_put(log);
    fault("{\"fault\":\"throttle\"}");
    cr_assert_eq(cl.kms->ops->ping(cl.kms, &err), KS_OK, "%s", err.message);
    admin_do("DELETE", "/faults", NULL);
    client_open(&bad, &bo);
    cr_assert_eq(bad.kms->ops->ping(bad.kms, &err), KS_OK, "%s", err.message);
    client_close(&bad);
    fault("{\"fault\":\"unavailable\"}");
    cr_assert_eq(cl.kms->ops->ping(cl.kms, &err), KS_E_UNAVAILABLE, "%s", err.message);
}

/* ---------------------------------------------------------------------------------------- */
/* Responses the scanner must read, and ones it must refuse                                  */

static ks_status decrypt_with_response(const char *body, struct ks_kms_result *r,
                                       struct ks_error *err)
{
    json_object *rule = json_object_new_object();
    json_object_object_add(rule, "fault", json_object_new_string("respond"));
    json_object_object_add(rule, "count", json_object_new_int(1));
    json_object_object_add(rule, "body", json_object_new_string(body));
    fault(json_object_to_json_string(rule));
    json_object_put(rule);
    ks_error_clear(err);
    return cl.kms->ops->decrypt(cl.kms, &no_grants, NULL, (const unsigned char *)"abc", 3, NULL, r,
                                err);
}

Test(aws_kms, response_scanner_reads_escapes_and_skips_other_members)
{
    struct ks_kms_result r;
    struct ks_error err;
    ks_status st;
    static const unsigned char want[] = {0, 1, 2, 3};

    ks_kms_result_init(&r);
    st = decrypt_with_response(
        " {\"Extra\":{\"a\":[1,-2.5e3,{\"b\":null}],\"c\":true,\"d\":\"x\\\"y\"},"
        "\"KeyId\":\"arn:aws:kms:us-west-2:111122223333:key\\/k\\u00fc\\ud83d\\ude00\","
        "\"EncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\",\"Plaintext\":\"AAEC\\u0041w==\","
        "\"Empty\":[],\"Obj\":{},"
        "\"AMemberNameLongerThanAnyTheScannerComparesAMemberNameLongerThanAnyTheScanner\":"
        "\"v\"} \n",
        &r, &err);
    cr_assert_eq(st, KS_OK, "%s", err.message);
    cr_assert_str_eq(r.key_id, "arn:aws:kms:us-west-2:111122223333:key/k\xc3\xbc\xf0\x9f\x98\x80");
    cr_assert_eq(r.plaintext_len, 4);
    cr_assert_eq(memcmp(r.plaintext, want, 4), 0);
    ks_kms_result_free(&r);
}

Test(aws_kms, response_scanner_refuses_malformed_responses)
{
    static const char *const bad[] = {
        "not json",
        "{\"KeyId\":\"k\"}",                                     /* no Plaintext */
        "{\"KeyId\":\"k\",\"Plaintext\":null}",                  /* null Plaintext */
        "{\"KeyId\":\"k\",\"Plaintext\":\"AAECAw==\"} trailing", /* garbage after */
        "{\"KeyId\":\"k\",\"Plaintext\":\"AAECAw==\",\"Plaintext\":\"AAECAw==\"}", /* twice */
        "{\"KeyId\":\"k\",\"Plaintext\":\"AAECAw=\"}",                             /* bad padding */
        "{\"KeyId\":\"k\",\"Plaintext\":\"AAECAx==\"}",           /* non-zero trailing bits */
        "{\"KeyId\":\"k\",\"Plaintext\":\"AA EC\"}",              /* not base64 */
        "{\"KeyId\":\"k\",\"Plaintext\":12}",                     /* wrong type */
        "{\"KeyId\":\"k\",\"Plaintext\":\"AAECAw==\"",            /* unterminated */
        "{\"KeyId\":\"k\\ud800\",\"Plaintext\":\"AAECAw==\"}",    /* lone surrogate */
        "{\"KeyId\":\"k\",\"Plaintext\":\"AAECAw==\",\"x\":[1,}", /* bad skipped value */
        "[\"KeyId\",\"Plaintext\"]",                              /* not an object */
    };
    struct ks_kms_result r;
    struct ks_error err;
    size_t i;

    ks_kms_result_init(&r);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ks_status st = decrypt_with_response(bad[i], &r, &err);
        cr_assert_eq(st, KS_E_KMS, "case %zu: status %d (%s)", i, st, err.message);
        cr_assert(strstr(err.message, "malformed response"), "case %zu: %s", i, err.message);
        cr_assert_null(r.plaintext);
        cr_assert_null(r.key_id);
    }
}

Test(aws_kms, generate_data_key_refuses_a_plaintext_of_the_wrong_length)
{
    char *arn = create_key(NULL);
    struct ks_kms_result r;
    struct ks_error err;
    ks_status st;

    fault("{\"fault\":\"respond\",\"count\":1,\"body\":"
          "\"{\\\"CiphertextBlob\\\":\\\"AAAA\\\",\\\"KeyId\\\":\\\"k\\\","
          "\\\"Plaintext\\\":\\\"AAECAw==\\\"}\"}");
    ks_kms_result_init(&r);
    st = cl.kms->ops->generate_data_key(cl.kms, &no_grants, arn, 32, NULL, &r, &err);
    cr_assert_eq(st, KS_E_KMS, "status %d: %s", st, err.message);
    cr_assert(strstr(err.message, "Plaintext is 4 bytes"), "%s", err.message);
    cr_assert_null(r.plaintext);
    free(arn);
}

/* ---------------------------------------------------------------------------------------- */
/* Threads                                                                                   */

struct worker {
    const char *arn;
    int failures;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    int i;

    for (i = 0; i < 10; i++) {
        struct ks_kms_result gen, dec;
        struct ks_error err;

        ks_kms_result_init(&gen);
        ks_kms_result_init(&dec);
        if (cl.kms->ops->generate_data_key(cl.kms, &no_grants, w->arn, 32, NULL, &gen, &err) !=
                KS_OK ||
            cl.kms->ops->decrypt(cl.kms, &no_grants, w->arn, gen.ciphertext.data,
                                 gen.ciphertext.len, NULL, &dec, &err) != KS_OK ||
            dec.plaintext_len != 32 || memcmp(dec.plaintext, gen.plaintext, 32) != 0)
            w->failures++;
        ks_kms_result_free(&gen);
        ks_kms_result_free(&dec);
    }
    return NULL;
}

Test(aws_kms, one_backend_serves_many_threads)
{
    char *arn = create_key(NULL);
    pthread_t t[8];
    struct worker w[8];
    int i;

    for (i = 0; i < 8; i++) {
        w[i].arn = arn;
        w[i].failures = 0;
        cr_assert_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].failures, 0, "thread %d", i);
    }
    cr_assert_eq(calls("GenerateDataKey"), 80);
    cr_assert_eq(calls("Decrypt"), 80);
    free(arn);
}

/* ---------------------------------------------------------------------------------------- */
/* Construction                                                                              */

Test(aws_kms, create_refuses_a_local_relationship)
{
    struct ks_kms_rel_config cfg;
    struct ks_kms *k = NULL;
    struct ks_error err;
    char name[] = "local";

    memset(&cfg, 0, sizeof cfg);
    cfg.name = name;
    cfg.type = KS_KMS_LOCAL;
    cr_assert_eq(ks_kms_aws_create(&cfg, cl.creds, &k, &err), KS_E_CONFIG);
    cr_assert_null(k);
    cfg.type = KS_KMS_AWS;
    cr_assert_eq(ks_kms_aws_create(&cfg, cl.creds, &k, &err), KS_E_CONFIG, "no region");
    cr_assert_null(k);
}
