/*
 * db/prune.h - what a prune records: its intent, and the switch of the
 * catalog to the images it wrote.
 *
 * An intent is written before the prune touches a file and lists every
 * file operation: "write" ops name a new image (path, a ".part" file) and
 * the name it takes once installed (target); "remove" ops name an image
 * that goes (path). It stays "prepared" until db_prune_commit() switches
 * the catalog and marks it "committed" in one transaction; it is deleted
 * once every file operation was carried out. Paths are relative to the
 * vault.
 */
#ifndef VV_DB_PRUNE_H
#define VV_DB_PRUNE_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/backup.h"

struct db;

enum db_prune_op_kind {
    DB_PRUNE_WRITE,
    DB_PRUNE_REMOVE,
};

struct db_prune_op {
    enum db_prune_op_kind kind;
    char *path;
    char *target; /* write: the name the image takes; remove: NULL */
};

struct db_prune_intent {
    char *id;
    char *domain_uuid;
    bool committed;
    struct db_prune_op *ops;
    size_t n_ops;
};

/* Frees the strings and ops of it (not it). Accepts a zeroed struct. */
void db_prune_intent_clear(struct db_prune_intent *it);

/* Records it (state prepared) with its ops in one transaction. -EEXIST for a taken id. */
int db_prune_intent_put(struct db *db, const struct db_prune_intent *it);

/*
 * Switches the catalog in one transaction: each backup of changed gets its
 * type, parent_id, base_checkpoint, stored_bytes and, per disk, backing,
 * stored_bytes and sha256 as given (files keep their names); each backup
 * named in removed (n_removed ids) is deleted with its disks; intent id
 * becomes committed. -ENOENT when a row or the intent is gone (nothing
 * changed then).
 */
int db_prune_commit(struct db *db, const char *intent_id, struct conf_backup *const *changed,
                    size_t n_changed, char *const *removed, size_t n_removed);

/*
 * Reads every intent left into a new array *ret of *ret_n (free each with
 * db_prune_intent_clear, then the array).
 */
int db_prune_intent_list(struct db *db, struct db_prune_intent **ret, size_t *ret_n);

/* Deletes intent id and its ops (no error when it is gone). */
int db_prune_intent_delete(struct db *db, const char *id);

#endif
