/*
 * server.c - libmicrohttpd glue. A request goes: URI log callback (request state, the request
 * target's length) -> access handler, first call: request id, early refusals (draining 503, URI
 * 414, headers 431, Content-Length 413) -> body accumulation under the cap -> dispatch: route
 * match, auth, role, query check, Content-Type and JSON parse -> handler -> response. The access
 * log line is written when MHD reports the request complete; requests that libmicrohttpd refused
 * itself get a "refused" line there, and its own diagnostics go to the log as "http_library".
 */
#include "server/server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>
#include <openssl/rand.h>

#include "common/json_check.h"
#include "common/secret.h"
#include "common/util.h"
#include "handlers/http_metrics.h"
#include "server/admission.h"
#include "server/app.h"
#include "server/audit_hook.h"
#include "server/auth.h"
#include "server/connections.h"
#include "server/readiness.h"
#include "server/rotation.h"
#include "server/router.h"
#include "server/tls.h"

#define REQUEST_ID_MAX 128
#define HEADER_SWEEP_MS 250       /* how often the header deadline is checked */
#define CHUNKED_DISCARD_FACTOR 16 /* a chunked body over the cap is read up to 16x, then cut */
#define URI_KEPT 1024             /* raw bytes of the request target kept for log lines */
#define URI_LOGGED 512            /* escaped bytes of it a log line carries */
#define METHOD_KEPT 32            /* bytes of the method kept (any token is accepted by MHD) */

struct ks_server {
    struct MHD_Daemon *daemon;
    pthread_mutex_t app_lock; /* guards app: the swap and the taking of a reference */
    struct ks_app *app;       /* the current configuration snapshot (one reference held) */
    struct ks_backends *backends;
    struct ks_log *log;
    struct ks_connections *conns;   /* header deadlines (server/connections.h) */
    struct ks_readiness *readiness; /* background dependency probes (server/readiness.h) */
    char **check_names;             /* "storage:<ks>", "kms:<rel>", owned, for readiness */
    size_t n_checks;
    struct ks_rotation_scheduler *rotation; /* scheduled rotation (server/rotation.h) */
    struct ks_http_metrics *metrics; /* requests, latency, in flight (handlers/http_metrics.h) */
    atomic_int draining; /* set by ks_server_stop: new requests get 503 + Connection: close */
    uint16_t port;
};

struct request_state {
    struct ks_app *app; /* the snapshot taken at the first handler call, released on completion */
    uint64_t start_us;
    int started; /* the access handler has run: in_flight counts it, an access line follows */
    char *body;
    size_t body_len, body_cap, discarded;
    size_t body_max; /* the route's body cap (server.max_body_bytes or max_keyring_body_bytes) */
    int too_large;
    int closing; /* answer with Connection: close */
    const char *route;
    int status;
    size_t uri_len; /* the whole request target as received, query included */
    size_t uri_kept;
    char uri[URI_KEPT];
    char method[METHOD_KEPT + 1];
    char tenant[65];
    char request_id[REQUEST_ID_MAX + 1];
    int route_index;      /* into the router's table; -1: none matched (metrics) */
    unsigned retry_after; /* Retry-After of a 429/503 in seconds; 0: 1 */
};

/* --- responses ------------------------------------------------------------------------- */

static void free_body(void *cls)
{
    ks_secret_free_string(cls);
}

