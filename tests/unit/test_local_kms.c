/*
 * test_local_kms.c - the local KMS (kms/local_kms.c) against AWS KMS's semantics
 * (docs/reference/aws-apis.md section 2) and its key file rules (kms.h). Every test works in its
 * own temporary directory, removed afterwards.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/ec.h"
#include "common/util.h"
#include "kms/kms.h"

#define ARN_PREFIX "arn:aws:kms:local:000000000000:key/"
#define ARN_LEN (sizeof ARN_PREFIX - 1 + KS_UUID_LEN)
#define HEADER "keystored-local-kms v1\n"
/* 32 bytes of 0x01 and 0x02, base64. */
#define KEY_A "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define KEY_B "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
#define UUID_A "11111111-1111-4111-8111-111111111111"
#define UUID_B "22222222-2222-4222-8222-222222222222"

static char dir[64];
static char path[128];

static void setup(void)
{
    memcpy(dir, "/tmp/ks-test-kms-XXXXXX", sizeof "/tmp/ks-test-kms-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/local.keys", dir);
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        char p[512];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

TestSuite(local_kms, .init = setup, .fini = teardown);

/* ---------------------------------------------------------------------------------------- */

static struct ks_kms *open_ok(const char *const *arns, size_t n)
{
    struct ks_kms *k = NULL;
    struct ks_error err;
    ks_error_clear(&err);
    ks_status st = ks_kms_local_open(path, arns, n, KS_KMS_LOCAL_MAY_CREATE, &k, &err);
    cr_assert_eq(st, KS_OK, "open: %s", err.message);
    cr_assert_not_null(k);
    return k;
}

static void open_fails(const char *const *arns, size_t n, const char *want1, const char *want2)
{
    struct ks_kms *k = NULL;
    struct ks_error err;
    ks_error_clear(&err);
    ks_status st = ks_kms_local_open(path, arns, n, KS_KMS_LOCAL_MAY_CREATE, &k, &err);
    cr_assert_eq(st, KS_E_CONFIG, "status %d: %s", st, err.message);
    cr_assert_eq(err.code, KS_E_CONFIG);
    cr_assert_null(k);
    cr_assert_not_null(strstr(err.message, want1), "'%s' lacks '%s'", err.message, want1);
    if (want2)
        cr_assert_not_null(strstr(err.message, want2), "'%s' lacks '%s'", err.message, want2);
}

static void write_file(const char *p, const char *text, mode_t mode)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
}

/* The whole file as a malloc'd string. */
static char *read_text(const char *p)
{
    FILE *f = fopen(p, "rb");
    char *buf = calloc(1, 65536);
    size_t n;
    cr_assert_not_null(f);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static void default_arn(struct ks_kms *k, char out[ARN_LEN + 1])
{
    cr_assert_eq(ks_kms_local_default_arn(k, out, ARN_LEN + 1), KS_OK);
}

static void fresh_arn(char out[ARN_LEN + 1])
{
    char uuid[KS_UUID_LEN + 1];
    cr_assert_eq(ks_uuid_v4(uuid), 0);
    snprintf(out, ARN_LEN + 1, ARN_PREFIX "%s", uuid);
}

static void ec_add(struct ks_ec *ec, const char *key, const char *value)
{
    cr_assert_eq(ks_ec_set(ec, key, value), 0);
}

/* The context used by most tests: the shape of an HV-1 branch key item's context. */
static void sample_ec(struct ks_ec *ec)
{
    ks_ec_init(ec);
    ec_add(ec, "branch-key-id", "bk-1");
    ec_add(ec, "type", "branch:ACTIVE");
    ec_add(ec, "tablename", "default");
}

static const unsigned char secret32[32] = "0123456789abcdef0123456789abcdef";

static void encrypt_ok(struct ks_kms *k, const char *key_id, const struct ks_ec *ec,
                       struct ks_kms_result *r)
{
    struct ks_error err;
    ks_kms_result_init(r);
    cr_assert_eq(k->ops->encrypt(k, NULL, key_id, secret32, sizeof secret32, ec, r, &err), KS_OK,
                 "encrypt: %s", err.message);
}

/* Decrypt expected to fail with KS_E_KMS and the given AWS error name first. */
static void decrypt_fails(struct ks_kms *k, const char *key_id, const unsigned char *blob,
                          size_t len, const struct ks_ec *ec, const char *aws_error)
{
    struct ks_kms_result r;
    struct ks_error err;
    ks_kms_result_init(&r);
    ks_error_clear(&err);
    ks_status st = k->ops->decrypt(k, NULL, key_id, blob, len, ec, &r, &err);
    cr_assert_eq(st, KS_E_KMS, "status %d (%s)", st, err.message);
    /* The client-facing message names the dependency and the code; the explanation is in the
     * log-only detail, which starts with the code. */
    cr_assert_eq(strncmp(err.detail, aws_error, strlen(aws_error)), 0, "'%s' is not %s", err.detail,
                 aws_error);
    cr_assert_eq(strncmp(err.message, "KMS ", 4), 0, "%s", err.message);
    cr_assert_eq(strncmp(err.message + 4, aws_error, strlen(aws_error) - 2), 0, "%s", err.message);
    cr_assert_null(r.plaintext);
    cr_assert_null(r.key_id);
    ks_kms_result_free(&r);
}

static void decrypt_ok(struct ks_kms *k, const char *key_id, const struct ks_bytes *blob,
                       const struct ks_ec *ec, const unsigned char *want, size_t want_len,
                       const char *want_arn)
{
    struct ks_kms_result r;
    struct ks_error err;
    ks_kms_result_init(&r);
    ks_status st = k->ops->decrypt(k, NULL, key_id, blob->data, blob->len, ec, &r, &err);
    cr_assert_eq(st, KS_OK, "decrypt: %s", err.message);
    cr_assert_eq(r.plaintext_len, want_len);
    cr_assert_eq(memcmp(r.plaintext, want, want_len), 0);
    cr_assert_str_eq(r.key_id, want_arn);
    ks_kms_result_free(&r);
}

/* ---------------------------------------------------------------------------------------- */
/* Key file                                                                                  */

Test(local_kms, creates_key_file_0600_with_header_and_one_key)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char arn[ARN_LEN + 1], *text, *nl;
    unsigned char *key = NULL;
    size_t key_len = 0;
    struct stat st;

    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    text = read_text(path);
    cr_assert_eq(strncmp(text, HEADER, strlen(HEADER)), 0);
    cr_assert_eq(count_lines(text), 2);
    default_arn(k, arn);
    cr_assert_eq(strncmp(arn, ARN_PREFIX, strlen(ARN_PREFIX)), 0);
    cr_assert(ks_uuid_is_valid(arn + strlen(ARN_PREFIX)));
    /* line 2: "<uuid of the default ARN> <base64 of 32 bytes>" */
    cr_assert_eq(strncmp(text + strlen(HEADER), arn + strlen(ARN_PREFIX), KS_UUID_LEN), 0);
    cr_assert_eq(text[strlen(HEADER) + KS_UUID_LEN], ' ');
    nl = strchr(text + strlen(HEADER), '\n');
    const char *b64 = text + strlen(HEADER) + KS_UUID_LEN + 1;
    cr_assert_eq(ks_base64_decode(b64, (size_t)(nl - b64), &key, &key_len), 0);
    cr_assert_eq(key_len, 32);
    free(key);
    free(text);
    ks_kms_destroy(k);
}

