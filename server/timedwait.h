/*
 * timedwait.h - condition variables on the monotonic clock, for the server's background threads
 * (readiness probes, the header-deadline sweeper): a wall-clock step must neither stall nor hurry
 * them, and a stop request must wake them at once rather than at their next period.
 */
#ifndef KS_SERVER_TIMEDWAIT_H
#define KS_SERVER_TIMEDWAIT_H

#include <pthread.h>
#include <stdint.h>

/* Initialises cond to time its waits on CLOCK_MONOTONIC. 0, or an errno value. */
int ks_timedwait_cond_init(pthread_cond_t *cond);

/* Waits on cond (lock held) until signalled or until deadline_us (ks_monotonic_us) passed.
 * Spurious wake-ups are possible: callers re-check their condition. */
void ks_timedwait_until(pthread_cond_t *cond, pthread_mutex_t *lock, uint64_t deadline_us);

#endif
