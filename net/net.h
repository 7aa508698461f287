/*
 * net/net.h - the service's outbound HTTP client (libcurl), for webhook
 * deliveries. The only code that includes curl/curl.h.
 *
 * A POST goes to exactly the URL given: http and https only, redirects not
 * followed (a 3xx is an answer like any other), no proxy from the
 * environment, https peers verified against the system's CAs with their
 * host name. Answers are read and dropped (at most NET_BODY_MAX bytes).
 */
#ifndef VV_NET_H
#define VV_NET_H

#include <stddef.h>

#define NET_BODY_MAX   (64 * 1024)
#define NET_ERROR_MAX  256
#define NET_CONNECT_MS 5000
#define NET_TOTAL_MS   10000

/* Makes libcurl ready; call once before any other net_* function, from one thread. */
int net_init(void);

/* Releases what net_init() took. */
void net_fini(void);

struct net_result {
    int status;                /* the answer's HTTP status, 0 when none came */
    char error[NET_ERROR_MAX]; /* why no answer came, or "" */
};

/*
 * POSTs body (len bytes, application/json) to url with the given header
 * lines ("Name: value", n of them). Fills *ret in every case and returns 0
 * when an answer came (of any status), or -EIO / -ETIMEDOUT / -EINVAL when
 * none did (ret->error says why). Thread-safe.
 */
int net_post(const char *url, const char *const *headers, size_t n, const char *body, size_t len,
             struct net_result *ret);

#endif
