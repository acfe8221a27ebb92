/*
 * main.c - keystorectl's command line: options, the command table, one function per endpoint
 * (README "keystorectl"; the routes are server/router.c and openapi/openapi.yaml).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "cli/ctl.h"
#include "common/util.h"

#define DEFAULT_URL "http://127.0.0.1:8080"
enum { DEFAULT_TIMEOUT_S = 300, MAX_TOKEN_BYTES = 4096 };
/* A --body-file is at most this large (server.max_keyring_body_bytes defaults to 4 MiB). */
#define MAX_BODY_BYTES (64u << 20)

/* Options a command may take (struct command.allowed). */
enum {
    O_KMS_RELATIONSHIP = 1u << 0,
    O_ID = 1u << 1,
    O_EC = 1u << 2,
    O_HIERARCHY_VERSION = 1u << 3,
    O_TERMINAL_KMS_ARN = 1u << 4,
    O_TERMINAL_EC = 1u << 5,
    O_STRATEGY = 1u << 6,
    O_DO_NOT_VERSION = 1u << 7,
    O_ATOMIC = 1u << 8,
    O_PAGE_SIZE = 1u << 9,
    O_BODY_FILE = 1u << 10,
    O_LIMIT = 1u << 11,
    O_NEXT_TOKEN = 1u << 12,
    O_ALL = 1u << 13,
    O_TERMINAL_HV = 1u << 14,
};
#define O_INIT                                                                                     \
    (O_TERMINAL_KMS_ARN | O_TERMINAL_EC | O_TERMINAL_HV | O_STRATEGY | O_DO_NOT_VERSION | O_ATOMIC)

struct options {
    const char *url, *token_file, *kms_relationship, *id, *hierarchy_version, *body_file;
    json_object *ec;
    struct ks_ctl_mutation_opts mutation;
    struct ks_ctl_list_opts list;
    long timeout_s;
    int compact, help;
    unsigned given; /* O_* seen on the command line */
};

struct command {
    const char *group, *name; /* name NULL: a one-word command */
    int nargs;                /* positional arguments after the command words */
    unsigned allowed;
    int (*run)(struct ks_ctl *ctl, char **args, const struct options *o);
    const char *synopsis;
};

static const char usage_head[] =
    "usage: keystorectl [--url URL] [--token-file FILE] [--compact] [--timeout SECONDS]\n"
    "                   COMMAND [ARGS] [OPTIONS]\n"
    "The token is read from --token-file FILE or the environment variable KEYSTORED_TOKEN, never\n"
    "from the command line. URL: --url, else KEYSTORED_URL, else " DEFAULT_URL ".\n"
    "Exit status: 0 ok, 1 the server answered with an error, 2 usage, 3 no answer from the\n"
    "server, 130 mutate interrupted (rerun to resume).\n\ncommands:\n";

static int usage_error(const char *fmt, const char *what)
{
    fputs("keystorectl: ", stderr);
    fprintf(stderr, fmt, what);
    fputs("\n(keystorectl --help for the commands)\n", stderr);
    return KS_CTL_EXIT_USAGE;
}

/* ---- endpoint calls ------------------------------------------------------------------------ */

/* One request and its report; path NULL (OOM) is a transport failure. */
static int call(struct ks_ctl *ctl, const char *method, char *path, json_object *body)
{
    struct ks_ctl_response r;
    int rc = KS_CTL_EXIT_TRANSPORT;

    if (path && ks_ctl_request(ctl, method, path, body, &r) == 0) {
        rc = ks_ctl_report(ctl, &r);
        ks_ctl_response_free(&r);
    }
    free(path);
    if (body)
        json_object_put(body);
    return rc;
}

/* A read path with ?kmsRelationship= when the option was given. Caller frees. */
static char *read_path(const char *ks, const char *id, const char *suffix, const struct options *o)
{
    char *base = ks_ctl_path(ks, id, suffix), *out;
    size_t n, m;

    if (!base || !o->kms_relationship)
        return base;
    m = ks_percent_encode(o->kms_relationship, strlen(o->kms_relationship), 0, NULL, 0);
    n = strlen(base) + sizeof "?kmsRelationship=" + m;
    out = malloc(n);
    if (out) {
        size_t at = (size_t)snprintf(out, n, "%s?kmsRelationship=", base);
        ks_percent_encode(o->kms_relationship, strlen(o->kms_relationship), 0, out + at, n - at);
    }
    free(base);
    return out;
}

