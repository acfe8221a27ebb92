/*
 * test_connections.c - server/connections.h: the connection cap (below the descriptor limit with
 * a reserve, the configured cap clamped, at least one per pool thread) and the header deadline
 * registry (shutdown of connections whose headers are late, never of one reported closed, a
 * kept-alive connection re-armed with max(header, idle), the sweeper thread and its prompt stop).
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "server/connections.h"

static struct ks_connections *registry(unsigned header_ms, unsigned idle_ms, unsigned sweep_ms)
{
    struct ks_connections_options o = {header_ms, idle_ms, sweep_ms, NULL};
    struct ks_connections *c = NULL;
    struct ks_error err;
    cr_assert_eq(ks_connections_create(&o, &c, &err), KS_OK);
    return c;
}

/* 1 when the peer of sv[0] sees end-of-file (sv[0] was shut down). */
static int peer_sees_eof(int peer)
{
    char b;
    struct timeval tv = {0, 200000};
    setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return read(peer, &b, 1) == 0;
}

Test(connections, limit_below_descriptor_limit_with_reserve)
{
    struct ks_connection_limit l;
    ks_connections_choose_limit(20000, 0, 4, 4, &l);
    cr_assert_lt(l.limit, 20000u);
    cr_assert_geq(l.reserve, 2000u, "a tenth of the descriptors is kept: %llu",
                  (unsigned long long)l.reserve);
    cr_assert_eq((uint64_t)l.limit + l.reserve, 20000u);
    cr_assert_eq(l.clamped, 0);
    /* More threads and dependencies need more reserve once it exceeds the tenth. */
    ks_connections_choose_limit(1024, 0, 4, 2, &l);
    cr_assert_eq(l.reserve, 64u + 4u * 4u + 2u * 5u * 3u);
    cr_assert_eq(l.limit, 1024u - l.reserve);
}

Test(connections, configured_cap_kept_or_clamped)
{
    struct ks_connection_limit l;
    ks_connections_choose_limit(20000, 500, 4, 1, &l);
    cr_assert_eq(l.limit, 500u);
    cr_assert_eq(l.clamped, 0);
    ks_connections_choose_limit(20000, 65536, 4, 1, &l);
    cr_assert_eq(l.limit, 18000u);
    cr_assert_eq(l.clamped, 1);
}

Test(connections, at_least_one_per_pool_thread_and_capped)
{
    struct ks_connection_limit l;
    /* libmicrohttpd splits the cap across its threads: a share of 0 never accepts. */
    ks_connections_choose_limit(100, 0, 8, 4, &l);
    cr_assert_eq(l.limit, 8u);
    ks_connections_choose_limit(20000, 3, 8, 1, &l);
    cr_assert_eq(l.limit, 8u);
    ks_connections_choose_limit((uint64_t)1 << 40, 0, 4, 1, &l);
    cr_assert_eq(l.limit, 1000000u);
}

Test(connections, late_headers_are_shut_down_once)
{
    struct ks_connections *c = registry(100, 1000, 0);
    void *slot = NULL;
    int sv[2];
    uint64_t t0;

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    t0 = ks_monotonic_us();
    ks_connections_opened(c, sv[0], &slot);
    cr_assert_not_null(slot);
    cr_assert_eq(ks_connections_count(c), 1u);
    cr_assert_eq(ks_connections_sweep(c, t0), 0u, "not yet late");
    cr_assert_eq(ks_connections_sweep(c, t0 + 200000u), 1u);
    cr_assert(peer_sees_eof(sv[1]));
    cr_assert_eq(ks_connections_sweep(c, t0 + 300000u), 0u, "shut down only once");
    ks_connections_closed(c, &slot);
    cr_assert_null(slot);
    cr_assert_eq(ks_connections_count(c), 0u);
    close(sv[0]);
    close(sv[1]);
    ks_connections_destroy(c);
}

Test(connections, complete_headers_end_the_deadline_and_a_kept_alive_one_gets_idle_time)
{
    struct ks_connections *c = registry(100, 1000, 0);
    void *slot = NULL;
    int sv[2];
    uint64_t t0;

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ks_connections_opened(c, sv[0], &slot);
    ks_connections_headers_done(c, slot);
    t0 = ks_monotonic_us();
    cr_assert_eq(ks_connections_sweep(c, t0 + 10000000u), 0u, "a request being served is kept");
    ks_connections_request_done(c, slot);
    t0 = ks_monotonic_us();
    cr_assert_eq(ks_connections_sweep(c, t0 + 500000u), 0u, "idle keep-alive: max(header, idle)");
    cr_assert_eq(ks_connections_sweep(c, t0 + 1100000u), 1u, "the next request's headers are late");
    cr_assert(peer_sees_eof(sv[1]));
    ks_connections_closed(c, &slot);
    close(sv[0]);
    close(sv[1]);
    ks_connections_destroy(c);
}

Test(connections, a_closed_connection_is_never_touched)
{
    struct ks_connections *c = registry(100, 100, 0);
    void *slot = NULL;
    int sv[2], again[2];
    char b = 'x';

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ks_connections_opened(c, sv[0], &slot);
    ks_connections_closed(c, &slot);
    close(sv[0]);
    close(sv[1]);
    /* The descriptor numbers are reused by the next socket pair. */
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, again), 0);
    cr_assert_eq(again[0], sv[0]);
    cr_assert_eq(ks_connections_sweep(c, ks_monotonic_us() + 10000000u), 0u);
    cr_assert_eq(write(again[0], &b, 1), 1);
    cr_assert_eq(read(again[1], &b, 1), 1, "the reused descriptor still works");
    close(again[0]);
    close(again[1]);
    ks_connections_destroy(c);
}

Test(connections, sweeper_thread_cuts_and_stops_at_once)
{
    struct ks_connections *c = registry(50, 50, 20);
    void *slot = NULL;
    int sv[2];
    uint64_t t0;
    char b;

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ks_connections_opened(c, sv[0], &slot);
    t0 = ks_monotonic_us();
    {
        struct timeval tv = {2, 0};
        setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        cr_assert_eq(read(sv[1], &b, 1), 0, "the sweeper shut the connection down");
    }
    cr_assert_lt(ks_monotonic_us() - t0, 1000000u);
    ks_connections_closed(c, &slot);
    t0 = ks_monotonic_us();
    ks_connections_destroy(c);
    cr_assert_lt(ks_monotonic_us() - t0, 200000u, "stop waits for no sweep period");
    close(sv[0]);
    close(sv[1]);
}
