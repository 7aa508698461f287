#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/problem.h"
#include "cleanup.h"
#include "deadline.h"
#include "err.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "stream.h"
#include "text.h"
#include "tls.h"

#define MAX_URL_LEN       8192
#define MAX_QUERY_ALLOCS  16
#define SHUTDOWN_GRACE_MS 10000

struct http_server {
    struct MHD_Daemon *daemon;
    struct http_config cfg;
    atomic_int in_flight;
    struct deadline_watcher *deadlines; /* bounds the receipt of each request */
};

/* Everything one request carries between the access handler's calls. */
struct req {
    struct http_server *srv;
    struct MHD_Connection *conn;
    uint64_t start_ns;
    char *body;
    size_t len, cap;
    bool too_large;
    const char *route; /* template, for metrics */
    char method[16];
    int status;
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
    if (location && location[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    if (allow && allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (auth_challenge)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"virtvault\"");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    rq->status = status;
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
    json_t *p = problem_new(kind, detail ? detail : err_detail(), path);

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
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    rq->status = 200;
    rq->route = "static";
    enum MHD_Result ret = MHD_queue_response(rq->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Answers with an event stream of the hub (events.h); 503 while the server stops. */
static enum MHD_Result
queue_event_stream(struct req *rq, const char *path)
{
    struct MHD_Response *resp = events_stream_new(rq->conn);
    enum MHD_Result ret;

    if (!resp)
        return queue_problem_code(rq, "not_ready", "the service is shutting down", path, NULL);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    rq->status = 200;
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
    rq->status = status;
    enum MHD_Result ret = MHD_queue_response(rq->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Checks the bearer token against the route's role; answers 401/403 itself. */
static int
authorize(struct req *rq, const struct route *route, const char *path, enum MHD_Result *answered)
{
    const struct auth *a = rq->srv->cfg.auth;
    const struct auth_token *tok = NULL;
    const char *header;

    if (!a || route->role == ROLE_PUBLIC)
        return 0;
    header = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    switch (auth_check(a, header, time(NULL), &tok)) {
    case AUTH_OK:
        break;
    case AUTH_MISSING:
        *answered = queue_problem_code(rq, "unauthorized", "send 'Authorization: Bearer <token>'",
                                       path, NULL);
        return -1;
    case AUTH_INVALID:
        *answered = queue_problem_code(rq, "unauthorized", "the token is not valid", path, NULL);
        return -1;
    case AUTH_EXPIRED:
        *answered = queue_problem_code(rq, "unauthorized", "the token has expired", path, NULL);
        return -1;
    }
    if (tok->role < route->role) {
        char detail[160];
        snprintf(detail, sizeof(detail), "this needs the role '%s'; the token has '%s'",
                 role_name(route->role), role_name(tok->role));
        *answered = queue_problem_code(rq, "forbidden", detail, path, NULL);
        return -1;
    }
    return 0;
}

/*
 * Finds a string holding a NUL in v; writes its place ("disks[2].file") into
 * where. Returns true when there is one. Depth is bounded by the parser.
 */
static bool
find_nul(json_t *v, char *where, size_t size, size_t used)
{
    const char *key;
    json_t *item;
    size_t i;

    if (json_is_string(v))
        return strlen(json_string_value(v)) != json_string_length(v);
    if (json_is_object(v)) {
        json_object_foreach(v, key, item)
        {
            snprintf(where + used, size - used, "%s%s", used ? "." : "", key);
            if (find_nul(item, where, size, strlen(where)))
                return true;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            snprintf(where + used, size - used, "[%zu]", i);
            if (find_nul(item, where, size, strlen(where)))
                return true;
        }
    }
    where[used] = '\0';
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
    if (!type || strncasecmp(type, "application/json", 16) != 0 ||
        (type[16] != '\0' && type[16] != ';' && type[16] != ' ')) {
        *answered =
            queue_problem_code(rq, "unsupported_media_type",
                               "send the body as Content-Type: application/json", path, NULL);
        return -1;
    }
    j = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!j) {
        char detail[300];
        snprintf(detail, sizeof(detail), "the body is not valid JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        *answered = queue_problem_code(rq, "invalid_request", detail, path, NULL);
        return -1;
    }
    /* A "\u0000" would cut every C string unpacked from the value: refuse it, saying where. */
    char where[128] = "";
    if (find_nul(j, where, sizeof(where), 0)) {
        char detail[200];
        json_decref(j);
        snprintf(detail, sizeof(detail), "%s: must not contain NUL characters",
                 where[0] ? where : "the body");
        *answered = queue_problem_code(rq, "invalid_request", detail, path, NULL);
        return -1;
    }
    *ret = j;
    return 0;
}

/* MHD_get_connection_values() iterator: counts query arguments that do not decode. */
static enum MHD_Result
count_bad_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    unsigned *bad = cls;
    char *decoded = NULL;
    (void)kind;

    if (text_url_decode(key, strlen(key), &decoded) < 0)
        (*bad)++;
    free(decoded);
    decoded = NULL;
    if (value && text_url_decode(value, strlen(value), &decoded) < 0)
        (*bad)++;
    free(decoded);
    return MHD_YES;
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
    if (rq->too_large) {
        char detail[96];
        snprintf(detail, sizeof(detail), "the body is larger than %zu bytes",
                 rq->srv->cfg.max_body);
        return queue_problem_code(rq, "payload_too_large", detail, NULL, NULL);
    }
    if (strlen(url) > MAX_URL_LEN)
        return queue_problem_code(rq, "uri_too_long", NULL, NULL, NULL);

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

    if (authorize(rq, m.route, url, &answered) < 0) {
        router_match_clear(&m);
        return answered;
    }
    /* A query value that does not decode would look absent to the handler: refuse it. */
    unsigned bad_args = 0;
    MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, count_bad_arg, &bad_args);
    if (bad_args) {
        router_match_clear(&m);
        return queue_problem_code(rq, "invalid_request",
                                  "the query has a malformed %-escape or a NUL", url, NULL);
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
    };
    for (size_t i = 0; i < m.n_params; i++)
        areq.params[i] = m.params[i];

    r = m.route->handler(&areq, &resp);
    json_decref(body);
    router_match_clear(&m);

    if (r < 0) {
        const struct problem_kind *k = problem_for_errno(r);
        if (k->status >= 500)
            log_warn("%s %s: %s", method, url, err_detail() ? err_detail() : strerror(-r));
        json_decref(resp.json);
        free(resp.text);
        return queue_problem(rq, k, NULL, url, NULL);
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
        const char *cl;

        rq = calloc(1, sizeof(*rq));
        if (!rq)
            return MHD_NO;
        rq->srv = srv;
        rq->conn = conn;
        rq->start_ns = text_mono_ns();
        snprintf(rq->method, sizeof(rq->method), "%s", method);
        atomic_fetch_add(&srv->in_flight, 1);
        *con_cls = rq;
        /* Refuse an announced oversized body before a byte of it is read. */
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || *end || n > srv->cfg.max_body) {
                rq->too_large = true;
                return request_in(rq, url, method);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;

        *upload_data_size = 0;
        if (rq->too_large)
            return MHD_YES;
        if (rq->len + n > srv->cfg.max_body) {
            rq->too_large = true;
            free(rq->body);
            rq->body = NULL;
            rq->len = rq->cap = 0;
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
    if (rq->status != 0)
        return MHD_YES; /* answered early (413) */
    return request_in(rq, url, method);
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

int
http_start(const struct http_config *cfg, struct http_server **ret, unsigned *ret_port)
{
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool loopback = false;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    int r;

    r = resolve_listen(cfg->listen, &addr, &addr_len, &loopback);
    if (r < 0)
        return r;
    if (!loopback && !cfg->auth)
        return err_set(-EPERM,
                       "refusing to listen on %s without --token-file: only loopback addresses "
                       "are served without authentication",
                       cfg->listen);
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (cfg->tls_cert_pem) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
            return err_set(-EOPNOTSUPP, "this libmicrohttpd was built without TLS");
        flags |= MHD_USE_TLS;
    }

    struct http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cfg = *cfg;
    r = deadline_watcher_new(cfg->conn_timeout, &s->deadlines);
    if (r < 0) {
        free(s);
        return err_set(r, "cannot start the request deadline thread");
    }

    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, cfg->tls_cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, cfg->tls_key_pem},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, cfg->threads, MHD_OPTION_CONNECTION_TIMEOUT, cfg->conn_timeout,
        MHD_OPTION_CONNECTION_LIMIT, cfg->conn_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        cfg->per_ip_limit, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        s, MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, MHD_OPTION_LISTEN_BACKLOG_SIZE, 256, MHD_OPTION_ARRAY,
        cfg->tls_cert_pem ? tls_opts : &tls_opts[3], MHD_OPTION_END);
    if (!s->daemon) {
        deadline_watcher_free(s->deadlines);
        free(s);
        return err_set(-EADDRINUSE, "cannot listen on %s (address in use or not available)",
                       cfg->listen);
    }
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
    fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    /* Event streams never end by themselves: end them, so that their requests finish. */
    events_shutdown();
    for (int waited = 0; atomic_load(&s->in_flight) > 0 && waited < SHUTDOWN_GRACE_MS; waited += 20)
        usleep(20 * 1000);
    MHD_stop_daemon(s->daemon);
    deadline_watcher_free(s->deadlines);
    free(s);
}
