#include "server/timedwait.h"

#include <time.h>

int ks_timedwait_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

void ks_timedwait_until(pthread_cond_t *cond, pthread_mutex_t *lock, uint64_t deadline_us)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline_us / 1000000u);
    ts.tv_nsec = (long)(deadline_us % 1000000u) * 1000L;
    pthread_cond_timedwait(cond, lock, &ts);
}
