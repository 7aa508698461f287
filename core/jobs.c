/* The jobs runner: a queue, a few worker threads, the database as the record (see jobs.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busy.h"
#include "cleanup.h"
#include "db/jobs.h"
#include "err.h"
#include "jobs.h"
#include "log.h"
#include "text.h"

#define MAX_KINDS        16
#define MAX_LISTENERS    16
#define MAX_WORKERS      80 /* the workers asked for, plus those added for parked jobs */
#define PROGRESS_SAVE_MS 1000

struct job {
    struct conf_job rec; /* guarded by jobs.lock */
    const struct job_kind *kind;
    void *data;
    bool taken;   /* a worker has it */
    bool resumed; /* recovered from an earlier process */
    bool parked;  /* waits on clients (job_park) */
    atomic_bool cancel;
    int64_t progress_saved_ms;
    struct job_waiter *waiters; /* core_job_wait's, told when it ends */
    struct job *next;
};

struct listener {
    core_job_listener_fn fn;
    void *opaque;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct db *db;
    struct job *live; /* queued and running jobs, oldest first */
    pthread_t workers[MAX_WORKERS];
    size_t n_workers;
    size_t base_workers; /* how many were asked for: at most this many jobs work at once */
    size_t n_parked;
    size_t n_active; /* jobs taken by a worker and not parked */
    bool started, stopping;
    const struct job_kind *kinds[MAX_KINDS];
    size_t n_kinds;
    struct listener listeners[MAX_LISTENERS];
} jobs = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
};

/* The kind's name for messages: "unknown" for a kind of another version. */
static const char *
kind_name(enum conf_job_kind kind)
{
    const char *s = conf_job_kind_to_string(kind);

    return s ? s : "unknown";
}

static void
job_free(struct job *j)
{
    if (!j)
        return;
    if (j->data && j->kind && j->kind->free_data)
        j->kind->free_data(j->data);
    conf_job_clear(&j->rec);
    free(j);
}

/* Writes the job's row and tells the listeners. Called with jobs.lock held. */
static void
save_locked(struct job *j)
{
    int r = db_job_put(jobs.db, &j->rec);

    if (r < 0)
        log_error("job %s: cannot record its state: %s", j->rec.id,
                  err_detail() ? err_detail() : strerror(-r));
    for (size_t i = 0; i < MAX_LISTENERS; i++)
        if (jobs.listeners[i].fn)
            jobs.listeners[i].fn(&j->rec, jobs.listeners[i].opaque);
}

/* Ends the job with state and error (0 for none). Called with jobs.lock held. */
static void
finish_locked(struct job *j, enum conf_job_state state, int err, const char *detail)
{
    j->rec.state = state;
    j->rec.finished_ms = text_now_ms();
    j->rec.error_errno = err;
    free(j->rec.error_detail);
    j->rec.error_detail = NULL;
    if (err) {
        j->rec.error_detail = strdup(detail && detail[0] ? detail : strerror(-err));
        if (!j->rec.error_detail)
            log_error("job %s: out of memory for its error detail", j->rec.id);
    }
    save_locked(j);
    /* The row says how it ended: whoever waited may read it now. */
    while (j->waiters) {
        struct job_waiter *w = j->waiters;
        j->waiters = w->next;
        w->next = NULL;
        w->job = NULL;
        w->ended(w);
    }
}

static void
unlink_locked(struct job *j)
{
    for (struct job **p = &jobs.live; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            j->next = NULL;
            return;
        }
    }
}

static struct job *
find_live_locked(const char *id)
{
    for (struct job *j = jobs.live; j; j = j->next)
        if (strcmp(j->rec.id, id) == 0)
            return j;
    return NULL;
}

static void
release_domain(struct job *j)
{
    if (j->rec.domain_uuid)
        core_busy_release(j->rec.domain_uuid);
}

