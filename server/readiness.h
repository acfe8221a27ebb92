/*
 * readiness.h - dependency probes in the background, so that /readyz answers at once.
 *
 * A /readyz that pinged every dependency itself ran each ping with the dependency's full retry
 * budget on a request thread: a KMS endpoint that accepts connections and never answers held one
 * /readyz for 30 s, and a handful of them held every pool thread. Here one thread per check runs
 * its ping every interval_ms; a supervising thread gives each ping timeout_ms and counts one that
 * has not finished by then as not ready (the ping's thread keeps waiting on its dependency, and
 * that check is not probed again until it returns). /readyz reads the last states
 * (ks_readiness_state, handlers/handlers.h); before the first probe finishes every check is
 * "starting". Every change of a check's state and of the overall readiness is logged, with the
 * dependency's error code and log-only detail.
 */
#ifndef KS_SERVER_READINESS_H
#define KS_SERVER_READINESS_H

#include <stddef.h>
#include "common/log.h"

#include "handlers/handlers.h"

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