Test(local_kms, creates_key_file_0600_under_a_loose_umask)
{
    mode_t old = umask(0);
    struct ks_kms *k = open_ok(NULL, 0);
    struct stat st;
    umask(old);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    ks_kms_destroy(k);
}

Test(local_kms, reopen_keeps_the_key)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char arn1[ARN_LEN + 1], arn2[ARN_LEN + 1];
    struct ks_kms_result r;
    struct ks_ec ec;

    sample_ec(&ec);
    default_arn(k, arn1);
    encrypt_ok(k, arn1, &ec, &r);
    ks_kms_destroy(k);

    k = open_ok(NULL, 0);
    default_arn(k, arn2);
    cr_assert_str_eq(arn1, arn2);
    decrypt_ok(k, NULL, &r.ciphertext, &ec, secret32, sizeof secret32, arn1);
    ks_kms_result_free(&r);
    ks_ec_free(&ec);
    ks_kms_destroy(k);
}

Test(local_kms, reads_a_written_key_file)
{
    struct ks_kms *k;
    char arn[ARN_LEN + 1];

    write_file(path, HEADER UUID_A " " KEY_A "\n" UUID_B " " KEY_B "\n", 0600);
    k = open_ok(NULL, 0);
    default_arn(k, arn);
    cr_assert_str_eq(arn, ARN_PREFIX UUID_A);
    ks_kms_destroy(k);
    /* A final newline is optional. */
    write_file(path, HEADER UUID_B " " KEY_B, 0600);
    k = open_ok(NULL, 0);
    default_arn(k, arn);
    cr_assert_str_eq(arn, ARN_PREFIX UUID_B);
    ks_kms_destroy(k);
}

Test(local_kms, ensure_arns_adds_a_key_atomically)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char first[ARN_LEN + 1], extra[ARN_LEN + 1], arn[ARN_LEN + 1], *text;
    const char *arns[2];
    struct ks_kms_result r;
    struct stat st;
    struct ks_ec ec;

    default_arn(k, first);
    ks_kms_destroy(k);

    fresh_arn(extra);
    arns[0] = extra;
    arns[1] = first; /* already present: not added again */
    k = open_ok(arns, 2);
    default_arn(k, arn);
    cr_assert_str_eq(arn, first, "the first key stays the default");
    sample_ec(&ec);
    encrypt_ok(k, extra, &ec, &r);
    cr_assert_str_eq(r.key_id, extra);
    ks_kms_destroy(k);

    text = read_text(path);
    cr_assert_eq(count_lines(text), 3);
    cr_assert_not_null(strstr(text, extra + strlen(ARN_PREFIX)));
    free(text);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);

    /* The added key persists: reopen without ensure_arns and decrypt. */
    k = open_ok(NULL, 0);
    decrypt_ok(k, extra, &r.ciphertext, &ec, secret32, sizeof secret32, extra);
    ks_kms_destroy(k);

    /* Only the key file is left in the directory: no temporary file. */
    DIR *d = opendir(dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL)
        files += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(files, 1);
    ks_kms_result_free(&r);
    ks_ec_free(&ec);
}

Test(local_kms, ensure_arns_present_does_not_rewrite)
{
    struct ks_kms *k;
    const char *arns[] = {ARN_PREFIX UUID_B};
    struct stat before, after;

    write_file(path, HEADER UUID_A " " KEY_A "\n" UUID_B " " KEY_B "\n", 0600);
    cr_assert_eq(stat(path, &before), 0);
    k = open_ok(arns, 1);
    cr_assert_eq(stat(path, &after), 0);
    cr_assert_eq(before.st_ino, after.st_ino);
    ks_kms_destroy(k);
}

