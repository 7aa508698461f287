/*
 * db_priv.h - what the files of db/ share: the handle and statement helpers.
 * Nothing outside db/ includes this file (nor sqlite3.h).
 */
#ifndef VV_DB_PRIV_H
#define VV_DB_PRIV_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/backup.h"
#include "db.h"
#include "hash.h"

struct db {
    sqlite3 *h;
    pthread_mutex_t lock;
};

/* Maps an SQLite result code to a negative errno and records a detail. */
int db_error(struct db *db, int rc, const char *what);

/* Prepares sql on db (the lock held by the caller); statement freed with sqlite3_finalize. */
int db_prepare(struct db *db, const char *sql, sqlite3_stmt **ret);

/* Runs one or more statements without results (the lock held by the caller). */
int db_exec(struct db *db, const char *sql);

/* Binds s as text, or NULL when s is NULL. */
static inline int
db_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* Binds a time or a count where 0 means "unset" as NULL. */
static inline int
db_bind_opt_int(sqlite3_stmt *st, int i, int64_t v)
{
    return v ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
}

/*
 * Binds a disk's checksum algorithm as i (NULL reads as "sha256") and its
 * piece digests as i + 1 (NULL when it has none).
 */
static inline void
db_bind_checksum(sqlite3_stmt *st, int i, const struct conf_backup_disk *d)
{
    db_bind_text(st, i, d->checksum_algorithm ? d->checksum_algorithm : HASH_ALG_FILE);
    if (d->pieces && d->n_pieces)
        sqlite3_bind_blob64(st, i + 1, d->pieces, (sqlite3_uint64)d->n_pieces * HASH_SHA256_LEN,
                            SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i + 1);
}

/* A new copy of column i, or NULL for SQL NULL; *oom set when the copy fails. */
static inline char *
db_column_dup(sqlite3_stmt *st, int i, bool *oom)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    char *copy;

    if (!s)
        return NULL;
    copy = strdup((const char *)s);
    if (!copy)
        *oom = true;
    return copy;
}

static inline void
db_stmt_freep(sqlite3_stmt **s)
{
    if (*s)
        sqlite3_finalize(*s);
}
#define _cleanup_stmt_ __attribute__((cleanup(db_stmt_freep)))

/* Holds db->lock for the scope of the variable it is attached to. */
static inline void
db_unlockp(struct db **db)
{
    if (*db)
        pthread_mutex_unlock(&(*db)->lock);
}
#define DB_LOCK_SCOPE(db)                                                                          \
    __attribute__((cleanup(db_unlockp))) struct db *_db_locked = (db);                             \
    pthread_mutex_lock(&_db_locked->lock)

/* Counts one change of the backup catalog (db_backup_version); the lock held. */
void db_backup_changed(void);

static inline void
db_backup_changedp(int *unused)
{
    (void)unused;
    db_backup_changed();
}
/*
 * After DB_LOCK_SCOPE in a function that writes backups or their disk rows:
 * counts the change when the function returns, before the lock is let go
 * (so after its COMMIT, which a reader of the version must not precede).
 */
#define DB_BACKUP_CHANGES                                                                          \
    __attribute__((cleanup(db_backup_changedp), unused)) int _db_backup_change = 0

#endif
