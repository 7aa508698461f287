#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/feed.h"
#include "api/problem.h"
#include "cleanup.h"
#include "deadline.h"
#include "defer.h"
#include "err.h"
#include "events.h"
#include "hash.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "stream.h"
#include "text.h"
#include "timer.h"
#include "tls.h"

#define MAX_URL_LEN       8192
#define MAX_QUERY_ALLOCS  16
#define SHUTDOWN_GRACE_MS 10000
#define IDEM_HEADER       "Idempotency-Key"
/*
 * A refused request's body is read and dropped up to this size before the
 * answer, so that a client that sends its whole body before reading (most
 * do) sees the answer, not a reset; a larger one is answered at once.
 */
#define MAX_DISCARD (16u << 20)
/*
 * Slow handlers (api_defer) run on this many workers; at most DEFER_QUEUE
 * more wait for one. Beyond that a slow request is answered 503 at once.
 */
#define DEFER_WORKERS 8
#define DEFER_QUEUE   1024

/* Sent with every answer, UI and API alike. */
#define CSP "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

struct http_server {
    struct MHD_Daemon *daemon;
    struct http_config cfg;
    char listen_host[256]; /* the host of --listen, without brackets */
    bool listen_loopback;
    bool listen_wildcard; /* 0.0.0.0 or :: */
    int unix_fd;          /* the listening Unix socket, or -1 */
    gid_t unix_gid;       /* its group: members are admin */
    atomic_int in_flight;
    struct deadline_watcher *deadlines; /* bounds the receipt of each request */
    struct defer_pool *pool;            /* runs the slow halves of requests */
    struct timers *timers;              /* the deadlines of requests that wait for a job */
    pthread_mutex_t defer_lock;         /* guards every struct deferred and the list */
    struct deferred *deferred;          /* suspended requests not yet resumed */
    unsigned resuming;                  /* MHD_resume_connection() calls under way */
    bool stopping;                      /* http_stop() began: waits end at once */
};

/*
 * A suspended request and its slow half. Two references: the request's
 * (dropped when it takes the answer or ends) and the pool's (dropped when
 * the work ran or was cancelled). The first to decide the answer (the work,
 * its cancellation, or the stop after its grace) fills it and resumes the
 * connection, exactly once.
 *
 * A request that waits for a job's end (api_wait_job) is suspended the same
 * way but has no slow half and takes no worker: a job-end waiter and a
 * deadline timer each settle it (the first one counts), and its work, the
 * rendering of the answer, runs on the HTTP thread once it is resumed. Only
 * the request's reference exists then; the request forgets the waiter and
 * the timer before it drops it, so neither can fire on a freed request.
 */
struct deferred {
    struct defer_task task; /* first: the pool's view */
    struct http_server *srv;
    struct MHD_Connection *conn;
    struct api_work work;
    struct api_response resp; /* the answer, once resumed */
    int r;                    /* run()'s result, or -ESHUTDOWN from the stop */
    struct err_state err;     /* run()'s error, or the stop's */
    bool resumed;
    unsigned refs;
    struct deferred *prev, *next;      /* in srv->deferred while not resumed */
    bool waits;                        /* a wait for a job's end, not a slow half */
    struct api_job_waiter *job_waiter; /* its job-end registration, or NULL */
    struct timer_entry timer;          /* its deadline */
};

/* Everything one request carries between the access handler's calls. */
struct req {
    struct http_server *srv;
    struct MHD_Connection *conn;
    uint64_t start_ns;
    char *body;
    size_t len, cap;
    const char *route; /* template, for metrics */
    /* Set on the first call when the request is refused before its body: */
    const char *refusal; /* problem code, or NULL */
    char refusal_detail[320];
    char refusal_allow[128];
    /* The Content-Range of a 416, naming the length; else "". */
    char content_range[40];
    size_t discarded; /* body bytes read and dropped since */
    bool trusted;     /* a valid token came with it, or authentication is off */
    bool close_after; /* a refused body came or comes: do not keep the connection */
    bool peer_admin;  /* on the Unix socket: root or a member of its group */
    uid_t peer_uid;
    char who[65];   /* the token's hash or "uid:N" of a peer; "" without authentication */
    char actor[72]; /* for the audit log: the valid token's name, "uid:N" of a peer, or "" */
    char *path;     /* the path asked for, without the query string */
    char *location; /* the Location the answer carried, or NULL */
    char method[16];
    int status;
    bool audited;              /* its audit record is written (before the answer left) */
    char *idem_key;            /* the Idempotency-Key it claimed, until its answer settles it */
    char idem_scope[72];       /* the key's scope: the caller (see idem_begin) */
    bool replayed;             /* its answer is the one kept for its Idempotency-Key */
    bool retry_after;          /* a 503 "temporarily_unavailable": say when to try again */
    struct deferred *deferred; /* its slow half, while suspended or until it is answered */
    bool conditional;          /* its route answers conditional requests */
    char *if_match;            /* its If-Match fields, joined; NULL when none came */
    char *if_none_match;       /* its If-None-Match fields, likewise */
    char etag[API_ETAG_MAX];   /* the ETag its 200 or 304 answer carries, or "" */
    char *allocs[MAX_QUERY_ALLOCS];
    size_t n_allocs;
};

static size_t
unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* The headers every answer carries: no sniffing, no framing, no referrer, HSTS under TLS. */
static void
add_security_headers(const struct http_server *srv, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Content-Security-Policy", CSP);
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    if (srv->cfg.tls_cert_pem)
        MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
}

/* query() for handlers: decodes the raw value ('+' is a space), kept until the request ends. */
static const char *
query_get(const struct api_request *areq, const char *key)
{
    struct req *rq = areq->transport;
    const char *raw = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
    char *plus, *decoded;

    if (!raw)
        return NULL;
    if (rq->n_allocs >= MAX_QUERY_ALLOCS)
        return NULL;
    plus = strdup(raw);
    if (!plus)
        return NULL;
    for (char *p = plus; *p; p++)
        if (*p == '+')
            *p = ' ';
    if (text_url_decode(plus, strlen(plus), &decoded) < 0) {
        free(plus);
        return NULL;
    }
    free(plus);
    rq->allocs[rq->n_allocs++] = decoded;
    return decoded;
}

static bool is_write(const char *method);
static void client_address(const struct http_server *srv, struct MHD_Connection *conn, char *buf,
                           size_t size);

/*
 * Writes the audit record of a state-changing request, once: before its answer is
 * queued, so a client that has the answer finds the record, or at the request's end
 * when no answer went out.
 */
static void
audit_once(struct req *rq)
{
    char remote[INET6_ADDRSTRLEN + 8];

    if (rq->audited || !is_write(rq->method))
        return;
    rq->audited = true;
    client_address(rq->srv, rq->conn, remote, sizeof(remote));
    api_audit_record(rq->actor, remote, rq->method, rq->path ? rq->path : "", rq->status,
                     rq->location);
}

/*
 * Settles the request's claimed Idempotency-Key with its answer (borrowed):
 * kept when api_idem_keeps(status) says so, else released.
 */
static void
idem_settle(struct req *rq, int status, const char *body, size_t len, const char *type,
            const char *location)
{
    if (!rq->idem_key)
        return;
    api_idem_finish(rq->idem_scope, rq->idem_key, status, type, location, body, len);
    free(rq->idem_key);
    rq->idem_key = NULL;
}

/* Releases the request's claimed Idempotency-Key: its answer is not kept. */
static void
idem_release(struct req *rq)
{
    if (!rq->idem_key)
        return;
    api_idem_release(rq->idem_scope, rq->idem_key);
    free(rq->idem_key);
    rq->idem_key = NULL;
}

