#include <errno.h>
#include <string.h>

#include "cleanup.h"
#include "err.h"
#include "problem.h"

static const struct problem_kind kinds[] = {
    {-EINVAL, 400, "invalid_request", "The request is not valid"},
    {-EKEYREJECTED, 401, "unauthorized", "Authentication is required"},
    {-EPERM, 403, "forbidden", "The token's role does not allow this"},
    {-EACCES, 403, "access_denied", "The operation was refused by the host"},
    {-ENOENT, 404, "not_found", "No such resource"},
    {0, 405, "method_not_allowed", "Method not allowed on this resource"},
    {-EEXIST, 409, "conflict", "A resource of that name exists already"},
    {-ENOTEMPTY, 409, "conflict", "Other resources depend on this one"},
    {-EBADFD, 409, "conflict", "The resource's state does not allow this"},
    {-EBUSY, 409, "domain_busy", "The domain is busy with another job"},
    {-ECANCELED, 409, "cancelled", "The operation was cancelled"},
    {0, 409, "idempotency_key_in_use", "A request with this Idempotency-Key is being answered"},
    {-EINTR, 500, "interrupted", "The service stopped while the operation ran"},
    {-ESTALE, 412, "precondition_failed", "A precondition of the request does not hold"},
    {-EFBIG, 413, "payload_too_large", "The request body is too large"},
    {0, 414, "uri_too_long", "The request URI is too long"},
    {-EPROTONOSUPPORT, 415, "unsupported_media_type", "The request body must be JSON"},
    {-ERANGE, 416, "range_not_satisfiable", "The requested range cannot be served"},
    {0, 421, "misdirected_request", "The request names a host this service is not"},
    {0, 422, "idempotency_key_reused", "The Idempotency-Key came with another request"},
    {-EMEDIUMTYPE, 422, "unprocessable", "The resource cannot be read this way"},
    {-ENOTDIR, 422, "not_a_folder", "The path is not a folder"},
    {0, 429, "too_many_requests", "Too many requests of this kind are open"},
    {-EAGAIN, 503, "temporarily_unavailable", "The service is busy; try again"},
    {-EOPNOTSUPP, 501, "unsupported", "Not supported here"},
    {-ENOTCONN, 503, "hypervisor_unavailable", "The hypervisor is not reachable"},
    {-ETIMEDOUT, 504, "timeout", "The operation did not finish in time"},
    {-ENOSPC, 507, "insufficient_storage", "Out of space"},
    {0, 503, "not_ready", "The service is not ready"},
    {-EIO, 500, "internal", "Internal error"},
};

static const struct problem_kind internal = {-EIO, 500, "internal", "Internal error"};

const struct problem_kind *
problem_for_errno(int err)
{
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (kinds[i].err != 0 && kinds[i].err == err)
            return &kinds[i];
    return &internal;
}

const struct problem_kind *
problem_for_code(const char *code)
{
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (strcmp(kinds[i].code, code) == 0)
            return &kinds[i];
    return NULL;
}

json_t *
problem_new(const struct problem_kind *kind, const char *detail, const char *instance)
{
    char type[96];
    json_t *p;

    snprintf(type, sizeof(type), "urn:virtvault:problem:%s", kind->code);
    /* A detail that echoes bad input may not be valid UTF-8: fall back to the title. */
    if (detail) {
        json_t *probe = json_string(detail);
        if (!probe)
            detail = NULL;
        json_decref(probe);
    }
    p = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title", kind->title, "status",
                  kind->status, "code", kind->code, "detail",
                  detail && detail[0] ? detail : kind->title);
    if (p && instance)
        json_object_set_new(p, "instance", json_string(instance));
    return p;
}

json_t *
problem_from_err(const struct problem_kind *kind, const char *instance)
{
    const char *name = NULL, *detail = NULL;
    enum err_field_kind fk = err_field(&name, &detail);
    json_t *p = problem_new(kind, err_detail(), instance);
    json_t *item, *n, *d;

    if (!p || fk == ERR_FIELD_NONE)
        return p;
    /* Both echo input: a field that is not valid UTF-8 is left out, as problem_new() does. */
    n = json_string(name);
    d = json_string(detail);
    item = n && d ? json_pack("{s:o, s:o}", fk == ERR_FIELD_POINTER ? "pointer" : "parameter", n,
                              "detail", d)
                  : NULL;
    if (!item) {
        if (!(n && d)) {
            json_decref(n);
            json_decref(d);
        }
        return p;
    }
    json_object_set_new(p, "errors", json_pack("[o]", item));
    return p;
}
