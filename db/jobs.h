/*
 * db/jobs.h - the jobs table: one row per job of core/jobs.h, written at
 * every state change so that a restart can tell how each job ended.
 *
 * A struct conf_job is a plain copy of one row. Its strings are owned by the
 * struct and freed by conf_job_free(); NULL means SQL NULL. Times are
 * milliseconds since the epoch, 0 when not (yet) set. error_errno is 0 while
 * the job has no error, else the negative errno it ended with, and
 * error_detail the sentence that came with it.
 */
#ifndef VV_DB_JOBS_H
#define VV_DB_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/job.h"

struct db;

/*
 * Inserts the job, or updates every column of the row with its id. The row
 * is on disk when this returns 0; else a negative errno with a detail.
 */
int db_job_put(struct db *db, const struct conf_job *j);

/* Reads the job with this id into a new struct. -ENOENT when there is none. */
int db_job_get(struct db *db, const char *id, struct conf_job **ret);

/*
 * Lists jobs, newest first, that pass filter f. *ret is a new array of
 * *ret_n jobs. *ret_next is the cursor (a before_seq) for the next page, or
 * 0 when this page is the last.
 */
int db_job_list(struct db *db, const struct conf_job_filter *f, struct conf_job **ret,
                size_t *ret_n, int64_t *ret_next);

/* Lists the jobs still queued or running, oldest first, into a new array. */
int db_job_list_unfinished(struct db *db, struct conf_job **ret, size_t *ret_n);

#endif
