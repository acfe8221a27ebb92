/*
 * handlers.h - one handler per REST operation (docs/architecture.md section 3), one file per
 * resource: keystores.c (PUT/GET /v1/keystores/{ks}), branch_keys.c (POST .../branch-keys),
 * versions.c (POST .../branch-keys/{id}/versions, GET .../versions/{v}), active.c (GET
 * .../active), beacon.c (GET .../beacon), system.c (GET /healthz, /v1/openapi.yaml; /readyz is
 * server/readiness.c's), metrics.c (GET /metrics, Prometheus text), keyring.c (POST
 * .../keyring/wrap, unwrap, unwrap-batch), mutations.c (POST/GET/DELETE .../mutation, POST
 * .../mutation/apply), inventory.c (GET .../branch-keys and .../branch-keys/{id}/versions, the
 * lists), admin.c (POST /v1/admin/reload). A handler turns the parsed request into a validated
 * keystore (or keyring) call and its result into JSON; no crypto and no storage calls here.
 * common.c also renders errors for the server. Handlers are thread-safe (they only read the app).
 */
#ifndef KS_HANDLERS_HANDLERS_H
#define KS_HANDLERS_HANDLERS_H

#include <stddef.h>

#include "common/status.h"
#include "config/config.h"
#include "keystore/keystore.h"

struct json_object;
struct ks_http_metrics;

/*
 * Everything a handler may use: one configuration snapshot, built by server/app.c at start and
 * at each reload, read-only and held by the request until it completes (so handlers are
 * thread-safe and a reload never changes what a request sees). Handlers reach it only through
 * the accessors below, which read struct ks_app_view: the part of the snapshot that is theirs.
 * server/app.c fills it and puts it first in its struct ks_app, so that calls and includes both
 * go down: handlers call nothing in server/ (docs/architecture.md section 2). Indexes are
 * parallel to the config's key_stores and kms_relationships; an index out of range is a bug
 * (NULL).
 */
struct ks_app;
struct ks_cache;
struct ks_keyring_counters;
struct ks_rotation;
struct ks_audit;

/* Re-reads the configuration file and swaps it in (server/reload.c, README "Reload"). */
typedef ks_status (*ks_app_reload_fn)(void *ctx, struct ks_error *err);

/* What lives from start to exit, the same for every snapshot (server/app.c's backends). */
struct ks_app_shared {
    struct ks_cache *cache;                       /* the shared, partitioned branch key cache */
    struct ks_keyring_counters *keyring_counters; /* wraps and unwraps by outcome (/metrics) */
    struct ks_audit *audit;                       /* the audit log (common/audit.h); NULL: none */
    ks_app_reload_fn reload;                      /* NULL: this server cannot reload */
    void *reload_ctx;
};

/* One snapshot as handlers see it; the first member of server/app.c's struct ks_app. */
struct ks_app_view {
    struct ks_config *config;                  /* owned by the snapshot */
    struct ks_keystore **keystores;            /* parallel to config->key_stores */
    struct ks_kms_relationship *relationships; /* parallel to config->kms_relationships */
    struct ks_rotation **rotations;            /* idem; NULL entries: scheduled rotation off */
    const struct ks_app_shared *shared;
};

static inline const struct ks_app_view *ks_app_view_of(const struct ks_app *app)
{
    return (const struct ks_app_view *)(const void *)app;
}

static inline const struct ks_config *ks_app_config(const struct ks_app *app)
{
    return ks_app_view_of(app)->config;
}

static inline struct ks_keystore *ks_app_keystore(const struct ks_app *app, size_t index)
{
    const struct ks_app_view *v = ks_app_view_of(app);
    return index < v->config->n_key_stores ? v->keystores[index] : NULL;
}

static inline const struct ks_kms_relationship *ks_app_relationship(const struct ks_app *app,
                                                                    size_t index)
{
    const struct ks_app_view *v = ks_app_view_of(app);
    return index < v->config->n_kms_relationships ? &v->relationships[index] : NULL;
}

static inline struct ks_cache *ks_app_cache(const struct ks_app *app)
{
    return ks_app_view_of(app)->shared->cache;
}

/* The keyring routes' counters (keyring/keyring.h), for /metrics; atomic. */
static inline struct ks_keyring_counters *ks_app_keyring_counters(const struct ks_app *app)
{
    return ks_app_view_of(app)->shared->keyring_counters;
}

/* Scheduled rotation of key store `index` (keystore/rotation.h), or NULL when it is off. */
static inline struct ks_rotation *ks_app_rotation(const struct ks_app *app, size_t index)
{
    const struct ks_app_view *v = ks_app_view_of(app);
    return index < v->config->n_key_stores ? v->rotations[index] : NULL;
}

