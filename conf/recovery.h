/*
 * conf/recovery.h - an instant recovery: a new domain that runs from a
 * backup's chain in the vault until its disks are moved off it.
 *
 * While its state is "moving" or "stopped" (the move was cancelled: the
 * domain still runs on the vault) the backups it stands on are locked: they
 * cannot be deleted. "done" (the domain is independent) and "failed" (the
 * domain is gone, or the recovery never ran) unlock them. A record owns its
 * strings; conf_recovery_free() frees it.
 */
#ifndef VV_CONF_RECOVERY_H
#define VV_CONF_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "enum.h"

enum conf_recovery_state {
    CONF_RECOVERY_MOVING,
    CONF_RECOVERY_STOPPED,
    CONF_RECOVERY_DONE,
    CONF_RECOVERY_FAILED,
    CONF_RECOVERY_STATE_LAST,
};
CONF_ENUM_DECL(conf_recovery_state, enum conf_recovery_state);

struct conf_recovery {
    char *id;          /* the recovery's id (also its job's params) */
    char *backup_id;   /* the backup point it runs from */
    char *name;        /* the new domain's name */
    char *domain_uuid; /* the new domain's UUID, NULL until it is defined */
    char *target_dir;  /* where its overlays and final images are */
    enum conf_recovery_state state;
    int64_t created_ms;
};

/* True while the recovery holds the backups it stands on. */
bool conf_recovery_locks(enum conf_recovery_state s);

/* Frees r and its strings. Accepts NULL. */
void conf_recovery_free(struct conf_recovery *r);

static inline void
conf_recovery_freep(struct conf_recovery **r)
{
    conf_recovery_free(*r);
}

#endif
