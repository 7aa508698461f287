/*
 * Unit tests: the generic jobs facility with made-up kinds. No worker
 * threads at first, so that jobs stay queued; then workers, failures,
 * cooperative cancellation, listeners, recovery after a "restart", paging.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/busy.h"
#include "core/jobs.h"
#include "db/db.h"
#include "db/jobs.h"
#include "err.h"
#include "tap.h"
#include "text.h"

#define U1 "11111111-1111-1111-1111-111111111111"
#define U2 "22222222-2222-2222-2222-222222222222"
#define U3 "33333333-3333-3333-3333-333333333333"
#define U4 "44444444-4444-4444-4444-444444444444"

static atomic_int events;

static int
run_ok(struct job *job, void *data)
{
    job_progress(job, 5, 10);
    job_progress(job, 10, 10);
    return job_set_result(job, job_resumed(job) ? "{\"resumed\":true}" : "{\"ok\":true}");
}

static int
run_fail(struct job *job, void *data)
{
    return err_set(-EBADFD, "made to fail");
}

static int
run_coop(struct job *job, void *data)
{
    for (int i = 0; i < 500; i++) {
        if (job_cancelled(job))
            return err_set(-ECANCELED, "stopped as asked");
        usleep(10 * 1000);
    }
    return 0;
}

static int
recover_alive(const struct conf_job *rec, void **ret_data)
{
    if (rec->params && strcmp(rec->params, "alive") == 0) {
        *ret_data = strdup("data");
        return 1;
    }
    return 0;
}

static const struct job_kind k_ok = {
    .kind = CONF_JOB_KIND_BACKUP, .run = run_ok, .recover = recover_alive, .free_data = free};
static const struct job_kind k_fail = {.kind = CONF_JOB_KIND_RESTORE, .run = run_fail};
static const struct job_kind k_coop = {.kind = CONF_JOB_KIND_VERIFY, .run = run_coop};

static atomic_bool release_parked;

/* Waits for a client as a ready pull backup does: parked until released. */
static int
run_parked(struct job *job, void *data)
{
    job_park(job, true);
    for (int i = 0; i < 1000 && !atomic_load(&release_parked); i++)
        usleep(10 * 1000);
    job_park(job, false);
    return atomic_load(&release_parked) ? 0 : err_set(-ETIMEDOUT, "never released");
}

static const struct job_kind k_park = {.kind = CONF_JOB_KIND_SNAPSHOT_CREATE, .run = run_parked};

/* A job-end waiter that records how often it fired and the state the database held then. */
struct waiter {
    struct job_waiter w; /* first */
    struct db *db;
    char id[CONF_JOB_ID_LEN + 1];
    atomic_int fired;
    enum conf_job_state seen;
};

static void
on_ended(struct job_waiter *jw)
{
    struct waiter *w = (struct waiter *)jw;
    struct conf_job *row = NULL;

    if (db_job_get(w->db, w->id, &row) == 0)
        w->seen = row->state;
    conf_job_free(row);
    atomic_fetch_add(&w->fired, 1);
}

static void
on_event(const struct conf_job *job, void *opaque)
{
    atomic_fetch_add(&events, 1);
}

static struct conf_job *
submit(const struct job_kind *k, const char *uuid)
{
    struct job_spec spec = {.kind = k, .domain = uuid ? "dom" : NULL, .domain_uuid = uuid};
    struct conf_job *j = NULL;

    if (core_job_submit(&spec, &j) < 0)
        return NULL;
    return j;
}

static int
count_row(void *opaque, int n, char **values, char **names)
{
    (void)n, (void)values, (void)names;
    ++*(int *)opaque;
    return 0;
}

/*
 * Runs sql on the database file at path, as another version of the service
 * would: the number of rows it gave, or -1 when it failed.
 */
static int
sql_on(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    int rows = 0, rc = sqlite3_open(path, &h);

    if (rc == SQLITE_OK)
        rc = sqlite3_exec(h, sql, count_row, &rows, NULL);
    sqlite3_close(h);
    return rc == SQLITE_OK ? rows : -1;
}

