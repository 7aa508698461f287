/*
 * conf/job.h - the record of a job (core/jobs.h), as the jobs table stores
 * it (db/jobs.h) and the API renders it.
 *
 * A struct conf_job is a plain copy of one job. Its strings are owned by the
 * struct and freed by conf_job_free(); NULL means none. Times are
 * milliseconds since the epoch, 0 when not (yet) set. error_errno is 0 while
 * the job has no error, else the negative errno it ended with, and
 * error_detail the sentence that came with it.
 */
#ifndef VV_CONF_JOB_H
#define VV_CONF_JOB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/enum.h"

enum conf_job_state {
    CONF_JOB_QUEUED,
    CONF_JOB_RUNNING,
    CONF_JOB_SUCCEEDED,
    CONF_JOB_FAILED,
    CONF_JOB_CANCELLED,
    CONF_JOB_STATE_LAST,
};

/*
 * What a job does; one struct job_kind (core/jobs.h) runs each. A row that
 * another version of the service wrote with a kind not in the table reads
 * as CONF_JOB_KIND_LAST, which has no name (the API says "unknown") and
 * leaves the stored name as it is.
 */
enum conf_job_kind {
    CONF_JOB_KIND_BACKUP,
    CONF_JOB_KIND_RESTORE,
    CONF_JOB_KIND_VERIFY,
    CONF_JOB_KIND_SNAPSHOT_CREATE,
    CONF_JOB_KIND_PRUNE,
    CONF_JOB_KIND_INSTANT_RECOVERY,
    CONF_JOB_KIND_BACKUP_COPY,
    CONF_JOB_KIND_OFFSITE_RESTORE,
    CONF_JOB_KIND_OFFSITE_PRUNE,
    CONF_JOB_KIND_LAST,
};

#define CONF_JOB_ID_LEN 32

struct conf_job {
    char id[CONF_JOB_ID_LEN + 1];
    enum conf_job_kind kind;
    char *domain;      /* name of the domain, or NULL for a job on no domain */
    char *domain_uuid; /* or NULL */
    enum conf_job_state state;
    uint64_t bytes_done;
    uint64_t bytes_total;
    int error_errno;
    char *error_detail;
    char *result; /* JSON text, or NULL */
    char *params; /* the kind's own text, for recovery; or NULL */
    char *policy; /* the protection policy that started it, or NULL */
    int64_t created_ms;
    int64_t started_ms;
    int64_t finished_ms;
};

/* Which jobs a listing returns: every field is optional (NULL / 0 = no filter). */
struct conf_job_filter {
    const char *domain;               /* a domain name or UUID */
    const enum conf_job_state *state; /* or NULL for any */
    int64_t before_seq;               /* only rows older than this cursor; 0: from the newest */
    unsigned limit;                   /* at most this many rows; 0: 100 */
};

/* "queued", "running", ... (never NULL for a value of the enum); parsing: -EINVAL for none. */
CONF_ENUM_DECL(conf_job_state, enum conf_job_state);

/* "backup", "restore", "verify", "snapshot_create", "prune"; parsing: -EINVAL for none. */
CONF_ENUM_DECL(conf_job_kind, enum conf_job_kind);

/* True for succeeded, failed and cancelled. */
bool conf_job_state_final(enum conf_job_state s);

/* Deep copy of j into a new struct. Returns 0 or -ENOMEM; *ret filled on success. */
int conf_job_copy(const struct conf_job *j, struct conf_job **ret);

/* Frees the members of j (not j itself). Accepts NULL. */
void conf_job_clear(struct conf_job *j);

/* Frees j and its members. Accepts NULL. */
void conf_job_free(struct conf_job *j);

static inline void
conf_job_freep(struct conf_job **j)
{
    conf_job_free(*j);
}

/*
 * A job's request to stop, set by whoever cancels it and checked by its long
 * operations between steps and while a program runs.
 */
struct conf_cancel {
    atomic_bool cancelled;
};

/* Frees an array of jobs (as listings return them). */
void conf_job_list_free(struct conf_job *list, size_t n);

#endif