static void
run_one(struct job *j)
{
    int r;

    log_info("job %s (%s) %s", j->rec.id, kind_name(j->rec.kind),
             j->resumed ? "resumed" : "started");
    err_clear();
    r = j->kind->run(j, j->data);

    pthread_mutex_lock(&jobs.lock);
    if (!j->parked)
        jobs.n_active--;
    else
        jobs.n_parked--;
    pthread_cond_broadcast(&jobs.wake); /* a place to work is free */
    if (r == -ESHUTDOWN && jobs.stopping)
        /* Handed over: the row stays running for the next process's recover(). */
        log_info("job %s (%s) left running for the next start", j->rec.id, kind_name(j->rec.kind));
    else if (r == 0)
        finish_locked(j, CONF_JOB_SUCCEEDED, 0, NULL);
    else if (r == -ECANCELED)
        finish_locked(j, CONF_JOB_CANCELLED, r,
                      err_detail() ? err_detail() : "the job was cancelled");
    else
        finish_locked(j, CONF_JOB_FAILED, r, err_detail());
    unlink_locked(j);
    pthread_mutex_unlock(&jobs.lock);

    log_info("job %s (%s) %s%s%s", j->rec.id, kind_name(j->rec.kind),
             conf_job_state_to_string(j->rec.state), r < 0 ? ": " : "",
             r < 0 && j->rec.error_detail ? j->rec.error_detail : "");
    release_domain(j);
    job_free(j);
}

static void *
worker_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct job *j = NULL;

        pthread_mutex_lock(&jobs.lock);
        for (;;) {
            j = NULL;
            if (jobs.n_active < jobs.base_workers) /* parked jobs do not count */
                for (j = jobs.live; j && j->taken; j = j->next)
                    ;
            if (j || jobs.stopping)
                break;
            pthread_cond_wait(&jobs.wake, &jobs.lock);
        }
        if (!j || jobs.stopping) {
            pthread_mutex_unlock(&jobs.lock);
            return NULL;
        }
        j->taken = true;
        jobs.n_active++;
        if (j->rec.state == CONF_JOB_QUEUED) {
            j->rec.state = CONF_JOB_RUNNING;
            j->rec.started_ms = text_now_ms();
            save_locked(j);
        }
        pthread_mutex_unlock(&jobs.lock);
        run_one(j);
    }
}

/* Starts one more worker. Returns 0 or -EAGAIN (at the bound, or no thread). */
static int
spawn_worker_locked(void)
{
    if (jobs.n_workers >= MAX_WORKERS ||
        pthread_create(&jobs.workers[jobs.n_workers], NULL, worker_main, NULL) != 0)
        return -EAGAIN;
    jobs.n_workers++;
    return 0;
}

int
core_jobs_register(const struct job_kind *kind)
{
    int r = 0;

    pthread_mutex_lock(&jobs.lock);
    if (jobs.n_kinds >= MAX_KINDS)
        r = err_set(-ENOSPC, "too many job kinds");
    else
        jobs.kinds[jobs.n_kinds++] = kind;
    pthread_mutex_unlock(&jobs.lock);
    return r;
}

static const struct job_kind *
kind_find(enum conf_job_kind kind)
{
    for (size_t i = 0; i < jobs.n_kinds; i++)
        if (jobs.kinds[i]->kind == kind)
            return jobs.kinds[i];
    return NULL;
}

static char *
holder_text(const struct conf_job *rec)
{
    char *s = NULL;

    if (asprintf(&s, "job %s (%s)", rec->id, kind_name(rec->kind)) < 0)
        return NULL;
    return s;
}