static enum MHD_Result
queue(struct req *rq, int status, char *body, size_t len, const char *type, const char *location,
      const char *allow, bool auth_challenge)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body ? body : (void *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;

    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (location && location[0]) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
        free(rq->location);
        rq->location = strdup(location);
    }
    if (allow && allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (rq->content_range[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, rq->content_range);
    if (auth_challenge)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"virtvault\"");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    add_security_headers(rq->srv, resp);
    if (rq->close_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (rq->replayed)
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
    if (rq->retry_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    if (rq->etag[0] && (status == 200 || status == 304))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, rq->etag);
    rq->status = status;
    /* Kept before it leaves: a client that has the answer gets it again on a retry. */
    idem_settle(rq, status, body, len, type, location);
    audit_once(rq);
    ret = MHD_queue_response(rq->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result
queue_json(struct req *rq, int status, json_t *json, const char *type, const char *location,
           const char *allow, bool auth_challenge)
{
    char *text = api_json_text(json);

    if (!text)
        return queue(rq, 500, NULL, 0, NULL, NULL, NULL, false);
    return queue(rq, status, text, strlen(text), type, location, allow, auth_challenge);
}

/* Answers a problem of the given kind; detail NULL uses the thread's err_detail(). */
static enum MHD_Result
queue_problem(struct req *rq, const struct problem_kind *kind, const char *detail, const char *path,
              const char *allow)
{
    json_t *p = detail ? problem_new(kind, detail, path) : problem_from_err(kind, path);

    rq->retry_after = kind->status == 503 && strcmp(kind->code, "temporarily_unavailable") == 0;

    return queue_json(rq, kind->status, p, "application/problem+json", NULL, allow,
                      kind->status == 401);
}

static enum MHD_Result
queue_problem_code(struct req *rq, const char *code, const char *detail, const char *path,
                   const char *allow)
{
    return queue_problem(rq, problem_for_code(code), detail, path, allow);
}

static const char *
content_type_for(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"},
    };
    const char *dot = strrchr(path, '.');

    for (size_t i = 0; dot && i < ARRAY_SIZE(types); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/*
 * Serves a file of the web UI. Returns MHD_YES/NO when it answered, or -1
 * when there is no such file (the caller answers 404).
 */
static int
serve_static(struct req *rq, const char *path)
{
    _cleanup_free_ char *decoded = NULL;
    char full[4096];
    struct stat st;
    int fd;

    if (!rq->srv->cfg.web_dir)
        return -1;
    if (text_url_decode(path, strlen(path), &decoded) < 0)
        return -1;
    /* No way out of the web folder: no "..", no hidden files, no backslashes. */
    if (strstr(decoded, "/.") || strchr(decoded, '\\'))
        return -1;
    if (strcmp(decoded, "/") == 0)
        snprintf(full, sizeof(full), "%s/index.html", rq->srv->cfg.web_dir);
    else if ((size_t)snprintf(full, sizeof(full), "%s%s", rq->srv->cfg.web_dir, decoded) >=
             sizeof(full))
        return -1;
    fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type_for(full));
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    add_security_headers(rq->srv, resp);
    rq->status = 200;
    rq->route = "static";
    enum MHD_Result ret = MHD_queue_response(rq->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Answers with an event stream of the hub (events.h); 429 over its caps, 503 while stopping. */
static enum MHD_Result
queue_event_stream(struct req *rq, const char *path)
{
    struct MHD_Response *resp = NULL;
    enum MHD_Result ret;
    char detail[120];
    int r = events_stream_new(rq->conn, rq->who, &resp);

    if (r == -EUSERS || r == -EMFILE) {
        snprintf(detail, sizeof(detail), "%d event streams are open%s; close one first",
                 r == -EUSERS ? EVENTS_MAX_STREAMS : EVENTS_MAX_PER_WHO,
                 r == -EUSERS ? "" : " with this token");
        return queue_problem_code(rq, "too_many_requests", detail, path, NULL);
    }
    if (r < 0)
        return queue_problem_code(rq, "not_ready", "the service is shutting down", path, NULL);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    add_security_headers(rq->srv, resp);
    rq->status = 200;
    idem_release(rq); /* a stream is not kept */
    ret = MHD_queue_response(rq->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Answers a streamed body (disk data), honouring Range; takes stream. */
static enum MHD_Result
queue_stream(struct req *rq, struct api_stream *stream, const char *path)
{
    const char *range =
        MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    struct MHD_Response *resp = NULL;
    int status = 0;
    int r = stream_response_new(stream, range, &resp, &status);

    if (r < 0) {
        char detail[160];
        uint64_t size = stream->size;

        stream_free(stream);
        if (r == -ERANGE) {
            snprintf(detail, sizeof(detail), "no requested range lies within the %llu bytes",
                     (unsigned long long)size);
            /* RFC 9110, 14.4: a 416 names the current length. */
            snprintf(rq->content_range, sizeof(rq->content_range), "bytes */%llu",
                     (unsigned long long)size);
            return queue_problem_code(rq, "range_not_satisfiable", detail, path, NULL);
        }
        if (r == -EINVAL || r == -E2BIG)
            return queue_problem_code(rq, "invalid_request",
                                      r == -E2BIG ? "at most 16 ranges per request"
                                                  : "the Range header is not a valid bytes range",
                                      path, NULL);
        return queue(rq, 500, NULL, 0, NULL, NULL, NULL, false);
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    add_security_headers(rq->srv, resp);
    rq->status = status;
    idem_release(rq); /* a streamed answer is not kept */
    audit_once(rq);
    enum MHD_Result ret = MHD_queue_response(rq->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Refuses the request before its body: the answer goes out once the body is in or dropped. */
__attribute__((format(printf, 4, 5))) static void
refuse(struct req *rq, const char *code, const char *allow, const char *fmt, ...)
{
    va_list ap;

    rq->refusal = code;
    va_start(ap, fmt);
    vsnprintf(rq->refusal_detail, sizeof(rq->refusal_detail), fmt, ap);
    va_end(ap);
    snprintf(rq->refusal_allow, sizeof(rq->refusal_allow), "%s", allow ? allow : "");
}

/*
 * Checks the bearer token against the route's role; refuses with 401/403.
 * Any valid token makes the request trusted, on public routes too.
 */
static void
authorize(struct req *rq, const struct route *route)
{
    const struct auth *a = rq->srv->cfg.auth;
    const struct auth_token *tok = NULL;
    const char *header;
    enum auth_result res;

    if (rq->peer_admin) {
        snprintf(rq->who, sizeof(rq->who), "uid:%u", (unsigned)rq->peer_uid);
        snprintf(rq->actor, sizeof(rq->actor), "uid:%u", (unsigned)rq->peer_uid);
    }
    if (!a || rq->peer_admin) {
        rq->trusted = true;
        return;
    }
    header = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    res = auth_check(a, header, time(NULL), &tok);
    rq->trusted = res == AUTH_OK;
    if (tok)
        snprintf(rq->who, sizeof(rq->who), "%s", tok->hash);
    if (tok && res == AUTH_OK)
        snprintf(rq->actor, sizeof(rq->actor), "%s", tok->name);
    if (route->role == ROLE_PUBLIC)
        return;
    switch (res) {
    case AUTH_OK:
        break;
    case AUTH_MISSING:
        refuse(rq, "unauthorized", NULL, "send 'Authorization: Bearer <token>'");
        return;
    case AUTH_INVALID:
        refuse(rq, "unauthorized", NULL, "the token is not valid");
        return;
    case AUTH_EXPIRED:
        refuse(rq, "unauthorized", NULL, "the token has expired");
        return;
    }
    if (tok->role < route->role)
        refuse(rq, "forbidden", NULL, "this needs the role '%s'; the token has '%s'",
               role_name(route->role), role_name(tok->role));
}

/* Copies the host part of a Host header value ("h", "h:port", "[v6]:port") into buf. */
static bool
host_name(const char *value, char *buf, size_t size)
{
    const char *end;

    if (value[0] == '[') {
        value++;
        end = strchr(value, ']');
        if (!end || (end[1] != '\0' && end[1] != ':'))
            return false;
    } else {
        end = strchr(value, ':');
        if (!end)
            end = value + strlen(value);
        else if (strchr(end + 1, ':'))
            return false;
    }
    if (end == value || (size_t)(end - value) >= size)
        return false;
    memcpy(buf, value, (size_t)(end - value));
    buf[end - value] = '\0';
    return true;
}

static bool
is_ip_literal(const char *name, bool *ret_loopback)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (inet_pton(AF_INET, name, &a4) == 1) {
        *ret_loopback = (ntohl(a4.s_addr) >> 24) == 127;
        return true;
    }
    if (inet_pton(AF_INET6, name, &a6) == 1) {
        *ret_loopback = IN6_IS_ADDR_LOOPBACK(&a6);
        return true;
    }
    return false;
}

/* Whether name is one of the ','-separated names of list, ignoring case. */
static bool
in_list(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        size_t len = strcspn(p, ",");
        if (len == n && strncasecmp(p, name, n) == 0)
            return true;
    }
    return false;
}

/*
 * Whether the Host header names this service: the --listen host, a name of
 * --allowed-hosts, "localhost" or a loopback address when listening on
 * loopback, and "localhost" or any address literal when listening on all
 * addresses. A
 * name that some DNS maps to us (rebinding) passes only when allowed.
 */
enum host_check {
    HOST_OURS,
    HOST_MALFORMED, /* not a host[:port] at all: 400 */
    HOST_FOREIGN,   /* a name that is not ours: 421 Misdirected Request */
};

static enum host_check
host_allowed(const struct http_server *srv, const char *value)
{
    char name[256];
    bool loopback = false, ours;

    if (!value || srv->unix_fd >= 0)
        return HOST_OURS; /* HTTP/1.0, or a socket file no web page can reach */
    if (!host_name(value, name, sizeof(name)))
        return HOST_MALFORMED;
    if (strcasecmp(name, srv->listen_host) == 0 || in_list(srv->cfg.allowed_hosts, name))
        return HOST_OURS;
    if (is_ip_literal(name, &loopback))
        ours = srv->listen_wildcard || (srv->listen_loopback && loopback);
    else
        ours = (srv->listen_loopback || srv->listen_wildcard) && strcasecmp(name, "localhost") == 0;
    return ours ? HOST_OURS : HOST_FOREIGN;
}

/* Whether an Origin header names this service itself: its scheme and the Host asked for. */
static bool
origin_allowed(const struct http_server *srv, const char *origin, const char *host)
{
    const char *scheme = srv->cfg.tls_cert_pem ? "https://" : "http://";
    size_t sl = strlen(scheme);

    if (!origin)
        return true;
    return host && strncasecmp(origin, scheme, sl) == 0 && strcasecmp(origin + sl, host) == 0;
}

/* Whether the request announces a body: a non-zero Content-Length or a transfer coding. */
static bool
body_announced(struct MHD_Connection *conn, unsigned long long *ret_length)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);

    *ret_length = 0;
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        *ret_length = errno || *end ? ULLONG_MAX : n;
    }
    return *ret_length > 0 || te != NULL;
}

static bool
is_json_type(const char *type)
{
    return type && strncasecmp(type, "application/json", 16) == 0 &&
           (type[16] == '\0' || type[16] == ';' || type[16] == ' ');
}

/* Whether gid is uid's primary or one of its supplementary groups. */
static bool
user_in_group(uid_t uid, gid_t primary, gid_t gid)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    gid_t groups[256];
    int n = (int)ARRAY_SIZE(groups);

    if (primary == gid)
        return true;
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) != 0 || !found)
        return false;
    if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0)
        return false;
    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return true;
    return false;
}

/* On the Unix socket, as libvirt's own: root and the socket's group are admin. */
static bool
peer_is_admin(const struct http_server *srv, struct MHD_Connection *conn, uid_t *ret_uid)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (srv->unix_fd < 0 || !ci ||
        getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return false;
    *ret_uid = cred.uid;
    return cred.uid == 0 || user_in_group(cred.uid, cred.gid, srv->unix_gid);
}

/*
 * Everything that can be decided from the request line and the headers, on
 * the first call, before a byte of the body is taken: Host, Origin, route,
 * token and role, Content-Type, announced size. Sets rq->refusal when the
 * request is refused.
 */
static void
precheck(struct req *rq, const char *url, const char *method)
{
    struct http_server *srv = rq->srv;
    const char *route_method = strcmp(method, "HEAD") == 0 ? "GET" : method;
    const char *host = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    const char *origin = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Origin");
    bool writes = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                  strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0;
    unsigned long long length;
    bool has_body = body_announced(rq->conn, &length);
    struct router_match m;

    rq->peer_admin = peer_is_admin(srv, rq->conn, &rq->peer_uid);
    switch (host_allowed(srv, host)) {
    case HOST_OURS:
        break;
    case HOST_MALFORMED:
        refuse(rq, "invalid_request", NULL, "the Host header is not a valid host[:port]");
        return;
    case HOST_FOREIGN:
        refuse(rq, "misdirected_request", NULL,
               "the Host header names no address this service answers to (see --allowed-hosts)");
        return;
    }
    if (!origin_allowed(srv, origin, host)) {
        refuse(rq, "forbidden", NULL,
               "requests from another origin are refused: the Origin header is not this "
               "service's own");
        return;
    }
    if (strlen(url) > MAX_URL_LEN) {
        refuse(rq, "uri_too_long", NULL, "the path is longer than %d bytes", MAX_URL_LEN);
        return;
    }
    if (length > srv->cfg.max_body) {
        refuse(rq, "payload_too_large", NULL, "the body is larger than %zu bytes",
               srv->cfg.max_body);
        return;
    }
    switch (router_find(router_table, router_table_len, route_method, url, &m)) {
    case ROUTER_MATCH:
        authorize(rq, m.route);
        router_match_clear(&m);
        break;
    case ROUTER_BAD_METHOD:
        refuse(rq, "method_not_allowed", m.allow, "%s is not allowed here; allowed: %s", method,
               m.allow);
        router_match_clear(&m);
        return;
    case ROUTER_BAD_ENCODING:
        refuse(rq, "invalid_request", NULL, "the path has a malformed %%-escape");
        return;
    case ROUTER_NOT_FOUND:
        if (strcmp(route_method, "GET") == 0 && !text_startswith(url, "/v1/"))
            return; /* a file of the web UI, perhaps */
        refuse(rq, "not_found", NULL, "no resource at this path");
        return;
    }
    if (rq->refusal)
        return;
    /* A form or a plain fetch() of another site cannot send JSON without asking first. */
    if (writes && (has_body || strcmp(method, "DELETE") != 0) &&
        !is_json_type(
            MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        if (strcmp(method, "DELETE") == 0)
            refuse(rq, "unsupported_media_type", NULL,
                   "send the body as Content-Type: application/json");
        else
            refuse(rq, "unsupported_media_type", NULL,
                   "send Content-Type: application/json with every %s, an empty body too", method);
        return;
    }
}

static enum MHD_Result
answer_refusal(struct req *rq, const char *url)
{
    return queue_problem_code(rq, rq->refusal, rq->refusal_detail, url,
                              rq->refusal_allow[0] ? rq->refusal_allow : NULL);
}

/*
 * Finds a string holding a NUL in v, which is at JSON pointer `at`; writes
 * the string's pointer ("/disks/2/file") into where (size TEXT_POINTER_MAX).
 * Returns true when there is one. Depth is bounded by the parser.
 */
static bool
find_nul(json_t *v, const char *at, char *where)
{
    char sub[TEXT_POINTER_MAX];
    const char *key;
    json_t *item;
    size_t i;

    if (json_is_string(v)) {
        snprintf(where, TEXT_POINTER_MAX, "%s", at);
        return strlen(json_string_value(v)) != json_string_length(v);
    }
    if (json_is_object(v)) {
        json_object_foreach(v, key, item)
        {
            text_pointer_join(sub, sizeof(sub), at, key, 0);
            if (find_nul(item, sub, where))
                return true;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            text_pointer_join(sub, sizeof(sub), at, NULL, i);
            if (find_nul(item, sub, where))
                return true;
        }
    }
    return false;
}

/* Parses the buffered body as JSON (NULL when empty); answers 415/400 itself. */
static int
parse_body(struct req *rq, const char *path, json_t **ret, enum MHD_Result *answered)
{
    const char *type;
    json_error_t jerr;
    json_t *j;

    *ret = NULL;
    if (rq->len == 0)
        return 0;
    type = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!is_json_type(type)) {
        *answered =
            queue_problem_code(rq, "unsupported_media_type",
                               "send the body as Content-Type: application/json", path, NULL);
        return -1;
    }
    j = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!j) {
        err_set_pointer(-EINVAL, "", "is not valid JSON: %s (line %d, column %d)", jerr.text,
                        jerr.line, jerr.column);
        *answered = queue_problem(rq, problem_for_errno(-EINVAL), NULL, path, NULL);
        return -1;
    }
    /* A "\u0000" would cut every C string unpacked from the value: refuse it, saying where. */
    char where[TEXT_POINTER_MAX] = "";
    if (find_nul(j, "", where)) {
        json_decref(j);
        err_set_pointer(-EINVAL, where, "must not contain NUL characters");
        *answered = queue_problem(rq, problem_for_errno(-EINVAL), NULL, path, NULL);
        return -1;
    }
    *ret = j;
    return 0;
}

