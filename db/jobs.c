/* The jobs table (see jobs.h). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "db_priv.h"
#include "err.h"
#include "jobs.h"

#define JOB_COLUMNS                                                                                \
    "seq, id, kind, domain, domain_uuid, state, bytes_done, bytes_total, error_errno, "            \
    "error_detail, result, params, created_ms, started_ms, finished_ms"
#define JOB_LIST_DEFAULT 100

static const char *const state_names[] = {
    [DB_JOB_QUEUED] = "queued", [DB_JOB_RUNNING] = "running",     [DB_JOB_SUCCEEDED] = "succeeded",
    [DB_JOB_FAILED] = "failed", [DB_JOB_CANCELLED] = "cancelled",
};

const char *
db_job_state_name(enum db_job_state s)
{
    return (size_t)s < ARRAY_SIZE(state_names) ? state_names[s] : "failed";
}

int
db_job_state_from_string(const char *s, enum db_job_state *ret)
{
    for (size_t i = 0; i < ARRAY_SIZE(state_names); i++) {
        if (strcmp(s, state_names[i]) == 0) {
            *ret = (enum db_job_state)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool
db_job_state_final(enum db_job_state s)
{
    return s == DB_JOB_SUCCEEDED || s == DB_JOB_FAILED || s == DB_JOB_CANCELLED;
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
db_job_copy(const struct db_job *j, struct db_job **ret)
{
    _cleanup_(db_job_freep) struct db_job *c = calloc(1, sizeof(*c));

    if (!c)
        return -ENOMEM;
    *c = *j;
    c->kind = c->domain = c->domain_uuid = c->error_detail = c->result = c->params = NULL;
    if (dup_or_null(j->kind, &c->kind) < 0 || dup_or_null(j->domain, &c->domain) < 0 ||
        dup_or_null(j->domain_uuid, &c->domain_uuid) < 0 ||
        dup_or_null(j->error_detail, &c->error_detail) < 0 ||
        dup_or_null(j->result, &c->result) < 0 || dup_or_null(j->params, &c->params) < 0)
        return -ENOMEM;
    *ret = TAKE_PTR(c);
    return 0;
}

void
db_job_clear(struct db_job *j)
{
    if (!j)
        return;
    free(j->kind);
    free(j->domain);
    free(j->domain_uuid);
    free(j->error_detail);
    free(j->result);
    free(j->params);
    memset(j, 0, sizeof(*j));
}

void
db_job_free(struct db_job *j)
{
    db_job_clear(j);
    free(j);
}

void
db_job_list_free(struct db_job *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        db_job_clear(&list[i]);
    free(list);
}

static int
bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

static int
bind_ms(sqlite3_stmt *st, int i, int64_t ms)
{
    return ms ? sqlite3_bind_int64(st, i, ms) : sqlite3_bind_null(st, i);
}

int
db_job_put(struct db *db, const struct db_job *j)
{
    static const char sql[] =
        "INSERT INTO jobs (id, kind, domain, domain_uuid, state, bytes_done, bytes_total,"
        "  error_errno, error_detail, result, params, created_ms, started_ms, finished_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        " ON CONFLICT (id) DO UPDATE SET kind = ?2, domain = ?3, domain_uuid = ?4, state = ?5,"
        "  bytes_done = ?6, bytes_total = ?7, error_errno = ?8, error_detail = ?9, result = ?10,"
        "  params = ?11, created_ms = ?12, started_ms = ?13, finished_ms = ?14";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    bind_text(st, 1, j->id);
    bind_text(st, 2, j->kind);
    bind_text(st, 3, j->domain);
    bind_text(st, 4, j->domain_uuid);
    bind_text(st, 5, db_job_state_name(j->state));
    sqlite3_bind_int64(st, 6, (sqlite3_int64)j->bytes_done);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)j->bytes_total);
    if (j->error_errno)
        sqlite3_bind_int(st, 8, j->error_errno);
    else
        sqlite3_bind_null(st, 8);
    bind_text(st, 9, j->error_detail);
    bind_text(st, 10, j->result);
    bind_text(st, 11, j->params);
    sqlite3_bind_int64(st, 12, j->created_ms);
    bind_ms(st, 13, j->started_ms);
    bind_ms(st, 14, j->finished_ms);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "store job");
    return 0;
}

static int
column_dup(sqlite3_stmt *st, int i, char **ret)
{
    return dup_or_null((const char *)sqlite3_column_text(st, i), ret);
}

/* Fills *j from the current row (columns in JOB_COLUMNS order); *ret_seq gets seq. */
static int
read_row(sqlite3_stmt *st, struct db_job *j, int64_t *ret_seq)
{
    const char *id = (const char *)sqlite3_column_text(st, 1);
    const char *state = (const char *)sqlite3_column_text(st, 5);

    memset(j, 0, sizeof(*j));
    snprintf(j->id, sizeof(j->id), "%s", id ? id : "");
    if (!state || db_job_state_from_string(state, &j->state) < 0)
        j->state = DB_JOB_FAILED;
    j->bytes_done = (uint64_t)sqlite3_column_int64(st, 6);
    j->bytes_total = (uint64_t)sqlite3_column_int64(st, 7);
    j->error_errno = sqlite3_column_int(st, 8);
    j->created_ms = sqlite3_column_int64(st, 12);
    j->started_ms = sqlite3_column_int64(st, 13);
    j->finished_ms = sqlite3_column_int64(st, 14);
    if (column_dup(st, 2, &j->kind) < 0 || column_dup(st, 3, &j->domain) < 0 ||
        column_dup(st, 4, &j->domain_uuid) < 0 || column_dup(st, 9, &j->error_detail) < 0 ||
        column_dup(st, 10, &j->result) < 0 || column_dup(st, 11, &j->params) < 0) {
        db_job_clear(j);
        return -ENOMEM;
    }
    if (ret_seq)
        *ret_seq = sqlite3_column_int64(st, 0);
    return 0;
}

