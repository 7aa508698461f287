/* Unit tests: ETags, If-Match / If-None-Match lists, and the check of a conditional write. */
#include <errno.h>
#include <string.h>

#include "api/api.h"
#include "err.h"
#include "tap.h"

#define TAG "\"0123456789abcdef0123456789abcdef\""

static const struct {
    const char *list;
    bool weak;
    int want; /* 1 match, 0 none, -EINVAL malformed */
} matches[] = {
    {TAG, false, 1},
    {TAG, true, 1},
    {"W/" TAG, true, 1},  /* weak comparison ignores W/ */
    {"W/" TAG, false, 0}, /* strong comparison never matches a weak tag */
    {"\"other\"", false, 0},
    {"\"other\", " TAG, false, 1},
    {"\"other\"," TAG ",\"x\"", false, 1},
    {" , \"a\" ,, \t" TAG " ,", false, 1},
    {"", false, 0},
    {"*", false, 1},
    {" * ", true, 1},
    {"\"0123456789abcdef\"", false, 0}, /* a prefix is another tag */
    {"\"0123456789abcdef0123456789abcdef\"x", false, -EINVAL},
    {"0123456789abcdef0123456789abcdef", false, -EINVAL}, /* no quotes */
    {"\"unterminated", false, -EINVAL},
    {"*, " TAG, false, -EINVAL},
    {"w/" TAG, true, -EINVAL},
    {"\"a b\"", false, -EINVAL}, /* a space is not an etagc */
};

static const struct {
    const char *if_match, *if_none_match, *etag;
    bool safe;
    int want; /* enum api_cond_result, or -EINVAL */
} evals[] = {
    {NULL, NULL, TAG, true, API_COND_PASS},
    {NULL, NULL, NULL, false, API_COND_PASS},
    {TAG, NULL, TAG, false, API_COND_PASS},
    {"\"old\"", NULL, TAG, false, API_COND_FAILED},
    {"\"old\"", NULL, TAG, true, API_COND_FAILED},
    {"*", NULL, TAG, false, API_COND_PASS},
    {"*", NULL, NULL, false, API_COND_FAILED}, /* "*" means: it exists */
    {TAG, NULL, NULL, false, API_COND_FAILED},
    {NULL, TAG, TAG, true, API_COND_NOT_MODIFIED},
    {NULL, "W/" TAG, TAG, true, API_COND_NOT_MODIFIED},
    {NULL, "\"old\"", TAG, true, API_COND_PASS},
    {NULL, TAG, TAG, false, API_COND_FAILED},
    {NULL, "*", TAG, false, API_COND_FAILED},
    {NULL, "*", NULL, false, API_COND_PASS}, /* create-only: nothing there yet */
    {NULL, "*", TAG, true, API_COND_NOT_MODIFIED},
    {"\"old\"", TAG, TAG, true, API_COND_FAILED}, /* If-Match is evaluated first */
    {TAG, "\"old\"", TAG, false, API_COND_PASS},
    {"bad", NULL, TAG, false, -EINVAL},
    {NULL, "bad", TAG, true, -EINVAL},
};

/* A resource for api_cond_call(): its GET handler answers its state, its write changes it. */
static int state = 1;
static bool exists = true;
static int writes;
static int nested = 1;

static int
fake_get(const struct api_request *req, struct api_response *resp)
{
    if (!exists)
        return err_set(-ENOENT, "no such thing");
    if (req->query(req, "anything") || req->body || req->cond)
        return err_set(-EIO, "the GET of a precondition sees a request of its own");
    return api_reply(resp, 200, json_pack("{s:s, s:i}", "name", req->params[0], "state", state));
}

static int
fake_write(const struct api_request *req, struct api_response *resp)
{
    writes++;
    state++;
    /* A second conditional write of the same path while this one runs is refused. */
    if (req->cond->if_match || req->cond->if_none_match)
        nested = api_cond_call(req, resp, fake_write);
    return api_reply(resp, 200, json_object());
}

static const char *
some_query(const struct api_request *req, const char *key)
{
    return "x";
}

static int
cond_write(const char *if_match, const char *if_none_match)
{
    struct api_cond cond = {.get = fake_get, .if_match = if_match, .if_none_match = if_none_match};
    struct api_request req = {
        .method = "DELETE",
        .path = "/v1/things/a",
        .params = {"a"},
        .n_params = 1,
        .query = some_query,
        .cond = &cond,
    };
    struct api_response resp = {0};
    int r;

    err_clear();
    r = api_cond_call(&req, &resp, fake_write);
    json_decref(resp.json);
    return r;
}

/* The ETag the fake resource has now. */
static void
current(char etag[API_ETAG_MAX])
{
    struct api_response resp = {.status = 200};

    resp.json = json_pack("{s:i, s:s}", "state", state, "name", "a"); /* another key order */
    if (api_etag(&resp, etag) < 0)
        etag[0] = '\0';
    json_decref(resp.json);
}