static int cmd_public(struct ks_ctl *ctl, const char *path)
{
    return call(ctl, "GET", strdup(path), NULL);
}

static int cmd_health(struct ks_ctl *ctl, char **args, const struct options *o)
{
    (void)args, (void)o;
    return cmd_public(ctl, "/healthz");
}

static int cmd_ready(struct ks_ctl *ctl, char **args, const struct options *o)
{
    (void)args, (void)o;
    return cmd_public(ctl, "/readyz");
}

static int cmd_metrics(struct ks_ctl *ctl, char **args, const struct options *o)
{
    (void)args, (void)o;
    return cmd_public(ctl, "/metrics");
}

static int cmd_openapi(struct ks_ctl *ctl, char **args, const struct options *o)
{
    (void)args, (void)o;
    return cmd_public(ctl, "/v1/openapi.yaml");
}

static int cmd_keystore_create(struct ks_ctl *ctl, char **args, const struct options *o)
{
    (void)o;
    return call(ctl, "PUT", ks_ctl_path(args[0], NULL, ""), NULL);
}

static int cmd_keystore_show(struct ks_ctl *ctl, char **args, const struct options *o)
{
    return call(ctl, "GET", read_path(args[0], NULL, "", o), NULL);
}

static int cmd_key_create(struct ks_ctl *ctl, char **args, const struct options *o)
{
    json_object *body = json_object_new_object();
    if (o->id)
        json_object_object_add(body, "branchKeyIdentifier", json_object_new_string(o->id));
    if (o->ec)
        json_object_object_add(body, "encryptionContext", json_object_get(o->ec));
    if (o->kms_relationship)
        json_object_object_add(body, "kmsRelationship",
                               json_object_new_string(o->kms_relationship));
    if (o->hierarchy_version)
        json_object_object_add(body, "hierarchyVersion",
                               json_object_new_string(o->hierarchy_version));
    return call(ctl, "POST", ks_ctl_path(args[0], NULL, "/branch-keys"), body);
}

static int cmd_key_version(struct ks_ctl *ctl, char **args, const struct options *o)
{
    json_object *body = json_object_new_object();
    if (o->kms_relationship)
        json_object_object_add(body, "kmsRelationship",
                               json_object_new_string(o->kms_relationship));
    return call(ctl, "POST", ks_ctl_path(args[0], args[1], "/versions"), body);
}

static int cmd_key_active(struct ks_ctl *ctl, char **args, const struct options *o)
{
    return call(ctl, "GET", read_path(args[0], args[1], "/active", o), NULL);
}

static int cmd_key_beacon(struct ks_ctl *ctl, char **args, const struct options *o)
{
    return call(ctl, "GET", read_path(args[0], args[1], "/beacon", o), NULL);
}

static int cmd_key_get(struct ks_ctl *ctl, char **args, const struct options *o)
{
    size_t m = ks_percent_encode(args[2], strlen(args[2]), 0, NULL, 0);
    size_t n = sizeof "/versions/" + m;
    char *suffix = malloc(n);
    int rc = KS_CTL_EXIT_TRANSPORT;

    if (suffix) {
        memcpy(suffix, "/versions/", sizeof "/versions/");
        ks_percent_encode(args[2], strlen(args[2]), 0, suffix + sizeof "/versions/" - 1,
                          n - (sizeof "/versions/" - 1));
        rc = call(ctl, "GET", read_path(args[0], args[1], suffix, o), NULL);
    }
    free(suffix);
    return rc;
}

static int cmd_mutate(struct ks_ctl *ctl, char **args, const struct options *o)
{
    return ks_mutate_run(ctl, args[0], args[1], &o->mutation);
}

static int cmd_mutation_init(struct ks_ctl *ctl, char **args, const struct options *o)
{
    return call(ctl, "POST", ks_ctl_path(args[0], args[1], "/mutation"),
                ks_ctl_mutation_init_body(&o->mutation));
}