Test(local_kms, ensure_arns_on_a_missing_file_creates_default_then_ensured)
{
    char extra[ARN_LEN + 1], arn[ARN_LEN + 1], *text;
    const char *arns[1];
    struct ks_kms *k;

    fresh_arn(extra);
    arns[0] = extra;
    k = open_ok(arns, 1);
    default_arn(k, arn);
    cr_assert_str_neq(arn, extra);
    text = read_text(path);
    cr_assert_eq(count_lines(text), 3);
    free(text);
    ks_kms_destroy(k);
}

/* KS_KMS_LOCAL_NO_CREATE: opens what exists, creates nothing. */
static ks_status open_no_create(const char *const *arns, size_t n, struct ks_kms **k,
                                struct ks_error *err)
{
    *k = NULL;
    ks_error_clear(err);
    return ks_kms_local_open(path, arns, n, KS_KMS_LOCAL_NO_CREATE, k, err);
}

Test(local_kms, no_create_refuses_a_missing_file_and_writes_nothing)
{
    const char *arns[] = {ARN_PREFIX UUID_A};
    struct ks_error err;
    struct ks_kms *k;

    cr_assert_eq(open_no_create(NULL, 0, &k, &err), KS_E_NOT_FOUND);
    cr_assert_null(k);
    cr_assert_not_null(strstr(err.message, path), "%s", err.message);
    cr_assert_not_null(strstr(err.message, "does not exist"), "%s", err.message);
    cr_assert_not_null(strstr(err.message, "refusing to create"), "%s", err.message);
    cr_assert_eq(access(path, F_OK), -1, "the key file was created");
    /* Also with an ensured key. */
    cr_assert_eq(open_no_create(arns, 1, &k, &err), KS_E_NOT_FOUND);
    cr_assert_null(k);
    cr_assert_eq(access(path, F_OK), -1, "the key file was created");
}

Test(local_kms, no_create_refuses_a_missing_key_and_leaves_the_file)
{
    const char *arns[] = {ARN_PREFIX UUID_A, ARN_PREFIX UUID_B};
    const char *original = HEADER UUID_A " " KEY_A "\n";
    struct ks_error err;
    struct stat before, after;
    struct ks_kms *k;
    char *text;

    write_file(path, original, 0600);
    cr_assert_eq(stat(path, &before), 0);
    cr_assert_eq(open_no_create(arns, 2, &k, &err), KS_E_NOT_FOUND);
    cr_assert_null(k);
    cr_assert_not_null(strstr(err.message, UUID_B), "%s", err.message);
    cr_assert_null(strstr(err.message, UUID_A), "%s", err.message);
    cr_assert_not_null(strstr(err.message, path), "%s", err.message);
    cr_assert_not_null(strstr(err.message, "refusing to create"), "%s", err.message);
    cr_assert_null(strstr(err.message, KEY_A), "key bytes in the message");
    cr_assert_eq(stat(path, &after), 0);
    cr_assert_eq(before.st_ino, after.st_ino, "the key file was replaced");
    text = read_text(path);
    cr_assert_str_eq(text, original);
    free(text);
}

Test(local_kms, no_create_opens_what_exists)
{
    const char *arns[] = {ARN_PREFIX UUID_B};
    char arn[ARN_LEN + 1];
    struct ks_error err;
    struct stat before, after;
    struct ks_kms *k;

    write_file(path, HEADER UUID_A " " KEY_A "\n" UUID_B " " KEY_B "\n", 0600);
    cr_assert_eq(stat(path, &before), 0);
    cr_assert_eq(open_no_create(arns, 1, &k, &err), KS_OK, "%s", err.message);
    default_arn(k, arn);
    cr_assert_str_eq(arn, ARN_PREFIX UUID_A);
    ks_kms_destroy(k);
    cr_assert_eq(open_no_create(NULL, 0, &k, &err), KS_OK, "%s", err.message);
    ks_kms_destroy(k);
    cr_assert_eq(stat(path, &after), 0);
    cr_assert_eq(before.st_ino, after.st_ino);
    cr_assert_eq(before.st_mtime, after.st_mtime);
}

Test(local_kms, no_create_still_checks_the_file)
{
    struct ks_error err;
    struct ks_kms *k;

    /* A bad file is still a configuration error, not "missing". */
    write_file(path, HEADER UUID_A " " KEY_A "\n", 0644);
    cr_assert_eq(open_no_create(NULL, 0, &k, &err), KS_E_CONFIG);
    cr_assert_not_null(strstr(err.message, "0600"), "%s", err.message);
}

Test(local_kms, ensure_arns_refuses_non_local_arns)
{
    const char *aws[] = {"arn:aws:kms:us-east-1:123456789012:key/" UUID_A};
    const char *bare[] = {UUID_A};
    const char *upper[] = {ARN_PREFIX "AAAAAAAA-1111-4111-8111-111111111111"};
    const char *alias[] = {"arn:aws:kms:local:000000000000:alias/foo"};
    const char *null_arn[] = {NULL};
    struct stat st;

    open_fails(aws, 1, "is not a local KMS key ARN", "us-east-1");
    open_fails(bare, 1, "is not a local KMS key ARN", NULL);
    open_fails(upper, 1, "is not a local KMS key ARN", NULL);
    open_fails(alias, 1, "is not a local KMS key ARN", NULL);
    open_fails(null_arn, 1, "is not a local KMS key ARN", NULL);
    cr_assert_neq(stat(path, &st), 0, "nothing written for a bad config");
}

Test(local_kms, refuses_group_or_other_access)
{
    char want[256];
    snprintf(want, sizeof want, "key file %s must be mode 0600", path);
    write_file(path, HEADER UUID_A " " KEY_A "\n", 0644);
    open_fails(NULL, 0, want, NULL);
    write_file(path, HEADER UUID_A " " KEY_A "\n", 0640);
    open_fails(NULL, 0, want, NULL);
    write_file(path, HEADER UUID_A " " KEY_A "\n", 0604);
    open_fails(NULL, 0, want, NULL);
    write_file(path, HEADER UUID_A " " KEY_A "\n", 0400);
    ks_kms_destroy(open_ok(NULL, 0));
}

