/*
 * db_priv.h - what the files of db/ share: the handle and statement helpers.
 * Nothing outside db/ includes this file (nor sqlite3.h).
 */
#ifndef VV_DB_PRIV_H
#define VV_DB_PRIV_H

#include <pthread.h>
#include <sqlite3.h>

#include "db.h"

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

#endif