static enum MHD_Result queue(struct MHD_Connection *conn, struct request_state *rs, int status,
                             char *body, size_t len, const char *content_type, int no_store,
                             const char *location, const char *allow, int bearer_challenge)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (!body) {
        body = strdup("");
        len = 0;
        if (!body)
            return MHD_NO;
    }
    resp = MHD_create_response_from_buffer_with_free_callback(len, body, free_body);
    if (!resp) {
        free_body(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            content_type ? content_type : "application/json");
    MHD_add_response_header(resp, "X-Request-Id", rs->request_id);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (no_store)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (location && *location)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    if (allow && *allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (bearer_challenge)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"keystored\"");
    /* A dependency still throttling after the transport's retries (429), or unreachable (503):
     * tell clients to back off rather than hammer it. */
    if (status == 429 || status == 503) {
        char seconds[16];
        snprintf(seconds, sizeof seconds, "%u", rs->retry_after ? rs->retry_after : 1u);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    }
    if (rs->closing)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    rs->status = status;
    ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/*
 * The log line of a failed request: every 5xx, and any status the error writer changed (a
 * start-up-only KS_E_CONFIG arriving at request time). err->message and err->detail may hold a
 * dependency's free text (account ids, role ARNs): it is logged here with the request id and
 * never sent (docs/architecture.md section 3).
 */
static void log_failure(struct ks_server *srv, const struct request_state *rs,
                        const struct ks_error *err, ks_status answered)
{
    int http = ks_status_http_code(answered);
    struct ks_log_line line;

    if (http < 500 && answered == err->code)
        return;
    ks_log_begin(&line, srv->log, http == 500 ? KS_LOG_ERROR : KS_LOG_WARN, "request_failed");
    ks_log_str(&line, "requestId", rs->request_id);
    ks_log_int(&line, "status", http);
    ks_log_str(&line, "type", ks_status_exception(answered));
    if (answered != err->code)
        ks_log_str(&line, "originalType", ks_status_exception(err->code));
    ks_log_strn(&line, "message", err->message, strnlen(err->message, sizeof err->message),
                KS_LOG_VALUE_MAX);
    if (err->detail[0])
        ks_log_strn(&line, "detail", err->detail, strnlen(err->detail, sizeof err->detail),
                    KS_LOG_VALUE_MAX);
    ks_log_end(&line);
}

static enum MHD_Result queue_error(struct ks_server *srv, struct MHD_Connection *conn,
                                   struct request_state *rs, const struct ks_error *err,
                                   const char *allow)
{
    struct ks_response resp;
    ks_status answered;

    memset(&resp, 0, sizeof resp);
    answered = ks_handler_error_response(err, rs->request_id, &resp);
    log_failure(srv, rs, err, answered);
    return queue(conn, rs, resp.status, resp.body, resp.body_len, NULL, 1, NULL, allow,
                 answered == KS_E_UNAUTHENTICATED);
}

/* --- request pieces -------------------------------------------------------------------- */

/* src into dst (cap > 0), cut to fit, NUL-terminated: the per-request copies, without the
 * snprintf the hit path's profile showed (bench/RESULTS.md section 7). */
static void copy_cut(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int request_id_ok(const char *s)
{
    size_t n = strlen(s), i;
    if (n == 0 || n > REQUEST_ID_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return 0;
    }
    return 1;
}

static int is_json_content_type(const char *ct)
{
    size_t n = strlen("application/json");
    if (!ct || strncasecmp(ct, "application/json", n) != 0)
        return 0;
    ct += n;
    while (*ct == ' ')
        ct++;
    return *ct == '\0' || *ct == ';';
}

struct query_check {
    int allowed_kms_relationship;
    const char *bad_key;
    const char *kms_relationship; /* raw, still percent-encoded */
    int repeated;
    int allowed_paging;    /* ?limit= and ?nextToken= (issue 14) */
    const char *paging[2]; /* raw limit, nextToken */
    const char *repeated_paging;
};

/* ?limit= / ?nextToken= on the list routes: 1 when taken. */
static int paging_arg(struct query_check *q, const char *key, const char *value)
{
    static const char *const names[2] = {"limit", "nextToken"};
    int i;

    for (i = 0; q->allowed_paging && i < 2; i++) {
        if (strcmp(key, names[i]) != 0)
            continue;
        if (q->paging[i])
            q->repeated_paging = names[i];
        q->paging[i] = value ? value : "";
        return 1;
    }
    return 0;
}

static enum MHD_Result query_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct query_check *q = cls;
    (void)kind;
    if (q->allowed_kms_relationship && strcmp(key, "kmsRelationship") == 0) {
        if (q->kms_relationship)
            q->repeated = 1;
        q->kms_relationship = value ? value : "";
        return MHD_YES;
    }
    if (paging_arg(q, key, value))
        return MHD_YES;
    if (!q->bad_key)
        q->bad_key = key;
    return MHD_YES;
}

static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* Parses the body: a JSON object within the nesting cap, nothing after it. The raw pre-scan
 * runs first: it refuses what json-c would silently alter (NUL in names, lone surrogates,
 * duplicate members, invalid UTF-8; common/json_check.h). check_flags are its KS_JSON_*. */
ks_status ks_server_parse_body(const char *body, size_t len, unsigned max_depth,
                               unsigned check_flags, struct json_object **out, struct ks_error *err)
{
    struct json_tokener *tok;
    struct json_object *obj;
    enum json_tokener_error jerr;
    size_t used;
    ks_status st;

    if ((st = ks_json_check_ex(body, len, max_depth, check_flags, err)) != KS_OK)
        return st;
    tok = json_tokener_new_ex((int)max_depth);
    if (!tok)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    /* body[len] is the NUL the accumulator keeps: feeding it tells json-c the input ended, so
     * that a bare top-level literal (123, null) is complete rather than "unexpected end". */
    obj = json_tokener_parse_ex(tok, body, (int)len + 1);
    jerr = json_tokener_get_error(tok);
    used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (used > len)
        used = len;
    if (!obj && jerr == json_tokener_success)
        return ks_error_set(err, KS_E_INVALID, "body: expected a JSON object");
    if (!obj || jerr != json_tokener_success) {
        json_object_put(obj);
        if (jerr == json_tokener_error_depth)
            return ks_error_set(err, KS_E_INVALID, "body: JSON nested deeper than %u levels",
                                max_depth);
        return ks_error_set(err, KS_E_INVALID, "body: malformed JSON (%s)",
                            jerr == json_tokener_continue ? "unexpected end of input"
                                                          : json_tokener_error_desc(jerr));
    }
    for (; used < len; used++) {
        if (body[used] != ' ' && body[used] != '\t' && body[used] != '\n' && body[used] != '\r') {
            json_object_put(obj);
            return ks_error_set(err, KS_E_INVALID, "body: unexpected data after the JSON value");
        }
    }
    if (!json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return ks_error_set(err, KS_E_INVALID, "body: expected a JSON object");
    }
    *out = obj;
    return KS_OK;
}

/* --- dispatch: one named step each, in request order ---------------------------------- */

struct call {
    struct ks_route_match match;
    struct ks_request req;
    struct ks_response resp;
    struct ks_error err;
    char *rel_query;   /* ?kmsRelationship=, decoded (owned) */
    char *limit_query; /* ?limit=, decoded (owned) */
    char *token_query; /* ?nextToken=, decoded (owned) */
    const char *allow; /* Allow header of a 405 */
    /* The audit log around the handler (docs/architecture.md section 12). */
    struct ks_audit_call audit;
};

static ks_status match_route(struct call *c, struct request_state *rs, const char *method,
                             const char *url)
{
    enum ks_match_result mr = ks_router_match(method, url, &c->match);
    if (mr == KS_MATCH_NO_ROUTE)
        return ks_error_set(&c->err, KS_E_NO_ROUTE, "no route for %.200s", url);
    if (mr == KS_MATCH_BAD_METHOD) {
        c->allow = c->match.allow;
        return ks_error_set(&c->err, KS_E_METHOD, "method %.16s not allowed; allowed: %s", method,
                            c->match.allow);
    }
    if (mr == KS_MATCH_BAD_PATH)
        return ks_error_set(&c->err, KS_E_INVALID,
                            "path: bad percent-encoding or NUL in a segment");
    rs->route = c->match.route->pattern;
    rs->route_index = (int)(c->match.route - ks_router_routes(&(size_t){0}));
    memcpy(c->req.params, c->match.params, sizeof c->req.params);
    memcpy(c->req.param_lens, c->match.param_lens, sizeof c->req.param_lens);
    c->req.route = c->match.route->pattern;
    return KS_OK;
}

/* Bearer token -> tenant, and the route's role (docs/architecture.md section 7). */
static ks_status authorize(struct call *c, struct request_state *rs, struct MHD_Connection *conn)
{
    const struct ks_route *route = c->match.route;
    if (route->access == KS_ACCESS_PUBLIC ||
        (route->access == KS_ACCESS_METRICS &&
         ks_app_config(rs->app)->server.unauthenticated_metrics))
        return KS_OK;
    c->req.tenant = ks_auth_tenant(
        ks_app_auth(rs->app),
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
    if (!c->req.tenant)
        return ks_error_set(&c->err, KS_E_UNAUTHENTICATED,
                            "missing or invalid bearer token (Authorization: Bearer <token>)");
    copy_cut(rs->tenant, sizeof rs->tenant, c->req.tenant->name);
    if (route->access == KS_ACCESS_ADMIN && c->req.tenant->role != KS_ROLE_ADMIN &&
        c->req.tenant->role != KS_ROLE_MONITOR) /* monitor: the message below */
        return ks_error_set(&c->err, KS_E_FORBIDDEN, "this operation needs the admin role");
    if (!ks_auth_role_allows(c->req.tenant->role, route->access))
        return ks_error_set(&c->err, KS_E_FORBIDDEN, "%s",
                            c->req.tenant->role == KS_ROLE_KEYRING
                                ? "the keyring role may only wrap and unwrap data keys"
                            : c->req.tenant->role == KS_ROLE_MONITOR
                                ? "the monitor role may only read GET /metrics"
                                : "GET /metrics needs the admin or monitor role");
    return KS_OK;
}

/* Decodes ?limit= and ?nextToken= into the request (the handler checks their values). */
static ks_status read_paging(struct call *c, const struct query_check *q)
{
    if (q->paging[0]) {
        c->limit_query = ks_percent_decode(q->paging[0], strlen(q->paging[0]), 1, NULL);
        if (!c->limit_query)
            return ks_error_set(&c->err, KS_E_INVALID, "limit: bad value");
        c->req.limit_query = c->limit_query;
    }
    if (q->paging[1]) {
        c->token_query = ks_percent_decode(q->paging[1], strlen(q->paging[1]), 1, NULL);
        if (!c->token_query)
            return ks_error_set(&c->err, KS_E_INVALID, "nextToken: bad value");
        c->req.next_token_query = c->token_query;
    }
    return KS_OK;
}

static ks_status read_query(struct call *c, struct MHD_Connection *conn)
{
    struct query_check q;

    memset(&q, 0, sizeof q);
    q.allowed_kms_relationship = c->match.route->takes_kms_relationship_query;
    q.allowed_paging = ks_route_takes_paging(c->match.route);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_iter, &q);
    if (q.bad_key)
        return ks_error_set(&c->err, KS_E_INVALID, "query parameter '%.64s' is not supported",
                            q.bad_key);
    if (q.repeated_paging)
        return ks_error_set(&c->err, KS_E_INVALID, "%s: given more than once", q.repeated_paging);
    if (read_paging(c, &q) != KS_OK)
        return c->err.code;
    if (q.repeated)
        return ks_error_set(&c->err, KS_E_INVALID, "kmsRelationship: given more than once");
    if (!q.kms_relationship)
        return KS_OK;
    /* Query values arrive undecoded: the unescape callback is a no-op so that path segments can
     * carry %2F. */
    c->rel_query = ks_percent_decode(q.kms_relationship, strlen(q.kms_relationship), 1, NULL);
    if (!c->rel_query || !*c->rel_query)
        return ks_error_set(&c->err, KS_E_INVALID, "kmsRelationship: bad value");
    c->req.kms_relationship_query = c->rel_query;
    return KS_OK;
}

static ks_status read_body(struct call *c, const struct request_state *rs,
                           struct MHD_Connection *conn, const struct ks_config *cfg)
{
    if (rs->body_len == 0)
        return KS_OK;
    if (!c->match.route->takes_body)
        return ks_error_set(&c->err, KS_E_INVALID, "this route takes no request body");
    if (!is_json_content_type(
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
        return ks_error_set(&c->err, KS_E_MEDIA_TYPE, "request body must be application/json");
    /* The keyring routes read encryption context values with their lengths, so those may hold
     * U+0000 (docs/reference/hierarchical-keyring.md section 4); every other route keeps
     * strings as C strings and refuses it. */
    return ks_server_parse_body(rs->body, rs->body_len, cfg->server.max_json_depth,
                                c->match.route->access == KS_ACCESS_KEYRING ? KS_JSON_NUL_IN_VALUES
                                                                            : 0,
                                &c->req.body, &c->err);
}

static void call_free(struct call *c)
{
    ks_secret_free_string(c->resp.body);
    json_object_put(c->req.body);
    free(c->rel_query);
    free(c->limit_query);
    free(c->token_query);
    ks_router_match_free(&c->match);
}

static enum MHD_Result dispatch(struct ks_server *srv, struct MHD_Connection *conn,
                                struct request_state *rs, const char *url, const char *method)
{
    const struct ks_config *cfg = ks_app_config(rs->app);
    struct call c;
    enum MHD_Result ret;
    ks_status st;

    memset(&c, 0, sizeof c);
    ks_error_clear(&c.err);
    c.req.app = rs->app;
    c.req.readiness = srv->readiness;
    ks_audit_hook_init(&c.audit, ks_app_audit(rs->app), rs->request_id, method);
    c.req.http_metrics = srv->metrics;
    if (rs->too_large)
        st = ks_error_set(&c.err, KS_E_TOO_LARGE, "request body larger than %zu bytes",
                          rs->body_max);
    else if ((st = match_route(&c, rs, method, url)) == KS_OK &&
             (st = authorize(&c, rs, conn)) == KS_OK &&
             /* after the token, before any work: a 429 changes nothing (issue 12) */
             (!c.req.tenant || (st = ks_admission_tenant(rs->app, c.req.tenant, srv->metrics,
                                                         &rs->retry_after, &c.err)) == KS_OK) &&
             (st = read_query(&c, conn)) == KS_OK && (st = read_body(&c, rs, conn, cfg)) == KS_OK &&
             (st = ks_audit_hook_before(&c.audit, &c.req, &c.err)) == KS_OK)
        st = c.match.route->handler(&c.req, &c.resp, &c.err);
    st = ks_audit_hook_after(&c.audit, &c.req, st, &c.resp, &c.err);
    if (st == KS_OK) {
        ret = queue(conn, rs, c.resp.status, c.resp.body, c.resp.body_len, c.resp.content_type,
                    c.resp.no_store || strncmp(rs->route, "/v1/keystores", 13) == 0,
                    c.resp.location, NULL, 0);
        c.resp.body = NULL; /* queue took it */
    } else {
        if (c.err.code == KS_OK) /* a handler that returned a status without filling err */
            ks_error_set(&c.err, st, "%s", ks_strerror(st));
        ret = queue_error(srv, conn, rs, &c.err, c.allow);
    }
    call_free(&c);
    return ret;
}

/* --- the access handler ---------------------------------------------------------------- */

/* Bytes of the header section as received (name: value CRLF per field). */
static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    size_t *total = cls;
    (void)kind;
    *total += strlen(key) + 2 + (value ? strlen(value) : 0) + 2;
    return MHD_YES;
}

static struct request_state *new_request_state(const char *uri)
{
    struct request_state *rs = calloc(1, sizeof *rs);
    if (!rs)
        return NULL;
    rs->start_us = ks_monotonic_us();
    rs->route = "-";
    rs->route_index = -1;
    if (uri) {
        rs->uri_len = strlen(uri);
        rs->uri_kept = rs->uri_len < sizeof rs->uri ? rs->uri_len : sizeof rs->uri;
        memcpy(rs->uri, uri, rs->uri_kept);
    }
    return rs;
}

/* A reference to the current snapshot: the request keeps it until it completes. */
static struct ks_app *current_app(struct ks_server *srv)
{
    struct ks_app *app;
    pthread_mutex_lock(&srv->app_lock);
    app = ks_app_ref(srv->app);
    pthread_mutex_unlock(&srv->app_lock);
    return app;
}

void ks_server_swap(struct ks_server *srv, struct ks_app *app)
{
    struct ks_app *old;
    ks_app_ref(app);
    pthread_mutex_lock(&srv->app_lock);
    old = srv->app;
    srv->app = app;
    pthread_mutex_unlock(&srv->app_lock);
    /* Requests still on the old snapshot hold their own references. */
    ks_app_unref(old);
}

/*
 * A new UUIDv4 for a request without an id. The random bytes come from the DRBG 256 ids at a
 * time, kept per thread: one RAND_bytes per request (with the DRBG's fork check, a getpid) and
 * an snprintf of 16 %02x showed in the hit path's profile (bench/RESULTS.md section 7). Ids are
 * not secrets; they only have to be unique.
 */
static int new_request_id(char out[KS_UUID_LEN + 1])
{
    enum { IDS = 256 };
    static _Thread_local unsigned char pool[16 * IDS];
    static _Thread_local size_t used = sizeof pool;
    static const char hex[] = "0123456789abcdef";
    unsigned char *b;
    size_t i, o = 0;

    if (used == sizeof pool) {
        if (RAND_bytes(pool, sizeof pool) != 1)
            return -1;
        used = 0;
    }
    b = pool + used;
    used += 16;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
    return 0;
}

/* X-Request-Id: echoed when 1..128 of [A-Za-z0-9._:-] (README "Request ids"), else a new UUID. */
static void take_request_id(struct request_state *rs, struct MHD_Connection *conn)
{
    const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && request_id_ok(rid))
        memcpy(rs->request_id, rid, strlen(rid) + 1);
    else if (new_request_id(rs->request_id) != 0)
        memcpy(rs->request_id, "-", 2);
}

/*
 * The first call of a request: its state, then what can be refused before reading a body. The
 * URI and header caps are keystored's own (config server.max_uri_bytes / max_header_bytes),
 * below libmicrohttpd's buffer (connection_memory), so these answers are JSON with a request id.
 */
/* The body cap of the route a request names: the keyring routes have their own, larger one
 * (README "Envelope encryption without handling branch keys"); anything else, a path that names
 * no route included, gets server.max_body_bytes. */
static size_t body_max(const struct ks_server_config *limits, const char *method, const char *url)
{
    const struct ks_route *route = url ? ks_router_find(method, url) : NULL;
    if (route && route->access == KS_ACCESS_KEYRING)
        return limits->max_keyring_body_bytes;
    return limits->max_body_bytes;
}

static enum MHD_Result begin_request(struct ks_server *srv, struct MHD_Connection *conn,
                                     void **con_cls, const char *method, const char *url)
{
    const struct ks_server_config *limits;
    struct request_state *rs = *con_cls ? *con_cls : new_request_state(NULL);
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    size_t header_bytes = 0;
    struct ks_error err;
    long in_flight;

    if (!rs)
        return MHD_NO;
    *con_cls = rs;
    rs->started = 1;
    rs->app = current_app(srv);
    limits = &ks_app_config(rs->app)->server;
    copy_cut(rs->method, sizeof rs->method, method);
    rs->body_max = body_max(limits, method, url);
    take_request_id(rs, conn);
    in_flight = ks_http_metrics_enter(srv->metrics);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &header_bytes);
    if (atomic_load(&srv->draining)) {
        /* A request that arrives on a kept-alive connection after SIGTERM was never accepted:
         * refuse it so that the client (or the proxy) retries elsewhere. */
        ks_error_set(&err, KS_E_UNAVAILABLE, "server is shutting down; retry");
    } else if (ks_admission_in_flight(limits, in_flight, url, srv->metrics, &err) != KS_OK) {
        /* Over server.max_in_flight_requests: refused now rather than queued (issue 12). */
    } else if (rs->uri_len > limits->max_uri_bytes) {
        ks_error_set(&err, KS_E_URI_TOO_LONG, "request URI longer than %zu bytes",
                     limits->max_uri_bytes);
    } else if (header_bytes > limits->max_header_bytes) {
        ks_error_set(&err, KS_E_HEADERS_TOO_BIG, "request header fields larger than %zu bytes",
                     limits->max_header_bytes);
    } else if (cl && strtoull(cl, NULL, 10) > rs->body_max) {
        /* Answer before reading: MHD then closes the connection. */
        rs->too_large = 1;
        ks_error_set(&err, KS_E_TOO_LARGE, "request body larger than %zu bytes", rs->body_max);
    } else {
        return MHD_YES;
    }
    rs->closing = 1;
    return queue_error(srv, conn, rs, &err, NULL);
}