Test(local_kms, refuses_bad_header)
{
    char want[256];
    snprintf(want, sizeof want, "%s:1:", path);
    write_file(path, "keystored-local-kms v2\n" UUID_A " " KEY_A "\n", 0600);
    open_fails(NULL, 0, want, "header");
    write_file(path, UUID_A " " KEY_A "\n", 0600);
    open_fails(NULL, 0, want, "header");
    write_file(path, "", 0600);
    open_fails(NULL, 0, want, "header");
}

Test(local_kms, refuses_bad_base64_naming_the_line)
{
    char want[256];
    snprintf(want, sizeof want, "%s:3:", path);
    write_file(
        path, HEADER UUID_A " " KEY_A "\n" UUID_B " AgICAgICAgICAgI*AgICAgICAgICAgICAgICAgICAgI=\n",
        0600);
    open_fails(NULL, 0, want, "base64");
    write_file(path, HEADER UUID_A " " KEY_A "\n" UUID_B " " KEY_B "\r\n", 0600);
    open_fails(NULL, 0, want, "base64");
}

Test(local_kms, refuses_short_key_naming_the_line)
{
    char want[256];
    snprintf(want, sizeof want, "%s:2:", path);
    write_file(path, HEADER UUID_A " AQEBAQEBAQEBAQEBAQEBAQ==\n", 0600);
    open_fails(NULL, 0, want, "16 bytes, expected 32");
}

Test(local_kms, refuses_duplicate_key_naming_the_line)
{
    char want[256];
    snprintf(want, sizeof want, "%s:3:", path);
    write_file(path, HEADER UUID_A " " KEY_A "\n" UUID_A " " KEY_B "\n", 0600);
    open_fails(NULL, 0, want, "duplicate");
}

Test(local_kms, refuses_bad_lines)
{
    char want[256];
    snprintf(want, sizeof want, "%s:2:", path);
    write_file(path, HEADER "not-a-uuid " KEY_A "\n", 0600);
    open_fails(NULL, 0, want, NULL);
    write_file(path, HEADER "AAAAAAAA-1111-4111-8111-111111111111 " KEY_A "\n", 0600);
    open_fails(NULL, 0, want, "uuid");
    write_file(path, HEADER UUID_A "\n", 0600);
    open_fails(NULL, 0, want, NULL);
    write_file(path, HEADER "\n" UUID_A " " KEY_A "\n", 0600);
    open_fails(NULL, 0, want, NULL);
    write_file(path, HEADER, 0600);
    open_fails(NULL, 0, want, "at least one key");
}

Test(local_kms, refuses_missing_directory)
{
    struct ks_kms *k = NULL;
    struct ks_error err;
    struct stat st;
    char p[192];

    snprintf(p, sizeof p, "%s/missing/local.keys", dir);
    cr_assert_eq(ks_kms_local_open(p, NULL, 0, KS_KMS_LOCAL_MAY_CREATE, &k, &err), KS_E_CONFIG);
    cr_assert_null(k);
    cr_assert_not_null(strstr(err.message, p), "%s", err.message);
    cr_assert_not_null(strstr(err.message, "does not exist"), "%s", err.message);
    cr_assert_neq(stat(p, &st), 0);
}

Test(local_kms, refuses_a_directory_as_key_file)
{
    struct ks_kms *k = NULL;
    struct ks_error err;
    cr_assert_eq(ks_kms_local_open(dir, NULL, 0, KS_KMS_LOCAL_MAY_CREATE, &k, &err), KS_E_CONFIG);
    cr_assert_null(k);
}

Test(local_kms, never_prints_key_bytes)
{
    /* A short key: the message names the line, not the key text. */
    write_file(path, HEADER UUID_A " AQEBAQEBAQEBAQEBAQEBAQ==\n", 0600);
    struct ks_kms *k = NULL;
    struct ks_error err;
    cr_assert_eq(ks_kms_local_open(path, NULL, 0, KS_KMS_LOCAL_MAY_CREATE, &k, &err), KS_E_CONFIG);
    cr_assert_null(strstr(err.message, "AQEBAQ"), "%s", err.message);
}

/* ---------------------------------------------------------------------------------------- */
/* Operations: round trips                                                                   */

Test(local_kms, ops_table)
{
    struct ks_kms *k = open_ok(NULL, 0);
    struct ks_error err;
    cr_assert_eq(k->ops->version, KS_KMS_OPS_VERSION);
    cr_assert_str_eq(k->ops->name, "local");
    cr_assert_eq(k->ops->ping(k, &err), KS_OK);
    ks_kms_destroy(k);
    ks_kms_destroy(NULL);
}

