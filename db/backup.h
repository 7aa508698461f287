/*
 * db/backup.h - the backup catalog: one row per backup and one per disk it
 * stored.
 *
 * A backup row is written when its job starts (state "running") and updated
 * once when the job ends (completed, failed or cancelled). Its files are
 * relative to the vault folder. Times are milliseconds since the epoch, 0
 * when unset. Strings are owned by the struct and freed by
 * db_backup_free(); a NULL string is an SQL NULL.
 */
#ifndef VV_DB_BACKUP_H
#define VV_DB_BACKUP_H

#include <stddef.h>
#include <stdint.h>

struct db;

struct db_backup_disk {
    char *target;  /* "vda" */
    char *file;    /* relative to the vault: "<uuid>/<chain>/<id>.vda.qcow2" */
    char *backing; /* the backing file's name, relative to file's folder; NULL for a full */
    uint64_t size; /* the disk's virtual size */
    uint64_t stored_bytes;
    char *sha256; /* hex, NULL until the job completed */
};

struct db_backup {
    char *id;
    char *domain_uuid;
    char *domain_name;
    char *mode;  /* "push" */
    char *type;  /* "full", "incremental", "differential" */
    char *state; /* "running", "ready", "completed", "failed", "cancelled" */
    char *job_id;
    char *chain_id;
    char *parent_id;       /* the backup whose images back this one's; NULL for a full */
    char *base_checkpoint; /* what the changes are counted from; NULL for a full */
    char *checkpoint;      /* the checkpoint created with the backup */
    char *domain_xml;
    uint64_t stored_bytes;
    int64_t started_at;
    int64_t finished_at;
    int error_errno; /* the negative errno it failed with, 0 when none */
    char *error_detail;
    int64_t verified_at;
    int verify_ok; /* -1 never verified, 0 failed, 1 passed */
    char *verify_detail;
    size_t n_disks;
    struct db_backup_disk *disks;
};

/* A filter for db_backup_list; NULL members match everything. */
struct db_backup_filter {
    const char *domain_uuid;
    const char *type;
    const char *state;
    const char *chain_id;
    const char *checkpoint;
    size_t limit; /* 0: no limit */
    size_t offset;
};

/* Frees b and everything it owns. Accepts NULL. */
void db_backup_free(struct db_backup *b);
void db_backup_list_free(struct db_backup **list, size_t n);

/*
 * Inserts b with its disks in one transaction. -EEXIST when the id is
 * taken; other negative errnos with a detail.
 */
int db_backup_insert(struct db *db, const struct db_backup *b);

/* Reads backup id with its disks into a new *ret. -ENOENT when there is none. */
int db_backup_get(struct db *db, const char *id, struct db_backup **ret);

/*
 * Lists backups that pass filter, newest first, with their disks. *ret is
 * a new array of *ret_n backups (db_backup_list_free), *ret_total (may be
 * NULL) counts all that pass the filter regardless of limit and offset.
 */
int db_backup_list(struct db *db, const struct db_backup_filter *filter, struct db_backup ***ret,
                   size_t *ret_n, size_t *ret_total);

/*
 * Records the end of backup b's job: state, finished_at, stored_bytes,
 * error_errno/detail and, per disk, stored_bytes and sha256, in one
 * transaction. A backup that did not complete keeps no disk rows: it
 * stored no files. -ENOENT when the row is gone.
 */
int db_backup_finish(struct db *db, const struct db_backup *b);

/* Records a verification result. -ENOENT when the row is gone. */
int db_backup_set_verification(struct db *db, const char *id, int64_t at, int ok,
                               const char *detail);

/*
 * The ids of backups whose parent is id, newest first, as a new
 * NULL-terminated array of new strings (free each, then the array).
 */
int db_backup_dependents(struct db *db, const char *id, char ***ret, size_t *ret_n);

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
