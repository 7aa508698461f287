/* Remotes, copies and uploads in the database (see remote.h). */
#include <errno.h>
#include <stdio.h>

#include "db_priv.h"
#include "err.h"
#include "remote.h"

#define REMOTE_COLUMNS                                                                             \
    "name, endpoint, region, bucket, prefix, path_style, access_key, ca_file, key_file,"           \
    " created_ms, updated_ms, lock_days"

/*
 * Steps st to its end, reading each row with read() into a new element of
 * size bytes at the end of an array; read() leaves nothing allocated when it
 * fails. Sets *ret and *ret_n, or frees what was read with list_free() and
 * returns -errno (what names the query in a database error).
 */
static int
read_rows(struct db *db, sqlite3_stmt *st, const char *what, size_t size,
          int (*read)(sqlite3_stmt *, void *), void (*list_free)(void *, size_t), void **ret,
          size_t *ret_n)
{
    char *list = NULL;
    size_t n = 0;
    int rc, r;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char *nl = realloc(list, (n + 1) * size);
        if (!nl) {
            list_free(list, n);
            return -ENOMEM;
        }
        list = nl;
        r = read(st, list + n * size);
        if (r < 0) {
            list_free(list, n);
            return r;
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        list_free(list, n);
        return db_error(db, rc, what);
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

static void
remote_list_free(void *list, size_t n)
{
    conf_remote_list_free(list, n);
}

static void
copy_list_free(void *list, size_t n)
{
    conf_copy_list_free(list, n);
}

static void
part_list_free(void *list, size_t n)
{
    conf_copy_part_list_free(list, n);
}

static int
read_remote(sqlite3_stmt *st, void *item)
{
    struct conf_remote *r = item;
    bool oom = false;

    memset(r, 0, sizeof(*r));
    r->name = db_column_dup(st, 0, &oom);
    r->endpoint = db_column_dup(st, 1, &oom);
    r->region = db_column_dup(st, 2, &oom);
    r->bucket = db_column_dup(st, 3, &oom);
    r->prefix = db_column_dup(st, 4, &oom);
    r->path_style = sqlite3_column_int(st, 5) != 0;
    r->access_key = db_column_dup(st, 6, &oom);
    r->ca_file = db_column_dup(st, 7, &oom);
    r->key_file = db_column_dup(st, 8, &oom);
    r->created_ms = sqlite3_column_int64(st, 9);
    r->updated_ms = sqlite3_column_int64(st, 10);
    r->lock_days = (unsigned)sqlite3_column_int64(st, 11);
    if (oom) {
        conf_remote_clear(r);
        return -ENOMEM;
    }
    return 0;
}

int
db_remote_put(struct db *db, const struct conf_remote *r, bool create)
{
    static const char ins[] = "INSERT INTO remotes (" REMOTE_COLUMNS ") VALUES"
                              " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
    static const char upd[] = "UPDATE remotes SET endpoint = ?2, region = ?3, bucket = ?4,"
                              " prefix = ?5, path_style = ?6, access_key = ?7, ca_file = ?8,"
                              " key_file = ?9, updated_ms = ?11, lock_days = ?12 WHERE name = ?1";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int rc, r2;

    DB_LOCK_SCOPE(db);
    r2 = db_prepare(db, create ? ins : upd, &st);
    if (r2 < 0)
        return r2;
    db_bind_text(st, 1, r->name);
    db_bind_text(st, 2, r->endpoint);
    db_bind_text(st, 3, r->region);
    db_bind_text(st, 4, r->bucket);
    db_bind_text(st, 5, r->prefix);
    sqlite3_bind_int(st, 6, r->path_style);
    db_bind_text(st, 7, r->access_key);
    db_bind_text(st, 8, r->ca_file);
    db_bind_text(st, 9, r->key_file);
    sqlite3_bind_int64(st, 10, r->created_ms);
    sqlite3_bind_int64(st, 11, r->updated_ms);
    sqlite3_bind_int64(st, 12, r->lock_days);
    rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT)
        return err_set(-EEXIST, "a remote named '%s' exists already", r->name);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "remote put");
    if (!create && sqlite3_changes(db->h) == 0)
        return err_set(-ENOENT, "no remote '%s'", r->name);
    return 0;
}