static enum MHD_Result accumulate_body(struct request_state *rs, size_t max,
                                       const char *upload_data, size_t n)
{
    if (rs->too_large || rs->body_len + n > max) {
        rs->too_large = 1;
        rs->discarded += n;
        return rs->discarded > CHUNKED_DISCARD_FACTOR * max ? MHD_NO : MHD_YES;
    }
    if (rs->body_len + n + 1 > rs->body_cap) {
        size_t cap =
            rs->body_len + n + 1 > 2 * rs->body_cap ? rs->body_len + n + 1 : 2 * rs->body_cap;
        char *nb = realloc(rs->body, cap > max + 1 ? max + 1 : cap);
        if (!nb)
            return MHD_NO;
        rs->body = nb;
        rs->body_cap = cap > max + 1 ? max + 1 : cap;
    }
    memcpy(rs->body + rs->body_len, upload_data, n);
    rs->body_len += n;
    rs->body[rs->body_len] = '\0';
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct ks_server *srv = cls;
    struct request_state *rs = *con_cls;
    (void)version;

    if (!rs || !rs->started)
        return begin_request(srv, conn, con_cls, method, url);
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return accumulate_body(rs, rs->body_max, upload_data, n);
    }
    if (rs->status)
        return MHD_YES; /* already answered (an early refusal) */
    return dispatch(srv, conn, rs, url, method);
}

