/*
 * events.h - the event hub behind GET /v1/events (Server-Sent Events).
 *
 * Producers publish an event (a name and the text of one JSON object) from
 * any thread; the hub keeps the newest EVENTS_RING of them in a ring, each
 * with a sequence number. Every open stream has a cursor into the ring: a
 * stream with nothing left to send is suspended and resumed by the next
 * publish, so that no thread waits and no connection spins. A stream that
 * falls behind the ring loses the oldest events and is told so with a
 * comment line. Every EVENTS_KEEPALIVE_S seconds a comment is sent, which
 * keeps proxies from closing a quiet stream and finds clients that left.
 */
#ifndef VV_EVENTS_H
#define VV_EVENTS_H

#include <stdint.h>

#define EVENTS_RING        512
#define EVENTS_KEEPALIVE_S 15
#define EVENTS_MAX_STREAMS 64 /* open streams in all */
#define EVENTS_MAX_PER_WHO 8  /* open streams of one token (or peer) */

struct MHD_Connection;
struct MHD_Response;

/* Starts the hub (keepalive thread, job and domain listeners). Returns 0 or -errno. */
int events_start(void);

/*
 * Ends every open stream (they answer end-of-stream and their connections
 * are resumed), so that the HTTP server can stop. Call before http_stop's
 * wait; events_stop() frees the hub after the server stopped.
 */
void events_shutdown(void);
void events_stop(void);

/*
 * Publishes an event: "event: <name>" with data the JSON text json (one
 * line). Copies both. Never blocks on a stream.
 */
void events_publish(const char *name, const char *json);

/*
 * Makes the response of an event stream for conn, opened by who (a token's
 * hash, a peer; at most 64 characters are kept; "" for no one in particular,
 * which only the total cap applies to): a callback response that
 * the caller queues (and destroys, as any response), in *ret. Returns 0;
 * -EUSERS when EVENTS_MAX_STREAMS are open, -EMFILE when who has
 * EVENTS_MAX_PER_WHO open; -ESHUTDOWN while the hub shuts down; -ENOMEM.
 */
int events_stream_new(struct MHD_Connection *conn, const char *who, struct MHD_Response **ret);

#endif
