/*
 * db/jobs.h - the jobs table: one row per job of core/jobs.h, written at
 * every state change so that a restart can tell how each job ended.
 *
 * A struct db_job is a plain copy of one row. Its strings are owned by the
 * struct and freed by db_job_free(); NULL means SQL NULL. Times are
 * milliseconds since the epoch, 0 when not (yet) set. error_errno is 0 while
 * the job has no error, else the negative errno it ended with, and
 * error_detail the sentence that came with it.
 */
#ifndef VV_DB_JOBS_H
#define VV_DB_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;

enum db_job_state {
    DB_JOB_QUEUED,
    DB_JOB_RUNNING,
    DB_JOB_SUCCEEDED,
    DB_JOB_FAILED,
    DB_JOB_CANCELLED,
};

#define DB_JOB_ID_LEN 32

struct db_job {
    char id[DB_JOB_ID_LEN + 1];
    char *kind;
    char *domain;      /* name of the domain, or NULL for a job on no domain */
    char *domain_uuid; /* or NULL */
    enum db_job_state state;
    uint64_t bytes_done;
    uint64_t bytes_total;
    int error_errno;
    char *error_detail;
    char *result; /* JSON text, or NULL */
    char *params; /* the kind's own text, for recovery; or NULL */
    int64_t created_ms;
    int64_t started_ms;
    int64_t finished_ms;
};

/* What db_job_list() returns: every field is optional (NULL / 0 = no filter). */
struct db_job_filter {
    const char *domain; /* a domain name or UUID */
    const char *state;  /* a state name */
    int64_t before_seq; /* only rows older than this cursor; 0: from the newest */
    unsigned limit;     /* at most this many rows; 0: 100 */
};

/* "queued", "running", ...; never NULL. */
const char *db_job_state_name(enum db_job_state s);

/* Parses a state name; -EINVAL when it is none. */
int db_job_state_from_string(const char *s, enum db_job_state *ret);

/* True for succeeded, failed and cancelled. */
bool db_job_state_final(enum db_job_state s);

/* Deep copy of j into a new struct. Returns 0 or -ENOMEM; *ret filled on success. */
int db_job_copy(const struct db_job *j, struct db_job **ret);

/* Frees the members of j (not j itself). Accepts NULL. */
void db_job_clear(struct db_job *j);

/* Frees j and its members. Accepts NULL. */
void db_job_free(struct db_job *j);

static inline void
db_job_freep(struct db_job **j)
{
    db_job_free(*j);
}

/* Frees an array returned by db_job_list() or db_job_list_unfinished(). */
void db_job_list_free(struct db_job *list, size_t n);

/*
 * Inserts the job, or updates every column of the row with its id. The row
 * is on disk when this returns 0; else a negative errno with a detail.
 */
int db_job_put(struct db *db, const struct db_job *j);

/* Reads the job with this id into a new struct. -ENOENT when there is none. */
int db_job_get(struct db *db, const char *id, struct db_job **ret);

/*
 * Lists jobs, newest first, that pass filter f. *ret is a new array of
 * *ret_n jobs. *ret_next is the cursor (a before_seq) for the next page, or
 * 0 when this page is the last.
 */
int db_job_list(struct db *db, const struct db_job_filter *f, struct db_job **ret, size_t *ret_n,
                int64_t *ret_next);

/* Lists the jobs still queued or running, oldest first, into a new array. */
int db_job_list_unfinished(struct db *db, struct db_job **ret, size_t *ret_n);

#endif
