/*
 * load.c - YAML (libyaml document API) -> one immutable, validated struct ks_config
 * (docs/architecture.md section 4).
 *
 * The whole file is loaded into a libyaml document first, then walked by schema-driven functions
 * that fill the struct and record every problem they meet instead of stopping at the first one:
 * an operator fixing a config wants the full list at once (docs/architecture.md section 4, "Invalid
 * config stops the start with every error listed"). Each error carries the 1-based line and column
 * of the offending node; the list is sorted by position before it is returned. Any error discards
 * the partially built struct, so a returned config is always complete and valid.
 *
 * Values that are secrets (static credentials, grant tokens) or stand in for them (tenant token
 * hashes) are never echoed into messages, and the scalar buffers of the libyaml document are wiped
 * before they are freed.
 *
 * This file loads the document and walks its top level; each section has its own file (server.c,
 * kms_relationships.c, key_stores.c, tenants.c, cache.c) over the one YAML-node helper parse.c
 * (config/parse.h). It also holds the defaults and the embedded default; config.c holds the
 * lookups and free (and includes no parser header, so the units depend one way).
 */
#include "config/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <yaml.h>

#include "common/secret.h"
#include "config/parse.h"

/* A config file larger than this is surely a mistake (and would only waste memory). */
#define MAX_FILE_BYTES (16u * 1024u * 1024u)
static void parse_root(struct ks_config_parser *p, yaml_node_t *root)
{
    enum {
        TOP_LISTEN,
        TOP_SERVER,
        TOP_RELS,
        TOP_KEY_STORES,
        TOP_CACHE,
        TOP_TENANTS,
        TOP_AUDIT,
        TOP_COUNT
    };
    struct ks_config_field f[TOP_COUNT] = {
        [TOP_LISTEN] = {.key = "listen"},
        [TOP_SERVER] = {.key = "server"},
        [TOP_RELS] = {.key = "kms_relationships"},
        [TOP_KEY_STORES] = {.key = "key_stores"},
        [TOP_CACHE] = {.key = "cache"},
        [TOP_TENANTS] = {.key = "tenants"},
        [TOP_AUDIT] = {.key = "audit"},
    };

    if (!root) {
        ks_config_error_at(p, 1, 1,
                           "the configuration is empty; expected a mapping with kms_relationships, "
                           "key_stores and tenants");
        return;
    }
    if (ks_config_get_fields(p, root, "", f, TOP_COUNT) < 0)
        return;
    if (f[TOP_LISTEN].value)
        ks_config_section_listen(p, f[TOP_LISTEN].value);
    if (f[TOP_SERVER].value)
        ks_config_section_server(p, f[TOP_SERVER].value);
    if (f[TOP_CACHE].value)
        ks_config_section_cache(p, f[TOP_CACHE].value);
    if (f[TOP_AUDIT].value)
        ks_config_section_audit(p, f[TOP_AUDIT].value);
    /* Fixed order, whatever the file's: key stores refer to relationships, tenants to both. */
    if (ks_config_require(p, root, "", &f[TOP_RELS], "a list of KMS relationships"))
        ks_config_section_relationships(p, f[TOP_RELS].value);
    if (ks_config_require(p, root, "", &f[TOP_KEY_STORES], "a list of key stores"))
        ks_config_section_key_stores(p, f[TOP_KEY_STORES].value);
    if (ks_config_require(p, root, "", &f[TOP_TENANTS], "a list of tenants"))
        ks_config_section_tenants(p, f[TOP_TENANTS].value);
}

