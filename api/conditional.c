/*
 * Conditional requests (RFC 9110 section 13): the ETag of an answer, the
 * If-Match and If-None-Match field values read and compared with it, and
 * the check a conditional write makes against its resource's current
 * representation before it runs. Owns the set of paths whose conditional
 * writes are being answered, so that two of one resource cannot both pass
 * their check before either writes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cleanup.h"
#include "err.h"
#include "hash.h"

#define ETAG_HEX 32 /* hex digits of the SHA-256 kept: 128 bits */

int
api_etag(const struct api_response *resp, char etag[API_ETAG_MAX])
{
    char hex[HASH_SHA256_HEX_LEN + 1];

    if (resp->status != 200)
        return -ENOENT;
    if (resp->json) {
        _cleanup_free_ char *text = json_dumps(resp->json, JSON_SORT_KEYS | JSON_COMPACT);
        if (!text)
            return -ENOMEM;
        hash_sha256_hex(text, strlen(text), hex);
    } else if (resp->text && !resp->stream && !resp->event_stream) {
        hash_sha256_hex(resp->text, resp->text_len, hex);
    } else {
        return -ENOENT;
    }
    snprintf(etag, API_ETAG_MAX, "\"%.*s\"", ETAG_HEX, hex);
    return 0;
}

static bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* etagc of RFC 9110: '!' and '#' to '~', and obs-text. */
static bool
is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;
}

int
api_etag_match(const char *header, const char *list, const char *etag, bool weak, bool *ret)
{
    const char *p = list;
    bool found = false;

    while (is_ows(*p))
        p++;
    if (*p == '*') {
        const char *q = p + 1;
        while (is_ows(*q))
            q++;
        if (*q)
            return err_set(-EINVAL, "the %s header is \"*\" or a list of entity tags, not both",
                           header);
        *ret = etag != NULL;
        return 0;
    }
    /* #entity-tag: elements separated by commas and optional white space; empty ones allowed. */
    while (*p) {
        bool tag_weak = false;
        const char *open;

        if (*p == ',' || is_ows(*p)) {
            p++;
            continue;
        }
        if (p[0] == 'W' && p[1] == '/') {
            tag_weak = true;
            p += 2;
        }
        if (*p != '"')
            return err_set(-EINVAL,
                           "the %s header is not \"*\" or a list of entity tags (\"...\" or "
                           "W/\"...\")",
                           header);
        open = p++;
        while (is_etagc((unsigned char)*p))
            p++;
        if (*p != '"')
            return err_set(-EINVAL, "the %s header has an entity tag without its closing quote",
                           header);
        p++;
        /* Strong comparison: both strong and equal; weak: the opaque tags equal. */
        if (etag && (weak || !tag_weak) && (size_t)(p - open) == strlen(etag) &&
            memcmp(open, etag, (size_t)(p - open)) == 0)
            found = true;
        while (is_ows(*p))
            p++;
        if (*p && *p != ',')
            return err_set(-EINVAL, "the %s header's entity tags must be separated by commas",
                           header);
    }
    *ret = found;
    return 0;
}

int
api_cond_evaluate(const char *if_match, const char *if_none_match, const char *etag, bool safe,
                  enum api_cond_result *ret)
{
    bool match;
    int r;

    if (if_match) {
        r = api_etag_match("If-Match", if_match, etag, false, &match);
        if (r < 0)
            return r;
        if (!match) {
            *ret = API_COND_FAILED;
            return 0;
        }
    }
    if (if_none_match) {
        r = api_etag_match("If-None-Match", if_none_match, etag, true, &match);
        if (r < 0)
            return r;
        if (match) {
            *ret = safe ? API_COND_NOT_MODIFIED : API_COND_FAILED;
            return 0;
        }
    }
    *ret = API_COND_PASS;
    return 0;
}

/* The paths whose conditional writes are being answered: a few at a time. */
struct claim {
    char *path;
    struct claim *next;
};
static pthread_mutex_t claims_lock = PTHREAD_MUTEX_INITIALIZER;
static struct claim *claims;

