/* The checkpoints table; see checkpoint.h. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cleanup.h"
#include "db_priv.h"
#include "err.h"
#include "text.h"

#define COLUMNS "domain_uuid, name, parent, xml, state, reason, created, stored, updated"

void
db_checkpoint_free(struct db_checkpoint *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->parent);
    free(c->xml);
    free(c->reason);
    free(c);
}

void
db_checkpoint_list_free(struct db_checkpoint *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) {
        free(list[i].name);
        free(list[i].parent);
        free(list[i].xml);
        free(list[i].reason);
    }
    free(list);
}

/* Fills c from a row of COLUMNS; -ENOMEM when a copy fails (c then needs freeing). */
static int
read_row(sqlite3_stmt *st, struct db_checkpoint *c)
{
    const unsigned char *uuid = sqlite3_column_text(st, 0);
    const unsigned char *state = sqlite3_column_text(st, 4);
    bool oom = false;

    snprintf(c->domain_uuid, sizeof(c->domain_uuid), "%s", uuid ? (const char *)uuid : "");
    if (conf_checkpoint_state_from_string((const char *)state, &c->state) < 0)
        return err_set(-EIO, "checkpoint row with an unknown state '%s'",
                       state ? (const char *)state : "");
    c->name = db_column_dup(st, 1, &oom);
    c->parent = db_column_dup(st, 2, &oom);
    c->xml = db_column_dup(st, 3, &oom);
    c->reason = db_column_dup(st, 5, &oom);
    c->created = sqlite3_column_int64(st, 6);
    c->stored = sqlite3_column_int64(st, 7);
    c->updated = sqlite3_column_int64(st, 8);
    if (oom || !c->name || !c->xml)
        return -ENOMEM;
    return 0;
}

/* Bumped after every write to the table (by any handle of this process). */
static atomic_uint_fast64_t version = 1;

static void
changed(void)
{
    atomic_fetch_add(&version, 1);
}

uint64_t
db_checkpoint_version(void)
{
    return atomic_load(&version);
}

int
db_checkpoint_put(struct db *db, const struct db_checkpoint *c)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int64_t now = text_now_ms();
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "INSERT INTO checkpoints (" COLUMNS
                   ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, MAX(?8, COALESCE((SELECT MAX(stored) + 1"
                   " FROM checkpoints WHERE domain_uuid = ?1), 0)), ?8)"
                   " ON CONFLICT (domain_uuid, name) DO UPDATE SET parent = excluded.parent,"
                   " xml = excluded.xml, state = excluded.state, reason = excluded.reason,"
                   " created = excluded.created, updated = excluded.updated",
                   &st);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, c->domain_uuid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->name, -1, SQLITE_STATIC);
    if (c->parent)
        sqlite3_bind_text(st, 3, c->parent, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->xml, -1, SQLITE_STATIC);
    if (!conf_checkpoint_state_to_string(c->state))
        return err_set(-EINVAL, "unknown checkpoint state %d", (int)c->state);
    sqlite3_bind_text(st, 5, conf_checkpoint_state_to_string(c->state), -1, SQLITE_STATIC);
    if (c->reason)
        sqlite3_bind_text(st, 6, c->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, c->created);
    sqlite3_bind_int64(st, 8, now);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "store checkpoint");
    changed();
    return 0;
}

int
db_checkpoint_get(struct db *db, const char *domain_uuid, const char *name,
                  struct db_checkpoint **ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct db_checkpoint *c;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "SELECT " COLUMNS " FROM checkpoints WHERE domain_uuid = ?1 AND name = ?2",
                   &st);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, domain_uuid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(-ENOENT, "checkpoint '%s' not found", name);
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "read checkpoint");
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    if (read_row(st, c) < 0) {
        db_checkpoint_free(c);
        return -ENOMEM;
    }
    *ret = c;
    return 0;
}

int
db_checkpoint_list(struct db *db, const char *domain_uuid, struct db_checkpoint **ret,
                   size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct db_checkpoint *list = NULL;
    size_t n = 0, cap = 0;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "SELECT " COLUMNS " FROM checkpoints WHERE domain_uuid = ?1"
                   " ORDER BY created, id",
                   &st);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, domain_uuid, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct db_checkpoint *grown = realloc(list, ncap * sizeof(*list));
            if (!grown) {
                db_checkpoint_list_free(list, n);
                return -ENOMEM;
            }
            list = grown;
            cap = ncap;
        }
        memset(&list[n], 0, sizeof(list[n]));
        r = read_row(st, &list[n]);
        n++;
        if (r < 0) {
            db_checkpoint_list_free(list, n);
            return r;
        }
    }
    if (rc != SQLITE_DONE) {
        db_checkpoint_list_free(list, n);
        return db_error(db, rc, "list checkpoints");
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

int
db_checkpoint_set_state(struct db *db, const char *domain_uuid, const char *name,
                        enum conf_checkpoint_state state, const char *reason)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "UPDATE checkpoints SET state = ?3, reason = ?4, updated = ?5"
                   " WHERE domain_uuid = ?1 AND name = ?2",
                   &st);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, domain_uuid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, conf_checkpoint_state_to_string(state), -1, SQLITE_STATIC);
    if (reason)
        sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, text_now_ms());
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "update checkpoint state");
    if (sqlite3_changes(db->h) == 0)
        return err_set(-ENOENT, "checkpoint '%s' not found", name);
    changed();
    return 0;
}

int
db_checkpoint_delete(struct db *db, const char *domain_uuid, const char *name)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "DELETE FROM checkpoints WHERE domain_uuid = ?1 AND name = ?2", &st);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, domain_uuid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "delete checkpoint");
    if (sqlite3_changes(db->h) == 0)
        return err_set(-ENOENT, "checkpoint '%s' not found", name);
    changed();
    return 0;
}