int
db_remote_get(struct db *db, const char *name, struct conf_remote *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int rc, r;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "SELECT " REMOTE_COLUMNS " FROM remotes WHERE name = ?1", &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, name);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(-ENOENT, "no remote '%.64s'", name);
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "remote get");
    return read_remote(st, ret);
}

int
db_remote_list(struct db *db, struct conf_remote **ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    void *list = NULL;
    int r;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "SELECT " REMOTE_COLUMNS " FROM remotes ORDER BY name", &st);
    if (r < 0)
        return r;
    r = read_rows(db, st, "remote list", sizeof(struct conf_remote), read_remote, remote_list_free,
                  &list, ret_n);
    if (r >= 0)
        *ret = list;
    return r;
}

int
db_remote_delete(struct db *db, const char *name)
{
    static const char *const sqls[] = {
        ("DELETE FROM remote_parts WHERE upload_id IN"
         " (SELECT upload_id FROM remote_uploads WHERE remote = ?1)"),
        "DELETE FROM remote_uploads WHERE remote = ?1",
        "DELETE FROM remote_copies WHERE remote = ?1",
        "DELETE FROM remotes WHERE name = ?1",
    };
    int r = 0, changed = 0;

    DB_LOCK_SCOPE(db);
    r = db_exec(db, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    for (size_t i = 0; r >= 0 && i < sizeof(sqls) / sizeof(sqls[0]); i++) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc;
        r = db_prepare(db, sqls[i], &st);
        if (r < 0)
            break;
        db_bind_text(st, 1, name);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            r = db_error(db, rc, "remote delete");
        changed = sqlite3_changes(db->h);
    }
    if (r < 0) {
        (void)db_exec(db, "ROLLBACK");
        return r;
    }
    r = db_exec(db, "COMMIT");
    if (r < 0)
        return r;
    if (changed == 0)
        return err_set(-ENOENT, "no remote '%.64s'", name);
    return 0;
}

int
db_copy_put(struct db *db, const struct conf_copy *c)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int rc, r;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "INSERT OR REPLACE INTO remote_copies (backup_id, remote, state, job_id,"
                   " object_bytes, error, created_ms, finished_ms)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                   &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, c->backup_id);
    db_bind_text(st, 2, c->remote);
    db_bind_text(st, 3, conf_copy_state_to_string(c->state));
    db_bind_text(st, 4, c->job_id);
    sqlite3_bind_int64(st, 5, (int64_t)c->object_bytes);
    db_bind_text(st, 6, c->error);
    sqlite3_bind_int64(st, 7, c->created_ms);
    db_bind_opt_int(st, 8, c->finished_ms);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "copy put");
    return 0;
}

int
db_copy_delete(struct db *db, const char *backup_id, const char *remote)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int rc, r;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "DELETE FROM remote_copies WHERE backup_id = ?1 AND remote = ?2", &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, backup_id);
    db_bind_text(st, 2, remote);
    rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? 0 : db_error(db, rc, "copy delete");
}

#define COPY_COLUMNS                                                                               \
    "backup_id, remote, state, job_id, object_bytes, error, created_ms, finished_ms"

static int
read_copy(sqlite3_stmt *st, void *item)
{
    struct conf_copy *c = item;
    bool oom = false;

    memset(c, 0, sizeof(*c));
    c->backup_id = db_column_dup(st, 0, &oom);
    c->remote = db_column_dup(st, 1, &oom);
    if (conf_copy_state_from_string((const char *)sqlite3_column_text(st, 2), &c->state) < 0)
        c->state = CONF_COPY_FAILED;
    c->job_id = db_column_dup(st, 3, &oom);
    c->object_bytes = (uint64_t)sqlite3_column_int64(st, 4);
    c->error = db_column_dup(st, 5, &oom);
    c->created_ms = sqlite3_column_int64(st, 6);
    c->finished_ms = sqlite3_column_int64(st, 7);
    if (oom) {
        conf_copy_clear(c);
        return -ENOMEM;
    }
    return 0;
}

int
db_copy_get(struct db *db, const char *backup_id, const char *remote, struct conf_copy *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int rc, r;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "SELECT " COPY_COLUMNS " FROM remote_copies WHERE backup_id = ?1"
                   " AND remote = ?2",
                   &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, backup_id);
    db_bind_text(st, 2, remote);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "copy get");
    return read_copy(st, ret);
}