/* Query arguments that do not decode, and the name of the first whose value does not. */
struct bad_args {
    unsigned n;
    char name[64];
};

/* MHD_get_connection_values() iterator: counts query arguments that do not decode. */
static enum MHD_Result
count_bad_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct bad_args *bad = cls;
    char *decoded = NULL;
    (void)kind;

    if (text_url_decode(key, strlen(key), &decoded) < 0) {
        bad->n++;
    } else if (value) {
        char *v = NULL;
        if (text_url_decode(value, strlen(value), &v) < 0 && bad->n++ == 0)
            snprintf(bad->name, sizeof(bad->name), "%s", decoded);
        free(v);
    }
    free(decoded);
    return MHD_YES;
}

static enum MHD_Result answer(struct req *rq, const char *url, const char *method, int r,
                              struct api_response *resp_in);

/* Frees what an unsent answer holds. */
static void
response_clear(struct api_response *resp)
{
    json_decref(resp->json);
    free(resp->text);
    if (resp->stream)
        stream_free(resp->stream);
    if (resp->work.free)
        resp->work.free(resp->work.ctx);
    memset(resp, 0, sizeof(*resp));
}

/* Drops one reference to d; the last one frees it. srv->defer_lock is held. */
static void
deferred_unref_locked(struct deferred *d)
{
    if (--d->refs > 0)
        return;
    response_clear(&d->resp);
    if (d->work.free)
        d->work.free(d->work.ctx);
    free(d);
}

