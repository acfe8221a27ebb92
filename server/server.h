/*
 * server.h - the HTTP front end (libmicrohttpd, thread pool): routing, bearer auth and roles,
 * request ids, body cap (413), JSON nesting cap, Content-Type check (415), error rendering
 * ({"error":{"type","message","requestId"}}, handlers/common.c), URI and header caps (414, 431),
 * one access log line per request (common/log.h), and a graceful
 * stop that lets in-flight requests finish.
 */
#ifndef KS_SERVER_SERVER_H
#define KS_SERVER_SERVER_H

#include <stdint.h>

#include "common/log.h"
#include "handlers/handlers.h"

struct ks_server;
struct ks_backends;

/* Starts listening on the address of app's config. backends and log are borrowed; the server
 * takes its own reference to app (the current snapshot until ks_server_swap). log receives the
 * access log and every request-time event (NULL: none). */
ks_status ks_server_start(struct ks_backends *backends, struct ks_app *app, struct ks_log *log,
                          struct ks_server **out, struct ks_error *err);

/* Makes app the snapshot of requests from now on (takes its own reference); requests in flight
 * finish on the one they took. Thread-safe. */
void ks_server_swap(struct ks_server *s, struct ks_app *app);

/* The bound port (useful with port 0). */
uint16_t ks_server_port(const struct ks_server *s);

/*
 * The request body parser of every route (public for tests/fuzz/, which feeds it untrusted
 * bytes): the raw pre-scan of common/json_check.h with check_flags (KS_JSON_*), then json-c
 * within max_depth; the result must be one JSON object with only whitespace after it. body[len]
 * must be readable and hold a NUL (the server's accumulator keeps one). On success *out is a new
 * object (caller puts it); otherwise KS_E_INVALID ("body: ...") or KS_E_INTERNAL.
 */
struct json_object;
ks_status ks_server_parse_body(const char *body, size_t len, unsigned max_depth,
                               unsigned check_flags, struct json_object **out,
                               struct ks_error *err);

/* Stops accepting, waits up to timeout_seconds for in-flight requests, then stops and frees. */
void ks_server_stop(struct ks_server *s, unsigned timeout_seconds);

#endif
