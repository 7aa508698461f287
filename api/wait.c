/*
 * Waiting for a job's end without holding a thread: the `wait` query
 * parameter, the answer a wait ends with (api_wait_job), and the job-end
 * waiters the server registers for its suspended requests (feed.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_json.h"
#include "cleanup.h"
#include "core/jobs.h"
#include "err.h"
#include "feed.h"
#include "log.h"

int
api_query_wait(const struct api_request *req, unsigned *ret)
{
    const char *s = req->query(req, "wait");
    unsigned long v = 0;

    if (!s) {
        *ret = 0;
        return 0;
    }
    /* Digits only: no sign, no fraction, no spaces; at most three of them matter. */
    for (const char *p = s; *p && v <= API_WAIT_MAX; p++) {
        if (*p < '0' || *p > '9') {
            v = API_WAIT_MAX + 1;
            break;
        }
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (!s[0] || v > API_WAIT_MAX)
        return err_set_parameter(-EINVAL, "wait", "must be a whole number of seconds from 0 to %d",
                                 API_WAIT_MAX);
    *ret = (unsigned)v;
    return 0;
}

/* What a wait answers with once it is over. */
struct wait_answer {
    char job_id[72];
    int status;   /* the answer as given, for a job that has not ended */
    json_t *json; /* owned */
    char location[512];
    bool renew;
};

static void
wait_answer_free(void *ctx)
{
    struct wait_answer *w = ctx;

    if (!w)
        return;
    json_decref(w->json);
    free(w);
}

/* The wait is over (the job ended or the time passed): on an HTTP thread, quick. */
static int
wait_answer_run(void *ctx, struct api_response *resp)
{
    struct wait_answer *w = ctx;
    _cleanup_(conf_job_freep) struct conf_job *j = NULL;
    int r;

    r = core_job_get(w->job_id, &j);
    if (r < 0 && (w->renew || r != -ENOENT))
        return r;
    if (r >= 0 && (conf_job_state_final(j->state) || w->renew)) {
        snprintf(resp->location, sizeof(resp->location), "%s", w->location);
        return api_reply(resp, 200, api_job_json(j));
    }
    snprintf(resp->location, sizeof(resp->location), "%s", w->location);
    return api_reply(resp, w->status, TAKE_PTR(w->json));
}

int
api_wait_job(struct api_response *resp, const char *job_id, unsigned seconds, bool renew)
{
    struct wait_answer *w;

    if (seconds == 0)
        return 0;
    if (strlen(job_id) >= sizeof(w->job_id) || !resp->json)
        return -EINVAL;
    w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    snprintf(w->job_id, sizeof(w->job_id), "%s", job_id);
    w->status = resp->status;
    w->json = TAKE_PTR(resp->json);
    snprintf(w->location, sizeof(w->location), "%s", resp->location);
    w->renew = renew;
    resp->work = (struct api_work){.run = wait_answer_run, .free = wait_answer_free, .ctx = w};
    snprintf(resp->wait.job_id, sizeof(resp->wait.job_id), "%s", job_id);
    resp->wait.seconds = seconds;
    return 0;
}

struct api_job_waiter {
    struct job_waiter w; /* first: the runner's view */
    void (*fn)(void *opaque);
    void *opaque;
};

static void
waiter_ended(struct job_waiter *jw)
{
    struct api_job_waiter *w = (struct api_job_waiter *)jw;

    w->fn(w->opaque);
}

int
api_job_waiter_new(const char *id, void (*fn)(void *opaque), void *opaque,
                   struct api_job_waiter **ret)
{
    struct api_job_waiter *w = calloc(1, sizeof(*w));

    if (!w)
        return -ENOMEM;
    w->w.ended = waiter_ended;
    w->fn = fn;
    w->opaque = opaque;
    if (core_job_wait(id, &w->w) == 1) {
        free(w);
        return 1;
    }
    *ret = w;
    return 0;
}

void
api_job_waiter_free(struct api_job_waiter *w)
{
    if (!w)
        return;
    core_job_unwait(&w->w);
    free(w);
}

int
api_reply_job(struct api_response *resp, struct conf_job *job, unsigned wait)
{
    int r;

    api_set_location(resp, "/v1/jobs/%s", job->id);
    r = api_reply(resp, 202, api_job_json(job));
    /* With a wait: the deferred half waits in turn, holding no thread. */
    if (r >= 0 && api_wait_job(resp, job->id, wait, false) < 0)
        log_warn("job %s: cannot wait for its end; answered at once", job->id);
    conf_job_free(job);
    return r;
}
