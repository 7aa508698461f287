/* Instant recovery records (see recovery.h). */
#include <stdlib.h>

#include "recovery.h"

CONF_ENUM_IMPL(conf_recovery_state, enum conf_recovery_state, CONF_RECOVERY_STATE_LAST, "moving",
               "stopped", "done", "failed");

bool
conf_recovery_locks(enum conf_recovery_state s)
{
    return s == CONF_RECOVERY_MOVING || s == CONF_RECOVERY_STOPPED;
}

void
conf_recovery_free(struct conf_recovery *r)
{
    if (!r)
        return;
    free(r->id);
    free(r->backup_id);
    free(r->name);
    free(r->domain_uuid);
    free(r->target_dir);
    free(r);
}
