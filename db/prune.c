/* Prune intents and the catalog switch of a prune (see prune.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "db_priv.h"
#include "err.h"
#include "prune.h"
#include "text.h"

static int
rollback(struct db *db, int rc, const char *what)
{
    int r = db_error(db, rc, what);

    sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

void
db_prune_intent_clear(struct db_prune_intent *it)
{
    for (size_t i = 0; i < it->n_ops; i++) {
        free(it->ops[i].path);
        free(it->ops[i].target);
    }
    free(it->ops);
    free(it->id);
    free(it->domain_uuid);
    memset(it, 0, sizeof(*it));
}

int
db_prune_intent_put(struct db *db, const struct db_prune_intent *it)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_stmt_ sqlite3_stmt *so = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "INSERT INTO prune_intents (id, domain_uuid, state, created_ms) "
                   "VALUES (?1, ?2, 'prepared', ?3)",
                   &st);
    if (r < 0)
        return r;
    r = db_prepare(db,
                   "INSERT INTO prune_intent_files (intent_id, seq, op, path, target) "
                   "VALUES (?1, ?2, ?3, ?4, ?5)",
                   &so);
    if (r < 0)
        return r;
    r = db_exec(db, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    db_bind_text(st, 1, it->id);
    db_bind_text(st, 2, it->domain_uuid);
    sqlite3_bind_int64(st, 3, text_now_ms());
    rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT) {
        sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
        return err_set(-EEXIST, "prune intent %s exists already", it->id);
    }
    if (rc != SQLITE_DONE)
        return rollback(db, rc, "record a prune intent");
    for (size_t i = 0; i < it->n_ops; i++) {
        sqlite3_reset(so);
        db_bind_text(so, 1, it->id);
        sqlite3_bind_int64(so, 2, (int64_t)i);
        db_bind_text(so, 3, it->ops[i].kind == DB_PRUNE_WRITE ? "write" : "remove");
        db_bind_text(so, 4, it->ops[i].path);
        db_bind_text(so, 5, it->ops[i].target);
        rc = sqlite3_step(so);
        if (rc != SQLITE_DONE)
            return rollback(db, rc, "record a prune intent's file");
    }
    return db_exec(db, "COMMIT");
}

/* Runs a prepared statement to its end; rolls back on failure. */
static int
step_done(struct db *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);

    if (rc != SQLITE_DONE)
        return rollback(db, rc, what);
    return 0;
}