/* MHD_OPTION_URI_LOG_CALLBACK: called once per request line, before the headers are read. The
 * state made here becomes the request's; on_completed sees it even when libmicrohttpd refuses
 * the headers itself. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    return new_request_state(uri);
}

/* --- completion: the access log -------------------------------------------------------- */

static void log_access(struct ks_server *srv, const struct request_state *rs,
                       enum MHD_RequestTerminationCode toe)
{
    struct ks_log_line line;

    /* Method, route pattern, status, latency, tenant, request id: nothing here can carry a key
     * or a token. The request target is logged only when no route matched (escaped and cut). */
    ks_log_begin(&line, srv->log, KS_LOG_INFO, "access");
    ks_log_str(&line, "method", rs->method);
    ks_log_str(&line, "route", rs->route);
    if (strcmp(rs->route, "-") == 0)
        ks_log_strn(&line, "uri", rs->uri, rs->uri_kept, URI_LOGGED);
    ks_log_int(&line, "status", rs->status);
    ks_log_ms(&line, "latencyMs", (double)(ks_monotonic_us() - rs->start_us) / 1000.0);
    ks_log_str(&line, "tenant", rs->tenant[0] ? rs->tenant : "-");
    ks_log_str(&line, "requestId", rs->request_id);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        ks_log_bool(&line, "aborted", 1);
    ks_log_end(&line);
}