static void
deferred_unlink_locked(struct deferred *d)
{
    struct http_server *srv = d->srv;

    if (d->prev)
        d->prev->next = d->next;
    else if (srv->deferred == d)
        srv->deferred = d->next;
    if (d->next)
        d->next->prev = d->prev;
    d->prev = d->next = NULL;
}

/*
 * Decides d's answer and resumes its connection, unless it was decided
 * already (then resp is dropped). resp is taken in every case.
 */
static void
deferred_settle(struct deferred *d, int r, const struct err_state *err, struct api_response *resp)
{
    struct http_server *srv = d->srv;
    bool resume = false;

    pthread_mutex_lock(&srv->defer_lock);
    if (!d->resumed) {
        d->resumed = true;
        d->r = r;
        if (err)
            d->err = *err;
        else
            d->err.have = false;
        if (resp) {
            d->resp = *resp;
            memset(resp, 0, sizeof(*resp));
        }
        deferred_unlink_locked(d);
        srv->resuming++;
        resume = true;
    }
    pthread_mutex_unlock(&srv->defer_lock);
    if (resp)
        response_clear(resp);
    if (!resume)
        return;
    /* Outside the lock: a suspended connection stays until resumed, and the stop waits for us. */
    MHD_resume_connection(d->conn);
    pthread_mutex_lock(&srv->defer_lock);
    srv->resuming--;
    pthread_mutex_unlock(&srv->defer_lock);
}

/* deferred_settle() with an error of this detail and no answer. */
static void
deferred_settle_text(struct deferred *d, int r, const char *detail)
{
    struct err_state err = {.have = true, .kind = ERR_FIELD_NONE};

    snprintf(err.detail, sizeof(err.detail), "%s", detail);
    deferred_settle(d, r, &err, NULL);
}

/* The pool's run(): the slow half, on a worker. */
static void
deferred_run(struct defer_task *t)
{
    struct deferred *d = (struct deferred *)t;
    struct http_server *srv = d->srv;
    struct api_response resp = {0};
    int r;

    err_clear();
    struct err_state err;

    r = d->work.run(d->work.ctx, &resp);
    err_save(&err);
    deferred_settle(d, r, r < 0 ? &err : NULL, &resp);
    err_clear();
    pthread_mutex_lock(&srv->defer_lock);
    deferred_unref_locked(d);
    pthread_mutex_unlock(&srv->defer_lock);
}

/* The pool's cancel(): the service stops before the work began. */
static void
deferred_cancel(struct defer_task *t)
{
    struct deferred *d = (struct deferred *)t;
    struct http_server *srv = d->srv;

    deferred_settle_text(d, -ESHUTDOWN, "the service is shutting down; the request did not run");
    pthread_mutex_lock(&srv->defer_lock);
    deferred_unref_locked(d);
    pthread_mutex_unlock(&srv->defer_lock);
}

/*
 * Suspends the request and hands its slow half (resp->work) to the pool;
 * the answer is queued when the connection is resumed (deferred_answer).
 */
static enum MHD_Result
defer_start(struct req *rq, const char *url, struct api_response *resp)
{
    struct http_server *srv = rq->srv;
    struct deferred *d = calloc(1, sizeof(*d));
    int r;

    if (!d) {
        response_clear(resp);
        return answer(rq, url, rq->method, -ENOMEM, resp);
    }
    d->task.run = deferred_run;
    d->task.cancel = deferred_cancel;
    d->srv = srv;
    d->conn = rq->conn;
    d->work = resp->work;
    memset(&resp->work, 0, sizeof(resp->work));
    response_clear(resp);
    d->refs = 2; /* the request's and the pool's */
    pthread_mutex_lock(&srv->defer_lock);
    d->next = srv->deferred;
    if (d->next)
        d->next->prev = d;
    srv->deferred = d;
    rq->deferred = d;
    pthread_mutex_unlock(&srv->defer_lock);
    /* Suspended before the work can end: its resume must find the connection suspended. */
    MHD_suspend_connection(rq->conn);
    r = defer_pool_submit(srv->pool, &d->task);
    if (r < 0) {
        char detail[160];
        if (r == -EAGAIN)
            snprintf(detail, sizeof(detail),
                     "%d slow requests wait for a worker already; try again later", DEFER_QUEUE);
        else
            snprintf(detail, sizeof(detail), "the service is shutting down");
        deferred_settle_text(d, r == -EAGAIN ? -EAGAIN : -ESHUTDOWN, detail);
        pthread_mutex_lock(&srv->defer_lock);
        deferred_unref_locked(d); /* the pool's: it never took d */
        pthread_mutex_unlock(&srv->defer_lock);
    }
    return MHD_YES;
}