/* The audit log of the service (common/audit.h), or NULL when `audit:` is not configured. */
static inline struct ks_audit *ks_app_audit(const struct ks_app *app)
{
    return ks_app_view_of(app)->shared->audit;
}

/* Re-reads the configuration file and swaps it in (README "Reload"). KS_E_INVALID with the
 * reason when the file is invalid or changes what cannot change live: nothing changed. */
static inline ks_status ks_app_reload(const struct ks_app *app, struct ks_error *err)
{
    const struct ks_app_shared *sh = ks_app_view_of(app)->shared;
    if (!sh->reload)
        return ks_error_set(err, KS_E_INVALID, "this server cannot reload its configuration");
    return sh->reload(sh->reload_ctx, err);
}

/* The OpenAPI document served at GET /v1/openapi.yaml: openapi/openapi.yaml, compiled in by the
 * Makefile (build/gen/openapi.c). */
extern const char ks_openapi_yaml[];
extern const size_t ks_openapi_yaml_len;

enum { KS_PARAM_KS = 0, KS_PARAM_ID, KS_PARAM_VERSION, KS_PARAM_COUNT };

/* The server's background dependency probes (server/readiness.h); /readyz reads them. */
struct ks_readiness;

/*
 * The audit fields a handler knows beyond the route and its path parameters
 * (docs/architecture.md section 12): the key store and KMS relationship it resolved, the branch
 * key and version it created, read, wrapped or unwrapped with. Never key bytes, tokens or
 * encryption context values. Owned by the server for one request (server/audit_hook.c).
 */
struct ks_audit_note {
    const char *key_store;        /* the configured name (lives with the request's snapshot) */
    const char *kms_relationship; /* idem */
    char branch_key_id[KS_BRANCH_KEY_ID_MAX + 1];
    char version[64];
    long long items; /* unwrap-batch: the number of requests; -1 otherwise */
};

struct ks_request {
    struct ks_app *app;
    const char *route;                     /* the matched pattern, e.g. "/v1/keystores/{ks}" */
    const char *params[KS_PARAM_COUNT];    /* decoded path parameters, NULL when absent */
    size_t param_lens[KS_PARAM_COUNT];     /* their lengths (a NUL inside is refused earlier) */
    struct json_object *body;              /* parsed JSON object, NULL when no body */
    const char *kms_relationship_query;    /* ?kmsRelationship=, decoded, or NULL */
    const struct ks_tenant_config *tenant; /* NULL on routes without auth */
    struct ks_readiness *readiness;        /* the server's probes (NULL: reported as starting) */
    /* Appended (issue 14): ?limit= and ?nextToken= of the list routes, decoded, or NULL. */
    const char *limit_query;
    const char *next_token_query;
    /* Appended (issue 12): what the handler tells the audit log of its call (NULL: the route is
     * not audited). Filled through ks_handler_audit_key and ks_handler_resolve. */
    struct ks_audit_note *audit;
    /* Appended (issue 12): the server's HTTP metrics (handlers/http_metrics.h), or NULL. */
    const struct ks_http_metrics *http_metrics;
};

struct ks_response {
    int status; /* HTTP status of a success (200, 201) */
    char *body; /* owned, NUL-terminated; freed with ks_secret_free_string */
    size_t body_len;
    const char *content_type; /* NULL: application/json */
    int no_store;             /* Cache-Control: no-store (key material) */
    char location[4096];      /* Location header when non-empty */
};

typedef ks_status (*ks_handler_fn)(const struct ks_request *req, struct ks_response *resp,
                                   struct ks_error *err);

ks_status ks_handle_keystore_put(const struct ks_request *, struct ks_response *,
                                 struct ks_error *);
ks_status ks_handle_keystore_get(const struct ks_request *, struct ks_response *,
                                 struct ks_error *);
ks_status ks_handle_branch_key_create(const struct ks_request *, struct ks_response *,
                                      struct ks_error *);
ks_status ks_handle_version_create(const struct ks_request *, struct ks_response *,
                                   struct ks_error *);