/* A request libmicrohttpd ended before our handler saw it: headers over its buffer (431), a
 * malformed header, or the client went away. Its answer is not ours to see: log what we know. */
static void log_refused(struct ks_server *srv, const struct request_state *rs,
                        enum MHD_RequestTerminationCode toe)
{
    struct ks_log_line line;
    ks_log_begin(&line, srv->log, KS_LOG_WARN, "refused");
    ks_log_strn(&line, "uri", rs->uri, rs->uri_kept, URI_LOGGED);
    ks_log_int(&line, "uriBytes", (long long)rs->uri_len);
    ks_log_int(&line, "termination", (long long)toe);
    ks_log_ms(&line, "latencyMs", (double)(ks_monotonic_us() - rs->start_us) / 1000.0);
    ks_log_str(&line, "msg", "libmicrohttpd ended the request before keystored saw its headers");
    ks_log_end(&line);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct ks_server *srv = cls;
    struct request_state *rs = *con_cls;
    (void)conn;

    if (!rs)
        return;
    if (rs->started) {
        log_access(srv, rs, toe);
        ks_http_metrics_leave(srv->metrics, rs->route_index, rs->method, rs->status,
                              ks_monotonic_us() - rs->start_us);
    } else {
        log_refused(srv, rs, toe);
    }
    ks_app_unref(rs->app);
    free(rs->body);
    free(rs);
    *con_cls = NULL;
}