/* Takes over one job left running or queued by an earlier process. */
static void
recover_one(struct conf_job *rec)
{
    const struct job_kind *kind = kind_find(rec->kind);
    _cleanup_free_ char *holder = NULL;
    struct job *j;
    void *data = NULL;
    int r = 0;

    if (kind && kind->recover && rec->state == CONF_JOB_RUNNING) {
        err_clear();
        r = kind->recover(rec, &data);
        if (r < 0)
            log_warn("job %s (%s): cannot tell whether libvirt still runs it: %s", rec->id,
                     kind_name(rec->kind), err_detail() ? err_detail() : strerror(-r));
    }
    holder = holder_text(rec);
    j = calloc(1, sizeof(*j));
    if (r == 1 && j && holder &&
        (!rec->domain_uuid || core_busy_claim(rec->domain_uuid, holder) == 0)) {
        j->rec = *rec;
        memset(rec, 0, sizeof(*rec));
        j->kind = kind;
        j->data = data;
        j->resumed = true;
        pthread_mutex_lock(&jobs.lock);
        j->next = NULL;
        struct job **p = &jobs.live;
        while (*p)
            p = &(*p)->next;
        *p = j;
        pthread_mutex_unlock(&jobs.lock);
        log_info("job %s (%s): libvirt still runs it; taken over", j->rec.id,
                 kind_name(j->rec.kind));
        return;
    }
    free(j);
    if (data && kind->free_data)
        kind->free_data(data);

    struct job tmp = {.rec = *rec};
    memset(rec, 0, sizeof(*rec));
    pthread_mutex_lock(&jobs.lock);
    finish_locked(&tmp, CONF_JOB_FAILED, -EINTR,
                  tmp.rec.state == CONF_JOB_QUEUED
                      ? "interrupted: the service stopped before the job started"
                      : "interrupted: the service stopped while the job was running");
    pthread_mutex_unlock(&jobs.lock);
    log_warn("job %s (%s) was interrupted by a restart", tmp.rec.id, kind_name(tmp.rec.kind));
    conf_job_clear(&tmp.rec);
}

int
core_jobs_start(struct db *db, unsigned n_workers)
{
    struct conf_job *left = NULL;
    size_t n = 0;
    int r;

    jobs.db = db;
    r = db_job_list_unfinished(db, &left, &n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++)
        recover_one(&left[i]);
    conf_job_list_free(left, n);

    if (n_workers > MAX_WORKERS)
        n_workers = MAX_WORKERS;
    pthread_mutex_lock(&jobs.lock);
    jobs.stopping = false;
    jobs.base_workers = n_workers;
    jobs.n_active = jobs.n_parked = 0;
    for (size_t i = 0; i < n_workers && r >= 0; i++)
        r = spawn_worker_locked();
    pthread_mutex_unlock(&jobs.lock);
    if (r < 0) {
        core_jobs_stop();
        return err_set(-EAGAIN, "cannot start the job workers");
    }
    jobs.started = true;
    return 0;
}

void
core_jobs_stop(void)
{
    struct job *left;

    pthread_mutex_lock(&jobs.lock);
    jobs.stopping = true;
    pthread_cond_broadcast(&jobs.wake);
    pthread_mutex_unlock(&jobs.lock);
    for (size_t i = 0; i < jobs.n_workers; i++)
        pthread_join(jobs.workers[i], NULL);
    jobs.n_workers = 0;

    /* No worker runs now: what is left never started. */
    pthread_mutex_lock(&jobs.lock);
    left = TAKE_PTR(jobs.live);
    for (struct job *j = left; j; j = j->next)
        if (jobs.db)
            finish_locked(j, CONF_JOB_FAILED, -EINTR,
                          "interrupted: the service stopped before the job started");
    pthread_mutex_unlock(&jobs.lock);
    while (left) {
        struct job *next = left->next;
        release_domain(left);
        job_free(left);
        left = next;
    }
    jobs.started = false;
    jobs.db = NULL;
}

static int
dup_or_null(const char *s, char **ret)
{
    *ret = NULL;
    if (s && !(*ret = strdup(s)))
        return -ENOMEM;
    return 0;
}