ks_status ks_handle_version_get(const struct ks_request *, struct ks_response *, struct ks_error *);
ks_status ks_handle_active_get(const struct ks_request *, struct ks_response *, struct ks_error *);
ks_status ks_handle_beacon_get(const struct ks_request *, struct ks_response *, struct ks_error *);
ks_status ks_handle_healthz(const struct ks_request *, struct ks_response *, struct ks_error *);
ks_status ks_handle_openapi(const struct ks_request *, struct ks_response *, struct ks_error *);
ks_status ks_handle_metrics(const struct ks_request *, struct ks_response *, struct ks_error *);
/* keyring.c: POST .../keyring/wrap, .../keyring/unwrap, .../keyring/unwrap-batch. */
ks_status ks_handle_keyring_wrap(const struct ks_request *, struct ks_response *,
                                 struct ks_error *);
ks_status ks_handle_keyring_unwrap(const struct ks_request *, struct ks_response *,
                                   struct ks_error *);
ks_status ks_handle_keyring_unwrap_batch(const struct ks_request *, struct ks_response *,
                                         struct ks_error *);

/* mutations.c: InitializeMutation, ApplyMutation, DescribeMutation, abort. */
ks_status ks_handle_mutation_init(const struct ks_request *, struct ks_response *,
                                  struct ks_error *);
ks_status ks_handle_mutation_apply(const struct ks_request *, struct ks_response *,
                                   struct ks_error *);
ks_status ks_handle_mutation_describe(const struct ks_request *, struct ks_response *,
                                      struct ks_error *);
ks_status ks_handle_mutation_abort(const struct ks_request *, struct ks_response *,
                                   struct ks_error *);
/* inventory.c: ListKeys, ListVersions (issue 14). */
ks_status ks_handle_keys_list(const struct ks_request *, struct ks_response *, struct ks_error *);
ks_status ks_handle_versions_list(const struct ks_request *, struct ks_response *,
                                  struct ks_error *);

/* admin.c: POST /v1/admin/reload. */
ks_status ks_handle_admin_reload(const struct ks_request *, struct ks_response *,
                                 struct ks_error *);

/* --- shared by the handler files (handlers/common.c) --- */

/*
 * The key store of {ks} and the KMS relationship to use (body member kmsRelationship when
 * body_relationship is non-NULL, else ?kmsRelationship=, else the key store's default). Unknown
 * key store or relationship: KS_E_NOT_FOUND; the tenant may not use one of them: KS_E_FORBIDDEN.
 */
ks_status ks_handler_resolve(const struct ks_request *req, const char *body_relationship,
                             struct ks_keystore **ks, const struct ks_kms_relationship **rel,
                             struct ks_error *err);

/*
 * Checks that the body (may be NULL) has only members of allowed (NULL-terminated list).
 * An unknown member is KS_E_INVALID naming it.
 */
ks_status ks_handler_check_members(struct json_object *body, const char *const *allowed,
                                   struct ks_error *err);

/* An optional string member: *out NULL when absent; wrong type is KS_E_INVALID naming it. */
ks_status ks_handler_optional_string(struct json_object *body, const char *name, const char **out,
                                     size_t *len, struct ks_error *err);

/* Moves a finished JSON text into resp (or KS_E_INTERNAL when the writer failed). */
struct ks_jsonw;
ks_status ks_handler_finish(struct ks_jsonw *w, int status, struct ks_response *resp,
                            struct ks_error *err);

/*
 * The error answer for err (docs/architecture.md section 3):
 * {"error":{"type","message","requestId"}} with the status table's HTTP code, no-store. The
 * client is told enough and no more:
 *   - KS_E_CONFIG (start-up only) or any status outside the table is answered as KS_E_INTERNAL;
 *   - a 500 carries only the table's generic text: internal free text stays in the log;
 *   - every other status carries err->message (for a dependency failure the lower layer put the
 *     dependency and its error code there, e.g. "KMS AccessDeniedException"), as valid UTF-8;
 *   - err->detail never reaches the client.
 * Returns the status answered (the server logs it beside err). resp->body is NULL if out of memory.
 */
ks_status ks_handler_error_response(const struct ks_error *err, const char *request_id,
                                    struct ks_response *resp);

/* Records the branch key id and version (either may be NULL: left as is) of the call in its
 * audit note; a no-op when the route is not audited. */
void ks_handler_audit_key(const struct ks_request *req, const char *branch_key_id,
                          const char *version);

/* Which key a get handler reads. */
enum ks_handler_key { KS_HANDLER_ACTIVE, KS_HANDLER_VERSION, KS_HANDLER_BEACON };

/*
 * The three gets: resolve the key store and relationship, read through the cache with the
 * tenant's partition (a trust boundary, never taken from request data; docs/reference/cache.md
 * section 7), and answer the materials with no-store.
 */
ks_status ks_handler_get_key(const struct ks_request *req, enum ks_handler_key which,
                             struct ks_response *resp, struct ks_error *err);

#endif