/* MHD_OPTION_EXTERNAL_LOGGER: libmicrohttpd's own diagnostics (among them the 414 it still
 * answers for a request line longer than its buffer, which no callback sees). */
static void on_library_message(void *cls, const char *fmt, va_list ap)
{
    struct ks_server *srv = cls;
    struct ks_log_line line;
    char text[512];
    int n = vsnprintf(text, sizeof text, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof text ? sizeof text - 1 : (size_t)n;

    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    ks_log_begin(&line, srv->log, KS_LOG_WARN, "http_library");
    ks_log_strn(&line, "msg", text, len, KS_LOG_VALUE_MAX);
    ks_log_end(&line);
}

/*
 * libmicrohttpd's per-connection memory holds the request line and headers (it answers 414/431
 * itself, as HTML, when they do not fit): keystored's own caps plus room for libmicrohttpd's
 * parsing and the response headers, so that keystored's caps bite first. No larger: libmicrohttpd
 * 0.9.75 zeroes the whole pool for every request on a kept-alive connection, which with twice
 * the caps (80 KiB) was 12% of the hit path's CPU (bench/RESULTS.md section 7).
 */
static size_t connection_memory(const struct ks_server_config *limits)
{
    size_t want = limits->max_uri_bytes + limits->max_header_bytes + 24576;
    return want < 32768 ? 32768 : want;
}

/* --- connection bookkeeping around the request callbacks (server/connections.h) ----------- */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct ks_server *srv = cls;
    const union MHD_ConnectionInfo *ci;

    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        ks_connections_closed(srv->conns, socket_context);
        return;
    }
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci)
        ks_connections_opened(srv->conns, ci->connect_fd, socket_context);
}

