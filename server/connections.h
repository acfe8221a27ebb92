/*
 * connections.h - the limits keystored puts on client connections, beside libmicrohttpd's own:
 *
 * - a total cap below the file-descriptor limit, with a reserve for everything that is not a
 *   client (listening socket, pool threads' epoll and wake-up descriptors, SQLite files, the
 *   local key file, libcurl's sockets to AWS): past the descriptor limit accept() fails and every
 *   dependency call that opens a file or socket fails with it;
 * - a deadline for the request line and headers. libmicrohttpd 0.9.75 only has an idle timeout
 *   that every received byte resets, so a client trickling a byte every few seconds would hold a
 *   connection forever. Each connection is registered when libmicrohttpd opens it; a sweeper
 *   thread shuts down (shutdown(2), never close: the descriptor stays libmicrohttpd's) those
 *   whose headers are not complete by the deadline. Registration, the sweep and the close
 *   notification share one lock, and libmicrohttpd notifies the close before it closes the
 *   descriptor, so a descriptor number that may already be reused is never touched.
 *
 * The registry knows nothing of libmicrohttpd: server.c adapts its callbacks (connection
 * started/closed, first call of the access handler, request completed) to the calls below.
 */
#ifndef KS_SERVER_CONNECTIONS_H
#define KS_SERVER_CONNECTIONS_H

#include <stddef.h>
#include <stdint.h>
#include "common/log.h"

#include "common/status.h"

/* --- the connection cap ------------------------------------------------------------------ */

struct ks_connection_limit {
    unsigned limit;    /* the total cap given to libmicrohttpd */
    uint64_t fd_limit; /* the descriptor limit it was computed from */
    uint64_t reserve;  /* descriptors kept for everything that is not a client */
    int clamped;       /* the configured cap did not fit below fd_limit - reserve */
};

/*
 * Chooses the total connection cap. fd_limit: RLIMIT_NOFILE (soft, after main raised it);
 * configured: server.max_connections (0: as many as fit); threads: libmicrohttpd's pool size,
 * which splits the cap evenly across its threads, so the cap is at least one per thread;
 * dependencies: key stores + KMS relationships, each of which may hold descriptors per thread.
 * Pure: unit-tested.
 */
void ks_connections_choose_limit(uint64_t fd_limit, unsigned configured, unsigned threads,
                                 size_t dependencies, struct ks_connection_limit *out);

/* Reads RLIMIT_NOFILE, chooses the cap and writes one log line saying what was chosen. */
unsigned ks_connections_limit_for_process(unsigned configured, unsigned threads,
                                          size_t dependencies, struct ks_log *log);

/* --- the header deadline ----------------------------------------------------------------- */

struct ks_connections;

struct ks_connections_options {
    unsigned header_timeout_ms; /* request line + headers must arrive within this */
    /* A kept-alive connection waits for its next request: it gets max(header, idle) from the
     * end of the previous one, so that an idle keep-alive lives as long as libmicrohttpd's own
     * idle timeout allows and a trickled second request is still cut. */
    unsigned idle_timeout_ms;
    unsigned sweep_interval_ms; /* 0: no sweeper thread (tests call ks_connections_sweep) */
    struct ks_log *log;         /* borrowed; NULL: no log lines */
};

ks_status ks_connections_create(const struct ks_connections_options *opts,
                                struct ks_connections **out, struct ks_error *err);

/* Stops the sweeper (immediately) and frees the registry. Call after libmicrohttpd stopped:
 * its last close notifications still use the registry. */
void ks_connections_destroy(struct ks_connections *c);

/* A new connection on descriptor fd; *slot (libmicrohttpd's socket context) receives the
 * registry's handle. Out of memory: the connection is simply not tracked. */
void ks_connections_opened(struct ks_connections *c, int fd, void **slot);

/* The connection is about to be closed: forgets it. */
void ks_connections_closed(struct ks_connections *c, void **slot);

/* The access handler was called for a request of this connection: its headers are complete. */
void ks_connections_headers_done(struct ks_connections *c, void *handle);

/* A request finished: the connection (kept alive) now waits for the next request's headers. */
void ks_connections_request_done(struct ks_connections *c, void *handle);

/* Shuts down every connection whose header deadline is before now_us (ks_monotonic_us);
 * returns how many. The sweeper calls it; exposed for tests. */
size_t ks_connections_sweep(struct ks_connections *c, uint64_t now_us);

/* Connections currently tracked (for tests). */
size_t ks_connections_count(struct ks_connections *c);

#endif
