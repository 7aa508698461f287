/*
 * db/backup.h - the backup catalog: one row per backup and one per disk it
 * stored.
 *
 * A backup row is written when its job starts (state "running") and updated
 * once when the job ends (completed, failed or cancelled). Its files are
 * relative to the vault folder. Times are milliseconds since the epoch, 0
 * when unset. The record is conf/backup.h's; a NULL string is an SQL NULL,
 * the enums are stored as their names.
 */
#ifndef VV_DB_BACKUP_H
#define VV_DB_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/backup.h"

struct db;

/*
 * The catalog's version: a number that changes (grows) with every change
 * this process makes to the backups or their disk rows, from 1 at start.
 * A reader that saw the same version before it read saw the same rows.
 */
uint64_t db_backup_version(void);

/* A filter for db_backup_list; NULL members match everything. */
struct db_backup_filter {
    const char *domain_uuid;
    const enum conf_backup_type *type;   /* or NULL */
    const enum conf_backup_state *state; /* or NULL */
    const char *chain_id;
    const char *checkpoint;
    size_t limit; /* 0: no limit */
    size_t offset;
    /* With after_id: only backups after (after_started, after_id) in the list's order. */
    const char *after_id;
    int64_t after_started;
};

/*
 * Inserts b with its disks in one transaction. -EEXIST when the id is
 * taken; other negative errnos with a detail.
 */
int db_backup_insert(struct db *db, const struct conf_backup *b);

/* Reads backup id with its disks into a new *ret. -ENOENT when there is none. */
int db_backup_get(struct db *db, const char *id, struct conf_backup **ret);

/*
 * Lists backups that pass filter, newest first (started_at, then id,
 * descending: a key that pages stably), with their disks. *ret is
 * a new array of *ret_n backups (conf_backup_list_free), *ret_total (may be
 * NULL) counts all that pass the filter regardless of limit and offset.
 */
int db_backup_list(struct db *db, const struct db_backup_filter *filter, struct conf_backup ***ret,
                   size_t *ret_n, size_t *ret_total);

/*
 * Records the end of backup b's job: state, finished_at, stored_bytes,
 * error_errno/detail and, per disk, stored_bytes, sha256, checksum_algorithm
 * (NULL: "sha256") and the piece digests (pieces, n_pieces), in one
 * transaction. A backup that did not complete keeps no disk rows: it
 * stored no files. -ENOENT when the row is gone.
 */
int db_backup_finish(struct db *db, const struct conf_backup *b);

/*
 * Reads the piece digests recorded for disk target of backup id into a new
 * *ret (32 bytes each; NULL when none were recorded) and their count into
 * *ret_n. -ENOENT when there is no such disk row.
 */
int db_backup_disk_pieces(struct db *db, const char *id, const char *target, uint8_t **ret,
                          size_t *ret_n);

/* Records a verification result. -ENOENT when the row is gone. */
int db_backup_set_verification(struct db *db, const char *id, int64_t at, int ok,
                               const char *detail);

/*
 * The ids of backups whose parent is id, newest first, as a new
 * NULL-terminated array of new strings (free each, then the array).
 */
int db_backup_dependents(struct db *db, const char *id, char ***ret, size_t *ret_n);

/* Sets the state of backup id while its job runs (ready). -ENOENT when the row is gone. */
int db_backup_set_state(struct db *db, const char *id, enum conf_backup_state state);

/* Sets or clears the protection of backup id. -ENOENT when the row is gone. */
int db_backup_set_protected(struct db *db, const char *id, bool on);

/* Sets the job of backup id. -ENOENT when the row is gone. */
int db_backup_set_job(struct db *db, const char *id, const char *job_id);

/*
 * Finds the domain a name or UUID stands for among the domains that have
 * backups (the newest one's name wins): its UUID into ret_uuid and its name
 * as a new string in *ret_name. -ENOENT when no backup names it.
 */
int db_backup_find_domain(struct db *db, const char *name_or_uuid, char ret_uuid[37],
                          char **ret_name);

/* Deletes backup id and its disk rows. -ENOENT when there is none. */
int db_backup_delete(struct db *db, const char *id);

#endif
