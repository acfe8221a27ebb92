/*
 * audit_hook.h - the audit log around the handler (docs/architecture.md section 12). server.c
 * calls three functions per request:
 *
 *   ks_audit_hook_init    at the start of dispatch (nothing written);
 *   ks_audit_hook_before  right before an audited route's handler: writes the "request" line;
 *                         when it cannot, the request is answered 503 and the handler never runs;
 *   ks_audit_hook_after   once the answer is known (the handler's, or a refusal's such as 401):
 *                         writes the "outcome" line; when it cannot, the answer is replaced by
 *                         503 and the handler's response (key material included) is never sent.
 *
 * Audited: every route that changes state or returns key material (the table in
 * audit_hook.c), and any other route whose method is not GET.
 */
#ifndef KS_SERVER_AUDIT_HOOK_H
#define KS_SERVER_AUDIT_HOOK_H

#include "common/audit.h"
#include "handlers/handlers.h"

struct ks_audit_call {
    struct ks_audit *audit; /* NULL: no audit log */
    const char *request_id;
    const char *method;
    const char *operation; /* set by before/after for an audited route */
    char fallback_operation[96];
    int refused; /* the request line could not be written: no outcome line follows */
    struct ks_audit_note note;
};

void ks_audit_hook_init(struct ks_audit_call *c, struct ks_audit *audit, const char *request_id,
                        const char *method);

/* KS_OK: run the handler (req->audit points at the note for an audited route). KS_E_UNAVAILABLE
 * (err set): answer it, run nothing. */
ks_status ks_audit_hook_before(struct ks_audit_call *c, struct ks_request *req,
                               struct ks_error *err);

/* st: the status so far (KS_OK: resp holds the answer; else err). Returns st, or
 * KS_E_UNAVAILABLE with err set when the outcome line could not be written. */
ks_status ks_audit_hook_after(struct ks_audit_call *c, const struct ks_request *req, ks_status st,
                              const struct ks_response *resp, struct ks_error *err);

/* The readiness check of the audit log (server/readiness.h): its failure state. */
ks_status ks_audit_hook_ping(void *audit, struct ks_error *err);

#endif
