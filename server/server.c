/*
 * server.c - libmicrohttpd glue. A request goes: access handler (first call: request state,
 * early 413 on Content-Length) -> body accumulation under the cap -> dispatch: route match,
 * auth, role, Content-Type, JSON parse, query check -> handler -> response. The access log line
 * is written when MHD reports the request complete.
 */
#include "server/server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "common/json_check.h"
#include "common/jsonw.h"
#include "common/secret.h"
#include "common/util.h"
#include "server/auth.h"
#include "server/router.h"

#define REQUEST_ID_MAX 128
#define CONNECTION_LIMIT 65536    /* split across the pool threads; bounded by RLIMIT_NOFILE */
#define CHUNKED_DISCARD_FACTOR 16 /* a chunked body over the cap is read up to 16x, then cut */

struct ks_server {
    struct MHD_Daemon *daemon;
    struct ks_app *app;
    FILE *log;
    atomic_long in_flight;
    atomic_int draining; /* set by ks_server_stop: new requests get 503 + Connection: close */
    uint16_t port;
};

struct request_state {
    uint64_t start_us;
    char *body;
    size_t body_len, body_cap, discarded;
    int too_large;
    int closing; /* answer with Connection: close */
    const char *method;
    const char *route;
    int status;
    char tenant[65];
    char request_id[REQUEST_ID_MAX + 1];
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
    if (status == 429 || status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (rs->closing)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    rs->status = status;
    ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result queue_error(struct ks_server *srv, struct MHD_Connection *conn,
                                   struct request_state *rs, const struct ks_error *err,
                                   const char *allow)
{
    struct ks_jsonw w;
    int http = ks_status_http_code(err->code);
    char *body;
    size_t len = 0;

    if (http >= 500)
        fprintf(srv->log,
                "{\"level\":\"warn\",\"msg\":\"request failed\",\"requestId\":\"%s\","
                "\"status\":%d,\"error\":\"%s\"}\n",
                rs->request_id, http, ks_status_exception(err->code));
    ks_jsonw_init(&w, 4096);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "error");
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "type");
    ks_jsonw_string(&w, ks_status_exception(err->code));
    ks_jsonw_key(&w, "message");
    ks_jsonw_string(&w, err->message[0] ? err->message : ks_strerror(err->code));
    ks_jsonw_key(&w, "requestId");
    ks_jsonw_string(&w, rs->request_id);
    ks_jsonw_object_end(&w);
    ks_jsonw_object_end(&w);
    body = ks_jsonw_take(&w, &len);
    return queue(conn, rs, http, body, len, NULL, 1, NULL, allow,
                 err->code == KS_E_UNAUTHENTICATED);
}

/* --- request pieces -------------------------------------------------------------------- */

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
};

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
 * duplicate members, invalid UTF-8; common/json_check.h). */
static ks_status parse_body(const char *body, size_t len, unsigned max_depth,
                            struct json_object **out, struct ks_error *err)
{
    struct json_tokener *tok;
    struct json_object *obj;
    enum json_tokener_error jerr;
    size_t used;
    ks_status st;

    if ((st = ks_json_check(body, len, max_depth, err)) != KS_OK)
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

/* --- dispatch -------------------------------------------------------------------------- */

static enum MHD_Result dispatch(struct ks_server *srv, struct MHD_Connection *conn,
                                struct request_state *rs, const char *url, const char *method)
{
    const struct ks_config *cfg = srv->app->config;
    struct ks_route_match match;
    struct ks_request req;
    struct ks_response resp;
    struct ks_error err;
    struct query_check q;
    char *rel_query = NULL;
    enum ks_match_result mr;
    enum MHD_Result ret;
    ks_status st;

    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    ks_error_clear(&err);
    req.app = srv->app;

    if (rs->too_large) {
        ks_error_set(&err, KS_E_TOO_LARGE, "request body larger than %zu bytes",
                     cfg->server.max_body_bytes);
        return queue_error(srv, conn, rs, &err, NULL);
    }
    mr = ks_router_match(method, url, &match);
    if (mr == KS_MATCH_NO_ROUTE) {
        ks_error_set(&err, KS_E_NO_ROUTE, "no route for %.200s", url);
        return queue_error(srv, conn, rs, &err, NULL);
    }
    if (mr == KS_MATCH_BAD_METHOD) {
        ks_error_set(&err, KS_E_METHOD, "method %.16s not allowed; allowed: %s", method,
                     match.allow);
        return queue_error(srv, conn, rs, &err, match.allow);
    }
    if (mr == KS_MATCH_BAD_PATH) {
        ks_error_set(&err, KS_E_INVALID, "path: bad percent-encoding or NUL in a segment");
        return queue_error(srv, conn, rs, &err, NULL);
    }
    rs->route = match.route->pattern;
    memcpy(req.params, match.params, sizeof req.params);
    memcpy(req.param_lens, match.param_lens, sizeof req.param_lens);
    req.route = match.route->pattern;

    if (match.route->access != KS_ACCESS_PUBLIC) {
        req.tenant = ks_auth_tenant(
            cfg, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
        if (!req.tenant) {
            st = ks_error_set(&err, KS_E_UNAUTHENTICATED,
                              "missing or invalid bearer token (Authorization: Bearer <token>)");
            goto fail;
        }
        snprintf(rs->tenant, sizeof rs->tenant, "%s", req.tenant->name);
        if (match.route->access == KS_ACCESS_ADMIN && req.tenant->role != KS_ROLE_ADMIN) {
            st = ks_error_set(&err, KS_E_FORBIDDEN, "this operation needs the admin role");
            goto fail;
        }
    }

    memset(&q, 0, sizeof q);
    q.allowed_kms_relationship = match.route->takes_kms_relationship_query;
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_iter, &q);
    if (q.bad_key) {
        st =
            ks_error_set(&err, KS_E_INVALID, "query parameter '%.64s' is not supported", q.bad_key);
        goto fail;
    }
    if (q.repeated) {
        st = ks_error_set(&err, KS_E_INVALID, "kmsRelationship: given more than once");
        goto fail;
    }
    if (q.kms_relationship) {
        /* Query values arrive undecoded: the unescape callback is a no-op so that path segments
         * can carry %2F. */
        rel_query = ks_percent_decode(q.kms_relationship, strlen(q.kms_relationship), 1, NULL);
        if (!rel_query || !*rel_query) {
            st = ks_error_set(&err, KS_E_INVALID, "kmsRelationship: bad value");
            goto fail;
        }
        req.kms_relationship_query = rel_query;
    }