static int cmd_mutation_apply(struct ks_ctl *ctl, char **args, const struct options *o)
{
    return ks_mutate_apply_once(ctl, args[0], args[1], &o->mutation);
}

static int cmd_mutation_show(struct ks_ctl *ctl, char **args, const struct options *o)
{
    (void)o;
    return call(ctl, "GET", ks_ctl_path(args[0], args[1], "/mutation"), NULL);
}

static int cmd_mutation_abort(struct ks_ctl *ctl, char **args, const struct options *o)
{
    (void)o;
    return ks_mutate_abort(ctl, args[0], args[1]);
}

static int cmd_keys_list(struct ks_ctl *ctl, char **args, const struct options *o)
{
    char *base = ks_ctl_path(args[0], NULL, "/branch-keys");
    int rc = base ? ks_ctl_list(ctl, base, "branchKeys", &o->list) : KS_CTL_EXIT_TRANSPORT;
    free(base);
    return rc;
}

static int cmd_versions_list(struct ks_ctl *ctl, char **args, const struct options *o)
{
    char *base = ks_ctl_path(args[0], args[1], "/versions");
    int rc = base ? ks_ctl_list(ctl, base, "versions", &o->list) : KS_CTL_EXIT_TRANSPORT;
    free(base);
    return rc;
}

/*
 * The JSON of --body-file FILE ("-": stdin) into *out. Keyring bodies may hold a plaintext data
 * key, which is why they come from a file and never from argv; the read buffer is wiped.
 */
