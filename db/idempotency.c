/* The idempotency table (see idempotency.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "db_priv.h"
#include "err.h"
#include "idempotency.h"

/* Fills *a from the row's status, content_type, location and body (columns 2 to 5). */
static int
read_answer(sqlite3_stmt *st, struct conf_idem_answer *a)
{
    const void *blob;
    int n;
    bool oom = false;

    memset(a, 0, sizeof(*a));
    a->status = sqlite3_column_int(st, 2);
    a->content_type = db_column_dup(st, 3, &oom);
    a->location = db_column_dup(st, 4, &oom);
    blob = sqlite3_column_blob(st, 5);
    n = sqlite3_column_bytes(st, 5);
    if (blob && n > 0) {
        a->body = malloc((size_t)n + 1);
        if (a->body) {
            memcpy(a->body, blob, (size_t)n);
            a->body[n] = '\0';
            a->body_len = (size_t)n;
        } else {
            oom = true;
        }
    }
    if (oom) {
        conf_idem_answer_clear(a);
        return -ENOMEM;
    }
    return 0;
}

int
db_idem_claim(struct db *db, const char *scope, const char *key, const char *fingerprint,
              int64_t now_ms, int64_t expires_ms, enum conf_idem_claim *ret,
              struct conf_idem_answer *ret_answer)
{
    static const char find[] =
        "SELECT fingerprint, state, status, content_type, location, body FROM idempotency"
        " WHERE scope = ?1 AND key = ?2 AND expires_ms > ?3";
    static const char claim[] =
        "INSERT INTO idempotency (scope, key, fingerprint, state, created_ms, expires_ms)"
        " VALUES (?1, ?2, ?3, 'pending', ?4, ?5)"
        " ON CONFLICT (scope, key) DO UPDATE SET fingerprint = ?3, state = 'pending',"
        "  status = NULL, content_type = NULL, location = NULL, body = NULL, created_ms = ?4,"
        "  expires_ms = ?5";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_stmt_ sqlite3_stmt *ins = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, find, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, scope);
    db_bind_text(st, 2, key);
    sqlite3_bind_int64(st, 3, now_ms);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *fp = (const char *)sqlite3_column_text(st, 0);
        const char *state = (const char *)sqlite3_column_text(st, 1);

        if (!fp || strcmp(fp, fingerprint) != 0) {
            *ret = CONF_IDEM_REUSED;
            return 0;
        }
        if (!state || strcmp(state, "done") != 0) {
            *ret = CONF_IDEM_IN_USE;
            return 0;
        }
        r = read_answer(st, ret_answer);
        if (r < 0)
            return r;
        *ret = CONF_IDEM_DONE;
        return 0;
    }
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "look up an idempotency key");
    /* Not live: claim it, replacing an expired row the prune has not deleted yet. */
    r = db_prepare(db, claim, &ins);
    if (r < 0)
        return r;
    db_bind_text(ins, 1, scope);
    db_bind_text(ins, 2, key);
    db_bind_text(ins, 3, fingerprint);
    sqlite3_bind_int64(ins, 4, now_ms);
    sqlite3_bind_int64(ins, 5, expires_ms);
    rc = sqlite3_step(ins);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "claim an idempotency key");
    *ret = CONF_IDEM_NEW;
    return 0;
}

int
db_idem_store(struct db *db, const char *scope, const char *key, const struct conf_idem_answer *a,
              int64_t expires_ms)
{
    static const char sql[] =
        "UPDATE idempotency SET state = 'done', status = ?3, content_type = ?4, location = ?5,"
        "  body = ?6, expires_ms = ?7"
        " WHERE scope = ?1 AND key = ?2 AND state = 'pending'";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, scope);
    db_bind_text(st, 2, key);
    sqlite3_bind_int(st, 3, a->status);
    db_bind_text(st, 4, a->content_type);
    db_bind_text(st, 5, a->location);
    if (a->body && a->body_len > 0)
        sqlite3_bind_blob64(st, 6, a->body, a->body_len, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_int64(st, 7, expires_ms);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "store the answer of an idempotency key");
    if (sqlite3_changes(db->h) == 0)
        return err_set(-ENOENT, "database: the idempotency key is not claimed (any more)");
    return 0;
}

int
db_idem_release(struct db *db, const char *scope, const char *key)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(
        db, "DELETE FROM idempotency WHERE scope = ?1 AND key = ?2 AND state = 'pending'", &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, scope);
    db_bind_text(st, 2, key);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "release an idempotency key");
    return 0;
}

int
db_idem_prune(struct db *db, int64_t now_ms, bool pending_too, int64_t *ret_deleted)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(
        db, "DELETE FROM idempotency WHERE expires_ms <= ?1 OR (?2 AND state = 'pending')", &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int(st, 2, pending_too ? 1 : 0);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "prune idempotency keys");
    if (ret_deleted)
        *ret_deleted = sqlite3_changes(db->h);
    return 0;
}