int
core_job_submit(const struct job_spec *spec, struct conf_job **ret)
{
    _cleanup_free_ char *holder = NULL;
    struct job *j;
    int r;

    j = calloc(1, sizeof(*j));
    if (!j) {
        if (spec->data && spec->kind->free_data)
            spec->kind->free_data(spec->data);
        return -ENOMEM;
    }
    j->kind = spec->kind;
    j->data = spec->data;
    j->rec.state = CONF_JOB_QUEUED;
    j->rec.created_ms = text_now_ms();
    r = text_random_hex(j->rec.id, sizeof(j->rec.id), CONF_JOB_ID_LEN / 2);
    j->rec.kind = spec->kind->kind;
    if (r >= 0)
        r = dup_or_null(spec->domain, &j->rec.domain);
    if (r >= 0)
        r = dup_or_null(spec->domain_uuid, &j->rec.domain_uuid);
    if (r >= 0)
        r = dup_or_null(spec->params, &j->rec.params);
    if (r >= 0)
        r = dup_or_null(spec->policy, &j->rec.policy);
    if (r >= 0 && !(holder = holder_text(&j->rec)))
        r = -ENOMEM;
    if (r < 0) {
        job_free(j);
        return r;
    }
    if (spec->domain_uuid) {
        r = core_busy_claim(spec->domain_uuid, holder);
        if (r < 0) {
            job_free(j);
            return r;
        }
    }

    pthread_mutex_lock(&jobs.lock);
    if (!jobs.started || jobs.stopping) {
        r = err_set(-EAGAIN, "the service is stopping; no new jobs are taken");
    } else {
        r = db_job_put(jobs.db, &j->rec);
        if (r >= 0)
            r = conf_job_copy(&j->rec, ret);
    }
    if (r < 0) {
        pthread_mutex_unlock(&jobs.lock);
        release_domain(j);
        job_free(j);
        return r;
    }
    struct job **p = &jobs.live;
    while (*p)
        p = &(*p)->next;
    *p = j;
    for (size_t i = 0; i < MAX_LISTENERS; i++)
        if (jobs.listeners[i].fn)
            jobs.listeners[i].fn(&j->rec, jobs.listeners[i].opaque);
    pthread_cond_signal(&jobs.wake);
    pthread_mutex_unlock(&jobs.lock);
    return 0;
}

int
core_job_get(const char *id, struct conf_job **ret)
{
    struct job *j;
    int r;

    /* A live job's progress is newer in memory than in the database. */
    pthread_mutex_lock(&jobs.lock);
    j = find_live_locked(id);
    r = j ? conf_job_copy(&j->rec, ret) : 1;
    pthread_mutex_unlock(&jobs.lock);
    if (r <= 0)
        return r;
    return db_job_get(jobs.db, id, ret);
}

int
core_job_list(const struct conf_job_filter *f, struct conf_job **ret, size_t *ret_n,
              int64_t *ret_next)
{
    struct conf_job *list = NULL;
    size_t n = 0;
    int r;

    r = db_job_list(jobs.db, f, &list, &n, ret_next);
    if (r < 0)
        return r;
    /* Live jobs: show their progress as it is now. */
    pthread_mutex_lock(&jobs.lock);
    for (size_t i = 0; i < n; i++) {
        struct job *j = find_live_locked(list[i].id);
        if (j && j->rec.state == list[i].state) {
            list[i].bytes_done = j->rec.bytes_done;
            list[i].bytes_total = j->rec.bytes_total;
        }
    }
    pthread_mutex_unlock(&jobs.lock);
    *ret = list;
    *ret_n = n;
    return 0;
}

int
core_job_cancel(const char *id, struct conf_job **ret)
{
    _cleanup_(conf_job_freep) struct conf_job *stored = NULL;
    struct job *j;
    int r;

    pthread_mutex_lock(&jobs.lock);
    j = find_live_locked(id);
    if (j && !j->taken) {
        /* Never started: it ends here. */
        finish_locked(j, CONF_JOB_CANCELLED, -ECANCELED, "the job was cancelled before it started");
        unlink_locked(j);
        r = conf_job_copy(&j->rec, ret);
        pthread_mutex_unlock(&jobs.lock);
        log_info("job %s (%s) cancelled before it started", j->rec.id, kind_name(j->rec.kind));
        release_domain(j);
        job_free(j);
        return r;
    }
    if (j) {
        bool was = atomic_exchange(&j->cancel, true);
        r = 0;
        if (!was && j->kind->cancel) {
            r = j->kind->cancel(j, j->data);
            if (r < 0)
                atomic_store(&j->cancel, false);
        }
        if (r >= 0) {
            log_info("job %s (%s): cancellation requested", id, kind_name(j->rec.kind));
            r = conf_job_copy(&j->rec, ret);
        }
        pthread_mutex_unlock(&jobs.lock);
        return r;
    }
    pthread_mutex_unlock(&jobs.lock);

    r = db_job_get(jobs.db, id, &stored);
    if (r < 0)
        return r;
    return err_set(-EBADFD, "job '%s' has ended already (%s)", id,
                   conf_job_state_to_string(stored->state));
}

