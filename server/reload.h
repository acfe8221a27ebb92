/*
 * reload.h - configuration reload without a restart (README "Reload"), for SIGHUP (the main
 * thread's sigwait loop, server/main.c) and POST /v1/admin/reload (handlers/admin.c through
 * ks_app_reload). One reload at a time: re-read the file, validate it whole, refuse what cannot
 * change live (config/compare.h, server/app.h), build the new snapshot over the long-lived
 * backends, swap it into the server. Any failure changes nothing and is logged.
 */
#ifndef KS_SERVER_RELOAD_H
#define KS_SERVER_RELOAD_H

#include "common/audit.h"
#include "common/log.h"
#include "server/app.h"
#include "server/server.h"

struct ks_reloader;

struct ks_reload_options {
    const char *config_path; /* NULL: the embedded default, which has no file to re-read */
    const char *listen;      /* --listen ADDR:PORT, applied over each file as at start; NULL */
    struct ks_log *log;      /* borrowed */
    struct ks_audit *audit;  /* borrowed; NULL: no audit log (issue 12) */
};

/* current: the snapshot the server starts with (the reloader takes its own reference). All
 * arguments are borrowed and must outlive the reloader. Registers itself with backends, before
 * the server starts (so that no request thread sees the registration being written); until
 * ks_reloader_attach a reload is refused. */
ks_status ks_reloader_create(const struct ks_reload_options *opts, struct ks_backends *backends,
                             struct ks_app *current, struct ks_reloader **out,
                             struct ks_error *err);
/* The server that reloads swap snapshots into (borrowed). Thread-safe. */
void ks_reloader_attach(struct ks_reloader *r, struct ks_server *server);
/* After the server stopped (no reload can be running). NULL is a no-op. */
void ks_reloader_destroy(struct ks_reloader *r);

/* One reload, the one path of SIGHUP and POST /v1/admin/reload: first the logs are reopened
 * (the service log, then the audit log: logrotate's rename; docs/architecture.md section 12),
 * whatever the file then holds, so an invalid configuration never prevents the reopen; then the
 * configuration is reloaded. KS_E_INVALID with the reason (the first error of the file when it is
 * invalid; every error is logged) when nothing changed; KS_E_INTERNAL on OOM. Thread-safe. */
ks_status ks_reload(struct ks_reloader *r, struct ks_error *err);

#endif
