/*
 * reload.c - one configuration reload at a time (reload.h).
 */
#include "server/reload.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/compare.h"

struct ks_reloader {
    pthread_mutex_t lock; /* one reload at a time; guards current */
    struct ks_reload_options opts;
    struct ks_backends *backends;
    struct ks_server *server;
    struct ks_app *current; /* one reference: the snapshot the server has now */
};

static ks_status reload_cb(void *ctx, struct ks_error *err)
{
    return ks_reload(ctx, err);
}

ks_status ks_reloader_create(const struct ks_reload_options *opts, struct ks_backends *backends,
                             struct ks_app *current, struct ks_reloader **out, struct ks_error *err)
{
    struct ks_reloader *r = calloc(1, sizeof *r);
    if (!r || pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    r->opts = *opts;
    r->backends = backends;
    r->current = ks_app_ref(current);
    ks_backends_set_reload(backends, reload_cb, r);
    *out = r;
    return KS_OK;
}

void ks_reloader_attach(struct ks_reloader *r, struct ks_server *server)
{
    pthread_mutex_lock(&r->lock);
    r->server = server;
    pthread_mutex_unlock(&r->lock);
}

void ks_reloader_destroy(struct ks_reloader *r)
{
    if (!r)
        return;
    ks_backends_set_reload(r->backends, NULL, NULL);
    ks_app_unref(r->current);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* One log event per line of the loader's error list; the first line becomes the answer. */
static ks_status file_errors(struct ks_reloader *r, const char *errors, struct ks_error *err)
{
    const char *text = errors ? errors : "invalid configuration";
    const char *nl = strchr(text, '\n');
    int first = nl ? (int)(nl - text) : (int)strlen(text);
    size_t lines = 0;

    while (*text) {
        const char *end = strchr(text, '\n');
        size_t len = end ? (size_t)(end - text) : strlen(text);
        if (len > 0) {
            ks_log_msg(r->opts.log, KS_LOG_ERROR, "reload_failed", "%.*s", (int)len, text);
            lines++;
        }
        text += len + (end ? 1 : 0);
    }
    text = errors ? errors : "invalid configuration";
    return ks_error_set(err, KS_E_INVALID, "configuration not reloaded: %.*s%s", first, text,
                        lines > 1 ? " (and more errors: see the log)" : "");
}

/* The file as at start: loaded, validated, --listen applied over it. */
static ks_status load(struct ks_reloader *r, struct ks_config **out, struct ks_error *err)
{
    struct ks_config *cfg = NULL;
    char *errors = NULL;
    char *host;
    uint16_t port;
    ks_status st;

    if (!r->opts.config_path)
        return ks_error_set(err, KS_E_INVALID,
                            "configuration not reloaded: keystored runs the embedded default "
                            "(no --config file to re-read)");
    if (ks_config_load_file(r->opts.config_path, &cfg, &errors) != KS_OK) {
        st = file_errors(r, errors, err);
        free(errors);
        return st;
    }
    if (r->opts.listen) {
        if (ks_config_parse_listen(r->opts.listen, &host, &port, err) != KS_OK) {
            ks_config_free(cfg);
            return KS_E_INVALID;
        }
        free(cfg->listen_host);
        cfg->listen_host = host;
        cfg->listen_port = port;
    }
    *out = cfg;
    return KS_OK;
}

static ks_status reload_locked(struct ks_reloader *r, struct ks_error *err)
{
    struct ks_config *next = NULL;
    struct ks_app *app = NULL;
    char why[KS_ERROR_MESSAGE_MAX - 64];
    ks_status st;

    if (!r->server)
        return ks_error_set(err, KS_E_UNAVAILABLE, "not serving yet; retry");
    if ((st = load(r, &next, err)) != KS_OK)
        return st;
    if (ks_config_live_change_refused(ks_app_config(r->current), next, why, sizeof why)) {
        ks_config_free(next);
        return ks_error_set(err, KS_E_INVALID, "configuration not reloaded: %s", why);
    }
    if ((st = ks_app_create(r->backends, next, &app, err)) != KS_OK) {
        ks_config_free(next);
        /* KS_E_CONFIG is start-up only (answered as 500): here it is the file's fault. */
        if (st == KS_E_CONFIG) {
            snprintf(why, sizeof why, "%.180s", err->message);
            return ks_error_set(err, KS_E_INVALID, "configuration not reloaded: %s", why);
        }
        return st;
    }
    ks_server_swap(r->server, app);
    ks_app_unref(r->current);
    r->current = app; /* ks_app_create's reference */
    /* Parsing a file of 10,000 tenants frees megabytes of YAML nodes: give them back. */
    malloc_trim(0);
    return KS_OK;
}

/* Before the configuration is read: a reopen failure is logged and does not stop the reload
 * (the audit log keeps its previous descriptor and state; common/audit.h). */
static void reopen_logs(struct ks_reloader *r)
{
    struct ks_error e;
    if (ks_log_reopen(r->opts.log, &e) != KS_OK)
        ks_log_msg(r->opts.log, KS_LOG_ERROR, "log_reopen_failed", "%s", e.message);
    if (r->opts.audit)
        ks_audit_reopen(r->opts.audit, &e); /* logs its own outcome */
}

ks_status ks_reload(struct ks_reloader *r, struct ks_error *err)
{
    struct ks_log_line line;
    ks_status st;

    pthread_mutex_lock(&r->lock);
    reopen_logs(r);
    st = reload_locked(r, err);
    if (st == KS_OK) {
        ks_log_begin(&line, r->opts.log, KS_LOG_INFO, "reloaded");
        ks_log_str(&line, "msg", "configuration reloaded");
        ks_log_int(&line, "tenants", (long long)ks_app_config(r->current)->n_tenants);
        ks_log_int(&line, "keyStores", (long long)ks_app_config(r->current)->n_key_stores);
        ks_log_end(&line);
    } else {
        ks_log_begin(&line, r->opts.log, KS_LOG_ERROR, "reload_failed");
        ks_log_strn(&line, "msg", err->message, strnlen(err->message, sizeof err->message),
                    KS_LOG_VALUE_MAX);
        if (err->detail[0])
            ks_log_strn(&line, "detail", err->detail, strnlen(err->detail, sizeof err->detail),
                        KS_LOG_VALUE_MAX);
        ks_log_end(&line);
    }
    pthread_mutex_unlock(&r->lock);
    return st;
}
