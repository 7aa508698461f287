/*
 * metrics.h - counters for GET /metrics (Prometheus text format): requests
 * by route and status, a latency histogram, in-flight requests and the
 * libvirt connection state.
 */
#ifndef VV_METRICS_H
#define VV_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Records one finished request. route is the template, or NULL when none matched. */
void metrics_request_done(const char *method, const char *route, int status, uint64_t duration_ns);

struct defer_pool;

/*
 * Reads the slow requests in progress (running on a worker, waiting for one)
 * from pool when rendering; NULL stops. Set before the HTTP threads start
 * and cleared after they stop.
 */
void metrics_watch_deferred(struct defer_pool *pool);

struct timers;

/*
 * Reads the requests that wait for a job's end (one armed timer each) from
 * timers when rendering; NULL stops. Set and cleared as the pool above.
 */
void metrics_watch_waits(struct timers *timers);

/* Renders every metric as Prometheus text. Returns a new string or NULL. */
char *metrics_render(void);

#endif
