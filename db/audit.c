/* The audit table (see audit.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cleanup.h"
#include "db_priv.h"
#include "err.h"

#define AUDIT_COLUMNS      "seq, time_ms, who, remote, method, path, status, job_id, domain"
#define AUDIT_LIST_DEFAULT 100

int
db_audit_put(struct db *db, const struct conf_audit *r)
{
    static const char sql[] = "INSERT INTO audit (time_ms, who, remote, method, path, status,"
                              "  job_id, domain) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int ret, rc;

    DB_LOCK_SCOPE(db);
    ret = db_prepare(db, sql, &st);
    if (ret < 0)
        return ret;
    sqlite3_bind_int64(st, 1, r->time_ms);
    db_bind_text(st, 2, r->who);
    db_bind_text(st, 3, r->remote);
    db_bind_text(st, 4, r->method ? r->method : "");
    db_bind_text(st, 5, r->path ? r->path : "");
    sqlite3_bind_int(st, 6, r->status);
    db_bind_text(st, 7, r->job_id);
    db_bind_text(st, 8, r->domain);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "store audit record");
    return 0;
}

/* Fills *r from the current row (columns in AUDIT_COLUMNS order). */
static int
read_row(sqlite3_stmt *st, struct conf_audit *r)
{
    bool oom = false;

    memset(r, 0, sizeof(*r));
    r->seq = sqlite3_column_int64(st, 0);
    r->time_ms = sqlite3_column_int64(st, 1);
    r->who = db_column_dup(st, 2, &oom);
    r->remote = db_column_dup(st, 3, &oom);
    r->method = db_column_dup(st, 4, &oom);
    r->path = db_column_dup(st, 5, &oom);
    r->status = sqlite3_column_int(st, 6);
    r->job_id = db_column_dup(st, 7, &oom);
    r->domain = db_column_dup(st, 8, &oom);
    if (oom) {
        conf_audit_clear(r);
        return -ENOMEM;
    }
    return 0;
}

int
db_audit_list(struct db *db, const struct conf_audit_filter *f, struct conf_audit **ret,
              size_t *ret_n, int64_t *ret_next)
{
    static const char sql[] = "SELECT " AUDIT_COLUMNS " FROM audit"
                              " WHERE (?1 IS NULL OR domain = ?1)"
                              "   AND (?2 IS NULL OR time_ms >= ?2)"
                              "   AND (?3 IS NULL OR time_ms < ?3)"
                              "   AND (?4 IS NULL OR seq < ?4)"
                              " ORDER BY seq DESC LIMIT ?5";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    unsigned limit = f->limit ? f->limit : AUDIT_LIST_DEFAULT;
    struct conf_audit *list = NULL;
    size_t n = 0, cap = 0;
    bool more = false;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, f->domain);
    db_bind_opt_int(st, 2, f->since_ms);
    db_bind_opt_int(st, 3, f->until_ms);
    db_bind_opt_int(st, 4, f->before_seq);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)limit + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            more = true;
            break;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct conf_audit *nl = realloc(list, ncap * sizeof(*nl));
            if (!nl) {
                conf_audit_list_free(list, n);
                return -ENOMEM;
            }
            list = nl;
            cap = ncap;
        }
        r = read_row(st, &list[n]);
        if (r < 0) {
            conf_audit_list_free(list, n);
            return r;
        }
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        conf_audit_list_free(list, n);
        return db_error(db, rc, "list audit records");
    }
    *ret = list;
    *ret_n = n;
    *ret_next = more && n ? list[n - 1].seq : 0;
    return 0;
}

int
db_audit_prune(struct db *db, int64_t before_ms, int64_t *ret_deleted)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "DELETE FROM audit WHERE time_ms < ?1", &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, before_ms);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "prune audit records");
    if (ret_deleted)
        *ret_deleted = sqlite3_changes(db->h);
    return 0;
}
