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
    "error_detail, result, params, created_ms, started_ms, finished_ms, policy"
#define JOB_LIST_DEFAULT 100

int
db_job_put(struct db *db, const struct conf_job *j)
{
    static const char sql[] =
        "INSERT INTO jobs (id, kind, domain, domain_uuid, state, bytes_done, bytes_total,"
        "  error_errno, error_detail, result, params, created_ms, started_ms, finished_ms, policy)"
        " VALUES (?1, COALESCE(?2, 'unknown'), ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
        "  ?15)"
        " ON CONFLICT (id) DO UPDATE SET kind = COALESCE(?2, kind), domain = ?3, domain_uuid = ?4,"
        "  state = ?5, bytes_done = ?6, bytes_total = ?7, error_errno = ?8, error_detail = ?9,"
        "  result = ?10, params = ?11, created_ms = ?12, started_ms = ?13, finished_ms = ?14,"
        "  policy = ?15";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, j->id);
    /* NULL for a kind of another version: an update keeps the stored name. */
    db_bind_text(st, 2, conf_job_kind_to_string(j->kind));
    db_bind_text(st, 3, j->domain);
    db_bind_text(st, 4, j->domain_uuid);
    db_bind_text(st, 5, conf_job_state_to_string(j->state));
    sqlite3_bind_int64(st, 6, (sqlite3_int64)j->bytes_done);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)j->bytes_total);
    if (j->error_errno)
        sqlite3_bind_int(st, 8, j->error_errno);
    else
        sqlite3_bind_null(st, 8);
    db_bind_text(st, 9, j->error_detail);
    db_bind_text(st, 10, j->result);
    db_bind_text(st, 11, j->params);
    sqlite3_bind_int64(st, 12, j->created_ms);
    db_bind_opt_int(st, 13, j->started_ms);
    db_bind_opt_int(st, 14, j->finished_ms);
    db_bind_text(st, 15, j->policy);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "store job");
    return 0;
}

/* Fills *j from the current row (columns in JOB_COLUMNS order); *ret_seq gets seq. */
static int
read_row(sqlite3_stmt *st, struct conf_job *j, int64_t *ret_seq)
{
    const char *id = (const char *)sqlite3_column_text(st, 1);
    const char *state = (const char *)sqlite3_column_text(st, 5);
    const char *kind = (const char *)sqlite3_column_text(st, 2);
    bool oom = false;

    memset(j, 0, sizeof(*j));
    snprintf(j->id, sizeof(j->id), "%s", id ? id : "");
    if (!state || conf_job_state_from_string(state, &j->state) < 0)
        j->state = CONF_JOB_FAILED;
    if (conf_job_kind_from_string(kind, &j->kind) < 0)
        j->kind = CONF_JOB_KIND_LAST;
    j->bytes_done = (uint64_t)sqlite3_column_int64(st, 6);
    j->bytes_total = (uint64_t)sqlite3_column_int64(st, 7);
    j->error_errno = sqlite3_column_int(st, 8);
    j->created_ms = sqlite3_column_int64(st, 12);
    j->started_ms = sqlite3_column_int64(st, 13);
    j->finished_ms = sqlite3_column_int64(st, 14);
    j->domain = db_column_dup(st, 3, &oom);
    j->domain_uuid = db_column_dup(st, 4, &oom);
    j->error_detail = db_column_dup(st, 9, &oom);
    j->result = db_column_dup(st, 10, &oom);
    j->params = db_column_dup(st, 11, &oom);
    j->policy = db_column_dup(st, 15, &oom);
    if (oom) {
        conf_job_clear(j);
        return -ENOMEM;
    }
    if (ret_seq)
        *ret_seq = sqlite3_column_int64(st, 0);
    return 0;
}

int
db_job_get(struct db *db, const char *id, struct conf_job **ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_free_ struct conf_job *j = NULL;
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
collect(struct db *db, sqlite3_stmt *st, size_t max, struct conf_job **ret, size_t *ret_n,
        int64_t *ret_last_seq, bool *ret_more)
{
    struct conf_job *list = NULL;
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
            struct conf_job *nl = realloc(list, ncap * sizeof(*nl));
            if (!nl) {
                conf_job_list_free(list, n);
                return -ENOMEM;
            }
            list = nl;
            cap = ncap;
        }
        r = read_row(st, &list[n], &seq);
        if (r < 0) {
            conf_job_list_free(list, n);
            return r;
        }
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        conf_job_list_free(list, n);
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
db_job_list(struct db *db, const struct conf_job_filter *f, struct conf_job **ret, size_t *ret_n,
            int64_t *ret_next)
{
    static const char sql[] = "SELECT " JOB_COLUMNS " FROM jobs"
                              " WHERE (?1 IS NULL OR domain = ?1 OR domain_uuid = ?1)"
                              "   AND (?2 IS NULL OR state = ?2)"
                              "   AND (?3 IS NULL OR seq < ?3)"
                              " ORDER BY seq DESC LIMIT ?4";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    unsigned limit = f->limit ? f->limit : JOB_LIST_DEFAULT;
    struct conf_job *list = NULL;
    size_t n = 0;
    int64_t last = 0;
    bool more = false;
    int r;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, f->domain);
    db_bind_text(st, 2, f->state ? conf_job_state_to_string(*f->state) : NULL);
    db_bind_opt_int(st, 3, f->before_seq);
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
db_job_list_unfinished(struct db *db, struct conf_job **ret, size_t *ret_n)
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
