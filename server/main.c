/*
 * main.c - the keystored binary (docs/architecture.md section 6).
 *
 *   keystored [--config FILE] [--listen ADDR:PORT] [--data-dir DIR] [--log-level LEVEL]
 *   keystored --check-config FILE
 *   keystored --version
 *   keystored token new
 *
 * With no --config it runs the embedded default: SQLite + local KMS under the data dir (0700,
 * files 0600), key store "default" on local KMS relationship "local", an admin token printed
 * once on first start ("admin token: <token>" on stderr) of which only the SHA-256 is stored.
 *
 * Signals (docs/architecture.md section 6, README "Reload"): SIGHUP, SIGINT and SIGTERM are
 * blocked before any thread starts, so every thread inherits the mask, and the main thread takes
 * them with sigwait: SIGHUP reopens the log and reloads the configuration (server/reload.h),
 * SIGINT and SIGTERM drain and stop. No work is done in a signal handler.
 *
 * Everything else the daemon says goes through the log (common/log.h): JSON lines on stderr. The
 * token line is the one deliberate exception: it is for the operator's eyes, never a log event.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/audit.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/util.h"
#include "config/config.h"
#include "server/app.h"
#include "server/reload.h"
#include "server/server.h"
#include "server/tls.h"

#define KS_VERSION "0.1.0"
#define SHUTDOWN_GRACE_SECONDS 30

struct options {
    const char *config_path;
    const char *listen;
    const char *data_dir;
    enum ks_log_level log_level;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: keystored [--config FILE] [--listen ADDR:PORT] [--data-dir DIR]\n"
               "                 [--log-level debug|info|warn|error]\n"
               "       keystored --check-config FILE\n"
               "       keystored --version\n"
               "       keystored token new\n");
}

/* Reads or creates <dir>/admin-token.sha256; prints a new token once. */
static int admin_token_hash(struct ks_log *log, const char *dir, unsigned char hash[32])
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
            ks_log_msg(log, KS_LOG_ERROR, "start_failed", "%s is corrupt (expected 64 hex digits)",
                       path);
            return -1;
        }
        return 0;
    }
    if (errno != ENOENT) {
        ks_log_msg(log, KS_LOG_ERROR, "start_failed", "cannot read %s: %s", path, strerror(errno));
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
        ks_log_msg(log, KS_LOG_ERROR, "start_failed", "cannot write %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        ks_secret_wipe(token, sizeof token);
        return -1;
    }
    close(fd);
    /* The one place a token is printed, and not as a log event: the operator must see it once. */
    fprintf(stderr, "admin token: %s\n", token);
    fflush(stderr);
    ks_secret_wipe(token, sizeof token);
    return 0;
}

/* The data dir exists (0700) and its database has its key file. */
static int check_data_dir(struct ks_log *log, const char *data_dir)
{
    char key_file[4096], db_file[4096];
    struct stat st;

    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        ks_log_msg(log, KS_LOG_ERROR, "start_failed", "cannot create %s: %s", data_dir,
                   strerror(errno));
        return -1;
    }
    if (stat(data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        ks_log_msg(log, KS_LOG_ERROR, "start_failed", "%s is not a directory", data_dir);
        return -1;
    }
    if (st.st_mode & 077)
        ks_log_msg(log, KS_LOG_WARN, "data_dir", "%s is accessible to group/others (want 0700)",
                   data_dir);
    snprintf(key_file, sizeof key_file, "%s/local-kms.keys", data_dir);
    snprintf(db_file, sizeof db_file, "%s/keystore.db", data_dir);
    /* A database without its key file means the master keys were lost or moved: creating a
     * fresh key file would make every stored key undecryptable without saying so. */
    if (access(db_file, F_OK) == 0 && access(key_file, F_OK) != 0 && errno == ENOENT) {
        ks_log_msg(log, KS_LOG_ERROR, "start_failed",
                   "%s exists but the local KMS key file %s is missing; restore it from your "
                   "backup (refusing to create a new one)",
                   db_file, key_file);
        return -1;
    }
    return 0;
}

/* The embedded default. Its KMS relationship names no key: the app takes the key file's first
 * key (creating the file on first start), so nothing here opens a KMS backend. */
static int embedded_config(struct ks_log *log, const char *data_dir, struct ks_config **out)
{
    unsigned char hash[32];
    struct ks_error err;

    if (check_data_dir(log, data_dir) != 0 || admin_token_hash(log, data_dir, hash) != 0)
        return -1;
    if (ks_config_default(data_dir, "127.0.0.1", 8080, hash, NULL, out, &err) != KS_OK) {
        ks_log_msg(log, KS_LOG_ERROR, "start_failed", "%s", err.message);
        return -1;
    }
    return 0;
}

/* One log event per line of a multi-line text (the config loader's error list). */
static void log_lines(struct ks_log *log, const char *event, const char *text)
{
    while (text && *text) {
        const char *nl = strchr(text, '\n');
        size_t len = nl ? (size_t)(nl - text) : strlen(text);
        if (len > 0)
            ks_log_msg(log, KS_LOG_ERROR, event, "%.*s", (int)len, text);
        text += len + (nl ? 1 : 0);
    }
}

