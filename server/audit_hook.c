/*
 * audit_hook.c - the audit log around the handler (audit_hook.h; docs/architecture.md
 * section 12).
 */
#include "server/audit_hook.h"

#include <stdio.h>
#include <string.h>

/* The audited routes and their operation names (the MPL's where it has one). Any other route
 * whose method is not GET is audited too, named "<METHOD> <pattern>". */
static const struct {
    const char *method, *pattern, *operation;
} operations[] = {
    {"PUT", "/v1/keystores/{ks}", "CreateKeyStore"},
    {"POST", "/v1/keystores/{ks}/branch-keys", "CreateKey"},
    {"POST", "/v1/keystores/{ks}/branch-keys/{id}/versions", "VersionKey"},
    {"GET", "/v1/keystores/{ks}/branch-keys/{id}/active", "GetActiveBranchKey"},
    {"GET", "/v1/keystores/{ks}/branch-keys/{id}/versions/{v}", "GetBranchKeyVersion"},
    {"GET", "/v1/keystores/{ks}/branch-keys/{id}/beacon", "GetBeaconKey"},
    {"POST", "/v1/keystores/{ks}/keyring/wrap", "KeyringWrap"},
    {"POST", "/v1/keystores/{ks}/keyring/unwrap", "KeyringUnwrap"},
    {"POST", "/v1/keystores/{ks}/keyring/unwrap-batch", "KeyringUnwrapBatch"},
    {"POST", "/v1/keystores/{ks}/branch-keys/{id}/mutation", "InitializeMutation"},
    {"POST", "/v1/keystores/{ks}/branch-keys/{id}/mutation/apply", "ApplyMutation"},
    {"DELETE", "/v1/keystores/{ks}/branch-keys/{id}/mutation", "AbortMutation"},
    {"POST", "/v1/admin/reload", "Reload"},
};

void ks_audit_hook_init(struct ks_audit_call *c, struct ks_audit *audit, const char *request_id,
                        const char *method)
{
    memset(c, 0, sizeof *c);
    c->audit = audit;
    c->request_id = request_id;
    c->method = method;
    c->note.items = -1;
}

/* The operation of an audited route, or NULL (not audited, or no route matched). */
static const char *classify(struct ks_audit_call *c, const struct ks_request *req)
{
    size_t i;
    if (!c->audit || !req->route)
        return NULL;
    if (c->operation)
        return c->operation;
    for (i = 0; i < sizeof operations / sizeof operations[0]; i++)
        if (strcmp(operations[i].method, c->method) == 0 &&
            strcmp(operations[i].pattern, req->route) == 0)
            return c->operation = operations[i].operation;
    if (strcmp(c->method, "GET") == 0 || strcmp(c->method, "HEAD") == 0)
        return NULL;
    snprintf(c->fallback_operation, sizeof c->fallback_operation, "%.16s %.70s", c->method,
             req->route);
    return c->operation = c->fallback_operation;
}

/* The record of the call: the note's names first, else the path parameters. */
static void fill(const struct ks_audit_call *c, const struct ks_request *req,
                 struct ks_audit_record *r, const char *phase)
{
    memset(r, 0, sizeof *r);
    r->phase = phase;
    r->request_id = c->request_id;
    r->tenant = req->tenant ? req->tenant->name : NULL;
    r->operation = c->operation;
    r->method = c->method;
    r->route = req->route;
    r->key_store = c->note.key_store ? c->note.key_store : req->params[KS_PARAM_KS];
    r->branch_key_id = c->note.branch_key_id[0] ? c->note.branch_key_id : req->params[KS_PARAM_ID];
    r->version = c->note.version[0] ? c->note.version : req->params[KS_PARAM_VERSION];
    r->kms_relationship =
        c->note.kms_relationship ? c->note.kms_relationship : req->kms_relationship_query;
    r->items = c->note.items;
}

ks_status ks_audit_hook_before(struct ks_audit_call *c, struct ks_request *req,
                               struct ks_error *err)
{
    struct ks_audit_record r;
    struct ks_error ignored;

    if (!classify(c, req))
        return KS_OK;
    /* An admin reload is the HTTP twin of SIGHUP: it may leave the failure state, so it tries
     * the reopen before its request line (server/reload.c reopens again, harmlessly). */
    if (ks_audit_failed(c->audit) && strcmp(c->operation, "Reload") == 0)
        ks_audit_reopen(c->audit, &ignored);
    fill(c, req, &r, "request");
    if (ks_audit_write(c->audit, &r, err) != KS_OK) {
        c->refused = 1;
        return KS_E_UNAVAILABLE;
    }
    req->audit = &c->note;
    return KS_OK;
}

ks_status ks_audit_hook_after(struct ks_audit_call *c, const struct ks_request *req, ks_status st,
                              const struct ks_response *resp, struct ks_error *err)
{
    struct ks_audit_record r;
    ks_status shown = st;

    if (c->refused || !classify(c, req))
        return st;
    /* The status the client is told (handlers.h ks_handler_error_response). */
    if (st != KS_OK && (shown < KS_OK || shown >= KS_STATUS_COUNT || shown == KS_E_CONFIG))
        shown = KS_E_INTERNAL;
    fill(c, req, &r, "outcome");
    r.status = st == KS_OK ? resp->status : ks_status_http_code(shown);
    r.error = st == KS_OK ? NULL : ks_status_exception(shown);
    if (ks_audit_write(c->audit, &r, err) != KS_OK)
        return KS_E_UNAVAILABLE;
    return st;
}

ks_status ks_audit_hook_ping(void *audit, struct ks_error *err)
{
    return ks_audit_check(audit, err);
}