static void *connection_handle(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The access handler is first called once the request line and headers are complete: that
 * ends the connection's header deadline. */
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct ks_server *srv = cls;
    if (!*con_cls)
        ks_connections_headers_done(srv->conns, connection_handle(conn));
    return on_request(cls, conn, url, method, version, upload_data, upload_data_size, con_cls);
}

/* A finished request re-arms the deadline for the next one on a kept-alive connection. */
static void on_access_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                                enum MHD_RequestTerminationCode toe)
{
    struct ks_server *srv = cls;
    on_completed(cls, conn, con_cls, toe);
    ks_connections_request_done(srv->conns, connection_handle(conn));
}

/* --- readiness probes ----------------------------------------------------------------------- */

static ks_status ping_storage(void *arg, struct ks_error *err)
{
    return ks_keystore_ping(arg, err);
}

static ks_status ping_kms(void *arg, struct ks_error *err)
{
    return ks_kms_relationship_ping(arg, err);
}

struct check_list {
    struct ks_readiness_check *checks;
    char **names;
    size_t n, cap;
    int oom;
};

/* One check per backend: "storage:<ks>" or "kms:<rel>". */
static void add_check(void *ctx, const char *name, struct ks_keystore *keystore,
                      const struct ks_kms_relationship *relationship)
{
    struct check_list *l = ctx;
    size_t len = strlen(name) + 9;

    if (l->oom || l->n == l->cap) {
        l->oom = 1;
        return;
    }
    if (!(l->names[l->n] = malloc(len))) {
        l->oom = 1;
        return;
    }
    snprintf(l->names[l->n], len, "%s:%s", keystore ? "storage" : "kms", name);
    l->checks[l->n].name = l->names[l->n];
    l->checks[l->n].ping = keystore ? ping_storage : ping_kms;
    l->checks[l->n].arg = keystore ? (void *)keystore : (void *)(uintptr_t)relationship;
    l->n++;
}

/*
 * The probes cover the backends open at start (the long-lived ones, server/app.h): a reload
 * keeps them, so the checks stay valid across reloads. A key store or relationship first opened
 * by a reload is not probed until the next start (README "Reload").
 */
static ks_status start_readiness(struct ks_server *srv, struct ks_error *err)
{
    const struct ks_config *cfg = ks_app_config(srv->app);
    size_t n = cfg->n_key_stores + cfg->n_kms_relationships;
    struct check_list l = {calloc(n + 1, sizeof *l.checks), calloc(n + 1, sizeof *l.names), 0, n,
                           0};
    struct ks_readiness_options opts = {cfg->server.readiness_interval_ms,
                                        cfg->server.readiness_timeout_ms, srv->log};
    ks_status st;

    srv->check_names = l.names;
    if (l.checks && l.names)
        ks_backends_foreach(srv->backends, add_check, &l);
    /* The audit log is a dependency of every audited route (docs/architecture.md section 12). */
    if (l.checks && l.names && !l.oom && ks_app_audit(srv->app)) {
        l.checks[l.n] = (struct ks_readiness_check){l.names[l.n] = strdup("audit"),
                                                    ks_audit_hook_ping, ks_app_audit(srv->app)};
        l.oom = !l.names[l.n++];
    }
    srv->n_checks = l.n;
    if (!l.checks || !l.names || l.oom)
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    else
        st = ks_readiness_start(l.checks, l.n, &opts, &srv->readiness, err);
    free(l.checks);
    return st;
}

/* The scheduled-rotation thread for the key stores with `rotation:` (issue 14). */
static ks_status start_rotation(struct ks_server *srv, struct ks_error *err)
{
    const struct ks_config *cfg = ks_app_config(srv->app);
    struct ks_rotation_task *tasks = calloc(cfg->n_key_stores + 1, sizeof *tasks);
    size_t i, n = 0;
    ks_status st;

    if (!tasks)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    for (i = 0; i < cfg->n_key_stores; i++) {
        if (!ks_app_rotation(srv->app, i))
            continue;
        tasks[n].rotation = ks_app_rotation(srv->app, i);
        /* the rotation's own name: it outlives this snapshot (server/app.c use_rotation) */
        tasks[n].key_store_name = ks_rotation_name(tasks[n].rotation);
        tasks[n].check_interval_seconds = cfg->key_stores[i].rotation.check_interval_seconds;
        n++;
    }
    st = ks_rotation_scheduler_start(tasks, n, srv->log, &srv->rotation, err);
    free(tasks);
    return st;
}

