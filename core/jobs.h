/*
 * jobs.h - long operations that run in the background, as jobs.
 *
 * A job is one run of a job kind (a static struct job_kind: its enum
 * conf_job_kind, such as CONF_JOB_KIND_SNAPSHOT_CREATE, and the functions
 * that do the work) on at most one
 * domain. core_job_submit() claims the domain (busy.h) for the whole life of
 * the job, stores the job as queued and hands it to a small pool of worker
 * threads; a worker calls the kind's run() and records how it ended.
 *
 *     queued -> running -> succeeded | failed | cancelled
 *     queued -> cancelled                       (cancelled before it ran)
 *
 * Every state change is written to the database (db/jobs.h) before anyone
 * hears of it, so the table always tells how each job stands or ended. The
 * view callers get of a job is a struct conf_job copy (ownership: theirs, free
 * with conf_job_free); its fields are those of the API's job object.
 *
 * Writing a kind:
 *   - run(job, data) does the work on a worker thread. It may call
 *     job_progress() as often as it likes (the database sees at most one
 *     progress write a second), poll job_cancelled(), and set what the
 *     operation produced with job_set_result() (JSON object text: core stays
 *     free of a JSON library; the API layer renders it). It returns 0
 *     (succeeded), -ECANCELED (cancelled) or another negative errno with a
 *     detail set by err_set() (failed: the error becomes the job's problem
 *     object, mapped as any other error).
 *   - cancel(job, data), optional, is called on the thread that asked for
 *     the cancellation while run() runs (jobs are locked meanwhile: it must be
 *     quick, e.g. virDomainAbortJob). It returns 0, or a negative errno with a
 *     detail when the operation cannot be stopped (the request then fails
 *     with it and the job goes on). Without it, cancelling a running job only
 *     sets the flag that job_cancelled() reports.
 *   - recover(rec, &data), optional, is asked at start-up about each job the
 *     database shows running: a process that is gone was running it. It
 *     answers 1 with data when libvirt still runs the operation (or finished
 *     it meanwhile): the job is then run again with job_resumed() true, so
 *     that run() waits for libvirt and reports how the operation ended. Any
 *     other answer, a job without recover() and every job still queued, ends
 *     failed with -EINTR, which the API calls "interrupted".
 *   - params (struct job_spec) is text the kind keeps with the job for
 *     recover(): what run() needs to find its operation again.
 *
 * Listeners (core_jobs_listen) hear of every state change and of progress,
 * on the thread that made it, with the jobs lock held: they must return
 * quickly and must not call back into this module.
 *
 * Waiters (core_job_wait) hear once of one job's end, with the same rules;
 * whoever registers one may forget it at any time (core_job_unwait), and
 * then knows its ended() neither runs nor will run.
 */
#ifndef VV_CORE_JOBS_H
#define VV_CORE_JOBS_H

#include <stdbool.h>
#include <stdint.h>

#include "conf/job.h"

struct db;
struct job;

struct job_kind {
    enum conf_job_kind kind; /* one struct per kind */
    int (*run)(struct job *job, void *data);
    int (*cancel)(struct job *job, void *data);
    int (*recover)(const struct conf_job *rec, void **ret_data);
    void (*free_data)(void *data);
};

struct job_spec {
    const struct job_kind *kind;
    const char *domain;      /* the domain's name, or NULL for a job on no domain */
    const char *domain_uuid; /* claimed for the job's life; NULL with domain NULL */
    const char *params;      /* kept with the job for recover(), or NULL */
    const char *policy;      /* the protection policy that starts it, or NULL */
    void *data;              /* handed to run(); freed with kind->free_data */
};

typedef void (*core_job_listener_fn)(const struct conf_job *job, void *opaque);

/*
 * One wait for one job's end. The caller owns it and sets ended(); the
 * other fields are the runner's while it is registered.
 */
struct job_waiter {
    /* Called once, when the job ends, with the jobs lock held (see above). */
    void (*ended)(struct job_waiter *w);
    struct job *job; /* the runner's: the job waited on, NULL once it ended */
    struct job_waiter *next;
};

