/* Unit tests: the path-template matcher and the real route table. */
#include <string.h>

#include "server/router.h"
#include "tap.h"

static int
h(const struct api_request *req, struct api_response *resp)
{
    return 0;
}

static const struct route table[] = {
    {.method = "GET", .path = "/v1/domains", .handler = h, .role = ROLE_VIEWER},
    {.method = "GET", .path = "/v1/domains/{domain}", .handler = h, .role = ROLE_VIEWER},
    {.method = "GET",
     .path = "/v1/domains/{domain}/checkpoints/{name}",
     .handler = h,
     .role = ROLE_VIEWER},
    {.method = "DELETE",
     .path = "/v1/domains/{domain}/checkpoints/{name}",
     .handler = h,
     .role = ROLE_ADMIN},
    {.method = "POST",
     .path = "/v1/domains/{domain}/checkpoints:reconcile",
     .handler = h,
     .role = ROLE_OPERATOR},
    {.method = "GET", .path = "/healthz", .handler = h, .role = ROLE_PUBLIC},
    {.method = "GET", .path = "/v1/policies/{name}", .handler = h, .role = ROLE_VIEWER},
    {.method = "POST", .path = "/v1/policies/{name}:run", .handler = h, .role = ROLE_OPERATOR},
};

static const struct {
    const char *method, *path;
    enum router_result want;
    int route; /* index into table for a match */
    const char *p0, *p1, *allow;
} cases[] = {
    {"GET", "/v1/domains", ROUTER_MATCH, 0, NULL, NULL, NULL},
    {"GET", "/v1/domains/web", ROUTER_MATCH, 1, "web", NULL, NULL},
    {"GET", "/v1/domains/a%2Fb", ROUTER_MATCH, 1, "a/b", NULL, NULL},
    {"GET", "/v1/domains/a%20b", ROUTER_MATCH, 1, "a b", NULL, NULL},
    {"GET", "/v1/domains/web/checkpoints/cp1", ROUTER_MATCH, 2, "web", "cp1", NULL},
    {"DELETE", "/v1/domains/web/checkpoints/cp1", ROUTER_MATCH, 3, "web", "cp1", NULL},
    {"POST", "/v1/domains/web/checkpoints:reconcile", ROUTER_MATCH, 4, "web", NULL, NULL},
    {"PUT", "/v1/domains/web/checkpoints/cp1", ROUTER_BAD_METHOD, 0, NULL, NULL,
     "GET, HEAD, DELETE"},
    {"POST", "/v1/domains", ROUTER_BAD_METHOD, 0, NULL, NULL, "GET, HEAD"},
    {"GET", "/v1/domains/", ROUTER_NOT_FOUND, 0, NULL, NULL, NULL},
    {"GET", "/v1/domains//checkpoints/x", ROUTER_NOT_FOUND, 0, NULL, NULL, NULL},
    {"GET", "/v1/domains/web/", ROUTER_NOT_FOUND, 0, NULL, NULL, NULL},
    {"GET", "/v1/domainsx", ROUTER_NOT_FOUND, 0, NULL, NULL, NULL},
    {"GET", "/v1", ROUTER_NOT_FOUND, 0, NULL, NULL, NULL},
    {"GET", "", ROUTER_NOT_FOUND, 0, NULL, NULL, NULL},
    {"GET", "/", ROUTER_NOT_FOUND, 0, NULL, NULL, NULL},
    {"GET", "healthz", ROUTER_NOT_FOUND, 0, NULL, NULL, NULL},
    {"GET", "/healthz", ROUTER_MATCH, 5, NULL, NULL, NULL},
    {"GET", "/healthz/", ROUTER_NOT_FOUND, 0, NULL, NULL, NULL},
    {"GET", "/v1/domains/%zz", ROUTER_BAD_ENCODING, 0, NULL, NULL, NULL},
    {"GET", "/v1/domains/%00", ROUTER_BAD_ENCODING, 0, NULL, NULL, NULL},
    {"GET", "/v1/domains/web/checkpoints/cp1/extra", ROUTER_NOT_FOUND, 0, NULL, NULL, NULL},
    /* a placeholder with a literal suffix */
    {"POST", "/v1/policies/nightly:run", ROUTER_MATCH, 7, "nightly", NULL, NULL},
    {"POST", "/v1/policies/a%3Ab:run", ROUTER_MATCH, 7, "a:b", NULL, NULL},
    {"POST", "/v1/policies/:run", ROUTER_BAD_METHOD, 0, NULL, NULL, "GET, HEAD"},
    {"GET", "/v1/policies/nightly", ROUTER_MATCH, 6, "nightly", NULL, NULL},
    {"POST", "/v1/policies/nightly", ROUTER_BAD_METHOD, 0, NULL, NULL, "GET, HEAD"},
};

int
main(void)
{
    const size_t n = sizeof(table) / sizeof(table[0]);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct router_match m;
        enum router_result r = router_find(table, n, cases[i].method, cases[i].path, &m);
        int good = r == cases[i].want;
        if (good && r == ROUTER_MATCH) {
            good = m.route == &table[cases[i].route];
            if (cases[i].p0)
                good = good && m.n_params >= 1 && strcmp(m.params[0], cases[i].p0) == 0;
            if (cases[i].p1)
                good = good && m.n_params >= 2 && strcmp(m.params[1], cases[i].p1) == 0;
        }
        if (good && r == ROUTER_BAD_METHOD)
            good = strcmp(m.allow, cases[i].allow) == 0;
        ok(good, "%s '%s' -> %d (want %d)", cases[i].method, cases[i].path, r, cases[i].want);
        router_match_clear(&m);
    }

    /* The real table: every template is well formed and no two entries collide. */
    for (size_t i = 0; i < router_table_len; i++) {
        const struct route *a = &router_table[i];
        int dup = 0;
        for (size_t j = i + 1; j < router_table_len; j++)
            dup |= strcmp(a->method, router_table[j].method) == 0 &&
                   strcmp(a->path, router_table[j].path) == 0;
        ok(a->path[0] == '/' && a->handler && !dup, "route %s %s is well formed and unique",
           a->method, a->path);
        ok(strcmp(a->method, "GET") == 0 || a->role >= ROLE_OPERATOR,
           "route %s %s: changes need operator or admin", a->method, a->path);
        ok(strcmp(a->method, "DELETE") != 0 || a->role == ROLE_ADMIN,
           "route %s %s: deletes need admin", a->method, a->path);
        if (a->conditional && strcmp(a->method, "GET") != 0) {
            /* Its preconditions are checked against the GET of its path, conditional too. */
            const struct route *get = router_get_sibling(router_table, router_table_len, a);
            ok(strcmp(a->method, "POST") != 0 && get && get->conditional,
               "conditional route %s %s: not a POST, and its path has a conditional GET", a->method,
               a->path);
        }
    }
    ok(router_get_sibling(table, n, &table[3]) == &table[2], "the GET sibling of a DELETE");
    ok(router_get_sibling(table, n, &table[4]) == NULL, "a POST without a GET sibling");
    return tap_done();
}
