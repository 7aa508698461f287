/*
 * db/recovery.h - instant recoveries and the backups they lock (see
 * conf/recovery.h). One row per recovery, keyed by an id of its own (its job's params), and one
 * per backup it stands on. Records are conf/recovery.h's.
 */
#ifndef VV_DB_RECOVERY_H
#define VV_DB_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "conf/recovery.h"

struct db;

/* Inserts r and the backups it locks (locked[0..n)) in one transaction. */
int db_recovery_insert(struct db *db, const struct conf_recovery *r, char *const *locked, size_t n);

/* Reads the recovery id into a new *ret. -ENOENT when there is none. */
int db_recovery_get(struct db *db, const char *id, struct conf_recovery **ret);

/* Sets the state of the recovery id, and its domain's UUID unless NULL. */
int db_recovery_set(struct db *db, const char *id, enum conf_recovery_state state,
                    const char *domain_uuid);

/*
 * Every recovery that locks backups (moving or stopped), oldest first: *ret
 * a new array of *ret_n new records (free each, then the array).
 */
int db_recovery_list_locking(struct db *db, struct conf_recovery ***ret, size_t *ret_n);

/*
 * Whether a recovery that locks backups stands on backup_id: 1 with the
 * recovery's id in *ret_id and the domain's name in *ret_name (new strings),
 * 0 when none does.
 */
int db_recovery_locked_by(struct db *db, const char *backup_id, char **ret_id, char **ret_name);

/*
 * Mounts of backup points: exports is the mount's "pid socket" lines (one
 * per disk), what a later process needs to stop what an earlier one left.
 */
int db_mount_insert(struct db *db, const char *id, const char *backup_id, const char *exports,
                    int64_t created_ms);
int db_mount_delete(struct db *db, const char *id);

/* Every mount's id and exports: two new NULL-terminated arrays of *ret_n new strings. */
int db_mount_list(struct db *db, char ***ret_ids, char ***ret_exports, size_t *ret_n);

#endif
