/* Unit tests: page tokens (encode, decode, refuse) and the limit, as every list reads them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "err.h"
#include "tap.h"
#include "text.h"

/* A request whose query is "limit=<limit>&page_token=<token>" (NULL: absent). */
struct fake {
    struct api_request req;
    const char *limit;
    const char *token;
};

static const char *
fake_query(const struct api_request *req, const char *key)
{
    const struct fake *f = (const struct fake *)req;

    if (strcmp(key, "limit") == 0)
        return f->limit;
    if (strcmp(key, "page_token") == 0)
        return f->token;
    return NULL;
}

static int
read_page(const char *list, const char *limit, const char *token, struct api_page *ret)
{
    struct fake f = {.req = {.query = fake_query}, .limit = limit, .token = token};

    return api_query_page(&f.req, list, ret);
}

/* Whether the thread's error names parameter name with detail. */
static bool
names(const char *name, const char *detail)
{
    const char *n = NULL, *d = NULL;

    return err_field(&n, &d) == ERR_FIELD_PARAMETER && strcmp(n, name) == 0 &&
           strcmp(d, detail) == 0;
}

static void
test_base64url(void)
{
    static const struct {
        const char *plain, *coded;
    } cases[] = {
        {"", ""},           {"f", "Zg"},         {"fo", "Zm8"},        {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"\xfb\xff", "-_8"}, {"fooba", "Zm9vYmE"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *coded = text_base64url_encode(cases[i].plain, strlen(cases[i].plain));
        char *plain = NULL;
        size_t len = 0;

        ok(coded && strcmp(coded, cases[i].coded) == 0, "encode '%s' -> '%s'", cases[i].coded,
           coded ? coded : "(null)");
        ok(text_base64url_decode(cases[i].coded, &plain, &len) == 0 &&
               len == strlen(cases[i].plain) && memcmp(plain, cases[i].plain, len) == 0,
           "decode '%s'", cases[i].coded);
        free(coded);
        free(plain);
    }
    /* Padding, the standard alphabet, a length no encoding has, stray bits. */
    static const char *const bad[] = {"Zg==", "+/8", "Z", "Zm9vY", "Zh", "Zm9", "a b", "%41"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *plain = NULL;
        int r = text_base64url_decode(bad[i], &plain, NULL);
        ok(r == -EINVAL && !plain, "refuse '%s'", bad[i]);
    }
}

static void
test_tokens(void)
{
    static const char *const keys[] = {"1", "1796590574:1796590574815:c2", "a:b:c",
                                       "name with spaces/and%", "9223372036854775807"};

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char *token = api_page_token("jobs", keys[i]);
        char *key = NULL;
        struct api_page p = {0};

        ok(token &&
               strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
                   strlen(token),
           "token of '%s' is URL-safe: %s", keys[i], token ? token : "(null)");
        ok(token && api_page_token_parse(token, "jobs", &key) == 0 && strcmp(key, keys[i]) == 0,
           "token of '%s' reads back", keys[i]);
        free(key);
        key = NULL;
        ok(token && api_page_token_parse(token, "audit", &key) == -EINVAL && !key &&
               names("page_token", "is not one this service gave out"),
           "a jobs token is refused by another list");
        ok(read_page("jobs", "7", token, &p) == 0 && p.limit == 7 && p.after &&
               strcmp(p.after, keys[i]) == 0,
           "limit and page_token read together");
        api_page_clear(&p);
        ok(!p.after, "api_page_clear() frees the key");
        free(token);
    }

    /* Not ours: garbage, the bare words, another version, an empty key, a NUL inside. */
    char *v2 = text_base64url_encode("2:jobs:5", 8);
    char *empty = text_base64url_encode("1:jobs:", 7);
    char *nul = text_base64url_encode("1:jobs:5\0x", 10);
    char *huge = calloc(API_PAGE_TOKEN_MAX + 2, 1);
    const char *bad[] = {"garbage!", "1:jobs:5", "", v2, empty, nul, huge};

    memset(huge, 'A', API_PAGE_TOKEN_MAX + 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct api_page p = {0};
        err_clear();
        ok(read_page("jobs", NULL, bad[i], &p) == -EINVAL && !p.after &&
               names("page_token", "is not one this service gave out"),
           "bad token %zu refused, naming page_token", i);
    }
    free(v2);
    free(empty);
    free(nul);
    free(huge);
}

static void
test_limits(void)
{
    static const char *const bad[] = {
        "0", "1001", "-1", "+5", " 5", "5 ", "abc", "", "0x10", "1e3", "99999999999999999999"};
    struct api_page p = {0};

    ok(read_page("domains", NULL, NULL, &p) == 0 && p.limit == API_PAGE_LIMIT_DEFAULT && !p.after,
       "no limit: the default, 100");
    ok(read_page("domains", "1", NULL, &p) == 0 && p.limit == 1, "limit 1");
    ok(read_page("domains", "1000", NULL, &p) == 0 && p.limit == 1000, "limit 1000");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear();
        ok(read_page("domains", bad[i], NULL, &p) == -EINVAL &&
               names("limit", "must be a number from 1 to 1000"),
           "limit '%s' refused with the one wording", bad[i]);
    }
}

static void
test_keys(void)
{
    int64_t v[3];
    const char *rest = NULL;

    ok(api_page_key_read("42", 1, v, NULL) == 0 && v[0] == 42, "one integer");
    ok(api_page_key_read("1:-2:x:y", 2, v, &rest) == 0 && v[0] == 1 && v[1] == -2 &&
           strcmp(rest, "x:y") == 0,
       "two integers and a name with ':'");
    ok(api_page_key_read("n", 0, v, &rest) == 0 && strcmp(rest, "n") == 0, "a name alone");
    static const struct {
        const char *key;
        size_t n;
        bool rest;
    } bad[] = {{"", 1, false},    {"4x", 1, false}, {"4:", 1, false},
               {"4:5", 1, false}, {"4", 1, true},   {"4:", 1, true},
               {"", 0, true},     {"x:1", 1, true}, {"99999999999999999999", 1, false}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear();
        ok(api_page_key_read(bad[i].key, bad[i].n, v, bad[i].rest ? &rest : NULL) == -EINVAL &&
               names("page_token", "is not one this service gave out"),
           "key '%s' (%zu integers%s) refused", bad[i].key, bad[i].n,
           bad[i].rest ? ", a name" : "");
    }
}

int
main(void)
{
    test_base64url();
    test_tokens();
    test_limits();
    test_keys();
    return tap_done();
}