static int check_config(const char *path)
{
    struct ks_config *cfg = NULL;
    struct ks_tls *tls = NULL;
    struct ks_error err;
    char *errors = NULL;
    if (ks_config_load_file(path, &cfg, &errors) != KS_OK) {
        fputs(errors ? errors : "invalid configuration\n", stderr);
        free(errors);
        return 1;
    }
    /* server.tls's files as a start reads them: renewed ones can be checked before a restart. */
    if (ks_tls_load(cfg, NULL, &tls, &err) != KS_OK) {
        fprintf(stderr, "%s\n", err.message);
        ks_config_free(cfg);
        return 1;
    }
    ks_tls_free(tls);
    ks_config_free(cfg);
    printf("%s: ok\n", path);
    return 0;
}

/*
 * `keystored token new`: a fresh token of 256 random bits ("ks_" + 64 hex digits) and the
 * token_sha256 line for a tenant in the YAML (README "Tokens"). The token goes to stdout for the
 * operator to hand to the tenant; keystored keeps nothing.
 */
static int token_new(void)
{
    unsigned char raw[32], hash[32];
    char token[3 + 64 + 1], hex[65];
    unsigned int len = 0;
    int ok;

    if (RAND_bytes(raw, sizeof raw) != 1) {
        fputs("keystored: no random bytes\n", stderr);
        return 1;
    }
    memcpy(token, "ks_", 3);
    ks_hex_encode(raw, sizeof raw, token + 3);
    ks_secret_wipe(raw, sizeof raw);
    ok = EVP_Digest(token, strlen(token), hash, &len, EVP_sha256(), NULL) == 1 && len == 32;
    if (ok) {
        ks_hex_encode(hash, sizeof hash, hex);
        printf("token: %s\ntoken_sha256: \"%s\"\n", token, hex);
        ok = fflush(stdout) == 0;
    }
    ks_secret_wipe(token, sizeof token);
    if (!ok)
        fputs("keystored: cannot make a token\n", stderr);
    return ok ? 0 : 1;
}