Test(local_kms, generate_data_key_without_plaintext_round_trip)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char arn[ARN_LEN + 1];
    struct ks_kms_result r, d;
    struct ks_error err;
    struct ks_ec ec;

    sample_ec(&ec);
    default_arn(k, arn);
    ks_kms_result_init(&r);
    cr_assert_eq(k->ops->generate_data_key_without_plaintext(k, NULL, arn, 32, &ec, &r, &err),
                 KS_OK, "%s", err.message);
    cr_assert_null(r.plaintext);
    cr_assert_eq(r.plaintext_len, 0);
    cr_assert_str_eq(r.key_id, arn);
    cr_assert_eq(r.ciphertext.len, 1 + 16 + 12 + 32 + 16);
    ks_kms_result_init(&d);
    cr_assert_eq(k->ops->decrypt(k, NULL, NULL, r.ciphertext.data, r.ciphertext.len, &ec, &d, &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(d.plaintext_len, 32);
    cr_assert_str_eq(d.key_id, arn);
    ks_kms_result_free(&d);
    ks_kms_result_free(&r);
    ks_ec_free(&ec);
    ks_kms_destroy(k);
}

Test(local_kms, generate_data_key_round_trip)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char arn[ARN_LEN + 1];
    struct ks_kms_result r, r2;
    struct ks_error err;
    struct ks_ec ec;

    sample_ec(&ec);
    default_arn(k, arn);
    ks_kms_result_init(&r);
    cr_assert_eq(k->ops->generate_data_key(k, NULL, arn + strlen(ARN_PREFIX), 64, &ec, &r, &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(r.plaintext_len, 64);
    cr_assert_str_eq(r.key_id, arn, "a bare key id still returns the ARN");
    decrypt_ok(k, arn, &r.ciphertext, &ec, r.plaintext, r.plaintext_len, arn);
    /* Two data keys differ. */
    ks_kms_result_init(&r2);
    cr_assert_eq(k->ops->generate_data_key(k, NULL, arn, 64, &ec, &r2, &err), KS_OK);
    cr_assert_neq(memcmp(r.plaintext, r2.plaintext, 64), 0);
    ks_kms_result_free(&r2);
    ks_kms_result_free(&r);
    ks_ec_free(&ec);
    ks_kms_destroy(k);
}

Test(local_kms, encrypt_decrypt_round_trip)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char arn[ARN_LEN + 1];
    struct ks_kms_result r, r2;
    struct ks_ec ec;

    sample_ec(&ec);
    default_arn(k, arn);
    encrypt_ok(k, arn, &ec, &r);
    cr_assert_str_eq(r.key_id, arn);
    cr_assert_null(r.plaintext);
    cr_assert_eq(r.ciphertext.data[0], 0x01);
    decrypt_ok(k, NULL, &r.ciphertext, &ec, secret32, sizeof secret32, arn);
    decrypt_ok(k, arn, &r.ciphertext, &ec, secret32, sizeof secret32, arn);
    decrypt_ok(k, arn + strlen(ARN_PREFIX), &r.ciphertext, &ec, secret32, sizeof secret32, arn);
    /* Random IVs: the same plaintext encrypts differently. */
    encrypt_ok(k, arn, &ec, &r2);
    cr_assert_neq(memcmp(r.ciphertext.data, r2.ciphertext.data, r.ciphertext.len), 0);
    ks_kms_result_free(&r2);
    ks_kms_result_free(&r);
    ks_ec_free(&ec);
    ks_kms_destroy(k);
}

Test(local_kms, empty_and_null_contexts_are_the_same_map)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char arn[ARN_LEN + 1];
    struct ks_kms_result r;
    struct ks_ec empty;

    ks_ec_init(&empty);
    default_arn(k, arn);
    encrypt_ok(k, arn, NULL, &r);
    decrypt_ok(k, NULL, &r.ciphertext, &empty, secret32, sizeof secret32, arn);
    decrypt_ok(k, NULL, &r.ciphertext, NULL, secret32, sizeof secret32, arn);
    ks_kms_result_free(&r);
    ks_kms_destroy(k);
}

Test(local_kms, encrypt_limits)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char arn[ARN_LEN + 1];
    unsigned char *big = calloc(1, 4097);
    struct ks_kms_result r;
    struct ks_error err;

    default_arn(k, arn);
    ks_kms_result_init(&r);
    cr_assert_eq(k->ops->encrypt(k, NULL, arn, big, 0, NULL, &r, &err), KS_E_KMS);
    cr_assert_eq(strncmp(err.detail, "ValidationException: ", 21), 0, "%s", err.detail);
    cr_assert_eq(k->ops->encrypt(k, NULL, arn, big, 4097, NULL, &r, &err), KS_E_KMS);
    cr_assert_eq(strncmp(err.detail, "ValidationException: ", 21), 0, "%s", err.detail);
    cr_assert_null(r.ciphertext.data);
    cr_assert_eq(k->ops->encrypt(k, NULL, arn, big, 4096, NULL, &r, &err), KS_OK);
    decrypt_ok(k, NULL, &r.ciphertext, NULL, big, 4096, arn);
    ks_kms_result_free(&r);
    free(big);
    ks_kms_destroy(k);
}

Test(local_kms, number_of_bytes_limits)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char arn[ARN_LEN + 1];
    struct ks_kms_result r;
    struct ks_error err;
    size_t bad[] = {0, 1025, (size_t)-1};

    default_arn(k, arn);
    ks_kms_result_init(&r);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(k->ops->generate_data_key(k, NULL, arn, bad[i], NULL, &r, &err), KS_E_KMS);
        cr_assert_eq(strncmp(err.detail, "ValidationException: ", 21), 0, "%s", err.detail);
        cr_assert_eq(
            k->ops->generate_data_key_without_plaintext(k, NULL, arn, bad[i], NULL, &r, &err),
            KS_E_KMS);
        cr_assert_eq(strncmp(err.detail, "ValidationException: ", 21), 0, "%s", err.detail);
    }
    cr_assert_null(r.ciphertext.data);
    cr_assert_eq(k->ops->generate_data_key(k, NULL, arn, 1, NULL, &r, &err), KS_OK);
    cr_assert_eq(r.plaintext_len, 1);
    /* A result is reused: its previous contents are released, not leaked. */
    cr_assert_eq(k->ops->generate_data_key(k, NULL, arn, 1024, NULL, &r, &err), KS_OK);
    cr_assert_eq(r.plaintext_len, 1024);
    ks_kms_result_free(&r);
    ks_kms_result_free(&r); /* twice is harmless */
    ks_kms_destroy(k);
}

