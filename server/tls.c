/*
 * tls.c - the certificate and key of `server.tls`, checked and handed to libmicrohttpd (tls.h).
 *
 * Debian's libmicrohttpd does TLS through GnuTLS, which takes PEM text in memory
 * (MHD_OPTION_HTTPS_MEM_CERT / MHD_OPTION_HTTPS_MEM_KEY). The files are checked here with OpenSSL
 * first, because a GnuTLS refusal reaches keystored only as a failed MHD_start_daemon: a wrong
 * path, a key that is not the certificate's or an encrypted key would all read "cannot listen".
 * The key file's text is a secret: it lives in a wiped buffer (common/secret.h) and is wiped as
 * soon as the daemon has started; no message quotes it.
 */
#include "server/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/secret.h"

/* A certificate chain or a key is a few KB; a larger file is not one. */
#define TLS_FILE_MAX (1024 * 1024)

/*
 * TLS 1.2 and 1.3 only: GnuTLS's NORMAL alone still accepts TLS 1.1 and 1.0 (README "TLS").
 * Within those versions NORMAL keeps GnuTLS's (and the system policy's) cipher choice.
 */
static const char tls_priorities[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";

struct ks_tls {
    char *cert; /* NUL-terminated PEM text (public, but freed the same way) */
    size_t cert_len;
    char *key; /* NUL-terminated PEM text: secret */
    size_t key_len;
    struct MHD_OptionItem options[4];
};

/* "file:line:column: server.tls.<key> <path>: <what>", like the loader's errors. */
static ks_status fail_at(struct ks_error *err, const struct ks_config *cfg, int is_key,
                         const char *what)
{
    const struct ks_tls_config *t = &cfg->server.tls;
    return ks_error_set(err, KS_E_CONFIG, "%s:%zu:%zu: server.tls.%s %s: %s",
                        cfg->source_name ? cfg->source_name : "config",
                        is_key ? t->key_line : t->cert_line,
                        is_key ? t->key_column : t->cert_column, is_key ? "key_file" : "cert_file",
                        is_key ? t->key_file : t->cert_file, what);
}

/* The whole of a regular file of at most TLS_FILE_MAX bytes into a wiped, NUL-terminated buffer;
 * 0, or an errno value (EFBIG: too large; EINVAL: not a regular file). */
static int read_whole(const char *path, char **out, size_t *out_len)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), e = 0;

    if (fd < 0)
        return errno;
    if (fstat(fd, &st) != 0)
        e = errno;
    else if (!S_ISREG(st.st_mode))
        e = EINVAL;
    else if (st.st_size > TLS_FILE_MAX)
        e = EFBIG;
    else if (!(buf = (char *)ks_secret_alloc((size_t)st.st_size + 1)))
        e = ENOMEM;
    if (e) {
        close(fd);
        return e;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            e = n < 0 ? errno : EIO;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    if (e) {
        ks_secret_free(buf, (size_t)st.st_size + 1);
        return e;
    }
    buf[got] = '\0';
    *out = buf;
    *out_len = got + 1;
    return 0;
}

static ks_status read_one(const struct ks_config *cfg, int is_key, char **out, size_t *len,
                          struct ks_error *err)
{
    const struct ks_tls_config *t = &cfg->server.tls;
    char what[96];
    int e = read_whole(is_key ? t->key_file : t->cert_file, out, len);

    if (e == 0)
        return KS_OK;
    snprintf(what, sizeof what, "cannot read it (%s)",
             e == EINVAL  ? "not a regular file"
             : e == EFBIG ? "larger than 1 MiB"
                          : strerror(e));
    return fail_at(err, cfg, is_key, what);
}

/* An encrypted key would need a passphrase: refuse it rather than prompt on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* One line for the operator: which certificate is served, until when. */
static void log_certificate(struct ks_log *log, X509 *cert)
{
    struct ks_log_line line;
    char subject[256] = "", until[64] = "";
    const ASN1_TIME *not_after = X509_get0_notAfter(cert);
    int expired = X509_cmp_current_time(not_after) < 0;
    BIO *b = BIO_new(BIO_s_mem());

    X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
    if (b && ASN1_TIME_print(b, not_after) == 1)
        BIO_read(b, until, sizeof until - 1);
    BIO_free(b);
    ks_log_begin(&line, log, expired ? KS_LOG_WARN : KS_LOG_INFO, "tls");
    ks_log_str(&line, "msg",
               expired ? "serving TLS with an EXPIRED certificate" : "serving TLS 1.2 and 1.3");
    ks_log_str(&line, "subject", subject);
    ks_log_str(&line, "notAfter", until);
    ks_log_end(&line);
}

/* The certificate parses, the key parses without a passphrase, and they belong together. */
static ks_status check_pair(const struct ks_config *cfg, const struct ks_tls *t, struct ks_log *log,
                            struct ks_error *err)
{
    BIO *cb = BIO_new_mem_buf(t->cert, (int)(t->cert_len - 1));
    BIO *kb = BIO_new_mem_buf(t->key, (int)(t->key_len - 1));
    X509 *cert = cb ? PEM_read_bio_X509(cb, NULL, no_passphrase, NULL) : NULL;
    EVP_PKEY *key = kb ? PEM_read_bio_PrivateKey(kb, NULL, no_passphrase, NULL) : NULL;
    ks_status st = KS_OK;

    if (!cb || !kb)
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    else if (!cert)
        st = fail_at(err, cfg, 0, "holds no PEM certificate");
    else if (!key)
        st = fail_at(err, cfg, 1, "holds no unencrypted PEM private key");
    else if (X509_check_private_key(cert, key) != 1)
        st = fail_at(err, cfg, 1, "not the private key of the certificate in server.tls.cert_file");
    if (st == KS_OK)
        log_certificate(log, cert);
    ERR_clear_error();
    EVP_PKEY_free(key);
    X509_free(cert);
    BIO_free(kb);
    BIO_free(cb);
    return st;
}

ks_status ks_tls_load(const struct ks_config *cfg, struct ks_log *log, struct ks_tls **out,
                      struct ks_error *err)
{
    struct ks_tls *t;
    ks_status st;

    *out = NULL;
    if (!cfg->server.tls.cert_file || !cfg->server.tls.key_file)
        return KS_OK;
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
        return ks_error_set(err, KS_E_CONFIG,
                            "server.tls: this libmicrohttpd was built without TLS support");
    if (!(t = calloc(1, sizeof *t)))
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    st = read_one(cfg, 0, &t->cert, &t->cert_len, err);
    if (st == KS_OK)
        st = read_one(cfg, 1, &t->key, &t->key_len, err);
    if (st == KS_OK)
        st = check_pair(cfg, t, log, err);
    if (st != KS_OK) {
        ks_tls_free(t);
        return st;
    }
    t->options[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, t->cert};
    t->options[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, t->key};
    t->options[2] =
        (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(uintptr_t)tls_priorities};
    t->options[3] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    *out = t;
    return KS_OK;
}

unsigned ks_tls_flags(const struct ks_tls *t)
{
    return t ? MHD_USE_TLS : 0;
}

const struct MHD_OptionItem *ks_tls_options(const struct ks_tls *t)
{
    static const struct MHD_OptionItem none[1] = {{MHD_OPTION_END, 0, NULL}};
    return t ? t->options : none;
}

void ks_tls_free(struct ks_tls *t)
{
    if (!t)
        return;
    ks_secret_free(t->key, t->key_len);
    ks_secret_free(t->cert, t->cert_len);
    free(t);
}
