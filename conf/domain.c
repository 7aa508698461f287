/* The domain record (see domain.h). */
#include <stdlib.h>
#include <string.h>

#include "domain.h"

CONF_ENUM_IMPL(conf_domain_state, enum conf_domain_state, CONF_DOMAIN_STATE_LAST, "nostate",
               "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended",
               "unknown");

static bool
equals(const char *value, const char *want)
{
    return value && strcmp(value, want) == 0;
}

bool
conf_disk_is_disk(const struct conf_disk *d)
{
    return equals(d->device, "disk");
}

bool
conf_disk_is_qcow2(const struct conf_disk *d)
{
    return equals(d->format, "qcow2");
}

bool
conf_disk_is_file(const struct conf_disk *d)
{
    return equals(d->type, "file");
}

bool
conf_domain_state_active(enum conf_domain_state s)
{
    return s == CONF_DOMAIN_RUNNING || s == CONF_DOMAIN_PAUSED;
}

void
conf_disk_clear(struct conf_disk *d)
{
    free(d->target);
    free(d->device);
    free(d->bus);
    free(d->type);
    free(d->source);
    free(d->format);
    free(d->alias);
}

void
conf_domain_clear(struct conf_domain *d)
{
    if (!d)
        return;
    free(d->name);
    free(d->xml);
    for (size_t i = 0; i < d->n_disks; i++)
        conf_disk_clear(&d->disks[i]);
    free(d->disks);
    free(d->snapshots.reason);
    free(d->checkpoints.reason);
    free(d->push_backup.reason);
    free(d->pull_backup.reason);
    free(d->incremental.reason);
    memset(d, 0, sizeof(*d));
}

void
conf_domain_free(struct conf_domain *d)
{
    conf_domain_clear(d);
    free(d);
}

void
conf_domain_list_free(struct conf_domain *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        conf_domain_clear(&list[i]);
    free(list);
}