static int
claim_path(const char *path)
{
    struct claim *c;

    pthread_mutex_lock(&claims_lock);
    for (c = claims; c; c = c->next)
        if (strcmp(c->path, path) == 0) {
            pthread_mutex_unlock(&claims_lock);
            return err_set(-EBUSY,
                           "another conditional request on %s is being answered; send this one "
                           "again once it is",
                           path);
        }
    c = calloc(1, sizeof(*c));
    if (c)
        c->path = strdup(path);
    if (!c || !c->path) {
        pthread_mutex_unlock(&claims_lock);
        free(c);
        return -ENOMEM;
    }
    c->next = claims;
    claims = c;
    pthread_mutex_unlock(&claims_lock);
    return 0;
}

static void
release_path(const char *path)
{
    pthread_mutex_lock(&claims_lock);
    for (struct claim **pp = &claims; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->path, path) == 0) {
            struct claim *c = *pp;
            *pp = c->next;
            free(c->path);
            free(c);
            break;
        }
    pthread_mutex_unlock(&claims_lock);
}

static const char *
no_query(const struct api_request *req, const char *key)
{
    return NULL;
}

static void
response_drop(struct api_response *resp)
{
    json_decref(resp->json);
    free(resp->text);
    if (resp->stream) {
        if (resp->stream->free)
            resp->stream->free(resp->stream->opaque);
        free(resp->stream);
    }
    if (resp->work.free)
        resp->work.free(resp->work.ctx);
    memset(resp, 0, sizeof(*resp));
}

/*
 * The current ETag of req's resource into etag, from its GET handler run
 * here (its default representation). Returns 1, 0 when there is no such
 * resource (its GET answers 404), or a negative errno with a detail.
 */
static int
current_etag(const struct api_request *req, char etag[API_ETAG_MAX])
{
    struct api_request get = {
        .method = "GET",
        .path = req->path,
        .n_params = req->n_params,
        .query = no_query,
        .trusted = req->trusted,
    };
    struct api_response cur = {0};
    int r;

    for (size_t i = 0; i < req->n_params && i < API_MAX_PARAMS; i++)
        get.params[i] = req->params[i];
    r = req->cond->get(&get, &cur);
    if (r == 0 && cur.work.run) {
        /* A GET that would answer later: ask it here, without waiting for a job. */
        struct api_work work = cur.work;
        memset(&cur.work, 0, sizeof(cur.work));
        memset(&cur.wait, 0, sizeof(cur.wait));
        r = work.run(work.ctx, &cur);
        work.free(work.ctx);
    }
    if (r == 0)
        r = api_etag(&cur, etag) == 0 ? 1 : 0;
    else if (r == -ENOENT) {
        err_clear();
        r = 0;
    }
    response_drop(&cur);
    return r;
}

/* Whether req's preconditions hold now: 0, -ESTALE with a detail, or another error. */
static int
cond_check(const struct api_request *req)
{
    const struct api_cond *c = req->cond;
    enum api_cond_result res;
    char etag[API_ETAG_MAX];
    int have, r;

    have = current_etag(req, etag);
    if (have < 0)
        return have;
    r = api_cond_evaluate(c->if_match, c->if_none_match, have ? etag : NULL, false, &res);
    if (r < 0)
        return r;
    if (res == API_COND_PASS)
        return 0;
    if (!have)
        return err_set(-ESTALE,
                       "%s does not exist, and If-Match asks for a current representation; "
                       "nothing was changed",
                       req->path);
    if (c->if_match) {
        bool match = false;
        api_etag_match("If-Match", c->if_match, etag, false, &match);
        if (!match)
            return err_set(-ESTALE,
                           "the current ETag of %s is %s, which If-Match does not name (it "
                           "changed since it was read); nothing was changed",
                           req->path, etag);
    }
    return err_set(-ESTALE,
                   "the current ETag of %s is %s, which If-None-Match names; nothing was changed",
                   req->path, etag);
}

int
api_cond_call(const struct api_request *req, struct api_response *resp, api_handler_fn handler)
{
    int r;

    if (!req->cond || (!req->cond->if_match && !req->cond->if_none_match))
        return handler(req, resp);
    r = claim_path(req->path);
    if (r < 0)
        return r;
    r = cond_check(req);
    if (r == 0)
        r = handler(req, resp);
    release_path(req->path);
    return r;
}
