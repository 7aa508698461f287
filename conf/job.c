/* The job record (see job.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "job.h"

CONF_ENUM_IMPL(conf_job_state, enum conf_job_state, CONF_JOB_STATE_LAST, "queued", "running",
               "succeeded", "failed", "cancelled");

CONF_ENUM_IMPL(conf_job_kind, enum conf_job_kind, CONF_JOB_KIND_LAST, "backup", "restore", "verify",
               "snapshot_create", "prune", "instant_recovery", "backup_copy", "offsite_restore",
               "offsite_prune");

bool
conf_job_state_final(enum conf_job_state s)
{
    return s == CONF_JOB_SUCCEEDED || s == CONF_JOB_FAILED || s == CONF_JOB_CANCELLED;
}

static int
dup_or_null(const char *s, char **ret)
{
    *ret = NULL;
    if (!s)
        return 0;
    *ret = strdup(s);
    return *ret ? 0 : -ENOMEM;
}

int
conf_job_copy(const struct conf_job *j, struct conf_job **ret)
{
    _cleanup_(conf_job_freep) struct conf_job *c = calloc(1, sizeof(*c));

    if (!c)
        return -ENOMEM;
    *c = *j;
    c->domain = c->domain_uuid = c->error_detail = c->result = c->params = c->policy = NULL;
    if (dup_or_null(j->domain, &c->domain) < 0 ||
        dup_or_null(j->domain_uuid, &c->domain_uuid) < 0 ||
        dup_or_null(j->error_detail, &c->error_detail) < 0 ||
        dup_or_null(j->result, &c->result) < 0 || dup_or_null(j->params, &c->params) < 0 ||
        dup_or_null(j->policy, &c->policy) < 0)
        return -ENOMEM;
    *ret = TAKE_PTR(c);
    return 0;
}

void
conf_job_clear(struct conf_job *j)
{
    if (!j)
        return;
    free(j->domain);
    free(j->domain_uuid);
    free(j->error_detail);
    free(j->result);
    free(j->params);
    free(j->policy);
    memset(j, 0, sizeof(*j));
}

void
conf_job_free(struct conf_job *j)
{
    conf_job_clear(j);
    free(j);
}

void
conf_job_list_free(struct conf_job *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        conf_job_clear(&list[i]);
    free(list);
}
