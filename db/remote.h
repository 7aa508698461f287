/*
 * db/remote.h - remotes, the copies of backups to them, and the state of
 * their multipart uploads: the upload id of each object being uploaded and
 * each part the bucket confirmed (its ETag), so that an upload that a
 * crash or a network failure stopped resumes where it stopped.
 *
 * The secret of a remote is not kept here (see core/offsite.c).
 */
#ifndef VV_DB_REMOTE_H
#define VV_DB_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "conf/remote.h"

struct db;

/* Inserts r (create true: -EEXIST when the name is taken) or changes it (-ENOENT when none). */
int db_remote_put(struct db *db, const struct conf_remote *r, bool create);

/* Reads remote name into *ret (conf_remote_clear). -ENOENT when there is none. */
int db_remote_get(struct db *db, const char *name, struct conf_remote *ret);

/* Lists every remote by name into a new array (conf_remote_list_free). */
int db_remote_list(struct db *db, struct conf_remote **ret, size_t *ret_n);

/* Deletes a remote with its copies and uploads. -ENOENT when there is none. */
int db_remote_delete(struct db *db, const char *name);

/* Inserts or replaces the copy of c->backup_id to c->remote. */
int db_copy_put(struct db *db, const struct conf_copy *c);

/* Reads a copy. -ENOENT when there is none. */
int db_copy_get(struct db *db, const char *backup_id, const char *remote, struct conf_copy *ret);

/* Forgets the copy of backup_id to remote (none: no error). */
int db_copy_delete(struct db *db, const char *backup_id, const char *remote);

/* Lists a backup's copies by remote into a new array (conf_copy_list_free). */
int db_copy_list(struct db *db, const char *backup_id, struct conf_copy **ret, size_t *ret_n);

/* The upload id of object on remote into a new *ret; -ENOENT when none is recorded. */
int db_upload_get(struct db *db, const char *remote, const char *object, char **ret);

/* Records the upload id of object on remote (replacing any, and its parts). */
int db_upload_set(struct db *db, const char *remote, const char *object, const char *upload_id);

/* Forgets the upload of object on remote and its parts. */
int db_upload_delete(struct db *db, const char *remote, const char *object);

/* Records a part of upload_id the bucket confirmed. */
int db_part_put(struct db *db, const char *upload_id, const struct conf_copy_part *p);

/* Lists the confirmed parts of upload_id by number (conf_copy_part_list_free). */
int db_part_list(struct db *db, const char *upload_id, struct conf_copy_part **ret, size_t *ret_n);

#endif
