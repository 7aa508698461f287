/*
 * db.h - the service's SQLite store: everything virtvault must remember.
 *
 * One database file, opened in WAL mode with synchronous=FULL (a change is
 * on disk before the caller is told it succeeded), foreign keys on and a
 * busy timeout. The schema is versioned by forward-only migrations applied
 * at open. db_open() refuses a database that fails integrity_check.
 *
 * A struct db is safe to use from several threads: each operation takes the
 * handle's lock. All SQL lives in db/, as prepared statements with bound
 * parameters.
 */
#ifndef VV_DB_H
#define VV_DB_H

struct db;

/*
 * Opens (creating if needed) the database at path, checks its integrity
 * and applies pending migrations. On success *ret owns the handle.
 * Returns -EIO with a detail (err.h) for a corrupt or unreadable file,
 * -ENOTSUP for a database written by a newer virtvault.
 */
int db_open(const char *path, struct db **ret);

/* Closes the handle (checkpointing the WAL). Accepts NULL. */
void db_close(struct db *db);

/* Answers 0 when the database can be read now, else a negative errno. */
int db_ping(struct db *db);

/* The schema version the file is at. */
int db_schema_version(struct db *db);

/* Runs integrity_check now; 0 when it says ok, -EIO with a detail otherwise. */
int db_integrity_check(struct db *db);

#endif
