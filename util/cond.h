/*
 * util/cond.h - a short wait on a condition, for loops that also look at a
 * flag nobody signals (a job's cancel, a shutdown).
 */
#ifndef VV_UTIL_COND_H
#define VV_UTIL_COND_H

#include <pthread.h>
#include <time.h>

/*
 * Waits on cond (mutex held, as pthread_cond_timedwait) until it is signalled
 * or ms milliseconds (below 1000) have passed; the caller looks again either way.
 */
static inline void
cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mutex, long ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cond, mutex, &ts);
}

#endif
