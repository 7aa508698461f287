/*
 * router.h - one static table of routes (method + path template), matched
 * segment by segment. A template segment "{name}" captures one path segment,
 * percent-decoded; every other segment matches literally.
 */
#ifndef VV_ROUTER_H
#define VV_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "api/api.h"

enum role {
    ROLE_PUBLIC = 0, /* no token needed */
    ROLE_VIEWER,
    ROLE_OPERATOR,
    ROLE_ADMIN,
};

/*
 * One row of the table, written with designated initializers. conditional
 * makes the route answer conditional requests (api.h, conditional.c): a
 * GET's 200 carries an ETag and honours If-None-Match (304) and If-Match
 * (412); a PUT, PATCH or DELETE honours If-Match and If-None-Match (412)
 * against the ETag of the GET of the same path, which must be in the table.
 */
struct route {
    const char *method;
    const char *path; /* template, e.g. "/v1/domains/{domain}" */
    api_handler_fn handler;
    enum role role;
    bool conditional;
};

extern const struct route router_table[];
extern const size_t router_table_len;

enum router_result {
    ROUTER_MATCH,
    ROUTER_NOT_FOUND,    /* no template fits the path */
    ROUTER_BAD_METHOD,   /* a template fits, not with this method: see allow */
    ROUTER_BAD_ENCODING, /* a captured segment is not valid percent-encoding */
};

struct router_match {
    const struct route *route;
    char *params[API_MAX_PARAMS]; /* owned; freed by router_match_clear() */
    size_t n_params;
    char allow[128]; /* "GET, POST" for ROUTER_BAD_METHOD */
};

/*
 * Matches method and path (without query string) against table. Fills *m
 * (which the caller clears with router_match_clear in every case).
 */
enum router_result router_find(const struct route *table, size_t n, const char *method,
                               const char *path, struct router_match *m);

void router_match_clear(struct router_match *m);

/* The GET route of the same path template as route in table, or NULL. */
const struct route *router_get_sibling(const struct route *table, size_t n,
                                       const struct route *route);

/* The role names, "viewer" etc.; role_from_string returns -EINVAL for others. */
const char *role_name(enum role r);
int role_from_string(const char *s, enum role *ret);

#endif
