/* The backup catalog in SQLite (see backup.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "cleanup.h"
#include "db_priv.h"
#include "hash.h"
#include "err.h"

#define BACKUP_COLUMNS                                                                             \
    "id, domain_uuid, domain_name, mode, type, state, job_id, chain_id, parent_id, "               \
    "base_checkpoint, checkpoint, domain_xml, stored_bytes, started_at, finished_at, "             \
    "error_errno, error_detail, verified_at, verify_ok, verify_detail, protected, location"

static _Atomic uint64_t backup_version = 1;

uint64_t
db_backup_version(void)
{
    return backup_version;
}

void
db_backup_changed(void)
{
    backup_version++;
}

/* Records rc as the failure of what and rolls the open transaction back. */
static int
rollback(struct db *db, int rc, const char *what)
{
    int r = db_error(db, rc, what);

    sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

static int
row_to_backup(sqlite3_stmt *st, struct conf_backup **ret)
{
    struct conf_backup *b = calloc(1, sizeof(*b));
    bool oom = false;

    if (!b)
        return -ENOMEM;
    b->id = db_column_dup(st, 0, &oom);
    b->domain_uuid = db_column_dup(st, 1, &oom);
    b->domain_name = db_column_dup(st, 2, &oom);
    if (conf_backup_mode_from_string((const char *)sqlite3_column_text(st, 3), &b->mode) < 0 ||
        conf_backup_type_from_string((const char *)sqlite3_column_text(st, 4), &b->type) < 0 ||
        conf_backup_state_from_string((const char *)sqlite3_column_text(st, 5), &b->state) < 0) {
        conf_backup_free(b);
        return err_set(-EIO, "a backup row has an unknown mode, type or state");
    }
    b->job_id = db_column_dup(st, 6, &oom);
    b->chain_id = db_column_dup(st, 7, &oom);
    b->parent_id = db_column_dup(st, 8, &oom);
    b->base_checkpoint = db_column_dup(st, 9, &oom);
    b->checkpoint = db_column_dup(st, 10, &oom);
    b->domain_xml = db_column_dup(st, 11, &oom);
    b->stored_bytes = (uint64_t)sqlite3_column_int64(st, 12);
    b->started_at = sqlite3_column_int64(st, 13);
    b->finished_at = sqlite3_column_int64(st, 14);
    b->error_errno = sqlite3_column_int(st, 15);
    b->error_detail = db_column_dup(st, 16, &oom);
    b->verified_at = sqlite3_column_int64(st, 17);
    b->verify_ok = sqlite3_column_type(st, 18) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 18);
    b->verify_detail = db_column_dup(st, 19, &oom);
    b->is_protected = sqlite3_column_int(st, 20) != 0;
    b->location = db_column_dup(st, 21, &oom);
    if (oom) {
        conf_backup_free(b);
        return -ENOMEM;
    }
    *ret = b;
    return 0;
}

#define DISKS_SQL                                                                                  \
    "SELECT target, file, backing, size, stored_bytes, sha256, checksum_algorithm "                \
    "FROM backup_disks "                                                                           \
    "WHERE backup_id = ?1 ORDER BY target"

/*
 * Reads the disk rows of b (the lock held) with st, a statement of
 * DISKS_SQL that a list reuses for each of its rows.
 */
static int
load_disks_with(struct db *db, sqlite3_stmt *st, struct conf_backup *b)
{
    size_t cap = 0;
    bool oom = false;
    int rc;

    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, b->id, -1, SQLITE_TRANSIENT);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (b->n_disks == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            struct conf_backup_disk *n = realloc(b->disks, ncap * sizeof(*n));
            if (!n)
                return -ENOMEM;
            b->disks = n;
            cap = ncap;
        }
        struct conf_backup_disk *d = &b->disks[b->n_disks++];
        memset(d, 0, sizeof(*d));
        d->target = db_column_dup(st, 0, &oom);
        d->file = db_column_dup(st, 1, &oom);
        d->backing = db_column_dup(st, 2, &oom);
        d->size = (uint64_t)sqlite3_column_int64(st, 3);
        d->stored_bytes = (uint64_t)sqlite3_column_int64(st, 4);
        d->sha256 = db_column_dup(st, 5, &oom);
        d->checksum_algorithm = db_column_dup(st, 6, &oom);
        if (oom)
            return -ENOMEM;
    }
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "read backup disks");
    return 0;
}

/* Reads the disk rows of b (the lock held). */
static int
load_disks(struct db *db, struct conf_backup *b)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = db_prepare(db, DISKS_SQL, &st);

    return r < 0 ? r : load_disks_with(db, st, b);
}