int
db_prune_commit(struct db *db, const char *intent_id, struct conf_backup *const *changed,
                size_t n_changed, char *const *removed, size_t n_removed)
{
    _cleanup_stmt_ sqlite3_stmt *sb = NULL;
    _cleanup_stmt_ sqlite3_stmt *sd = NULL;
    _cleanup_stmt_ sqlite3_stmt *sr = NULL;
    _cleanup_stmt_ sqlite3_stmt *si = NULL;
    int r;

    DB_LOCK_SCOPE(db);
    DB_BACKUP_CHANGES;
    r = db_prepare(db,
                   "UPDATE backups SET type = ?2, parent_id = ?3, base_checkpoint = ?4, "
                   "stored_bytes = ?5 WHERE id = ?1",
                   &sb);
    if (r >= 0)
        r = db_prepare(db,
                       "UPDATE backup_disks SET backing = ?3, stored_bytes = ?4, sha256 = ?5, "
                       "checksum_algorithm = ?6, piece_digests = ?7 "
                       "WHERE backup_id = ?1 AND target = ?2",
                       &sd);
    if (r >= 0)
        r = db_prepare(db, "DELETE FROM backups WHERE id = ?1", &sr);
    if (r >= 0)
        r = db_prepare(db,
                       "UPDATE prune_intents SET state = 'committed' WHERE id = ?1 AND "
                       "state = 'prepared'",
                       &si);
    if (r < 0)
        return r;
    r = db_exec(db, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    for (size_t i = 0; i < n_changed; i++) {
        const struct conf_backup *b = changed[i];

        sqlite3_reset(sb);
        db_bind_text(sb, 1, b->id);
        db_bind_text(sb, 2, conf_backup_type_to_string(b->type));
        db_bind_text(sb, 3, b->parent_id);
        db_bind_text(sb, 4, b->base_checkpoint);
        sqlite3_bind_int64(sb, 5, (int64_t)b->stored_bytes);
        r = step_done(db, sb, "switch a pruned backup");
        if (r < 0)
            return r;
        if (sqlite3_changes(db->h) != 1) {
            sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
            return err_set(-ENOENT, "backup '%s' not found", b->id);
        }
        for (size_t k = 0; k < b->n_disks; k++) {
            sqlite3_reset(sd);
            db_bind_text(sd, 1, b->id);
            db_bind_text(sd, 2, b->disks[k].target);
            db_bind_text(sd, 3, b->disks[k].backing);
            sqlite3_bind_int64(sd, 4, (int64_t)b->disks[k].stored_bytes);
            db_bind_text(sd, 5, b->disks[k].sha256);
            db_bind_checksum(sd, 6, &b->disks[k]);
            r = step_done(db, sd, "switch a pruned backup's disk");
            if (r < 0)
                return r;
        }
    }
    for (size_t i = 0; i < n_removed; i++) {
        sqlite3_reset(sr);
        db_bind_text(sr, 1, removed[i]);
        r = step_done(db, sr, "delete a pruned backup");
        if (r < 0)
            return r;
    }
    db_bind_text(si, 1, intent_id);
    r = step_done(db, si, "commit a prune intent");
    if (r < 0)
        return r;
    if (sqlite3_changes(db->h) != 1) {
        sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
        return err_set(-ENOENT, "prune intent %s is not prepared", intent_id);
    }
    return db_exec(db, "COMMIT");
}

/* Reads the ops of it (the lock held). */
static int
load_ops(struct db *db, struct db_prune_intent *it)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    bool oom = false;
    int r, rc;

    r = db_prepare(db,
                   "SELECT op, path, target FROM prune_intent_files WHERE intent_id = ?1 "
                   "ORDER BY seq",
                   &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, it->id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct db_prune_op *n = realloc(it->ops, (it->n_ops + 1) * sizeof(*n));
        const char *op = (const char *)sqlite3_column_text(st, 0);

        if (!n)
            return -ENOMEM;
        it->ops = n;
        n = &it->ops[it->n_ops++];
        memset(n, 0, sizeof(*n));
        n->kind = op && strcmp(op, "write") == 0 ? DB_PRUNE_WRITE : DB_PRUNE_REMOVE;
        n->path = db_column_dup(st, 1, &oom);
        n->target = db_column_dup(st, 2, &oom);
        if (oom || !n->path)
            return oom ? -ENOMEM : err_set(-EIO, "a prune intent names no file");
    }
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "read a prune intent's files");
    return 0;
}

int
db_prune_intent_list(struct db *db, struct db_prune_intent **ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct db_prune_intent *list = NULL;
    size_t n = 0;
    bool oom = false;
    int r = 0, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "SELECT id, domain_uuid, state FROM prune_intents ORDER BY created_ms, id",
                   &st);
    if (r < 0)
        return r;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct db_prune_intent *nl = realloc(list, (n + 1) * sizeof(*nl));
        const char *state = (const char *)sqlite3_column_text(st, 2);

        if (!nl) {
            r = -ENOMEM;
            break;
        }
        list = nl;
        memset(&list[n], 0, sizeof(list[n]));
        list[n].id = db_column_dup(st, 0, &oom);
        list[n].domain_uuid = db_column_dup(st, 1, &oom);
        list[n].committed = state && strcmp(state, "committed") == 0;
        n++;
        if (oom) {
            r = -ENOMEM;
            break;
        }
        r = load_ops(db, &list[n - 1]);
        if (r < 0)
            break;
    }
    if (r >= 0 && rc != SQLITE_DONE)
        r = db_error(db, rc, "read the prune intents");
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            db_prune_intent_clear(&list[i]);
        free(list);
        return r;
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

int
db_prune_intent_delete(struct db *db, const char *id)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "DELETE FROM prune_intents WHERE id = ?1", &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "forget a prune intent");
    return 0;
}