/* A waiting request's job ended: on the thread that ended it, the jobs lock held. */
static void
wait_job_ended(void *opaque)
{
    deferred_settle(opaque, 0, NULL, NULL);
}

/* A waiting request's time is up: on the timer thread, its lock held. */
static void
wait_timer_fired(struct timer_entry *e)
{
    struct deferred *d = (struct deferred *)((char *)e - offsetof(struct deferred, timer));

    deferred_settle(d, 0, NULL, NULL);
}

/*
 * Forgets a waiting request's job-end waiter and timer; once done, neither
 * fires. On the request's HTTP thread, without srv->defer_lock (the
 * callbacks take it under the jobs' and the timers' locks).
 */
static void
wait_forget(struct deferred *d)
{
    api_job_waiter_free(TAKE_PTR(d->job_waiter));
    timers_disarm(d->srv->timers, &d->timer);
}

/*
 * Suspends a request that waits for a job's end (resp->wait), holding no
 * thread, until the job ends or its time passes; deferred_answer() then
 * renders the answer with resp->work. resp is taken.
 */
static enum MHD_Result
wait_start(struct req *rq, const char *url, const char *method, struct api_response *resp)
{
    struct http_server *srv = rq->srv;
    struct deferred *d = calloc(1, sizeof(*d));
    char job_id[sizeof(resp->wait.job_id)];
    unsigned seconds = resp->wait.seconds;
    bool stopping;
    int r;

    if (!d) {
        /* No memory to wait: answer as the job stands now. */
        struct api_work work = resp->work;
        memset(&resp->work, 0, sizeof(resp->work));
        response_clear(resp);
        err_clear();
        r = work.run(work.ctx, resp);
        work.free(work.ctx);
        return answer(rq, url, method, r, resp);
    }
    snprintf(job_id, sizeof(job_id), "%s", resp->wait.job_id);
    d->srv = srv;
    d->conn = rq->conn;
    d->work = resp->work;
    d->waits = true;
    d->refs = 1; /* the request's only: the waiter and the timer are forgotten before it drops */
    d->timer.fire = wait_timer_fired;
    memset(&resp->work, 0, sizeof(resp->work));
    response_clear(resp);
    /* Suspended before anything can settle it: its resume must find the connection suspended. */
    MHD_suspend_connection(rq->conn);
    pthread_mutex_lock(&srv->defer_lock);
    d->next = srv->deferred;
    if (d->next)
        d->next->prev = d;
    srv->deferred = d;
    rq->deferred = d;
    stopping = srv->stopping;
    pthread_mutex_unlock(&srv->defer_lock);
    timers_arm(srv->timers, &d->timer, (uint64_t)seconds * 1000);
    /* Registered before its state is read (core_job_wait does both at once): no end is missed. */
    r = api_job_waiter_new(job_id, wait_job_ended, d, &d->job_waiter);
    if (r != 0 || stopping)
        deferred_settle(d, 0, NULL, NULL); /* ended already, no memory to wait, or stopping */
    return MHD_YES;
}

/* The connection was resumed: queues the answer its slow half (or the stop) decided. */
static enum MHD_Result
deferred_answer(struct req *rq, const char *url, const char *method)
{
    struct http_server *srv = rq->srv;
    struct deferred *d = rq->deferred;
    struct api_response resp = {0};
    struct api_work work = {0};
    struct err_state err;
    int r;

    pthread_mutex_lock(&srv->defer_lock);
    if (!d->resumed) {
        pthread_mutex_unlock(&srv->defer_lock);
        return MHD_YES; /* not decided yet */
    }
    pthread_mutex_unlock(&srv->defer_lock);
    if (d->waits)
        wait_forget(d);
    pthread_mutex_lock(&srv->defer_lock);
    r = d->r;
    resp = d->resp;
    memset(&d->resp, 0, sizeof(d->resp));
    if (d->waits) {
        work = d->work; /* the answer's rendering, done here */
        memset(&d->work, 0, sizeof(d->work));
    }
    err = d->err;
    rq->deferred = NULL;
    deferred_unref_locked(d);
    pthread_mutex_unlock(&srv->defer_lock);
    err_clear();
    if (work.run && r == 0)
        r = work.run(work.ctx, &resp);
    if (work.free)
        work.free(work.ctx);
    if (r == -ESHUTDOWN) {
        response_clear(&resp);
        return queue_problem_code(rq, "not_ready", err.have ? err.detail : NULL, url, NULL);
    }
    if (r < 0 && err.have)
        err_restore(&err);
    /* A slow half that started a job (a snapshot with memory) may wait for it in turn. */
    if (r == 0 && resp.wait.job_id[0] && resp.work.run)
        return wait_start(rq, url, method, &resp);
    return answer(rq, url, method, r, &resp);
}

/* MHD_get_connection_values() iterator: counts the Idempotency-Key headers. */
static enum MHD_Result
count_idem_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    unsigned *n = cls;
    (void)kind;
    (void)value;

    if (strcasecmp(key, IDEM_HEADER) == 0)
        (*n)++;
    return MHD_YES;
}

/*
 * A POST's Idempotency-Key, before its handler runs: the key's scope is the
 * caller (the token, by a digest of its hash; "uid:N" of a Unix-socket
 * peer; "" without authentication). Claims the key, then returns false
 * (the request runs and its answer settles the key), or answers the request
 * itself and returns true: the kept answer again, 409 while the first
 * request with the key is being answered, 422 when the key came with
 * another request, 400 for a bad key.
 */
static bool
idem_begin(struct req *rq, const char *url, enum MHD_Result *answered)
{
    const char *key = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, IDEM_HEADER);
    struct conf_idem_answer kept = {0};
    enum conf_idem_claim claim;
    unsigned n = 0;
    int r;

    if (!key)
        return false;
    MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, count_idem_header, &n);
    if (n > 1) {
        *answered = queue_problem_code(rq, "invalid_request",
                                       "send one Idempotency-Key header, not several", url, NULL);
        return true;
    }
    if (strncmp(rq->who, "uid:", 4) == 0 || !rq->who[0]) {
        snprintf(rq->idem_scope, sizeof(rq->idem_scope), "%s", rq->who);
    } else {
        char digest[HASH_SHA256_HEX_LEN + 1];
        hash_sha256_hex(rq->who, strlen(rq->who), digest);
        snprintf(rq->idem_scope, sizeof(rq->idem_scope), "token:%.32s", digest);
    }
    err_clear();
    r = api_idem_begin(rq->idem_scope, key, rq->method, url, rq->body, rq->len, &claim, &kept);
    if (r < 0) {
        *answered = queue_problem(rq, problem_for_errno(r), NULL, url, NULL);
        return true;
    }
    switch (claim) {
    case CONF_IDEM_NEW:
        rq->idem_key = strdup(key);
        if (!rq->idem_key) {
            api_idem_release(rq->idem_scope, key);
            *answered = queue(rq, 500, NULL, 0, NULL, NULL, NULL, false);
            return true;
        }
        return false;
    case CONF_IDEM_DONE:
        rq->replayed = true;
        *answered = queue(rq, kept.status, TAKE_PTR(kept.body), kept.body_len, kept.content_type,
                          kept.location, NULL, false);
        conf_idem_answer_clear(&kept);
        return true;
    case CONF_IDEM_IN_USE:
        *answered = queue_problem_code(
            rq, "idempotency_key_in_use",
            "the first request with this Idempotency-Key is still being answered; send it again "
            "once that one is answered",
            url, NULL);
        return true;
    case CONF_IDEM_REUSED:
        *answered = queue_problem_code(
            rq, "idempotency_key_reused",
            "this Idempotency-Key came with another request (method, path or body) in the last "
            "24 hours; a new request needs a new key",
            url, NULL);
        return true;
    }
    return false;
}

