/*
 * api/feed.h - what the server's event stream and metrics read from the
 * core, already in the API's form: job changes and domain lifecycle events
 * as JSON text, and whether the hypervisor is reachable.
 */
#ifndef VV_API_FEED_H
#define VV_API_FEED_H

#include <stdbool.h>

/*
 * Called for each change with the event's name ("job" or "domain") and its
 * JSON text (borrowed), on the thread that made the change (with the jobs
 * lock held, or on libvirt's event thread): it must return quickly.
 */
typedef void (*api_feed_fn)(const char *event, const char *json, void *opaque);

/* Starts feeding fn (one feed). Returns 0 or a negative errno (-ENOSPC). */
int api_feed_start(api_feed_fn fn, void *opaque);

/* Stops the feed. Safe without a start. */
void api_feed_stop(void);

/*
 * A wait for one job's end, for the server's suspended requests (see
 * api_wait_job). api_job_waiter_new() returns 0 and a new waiter in *ret
 * that calls fn(opaque) once when job id ends, on the thread that ended it
 * with the jobs lock held (it must return quickly and call nothing of the
 * API); 1 when the job is not queued or running (nothing to wait for, no
 * waiter); or -ENOMEM.
 */
struct api_job_waiter;
int api_job_waiter_new(const char *id, void (*fn)(void *opaque), void *opaque,
                       struct api_job_waiter **ret);

/* Forgets and frees w: once it returns, its fn neither runs nor will be called. Accepts NULL. */
void api_job_waiter_free(struct api_job_waiter *w);

/* True while the libvirt connection is up. */
bool api_hypervisor_connected(void);

#endif