static int read_body(const char *file, json_object **out)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    int rc = 0;

    *out = NULL;
    if (!f)
        return usage_error("cannot open the body file: %s", strerror(errno));
    do {
        if (len == cap) {
            char *grown = cap < MAX_BODY_BYTES ? malloc(cap ? 2 * cap : 65536) : NULL;
            if (!grown) {
                rc = usage_error("%s", "body file too large (or out of memory)");
                break;
            }
            if (buf) {
                memcpy(grown, buf, len);
                OPENSSL_cleanse(buf, len);
            }
            free(buf);
            buf = grown;
            cap = cap ? 2 * cap : 65536;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    if (f != stdin)
        fclose(f);
    if (rc == 0) {
        json_tokener *tok = json_tokener_new();
        *out = tok ? json_tokener_parse_ex(tok, buf ? buf : "", (int)len) : NULL;
        if (!*out || json_tokener_get_error(tok) != json_tokener_success ||
            !json_object_is_type(*out, json_type_object)) {
            if (*out)
                json_object_put(*out);
            *out = NULL;
            rc = usage_error("%s", "the body file does not hold one JSON object");
        }
        if (tok)
            json_tokener_free(tok);
    }
    if (buf)
        OPENSSL_cleanse(buf, cap);
    free(buf);
    return rc;
}

static int keyring_call(struct ks_ctl *ctl, const char *ks, const char *suffix, json_object *body)
{
    return call(ctl, "POST", ks_ctl_path(ks, NULL, suffix), body);
}

static int cmd_keyring_wrap(struct ks_ctl *ctl, char **args, const struct options *o)
{
    json_object *body;

    if (!o->body_file == !o->id)
        return usage_error("%s", "keyring wrap wants --id ID [--ec K=V]... or --body-file FILE");
    if (o->body_file && o->ec)
        return usage_error("%s", "--ec goes into the body file with --body-file");
    if (o->body_file) {
        if (read_body(o->body_file, &body) != 0)
            return KS_CTL_EXIT_USAGE;
    } else {
        body = json_object_new_object();
        json_object_object_add(body, "branchKeyIdentifier", json_object_new_string(o->id));
        if (o->ec)
            json_object_object_add(body, "encryptionContext", json_object_get(o->ec));
    }
    return keyring_call(ctl, args[0], "/keyring/wrap", body);
}

static int keyring_from_file(struct ks_ctl *ctl, const char *ks, const char *suffix,
                             const struct options *o)
{
    json_object *body;
    if (!o->body_file)
        return usage_error("%s", "this command wants --body-file FILE (\"-\": stdin)");
    if (read_body(o->body_file, &body) != 0)
        return KS_CTL_EXIT_USAGE;
    return keyring_call(ctl, ks, suffix, body);
}

static int cmd_keyring_unwrap(struct ks_ctl *ctl, char **args, const struct options *o)
{
    return keyring_from_file(ctl, args[0], "/keyring/unwrap", o);
}

static int cmd_keyring_unwrap_batch(struct ks_ctl *ctl, char **args, const struct options *o)
{
    return keyring_from_file(ctl, args[0], "/keyring/unwrap-batch", o);
}

static const struct command commands[] = {
    {"health", NULL, 0, 0, cmd_health, "health                      GET /healthz"},
    {"ready", NULL, 0, 0, cmd_ready, "ready                       GET /readyz (exit 1 when 503)"},
    {"metrics", NULL, 0, 0, cmd_metrics, "metrics                     GET /metrics"},
    {"openapi", NULL, 0, 0, cmd_openapi, "openapi                     GET /v1/openapi.yaml"},
    {"keystore", "create", 1, 0, cmd_keystore_create, "keystore create KS          CreateKeyStore"},
    {"keystore", "show", 1, O_KMS_RELATIONSHIP, cmd_keystore_show,
     "keystore show KS [--kms-relationship NAME]   GetKeyStoreInfo"},
    {"key", "create", 1, O_ID | O_EC | O_KMS_RELATIONSHIP | O_HIERARCHY_VERSION, cmd_key_create,
     "key create KS [--id ID] [--ec K=V]... [--kms-relationship NAME] [--hierarchy-version 1]"},
    {"key", "version", 2, O_KMS_RELATIONSHIP, cmd_key_version,
     "key version KS ID [--kms-relationship NAME]    VersionKey (a new ACTIVE version)"},
    {"key", "active", 2, O_KMS_RELATIONSHIP, cmd_key_active,
     "key active KS ID [--kms-relationship NAME]     GetActiveBranchKey"},
    {"key", "get", 3, O_KMS_RELATIONSHIP, cmd_key_get,
     "key get KS ID VERSION [--kms-relationship NAME] GetBranchKeyVersion"},
    {"key", "beacon", 2, O_KMS_RELATIONSHIP, cmd_key_beacon,
     "key beacon KS ID [--kms-relationship NAME]     GetBeaconKey"},
    {"keyring", "wrap", 1, O_ID | O_EC | O_BODY_FILE, cmd_keyring_wrap,
     "keyring wrap KS (--id ID [--ec K=V]... | --body-file FILE)   wrap a data key"},
    {"keyring", "unwrap", 1, O_BODY_FILE, cmd_keyring_unwrap,
     "keyring unwrap KS --body-file FILE   unwrap (FILE \"-\": stdin)"},
    {"keyring", "unwrap-batch", 1, O_BODY_FILE, cmd_keyring_unwrap_batch,
     "keyring unwrap-batch KS --body-file FILE"},
    {"mutate", NULL, 2, O_INIT | O_PAGE_SIZE, cmd_mutate,
     "mutate KS ID [--terminal-kms-arn ARN] [--terminal-ec K=V]... [--terminal-hierarchy-version "
     "1|2]\n"
     "       [--strategy reencrypt:REL | decrypt-encrypt:DEC,ENC] [--do-not-version] [--atomic]\n"
     "       [--page-size N]   initialize or resume, then apply every page (Ctrl-C: stop after\n"
     "       the current page; the same command again resumes)"},
    {"mutation", "init", 2, O_INIT, cmd_mutation_init,
     "mutation init KS ID [mutate's options but --page-size]   InitializeMutation only"},
    {"mutation", "apply", 2, O_STRATEGY | O_PAGE_SIZE, cmd_mutation_apply,
     "mutation apply KS ID [--strategy S] [--page-size N]      one ApplyMutation page"},
    {"mutation", "show", 2, 0, cmd_mutation_show, "mutation show KS ID         DescribeMutation"},
    {"mutation", "abort", 2, 0, cmd_mutation_abort,
     "mutation abort KS ID        abort the mutation in flight (DELETE)"},
    {"keys", "list", 1, O_LIMIT | O_NEXT_TOKEN | O_ALL, cmd_keys_list,
     "keys list KS [--limit N] [--next-token T] [--all]   ListKeys (--all: every page)"},
    {"versions", "list", 2, O_LIMIT | O_NEXT_TOKEN | O_ALL, cmd_versions_list,
     "versions list KS ID [--limit N] [--next-token T] [--all]   versions, newest first"},
    {"rotate", NULL, 2, O_KMS_RELATIONSHIP, cmd_key_version,
     "rotate KS ID [--kms-relationship NAME]          VersionKey now (same as key version)"},
};

static void print_usage(FILE *out)
{
    size_t i;
    fputs(usage_head, out);
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %s\n", commands[i].synopsis);
}

/* ---- option values ------------------------------------------------------------------------- */

/* K=V into *obj (created on first use); K non-empty and given once. */
static int parse_ec(json_object **obj, const char *kv, const char *option)
{
    const char *eq = strchr(kv, '=');
    char *key;
    int rc = 0;

    if (!eq || eq == kv)
        return usage_error("%s wants KEY=VALUE with a non-empty KEY", option);
    key = strndup(kv, (size_t)(eq - kv));
    if (!*obj)
        *obj = json_object_new_object();
    if (!key)
        rc = usage_error("%s: out of memory", option);
    else if (json_object_object_get_ex(*obj, key, NULL))
        rc = usage_error("%s: the same KEY given twice", option);
    else
        json_object_object_add(*obj, key, json_object_new_string(eq + 1));
    free(key);
    return rc;
}

/* reencrypt:REL or decrypt-encrypt:DEC,ENC into the API's strategy object. */
static int parse_strategy(json_object **out, const char *s)
{
    json_object *inner = json_object_new_object();
    const char *comma;

    if (strncmp(s, "reencrypt:", 10) == 0 && s[10]) {
        json_object_object_add(inner, "kmsRelationship", json_object_new_string(s + 10));
        *out = json_object_new_object();
        json_object_object_add(*out, "reEncrypt", inner);
        return 0;
    }
    if (strncmp(s, "decrypt-encrypt:", 16) == 0 && (comma = strchr(s + 16, ',')) &&
        comma > s + 16 && comma[1] && !strchr(comma + 1, ',')) {
        json_object_object_add(inner, "decrypt",
                               json_object_new_string_len(s + 16, (int)(comma - s - 16)));
        json_object_object_add(inner, "encrypt", json_object_new_string(comma + 1));
        *out = json_object_new_object();
        json_object_object_add(*out, "decryptEncrypt", inner);
        return 0;
    }
    json_object_put(inner);
    return usage_error("--strategy wants reencrypt:REL or decrypt-encrypt:DEC,ENC, not \"%s\"", s);
}

static int parse_positive(long *out, const char *s, const char *option)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0 || v > 1000000)
        return usage_error("%s wants a positive integer", option);
    *out = v;
    return 0;
}