int
core_jobs_listen(core_job_listener_fn fn, void *opaque)
{
    int r = err_set(-ENOSPC, "too many job listeners");

    pthread_mutex_lock(&jobs.lock);
    for (size_t i = 0; i < MAX_LISTENERS; i++) {
        if (!jobs.listeners[i].fn) {
            jobs.listeners[i] = (struct listener){fn, opaque};
            r = (int)i;
            break;
        }
    }
    pthread_mutex_unlock(&jobs.lock);
    return r;
}

void
core_jobs_unlisten(int handle)
{
    if (handle < 0 || handle >= MAX_LISTENERS)
        return;
    pthread_mutex_lock(&jobs.lock);
    jobs.listeners[handle] = (struct listener){NULL, NULL};
    pthread_mutex_unlock(&jobs.lock);
}

int
core_job_wait(const char *id, struct job_waiter *w)
{
    struct job *j;

    w->next = NULL;
    w->job = NULL;
    pthread_mutex_lock(&jobs.lock);
    j = find_live_locked(id);
    if (j) {
        w->job = j;
        w->next = j->waiters;
        j->waiters = w;
    }
    pthread_mutex_unlock(&jobs.lock);
    return j ? 0 : 1;
}

void
core_job_unwait(struct job_waiter *w)
{
    pthread_mutex_lock(&jobs.lock);
    if (w->job) {
        for (struct job_waiter **p = &w->job->waiters; *p; p = &(*p)->next) {
            if (*p == w) {
                *p = w->next;
                break;
            }
        }
        w->job = NULL;
        w->next = NULL;
    }
    pthread_mutex_unlock(&jobs.lock);
}

const char *
job_id(const struct job *job)
{
    return job->rec.id;
}

const char *
job_domain_uuid(const struct job *job)
{
    return job->rec.domain_uuid;
}

const char *
job_params(const struct job *job)
{
    return job->rec.params;
}

bool
job_resumed(const struct job *job)
{
    return job->resumed;
}

bool
job_stopping(const struct job *job)
{
    bool stopping;

    (void)job;
    pthread_mutex_lock(&jobs.lock);
    stopping = jobs.stopping;
    pthread_mutex_unlock(&jobs.lock);
    return stopping;
}

bool
job_cancelled(const struct job *job)
{
    return atomic_load(&((struct job *)job)->cancel);
}

void
job_park(struct job *job, bool parked)
{
    pthread_mutex_lock(&jobs.lock);
    if (job->parked != parked) {
        job->parked = parked;
        if (parked) {
            jobs.n_parked++;
            jobs.n_active--;
            pthread_cond_broadcast(&jobs.wake); /* a queued job may work in its place */
        } else {
            jobs.n_parked--;
            jobs.n_active++; /* may exceed the base for a while: it was working before */
        }
        /* Every parked job keeps a thread: have enough for the base to work beside them. */
        while (parked && !jobs.stopping && jobs.n_workers - jobs.n_parked < jobs.base_workers &&
               spawn_worker_locked() == 0)
            ;
    }
    pthread_mutex_unlock(&jobs.lock);
}

void
job_progress(struct job *job, uint64_t done, uint64_t total)
{
    int64_t now = text_now_ms();

    pthread_mutex_lock(&jobs.lock);
    job->rec.bytes_done = done;
    job->rec.bytes_total = total;
    if (now - job->progress_saved_ms >= PROGRESS_SAVE_MS) {
        job->progress_saved_ms = now;
        save_locked(job);
    }
    pthread_mutex_unlock(&jobs.lock);
}

int
job_set_result(struct job *job, const char *json)
{
    char *copy = strdup(json);

    if (!copy)
        return -ENOMEM;
    pthread_mutex_lock(&jobs.lock);
    free(job->rec.result);
    job->rec.result = copy;
    pthread_mutex_unlock(&jobs.lock);
    return 0;
}
