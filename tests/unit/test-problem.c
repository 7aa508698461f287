/* Unit tests: the error table. */
#include <errno.h>
#include <string.h>

#include "api/bodies.h"
#include "api/problem.h"
#include "err.h"
#include "tap.h"
#include "text.h"

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

/* The problem built from the thread's error: its errors[0] member `kind` and detail, or NULL. */
static json_t *
problem_errors(void)
{
    return problem_from_err(problem_for_errno(-EINVAL), "/v1/x");
}

static int
names(json_t *p, const char *kind, const char *name, const char *detail)
{
    json_t *e = json_array_get(json_object_get(p, "errors"), 0);
    const char *pd = json_string_value(json_object_get(p, "detail"));

    return e && json_array_size(json_object_get(p, "errors")) == 1 && json_object_size(e) == 2 &&
           strcmp(json_string_value(json_object_get(e, kind)) ?: "-", name) == 0 &&
           strcmp(json_string_value(json_object_get(e, "detail")) ?: "-", detail) == 0 && pd &&
           strstr(pd, detail);
}

static void
test_fields(void)
{
    char buf[TEXT_POINTER_MAX];
    struct err_state saved;
    json_t *p;

    err_set_pointer(-EINVAL, "/disks/0/target", "must be a string");
    p = problem_errors();
    ok(names(p, "pointer", "/disks/0/target", "must be a string") &&
           strcmp(json_string_value(json_object_get(p, "detail")),
                  "disks[0].target: must be a string") == 0,
       "a pointer becomes errors[0] and the detail names the field: %s",
       json_string_value(json_object_get(p, "detail")));
    json_decref(p);

    err_set_pointer(-EINVAL, "", "is not valid JSON");
    p = problem_errors();
    ok(names(p, "pointer", "", "is not valid JSON") &&
           strcmp(json_string_value(json_object_get(p, "detail")), "the body: is not valid JSON") ==
               0,
       "the whole body is the pointer \"\"");
    json_decref(p);

    err_set_parameter(-EINVAL, "roots", "must be true or false");
    p = problem_errors();
    ok(names(p, "parameter", "roots", "must be true or false") &&
           strcmp(json_string_value(json_object_get(p, "detail")),
                  "query parameter 'roots': must be true or false") == 0,
       "a parameter becomes errors[0]");
    json_decref(p);

    err_save(&saved);
    err_set(-EIO, "something else");
    p = problem_errors();
    ok(p && !json_object_get(p, "errors"), "a later err_set() forgets the field");
    json_decref(p);
    err_restore(&saved);
    p = problem_errors();
    ok(names(p, "parameter", "roots", "must be true or false"), "err_restore() brings it back");
    json_decref(p);
    err_clear();
    ok(err_field(NULL, NULL) == ERR_FIELD_NONE, "err_clear() forgets the field");

    err_set_pointer(-EINVAL,
                    "/a\xff"
                    "b",
                    "bad");
    p = problem_errors();
    ok(p && !json_object_get(p, "errors"), "a pointer that is not UTF-8 is left out");
    json_decref(p);

    ok(text_pointer_join(buf, sizeof(buf), "/define", "a/b~c", 0) &&
           strcmp(buf, "/define/a~1b~0c") == 0,
       "'/' and '~' are escaped in a pointer: %s", buf);
    ok(text_pointer_join(buf, sizeof(buf), "/disks", NULL, 12) && strcmp(buf, "/disks/12") == 0,
       "an array index");
    char key[400];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    ok(!text_pointer_join(buf, sizeof(buf), "/x", key, 0) && strcmp(buf, "/x") == 0,
       "a pointer too long for the buffer is its base");
}

/* Reads body text with reader; returns the pointer its error names, or "(none)"/"(ok)". */
static const char *
body_pointer(const char *text, int (*reader)(const struct api_request *, void *), void *out)
{
    static char got[TEXT_POINTER_MAX + 64];
    struct api_request req = {0};
    const char *name = NULL, *detail = NULL;
    int r;

    req.body = json_loads(text, 0, NULL);
    err_clear();
    r = reader(&req, out);
    json_decref(req.body);
    if (r == 0)
        return "(ok)";
    if (err_field(&name, &detail) != ERR_FIELD_POINTER)
        return "(none)";
    snprintf(got, sizeof(got), "%s", name);
    /* Never the JSON library's own words. */
    if (strstr(err_detail(), "Expected ") || strstr(err_detail(), "got ") ||
        strstr(err_detail(), "left unpacked"))
        return "(library words)";
    return got;
}

static int
read_backup(const struct api_request *req, void *out)
{
    return api_backup_body_read(req, out);
}

static int
read_checkpoint(const struct api_request *req, void *out)
{
    return api_checkpoint_body_read(req, out);
}

static int
read_snapshot(const struct api_request *req, void *out)
{
    return api_snapshot_body_read(req, out);
}