/* Polls until the job is in a final state (or about 10 s went by); returns it. */
static struct conf_job *
wait_final(const char *id)
{
    for (int i = 0; i < 1000; i++) {
        struct conf_job *j = NULL;
        if (core_job_get(id, &j) == 0 && conf_job_state_final(j->state))
            return j;
        conf_job_free(j);
        usleep(10 * 1000);
    }
    return NULL;
}

static void
put_row(struct db *db, const char *id, enum conf_job_kind kind, enum conf_job_state state,
        const char *params)
{
    struct conf_job j = {.kind = kind, .state = state, .created_ms = text_now_ms()};

    snprintf(j.id, sizeof(j.id), "%s", id);
    j.params = (char *)params;
    if (state == CONF_JOB_RUNNING)
        j.started_ms = j.created_ms;
    db_job_put(db, &j);
}

int
main(void)
{
    char dir[] = "/tmp/vv-jobs-test-XXXXXX";
    char path[256];
    struct db *db = NULL;
    struct conf_job *j, *k;
    char id[CONF_JOB_ID_LEN + 1];
    int r, h;

    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/t.db", dir);
    if (db_open(path, &db) < 0)
        return 1;
    ok(core_jobs_register(&k_ok) == 0 && core_jobs_register(&k_fail) == 0 &&
           core_jobs_register(&k_coop) == 0 && core_jobs_register(&k_park) == 0,
       "kinds register");
    h = core_jobs_listen(on_event, NULL);
    ok(h >= 0, "a listener registers");

    /* No workers: jobs stay queued. */
    ok(core_jobs_start(db, 0) == 0, "start without workers");
    j = submit(&k_ok, U1);
    ok(j && j->state == CONF_JOB_QUEUED && strlen(j->id) == CONF_JOB_ID_LEN && j->created_ms > 0 &&
           !j->started_ms,
       "a submitted job is queued, with an id and a creation time");
    ok(submit(&k_ok, U1) == NULL && err_detail() && strstr(err_detail(), j->id),
       "a second job on the same domain is refused, naming the holder: %s",
       err_detail() ? err_detail() : "");
    ok(atomic_load(&events) == 1, "the listener heard of the queued job");
    snprintf(id, sizeof(id), "%s", j->id);
    conf_job_free(j);
    r = core_job_cancel(id, &j);
    ok(r == 0 && j->state == CONF_JOB_CANCELLED && j->error_errno == -ECANCELED && j->finished_ms,
       "cancelling a queued job ends it cancelled at once");
    conf_job_free(j);
    ok(core_busy_claim(U1, "test") == 0, "the domain is free again");
    core_busy_release(U1);
    ok(core_job_cancel(id, &j) == -EBADFD, "a job that ended cannot be cancelled");
    ok(core_job_cancel("0123", &j) == -ENOENT, "an unknown job is not found");
    j = submit(&k_ok, U2);
    snprintf(id, sizeof(id), "%s", j ? j->id : "");
    conf_job_free(j);
    core_jobs_stop();
    ok(db_job_get(db, id, &j) == 0 && j->state == CONF_JOB_FAILED && j->error_errno == -EINTR,
       "a job still queued when the service stops ends interrupted");
    conf_job_free(j);
    ok(core_busy_claim(U2, "test") == 0, "and its domain is free");
    core_busy_release(U2);

    /* Workers. */
    ok(core_jobs_start(db, 2) == 0, "start with two workers");
    j = submit(&k_ok, U1);
    k = j ? wait_final(j->id) : NULL;
    ok(k && k->state == CONF_JOB_SUCCEEDED && k->bytes_done == 10 && k->bytes_total == 10 &&
           k->result && strcmp(k->result, "{\"ok\":true}") == 0 && k->started_ms &&
           k->finished_ms >= k->started_ms && !k->error_errno,
       "a job runs and succeeds with progress and result");
    conf_job_free(j);
    conf_job_free(k);
    j = submit(&k_fail, NULL);
    k = j ? wait_final(j->id) : NULL;
    ok(k && k->state == CONF_JOB_FAILED && k->error_errno == -EBADFD && k->error_detail &&
           strcmp(k->error_detail, "made to fail") == 0 && !k->domain,
       "a failing job keeps its errno and detail; a job on no domain has none");
    conf_job_free(j);
    conf_job_free(k);

    j = submit(&k_coop, U1);
    for (int i = 0; j && i < 500; i++) {
        if (core_job_get(j->id, &k) == 0 && k->state == CONF_JOB_RUNNING) {
            conf_job_free(k);
            break;
        }
        conf_job_free(k);
        usleep(10 * 1000);
    }
    r = j ? core_job_cancel(j->id, &k) : -1;
    ok(r == 0 && k->state == CONF_JOB_RUNNING, "cancelling a running job asks it to stop");
    if (r == 0)
        conf_job_free(k);
    k = j ? wait_final(j->id) : NULL;
    ok(k && k->state == CONF_JOB_CANCELLED && k->error_errno == -ECANCELED,
       "the job sees the flag and ends cancelled");
    conf_job_free(j);
    conf_job_free(k);
    core_jobs_stop();

    /* What an earlier process left: recovered by kind, or interrupted. */
    put_row(db, "aaaa0000000000000000000000000001", k_ok.kind, CONF_JOB_RUNNING, "alive");
    put_row(db, "aaaa0000000000000000000000000002", k_ok.kind, CONF_JOB_RUNNING, "dead");
    put_row(db, "aaaa0000000000000000000000000003", k_ok.kind, CONF_JOB_QUEUED, "alive");
    char sql[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO jobs (id, kind, state, created_ms) VALUES "
             "('aaaa0000000000000000000000000004', 'gone_kind', 'running', %lld)",
             (long long)text_now_ms());
    ok(sql_on(path, sql) == 0, "a row of a kind this version does not know");
    ok(core_jobs_start(db, 2) == 0, "start again");
    k = wait_final("aaaa0000000000000000000000000001");
    ok(k && k->state == CONF_JOB_SUCCEEDED && k->result && strstr(k->result, "resumed"),
       "a job the kind says still runs is resumed and ends as it ends");
    conf_job_free(k);
    static const char *const lost[] = {"aaaa0000000000000000000000000002",
                                       "aaaa0000000000000000000000000003",
                                       "aaaa0000000000000000000000000004"};
    for (size_t i = 0; i < 3; i++) {
        k = wait_final(lost[i]);
        ok(k && k->state == CONF_JOB_FAILED && k->error_errno == -EINTR && k->error_detail &&
               strstr(k->error_detail, "interrupted"),
           "job %s is marked failed/interrupted", lost[i]);
        if (i == 2)
            ok(k && k->kind == CONF_JOB_KIND_LAST && !conf_job_kind_to_string(k->kind),
               "a kind this version does not know reads as none of its own");
        conf_job_free(k);
    }
    ok(sql_on(path, "SELECT 1 FROM jobs WHERE id = 'aaaa0000000000000000000000000004' "
                    "AND kind = 'gone_kind' AND state = 'failed'") == 1,
       "marking it interrupted keeps the stored name of its kind");

    /* Listing: newest first, filters, pages. */
    struct conf_job *list = NULL;
    size_t n = 0;
    int64_t next = 0;
    struct conf_job_filter f = {.limit = 3};
    ok(core_job_list(&f, &list, &n, &next) == 0 && n == 3 && next > 0 &&
           list[0].created_ms >= list[2].created_ms,
       "a page of three, newest first, with a cursor");
    conf_job_list_free(list, n);
    size_t total = 3;
    f.before_seq = next;
    while (f.before_seq) {
        if (core_job_list(&f, &list, &n, &next) < 0)
            break;
        total += n;
        conf_job_list_free(list, n);
        f.before_seq = next;
    }
    ok(total == 9, "paging visits each of the 9 jobs once (%zu)", total);
    enum conf_job_state cancelled = CONF_JOB_CANCELLED;
    f = (struct conf_job_filter){.state = &cancelled};
    r = core_job_list(&f, &list, &n, &next);
    ok(r == 0 && n == 2 && next == 0, "filter by state (%zu)", n);
    conf_job_list_free(list, n);
    f = (struct conf_job_filter){.domain = U1};
    r = core_job_list(&f, &list, &n, &next);
    ok(r == 0 && n == 3, "filter by domain (%zu)", n);
    conf_job_list_free(list, n);
    ok(atomic_load(&events) > 10, "the listener heard every change (%d)", atomic_load(&events));
    core_jobs_unlisten(h);
    core_jobs_stop();

    /* Parked jobs (waiting on clients) leave the workers asked for free for other jobs. */
    ok(core_jobs_start(db, 1) == 0, "start with one worker");
    struct conf_job *p1 = submit(&k_park, U1), *p2 = submit(&k_park, U2);
    j = submit(&k_ok, NULL);
    k = j ? wait_final(j->id) : NULL;
    ok(p1 && p2 && k && k->state == CONF_JOB_SUCCEEDED,
       "with one worker and two parked jobs, a third job still runs");
    conf_job_free(j);
    ok(core_job_get(p1 ? p1->id : "", &j) == 0 && j->state == CONF_JOB_RUNNING,
       "the parked job is still running");
    conf_job_free(j);

    /* Waiters on a job's end: told once, after the end is recorded; forgotten ones never. */
    struct waiter w1 = {.w.ended = on_ended, .db = db}, w2 = {.w.ended = on_ended, .db = db};
    struct waiter w3 = {.w.ended = on_ended, .db = db};
    snprintf(w1.id, sizeof(w1.id), "%s", p1 ? p1->id : "");
    snprintf(w2.id, sizeof(w2.id), "%s", p2 ? p2->id : "");
    snprintf(w3.id, sizeof(w3.id), "%s", k ? k->id : "");
    ok(core_job_wait(w1.id, &w1.w) == 0 && core_job_wait(w2.id, &w2.w) == 0,
       "waiters register on running jobs");
    ok(core_job_wait(w3.id, &w3.w) == 1, "a job that ended has nothing to wait for");
    ok(core_job_wait("0000000000000000", &w3.w) == 1, "nor has a job that does not exist");
    core_job_unwait(&w2.w);
    core_job_unwait(&w3.w); /* never kept: nothing to do */
    conf_job_free(k);
    atomic_store(&release_parked, true);
    struct conf_job *parked[] = {p1, p2};
    for (size_t i = 0; i < 2; i++) {
        k = parked[i] ? wait_final(parked[i]->id) : NULL;
        ok(k && k->state == CONF_JOB_SUCCEEDED, "released, parked job %zu ends as it ends", i + 1);
        conf_job_free(k);
        conf_job_free(parked[i]);
    }
    ok(atomic_load(&w1.fired) == 1 && w1.seen == CONF_JOB_SUCCEEDED,
       "the waiter was told once, with the end already recorded (%d)", atomic_load(&w1.fired));
    ok(atomic_load(&w2.fired) == 0 && atomic_load(&w3.fired) == 0,
       "a forgotten waiter is never told");
    core_job_unwait(&w1.w); /* fired already: nothing to do */
    /* The threads added for them stay, idle: still one job works at a time. */
    /* (Other domains: a job's claim is released just after its end is recorded.) */
    struct conf_job *c1 = submit(&k_coop, U3), *c2 = submit(&k_coop, U4);
    usleep(200 * 1000);
    struct conf_job *s1 = NULL, *s2 = NULL;
    ok(c1 && c2 && core_job_get(c1->id, &s1) == 0 && core_job_get(c2->id, &s2) == 0 &&
           (s1->state == CONF_JOB_RUNNING) != (s2->state == CONF_JOB_RUNNING) &&
           (s1->state == CONF_JOB_QUEUED || s2->state == CONF_JOB_QUEUED),
       "after the parked jobs ended, one job works and the other waits its turn");
    conf_job_free(s1);
    conf_job_free(s2);
    for (size_t i = 0; i < 2; i++) {
        struct conf_job *c = i ? c2 : c1;
        if (c && core_job_cancel(c->id, &k) == 0)
            conf_job_free(k);
        k = c ? wait_final(c->id) : NULL;
        ok(k && k->state == CONF_JOB_CANCELLED, "cancelled, job %zu ends", i + 1);
        conf_job_free(k);
        conf_job_free(c);
    }
    core_jobs_stop();

    db_close(db);
    snprintf(path, sizeof(path), "%s/t.db", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/t.db-wal", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/t.db-shm", dir);
    unlink(path);
    rmdir(dir);
    return tap_done();
}