/* -1: go on and serve; otherwise the exit code (--version, --help, --check-config, misuse). */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                            {"listen", required_argument, NULL, 'l'},
                                            {"data-dir", required_argument, NULL, 'd'},
                                            {"log-level", required_argument, NULL, 'g'},
                                            {"check-config", required_argument, NULL, 'k'},
                                            {"version", no_argument, NULL, 'v'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    int opt;

    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt == 'c') {
            o->config_path = optarg;
        } else if (opt == 'l') {
            o->listen = optarg;
        } else if (opt == 'd') {
            o->data_dir = optarg;
        } else if (opt == 'g' && ks_log_level_parse(optarg, &o->log_level) == KS_OK) {
            continue;
        } else if (opt == 'k') {
            return check_config(optarg);
        } else if (opt == 'v') {
            printf("keystored %s\n", KS_VERSION);
            return 0;
        } else if (opt == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (optind + 2 == argc && strcmp(argv[optind], "token") == 0 &&
        strcmp(argv[optind + 1], "new") == 0)
        return token_new();
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* The config of the options: --config's file or the embedded default, then --listen.
 * 0, or the exit code. */
static int load_config(struct ks_log *log, const struct options *o, struct ks_config **out)
{
    struct ks_config *cfg = NULL;
    struct ks_error err;
    char *host;
    uint16_t port;

    if (o->config_path) {
        char *errors = NULL;
        if (ks_config_load_file(o->config_path, &cfg, &errors) != KS_OK) {
            log_lines(log, "config_error", errors ? errors : "invalid configuration");
            free(errors);
            return 2;
        }
    } else if (embedded_config(log, o->data_dir, &cfg) != 0) {
        return 1;
    }
    if (o->listen) {
        if (ks_config_parse_listen(o->listen, &host, &port, &err) != KS_OK) {
            ks_log_msg(log, KS_LOG_ERROR, "config_error", "--listen: %s", err.message);
            ks_config_free(cfg);
            return 2;
        }
        free(cfg->listen_host);
        cfg->listen_host = host;
        cfg->listen_port = port;
    }
    *out = cfg;
    return 0;
}

/* Each connection is a descriptor: use the hard limit, not the (often 1024) soft one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Signals are taken synchronously by the main thread; every other thread inherits the mask. A
 * SIGHUP that reached another thread would end the process (its default action). */
static void block_signals(sigset_t *signals)
{
    sigemptyset(signals);
    sigaddset(signals, SIGHUP);
    sigaddset(signals, SIGINT);
    sigaddset(signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, signals, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void log_listening(struct ks_log *log, const struct ks_config *cfg, uint16_t port)
{
    struct ks_log_line line;
    char text[600];

    /* The msg keeps the "listening on HOST:PORT" wording that scripts wait for. */
    snprintf(text, sizeof text, "keystored %s listening on %s:%u", KS_VERSION, cfg->listen_host,
             (unsigned)port);
    ks_log_begin(&line, log, KS_LOG_INFO, "listening");
    ks_log_str(&line, "msg", text);
    ks_log_str(&line, "host", cfg->listen_host);
    ks_log_int(&line, "port", port);
    ks_log_str(&line, "version", KS_VERSION);
    ks_log_end(&line);
}

/* Takes the blocked signals until SIGINT or SIGTERM: SIGHUP reopens the logs, then reloads (one
 * path with POST /v1/admin/reload: ks_reload). */
static int wait_for_stop(struct ks_log *log, struct ks_reloader *reloader, const sigset_t *signals)
{
    struct ks_error err;
    int sig = 0;

    for (;;) {
        if (sigwait(signals, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            return sig;
        ks_log_msg(log, KS_LOG_INFO, "sighup", "SIGHUP received: reopening the logs, reloading");
        ks_reload(reloader, &err); /* reopens the logs first; logs its outcome */
    }
}

/* Builds the backends and the first snapshot (which takes cfg), serves until SIGINT/SIGTERM,
 * drains. The exit code. */
/* The audit log of `audit:` (docs/architecture.md section 12), or *out NULL without one. */
static ks_status open_audit(struct ks_log *log, const struct ks_audit_config *c,
                            struct ks_audit **out, struct ks_error *err)
{
    struct ks_audit_options ao = {c->path,
                                  c->fsync == KS_CONFIG_AUDIT_FSYNC_EVERY_LINE,
                                  c->fsync == KS_CONFIG_AUDIT_FSYNC_INTERVAL ? c->fsync_interval_ms
                                                                             : 0,
                                  NULL,
                                  log,
                                  NULL};
    *out = NULL;
    return c->path ? ks_audit_open(&ao, out, err) : KS_OK;
}

static int serve(struct ks_log *log, struct ks_config *cfg, const struct options *o,
                 const sigset_t *signals)
{
    struct ks_reload_options ro = {o->config_path, o->listen, log, NULL};
    struct ks_backends *backends = NULL;
    struct ks_reloader *reloader = NULL;
    struct ks_app *app = NULL;
    struct ks_server *server = NULL;
    struct ks_error err;
    int sig, rc = 1;

    if (open_audit(log, &cfg->audit, &ro.audit, &err) != KS_OK ||
        ks_backends_create(&cfg->cache, NULL, &backends, &err) != KS_OK ||
        ks_app_create(backends, cfg, &app, &err) != KS_OK) {
        ks_log_msg(log, KS_LOG_ERROR, "start_failed", "%s", err.message);
        ks_config_free(cfg);
        ks_backends_destroy(backends);
        ks_audit_close(ro.audit);
        return 1;
    }
    ks_backends_set_audit(backends, ro.audit);
    if (ks_reloader_create(&ro, backends, app, &reloader, &err) == KS_OK &&
        ks_server_start(backends, app, log, &server, &err) == KS_OK) {
        ks_reloader_attach(reloader, server);
        log_listening(log, ks_app_config(app), ks_server_port(server));
        /* The server and the reloader hold their own references: after a reload the first
         * snapshot goes as soon as its last request completes. */
        ks_app_unref(app);
        app = NULL;
        /* The YAML parser's freed nodes (megabytes with 10,000 tenants) back to the system, so
         * that the resident size is the configuration's (bench/RESULTS.md section 7). */
        malloc_trim(0);
        sig = wait_for_stop(log, reloader, signals);
        ks_log_msg(log, KS_LOG_INFO, "stopping", "%s received, finishing in-flight requests",
                   sig == SIGTERM ? "SIGTERM" : "SIGINT");
        rc = 0;
    } else {
        ks_log_msg(log, KS_LOG_ERROR, "start_failed", "%s", err.message);
    }
    ks_server_stop(server, SHUTDOWN_GRACE_SECONDS);
    ks_reloader_destroy(reloader);
    ks_app_unref(app);
    ks_backends_destroy(backends);
    ks_audit_close(ro.audit);
    if (rc == 0)
        ks_log_msg(log, KS_LOG_INFO, "stopped", "keystored stopped");
    return rc;
}

int main(int argc, char **argv)
{
    struct options o = {NULL, NULL, "./data", KS_LOG_INFO};
    struct ks_config *cfg = NULL;
    struct ks_log *log = NULL;
    struct ks_error err;
    sigset_t signals;
    int rc = parse_options(argc, argv, &o);

    if (rc >= 0)
        return rc;
    if (ks_log_create(STDERR_FILENO, o.log_level, NULL, &log, &err) != KS_OK) {
        fprintf(stderr, "keystored: %s\n", err.message);
        return 1;
    }
    if ((rc = load_config(log, &o, &cfg)) == 0) {
        raise_fd_limit();
        block_signals(&signals);
        rc = serve(log, cfg, &o, &signals);
    }
    ks_log_destroy(log);
    return rc;
}