int
db_backup_insert(struct db *db, const struct conf_backup *b)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_stmt_ sqlite3_stmt *sd = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    DB_BACKUP_CHANGES;
    r = db_prepare(db,
                   "INSERT INTO backups (" BACKUP_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                   "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, NULL, NULL, NULL, ?18, ?19)",
                   &st);
    if (r < 0)
        return r;
    r = db_prepare(db,
                   "INSERT INTO backup_disks (backup_id, target, file, backing, size, "
                   "stored_bytes, sha256, checksum_algorithm) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, coalesce(?8, 'sha256'))",
                   &sd);
    if (r < 0)
        return r;
    r = db_exec(db, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    db_bind_text(st, 1, b->id);
    db_bind_text(st, 2, b->domain_uuid);
    db_bind_text(st, 3, b->domain_name);
    db_bind_text(st, 4, conf_backup_mode_to_string(b->mode));
    db_bind_text(st, 5, conf_backup_type_to_string(b->type));
    db_bind_text(st, 6, conf_backup_state_to_string(b->state));
    db_bind_text(st, 7, b->job_id);
    db_bind_text(st, 8, b->chain_id);
    db_bind_text(st, 9, b->parent_id);
    db_bind_text(st, 10, b->base_checkpoint);
    db_bind_text(st, 11, b->checkpoint);
    db_bind_text(st, 12, b->domain_xml);
    sqlite3_bind_int64(st, 13, (int64_t)b->stored_bytes);
    sqlite3_bind_int64(st, 14, b->started_at);
    db_bind_opt_int(st, 15, b->finished_at);
    db_bind_opt_int(st, 16, b->error_errno);
    db_bind_text(st, 17, b->error_detail);
    sqlite3_bind_int(st, 18, b->is_protected ? 1 : 0);
    db_bind_text(st, 19, b->location);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return rollback(db, rc, "insert backup");
    for (size_t i = 0; i < b->n_disks; i++) {
        const struct conf_backup_disk *d = &b->disks[i];

        sqlite3_reset(sd);
        db_bind_text(sd, 1, b->id);
        db_bind_text(sd, 2, d->target);
        db_bind_text(sd, 3, d->file);
        db_bind_text(sd, 4, d->backing);
        sqlite3_bind_int64(sd, 5, (int64_t)d->size);
        sqlite3_bind_int64(sd, 6, (int64_t)d->stored_bytes);
        db_bind_text(sd, 7, d->sha256);
        db_bind_text(sd, 8, d->checksum_algorithm);
        rc = sqlite3_step(sd);
        if (rc != SQLITE_DONE)
            return rollback(db, rc, "insert backup disk");
    }
    return db_exec(db, "COMMIT");
}

int
db_backup_get(struct db *db, const char *id, struct conf_backup **ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct conf_backup *b = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "SELECT " BACKUP_COLUMNS " FROM backups WHERE id = ?1", &st);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(-ENOENT, "backup '%s' not found", id);
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "read backup");
    r = row_to_backup(st, &b);
    if (r < 0)
        return r;
    r = load_disks(db, b);
    if (r < 0) {
        conf_backup_free(b);
        return r;
    }
    *ret = b;
    return 0;
}

/*
 * The WHERE clause shared by the list and its count: every filter is a bound
 * parameter. The domain is a plain equality when one is asked for, so that
 * the planner walks backups_by_domain_page (migration 13) rather than the
 * whole catalog; FILTER_ALL (?1 bound to NULL) lists every domain's.
 */
#define FILTER_REST                                                                                \
    " AND (?2 IS NULL OR type = ?2) AND "                                                          \
    "(?3 IS NULL OR state = ?3) AND (?4 IS NULL OR chain_id = ?4) AND "                            \
    "(?5 IS NULL OR checkpoint = ?5)"
#define FILTER_ONE " WHERE domain_uuid = ?1" FILTER_REST
#define FILTER_ALL " WHERE ?1 IS NULL" FILTER_REST
#define LIST_SQL(filter)                                                                           \
    "SELECT " BACKUP_COLUMNS " FROM backups" filter                                                \
    " AND (?8 IS NULL OR started_at < ?9 OR (started_at = ?9 AND id < ?8))"                        \
    " ORDER BY started_at DESC, id DESC LIMIT ?6 OFFSET ?7"

static void
bind_filter(sqlite3_stmt *st, const struct db_backup_filter *f)
{
    db_bind_text(st, 1, f->domain_uuid);
    db_bind_text(st, 2, f->type ? conf_backup_type_to_string(*f->type) : NULL);
    db_bind_text(st, 3, f->state ? conf_backup_state_to_string(*f->state) : NULL);
    db_bind_text(st, 4, f->chain_id);
    db_bind_text(st, 5, f->checkpoint);
}

