/*
 * http.h - the HTTP transport: libmicrohttpd with an internal poll() thread
 * pool, limits on connections, time and memory, a capped body, the router,
 * authentication and problem+json answers.
 */
#ifndef VV_HTTP_H
#define VV_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"

struct http_config {
    const char *listen;  /* "HOST:PORT", or "unix:PATH" (root and socket_group are admin) */
    const char *web_dir; /* static files of the UI, or NULL */
    char *tls_cert_pem;  /* NULL for plain HTTP */
    char *tls_key_pem;
    const struct auth *auth;   /* NULL: no authentication (loopback only) */
    const char *allowed_hosts; /* ','-separated names Host may carry, or NULL */
    const char *socket_group;  /* group of a unix: socket, or NULL: ours */
    unsigned threads;
    unsigned conn_timeout;
    unsigned conn_limit;
    unsigned per_ip_limit;
    size_t max_body;
};

struct http_server;

/*
 * Resolves a --listen value and tells whether it is a loopback address.
 * Returns 0, or -EINVAL with a detail when it does not resolve.
 */
int http_listen_loopback(const char *listen, bool *ret);

/*
 * Starts serving. On success *ret owns the server and *ret_port tells the
 * port bound (useful with port 0). Returns a negative errno with a detail.
 */
int http_start(const struct http_config *cfg, struct http_server **ret, unsigned *ret_port);

/*
 * Stops accepting connections, lets requests in flight finish (waiting at
 * most a few seconds), then stops the threads and frees the server.
 */
void http_stop(struct http_server *s);

#endif
