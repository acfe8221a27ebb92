/*
 * test_tls.c - server/tls.h: server.tls's files read and checked at start (README "TLS"): a good
 * pair gives libmicrohttpd's options (certificate, key, TLS 1.2 + 1.3 priorities); a missing
 * file, a file without a certificate or key, an encrypted key and a key of another certificate
 * are refused with the YAML's file:line:column; without server.tls there are no options. Keys
 * and certificates are made here with OpenSSL, never checked in.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "config/config.h"
#include "server/tls.h"

static char dir[] = "/tmp/ks-test-tls-XXXXXX";

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    cr_assert_not_null(k);
    return k;
}

static void write_key(const char *name, EVP_PKEY *k, int encrypted)
{
    char path[128];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_not_null(f = fopen(path, "w"));
    cr_assert_eq(PEM_write_PrivateKey(f, k, encrypted ? EVP_aes_256_cbc() : NULL,
                                      encrypted ? (unsigned char *)"pass" : NULL, encrypted ? 4 : 0,
                                      NULL, NULL),
                 1);
    fclose(f);
}

/* A self-signed certificate for k, valid for a day. */
static void write_cert(const char *name, EVP_PKEY *k)
{
    char path[128];
    X509 *x = X509_new();
    FILE *f;
    cr_assert_not_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    cr_assert_gt(X509_sign(x, k, EVP_sha256()), 0);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_not_null(f = fopen(path, "w"));
    cr_assert_eq(PEM_write_X509(f, x), 1);
    fclose(f);
    X509_free(x);
}

static void setup(void)
{
    EVP_PKEY *k = new_key(), *other = new_key();
    snprintf(dir, sizeof dir, "/tmp/ks-test-tls-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    write_key("key.pem", k, 0);
    write_key("encrypted.pem", k, 1);
    write_cert("cert.pem", k);
    write_key("other.pem", other, 0);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

static void teardown(void)
{
    static const char *const files[] = {"key.pem", "encrypted.pem", "cert.pem", "other.pem"};
    char path[128];
    size_t i;
    for (i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* A config naming dir/cert and dir/key, the paths on lines 3 and 4 as in a YAML file. */
static struct ks_config *config(const char *cert, const char *key)
{
    struct ks_config *cfg = calloc(1, sizeof *cfg);
    char path[128];
    cr_assert_not_null(cfg);
    cfg->source_name = strdup("k.yaml");
    snprintf(path, sizeof path, "%s/%s", dir, cert);
    cfg->server.tls.cert_file = strdup(path);
    snprintf(path, sizeof path, "%s/%s", dir, key);
    cfg->server.tls.key_file = strdup(path);
    cfg->server.tls.cert_line = 3;
    cfg->server.tls.cert_column = 16;
    cfg->server.tls.key_line = 4;
    cfg->server.tls.key_column = 15;
    return cfg;
}

static void expect_refused(const char *cert, const char *key, const char *where, const char *what)
{
    struct ks_config *cfg = config(cert, key);
    struct ks_tls *tls = (struct ks_tls *)1;
    struct ks_error err;
    cr_assert_eq(ks_tls_load(cfg, NULL, &tls, &err), KS_E_CONFIG, "%s/%s", cert, key);
    cr_expect_null(tls);
    cr_expect(strncmp(err.message, where, strlen(where)) == 0, "'%s' does not start with '%s'",
              err.message, where);
    cr_expect(strstr(err.message, what) != NULL, "'%s' lacks '%s'", err.message, what);
    cr_expect(strstr(err.message, "BEGIN") == NULL, "PEM text in '%s'", err.message);
    ks_config_free(cfg);
}

TestSuite(tls, .init = setup, .fini = teardown);

Test(tls, good_pair_gives_the_options)
{
    struct ks_config *cfg = config("cert.pem", "key.pem");
    const struct MHD_OptionItem *o;
    struct ks_tls *tls = NULL;
    struct ks_error err;

    cr_assert_eq(ks_tls_load(cfg, NULL, &tls, &err), KS_OK, "%s", err.message);
    cr_assert_not_null(tls);
    cr_expect_eq(ks_tls_flags(tls), MHD_USE_TLS);
    o = ks_tls_options(tls);
    cr_assert_eq(o[0].option, MHD_OPTION_HTTPS_MEM_CERT);
    cr_expect(strstr(o[0].ptr_value, "BEGIN CERTIFICATE") != NULL);
    cr_assert_eq(o[1].option, MHD_OPTION_HTTPS_MEM_KEY);
    cr_expect(strstr(o[1].ptr_value, "PRIVATE KEY") != NULL);
    cr_assert_eq(o[2].option, MHD_OPTION_HTTPS_PRIORITIES);
    cr_expect_str_eq(o[2].ptr_value, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2");
    cr_expect_eq(o[3].option, MHD_OPTION_END);
    ks_tls_free(tls);
    ks_config_free(cfg);
}

Test(tls, none_without_server_tls)
{
    struct ks_config *cfg = calloc(1, sizeof *cfg);
    struct ks_tls *tls = (struct ks_tls *)1;
    struct ks_error err;
    cr_assert_eq(ks_tls_load(cfg, NULL, &tls, &err), KS_OK);
    cr_expect_null(tls);
    cr_expect_eq(ks_tls_flags(NULL), 0u);
    cr_expect_eq(ks_tls_options(NULL)[0].option, MHD_OPTION_END);
    ks_tls_free(NULL);
    ks_config_free(cfg);
}

Test(tls, refusals_name_the_yaml_line)
{
    expect_refused("cert.pem", "missing.pem", "k.yaml:4:15: server.tls.key_file ",
                   "cannot read it (No such file or directory)");
    expect_refused("missing.pem", "key.pem", "k.yaml:3:16: server.tls.cert_file ",
                   "cannot read it");
    expect_refused("cert.pem", "other.pem", "k.yaml:4:15: server.tls.key_file ",
                   "not the private key of the certificate");
    expect_refused("key.pem", "key.pem", "k.yaml:3:16: server.tls.cert_file ",
                   "holds no PEM certificate");
    expect_refused("cert.pem", "cert.pem", "k.yaml:4:15: server.tls.key_file ",
                   "holds no unencrypted PEM private key");
    expect_refused("cert.pem", "encrypted.pem", "k.yaml:4:15: server.tls.key_file ",
                   "holds no unencrypted PEM private key");
    expect_refused("cert.pem", ".", "k.yaml:4:15: server.tls.key_file ", "not a regular file");
}
