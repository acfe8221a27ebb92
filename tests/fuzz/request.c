/*
 * request.c - fuzz target: one HTTP request as the server hands it to a handler, from raw
 * bytes. The input is a request line and a body:
 *
 *   METHOD /v1/path?query\n
 *   {"json": "body"}
 *
 * The path goes through the route table (server/router.h, percent-decoding of the parameters),
 * the query through a small split into kmsRelationship/limit/nextToken, the body through the
 * server's parser (ks_server_parse_body: the raw pre-scan of common/json_check.h, then json-c,
 * with the keyring routes' flags), and the matched route's handler runs with the parsed request
 * against a real snapshot: SQLite storage and local KMS in a temporary directory, one admin
 * tenant, and one branch key per hierarchy version ("fuzz-key", "fuzz-key-2") created at start,
 * so that the keyring and get routes reach key material with fuzzed contexts and ciphertexts.
 *
 * The store stays as created: the routes that would write (CreateKey, key store PUT,
 * VersionKey, the mutation routes) are sent to an unconfigured key store or an absent branch
 * key, which still runs all their body parsing and validation before the lookup fails.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/ec.h"
#include "common/json_check.h"
#include "common/secret.h"
#include "server/app.h"
#include "server/router.h"
#include "server/server.h"
#include "tests/fuzz/fuzz.h"

static char dir[] = "/tmp/ks-fuzz-request-XXXXXX";
static struct ks_backends *backends;
static struct ks_app *app;
static int verbose;

static void fail(const char *what, const char *why)
{
    fprintf(stderr, "request fuzz setup: %s: %s\n", what, why ? why : "");
    abort();
}

static void cleanup(void)
{
    char path[256];

    ks_app_unref(app);
    ks_backends_destroy(backends);
    /* The files ks_app_create made: the SQLite database (with its journal) and the key file. */
    for (const char *const *f = (const char *const[]){"ks.db", "ks.db-wal", "ks.db-shm",
                                                      "ks.db-journal", "kms.keys", NULL};
         *f; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, *f);
        unlink(path);
    }
    rmdir(dir);
}

static struct ks_config *load_config(void)
{
    char yaml[2048];
    struct ks_config *cfg = NULL;
    char *errors = NULL;

    snprintf(yaml, sizeof yaml,
             "kms_relationships:\n"
             "  - {name: local, type: local, key_file: %s/kms.keys}\n"
             "key_stores:\n"
             "  - {name: default, logical_key_store_name: fuzz, kms_relationship: local,\n"
             "     storage: {type: sqlite, path: %s/ks.db}}\n"
             "tenants:\n"
             "  - name: admin\n"
             "    token_sha256: \"%064d\"\n"
             "    role: admin\n"
             "    key_stores: [default]\n"
             "    kms_relationships: [local]\n",
             dir, dir, 0);
    if (ks_config_load_buffer("fuzz.yaml", yaml, strlen(yaml), &cfg, &errors) != KS_OK)
        fail("config", errors);
    return cfg;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct ks_cache_config cc = {1000, 600, 10, 1, 20, 10, 0}; /* the defaults */
    struct ks_config *cfg;
    struct ks_error err;
    struct ks_ec ec;
    char *id = NULL;

    (void)argc;
    (void)argv;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (!mkdtemp(dir))
        fail("mkdtemp", dir);
    cfg = load_config();
    if (ks_backends_create(&cc, NULL, &backends, &err) != KS_OK)
        fail("backends", err.message);
    if (ks_app_create(backends, cfg, &app, &err) != KS_OK)
        fail("app", err.message);
    atexit(cleanup);
    ks_ec_init(&ec);
    if (ks_ec_set(&ec, "purpose", "fuzz") != 0) /* a custom id needs a custom context */
        fail("context", "out of memory");
    for (int hv = 1; hv <= 2; hv++) {
        if (ks_keystore_create_key_hv(ks_app_keystore(app, 0), ks_app_relationship(app, 0),
                                      hv == 1 ? "fuzz-key" : "fuzz-key-2", &ec, hv, &id,
                                      &err) != KS_OK)
            fail("create key", err.message);
        free(id);
    }
    ks_ec_free(&ec);
    return 0;
}

