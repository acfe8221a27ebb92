/*
 * app.h - the run-time objects of keystored (docs/architecture.md section 2), in two lifetimes:
 *
 * - struct ks_backends, long-lived (start to exit): the shared branch key cache, and every key
 *   store (storage + keystore) and KMS relationship (KMS backend, its counters) ever opened,
 *   keyed by name. A reload keeps them, so cache entries, connections to AWS and metrics
 *   survive it. A key store or relationship that a reload removes stays open, idle, until the
 *   process exits (its readiness probe goes on too), and one that comes back with the same
 *   settings is reused; nothing is closed while requests may use it.
 * - struct ks_app, one configuration snapshot: the config (owned), the token table, and the
 *   backends of the config's key stores and relationships in config order. Reference-counted: a
 *   request holds one from its first handler call to its completion, so a reload never changes
 *   the configuration under a request in flight. Immutable once built; thread-safe.
 */
#ifndef KS_SERVER_APP_H
#define KS_SERVER_APP_H

#include "handlers/handlers.h"
#include "server/auth.h"

struct ks_backends;

/* The cache is built from cache (copied); clock (NULL: system) must outlive the backends. */
ks_status ks_backends_create(const struct ks_cache_config *cache, const struct ks_clock *clock,
                             struct ks_backends **out, struct ks_error *err);
/* Frees every backend. Call after the last snapshot is released. NULL is a no-op. */
void ks_backends_destroy(struct ks_backends *b);

/*
 * What POST /v1/admin/reload calls (ks_app_reload, handlers/handlers.h): set once by the
 * binary before serving. Without it a reload is refused.
 */
typedef ks_status (*ks_reload_fn)(void *ctx, struct ks_error *err);
void ks_backends_set_reload(struct ks_backends *b, ks_reload_fn fn, void *ctx);

/* The audit log (common/audit.h; borrowed, outlives the backends), set once by the binary
 * before serving; ks_app_audit (handlers/handlers.h) returns it. NULL: none. */
void ks_backends_set_audit(struct ks_backends *b, struct ks_audit *audit);

/* Calls fn(ctx, name, keystore, relationship) for every backend ever opened, in opening order,
 * exactly one of keystore and relationship non-NULL (readiness probes). Not concurrent with
 * ks_app_create on the same backends. */
void ks_backends_foreach(struct ks_backends *b,
                         void (*fn)(void *ctx, const char *name, struct ks_keystore *keystore,
                                    const struct ks_kms_relationship *relationship),
                         void *ctx);

/*
 * A snapshot of cfg: opens what cfg names that b does not have yet (key stores first: a local
 * relationship asks them whether it may create master keys) and reuses the rest by name. A key
 * store or relationship whose backend settings differ from the one open under its name, or a
 * cache section different from b's, is KS_E_CONFIG naming it, and nothing is built. On success
 * the snapshot owns cfg (freed with it) and holds one reference; on failure cfg is still the
 * caller's. Calls on the same b must not run concurrently (reloads are serialised).
 */
ks_status ks_app_create(struct ks_backends *b, struct ks_config *cfg, struct ks_app **out,
                        struct ks_error *err);

/* Another reference to app; thread-safe. */
struct ks_app *ks_app_ref(struct ks_app *app);
/* Drops one; the last frees the snapshot and its config (never a backend). NULL is a no-op. */
void ks_app_unref(struct ks_app *app);

/* The reference count (tests). */
size_t ks_app_refs(const struct ks_app *app);

/* The snapshot's token table. */
const struct ks_auth *ks_app_auth(const struct ks_app *app);

/* The rate-limit bucket of tenant (one of the snapshot's), or NULL when it has no rate_limit
 * (server/ratelimit.h; the snapshot holds a reference). */
struct ks_ratelimit;
struct ks_ratelimit *ks_app_tenant_limit(const struct ks_app *app,
                                         const struct ks_tenant_config *tenant);

#endif