/* The token, from --token-file (first line) or KEYSTORED_TOKEN; NULL when neither is set. */
static int load_token(const char *file, char **token)
{
    char buf[MAX_TOKEN_BYTES + 1];
    ssize_t n;
    int fd;

    *token = NULL;
    if (!file) {
        const char *env = getenv("KEYSTORED_TOKEN");
        if (env && *env && !(*token = strdup(env)))
            return usage_error("%s", "out of memory");
        return 0;
    }
    fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return usage_error("cannot open the token file: %s", strerror(errno));
    n = read(fd, buf, MAX_TOKEN_BYTES + 1);
    close(fd);
    if (n < 0 || n > MAX_TOKEN_BYTES) {
        OPENSSL_cleanse(buf, sizeof buf);
        return usage_error("%s", n < 0 ? "cannot read the token file" : "token file too large");
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    n = (ssize_t)strlen(buf);
    while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = '\0';
    if (buf[0])
        *token = strdup(buf);
    OPENSSL_cleanse(buf, sizeof buf);
    return *token ? 0 : usage_error("%s", "the token file holds no token");
}

/* ---- the command line ---------------------------------------------------------------------- */

enum {
    L_URL = 256,
    L_TOKEN_FILE,
    L_TOKEN,
    L_COMPACT,
    L_PRETTY,
    L_TIMEOUT,
    L_KMS_RELATIONSHIP,
    L_ID,
    L_EC,
    L_HIERARCHY_VERSION,
    L_TERMINAL_KMS_ARN,
    L_TERMINAL_EC,
    L_TERMINAL_HV,
    L_STRATEGY,
    L_DO_NOT_VERSION,
    L_ATOMIC,
    L_PAGE_SIZE,
    L_BODY_FILE,
    L_LIMIT,
    L_NEXT_TOKEN,
    L_ALL,
};

static const struct option long_options[] = {
    {"url", required_argument, NULL, L_URL},
    {"token-file", required_argument, NULL, L_TOKEN_FILE},
    {"token", optional_argument, NULL, L_TOKEN},
    {"compact", no_argument, NULL, L_COMPACT},
    {"pretty", no_argument, NULL, L_PRETTY},
    {"timeout", required_argument, NULL, L_TIMEOUT},
    {"kms-relationship", required_argument, NULL, L_KMS_RELATIONSHIP},
    {"id", required_argument, NULL, L_ID},
    {"ec", required_argument, NULL, L_EC},
    {"hierarchy-version", required_argument, NULL, L_HIERARCHY_VERSION},
    {"terminal-kms-arn", required_argument, NULL, L_TERMINAL_KMS_ARN},
    {"terminal-ec", required_argument, NULL, L_TERMINAL_EC},
    {"terminal-hierarchy-version", required_argument, NULL, L_TERMINAL_HV},
    {"strategy", required_argument, NULL, L_STRATEGY},
    {"do-not-version", no_argument, NULL, L_DO_NOT_VERSION},
    {"atomic", no_argument, NULL, L_ATOMIC},
    {"page-size", required_argument, NULL, L_PAGE_SIZE},
    {"body-file", required_argument, NULL, L_BODY_FILE},
    {"limit", required_argument, NULL, L_LIMIT},
    {"next-token", required_argument, NULL, L_NEXT_TOKEN},
    {"all", no_argument, NULL, L_ALL},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The option values of one getopt_long result, by kind; 0, or the usage exit code. */
static int take_option(struct options *o, int c, const char *arg)
{
    switch (c) {
    case L_URL:
        o->url = arg;
        return 0;
    case L_TOKEN_FILE:
        o->token_file = arg;
        return 0;
    case L_TOKEN:
        return usage_error("%s", "tokens are never taken from the command line (other users can "
                                 "read it): set KEYSTORED_TOKEN or use --token-file FILE");
    case L_COMPACT:
        o->compact = 1;
        return 0;
    case L_PRETTY:
        o->compact = 0;
        return 0;
    case L_TIMEOUT:
        return parse_positive(&o->timeout_s, arg, "--timeout");
    case L_KMS_RELATIONSHIP:
        o->given |= O_KMS_RELATIONSHIP;
        o->kms_relationship = arg;
        return 0;
    case L_ID:
        o->given |= O_ID;
        o->id = arg;
        return 0;
    case L_EC:
        o->given |= O_EC;
        return parse_ec(&o->ec, arg, "--ec");
    case L_HIERARCHY_VERSION:
        o->given |= O_HIERARCHY_VERSION;
        o->hierarchy_version = arg;
        return 0;
    case L_TERMINAL_KMS_ARN:
        o->given |= O_TERMINAL_KMS_ARN;
        o->mutation.terminal_kms_arn = arg;
        return 0;
    case L_TERMINAL_EC:
        o->given |= O_TERMINAL_EC;
        return parse_ec(&o->mutation.terminal_ec, arg, "--terminal-ec");
    case L_TERMINAL_HV:
        /* The server checks it too (400); refusing here names the flag. */
        if (strcmp(arg, "1") != 0 && strcmp(arg, "2") != 0)
            return usage_error("%s", "--terminal-hierarchy-version: must be 1 or 2");
        o->given |= O_TERMINAL_HV;
        o->mutation.terminal_hierarchy_version = arg;
        return 0;
    case L_STRATEGY:
        if (o->mutation.strategy)
            return usage_error("%s", "--strategy given twice");
        o->given |= O_STRATEGY;
        return parse_strategy(&o->mutation.strategy, arg);
    case L_DO_NOT_VERSION:
        o->given |= O_DO_NOT_VERSION;
        o->mutation.do_not_version = 1;
        return 0;
    case L_ATOMIC:
        o->given |= O_ATOMIC;
        o->mutation.atomic = 1;
        return 0;
    case L_PAGE_SIZE:
        o->given |= O_PAGE_SIZE;
        return parse_positive(&o->mutation.page_size, arg, "--page-size");
    case L_LIMIT:
        o->given |= O_LIMIT;
        return parse_positive(&o->list.limit, arg, "--limit");
    case L_NEXT_TOKEN:
        o->given |= O_NEXT_TOKEN;
        o->list.next_token = arg;
        return 0;
    case L_ALL:
        o->given |= O_ALL;
        o->list.all = 1;
        return 0;
    case L_BODY_FILE:
        o->given |= O_BODY_FILE;
        o->body_file = arg;
        return 0;
    case 'h':
        o->help = 1;
        return 0;
    default:
        return usage_error("%s", "bad option"); /* getopt printed which */
    }
}

static int parse_options(int argc, char **argv, struct options *o)
{
    int c, rc;

    memset(o, 0, sizeof *o);
    o->timeout_s = DEFAULT_TIMEOUT_S;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1)
        if ((rc = take_option(o, c, optarg)) != 0)
            return rc;
    return 0;
}

/* The command named by args (one or two words) with the right number of arguments. */
static const struct command *find_command(int nargs, char **args, const struct options *o,
                                          char ***rest)
{
    size_t i;
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct command *c = &commands[i];
        int words = c->name ? 2 : 1;
        if (strcmp(args[0], c->group) != 0 || (c->name && (nargs < 2 || strcmp(args[1], c->name))))
            continue;
        if (nargs - words != c->nargs) {
            usage_error("wrong number of arguments; usage: keystorectl %s", c->synopsis);
            return NULL;
        }
        if (o->given & ~c->allowed) {
            usage_error("an option does not apply; usage: keystorectl %s", c->synopsis);
            return NULL;
        }
        *rest = args + words;
        return c;
    }
    usage_error("unknown command \"%s\"", args[0]);
    return NULL;
}

