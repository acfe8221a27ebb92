/*
 * app.h - builds the run-time objects of a config (docs/architecture.md section 2): one KMS backend
 * per relationship, one storage backend + keystore per key store. The app is immutable once built
 * and shared by all server threads.
 */
#ifndef KS_SERVER_APP_H
#define KS_SERVER_APP_H

#include "handlers/handlers.h"

/*
 * Opens every backend named by cfg (borrowed; must outlive the app): key stores first, then KMS
 * relationships (a local relationship never creates master keys while any key store holds
 * items). A backend that cannot be opened is an error naming the relationship or key store.
 * Caller frees with ks_app_destroy.
 */
ks_status ks_app_create(const struct ks_config *cfg, const struct ks_clock *clock,
                        struct ks_app **out, struct ks_error *err);
void ks_app_destroy(struct ks_app *app);

#endif