/* MHD_get_connection_values() iterator: joins the fields of one header with ", ". */
struct joined {
    const char *name;
    char *value; /* malloc'd, or NULL */
    bool failed;
};

static enum MHD_Result
join_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct joined *j = cls;
    char *v;
    (void)kind;

    if (strcasecmp(key, j->name) != 0 || j->failed)
        return MHD_YES;
    if (asprintf(&v, "%s%s%s", j->value ? j->value : "", j->value ? ", " : "", value) < 0) {
        j->failed = true;
        return MHD_YES;
    }
    free(j->value);
    j->value = v;
    return MHD_YES;
}

/* Reads the request's If-Match and If-None-Match fields. Returns 0 or -ENOMEM. */
static int
read_preconditions(struct req *rq)
{
    struct joined im = {.name = MHD_HTTP_HEADER_IF_MATCH};
    struct joined inm = {.name = MHD_HTTP_HEADER_IF_NONE_MATCH};

    MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, join_header, &im);
    MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, join_header, &inm);
    rq->if_match = im.value;
    rq->if_none_match = inm.value;
    return im.failed || inm.failed ? -ENOMEM : 0;
}

/*
 * A conditional GET's 200 answer: tags it with its ETag (rq->etag) and
 * evaluates If-Match and If-None-Match against it. Returns true when that
 * decides the answer instead (304, 412, or 400 for a malformed field),
 * queued into *answered; resp is then dropped.
 */
static bool
answer_conditional_get(struct req *rq, const char *url, struct api_response *resp,
                       enum MHD_Result *answered)
{
    enum api_cond_result res;
    int r;

    if (api_etag(resp, rq->etag) < 0) {
        rq->etag[0] = '\0';
        return false;
    }
    err_clear();
    r = api_cond_evaluate(rq->if_match, rq->if_none_match, rq->etag, true, &res);
    if (r == 0 && res == API_COND_PASS)
        return false;
    json_decref(resp->json);
    free(resp->text);
    memset(resp, 0, sizeof(*resp));
    if (r < 0) {
        *answered = queue_problem(rq, problem_for_errno(r), NULL, url, NULL);
    } else if (res == API_COND_NOT_MODIFIED) {
        *answered = queue(rq, 304, NULL, 0, NULL, NULL, NULL, false);
    } else {
        err_set(-ESTALE, "the current ETag of %s is %s, which If-Match does not name", url,
                rq->etag);
        *answered = queue_problem(rq, problem_for_errno(-ESTALE), NULL, url, NULL);
    }
    return true;
}

static enum MHD_Result
dispatch(struct req *rq, const char *url, const char *method)
{
    const char *route_method = strcmp(method, "HEAD") == 0 ? "GET" : method;
    struct router_match m;
    struct api_response resp = {0};
    enum MHD_Result answered = MHD_NO;
    json_t *body = NULL;
    int r;

    err_clear();
    if (rq->refusal)
        return answer_refusal(rq, url);

    switch (router_find(router_table, router_table_len, route_method, url, &m)) {
    case ROUTER_MATCH:
        break;
    case ROUTER_BAD_METHOD: {
        char detail[200];
        snprintf(detail, sizeof(detail), "%s is not allowed here; allowed: %s", method, m.allow);
        enum MHD_Result ret = queue_problem_code(rq, "method_not_allowed", detail, url, m.allow);
        router_match_clear(&m);
        return ret;
    }
    case ROUTER_BAD_ENCODING:
        return queue_problem_code(rq, "invalid_request", "the path has a malformed %-escape", url,
                                  NULL);
    case ROUTER_NOT_FOUND:
        if (strcmp(route_method, "GET") == 0 && !text_startswith(url, "/v1/")) {
            int s = serve_static(rq, url);
            if (s >= 0)
                return (enum MHD_Result)s;
        }
        return queue_problem_code(rq, "not_found", "no resource at this path", url, NULL);
    }
    rq->route = m.route->path;
    rq->conditional = m.route->conditional;
    if (rq->conditional && read_preconditions(rq) < 0) {
        router_match_clear(&m);
        return queue(rq, 500, NULL, 0, NULL, NULL, NULL, false);
    }

    /* A query value that does not decode would look absent to the handler: refuse it. */
    struct bad_args bad_args = {0};
    MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, count_bad_arg, &bad_args);
    if (bad_args.n) {
        router_match_clear(&m);
        if (bad_args.name[0])
            err_set_parameter(-EINVAL, bad_args.name, "has a malformed %%-escape or a NUL");
        else
            err_set(-EINVAL, "the query has a malformed %%-escape or a NUL");
        return queue_problem(rq, problem_for_errno(-EINVAL), NULL, url, NULL);
    }
    if (strcmp(route_method, "POST") == 0 && idem_begin(rq, url, &answered)) {
        router_match_clear(&m);
        return answered;
    }
    if (parse_body(rq, url, &body, &answered) < 0) {
        router_match_clear(&m);
        return answered;
    }

    struct api_request areq = {
        .method = route_method,
        .path = url,
        .n_params = m.n_params,
        .body = body,
        .query = query_get,
        .transport = rq,
        .trusted = rq->trusted,
    };
    for (size_t i = 0; i < m.n_params; i++)
        areq.params[i] = m.params[i];

    /* A conditional write checks its preconditions against the GET of its path first. */
    struct api_cond cond = {.if_match = rq->if_match, .if_none_match = rq->if_none_match};
    const struct route *get = NULL;
    if (rq->conditional && strcmp(route_method, "GET") != 0 &&
        (cond.if_match || cond.if_none_match))
        get = router_get_sibling(router_table, router_table_len, m.route);
    if (get) {
        cond.get = get->handler;
        areq.cond = &cond;
        r = api_cond_call(&areq, &resp, m.route->handler);
    } else {
        r = m.route->handler(&areq, &resp);
    }
    json_decref(body);
    router_match_clear(&m);
    if (r == 0 && resp.wait.job_id[0] && resp.work.run)
        return wait_start(rq, url, method, &resp);
    if (r == 0 && resp.work.run)
        return defer_start(rq, url, &resp);
    return answer(rq, url, method, r, &resp);
}

/* Answers what a handler (or its deferred half) gave: r < 0 with the thread's detail, or resp. */
static enum MHD_Result
answer(struct req *rq, const char *url, const char *method, int r, struct api_response *resp_in)
{
    struct api_response resp = *resp_in;

    memset(resp_in, 0, sizeof(*resp_in));
    if (resp.work.free)
        resp.work.free(resp.work.ctx); /* a deferred half that deferred again: not allowed */
    if (r == 0 && resp.work.run) {
        r = err_set(-EIO, "a deferred handler deferred again");
        resp.work.run = NULL;
    }
    if (r < 0) {
        const struct problem_kind *k = problem_for_errno(r);
        if (k->status >= 500)
            log_warn("%s %s: %s", method, url, err_detail() ? err_detail() : strerror(-r));
        json_decref(resp.json);
        free(resp.text);
        if (resp.stream)
            stream_free(resp.stream);
        return queue_problem(rq, k, NULL, url, NULL);
    }
    if (rq->conditional && (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0)) {
        enum MHD_Result answered;
        if (answer_conditional_get(rq, url, &resp, &answered))
            return answered;
    }
    if (resp.event_stream)
        return queue_event_stream(rq, url);
    if (resp.stream)
        return queue_stream(rq, resp.stream, url);
    if (resp.json)
        return queue_json(rq, resp.status, resp.json,
                          resp.content_type ? resp.content_type : "application/json", resp.location,
                          NULL, false);
    return queue(rq, resp.status, resp.text, resp.text_len, resp.content_type, resp.location, NULL,
                 false);
}