    if (rs->body_len > 0) {
        if (!match.route->takes_body) {
            st = ks_error_set(&err, KS_E_INVALID, "this route takes no request body");
            goto fail;
        }
        if (!is_json_content_type(
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE))) {
            st = ks_error_set(&err, KS_E_MEDIA_TYPE, "request body must be application/json");
            goto fail;
        }
        if ((st = parse_body(rs->body, rs->body_len, cfg->server.max_json_depth, &req.body,
                             &err)) != KS_OK)
            goto fail;
    }

    st = match.route->handler(&req, &resp, &err);
    if (st != KS_OK)
        goto fail;
    ret = queue(conn, rs, resp.status, resp.body, resp.body_len, resp.content_type,
                resp.no_store || strncmp(rs->route, "/v1/keystores", 13) == 0, resp.location, NULL,
                0);
    json_object_put(req.body);
    free(rel_query);
    ks_router_match_free(&match);
    return ret;
fail:
    if (err.code == KS_OK)
        ks_error_set(&err, st, "%s", ks_strerror(st));
    ks_secret_free_string(resp.body);
    json_object_put(req.body);
    free(rel_query);
    ks_router_match_free(&match);
    return queue_error(srv, conn, rs, &err, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct ks_server *srv = cls;
    struct request_state *rs = *con_cls;
    size_t max = srv->app->config->server.max_body_bytes;
    (void)version;

    if (!rs) {
        const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        rs = calloc(1, sizeof *rs);
        if (!rs)
            return MHD_NO;
        rs->start_us = ks_monotonic_us();
        rs->method = method;
        rs->route = "-";
        if (rid && request_id_ok(rid))
            memcpy(rs->request_id, rid, strlen(rid) + 1);
        else if (ks_uuid_v4(rs->request_id) != 0)
            memcpy(rs->request_id, "-", 2);
        *con_cls = rs;
        atomic_fetch_add(&srv->in_flight, 1);
        if (atomic_load(&srv->draining)) {
            /* A request that arrives on a kept-alive connection after SIGTERM was never
             * accepted: refuse it so that the client (or the proxy) retries elsewhere. */
            struct ks_error err;
            ks_error_set(&err, KS_E_UNAVAILABLE, "server is shutting down; retry");
            rs->closing = 1;
            return queue_error(srv, conn, rs, &err, NULL);
        }
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (*end == '\0' && n > max) {
                /* Answer before reading: MHD then closes the connection. */
                struct ks_error err;
                rs->too_large = 1;
                ks_error_set(&err, KS_E_TOO_LARGE, "request body larger than %zu bytes", max);
                return queue_error(srv, conn, rs, &err, NULL);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
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
    if (rs->status)
        return MHD_YES; /* already answered (early 413) */
    return dispatch(srv, conn, rs, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct ks_server *srv = cls;
    struct request_state *rs = *con_cls;
    struct timespec ts;
    struct tm tm;
    char when[32];
    (void)conn;

    if (!rs)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* Method, route pattern (never the raw path), status, latency, tenant, request id: nothing
     * here can carry a key or a token. */
    fprintf(srv->log,
            "{\"time\":\"%s\",\"msg\":\"access\",\"method\":\"%s\",\"route\":\"%s\","
            "\"status\":%d,\"latencyMs\":%.3f,\"tenant\":\"%s\",\"requestId\":\"%s\"%s}\n",
            when, rs->method, rs->route, rs->status,
            (double)(ks_monotonic_us() - rs->start_us) / 1000.0, rs->tenant[0] ? rs->tenant : "-",
            rs->request_id, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : ",\"aborted\":true");
    fflush(srv->log);
    free(rs->body);
    free(rs);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

ks_status ks_server_start(struct ks_app *app, FILE *log, struct ks_server **out,
                          struct ks_error *err)
{
    const struct ks_config *cfg = app->config;
    struct ks_server *srv = calloc(1, sizeof *srv);
    struct addrinfo hints, *ai = NULL;
    char port[8];
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_EPOLL_LINUX_ONLY;
    const union MHD_DaemonInfo *info;
    int rc;

    if (!srv)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    srv->app = app;
    srv->log = log ? log : stderr;
    atomic_init(&srv->in_flight, 0);
    atomic_init(&srv->draining, 0);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof port, "%u", (unsigned)cfg->listen_port);
    if ((rc = getaddrinfo(cfg->listen_host, port, &hints, &ai)) != 0) {
        free(srv);
        return ks_error_set(err, KS_E_CONFIG, "listen: cannot resolve %s: %s", cfg->listen_host,
                            gai_strerror(rc));
    }
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    srv->daemon = MHD_start_daemon(
        flags, cfg->listen_port, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->server.threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->server.connection_timeout_seconds, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        srv, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!srv->daemon) {
        free(srv);
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
    while (atomic_load(&s->in_flight) > 0 && ks_monotonic_us() < deadline)
        usleep(10000);
    MHD_stop_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    free(s);
}
