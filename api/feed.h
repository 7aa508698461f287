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

/* True while the libvirt connection is up. */
bool api_hypervisor_connected(void);

#endif
