/*
 * GET /v1/jobs, GET /v1/jobs/{id} (?wait=SECONDS: once the job ends, or the
 * time passes), DELETE /v1/jobs/{id}: the jobs of core/jobs.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "api_json.h"
#include "cleanup.h"
#include "core/jobs.h"
#include "err.h"
#include "log.h"
#include "problem.h"
#include "text.h"

json_t *
api_job_json(const struct conf_job *j)
{
    json_t *error = json_null();
    json_t *result = json_null();
    const char *kind;

    if (j->error_errno) {
        char instance[64];
        snprintf(instance, sizeof(instance), "/v1/jobs/%s", j->id);
        json_decref(error);
        error = problem_new(problem_for_errno(j->error_errno), j->error_detail, instance);
    }
    if (j->result) {
        json_error_t jerr;
        json_t *parsed = json_loads(j->result, JSON_REJECT_DUPLICATES, &jerr);
        if (parsed) {
            json_decref(result);
            result = parsed;
        } else {
            log_warn("job %s: its result is not JSON: %s", j->id, jerr.text);
        }
    }
    kind = conf_job_kind_to_string(j->kind);
    return json_pack("{s:s, s:s, s:s?, s:s, s:{s:I, s:I}, s:o, s:o, s:o, s:o, s:o, s:s?}", "id",
                     j->id, "kind", kind ? kind : "unknown", "domain", j->domain, "state",
                     conf_job_state_to_string(j->state), "progress", "bytes_done",
                     (json_int_t)j->bytes_done, "bytes_total", (json_int_t)j->bytes_total, "error",
                     error, "result", result, "created_at", api_time_json(j->created_ms),
                     "started_at", api_time_json(j->started_ms), "finished_at",
                     api_time_json(j->finished_ms), "policy", j->policy);
}

int
api_jobs_list(const struct api_request *req, struct api_response *resp)
{
    static const char *const states[] = {"queued", "running",   "succeeded",
                                         "failed", "cancelled", NULL};
    struct conf_job_filter f = {0};
    enum conf_job_state state;
    const char *state_s = NULL;
    struct conf_job *list = NULL;
    size_t n = 0;
    int64_t next = 0;
    json_t *items;
    int r;

    f.domain = req->query(req, "domain");
    if (f.domain && !f.domain[0])
        return err_set_parameter(-EINVAL, "domain", "must not be empty");
    r = api_query_enum(req, "state", states, NULL, &state_s);
    if (r < 0)
        return r;
    if (state_s && conf_job_state_from_string(state_s, &state) == 0)
        f.state = &state;
    r = api_query_seq_page(req, "jobs", true, &f.limit, &f.before_seq);
    if (r < 0)
        return r;
    r = core_job_list(&f, &list, &n, &next);
    if (r < 0)
        return r;
    items = json_array();
    for (size_t i = 0; items && i < n; i++)
        json_array_append_new(items, api_job_json(&list[i]));
    conf_job_list_free(list, n);
    return api_reply(resp, 200, api_seq_page_json(items, "jobs", true, next));
}

int
api_job_get(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(conf_job_freep) struct conf_job *j = NULL;
    unsigned wait;
    int r;

    r = api_query_wait(req, &wait);
    if (r < 0)
        return r;
    r = core_job_get(req->params[0], &j);
    if (r < 0)
        return r;
    r = api_reply(resp, 200, api_job_json(j));
    if (r < 0 || conf_job_state_final(j->state))
        return r;
    /* Not ended yet: with ?wait, answer once it ends or the time passes. */
    return api_wait_job(resp, j->id, wait, true);
}

int
api_job_cancel(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(conf_job_freep) struct conf_job *j = NULL;
    int r;

    r = core_job_cancel(req->params[0], &j);
    if (r < 0)
        return r;
    /* 200: it ended cancelled; 202: the operation was asked to stop and will end soon. */
    return api_reply(resp, conf_job_state_final(j->state) ? 200 : 202, api_job_json(j));
}