static int set_defaults(struct ks_config *cfg, const char *host, uint16_t port)
{
    cfg->listen_host = strdup(host);
    cfg->listen_port = port;
    cfg->server.threads = 4;
    cfg->server.max_body_bytes = 65536;
    cfg->server.max_json_depth = 16;
    cfg->server.connection_timeout_seconds = 30;
    cfg->server.max_connections = 0;        /* 0: derived from RLIMIT_NOFILE at start */
    cfg->server.max_connections_per_ip = 0; /* 0: no per-address cap */
    cfg->server.header_timeout_seconds = 10;
    cfg->server.max_uri_bytes = 8192;
    cfg->server.max_header_bytes = 16384;
    cfg->server.readiness_interval_ms = 5000;
    cfg->server.readiness_timeout_ms = 2000;
    cfg->server.max_keyring_body_bytes = 4u << 20; /* 4 MiB */
    /* Far above what the worker threads run at once (a request past its headers counts until
     * answered, body uploads included), low enough that a flood is refused fast (issue 12). */
    cfg->server.max_in_flight_requests = 1024;
    /* MPL DefaultStorm() (docs/reference/cache.md section 4) and the hierarchical keyring's 600 s
     * ttl. */
    cfg->cache.capacity = 1000;
    cfg->cache.ttl_seconds = 600;
    cfg->cache.grace_period_seconds = 10;
    cfg->cache.grace_interval_seconds = 1;
    cfg->cache.fan_out = 20;
    cfg->cache.in_flight_ttl_seconds = 10;
    return cfg->listen_host ? 0 : -1;
}

static void add_syntax_error(struct ks_config_parser *p, const yaml_parser_t *yp, const char *yaml,
                             size_t len)
{
    const char *problem = yp->problem ? yp->problem : "unknown problem";

    if (yp->error == YAML_MEMORY_ERROR) {
        p->oom = 1;
    } else if (yp->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark. */
        size_t line = 1, column = 1, i;
        for (i = 0; i < yp->problem_offset && i < len; i++) {
            if (yaml[i] == '\n') {
                line++;
                column = 1;
            } else {
                column++;
            }
        }
        ks_config_error_at(p, line, column, "invalid input: %s; expected UTF-8 text", problem);
    } else if (yp->context) {
        ks_config_error_at(p, yp->problem_mark.line + 1, yp->problem_mark.column + 1,
                           "YAML syntax error: %s (%s at line %zu); expected valid YAML", problem,
                           yp->context, yp->context_mark.line + 1);
    } else {
        ks_config_error_at(p, yp->problem_mark.line + 1, yp->problem_mark.column + 1,
                           "YAML syntax error: %s; expected valid YAML", problem);
    }
}

/* The document holds copies of every scalar, secrets included: wipe them before freeing. */
static void wipe_document(yaml_document_t *doc)
{
    yaml_node_t *n;
    for (n = doc->nodes.start; n && n < doc->nodes.top; n++)
        if (n->type == YAML_SCALAR_NODE && n->data.scalar.value)
            OPENSSL_cleanse(n->data.scalar.value, n->data.scalar.length);
}

static void wipe_parser(yaml_parser_t *yp)
{
    if (yp->buffer.start)
        OPENSSL_cleanse(yp->buffer.start, (size_t)(yp->buffer.end - yp->buffer.start));
    if (yp->raw_buffer.start)
        OPENSSL_cleanse(yp->raw_buffer.start, (size_t)(yp->raw_buffer.end - yp->raw_buffer.start));
}

/* Loads the one document of the buffer and walks it. */
static void load_document(struct ks_config_parser *p, const char *yaml, size_t len)
{
    yaml_parser_t yp;
    yaml_document_t doc, extra;

    if (!yaml_parser_initialize(&yp)) {
        p->oom = 1;
        return;
    }
    yaml_parser_set_input_string(&yp, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&yp, &doc)) {
        add_syntax_error(p, &yp, yaml, len);
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        p->doc = &doc;
        parse_root(p, root);
        if (root) {
            /* A second document would be silently ignored; say so instead. */
            if (!yaml_parser_load(&yp, &extra)) {
                add_syntax_error(p, &yp, yaml, len);
            } else {
                yaml_node_t *again = yaml_document_get_root_node(&extra);
                if (again)
                    ks_config_error(p, again,
                                    "a second YAML document starts here; expected exactly one "
                                    "document");
                wipe_document(&extra);
                yaml_document_delete(&extra);
            }
        }
        p->doc = NULL;
        wipe_document(&doc);
        yaml_document_delete(&doc);
    }
    wipe_parser(&yp);
    yaml_parser_delete(&yp);
}