Test(local_kms, re_encrypt_round_trip)
{
    const char *arns[] = {ARN_PREFIX UUID_B};
    struct ks_kms *k;
    char src[ARN_LEN + 1];
    struct ks_kms_result r, re;
    struct ks_error err;
    struct ks_ec ec1, ec2;

    write_file(path, HEADER UUID_A " " KEY_A "\n", 0600);
    k = open_ok(arns, 1);
    default_arn(k, src);
    sample_ec(&ec1);
    sample_ec(&ec2);
    ec_add(&ec2, "type", "branch:version:v2");
    encrypt_ok(k, src, &ec1, &r);

    ks_kms_result_init(&re);
    cr_assert_eq(k->ops->re_encrypt(k, NULL, r.ciphertext.data, r.ciphertext.len, &ec1, src, UUID_B,
                                    &ec2, &re, &err),
                 KS_OK, "%s", err.message);
    cr_assert_str_eq(re.source_key_id, ARN_PREFIX UUID_A);
    cr_assert_str_eq(re.key_id, ARN_PREFIX UUID_B);
    cr_assert_null(re.plaintext);
    decrypt_ok(k, NULL, &re.ciphertext, &ec2, secret32, sizeof secret32, ARN_PREFIX UUID_B);
    /* Only under the destination context and key. */
    decrypt_fails(k, NULL, re.ciphertext.data, re.ciphertext.len, &ec1,
                  "InvalidCiphertextException: ");
    decrypt_fails(k, src, re.ciphertext.data, re.ciphertext.len, &ec2, "IncorrectKeyException: ");
    ks_kms_result_free(&re);

    /* source_key_id may be omitted; re-encrypting to the same key and context works too. */
    ks_kms_result_init(&re);
    cr_assert_eq(k->ops->re_encrypt(k, NULL, r.ciphertext.data, r.ciphertext.len, &ec1, NULL, src,
                                    &ec1, &re, &err),
                 KS_OK, "%s", err.message);
    cr_assert_str_eq(re.source_key_id, src);
    cr_assert_str_eq(re.key_id, src);
    decrypt_ok(k, NULL, &re.ciphertext, &ec1, secret32, sizeof secret32, src);
    ks_kms_result_free(&re);

    ks_kms_result_free(&r);
    ks_ec_free(&ec1);
    ks_ec_free(&ec2);
    ks_kms_destroy(k);
}

Test(local_kms, re_encrypt_failures)
{
    const char *arns[] = {ARN_PREFIX UUID_B};
    struct ks_kms *k;
    char unknown[ARN_LEN + 1];
    struct ks_kms_result r, re;
    struct ks_error err;
    struct ks_ec ec, wrong;

    write_file(path, HEADER UUID_A " " KEY_A "\n", 0600);
    k = open_ok(arns, 1);
    sample_ec(&ec);
    sample_ec(&wrong);
    ec_add(&wrong, "tablename", "other");
    encrypt_ok(k, UUID_A, &ec, &r);
    fresh_arn(unknown);
    ks_kms_result_init(&re);

    cr_assert_eq(k->ops->re_encrypt(k, NULL, r.ciphertext.data, r.ciphertext.len, &wrong, NULL,
                                    UUID_B, &ec, &re, &err),
                 KS_E_KMS);
    cr_assert_eq(strncmp(err.detail, "InvalidCiphertextException: ", 28), 0, "%s", err.detail);
    cr_assert_eq(k->ops->re_encrypt(k, NULL, r.ciphertext.data, r.ciphertext.len, &ec, UUID_B,
                                    UUID_B, &ec, &re, &err),
                 KS_E_KMS);
    cr_assert_eq(strncmp(err.detail, "IncorrectKeyException: ", 23), 0, "%s", err.detail);
    cr_assert_eq(k->ops->re_encrypt(k, NULL, r.ciphertext.data, r.ciphertext.len, &ec, NULL,
                                    unknown, &ec, &re, &err),
                 KS_E_KMS);
    cr_assert_eq(strncmp(err.detail, "NotFoundException: ", 19), 0, "%s", err.detail);
    cr_assert_eq(k->ops->re_encrypt(k, NULL, r.ciphertext.data, r.ciphertext.len, &ec, unknown,
                                    UUID_B, &ec, &re, &err),
                 KS_E_KMS);
    cr_assert_eq(strncmp(err.detail, "NotFoundException: ", 19), 0, "%s", err.detail);
    cr_assert_eq(k->ops->re_encrypt(k, NULL, r.ciphertext.data, r.ciphertext.len, &ec, NULL, NULL,
                                    &ec, &re, &err),
                 KS_E_KMS);
    cr_assert_eq(strncmp(err.detail, "ValidationException: ", 21), 0, "%s", err.detail);
    cr_assert_null(re.ciphertext.data);
    cr_assert_null(re.key_id);
    cr_assert_null(re.source_key_id);

    ks_kms_result_free(&r);
    ks_ec_free(&ec);
    ks_ec_free(&wrong);
    ks_kms_destroy(k);
}

/* ---------------------------------------------------------------------------------------- */
/* Operations: refusals                                                                      */