/*
 * Makes a kind known, so that jobs of it found in the database at start-up
 * can be recovered. Call before core_jobs_start(). Returns 0 or -ENOSPC.
 */
int core_jobs_register(const struct job_kind *kind);

/*
 * Recovers or closes the jobs left by an earlier process (see above) and
 * starts n_workers worker threads on db (borrowed until core_jobs_stop).
 * Returns 0 or a negative errno with a detail.
 */
int core_jobs_start(struct db *db, unsigned n_workers);

/*
 * Stops taking jobs, waits for the running ones to end, marks those still
 * queued failed (interrupted) and joins the workers. Safe without a start.
 */
void core_jobs_stop(void);

/*
 * Queues a job. spec->data is taken in every case (freed on failure). On
 * success *ret is a new copy of the queued job. Fails with -EBUSY (and the
 * holder in the detail) when the domain is claimed, -EAGAIN when the
 * service is stopping, or a database error.
 */
int core_job_submit(const struct job_spec *spec, struct conf_job **ret);

/* Reads one job into a new copy. -ENOENT when there is none. */
int core_job_get(const char *id, struct conf_job **ret);

/* Lists jobs newest first (see db_job_list for the filter, paging and ownership). */
int core_job_list(const struct conf_job_filter *f, struct conf_job **ret, size_t *ret_n,
                  int64_t *ret_next);

/*
 * Cancels a job: a queued one ends cancelled at once; for a running one the
 * flag is set and the kind's cancel() called. On success *ret is a new copy
 * of the job as it stands (still running when the operation has yet to
 * stop). -ENOENT for no such job, -EBADFD when it has ended already, or the
 * error of the kind's cancel().
 */
int core_job_cancel(const char *id, struct conf_job **ret);

/*
 * Adds a listener for job changes. Returns a handle (>= 0) for
 * core_jobs_unlisten, or -ENOSPC when all slots are taken.
 */
int core_jobs_listen(core_job_listener_fn fn, void *opaque);
void core_jobs_unlisten(int handle);

/*
 * Registers w (borrowed until it fired or core_job_unwait) for the end of
 * job id. Returns 0 (registered: w->ended will be called when the job
 * ends, unless forgotten first) or 1 when the job is not queued or running
 * (it has ended, or there is none: nothing to wait for; w is not kept).
 */
int core_job_wait(const char *id, struct job_waiter *w);

/*
 * Forgets w: once this returns, w->ended() does not run and will not be
 * called. Safe on a waiter that fired, or that core_job_wait did not keep.
 */
void core_job_unwait(struct job_waiter *w);

/* For run(): the job's id, domain UUID (or NULL) and params (or NULL). Borrowed. */
const char *job_id(const struct job *job);
const char *job_domain_uuid(const struct job *job);
const char *job_params(const struct job *job);

/* For run(): true when the job was taken over from an earlier process by recover(). */
bool job_resumed(const struct job *job);

/*
 * For run(): true once the service is stopping. A kind with recover() may
 * then return -ESHUTDOWN: the job is not ended but left running in the
 * database, for the next process to take over (an operation that goes on
 * without the service, such as a block copy in QEMU).
 */
bool job_stopping(const struct job *job);

/* For run(): true once a cancellation was asked for. */
bool job_cancelled(const struct job *job);

/* For run(): reports progress in bytes (total 0 while unknown). */
void job_progress(struct job *job, uint64_t done, uint64_t total);

/*
 * For run(): the job waits on clients for a long time (parked true: a pull
 * backup that is ready) or works again (false). Parked jobs do not count
 * against the number of jobs that work at once (the workers the runner was
 * started with): other jobs run beside them. Each parked job keeps its
 * thread, so the runner starts more threads as needed (at most 80 in all;
 * threads it started stay until the runner stops, idle).
 */
void job_park(struct job *job, bool parked);

/*
 * For run(): sets the job's result to a copy of json, which must be the text
 * of one JSON object. Returns 0 or -ENOMEM.
 */
int job_set_result(struct job *job, const char *json);

#endif