ks_status ks_config_load_buffer(const char *name, const char *yaml, size_t len,
                                struct ks_config **out, char **errors)
{
    struct ks_config_parser p;
    ks_status status = KS_OK;

    if (errors)
        *errors = NULL;
    if (!out)
        return KS_E_INTERNAL;
    *out = NULL;
    memset(&p, 0, sizeof p);
    p.name = name ? name : "<config>";
    p.cfg = calloc(1, sizeof *p.cfg);
    if (!p.cfg || set_defaults(p.cfg, "127.0.0.1", 8080) < 0 ||
        !(p.cfg->source_name = strdup(p.name))) {
        p.oom = 1;
    } else {
        load_document(&p, yaml ? yaml : "", yaml ? len : 0);
    }

    if (p.oom) {
        status = KS_E_INTERNAL;
        if (errors)
            *errors =
                ks_config_format("%s: out of memory while loading the configuration\n", p.name);
    } else if (p.n_errors) {
        status = KS_E_CONFIG;
        if (errors) {
            *errors = ks_config_join_errors(&p);
            if (!*errors)
                status = KS_E_INTERNAL;
        }
    }
    ks_config_free_errors(&p);
    if (status != KS_OK) {
        ks_config_free(p.cfg);
        return status;
    }
    *out = p.cfg;
    return KS_OK;
}

/*
 * Reads f whole into a malloc'd *buf of *cap bytes (*len used), stopping after MAX_FILE_BYTES + 1
 * so that an oversized file is seen without reading it all. Copies are wiped: a config can hold
 * static credentials. Returns 0, or -1 on OOM (*buf still owned by the caller).
 */
static int read_whole(FILE *f, char **buf, size_t *len, size_t *cap)
{
    for (;;) {
        size_t got;
        if (*len == *cap) {
            size_t bigger = *cap ? 2 * *cap : 4096;
            char *grown;
            if (*cap >= MAX_FILE_BYTES + 1)
                return 0;
            if (bigger > MAX_FILE_BYTES + 1)
                bigger = MAX_FILE_BYTES + 1;
            /* *cap changes only with *buf: the caller wipes *cap bytes of it. */
            grown = malloc(bigger);
            if (!grown)
                return -1;
            if (*buf) {
                memcpy(grown, *buf, *len);
                OPENSSL_cleanse(*buf, *len);
                free(*buf);
            }
            *buf = grown;
            *cap = bigger;
        }
        got = fread(*buf + *len, 1, *cap - *len, f);
        *len += got;
        if (got == 0)
            return 0;
    }
}

ks_status ks_config_load_file(const char *path, struct ks_config **out, char **errors)
{
    char reason[128];
    char *buf = NULL;
    size_t len = 0, cap = 0;
    ks_status status;
    FILE *f;

    if (errors)
        *errors = NULL;
    if (!out || !path)
        return KS_E_INTERNAL;
    *out = NULL;
    f = fopen(path, "rb");
    if (!f) {
        /* -D_GNU_SOURCE (Makefile): the GNU strerror_r returns the message. */
        const char *why = strerror_r(errno, reason, sizeof reason);
        if (errors)
            *errors = ks_config_format("%s:1:1: cannot open the file (%s); expected a readable "
                                       "YAML file\n",
                                       path, why);
        return KS_E_CONFIG;
    }
    if (read_whole(f, &buf, &len, &cap) < 0) {
        status = KS_E_INTERNAL;
    } else if (ferror(f)) {
        const char *why = strerror_r(errno, reason, sizeof reason);
        if (errors)
            *errors = ks_config_format("%s:1:1: cannot read the file (%s); expected a readable "
                                       "YAML file\n",
                                       path, why);
        status = KS_E_CONFIG;
    } else if (len > MAX_FILE_BYTES) {
        if (errors)
            *errors = ks_config_format("%s:1:1: the file is larger than %u bytes; expected a "
                                       "configuration file\n",
                                       path, MAX_FILE_BYTES);
        status = KS_E_CONFIG;
    } else {
        status = ks_config_load_buffer(path, buf, len, out, errors);
    }
    fclose(f);
    if (buf) {
        OPENSSL_cleanse(buf, cap);
        free(buf);
    }
    return status;
}

