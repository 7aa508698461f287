#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "text.h"

static const char *const role_names[] = {
    [ROLE_PUBLIC] = "public",
    [ROLE_VIEWER] = "viewer",
    [ROLE_OPERATOR] = "operator",
    [ROLE_ADMIN] = "admin",
};

const char *
role_name(enum role r)
{
    return (size_t)r < sizeof(role_names) / sizeof(role_names[0]) ? role_names[r] : "unknown";
}

int
role_from_string(const char *s, enum role *ret)
{
    for (int i = ROLE_VIEWER; i <= ROLE_ADMIN; i++) {
        if (strcmp(s, role_names[i]) == 0) {
            *ret = (enum role)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* Next segment of s after the '/' at *pos; returns its start and sets *len. */
static const char *
next_segment(const char *s, size_t *pos, size_t *len)
{
    const char *start, *end;

    if (s[*pos] != '/')
        return NULL;
    start = s + *pos + 1;
    end = strchr(start, '/');
    *len = end ? (size_t)(end - start) : strlen(start);
    *pos = (size_t)(start - s) + *len;
    return start;
}

/*
 * Matches path against one template. Returns 1 on a match (params filled
 * when params is non-NULL), 0 when it does not fit, -EINVAL for a bad escape.
 */
static int
match_template(const char *tmpl, const char *path, char **params, size_t *n_params)
{
    size_t tp = 0, pp = 0, tl, pl, n = 0;
    const char *ts, *ps;

    for (;;) {
        ts = next_segment(tmpl, &tp, &tl);
        ps = next_segment(path, &pp, &pl);
        if (!ts || !ps)
            break;
        if (tl >= 2 && ts[0] == '{' && memchr(ts, '}', tl)) {
            /* A placeholder, perhaps with a literal suffix: "{name}:run". */
            size_t close = (size_t)((const char *)memchr(ts, '}', tl) - ts);
            size_t suffix = tl - close - 1;

            if (pl <= suffix || memcmp(ps + pl - suffix, ts + close + 1, suffix) != 0)
                return 0;
            if (params) {
                if (n >= API_MAX_PARAMS)
                    return 0;
                if (text_url_decode(ps, pl - suffix, &params[n]) < 0)
                    return -EINVAL;
                n++;
            }
        } else if (tl != pl || memcmp(ts, ps, tl) != 0) {
            return 0;
        }
    }
    if (ts || ps || tmpl[tp] != path[pp])
        return 0;
    if (n_params)
        *n_params = n;
    return 1;
}

enum router_result
router_find(const struct route *table, size_t n, const char *method, const char *path,
            struct router_match *m)
{
    bool path_known = false;

    memset(m, 0, sizeof(*m));
    for (size_t i = 0; i < n; i++) {
        int r = match_template(table[i].path, path, NULL, NULL);
        if (r <= 0)
            continue;
        path_known = true;
        if (strcmp(table[i].method, method) != 0) {
            size_t used = strlen(m->allow);
            /* A GET route answers HEAD too (without the body): Allow names both. */
            bool get = strcmp(table[i].method, "GET") == 0;
            if (!strstr(m->allow, table[i].method))
                snprintf(m->allow + used, sizeof(m->allow) - used, "%s%s%s", used ? ", " : "",
                         table[i].method, get ? ", HEAD" : "");
            continue;
        }
        r = match_template(table[i].path, path, m->params, &m->n_params);
        if (r < 0) {
            router_match_clear(m);
            return ROUTER_BAD_ENCODING;
        }
        m->route = &table[i];
        return ROUTER_MATCH;
    }
    return path_known ? ROUTER_BAD_METHOD : ROUTER_NOT_FOUND;
}

void
router_match_clear(struct router_match *m)
{
    for (size_t i = 0; i < API_MAX_PARAMS; i++) {
        free(m->params[i]);
        m->params[i] = NULL;
    }
    m->n_params = 0;
}

const struct route *
router_get_sibling(const struct route *table, size_t n, const struct route *route)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].method, "GET") == 0 && strcmp(table[i].path, route->path) == 0)
            return &table[i];
    return NULL;
}