static struct deadline_watch *
conn_watch(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci ? ci->socket_context : NULL;
}

/* The request is in: headers and body received (or refused early). */
static enum MHD_Result
request_in(struct req *rq, const char *url, const char *method)
{
    deadline_watch_disarm(conn_watch(rq->conn));
    return dispatch(rq, url, method);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct req *rq = *con_cls;
    (void)version;

    if (!rq) {
        const char *expect;
        unsigned long long length;

        rq = calloc(1, sizeof(*rq));
        if (!rq)
            return MHD_NO;
        rq->srv = srv;
        rq->conn = conn;
        rq->start_ns = text_mono_ns();
        snprintf(rq->method, sizeof(rq->method), "%s", method);
        rq->path = strdup(url);
        atomic_fetch_add(&srv->in_flight, 1);
        *con_cls = rq;
        precheck(rq, url, method);
        if (!rq->refusal)
            return MHD_YES;
        /*
         * Refused before the body: answer now when there is none, when the client waits
         * for "100 Continue" (it then sends none), or when it is too large to drop.
         */
        expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        rq->close_after = body_announced(conn, &length);
        if (!rq->close_after || (expect && strcasecmp(expect, "100-continue") == 0) ||
            length > MAX_DISCARD)
            return request_in(rq, url, method);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;

        *upload_data_size = 0;
        if (rq->refusal) {
            rq->discarded += n;
            if (rq->discarded > srv->cfg.max_body)
                refuse(rq, "payload_too_large", NULL, "the body is larger than %zu bytes",
                       srv->cfg.max_body);
            return rq->discarded > MAX_DISCARD ? MHD_NO : MHD_YES;
        }
        if (rq->len + n > srv->cfg.max_body) {
            free(rq->body);
            rq->body = NULL;
            rq->len = rq->cap = 0;
            refuse(rq, "payload_too_large", NULL, "the body is larger than %zu bytes",
                   srv->cfg.max_body);
            rq->discarded = n;
            rq->close_after = true;
            return MHD_YES;
        }
        if (rq->len + n > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 4096;
            while (cap < rq->len + n)
                cap *= 2;
            if (cap > srv->cfg.max_body)
                cap = srv->cfg.max_body;
            char *b = realloc(rq->body, cap);
            if (!b)
                return MHD_NO;
            rq->body = b;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        return MHD_YES;
    }
    if (rq->deferred)
        return deferred_answer(rq, url, method);
    if (rq->status != 0)
        return MHD_YES; /* answered on the first call */
    return request_in(rq, url, method);
}

static bool
is_write(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0;
}

/* The peer's numeric address into buf; "unix" on the Unix socket, "" when unknown. */
static void
client_address(const struct http_server *srv, struct MHD_Connection *conn, char *buf, size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    buf[0] = '\0';
    if (srv->unix_fd >= 0) {
        snprintf(buf, size, "unix");
        return;
    }
    if (!sa)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)size);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)size);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct req *rq = *con_cls;
    (void)toe;

    if (!rq)
        return;
    deadline_watch_arm(conn_watch(conn)); /* waiting for the next request, if any */
    uint64_t ns = text_mono_ns() - rq->start_ns;
    metrics_request_done(rq->method, rq->route, rq->status, ns);
    log_debug("%s %s %d %.3fms", rq->method, rq->route ? rq->route : "-", rq->status,
              (double)ns / 1e6);
    audit_once(rq);
    idem_release(rq); /* ended without an answer: a retry may run it */
    if (rq->deferred) {
        /* Ended while suspended (the daemon stops): the work must not resume it. */
        if (rq->deferred->waits)
            wait_forget(rq->deferred);
        pthread_mutex_lock(&srv->defer_lock);
        if (!rq->deferred->resumed) {
            rq->deferred->resumed = true;
            deferred_unlink_locked(rq->deferred);
        }
        deferred_unref_locked(rq->deferred);
        pthread_mutex_unlock(&srv->defer_lock);
        rq->deferred = NULL;
    }
    free(rq->path);
    free(rq->location);
    free(rq->if_match);
    free(rq->if_none_match);
    for (size_t i = 0; i < rq->n_allocs; i++)
        free(rq->allocs[i]);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

/* Gives each connection a deadline watch, from accept to close. */
static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
              enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? deadline_watch_new(srv->deadlines, ci->connect_fd) : NULL;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        deadline_watch_free(*socket_context);
        *socket_context = NULL;
    }
}

__attribute__((format(printf, 2, 0))) static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_debug("http: %s", msg);
}

/* Resolves "HOST:PORT" ("[v6]:PORT" too) into *ret. */
static int
resolve_listen(const char *listen, struct sockaddr_storage *ret, socklen_t *ret_len,
               bool *ret_loopback)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints = {.ai_flags = AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    size_t hl;
    int rc;

    if (!colon)
        return err_set(-EINVAL, "--listen: '%s' is not HOST:PORT", listen);
    hl = (size_t)(colon - listen);
    if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') {
        listen++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(host))
        return err_set(-EINVAL, "--listen: bad host in '%s'", listen);
    memcpy(host, listen, hl);
    host[hl] = '\0';
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0)
        return err_set(-EINVAL, "--listen: cannot resolve '%s': %s", host, gai_strerror(rc));
    memcpy(ret, res->ai_addr, res->ai_addrlen);
    *ret_len = res->ai_addrlen;
    if (res->ai_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)res->ai_addr;
        *ret_loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)res->ai_addr;
        *ret_loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    freeaddrinfo(res);
    return 0;
}

/* The host of "HOST:PORT" without brackets; *ret_wildcard when it means every address. */
static void
listen_host_of(const char *listen, char *buf, size_t size, bool *ret_wildcard)
{
    const char *colon = strrchr(listen, ':');
    size_t len = colon ? (size_t)(colon - listen) : strlen(listen);

    if (len >= 2 && listen[0] == '[' && listen[len - 1] == ']') {
        listen++;
        len -= 2;
    }
    snprintf(buf, size, "%.*s", (int)len, listen);
    *ret_wildcard = strcmp(buf, "0.0.0.0") == 0 || strcmp(buf, "::") == 0;
}

int
http_listen_loopback(const char *listen, bool *ret)
{
    struct sockaddr_storage addr;
    socklen_t addr_len;

    if (strncmp(listen, "unix:", 5) == 0) {
        *ret = false;
        return 0;
    }
    return resolve_listen(listen, &addr, &addr_len, ret);
}

/*
 * Makes the listening Unix socket at path: mode 0660, group group (NULL:
 * ours), replacing a stale socket but nothing else. *ret_fd and *ret_gid on
 * success; a negative errno with a detail otherwise.
 */
