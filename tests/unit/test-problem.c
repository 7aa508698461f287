/* Unit tests: the error table. */
#include <errno.h>
#include <string.h>

#include "api/problem.h"
#include "tap.h"

static const struct {
    int err;
    int status;
    const char *code;
} cases[] = {
    {-EINVAL, 400, "invalid_request"},
    {-ENOENT, 404, "not_found"},
    {-EEXIST, 409, "conflict"},
    {-ENOTEMPTY, 409, "conflict"},
    {-EBADFD, 409, "conflict"},
    {-EBUSY, 409, "domain_busy"},
    {-EOPNOTSUPP, 501, "unsupported"},
    {-ENOTCONN, 503, "hypervisor_unavailable"},
    {-EFBIG, 413, "payload_too_large"},
    {-EKEYREJECTED, 401, "unauthorized"},
    {-EPERM, 403, "forbidden"},
    {-ETIMEDOUT, 504, "timeout"},
    {-ENOSPC, 507, "insufficient_storage"},
    {-EIO, 500, "internal"},
    {-ENOMEM, 500, "internal"},
    {-12345, 500, "internal"},
};

int
main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct problem_kind *k = problem_for_errno(cases[i].err);
        ok(k && k->status == cases[i].status && strcmp(k->code, cases[i].code) == 0,
           "errno %d -> %d %s", cases[i].err, k->status, k->code);
    }
    ok(problem_for_code("method_not_allowed")->status == 405, "405 by code");
    ok(problem_for_code("idempotency_key_in_use")->status == 409, "409 by code (key in use)");
    ok(problem_for_code("idempotency_key_reused")->status == 422, "422 by code (key reused)");
    ok(problem_for_code("no_such_code") == NULL, "unknown code");

    json_t *p = problem_new(problem_for_errno(-ENOENT), "domain 'x' not found", "/v1/domains/x");
    ok(p && json_integer_value(json_object_get(p, "status")) == 404 &&
           strcmp(json_string_value(json_object_get(p, "code")), "not_found") == 0 &&
           strcmp(json_string_value(json_object_get(p, "detail")), "domain 'x' not found") == 0 &&
           json_object_get(p, "type") && json_object_get(p, "title"),
       "problem object has type, title, status, detail, code");
    json_decref(p);

    p = problem_new(problem_for_errno(-EINVAL), "bad \xff byte", NULL);
    ok(p &&
           strcmp(json_string_value(json_object_get(p, "detail")), "The request is not valid") == 0,
       "invalid UTF-8 in a detail falls back to the title");
    json_decref(p);
    return tap_done();
}
