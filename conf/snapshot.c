/* The snapshot record (see snapshot.h). */
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"

CONF_ENUM_IMPL(conf_snapshot_kind, enum conf_snapshot_kind, CONF_SNAPSHOT_KIND_LAST, "full",
               "disk_only");
CONF_ENUM_IMPL(conf_snapshot_location, enum conf_snapshot_location, CONF_SNAPSHOT_LOCATION_LAST,
               "none", "internal", "external");

void
conf_snapshot_clear(struct conf_snapshot *s)
{
    free(s->name);
    free(s->description);
    free(s->parent);
    free(s->domain_state);
    free(s->memory_file);
    for (size_t i = 0; i < s->n_disks; i++) {
        free(s->disks[i].target);
        free(s->disks[i].file);
    }
    free(s->disks);
    memset(s, 0, sizeof(*s));
}

void
conf_snapshot_free(struct conf_snapshot *s)
{
    if (!s)
        return;
    conf_snapshot_clear(s);
    free(s);
}

void
conf_snapshot_list_free(struct conf_snapshot *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        conf_snapshot_clear(&list[i]);
    free(list);
}
