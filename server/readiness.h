/*
 * readiness.h - dependency probes in the background, so that /readyz answers at once.
 *
 * A /readyz that pinged every dependency itself ran each ping with the dependency's full retry
 * budget on a request thread: a KMS endpoint that accepts connections and never answers held one
 * /readyz for 30 s, and a handful of them held every pool thread. Here one thread per check runs
 * its ping every interval_ms; a supervising thread gives each ping timeout_ms and counts one that
 * has not finished by then as not ready (the ping's thread keeps waiting on its dependency, and
 * that check is not probed again until it returns). /readyz reads the last states
 * (ks_readiness_state, ks_handle_readyz below); before the first probe finishes every check is
 * "starting". Every change of a check's state and of the overall readiness is logged, with the
 * dependency's error code and log-only detail.
 */
#ifndef KS_SERVER_READINESS_H
#define KS_SERVER_READINESS_H

#include <stddef.h>
#include "common/log.h"

#include "handlers/handlers.h"

enum ks_readiness_state {
    KS_READINESS_STARTING = 0, /* no probe has finished yet */
    KS_READINESS_OK,
    KS_READINESS_UNAVAILABLE, /* the last probe failed */
    KS_READINESS_TIMEOUT      /* the last probe did not finish within its deadline */
};
/* Number of checks (0 when r is NULL). */
size_t ks_readiness_count(struct ks_readiness *r);
/* State of check i and its name ("storage:<ks>", "kms:<relationship>"); thread-safe. */
enum ks_readiness_state ks_readiness_state(struct ks_readiness *r, size_t i, const char **name);

/* GET /readyz (a route of server/router.c): the probes' last states, never waiting on a
 * dependency (README "Readiness and connection limits"). */
ks_status ks_handle_readyz(const struct ks_request *req, struct ks_response *resp,
                           struct ks_error *err);

struct ks_readiness_check {
    const char *name; /* borrowed until stop: "storage:<ks>", "kms:<relationship>" */
    ks_status (*ping)(void *arg, struct ks_error *err); /* thread-safe */
    void *arg;
};

struct ks_readiness_options {
    unsigned interval_ms; /* period of the probes */
    unsigned timeout_ms;  /* deadline of one probe */
    struct ks_log *log;   /* borrowed; NULL: no log lines */
};

/* Copies checks[0..n) and starts probing at once. */
ks_status ks_readiness_start(const struct ks_readiness_check *checks, size_t n,
                             const struct ks_readiness_options *opts, struct ks_readiness **out,
                             struct ks_error *err);

/*
 * Stops the probes and frees r. The supervising thread and idle probe threads stop at once; a
 * probe still inside its ping is waited for (its dependency's own timeouts bound it), because
 * the caller frees the dependencies next.
 */
void ks_readiness_stop(struct ks_readiness *r);

/* Overall: KS_READINESS_OK when every check is ok, STARTING while any has no result yet, else
 * UNAVAILABLE. */
enum ks_readiness_state ks_readiness_overall(struct ks_readiness *r);

#endif
