/*
 * main.c - the keystored binary (docs/architecture.md section 6).
 *
 *   keystored [--config FILE] [--listen ADDR:PORT] [--data-dir DIR]
 *   keystored --check-config FILE
 *   keystored --version
 *
 * With no --config it runs the embedded default: SQLite + local KMS under the data dir (0700,
 * files 0600), key store "default" on local KMS relationship "local", an admin token printed
 * once on first start ("admin token: <token>" on stderr) of which only the SHA-256 is stored.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/secret.h"
#include "common/util.h"
#include "config/config.h"
#include "aws/arn.h"
#include "kms/kms.h"
#include "server/app.h"
#include "server/server.h"

#define KS_VERSION "0.1.0"
#define SHUTDOWN_GRACE_SECONDS 30

static void usage(FILE *f)
{
    fprintf(f, "usage: keystored [--config FILE] [--listen ADDR:PORT] [--data-dir DIR]\n"
               "       keystored --check-config FILE\n"
               "       keystored --version\n");
}

/* Reads or creates <dir>/admin-token.sha256; prints a new token once. */
static int admin_token_hash(const char *dir, unsigned char hash[32])
{
    char path[4096], hex[65] = {0}, token[3 + 64 + 1];
    unsigned char raw[32];
    unsigned int len = 0;
    ssize_t n;
    int fd;

    snprintf(path, sizeof path, "%s/admin-token.sha256", dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, hex, 64);
        close(fd);
        if (n != 64 || ks_hex_decode(hex, hash, 32) != 0) {
            fprintf(stderr, "keystored: %s is corrupt (expected 64 hex digits)\n", path);
            return -1;
        }
        return 0;
    }
    if (errno != ENOENT) {
        fprintf(stderr, "keystored: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* A new token: 32 random bytes as hex, shown once, stored only hashed. */
    if (RAND_bytes(raw, sizeof raw) != 1)
        return -1;
    memcpy(token, "ks_", 3);
    ks_hex_encode(raw, sizeof raw, token + 3);
    ks_secret_wipe(raw, sizeof raw);
    if (EVP_Digest(token, strlen(token), hash, &len, EVP_sha256(), NULL) != 1) {
        ks_secret_wipe(token, sizeof token);
        return -1;
    }
    ks_hex_encode(hash, 32, hex);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, hex, 64) != 64 || fsync(fd) != 0) {
        fprintf(stderr, "keystored: cannot write %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        ks_secret_wipe(token, sizeof token);
        return -1;
    }
    close(fd);
    /* The one place a token is printed: the operator must see it once. */
    fprintf(stderr, "admin token: %s\n", token);
    fflush(stderr);
    ks_secret_wipe(token, sizeof token);
    return 0;
}

static int embedded_config(const char *data_dir, struct ks_config **out)
{
    char key_file[4096], db_file[4096], arn[KS_ARN_MAX + 1];
    unsigned char hash[32];
    struct ks_kms *kms = NULL;
    struct ks_error err;
    struct stat st;

    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "keystored: cannot create %s: %s\n", data_dir, strerror(errno));
        return -1;
    }
    if (stat(data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "keystored: %s is not a directory\n", data_dir);
        return -1;
    }
    if (st.st_mode & 077)
        fprintf(stderr, "keystored: warning: %s is accessible to group/others (want 0700)\n",
                data_dir);
    snprintf(key_file, sizeof key_file, "%s/local-kms.keys", data_dir);
    snprintf(db_file, sizeof db_file, "%s/keystore.db", data_dir);
    /* A database without its key file means the master keys were lost or moved: creating a
     * fresh key file would make every stored key undecryptable without saying so. */
    if (access(db_file, F_OK) == 0 && access(key_file, F_OK) != 0 && errno == ENOENT) {
        fprintf(stderr,
                "keystored: %s exists but the local KMS key file %s is missing; restore it from "
                "your backup (refusing to create a new one)\n",
                db_file, key_file);
        return -1;
    }
    if (ks_kms_local_open(key_file, NULL, 0, KS_KMS_LOCAL_MAY_CREATE, &kms, &err) != KS_OK ||
        ks_kms_local_default_arn(kms, arn, sizeof arn) != KS_OK) {
        fprintf(stderr, "keystored: local KMS: %s\n", err.message);
        ks_kms_destroy(kms);
        return -1;
    }
    ks_kms_destroy(kms);
    if (admin_token_hash(data_dir, hash) != 0)
        return -1;
    if (ks_config_default(data_dir, "127.0.0.1", 8080, hash, arn, out, &err) != KS_OK) {
        fprintf(stderr, "keystored: %s\n", err.message);
        return -1;
    }
    return 0;
}

static int check_config(const char *path)
{
    struct ks_config *cfg = NULL;
    char *errors = NULL;
    if (ks_config_load_file(path, &cfg, &errors) != KS_OK) {
        fputs(errors ? errors : "invalid configuration\n", stderr);
        free(errors);
        return 1;
    }
    ks_config_free(cfg);
    printf("%s: ok\n", path);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                            {"listen", required_argument, NULL, 'l'},
                                            {"data-dir", required_argument, NULL, 'd'},
                                            {"check-config", required_argument, NULL, 'k'},
                                            {"version", no_argument, NULL, 'v'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *config_path = NULL, *listen = NULL, *data_dir = "./data";
    struct ks_config *cfg = NULL;
    struct ks_app *app = NULL;
    struct ks_server *server = NULL;
    struct ks_error err;
    sigset_t signals;
    int opt, sig = 0;

    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'k':
            return check_config(optarg);
        case 'v':
            printf("keystored %s\n", KS_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    if (config_path) {
        char *errors = NULL;
        if (ks_config_load_file(config_path, &cfg, &errors) != KS_OK) {
            fputs(errors ? errors : "invalid configuration\n", stderr);
            free(errors);
            return 2;
        }
    } else if (embedded_config(data_dir, &cfg) != 0) {
        return 1;
    }
    if (listen) {
        char *host;
        uint16_t port;
        if (ks_config_parse_listen(listen, &host, &port, &err) != KS_OK) {
            fprintf(stderr, "keystored: --listen: %s\n", err.message);
            ks_config_free(cfg);
            return 2;
        }
        free(cfg->listen_host);
        cfg->listen_host = host;
        cfg->listen_port = port;
    }

    /* Each connection is a descriptor: use the hard limit, not the (often 1024) soft one. */
    {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }

    /* Signals are taken synchronously by this thread; every other thread inherits the mask. */
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (ks_app_create(cfg, NULL, &app, &err) != KS_OK) {
        fprintf(stderr, "keystored: %s\n", err.message);
        ks_config_free(cfg);
        return 1;
    }
    if (ks_server_start(app, stderr, &server, &err) != KS_OK) {
        fprintf(stderr, "keystored: %s\n", err.message);
        ks_app_destroy(app);
        ks_config_free(cfg);
        return 1;
    }
    fprintf(stderr, "keystored %s listening on %s:%u\n", KS_VERSION, cfg->listen_host,
            (unsigned)ks_server_port(server));
    fflush(stderr);

    sigwait(&signals, &sig);
    fprintf(stderr, "keystored: %s received, finishing in-flight requests\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    ks_server_stop(server, SHUTDOWN_GRACE_SECONDS);
    ks_app_destroy(app);
    ks_config_free(cfg);
    fprintf(stderr, "keystored: stopped\n");
    return 0;
}
