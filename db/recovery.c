/* Instant recoveries and their locks (see recovery.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cleanup.h"
#include "db_priv.h"
#include "err.h"
#include "recovery.h"

#define COLUMNS "id, backup_id, name, domain_uuid, target_dir, state, created_ms"

static int
rollback(struct db *db, int rc, const char *what)
{
    int r = db_error(db, rc, what);

    (void)db_exec(db, "ROLLBACK");
    return r;
}

/* A new record of the row st stands on (COLUMNS), or NULL when out of memory. */
static struct conf_recovery *
read_row(sqlite3_stmt *st)
{
    struct conf_recovery *r = calloc(1, sizeof(*r));
    bool oom = false;

    if (!r)
        return NULL;
    r->id = db_column_dup(st, 0, &oom);
    r->backup_id = db_column_dup(st, 1, &oom);
    r->name = db_column_dup(st, 2, &oom);
    r->domain_uuid = db_column_dup(st, 3, &oom);
    r->target_dir = db_column_dup(st, 4, &oom);
    if (conf_recovery_state_from_string((const char *)sqlite3_column_text(st, 5), &r->state) < 0)
        r->state = CONF_RECOVERY_FAILED;
    r->created_ms = sqlite3_column_int64(st, 6);
    if (oom) {
        conf_recovery_free(r);
        return NULL;
    }
    return r;
}

int
db_recovery_insert(struct db *db, const struct conf_recovery *rec, char *const *locked, size_t n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_stmt_ sqlite3_stmt *sl = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "INSERT INTO recoveries (" COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                   &st);
    if (r < 0)
        return r;
    r = db_prepare(
        db, "INSERT OR IGNORE INTO recovery_locks (recovery_id, backup_id) VALUES (?1, ?2)", &sl);
    if (r < 0)
        return r;
    r = db_exec(db, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    db_bind_text(st, 1, rec->id);
    db_bind_text(st, 2, rec->backup_id);
    db_bind_text(st, 3, rec->name);
    db_bind_text(st, 4, rec->domain_uuid);
    db_bind_text(st, 5, rec->target_dir);
    db_bind_text(st, 6, conf_recovery_state_to_string(rec->state));
    sqlite3_bind_int64(st, 7, rec->created_ms);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return rollback(db, rc, "insert recovery");
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(sl);
        db_bind_text(sl, 1, rec->id);
        db_bind_text(sl, 2, locked[i]);
        rc = sqlite3_step(sl);
        if (rc != SQLITE_DONE)
            return rollback(db, rc, "insert recovery lock");
    }
    return db_exec(db, "COMMIT");
}

int
db_recovery_get(struct db *db, const char *id, struct conf_recovery **ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct conf_recovery *rec;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "SELECT " COLUMNS " FROM recoveries WHERE id = ?1", &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(-ENOENT, "no recovery %s", id);
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "read recovery");
    rec = read_row(st);
    if (!rec)
        return -ENOMEM;
    *ret = rec;
    return 0;
}

int
db_recovery_set(struct db *db, const char *id, enum conf_recovery_state state,
                const char *domain_uuid)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "UPDATE recoveries SET state = ?2, domain_uuid = coalesce(?3, domain_uuid)"
                   " WHERE id = ?1",
                   &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, id);
    db_bind_text(st, 2, conf_recovery_state_to_string(state));
    db_bind_text(st, 3, domain_uuid);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "update recovery");
    return 0;
}

int
db_recovery_list_locking(struct db *db, struct conf_recovery ***ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct conf_recovery **list = NULL;
    size_t n = 0;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "SELECT " COLUMNS " FROM recoveries WHERE state IN ('moving', 'stopped')"
                   " ORDER BY created_ms",
                   &st);
    if (r < 0)
        return r;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct conf_recovery **grown = realloc(list, (n + 1) * sizeof(*list));
        if (grown)
            list = grown;
        if (!grown || !(list[n] = read_row(st))) {
            for (size_t i = 0; i < n; i++)
                conf_recovery_free(list[i]);
            free(list);
            return -ENOMEM;
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        for (size_t i = 0; i < n; i++)
            conf_recovery_free(list[i]);
        free(list);
        return db_error(db, rc, "list recoveries");
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

int
db_recovery_locked_by(struct db *db, const char *backup_id, char **ret_id, char **ret_name)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    bool oom = false;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "SELECT r.id, r.name FROM recovery_locks l"
                   " JOIN recoveries r ON r.id = l.recovery_id"
                   " WHERE l.backup_id = ?1 AND r.state IN ('moving', 'stopped')"
                   " ORDER BY r.created_ms LIMIT 1",
                   &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, backup_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "read recovery locks");
    char *job = db_column_dup(st, 0, &oom);
    char *name = db_column_dup(st, 1, &oom);
    if (oom) {
        free(job);
        free(name);
        return -ENOMEM;
    }
    *ret_id = job;
    *ret_name = name;
    return 1;
}

int
db_mount_insert(struct db *db, const char *id, const char *backup_id, const char *exports,
                int64_t created_ms)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(
        db, "INSERT INTO mounts (id, backup_id, exports, created_ms) VALUES (?1, ?2, ?3, ?4)", &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, id);
    db_bind_text(st, 2, backup_id);
    db_bind_text(st, 3, exports);
    sqlite3_bind_int64(st, 4, created_ms);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "insert mount");
    return 0;
}

int
db_mount_delete(struct db *db, const char *id)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "DELETE FROM mounts WHERE id = ?1", &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "delete mount");
    return 0;
}

static void
strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int
db_mount_list(struct db *db, char ***ret_ids, char ***ret_exports, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char **ids = NULL, **exports = NULL;
    size_t n = 0;
    bool oom = false;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "SELECT id, exports FROM mounts ORDER BY created_ms", &st);
    if (r < 0)
        return r;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char **gi = realloc(ids, (n + 2) * sizeof(*ids));
        if (gi)
            ids = gi;
        char **ge = gi ? realloc(exports, (n + 2) * sizeof(*exports)) : NULL;
        if (ge)
            exports = ge;
        if (!gi || !ge) {
            oom = true;
            break;
        }
        ids[n] = db_column_dup(st, 0, &oom);
        exports[n] = db_column_dup(st, 1, &oom);
        n++;
        ids[n] = exports[n] = NULL;
        if (oom)
            break;
    }
    if (oom || (rc != SQLITE_DONE && rc != SQLITE_ROW)) {
        strv_free(ids, n);
        strv_free(exports, n);
        return oom ? -ENOMEM : db_error(db, rc, "list mounts");
    }
    if (!ids) {
        ids = calloc(1, sizeof(*ids));
        exports = calloc(1, sizeof(*exports));
        if (!ids || !exports) {
            free(ids);
            free(exports);
            return -ENOMEM;
        }
    }
    *ret_ids = ids;
    *ret_exports = exports;
    *ret_n = n;
    return 0;
}