/* Frees what start_readiness and ks_connections_create made (after the daemon stopped). */
static void free_background(struct ks_server *srv)
{
    size_t i;
    ks_rotation_scheduler_stop(srv->rotation);
    ks_readiness_stop(srv->readiness);
    ks_connections_destroy(srv->conns);
    ks_http_metrics_destroy(srv->metrics);
    for (i = 0; srv->check_names && i < srv->n_checks; i++)
        free(srv->check_names[i]);
    free(srv->check_names);
    ks_app_unref(srv->app);
    pthread_mutex_destroy(&srv->app_lock);
    free(srv);
}

static ks_status start_background(struct ks_server *srv, struct ks_error *err)
{
    const struct ks_server_config *sc = &ks_app_config(srv->app)->server;
    struct ks_connections_options co = {sc->header_timeout_seconds * 1000u,
                                        sc->connection_timeout_seconds * 1000u, HEADER_SWEEP_MS,
                                        srv->log};
    size_t n_routes, i;
    const struct ks_route *routes = ks_router_routes(&n_routes);
    const char *templates[64];
    ks_status st = ks_connections_create(&co, &srv->conns, err);

    /* The metrics' route labels: the router's templates, in its order (route_index). */
    for (i = 0; i < n_routes && i < sizeof templates / sizeof templates[0]; i++)
        templates[i] = routes[i].pattern;
    if (st == KS_OK)
        st = ks_http_metrics_create(templates, i, &srv->metrics, err);
    if (st == KS_OK)
        st = start_readiness(srv, err);
    return st == KS_OK ? start_rotation(srv, err) : st;
}

ks_status ks_server_start(struct ks_backends *backends, struct ks_app *app, struct ks_log *log,
                          struct ks_server **out, struct ks_error *err)
{
    const struct ks_config *cfg = ks_app_config(app);
    struct ks_server *srv = calloc(1, sizeof *srv);
    struct addrinfo hints, *ai = NULL;
    char port[8];
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_EPOLL_LINUX_ONLY |
                     MHD_USE_ERROR_LOG;
    unsigned max_conns;
    const union MHD_DaemonInfo *info;
    struct ks_tls *tls = NULL;
    ks_status st;
    int rc;

    if (!srv)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    srv->app = ks_app_ref(app);
    srv->backends = backends;
    srv->log = log;
    pthread_mutex_init(&srv->app_lock, NULL);
    atomic_init(&srv->draining, 0);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof port, "%u", (unsigned)cfg->listen_port);
    if ((rc = getaddrinfo(cfg->listen_host, port, &hints, &ai)) != 0) {
        free_background(srv);
        return ks_error_set(err, KS_E_CONFIG, "listen: cannot resolve %s: %s", cfg->listen_host,
                            gai_strerror(rc));
    }
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if ((st = ks_tls_load(cfg, log, &tls, err)) != KS_OK ||
        (st = start_background(srv, err)) != KS_OK) {
        ks_tls_free(tls);
        freeaddrinfo(ai);
        free_background(srv);
        return st;
    }
    /* libmicrohttpd gives each pool thread an equal share of the total cap (the chooser keeps
     * every share at least 1); the per-address cap is counted once, by the master daemon, across
     * all threads. */
    max_conns =
        ks_connections_limit_for_process(cfg->server.max_connections, cfg->server.threads,
                                         cfg->n_key_stores + cfg->n_kms_relationships, srv->log);
    /* One option per line (clang-format off) so that additions merge line by line. The
     * external logger goes first: libmicrohttpd prints to stderr until it has seen it. */
    // clang-format off
    srv->daemon = MHD_start_daemon(
        flags | ks_tls_flags(tls), cfg->listen_port, NULL, NULL, on_access, srv,
        MHD_OPTION_EXTERNAL_LOGGER, on_library_message, srv,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->server.threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->server.connection_timeout_seconds,
        MHD_OPTION_NOTIFY_COMPLETED, on_access_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
        MHD_OPTION_CONNECTION_LIMIT, max_conns,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->server.max_connections_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory(&cfg->server),
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
        MHD_OPTION_ARRAY, (struct MHD_OptionItem *)(uintptr_t)ks_tls_options(tls),
        MHD_OPTION_END);
    // clang-format on
    ks_tls_free(tls); /* GnuTLS holds its own copy once the daemon started: wipe ours now */
    freeaddrinfo(ai);
    if (!srv->daemon) {
        free_background(srv);
        return ks_error_set(err, KS_E_CONFIG, "cannot listen on %s:%u (address in use?)",
                            cfg->listen_host, (unsigned)cfg->listen_port);
    }
    info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->listen_port;
    *out = srv;
    return KS_OK;
}
uint16_t ks_server_port(const struct ks_server *s)
{
    return s->port;
}

void ks_server_stop(struct ks_server *s, unsigned timeout_seconds)
{
    uint64_t deadline = ks_monotonic_us() + (uint64_t)timeout_seconds * 1000000u;
    MHD_socket fd;
    if (!s)
        return;
    atomic_store(&s->draining, 1);
    fd = MHD_quiesce_daemon(s->daemon);
    while (ks_http_metrics_in_flight(s->metrics) > 0 && ks_monotonic_us() < deadline)
        usleep(10000);
    MHD_stop_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    free_background(s);
}
