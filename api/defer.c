/*
 * api_defer(): a handler's copy of its request, for a worker thread. The
 * transport's query() reads the connection, which a worker must not touch;
 * the copy answers query() from the values taken while the request was
 * still on its HTTP thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#define FROZEN_MAX_KEYS 8

struct frozen {
    struct api_request req;
    api_handler_fn handler;
    char *method, *path;
    char *params[API_MAX_PARAMS];
    const char *keys[FROZEN_MAX_KEYS]; /* static strings of the handler */
    char *values[FROZEN_MAX_KEYS];     /* NULL: absent */
    size_t n_keys;
    struct api_cond cond; /* the request's preconditions, checked again before handler */
    char *if_match, *if_none_match;
};

static const char *
frozen_query(const struct api_request *req, const char *key)
{
    const struct frozen *f = req->transport;

    for (size_t i = 0; i < f->n_keys; i++)
        if (strcmp(f->keys[i], key) == 0)
            return f->values[i];
    return NULL;
}

static void
frozen_free(void *ctx)
{
    struct frozen *f = ctx;

    if (!f)
        return;
    json_decref(f->req.body);
    free(f->method);
    free(f->path);
    free(f->if_match);
    free(f->if_none_match);
    for (size_t i = 0; i < API_MAX_PARAMS; i++)
        free(f->params[i]);
    for (size_t i = 0; i < f->n_keys; i++)
        free(f->values[i]);
    free(f);
}

static int
frozen_run(void *ctx, struct api_response *resp)
{
    struct frozen *f = ctx;

    return api_cond_call(&f->req, resp, f->handler);
}

static char *
dup_or_null(const char *s, bool *failed)
{
    char *d;

    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *failed = true;
    return d;
}

int
api_defer(const struct api_request *req, struct api_response *resp, api_handler_fn handler,
          const char *const *keys)
{
    struct frozen *f = calloc(1, sizeof(*f));
    bool failed = false;

    if (!f)
        return -ENOMEM;
    f->handler = handler;
    f->method = dup_or_null(req->method, &failed);
    f->path = dup_or_null(req->path, &failed);
    for (size_t i = 0; i < req->n_params && i < API_MAX_PARAMS; i++)
        f->params[i] = dup_or_null(req->params[i], &failed);
    for (size_t i = 0; keys && keys[i]; i++) {
        if (f->n_keys == FROZEN_MAX_KEYS)
            abort(); /* a handler names more keys than it may: a bug, not an input */
        f->keys[f->n_keys] = keys[i];
        f->values[f->n_keys++] = dup_or_null(req->query(req, keys[i]), &failed);
    }
    if (req->cond) {
        f->if_match = dup_or_null(req->cond->if_match, &failed);
        f->if_none_match = dup_or_null(req->cond->if_none_match, &failed);
        f->cond = (struct api_cond){
            .get = req->cond->get,
            .if_match = f->if_match,
            .if_none_match = f->if_none_match,
        };
    }
    if (failed) {
        frozen_free(f);
        return -ENOMEM;
    }
    f->req = (struct api_request){
        .method = f->method,
        .path = f->path,
        .n_params = req->n_params,
        .body = json_incref(req->body),
        .query = frozen_query,
        .transport = f,
        .trusted = req->trusted,
        .cond = req->cond ? &f->cond : NULL,
    };
    for (size_t i = 0; i < API_MAX_PARAMS; i++)
        f->req.params[i] = f->params[i];
    resp->work = (struct api_work){.run = frozen_run, .free = frozen_free, .ctx = f};
    return 0;
}