static int
read_restore(const struct api_request *req, void *out)
{
    return api_restore_body_read(req, out);
}

static int
read_reconcile(const struct api_request *req, void *out)
{
    return api_reconcile_body_read(req, out);
}

static void
test_bodies(void)
{
    static struct api_backup_body b;
    static struct api_checkpoint_body c;
    static struct api_snapshot_body s;
    static struct core_restore_request rr;
    static bool adopt;
    static const struct {
        const char *body;
        int (*reader)(const struct api_request *, void *);
        void *out;
        const char *pointer;
    } body_cases[] = {
        {"{\"mode\": \"push\", \"target\": \"vault\"}", read_backup, &b, "/target"},
        {"{\"target\": \"client\"}", read_backup, &b, "/target"},
        {"{\"mode\": \"pull\", \"target\": \"vault\"}", read_backup, &b, "(ok)"},
        {"{\"mode\": \"pull\", \"bandwidth\": 5}", read_backup, &b, "/bandwidth"},
        {"{\"since\": \"cp1\"}", read_backup, &b, "/since"},
        {"{\"type\": 7}", read_backup, &b, "/type"},
        {"{\"bandwidth\": 1.5}", read_backup, &b, "/bandwidth"},
        {"{\"disks\": [\"vda\", 3]}", read_backup, &b, "/disks/1"},
        {"{\"name\": 7}", read_checkpoint, &c, "/name"},
        {"{\"name\": null}", read_checkpoint, &c, "/name"},
        {"{\"nope\": 1}", read_checkpoint, &c, "/nope"},
        {"{\"a/b\": 1}", read_checkpoint, &c, "/a~1b"},
        {"[]", read_checkpoint, &c, ""},
        {"{\"description\": \"a\\u0001\"}", read_checkpoint, &c, "/description"},
        {"{\"disks\": [{\"target\": \"vda\", \"x\": 1}]}", read_snapshot, &s, "/disks/0/x"},
        {"{\"disks\": [{\"location\": \"external\"}]}", read_snapshot, &s, "/disks/0/target"},
        {"{\"disks\": [{\"target\": 1}]}", read_snapshot, &s, "/disks/0/target"},
        {"{\"quiesce\": \"yes\"}", read_snapshot, &s, "/quiesce"},
        {"{}", read_restore, &rr, "/target_dir"},
        {"{\"target_dir\": \"/r\", \"define\": {\"name\": 1}}", read_restore, &rr, "/define/name"},
        {"{\"target_dir\": \"/r\", \"define\": {\"name\": \"n\", \"keep\": [\"lun\", \"lun\"]}}",
         read_restore, &rr, "/define/keep/1"},
        {"{\"target_dir\": \"/r\", \"define\": null}", read_restore, &rr, "(ok)"},
        {"{\"adopt\": 1}", read_reconcile, &adopt, "/adopt"},
    };

    for (size_t i = 0; i < sizeof(body_cases) / sizeof(body_cases[0]); i++) {
        const char *got = body_pointer(body_cases[i].body, body_cases[i].reader, body_cases[i].out);
        ok(strcmp(got, body_cases[i].pointer) == 0, "%s names %s (%s)", body_cases[i].body,
           body_cases[i].pointer, strcmp(got, body_cases[i].pointer) ? got : "");
    }

    struct conf_retention ret;
    json_t *r = json_loads("{\"keep_last\": 1, \"keep_often\": 2}", 0, NULL);
    const char *name = NULL;
    ok(api_retention_read(r, "/retention", &ret) == -EINVAL &&
           err_field(&name, NULL) == ERR_FIELD_POINTER &&
           strcmp(name, "/retention/keep_often") == 0,
       "a retention names its own member");
    json_decref(r);
}

static const char *query_value;

static const char *
query_get(const struct api_request *req, const char *key)
{
    (void)req;
    return strcmp(key, "roots") == 0 ? query_value : NULL;
}

static void
test_query(void)
{
    static const struct {
        const char *value;
        int r, v;
    } query_cases[] = {
        {"true", 0, 1},   {"false", 0, 0},      {"1", -EINVAL, 0},   {"0", -EINVAL, 0},
        {"", -EINVAL, 0}, {"TRUE", -EINVAL, 0}, {"yes", -EINVAL, 0},
    };
    struct api_request req = {.query = query_get};

    for (size_t i = 0; i < sizeof(query_cases) / sizeof(query_cases[0]); i++) {
        const char *name = NULL;
        bool v = false;
        int r;

        query_value = query_cases[i].value;
        err_clear();
        r = api_query_bool(&req, "roots", false, &v);
        ok(r == query_cases[i].r && (r < 0 || v == query_cases[i].v) &&
               (r == 0 ||
                (err_field(&name, NULL) == ERR_FIELD_PARAMETER && strcmp(name, "roots") == 0)),
           "roots=%s: %d", query_cases[i].value, r);
    }
}

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

    test_fields();
    test_bodies();
    test_query();
    return tap_done();
}
