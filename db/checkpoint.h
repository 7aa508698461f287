/*
 * db/checkpoint.h - the stored copy of every checkpoint the service knows.
 *
 * A row per (domain UUID, checkpoint name) holds the checkpoint's full XML
 * (with <domain>, as libvirt's redefine needs it), its parent, its creation
 * time, and the service's verdict on it: a state ("ok", "redefined",
 * "broken", "orphaned") with the reason for it. Rows outlive the domain's
 * definition in libvirt on purpose: they are how a lost chain comes back.
 */
#ifndef VV_DB_CHECKPOINT_H
#define VV_DB_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"
#include "conf/checkpoint.h"

struct db;

struct db_checkpoint {
    char domain_uuid[37];
    char *name;
    char *parent; /* NULL for a root */
    char *xml;    /* full checkpoint XML */
    enum conf_checkpoint_state state;
    char *reason;    /* why the state is what it is, or NULL */
    int64_t created; /* libvirt's creationTime, seconds since the epoch */
    int64_t stored;  /* first written, ms since the epoch (after its domain's earlier rows) */
    int64_t updated; /* when the row last changed, ms since the epoch */
};

/*
 * Inserts c, or replaces the row of the same domain and name (keeping its
 * first-stored time and its place in the order). A new row's stored time is
 * at least one ms after the domain's latest, so that rows stored in one ms
 * (a chain's checkpoints, parents first) keep the order they were stored in.
 * Borrows c.
 */
int db_checkpoint_put(struct db *db, const struct db_checkpoint *c);

/* Looks one row up. *ret is new (db_checkpoint_free). -ENOENT when there is none. */
int db_checkpoint_get(struct db *db, const char *domain_uuid, const char *name,
                      struct db_checkpoint **ret);

/*
 * Lists the domain's rows ordered by creation time, then by the order they
 * were stored. *ret is a new array of *ret_n (db_checkpoint_list_free).
 */
int db_checkpoint_list(struct db *db, const char *domain_uuid, struct db_checkpoint **ret,
                       size_t *ret_n);

/* Sets state and reason (NULL: none) of one row. -ENOENT when there is none. */
int db_checkpoint_set_state(struct db *db, const char *domain_uuid, const char *name,
                            enum conf_checkpoint_state state, const char *reason);

/* Deletes one row. -ENOENT when there is none. */
int db_checkpoint_delete(struct db *db, const char *domain_uuid, const char *name);

/*
 * A number that changes whenever a row is written through the functions
 * above (by any thread of this process), for caches of what rows show.
 */
uint64_t db_checkpoint_version(void);

/* Free what the functions above return; both accept NULL. */
void db_checkpoint_free(struct db_checkpoint *c);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct db_checkpoint *, db_checkpoint_free);
void db_checkpoint_list_free(struct db_checkpoint *list, size_t n);

#endif