/* ?kmsRelationship=&limit=&nextToken= (no percent-decoding: the values are fuzzed directly). */
static void split_query(char *query, struct ks_request *req)
{
    for (char *save = NULL, *kv = strtok_r(query, "&", &save); kv;
         kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            continue;
        *eq = '\0';
        if (strcmp(kv, "kmsRelationship") == 0)
            req->kms_relationship_query = eq + 1;
        else if (strcmp(kv, "limit") == 0)
            req->limit_query = eq + 1;
        else if (strcmp(kv, "nextToken") == 0)
            req->next_token_query = eq + 1;
    }
}

/* Keeps the store as created: writes go to an unconfigured key store or an absent key. */
static void redirect_writes(const struct ks_route *route, struct ks_request *req)
{
    static const char absent_ks[] = "fuzz-absent-store", absent_id[] = "fuzz-absent-key";

    if (strcmp(route->method, "GET") == 0 || route->access == KS_ACCESS_KEYRING)
        return;
    if (req->params[KS_PARAM_ID]) {
        req->params[KS_PARAM_ID] = absent_id;
        req->param_lens[KS_PARAM_ID] = sizeof absent_id - 1;
    } else if (req->params[KS_PARAM_KS]) {
        req->params[KS_PARAM_KS] = absent_ks;
        req->param_lens[KS_PARAM_KS] = sizeof absent_ks - 1;
    }
}

static void run(const struct ks_route_match *m, char *query, const char *body, size_t body_len)
{
    const struct ks_config *cfg = ks_app_config(app);
    struct ks_request req;
    struct ks_response resp;
    struct ks_error err;
    ks_status st;

    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    req.app = app;
    req.route = m->route->pattern;
    req.tenant = &cfg->tenants[0];
    for (int i = 0; i < KS_PARAM_COUNT; i++) {
        req.params[i] = m->params[i];
        req.param_lens[i] = m->param_lens[i];
    }
    if (query)
        split_query(query, &req);
    redirect_writes(m->route, &req);
    if (body_len && !m->route->takes_body)
        return; /* the server answers 400 before any handler */
    if (body_len &&
        ks_server_parse_body(body, body_len, cfg->server.max_json_depth,
                             m->route->access == KS_ACCESS_KEYRING ? KS_JSON_NUL_IN_VALUES : 0,
                             &req.body, &err) != KS_OK)
        return;
    st = m->route->handler(&req, &resp, &err);
    if (verbose) /* FUZZ_VERBOSE=1: what each input reached, for seed maintenance */
        fprintf(stderr, "%s %s: %s %s\n", m->route->method, m->route->pattern,
                ks_status_exception(st), st == KS_OK ? "" : err.message);
    /* A success carries a body; a failure never leaves one behind. */
    FUZZ_CHECK(st == KS_OK ? resp.body != NULL : resp.body == NULL);
    if (st != KS_OK) {
        ks_handler_error_response(&err, "fuzz", &resp);
        FUZZ_CHECK(resp.body != NULL);
    }
    ks_secret_free_string(resp.body);
    json_object_put(req.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = fuzz_line(&data, &size), *body = fuzz_cstr(data, size);
    char *path = strchr(line, ' '), *query;
    struct ks_route_match m;

    if (path) {
        *path++ = '\0';
        if ((query = strchr(path, '?')) != NULL)
            *query++ = '\0';
        memset(&m, 0, sizeof m);
        if (ks_router_match(line, path, &m) == KS_MATCH_OK)
            run(&m, query, body, size);
        ks_router_match_free(&m);
    }
    free(body);
    free(line);
    return 0;
}