static void free_options(struct options *o)
{
    if (o->ec)
        json_object_put(o->ec);
    if (o->mutation.terminal_ec)
        json_object_put(o->mutation.terminal_ec);
    if (o->mutation.strategy)
        json_object_put(o->mutation.strategy);
}

static int run(const struct command *c, char **args, const struct options *o)
{
    const char *url = o->url ? o->url : getenv("KEYSTORED_URL");
    char *token = NULL;
    struct ks_ctl *ctl;
    int rc;

    if (load_token(o->token_file, &token) != 0)
        return KS_CTL_EXIT_USAGE;
    /* every command with arguments is a /v1/keystores call: it needs a token */
    if (!token && c->nargs > 0)
        return usage_error("%s", "no token: set KEYSTORED_TOKEN or use --token-file FILE");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return usage_error("%s", "libcurl failed to initialize");
    ctl = ks_ctl_create(url && *url ? url : DEFAULT_URL, token, o->timeout_s, o->compact);
    if (!ctl) {
        OPENSSL_cleanse(token, token ? strlen(token) : 0);
        free(token);
        curl_global_cleanup();
        return usage_error("%s", "out of memory");
    }
    rc = c->run(ctl, args, o);
    ks_ctl_destroy(ctl);
    curl_global_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    struct options o;
    const struct command *c;
    char **rest;
    int rc = parse_options(argc, argv, &o);

    if (rc == 0 && o.help) {
        print_usage(stdout);
    } else if (rc == 0 && optind >= argc) {
        rc = usage_error("%s", "no command");
    } else if (rc == 0) {
        c = find_command(argc - optind, argv + optind, &o, &rest);
        rc = c ? run(c, rest, &o) : KS_CTL_EXIT_USAGE;
    }
    free_options(&o);
    return rc;
}
