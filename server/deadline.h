/*
 * deadline.h - a time limit on receiving each request.
 *
 * libmicrohttpd's connection timeout counts idle time: a client that sends
 * one byte of its headers every second keeps a connection (and its memory)
 * forever. A deadline watch bounds the whole receipt instead: it is armed
 * when a connection starts waiting for a request, disarmed once the request
 * (headers and body) is in, and armed again when the answer is done. A
 * watcher thread shuts down the socket of every watch whose deadline has
 * passed; the transport then sees the connection end and closes it itself,
 * so no socket is closed behind its back.
 *
 * A watch is created when the connection opens and freed when it closes,
 * before its socket is closed (libmicrohttpd's connection notifications
 * come in that order), so the watcher never touches a reused descriptor.
 */
#ifndef VV_DEADLINE_H
#define VV_DEADLINE_H

#include <stdint.h>

struct deadline_watcher;
struct deadline_watch;

/*
 * Starts the watcher thread with a limit of `seconds`. Returns 0 and a new
 * watcher in *ret, or a negative errno.
 */
int deadline_watcher_new(unsigned seconds, struct deadline_watcher **ret);

/* Stops the thread and frees the watcher; every watch must be gone. Accepts NULL. */
void deadline_watcher_free(struct deadline_watcher *w);

/*
 * Watches the socket fd, armed from now. Returns the new watch (owned by the
 * watcher until deadline_watch_free()), or NULL when out of memory; a NULL
 * watch is accepted by the other calls and does nothing.
 */
struct deadline_watch *deadline_watch_new(struct deadline_watcher *w, int fd);

/* Arms the watch: the next request must be in within the limit from now. */
void deadline_watch_arm(struct deadline_watch *watch);

/* Disarms the watch: the request is in. */
void deadline_watch_disarm(struct deadline_watch *watch);

/* Forgets the watch (the connection is closing). Accepts NULL. */
void deadline_watch_free(struct deadline_watch *watch);

#endif