Test(local_kms, decrypt_refuses_a_different_context)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char arn[ARN_LEN + 1];
    struct ks_kms_result r;
    struct ks_ec ec, other, changed, extra, missing, empty;

    default_arn(k, arn);
    sample_ec(&ec);
    encrypt_ok(k, arn, &ec, &r);

    ks_ec_init(&other);
    ec_add(&other, "purpose", "something else");
    sample_ec(&changed);
    ec_add(&changed, "branch-key-id", "bk-2");
    sample_ec(&extra);
    ec_add(&extra, "aws-crypto-ec:department", "x");
    sample_ec(&missing);
    ks_ec_remove(&missing, "tablename");
    ks_ec_init(&empty);
    /* Case matters (aws-apis.md section 2: "matched case-sensitively"). */
    struct ks_ec cased;
    sample_ec(&cased);
    ec_add(&cased, "type", "branch:active");

    const struct ks_ec *bad[] = {&other, &changed, &extra, &missing, &empty, &cased, NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        decrypt_fails(k, NULL, r.ciphertext.data, r.ciphertext.len, bad[i],
                      "InvalidCiphertextException: ");
    decrypt_fails(k, arn, r.ciphertext.data, r.ciphertext.len, &changed,
                  "InvalidCiphertextException: ");

    ks_kms_result_free(&r);
    ks_ec_free(&ec);
    ks_ec_free(&other);
    ks_ec_free(&changed);
    ks_ec_free(&extra);
    ks_ec_free(&missing);
    ks_ec_free(&cased);
    ks_kms_destroy(k);
}

Test(local_kms, decrypt_refuses_tampered_blobs)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char arn[ARN_LEN + 1];
    struct ks_kms_result r;
    struct ks_ec ec;
    size_t len;

    default_arn(k, arn);
    sample_ec(&ec);
    encrypt_ok(k, arn, &ec, &r);
    len = r.ciphertext.len;
    cr_assert_eq(len, 1 + 16 + 12 + 32 + 16);
    /* version | key id (first, last byte) | iv (first, last) | body (first, last) | tag. */
    size_t positions[] = {0, 1, 16, 17, 28, 29, len - 17, len - 16, len - 1};
    for (size_t i = 0; i < sizeof positions / sizeof positions[0]; i++) {
        unsigned char *copy = malloc(len);
        memcpy(copy, r.ciphertext.data, len);
        copy[positions[i]] ^= 0x01;
        decrypt_fails(k, NULL, copy, len, &ec, "InvalidCiphertextException: ");
        free(copy);
    }
    /* With the KeyId given, a changed key id byte is a different key. */
    unsigned char *copy = malloc(len);
    memcpy(copy, r.ciphertext.data, len);
    copy[5] ^= 0x80;
    decrypt_fails(k, arn, copy, len, &ec, "IncorrectKeyException: ");
    free(copy);
    ks_kms_result_free(&r);
    ks_ec_free(&ec);
    ks_kms_destroy(k);
}

Test(local_kms, decrypt_refuses_truncated_and_extended_blobs)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char arn[ARN_LEN + 1];
    struct ks_kms_result r;
    struct ks_ec ec;
    size_t len;

    default_arn(k, arn);
    sample_ec(&ec);
    encrypt_ok(k, arn, &ec, &r);
    len = r.ciphertext.len;
    size_t lengths[] = {1, 16, 17, 29, 44, 45, len - 16, len - 1};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++)
        decrypt_fails(k, NULL, r.ciphertext.data, lengths[i], &ec, "InvalidCiphertextException: ");
    unsigned char *longer = calloc(1, len + 1);
    memcpy(longer, r.ciphertext.data, len);
    decrypt_fails(k, NULL, longer, len + 1, &ec, "InvalidCiphertextException: ");
    free(longer);
    /* Outside CiphertextBlob's 1..6144 bytes: a validation error, as in AWS KMS. */
    decrypt_fails(k, NULL, r.ciphertext.data, 0, &ec, "ValidationException: ");
    decrypt_fails(k, NULL, NULL, 10, &ec, "ValidationException: ");
    unsigned char *huge = calloc(1, 6145);
    huge[0] = 0x01;
    decrypt_fails(k, NULL, huge, 6145, &ec, "ValidationException: ");
    free(huge);
    ks_kms_result_free(&r);
    ks_ec_free(&ec);
    ks_kms_destroy(k);
}

Test(local_kms, decrypt_refuses_the_wrong_key_id)
{
    const char *arns[] = {ARN_PREFIX UUID_B};
    struct ks_kms *k;
    struct ks_kms_result r;
    struct ks_ec ec;

    write_file(path, HEADER UUID_A " " KEY_A "\n", 0600);
    k = open_ok(arns, 1);
    sample_ec(&ec);
    encrypt_ok(k, ARN_PREFIX UUID_A, &ec, &r);
    decrypt_fails(k, ARN_PREFIX UUID_B, r.ciphertext.data, r.ciphertext.len, &ec,
                  "IncorrectKeyException: ");
    decrypt_fails(k, UUID_B, r.ciphertext.data, r.ciphertext.len, &ec, "IncorrectKeyException: ");
    decrypt_ok(k, UUID_A, &r.ciphertext, &ec, secret32, sizeof secret32, ARN_PREFIX UUID_A);
    ks_kms_result_free(&r);
    ks_ec_free(&ec);
    ks_kms_destroy(k);
}