/* ---------------------------------------------------------------------------------------- */
/* Embedded default, lookups, free                                                          */
/* ---------------------------------------------------------------------------------------- */

static char *join_file(const char *dir, const char *file)
{
    size_t len = strlen(dir);
    return ks_config_format("%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", file);
}

ks_status ks_config_default(const char *data_dir, const char *listen_host, uint16_t listen_port,
                            const unsigned char admin_token_sha256[32], const char *kms_key_arn,
                            struct ks_config **out, struct ks_error *err)
{
    struct ks_config *cfg;
    struct ks_kms_rel_config *rel;
    struct ks_key_store_config *ks;
    struct ks_tenant_config *t;
    int ok;

    if (!out)
        return ks_error_set(err, KS_E_INVALID, "no output pointer");
    *out = NULL;
    if (!data_dir || !*data_dir)
        return ks_error_set(err, KS_E_INVALID, "data directory missing");
    if (!listen_host || ks_config_check_host(listen_host))
        return ks_error_set(err, KS_E_INVALID,
                            "listen host is not an IPv4 address, IPv6 address or host name");
    if (!admin_token_sha256)
        return ks_error_set(err, KS_E_INVALID, "admin token hash missing");
    if (kms_key_arn && !ks_config_valid_local_arn(kms_key_arn))
        return ks_error_set(
            err, KS_E_INVALID,
            "kms_key_arn is not a local KMS key ARN; expected " KS_CONFIG_LOCAL_ARN_PREFIX
            "<lowercase UUID>");

    cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    ok = set_defaults(cfg, listen_host, listen_port) == 0;
    cfg->source_name = strdup("<embedded default>");
    cfg->kms_relationships = calloc(1, sizeof *cfg->kms_relationships);
    cfg->key_stores = calloc(1, sizeof *cfg->key_stores);
    cfg->tenants = calloc(1, sizeof *cfg->tenants);
    ok = ok && cfg->source_name && cfg->kms_relationships && cfg->key_stores && cfg->tenants;
    if (ok) {
        cfg->n_kms_relationships = cfg->n_key_stores = cfg->n_tenants = 1;

        rel = &cfg->kms_relationships[0];
        rel->name = strdup("local");
        rel->type = KS_KMS_LOCAL;
        rel->key_file = join_file(data_dir, "local-kms.keys");
        ok = rel->name && rel->key_file;
        if (kms_key_arn) {
            rel->has_kms_configuration = 1;
            rel->kms.kind = KS_KMS_KEY_ARN;
            rel->kms.arn = strdup(kms_key_arn);
            ok = ok && rel->kms.arn;
        }

        ks = &cfg->key_stores[0];
        ks->name = strdup("default");
        ks->logical_key_store_name = strdup("default");
        ks->kms_relationship = strdup("local");
        ks->kms_relationship_index = 0;
        ks->storage.type = KS_STORAGE_SQLITE;
        ks->storage.path = join_file(data_dir, "keystore.db");
        ok = ok && ks->name && ks->logical_key_store_name && ks->kms_relationship &&
             ks->storage.path;

        t = &cfg->tenants[0];
        t->name = strdup("admin");
        memcpy(t->token_sha256, admin_token_sha256, sizeof t->token_sha256);
        t->role = KS_ROLE_ADMIN;
        t->key_store_indexes = calloc(1, sizeof *t->key_store_indexes);
        t->kms_relationship_indexes = calloc(1, sizeof *t->kms_relationship_indexes);
        t->partition = strdup("tenant:admin");
        ok = ok && t->name && t->key_store_indexes && t->kms_relationship_indexes && t->partition;
        if (t->key_store_indexes)
            t->n_key_stores = 1;
        if (t->kms_relationship_indexes)
            t->n_kms_relationships = 1;
    }
    if (!ok) {
        ks_config_free(cfg);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    *out = cfg;
    return KS_OK;
}