static int
listen_unix(const char *path, const char *group, int *ret_fd, gid_t *ret_gid)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    gid_t gid = getegid();
    struct stat st;
    mode_t old;
    int fd, r;

    if (strlen(path) >= sizeof(sa.sun_path))
        return err_set(-ENAMETOOLONG, "--listen: the socket path %s is too long", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (group) {
        struct group gr, *found = NULL;
        char buf[4096];
        if (getgrnam_r(group, &gr, buf, sizeof(buf), &found) != 0 || !found)
            return err_set(-EINVAL, "--socket-group: no group '%s'", group);
        gid = gr.gr_gid;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return err_set(-EEXIST, "--listen: %s exists and is not a socket", path);
        unlink(path); /* left by an earlier run */
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return err_set(-errno, "cannot make a Unix socket: %s", strerror(errno));
    old = umask(0177); /* nobody else may connect before the group is set */
    r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0 || chown(path, (uid_t)-1, gid) < 0 || chmod(path, 0660) < 0 || listen(fd, 256) < 0) {
        r = -errno;
        close(fd);
        return err_set(r, "cannot listen on unix:%s: %s", path, strerror(-r));
    }
    *ret_fd = fd;
    *ret_gid = gid;
    return 0;
}

int
http_start(const struct http_config *cfg, struct http_server **ret, unsigned *ret_port)
{
    struct sockaddr_storage addr = {0};
    socklen_t addr_len;
    bool loopback = false;
    bool is_unix = strncmp(cfg->listen, "unix:", 5) == 0;
    /*
     * poll(), not epoll: http_stop() quiesces the daemon, and with an epoll
     * thread pool the removal of the listening socket from each thread's
     * epoll set races with that thread's own removal of it; when it loses,
     * epoll_ctl() fails and libmicrohttpd (0.9.75) aborts the process.  A
     * poll() thread only stops asking for the socket.  A thread holds its
     * share of --conn-limit (128 of the default 512): poll() over them is
     * cheap.
     */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    int unix_fd = -1;
    gid_t unix_gid = 0;
    int r;

    if (!is_unix) {
        r = resolve_listen(cfg->listen, &addr, &addr_len, &loopback);
        if (r < 0)
            return r;
    }
    if (!loopback && !cfg->auth)
        return err_set(-EPERM,
                       "--no-auth is accepted only with a loopback --listen address, not %s",
                       cfg->listen);
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (cfg->tls_cert_pem) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
            return err_set(-EOPNOTSUPP, "this libmicrohttpd was built without TLS");
        flags |= MHD_USE_TLS;
    }

    if (is_unix) {
        r = listen_unix(cfg->listen + 5, cfg->socket_group, &unix_fd, &unix_gid);
        if (r < 0)
            return r;
    }
    struct http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        if (unix_fd >= 0)
            close(unix_fd);
        return -ENOMEM;
    }
    s->cfg = *cfg;
    s->unix_fd = unix_fd;
    s->unix_gid = unix_gid;
    s->listen_loopback = loopback;
    listen_host_of(cfg->listen, s->listen_host, sizeof(s->listen_host), &s->listen_wildcard);
    pthread_mutex_init(&s->defer_lock, NULL);
    r = deadline_watcher_new(cfg->conn_timeout, &s->deadlines);
    if (r == 0) {
        r = timers_new(&s->timers);
        if (r < 0)
            deadline_watcher_free(s->deadlines);
    }
    if (r == 0) {
        r = defer_pool_new(DEFER_WORKERS, DEFER_QUEUE, &s->pool);
        if (r < 0) {
            timers_free(s->timers);
            deadline_watcher_free(s->deadlines);
        }
    }
    if (r < 0) {
        if (unix_fd >= 0)
            close(unix_fd);
        pthread_mutex_destroy(&s->defer_lock);
        free(s);
        return err_set(r, "cannot start the request deadline and worker threads");
    }

    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, cfg->tls_cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, cfg->tls_key_pem},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_OptionItem listen_opts[] = {
        is_unix ? (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, unix_fd, NULL}
                : (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &addr},
        {MHD_OPTION_END, 0, NULL},
    };
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, listen_opts,
        MHD_OPTION_THREAD_POOL_SIZE, cfg->threads, MHD_OPTION_CONNECTION_TIMEOUT, cfg->conn_timeout,
        MHD_OPTION_CONNECTION_LIMIT, cfg->conn_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        cfg->per_ip_limit, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        s, MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, MHD_OPTION_LISTEN_BACKLOG_SIZE, 256, MHD_OPTION_ARRAY,
        cfg->tls_cert_pem ? tls_opts : &tls_opts[3], MHD_OPTION_END);
    if (!s->daemon) {
        defer_pool_free(s->pool);
        timers_free(s->timers);
        pthread_mutex_destroy(&s->defer_lock);
        deadline_watcher_free(s->deadlines);
        if (unix_fd >= 0) {
            close(unix_fd);
            unlink(cfg->listen + 5);
        }
        free(s);
        return err_set(-EADDRINUSE, "cannot listen on %s (address in use or not available)",
                       cfg->listen);
    }
    metrics_watch_deferred(s->pool);
    metrics_watch_waits(s->timers);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *ret_port = info ? info->port : 0;
    *ret = s;
    return 0;
}

void
http_stop(struct http_server *s)
{
    MHD_socket fd;

    if (!s)
        return;
    /*
     * New connections are refused from now on (shutdown() stops the socket
     * listening); the descriptor itself is closed only after MHD_stop_daemon:
     * a thread of MHD may still use it until then, and a number freed early
     * could be handed to another file meanwhile.
     */
    fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        (void)shutdown(fd, SHUT_RDWR);
    /* Event streams never end by themselves: end them, so that their requests finish. */
    events_shutdown();
    /* Slow requests still waiting for a worker are answered 503 now; running ones go on. */
    defer_pool_stop(s->pool);
    /* Requests that wait for a job's end stop waiting: they answer the job as it stands. */
    pthread_mutex_lock(&s->defer_lock);
    s->stopping = true;
    pthread_mutex_unlock(&s->defer_lock);
    for (;;) {
        struct deferred *d;

        pthread_mutex_lock(&s->defer_lock);
        for (d = s->deferred; d && !d->waits; d = d->next)
            ;
        if (d)
            d->refs++; /* kept while settled outside the lock */
        pthread_mutex_unlock(&s->defer_lock);
        if (!d)
            break;
        deferred_settle(d, 0, NULL, NULL);
        pthread_mutex_lock(&s->defer_lock);
        deferred_unref_locked(d);
        pthread_mutex_unlock(&s->defer_lock);
    }
    for (int waited = 0; atomic_load(&s->in_flight) > 0 && waited < SHUTDOWN_GRACE_MS; waited += 20)
        usleep(20 * 1000);
    /* Past the grace, slow requests still running are answered 503; their work ends unseen. */
    pthread_mutex_lock(&s->defer_lock);
    while (s->deferred) {
        struct deferred *d = s->deferred;
        d->refs++; /* kept while settled outside the lock */
        pthread_mutex_unlock(&s->defer_lock);
        deferred_settle_text(d, -ESHUTDOWN,
                             "the service is shutting down; the operation did not finish within "
                             "the grace period and its outcome is not known");
        pthread_mutex_lock(&s->defer_lock);
        deferred_unref_locked(d);
    }
    pthread_mutex_unlock(&s->defer_lock);
    for (int waited = 0; atomic_load(&s->in_flight) > 0 && waited < 2000; waited += 20)
        usleep(20 * 1000);
    for (;;) {
        pthread_mutex_lock(&s->defer_lock);
        unsigned resuming = s->resuming;
        pthread_mutex_unlock(&s->defer_lock);
        if (resuming == 0)
            break;
        usleep(1000);
    }
    MHD_stop_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    metrics_watch_deferred(NULL);
    metrics_watch_waits(NULL);
    /* As the HTTP threads did before, the stop waits for work in progress to end. */
    defer_pool_free(s->pool);
    timers_free(s->timers);
    pthread_mutex_destroy(&s->defer_lock);
    deadline_watcher_free(s->deadlines);
    if (s->unix_fd >= 0)
        unlink(s->cfg.listen + 5);
    free(s);
}