int
db_job_get(struct db *db, const char *id, struct db_job **ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_free_ struct db_job *j = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1", &st);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(-ENOENT, "job '%s' not found", id);
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "read job");
    j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    r = read_row(st, j, NULL);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(j);
    return 0;
}

/* Steps st to the end, collecting at most max rows; *ret_more says whether rows were left. */
static int
collect(struct db *db, sqlite3_stmt *st, size_t max, struct db_job **ret, size_t *ret_n,
        int64_t *ret_last_seq, bool *ret_more)
{
    struct db_job *list = NULL;
    size_t n = 0, cap = 0;
    int64_t seq = 0;
    bool more = false;
    int rc, r;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == max) {
            more = true;
            break;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct db_job *nl = realloc(list, ncap * sizeof(*nl));
            if (!nl) {
                db_job_list_free(list, n);
                return -ENOMEM;
            }
            list = nl;
            cap = ncap;
        }
        r = read_row(st, &list[n], &seq);
        if (r < 0) {
            db_job_list_free(list, n);
            return r;
        }
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        db_job_list_free(list, n);
        return db_error(db, rc, "list jobs");
    }
    *ret = list;
    *ret_n = n;
    if (ret_last_seq)
        *ret_last_seq = seq;
    if (ret_more)
        *ret_more = more;
    return 0;
}

int
db_job_list(struct db *db, const struct db_job_filter *f, struct db_job **ret, size_t *ret_n,
            int64_t *ret_next)
{
    static const char sql[] = "SELECT " JOB_COLUMNS " FROM jobs"
                              " WHERE (?1 IS NULL OR domain = ?1 OR domain_uuid = ?1)"
                              "   AND (?2 IS NULL OR state = ?2)"
                              "   AND (?3 IS NULL OR seq < ?3)"
                              " ORDER BY seq DESC LIMIT ?4";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    unsigned limit = f->limit ? f->limit : JOB_LIST_DEFAULT;
    struct db_job *list = NULL;
    size_t n = 0;
    int64_t last = 0;
    bool more = false;
    int r;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    bind_text(st, 1, f->domain);
    bind_text(st, 2, f->state);
    bind_ms(st, 3, f->before_seq);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)limit + 1);
    r = collect(db, st, limit, &list, &n, &last, &more);
    if (r < 0)
        return r;
    *ret = list;
    *ret_n = n;
    *ret_next = more ? last : 0;
    return 0;
}

int
db_job_list_unfinished(struct db *db, struct db_job **ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "SELECT " JOB_COLUMNS " FROM jobs WHERE state IN ('queued', 'running')"
                   " ORDER BY seq ASC",
                   &st);
    if (r < 0)
        return r;
    return collect(db, st, SIZE_MAX, ret, ret_n, NULL, NULL);
}