int
db_backup_list(struct db *db, const struct db_backup_filter *filter, struct conf_backup ***ret,
               size_t *ret_n, size_t *ret_total)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_stmt_ sqlite3_stmt *sc = NULL;
    _cleanup_stmt_ sqlite3_stmt *sd = NULL;
    struct conf_backup **list = NULL;
    size_t n = 0, cap = 0, total = 0;
    bool one = filter->domain_uuid != NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, one ? LIST_SQL(FILTER_ONE) : LIST_SQL(FILTER_ALL), &st);
    if (r >= 0)
        r = db_prepare(db, DISKS_SQL, &sd);
    if (r < 0)
        return r;
    bind_filter(st, filter);
    sqlite3_bind_int64(st, 6, filter->limit ? (int64_t)filter->limit : -1);
    sqlite3_bind_int64(st, 7, (int64_t)filter->offset);
    db_bind_text(st, 8, filter->after_id);
    sqlite3_bind_int64(st, 9, filter->after_started);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct conf_backup **nl = realloc(list, ncap * sizeof(*nl));
            if (!nl) {
                conf_backup_list_free(list, n);
                return -ENOMEM;
            }
            list = nl;
            cap = ncap;
        }
        r = row_to_backup(st, &list[n]);
        if (r >= 0) {
            n++;
            r = load_disks_with(db, sd, list[n - 1]);
        }
        if (r < 0) {
            conf_backup_list_free(list, n);
            return r;
        }
    }
    if (rc != SQLITE_DONE) {
        conf_backup_list_free(list, n);
        return db_error(db, rc, "list backups");
    }
    if (ret_total) {
        r = db_prepare(db,
                       one ? "SELECT count(*) FROM backups" FILTER_ONE
                           : "SELECT count(*) FROM backups" FILTER_ALL,
                       &sc);
        if (r >= 0) {
            bind_filter(sc, filter);
            rc = sqlite3_step(sc);
            if (rc == SQLITE_ROW)
                total = (size_t)sqlite3_column_int64(sc, 0);
            else
                r = db_error(db, rc, "count backups");
        }
        if (r < 0) {
            conf_backup_list_free(list, n);
            return r;
        }
        *ret_total = total;
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

int
db_backup_finish(struct db *db, const struct conf_backup *b)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_stmt_ sqlite3_stmt *sd = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    DB_BACKUP_CHANGES;
    r = db_prepare(db,
                   "UPDATE backups SET state = ?2, finished_at = ?3, stored_bytes = ?4, "
                   "error_errno = ?5, error_detail = ?6 WHERE id = ?1",
                   &st);
    if (r < 0)
        return r;
    r = db_prepare(db,
                   "UPDATE backup_disks SET stored_bytes = ?3, sha256 = ?4, "
                   "checksum_algorithm = ?5, piece_digests = ?6 "
                   "WHERE backup_id = ?1 AND target = ?2",
                   &sd);
    if (r < 0)
        return r;
    r = db_exec(db, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    db_bind_text(st, 1, b->id);
    db_bind_text(st, 2, conf_backup_state_to_string(b->state));
    db_bind_opt_int(st, 3, b->finished_at);
    sqlite3_bind_int64(st, 4, (int64_t)b->stored_bytes);
    db_bind_opt_int(st, 5, b->error_errno);
    db_bind_text(st, 6, b->error_detail);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return rollback(db, rc, "record the end of a backup");
    if (sqlite3_changes(db->h) == 0) {
        sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
        return err_set(-ENOENT, "backup '%s' not found", b->id);
    }
    if (b->state != CONF_BACKUP_STATE_COMPLETED) {
        /* A backup that did not complete has no files: its row must not claim any. */
        sqlite3_finalize(sd);
        sd = NULL;
        r = db_prepare(db, "DELETE FROM backup_disks WHERE backup_id = ?1", &sd);
        if (r < 0) {
            sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
            return r;
        }
        db_bind_text(sd, 1, b->id);
        rc = sqlite3_step(sd);
        if (rc != SQLITE_DONE)
            return rollback(db, rc, "forget the disks of a backup");
        return db_exec(db, "COMMIT");
    }
    for (size_t i = 0; i < b->n_disks; i++) {
        sqlite3_reset(sd);
        db_bind_text(sd, 1, b->id);
        db_bind_text(sd, 2, b->disks[i].target);
        sqlite3_bind_int64(sd, 3, (int64_t)b->disks[i].stored_bytes);
        db_bind_text(sd, 4, b->disks[i].sha256);
        db_bind_checksum(sd, 5, &b->disks[i]);
        rc = sqlite3_step(sd);
        if (rc != SQLITE_DONE)
            return rollback(db, rc, "record a backup disk");
    }
    return db_exec(db, "COMMIT");
}

int
db_backup_disk_pieces(struct db *db, const char *id, const char *target, uint8_t **ret,
                      size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    const void *blob;
    uint8_t *copy = NULL;
    int r, rc, len;

    DB_LOCK_SCOPE(db);
    r = db_prepare(
        db, "SELECT piece_digests FROM backup_disks WHERE backup_id = ?1 AND target = ?2", &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, id);
    db_bind_text(st, 2, target);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(-ENOENT, "backup '%s' has no disk %s", id, target);
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "read piece digests");
    blob = sqlite3_column_blob(st, 0);
    len = sqlite3_column_bytes(st, 0);
    if (blob && len > 0) {
        if (len % HASH_SHA256_LEN != 0)
            return err_set(-EBADMSG, "the piece digests of backup '%s' disk %s are damaged", id,
                           target);
        copy = malloc((size_t)len);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, blob, (size_t)len);
    }
    *ret = copy;
    *ret_n = (size_t)len / HASH_SHA256_LEN;
    return 0;
}