int
main(void)
{
    for (size_t i = 0; i < sizeof(matches) / sizeof(matches[0]); i++) {
        bool m = false;
        int r = api_etag_match("If-Match", matches[i].list, TAG, matches[i].weak, &m);
        int got = r < 0 ? r : m;
        ok(got == matches[i].want, "match '%s' (%s) -> %d (want %d)", matches[i].list,
           matches[i].weak ? "weak" : "strong", got, matches[i].want);
    }
    for (size_t i = 0; i < sizeof(evals) / sizeof(evals[0]); i++) {
        enum api_cond_result res = API_COND_PASS;
        int r = api_cond_evaluate(evals[i].if_match, evals[i].if_none_match, evals[i].etag,
                                  evals[i].safe, &res);
        int got = r < 0 ? r : (int)res;
        ok(got == evals[i].want, "If-Match %s, If-None-Match %s, ETag %s, %s -> %d (want %d)",
           evals[i].if_match ? evals[i].if_match : "-",
           evals[i].if_none_match ? evals[i].if_none_match : "-",
           evals[i].etag ? evals[i].etag : "none", evals[i].safe ? "GET" : "write", got,
           evals[i].want);
    }
    ok(api_etag_match("If-None-Match", "*", NULL, true, &(bool){true}) == 0,
       "\"*\" is well formed");

    /* The ETag: strong, 32 hex digits, the same for the same JSON whatever its key order. */
    char a[API_ETAG_MAX], b[API_ETAG_MAX], c[API_ETAG_MAX];
    struct api_response r1 = {.status = 200, .json = json_pack("{s:i, s:s}", "x", 1, "y", "z")};
    struct api_response r2 = {.status = 200, .json = json_pack("{s:s, s:i}", "y", "z", "x", 1)};
    struct api_response r3 = {.status = 200, .json = json_pack("{s:i, s:s}", "x", 2, "y", "z")};
    ok(api_etag(&r1, a) == 0 && api_etag(&r2, b) == 0 && api_etag(&r3, c) == 0, "ETags made");
    ok(strlen(a) == 34 && a[0] == '"' && a[33] == '"' && strspn(a + 1, "0123456789abcdef") == 32,
       "an ETag is a strong tag of 32 hex digits: %s", a);
    ok(strcmp(a, b) == 0, "key order does not change the ETag");
    ok(strcmp(a, c) != 0, "a changed value changes the ETag");
    r1.status = 201;
    ok(api_etag(&r1, a) == -ENOENT, "only a 200 has an ETag");
    json_decref(r1.json);
    json_decref(r2.json);
    json_decref(r3.json);
    struct api_response t1 = {.status = 200, .text = (char *)"<x/>", .text_len = 4};
    struct api_response t2 = {.status = 200, .text = (char *)"<y/>", .text_len = 4};
    ok(api_etag(&t1, a) == 0 && api_etag(&t2, b) == 0 && strcmp(a, b) != 0,
       "a text answer is tagged by its bytes");
    struct api_response none = {.status = 200};
    ok(api_etag(&none, a) == -ENOENT, "an empty answer has no ETag");

    /* api_cond_call(): the write runs only when its preconditions hold. */
    char now[API_ETAG_MAX], quoted_old[API_ETAG_MAX];
    current(now);
    ok(cond_write("\"0000\"", NULL) == -ESTALE && writes == 0, "If-Match wrong: 412, no write");
    ok(strstr(err_detail() ? err_detail() : "", now) != NULL, "the detail names the current ETag");
    ok(cond_write(now, NULL) == 0 && writes == 1 && state == 2, "If-Match right: written");
    ok(nested == -EBUSY, "a second conditional write of the path meanwhile: -EBUSY");
    snprintf(quoted_old, sizeof(quoted_old), "%s", now);
    ok(cond_write(quoted_old, NULL) == -ESTALE && writes == 1, "the old ETag no longer matches");
    ok(cond_write("*", NULL) == 0 && writes == 2, "If-Match * on a resource that exists: written");
    ok(cond_write(NULL, "*") == -ESTALE && writes == 2, "If-None-Match * on one that exists: 412");
    current(now);
    ok(cond_write(NULL, now) == -ESTALE && writes == 2, "If-None-Match its ETag: 412");
    ok(cond_write(NULL, quoted_old) == 0 && writes == 3, "If-None-Match another ETag: written");
    ok(cond_write("W/\"x\", ", NULL) == -ESTALE && writes == 3, "a weak If-Match: 412");
    ok(cond_write("nonsense", NULL) == -EINVAL && writes == 3, "a malformed If-Match: 400");
    ok(cond_write(NULL, NULL) == 0 && writes == 4, "no precondition: written");
    exists = false;
    ok(cond_write("*", NULL) == -ESTALE && writes == 4, "If-Match * on nothing: 412");
    ok(cond_write(now, NULL) == -ESTALE && writes == 4, "If-Match on nothing: 412");
    ok(cond_write(NULL, "*") == 0 && writes == 5, "If-None-Match * on nothing: written");
    return tap_done();
}