int
db_copy_list(struct db *db, const char *backup_id, struct conf_copy **ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    void *list = NULL;
    int r;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "SELECT " COPY_COLUMNS " FROM remote_copies WHERE backup_id = ?1"
                   " ORDER BY remote",
                   &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, backup_id);
    r = read_rows(db, st, "copy list", sizeof(struct conf_copy), read_copy, copy_list_free, &list,
                  ret_n);
    if (r >= 0)
        *ret = list;
    return r;
}

int
db_upload_get(struct db *db, const char *remote, const char *object, char **ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    bool oom = false;
    int rc, r;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "SELECT upload_id FROM remote_uploads WHERE remote = ?1 AND object = ?2",
                   &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, remote);
    db_bind_text(st, 2, object);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "upload get");
    *ret = db_column_dup(st, 0, &oom);
    return oom || !*ret ? -ENOMEM : 0;
}

/* Runs sql with up to three text parameters, the lock held. */
static int
exec3(struct db *db, const char *sql, const char *a, const char *b, const char *c)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int rc, r;

    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, a);
    if (b)
        db_bind_text(st, 2, b);
    if (c)
        db_bind_text(st, 3, c);
    rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? 0 : db_error(db, rc, "upload");
}

/* Forgets the upload of object and its parts, the lock held. */
static int
upload_forget(struct db *db, const char *remote, const char *object)
{
    int r = exec3(db,
                  "DELETE FROM remote_parts WHERE upload_id IN (SELECT upload_id FROM"
                  " remote_uploads WHERE remote = ?1 AND object = ?2)",
                  remote, object, NULL);

    if (r >= 0)
        r = exec3(db, "DELETE FROM remote_uploads WHERE remote = ?1 AND object = ?2", remote,
                  object, NULL);
    return r;
}

int
db_upload_set(struct db *db, const char *remote, const char *object, const char *upload_id)
{
    int r;

    DB_LOCK_SCOPE(db);
    r = db_exec(db, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    r = upload_forget(db, remote, object);
    if (r >= 0)
        r = exec3(db, "INSERT INTO remote_uploads (remote, object, upload_id) VALUES (?1, ?2, ?3)",
                  remote, object, upload_id);
    if (r < 0) {
        (void)db_exec(db, "ROLLBACK");
        return r;
    }
    return db_exec(db, "COMMIT");
}

int
db_upload_delete(struct db *db, const char *remote, const char *object)
{
    int r;

    DB_LOCK_SCOPE(db);
    r = db_exec(db, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    r = upload_forget(db, remote, object);
    if (r < 0) {
        (void)db_exec(db, "ROLLBACK");
        return r;
    }
    return db_exec(db, "COMMIT");
}

int
db_part_put(struct db *db, const char *upload_id, const struct conf_copy_part *p)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int rc, r;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "INSERT OR REPLACE INTO remote_parts (upload_id, number, raw_off, raw_end,"
                   " bytes, etag) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                   &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, upload_id);
    sqlite3_bind_int64(st, 2, p->number);
    sqlite3_bind_int64(st, 3, (int64_t)p->raw_off);
    sqlite3_bind_int64(st, 4, (int64_t)p->raw_end);
    sqlite3_bind_int64(st, 5, (int64_t)p->bytes);
    db_bind_text(st, 6, p->etag);
    rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? 0 : db_error(db, rc, "part put");
}

static int
read_part(sqlite3_stmt *st, void *item)
{
    struct conf_copy_part *p = item;
    bool oom = false;

    p->number = (unsigned)sqlite3_column_int64(st, 0);
    p->raw_off = (uint64_t)sqlite3_column_int64(st, 1);
    p->raw_end = (uint64_t)sqlite3_column_int64(st, 2);
    p->bytes = (uint64_t)sqlite3_column_int64(st, 3);
    p->etag = db_column_dup(st, 4, &oom);
    return oom ? -ENOMEM : 0;
}

int
db_part_list(struct db *db, const char *upload_id, struct conf_copy_part **ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    void *list = NULL;
    int r;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "SELECT number, raw_off, raw_end, bytes, etag FROM remote_parts"
                   " WHERE upload_id = ?1 ORDER BY number",
                   &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, upload_id);
    r = read_rows(db, st, "part list", sizeof(struct conf_copy_part), read_part, part_list_free,
                  &list, ret_n);
    if (r >= 0)
        *ret = list;
    return r;
}
