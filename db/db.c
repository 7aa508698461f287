#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "db_priv.h"
#include "err.h"
#include "log.h"
#include "migrations.h"

int
db_error(struct db *db, int rc, const char *what)
{
    const char *msg = db && db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc);

    switch (rc & 0xff) {
    case SQLITE_FULL:
        return err_set(-ENOSPC, "database: %s: %s", what, msg);
    case SQLITE_CONSTRAINT:
        return err_set(-EEXIST, "database: %s: %s", what, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return err_set(-EAGAIN, "database: %s: %s", what, msg);
    case SQLITE_NOMEM:
        return err_set(-ENOMEM, "database: %s: out of memory", what);
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
        return err_set(-EACCES, "database: %s: %s", what, msg);
    default:
        return err_set(-EIO, "database: %s: %s", what, msg);
    }
}

int
db_prepare(struct db *db, const char *sql, sqlite3_stmt **ret)
{
    int rc = sqlite3_prepare_v2(db->h, sql, -1, ret, NULL);

    if (rc != SQLITE_OK)
        return db_error(db, rc, "prepare");
    return 0;
}

int
db_exec(struct db *db, const char *sql)
{
    int rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);

    if (rc != SQLITE_OK)
        return db_error(db, rc, "exec");
    return 0;
}

static int
pragma_int(struct db *db, const char *sql, int *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = db_prepare(db, sql, &st);

    if (r < 0)
        return r;
    if (sqlite3_step(st) != SQLITE_ROW)
        return db_error(db, sqlite3_errcode(db->h), sql);
    *ret = sqlite3_column_int(st, 0);
    return 0;
}

static int
integrity_check_locked(struct db *db)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    const char *first;
    int r, rc;

    r = db_prepare(db, "PRAGMA integrity_check", &st);
    if (r < 0)
        return r;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "integrity_check");
    first = (const char *)sqlite3_column_text(st, 0);
    if (!first || strcmp(first, "ok") != 0)
        return err_set(-EIO, "database fails integrity_check: %s", first ? first : "(no answer)");
    return 0;
}

/*
 * The start-up check: quick_check finds what a crash or a bad disk leaves
 * (malformed pages, broken b-trees, NOT NULL and CHECK violations) and
 * skips integrity_check's cross-check of every index against its table,
 * which costs a few times more and grows with the catalog: with 100,000
 * backups it alone took longer than the start-up is allowed.
 */
static int
quick_check_locked(struct db *db)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    const char *first;
    int r, rc;

    r = db_prepare(db, "PRAGMA quick_check", &st);
    if (r < 0)
        return r;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "quick_check");
    first = (const char *)sqlite3_column_text(st, 0);
    if (!first || strcmp(first, "ok") != 0)
        return err_set(-EIO, "database fails quick_check: %s", first ? first : "(no answer)");
    return 0;
}

int
db_integrity_check(struct db *db)
{
    DB_LOCK_SCOPE(db);
    return integrity_check_locked(db);
}

static int
migrate(struct db *db)
{
    int version, r;

    r = pragma_int(db, "PRAGMA user_version", &version);
    if (r < 0)
        return r;
    if (version > db_migrations_count)
        return err_set(-ENOTSUP,
                       "database schema version %d is newer than this virtvault knows (%d)",
                       version, db_migrations_count);
    for (int v = version; v < db_migrations_count; v++) {
        char bump[64];

        r = db_exec(db, "BEGIN IMMEDIATE");
        if (r < 0)
            return r;
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
        r = db_exec(db, db_migrations[v]);
        if (r >= 0)
            r = db_exec(db, bump);
        if (r < 0) {
            sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
            return r;
        }
        r = db_exec(db, "COMMIT");
        if (r < 0)
            return r;
        log_info("database migrated to schema version %d", v + 1);
    }
    return 0;
}

int
db_open(const char *path, struct db **ret)
{
    _cleanup_free_ struct db *db = calloc(1, sizeof(*db));
    int rc, r;

    if (!db)
        return -ENOMEM;
    rc = sqlite3_open_v2(path, &db->h,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        r = err_set(-EACCES, "cannot open database %s: %s", path,
                    db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
        sqlite3_close(db->h);
        return r;
    }
    pthread_mutex_init(&db->lock, NULL);
    sqlite3_busy_timeout(db->h, 5000);
    sqlite3_extended_result_codes(db->h, 1);

    r = db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
    if (r >= 0)
        r = quick_check_locked(db);
    if (r >= 0)
        r = migrate(db);
    if (r < 0) {
        /* Keep the detail that the failure recorded; say which file. */
        char why[512];
        snprintf(why, sizeof(why), "%s", err_detail() ? err_detail() : "cannot be used");
        r = err_set(r, "%s: %s", path, why);
        sqlite3_close(db->h);
        pthread_mutex_destroy(&db->lock);
        return r;
    }
    *ret = TAKE_PTR(db);
    return 0;
}

void
db_close(struct db *db)
{
    if (!db)
        return;
    sqlite3_close(db->h);
    pthread_mutex_destroy(&db->lock);
    free(db);
}

int
db_ping(struct db *db)
{
    int v;

    DB_LOCK_SCOPE(db);
    return pragma_int(db, "SELECT 1", &v);
}

int
db_schema_version(struct db *db)
{
    int v = -1;

    DB_LOCK_SCOPE(db);
    if (pragma_int(db, "PRAGMA user_version", &v) < 0)
        return -1;
    return v;
}
