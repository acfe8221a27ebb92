/*
 * router.h - the one route table (docs/architecture.md section 3) and path matching. The table is
 * static and read-only: thread-safe.
 */
#ifndef KS_SERVER_ROUTER_H
#define KS_SERVER_ROUTER_H

#include <stddef.h>

#include "handlers/handlers.h"

/* Who may call a route (README "Roles"): READER routes need reader or admin, ADMIN routes admin,
 * KEYRING routes (wrap and unwrap) any of keyring, reader and admin, METRICS (GET /metrics)
 * admin or monitor, or nobody's token with server.unauthenticated_metrics (issue 12). KEYRING
 * routes also have their own body cap, server.max_keyring_body_bytes (a 1,000-request unwrap batch
 * is about 330 KB); every other route has server.max_body_bytes. */
enum ks_access {
    KS_ACCESS_PUBLIC = 0,
    KS_ACCESS_READER,
    KS_ACCESS_ADMIN,
    KS_ACCESS_KEYRING,
    KS_ACCESS_METRICS
};

struct ks_route {
    const char *method;
    const char *pattern; /* literal segments and {ks}, {id}, {v} */
    enum ks_access access;
    int takes_body;                   /* 1: an optional JSON object body; 0: a body is refused */
    int takes_kms_relationship_query; /* ?kmsRelationship= allowed */
    ks_handler_fn handler;
};

/* 1 when the route takes ?limit= and ?nextToken= (the list routes of issue 14). */
int ks_route_takes_paging(const struct ks_route *route);

/* The table and its length. */
const struct ks_route *ks_router_routes(size_t *count);

enum ks_match_result {
    KS_MATCH_OK = 0,
    KS_MATCH_NO_ROUTE,   /* 404 */
    KS_MATCH_BAD_METHOD, /* 405: allow lists the methods of the path */
    KS_MATCH_BAD_PATH,   /* 400: bad percent-encoding or NUL in a segment */
};

struct ks_route_match {
    const struct ks_route *route;
    char *params[KS_PARAM_COUNT]; /* decoded, malloc'd; NULL when the pattern has none */
    size_t param_lens[KS_PARAM_COUNT];
    char allow[64]; /* "GET, PUT" for KS_MATCH_BAD_METHOD */
};

/* Matches the raw (still percent-encoded) path; free the match with ks_router_match_free. */
enum ks_match_result ks_router_match(const char *method, const char *raw_path,
                                     struct ks_route_match *match);
void ks_router_match_free(struct ks_route_match *match);

/* The route of method and raw path without decoding anything, or NULL: for what must be known
 * before the body is read (its cap). */
const struct ks_route *ks_router_find(const char *method, const char *raw_path);

#endif