Test(local_kms, unknown_keys_are_not_found)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char arn[ARN_LEN + 1], unknown[ARN_LEN + 1];
    const char *ids[] = {unknown, unknown + strlen(ARN_PREFIX), "alias/keystored",
                         "arn:aws:kms:us-east-1:123456789012:key/" UUID_A, "not a key"};
    struct ks_kms_result r, out;
    struct ks_error err;
    struct ks_ec ec;

    default_arn(k, arn);
    fresh_arn(unknown);
    sample_ec(&ec);
    encrypt_ok(k, arn, &ec, &r);
    ks_kms_result_init(&out);
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        cr_assert_eq(
            k->ops->generate_data_key_without_plaintext(k, NULL, ids[i], 32, &ec, &out, &err),
            KS_E_KMS);
        cr_assert_eq(strncmp(err.detail, "NotFoundException: ", 19), 0, "%s", err.detail);
        cr_assert_eq(k->ops->generate_data_key(k, NULL, ids[i], 32, &ec, &out, &err), KS_E_KMS);
        cr_assert_eq(strncmp(err.detail, "NotFoundException: ", 19), 0, "%s", err.detail);
        cr_assert_eq(k->ops->encrypt(k, NULL, ids[i], secret32, 32, &ec, &out, &err), KS_E_KMS);
        cr_assert_eq(strncmp(err.detail, "NotFoundException: ", 19), 0, "%s", err.detail);
        decrypt_fails(k, ids[i], r.ciphertext.data, r.ciphertext.len, &ec, "NotFoundException: ");
    }
    /* A missing KeyId is a validation error. */
    cr_assert_eq(k->ops->encrypt(k, NULL, NULL, secret32, 32, &ec, &out, &err), KS_E_KMS);
    cr_assert_eq(strncmp(err.detail, "ValidationException: ", 21), 0, "%s", err.detail);
    cr_assert_eq(k->ops->generate_data_key(k, NULL, "", 32, &ec, &out, &err), KS_E_KMS);
    cr_assert_eq(strncmp(err.detail, "ValidationException: ", 21), 0, "%s", err.detail);
    cr_assert_null(out.ciphertext.data);
    ks_kms_result_free(&r);
    ks_ec_free(&ec);
    ks_kms_destroy(k);
}

Test(local_kms, decrypt_refuses_another_key_files_ciphertext)
{
    struct ks_kms *k1, *k2;
    char other_path[192], arn[ARN_LEN + 1];
    struct ks_kms_result r;
    struct ks_error err;
    struct ks_ec ec;

    snprintf(other_path, sizeof other_path, "%s/other.keys", dir);
    k1 = open_ok(NULL, 0);
    cr_assert_eq(ks_kms_local_open(other_path, NULL, 0, KS_KMS_LOCAL_MAY_CREATE, &k2, &err), KS_OK,
                 "%s", err.message);
    default_arn(k2, arn);
    sample_ec(&ec);
    encrypt_ok(k2, arn, &ec, &r);
    decrypt_fails(k1, NULL, r.ciphertext.data, r.ciphertext.len, &ec,
                  "InvalidCiphertextException: ");
    decrypt_fails(k1, arn, r.ciphertext.data, r.ciphertext.len, &ec, "NotFoundException: ");
    ks_kms_result_free(&r);
    ks_ec_free(&ec);
    ks_kms_destroy(k1);
    ks_kms_destroy(k2);
}

Test(local_kms, same_key_bytes_different_id_do_not_decrypt)
{
    /* The key id is authenticated: a blob re-labelled to another key with the same bytes fails. */
    const char *text = HEADER UUID_A " " KEY_A "\n" UUID_B " " KEY_A "\n";
    struct ks_kms *k;
    struct ks_kms_result r;
    struct ks_ec ec;
    unsigned char id_b[16];

    write_file(path, text, 0600);
    k = open_ok(NULL, 0);
    sample_ec(&ec);
    encrypt_ok(k, UUID_A, &ec, &r);
    memset(id_b, 0x22, sizeof id_b);
    id_b[6] = 0x42;
    id_b[8] = 0x82;
    memcpy(r.ciphertext.data + 1, id_b, 16);
    decrypt_fails(k, NULL, r.ciphertext.data, r.ciphertext.len, &ec,
                  "InvalidCiphertextException: ");
    ks_kms_result_free(&r);
    ks_ec_free(&ec);
    ks_kms_destroy(k);
}

Test(local_kms, default_arn_checks_its_arguments)
{
    struct ks_kms *k = open_ok(NULL, 0);
    char small[ARN_LEN];
    cr_assert_eq(ks_kms_local_default_arn(k, small, sizeof small), KS_E_INVALID);
    cr_assert_eq(ks_kms_local_default_arn(NULL, small, sizeof small), KS_E_INVALID);
    ks_kms_destroy(k);
}

/* ---------------------------------------------------------------------------------------- */
/* Threads                                                                                   */

static void *worker(void *arg)
{
    struct ks_kms *k = arg;
    struct ks_ec ec;
    long ok = 1;

    sample_ec(&ec);
    for (int i = 0; i < 200 && ok; i++) {
        struct ks_kms_result r, d;
        struct ks_error err;
        ks_kms_result_init(&r);
        ks_kms_result_init(&d);
        ok = k->ops->generate_data_key(k, NULL, UUID_A, 32, &ec, &r, &err) == KS_OK &&
             k->ops->decrypt(k, NULL, NULL, r.ciphertext.data, r.ciphertext.len, &ec, &d, &err) ==
                 KS_OK &&
             d.plaintext_len == 32 && memcmp(d.plaintext, r.plaintext, 32) == 0;
        ks_kms_result_free(&r);
        ks_kms_result_free(&d);
    }
    ks_ec_free(&ec);
    return (void *)ok;
}

Test(local_kms, concurrent_calls)
{
    pthread_t threads[8];
    struct ks_kms *k;

    write_file(path, HEADER UUID_A " " KEY_A "\n", 0600);
    k = open_ok(NULL, 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(pthread_create(&threads[i], NULL, worker, k), 0);
    for (int i = 0; i < 8; i++) {
        void *ok;
        pthread_join(threads[i], &ok);
        cr_assert_eq((long)ok, 1);
    }
    ks_kms_destroy(k);
}