int
db_backup_set_verification(struct db *db, const char *id, int64_t at, int ok, const char *detail)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    DB_BACKUP_CHANGES;
    r = db_prepare(db,
                   "UPDATE backups SET verified_at = ?2, verify_ok = ?3, verify_detail = ?4 "
                   "WHERE id = ?1",
                   &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, at);
    sqlite3_bind_int(st, 3, ok ? 1 : 0);
    db_bind_text(st, 4, detail);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "record a verification");
    if (sqlite3_changes(db->h) == 0)
        return err_set(-ENOENT, "backup '%s' not found", id);
    return 0;
}

int
db_backup_dependents(struct db *db, const char *id, char ***ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char **ids = NULL;
    size_t n = 0;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "SELECT id FROM backups WHERE parent_id = ?1 ORDER BY started_at DESC, "
                   "rowid DESC",
                   &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char **nl = realloc(ids, (n + 2) * sizeof(*nl));
        char *s = strdup((const char *)sqlite3_column_text(st, 0));
        if (!nl || !s) {
            free(s);
            ids = nl ? nl : ids;
            for (size_t i = 0; i < n; i++)
                free(ids[i]);
            free(ids);
            return -ENOMEM;
        }
        ids = nl;
        ids[n++] = s;
        ids[n] = NULL;
    }
    if (rc != SQLITE_DONE) {
        for (size_t i = 0; i < n; i++)
            free(ids[i]);
        free(ids);
        return db_error(db, rc, "list dependent backups");
    }
    if (!ids && !(ids = calloc(1, sizeof(*ids))))
        return -ENOMEM;
    *ret = ids;
    *ret_n = n;
    return 0;
}

/*
 * Runs sql, which names the backup as ?1 and an optional text value as ?2,
 * on exactly one row: -ENOENT when no backup has that id.
 */
static int
change_one(struct db *db, const char *sql, const char *id, const char *value, const char *what)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    DB_BACKUP_CHANGES;
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, id);
    if (value)
        db_bind_text(st, 2, value);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, what);
    if (sqlite3_changes(db->h) == 0)
        return err_set(-ENOENT, "backup '%s' not found", id);
    return 0;
}

int
db_backup_delete(struct db *db, const char *id)
{
    return change_one(db, "DELETE FROM backups WHERE id = ?1", id, NULL, "delete backup");
}

int
db_backup_set_protected(struct db *db, const char *id, bool on)
{
    return change_one(db, "UPDATE backups SET protected = (?2 = 'on') WHERE id = ?1", id,
                      on ? "on" : "off", "record a backup's protection");
}

int
db_backup_set_state(struct db *db, const char *id, enum conf_backup_state state)
{
    return change_one(db, "UPDATE backups SET state = ?2 WHERE id = ?1", id,
                      conf_backup_state_to_string(state), "record a backup's state");
}

int
db_backup_set_job(struct db *db, const char *id, const char *job_id)
{
    return change_one(db, "UPDATE backups SET job_id = ?2 WHERE id = ?1", id, job_id,
                      "record a backup's job");
}

int
db_backup_find_domain(struct db *db, const char *name_or_uuid, char ret_uuid[37], char **ret_name)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    const char *uuid, *name;
    char *copy;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "SELECT domain_uuid, domain_name FROM backups WHERE domain_uuid = ?1 OR "
                   "domain_name = ?1 ORDER BY domain_uuid = ?1 DESC, started_at DESC LIMIT 1",
                   &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, name_or_uuid);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(-ENOENT, "domain '%s' not found", name_or_uuid);
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "find a domain's backups");
    uuid = (const char *)sqlite3_column_text(st, 0);
    name = (const char *)sqlite3_column_text(st, 1);
    if (!uuid || strlen(uuid) != 36 || !name)
        return err_set(-EIO, "database: a backup row without its domain");
    copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    memcpy(ret_uuid, uuid, 37);
    *ret_name = copy;
    return 0;
}
